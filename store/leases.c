/* leases.c - the lease table: ids, TTLs, revs, and its hash.
 *
 * A sorted array: a lease is granted at an index past every lease there
 * (ids grow), so adding appends and finding is a binary search. The keys
 * on a lease are a set of the map's nodes (lease_keys.c); the rules of
 * the ops (grant, keepalive, revoke and a put's lease) are
 * apply_lease.c's. leases.h says what the table is. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "leases.h"

void leases_init(struct leases *l)
{
	memset(l, 0, sizeof(*l));
}

void leases_clear(struct leases *l)
{
	for (size_t i = 0; i < l->n; i++)
		lease_keys_free(&l->v[i]);
	free(l->v);
	leases_init(l);
}

int leases_copy(struct leases *dst, const struct leases *src)
{
	leases_clear(dst);
	if (src->n == 0)
		return 0;
	dst->v = malloc(src->n * sizeof(*dst->v));
	if (dst->v == NULL)
		return -ENOMEM;
	memcpy(dst->v, src->v, src->n * sizeof(*dst->v));
	for (size_t i = 0; i < src->n; i++) { /* the keys stay the map's */
		dst->v[i].keys = NULL;
		dst->v[i].cap = dst->v[i].used = 0;
		dst->v[i].lost = false;
	}
	dst->n = dst->cap = src->n;
	dst->nkeys = src->nkeys;
	return 0;
}

struct lease *leases_find(const struct leases *l, uint64_t id)
{
	size_t lo = 0, hi = l->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (l->v[mid].id == id)
			return &l->v[mid];
		if (l->v[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

int leases_reserve(struct leases *l)
{
	if (l->n < l->cap)
		return 0;
	size_t nc = l->cap ? l->cap * 2 : 8;
	struct lease *v = realloc(l->v, nc * sizeof(*v));
	if (v == NULL)
		return -ENOMEM;
	l->v = v;
	l->cap = nc;
	return 0;
}

int leases_ttl_check(uint64_t ttl)
{
	return ttl >= 1 && ttl <= KV_LEASE_TTL_MAX ? 0 : -EINVAL;
}

int leases_add(struct leases *l, uint64_t id, uint64_t ttl, uint64_t rev)
{
	if (id == 0 || (l->n > 0 && l->v[l->n - 1].id >= id) ||
	    leases_ttl_check(ttl) != 0 || rev < id || l->n == l->cap)
		return -EINVAL;
	l->v[l->n++] = (struct lease){
	    .id = id, .ttl = ttl, .rev = rev, .local_ms = kv_mono_ms()};
	return 0;
}

void leases_remove(struct leases *l, struct lease *e)
{
	size_t i = (size_t)(e - l->v);
	lease_keys_free(e);
	memmove(&l->v[i], &l->v[i + 1], (l->n - i - 1) * sizeof(*e));
	l->n--;
}

uint64_t leases_hash(const struct leases *l)
{
	uint64_t sum = 0;

	for (size_t i = 0; i < l->n; i++) {
		uint64_t h = kv_hash_mix(0x1ea5e, l->v[i].id);
		h = kv_hash_mix(h, l->v[i].ttl);
		sum += kv_hash_mix(h, l->v[i].rev);
	}
	return sum;
}
