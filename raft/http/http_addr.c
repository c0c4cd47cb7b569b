/* http_addr.c - connections per client address, for the gate's
 * per-address limit (http_gate.h).
 *
 * A chained hash table of the addresses that hold connections now, keyed
 * by the IPv4 address or the IPv6 /64 (one host is often given a whole
 * /64, so a finer key would let it open a limit per address it picks).
 * The hash is seeded at random, so that a client cannot choose addresses
 * that all fall in one chain. Members' hosts are remembered beyond their
 * connections. Only the gate's thread-safe callers use it, under the
 * gate's lock. */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "http_gate.h"

struct addr_ent {
	struct addr_ent *next;
	struct http_addr_key key;
	unsigned count;
	bool peer;
};

struct http_addrs {
	struct addr_ent **buckets;
	size_t mask; /* buckets - 1, a power of two minus one */
	uint64_t seed;
	unsigned peers; /* addresses marked as members' hosts */
};

int http_addr_key(const struct sockaddr *sa, socklen_t len,
		  struct http_addr_key *k)
{
	memset(k, 0, sizeof(*k));
	if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in = (const void *)sa;
		k->b[10] = k->b[11] = 0xff;
		memcpy(&k->b[12], &in->sin_addr, 4);
		return 0;
	}
	if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *in6 = (const void *)sa;
		memcpy(k->b, &in6->sin6_addr, 16);
		/* an IPv4 client of a dual-stack socket is one address */
		if (!IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
			memset(&k->b[8], 0, 8);
		return 0;
	}
	return -EAFNOSUPPORT;
}

static size_t slot(const struct http_addrs *t, const struct http_addr_key *k)
{
	uint64_t a, b, h;
	memcpy(&a, k->b, 8);
	memcpy(&b, k->b + 8, 8);
	/* two rounds of a multiply-xorshift mix, keyed by the seed */
	h = (a ^ t->seed) * 0x9e3779b97f4a7c15u;
	h = (h ^ (h >> 29) ^ b) * 0xbf58476d1ce4e5b9u;
	h ^= h >> 32;
	return (size_t)h & t->mask;
}

static struct addr_ent *find(const struct http_addrs *t,
			     const struct http_addr_key *k, size_t *s)
{
	*s = slot(t, k);
	for (struct addr_ent *e = t->buckets[*s]; e; e = e->next)
		if (memcmp(&e->key, k, sizeof(*k)) == 0)
			return e;
	return NULL;
}

int http_addrs_new(unsigned n, struct http_addrs **out)
{
	struct http_addrs *t = calloc(1, sizeof(*t));
	size_t size = 64;

	if (!t)
		return -ENOMEM;
	while (size < n && size < ((size_t)1 << 20))
		size *= 2;
	t->buckets = calloc(size, sizeof(*t->buckets));
	if (!t->buckets) {
		free(t);
		return -ENOMEM;
	}
	t->mask = size - 1;
	if (getrandom(&t->seed, sizeof(t->seed), GRND_NONBLOCK) !=
	    (ssize_t)sizeof(t->seed))
		t->seed = (uint64_t)(uintptr_t)t ^ 0x5bd1e9955bd1e995u;
	*out = t;
	return 0;
}

void http_addrs_free(struct http_addrs *t)
{
	if (!t)
		return;
	for (size_t i = 0; i <= t->mask; i++) {
		struct addr_ent *e = t->buckets[i];
		while (e) {
			struct addr_ent *next = e->next;
			free(e);
			e = next;
		}
	}
	free(t->buckets);
	free(t);
}

unsigned http_addrs_count(const struct http_addrs *t,
			  const struct http_addr_key *k)
{
	size_t s;
	const struct addr_ent *e = find(t, k, &s);
	return e ? e->count : 0;
}

/* k's entry, made if it has none. NULL: no memory. */
static struct addr_ent *get(struct http_addrs *t, const struct http_addr_key *k)
{
	size_t s;
	struct addr_ent *e = find(t, k, &s);

	if (e)
		return e;
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->key = *k;
	e->next = t->buckets[s];
	t->buckets[s] = e;
	return e;
}

int http_addrs_add(struct http_addrs *t, const struct http_addr_key *k)
{
	struct addr_ent *e = get(t, k);

	if (!e)
		return -ENOMEM;
	e->count++;
	return 0;
}

void http_addrs_del(struct http_addrs *t, const struct http_addr_key *k)
{
	size_t s = slot(t, k);

	for (struct addr_ent **p = &t->buckets[s]; *p; p = &(*p)->next) {
		struct addr_ent *e = *p;
		if (memcmp(&e->key, k, sizeof(*k)) != 0)
			continue;
		if (e->count > 0)
			e->count--;
		if (e->count == 0 && !e->peer) {
			*p = e->next;
			free(e);
		}
		return;
	}
}

void http_addrs_mark_peer(struct http_addrs *t, const struct http_addr_key *k)
{
	if (t->peers >= HTTP_GATE_PEERS || http_addrs_is_peer(t, k))
		return;
	struct addr_ent *e = get(t, k);
	if (!e)
		return;
	e->peer = true;
	t->peers++;
}

bool http_addrs_is_peer(const struct http_addrs *t,
			const struct http_addr_key *k)
{
	size_t s;
	const struct addr_ent *e = find(t, k, &s);
	return e && e->peer;
}
