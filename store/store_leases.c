/* store_leases.c - reading the lease table (the HTTP API, the mount, the
 * leader's expiry), and the delete events of a revoke for watches.
 *
 * Reads like store_get: on the caller's thread under the map's read lock,
 * seeing every entry applied so far. The rules that change the table are
 * apply_lease.c's (applied with the map, store_apply); these only look.
 * A revoke deletes its keys inside one command, so the applier asks here
 * for their names before it applies one, and gives each a delete event of
 * the revoke's revision after (history.c). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "leases.h"
#include "map_impl.h"
#include "store_int.h"

static struct store_lease lease_of(const struct lease *l)
{
	return (struct store_lease){.id = l->id,
				    .ttl = l->ttl,
				    .rev = l->rev,
				    .nkeys = l->nkeys,
				    .local_ms = l->local_ms};
}

int store_leases(struct store *st, struct store_lease **out, size_t *n)
{
	int ret = 0;

	*out = NULL;
	*n = 0;
	pthread_rwlock_rdlock(&st->map_lock);
	const struct leases *l = map_leases_c(st->map);
	struct store_lease *v = NULL;
	if (l->n > 0 && (v = calloc(l->n, sizeof(*v))) == NULL)
		ret = -ENOMEM;
	for (size_t i = 0; v != NULL && i < l->n; i++)
		v[i] = lease_of(&l->v[i]);
	if (ret == 0) {
		*out = v;
		*n = l->n;
	}
	pthread_rwlock_unlock(&st->map_lock);
	return ret;
}

/* The names of lease id's keys, in key order, into keys (malloc'd). */
static int names_of(const struct map *m, uint64_t id, struct kv_list *keys)
{
	struct map_node **v;
	size_t n;
	int ret = leases_nodes(m, id, &v, &n);

	if (ret != 0)
		return ret;
	if (n > 0 && (keys->ents = calloc(n, sizeof(*keys->ents))) == NULL)
		ret = -ENOMEM;
	for (size_t i = 0; ret == 0 && i < n; i++) {
		const struct kv_rec *r = map_node_rec(v[i]);
		if ((keys->ents[i].name = strndup(kv_rec_key(r), r->klen)) ==
		    NULL)
			ret = -ENOMEM;
		keys->ents[i].st.size = r->vlen;
		keys->ents[i].st.mod_rev = r->mod_rev;
		keys->ents[i].st.create_rev = r->create_rev;
		keys->n = i + 1;
	}
	free(v);
	return ret;
}

int store_lease_get(struct store *st, uint64_t id, struct store_lease *out,
		    struct kv_list *keys)
{
	int ret = 0;

	if (keys != NULL)
		memset(keys, 0, sizeof(*keys));
	pthread_rwlock_rdlock(&st->map_lock);
	const struct lease *l = leases_find(map_leases_c(st->map), id);
	if (l == NULL)
		ret = -ENOENT;
	else
		*out = lease_of(l);
	if (l != NULL && keys != NULL)
		ret = names_of(st->map, id, keys);
	pthread_rwlock_unlock(&st->map_lock);
	if (ret != 0 && keys != NULL)
		kv_list_clear(keys);
	return ret;
}

size_t store_leases_due(struct store *st, uint64_t now_ms, uint64_t floor_ms,
			struct store_lease *out, size_t max)
{
	size_t k = 0;

	pthread_rwlock_rdlock(&st->map_lock);
	const struct leases *l = map_leases_c(st->map);
	for (size_t i = 0; i < l->n && k < max; i++) {
		uint64_t from =
		    l->v[i].local_ms > floor_ms ? l->v[i].local_ms : floor_ms;
		if (from + l->v[i].ttl * 1000 <= now_ms)
			out[k++] = lease_of(&l->v[i]);
	}
	pthread_rwlock_unlock(&st->map_lock);
	return k;
}

/* ---- a revoke's events (the applier's, map_lock held) ---- */

int lease_revoke_keys(struct store *st, const struct kv_cmd *cmd,
		      struct kv_list *keys)
{
	memset(keys, 0, sizeof(*keys));
	if (cmd->op != KV_OP_LEASE_REVOKE)
		return 0;
	int ret = names_of(st->map, cmd->lease, keys);
	if (ret != 0)
		kv_list_clear(keys);
	return ret;
}

void lease_revoke_events(struct store *st, uint64_t rev,
			 const struct kv_list *keys)
{
	for (size_t i = 0; i < keys->n; i++) {
		struct kv_cmd del = {.op = KV_OP_DEL,
				     .key = keys->ents[i].name,
				     .klen = strlen(keys->ents[i].name)};
		hist_add(st, rev, &del);
	}
}
