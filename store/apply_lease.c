/* apply_lease.c - the state machine's rules for leases: lease_grant,
 * lease_keepalive, lease_revoke, and what a put does with a lease.
 *
 * A grant adds a lease whose id is its entry's index (and, with a key,
 * puts that file on it: the mount's setfattr user.kvfs.ttl); a keepalive
 * makes the entry's index the lease's rev; a revoke, if the lease's rev
 * is still the one it names (if_rev: the leader's expiry, so a keepalive
 * committed first wins), deletes every key on the lease, in key order,
 * then the lease, all in its one entry. A put names the lease its key is
 * on after it (0: none) or keeps the key's (no lease field: the mount's
 * writes), or grants one of its own (ttl). Which keys are on a lease is
 * map.c's bookkeeping (the lease's set, lease_keys.c): deleting, overwriting or
 * renaming over a key takes it off its lease by itself. Rules tabled in
 * docs/map-and-db.md. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "apply_int.h"
#include "leases.h"

int apply_put_lease_check(const struct map *m, const struct kv_cmd *cmd)
{
	if (cmd->ttl != 0)
		return leases_ttl_check(cmd->ttl);
	if (cmd->set_lease && cmd->lease != 0 &&
	    leases_find(map_leases_c(m), cmd->lease) == NULL)
		return -ENOENT;
	return 0;
}

int apply_put_lease_grant(struct map *m, uint64_t index,
			  const struct kv_cmd *cmd)
{
	return leases_add(map_leases(m), index, cmd->ttl, index);
}

static int key_cmp(const void *a, const void *b)
{
	const struct kv_rec *x = map_node_rec(*(struct map_node *const *)a);
	const struct kv_rec *y = map_node_rec(*(struct map_node *const *)b);
	size_t n = x->klen < y->klen ? x->klen : y->klen;
	int c = memcmp(kv_rec_key(x), kv_rec_key(y), n);
	return c != 0 ? c : (x->klen > y->klen) - (x->klen < y->klen);
}

int leases_nodes(const struct map *m, uint64_t id, struct map_node ***out,
		 size_t *n)
{
	const struct lease *l = leases_find(map_leases_c(m), id);

	*out = NULL;
	*n = 0;
	if (l == NULL || l->nkeys == 0)
		return 0;
	struct map_node **v = malloc(l->nkeys * sizeof(*v));
	if (v == NULL)
		return -ENOMEM;
	if (!lease_keys_lost(l))
		*n = lease_keys_get(l, v);
	else /* the set missed memory: the keys by their records */
		for (struct map_node *k = map_subtree_first(m, "", 0);
		     k != NULL && *n < l->nkeys; k = map_next(m, k))
			if (kv_rec_lease(map_node_rec(k)) == id)
				v[(*n)++] = k;
	qsort(v, *n, sizeof(*v), key_cmp);
	*out = v;
	return 0;
}

/* A grant with a key: the file goes on the new lease (its revisions
 * stay: a lease is not a change of the value). */
static int grant(struct map *m, uint64_t index, const struct kv_cmd *cmd,
		 int *res, change_fn fn, void *ctx)
{
	struct map_node *n = NULL;
	struct kv_rec *rec = NULL;

	if ((*res = leases_ttl_check(cmd->ttl)) != 0)
		return 0;
	if (cmd->key != NULL) {
		if ((*res = kv_key_check(cmd->key, cmd->klen)) != 0)
			return 0;
		enum map_kind k = map_lookup(m, cmd->key, cmd->klen, &n);
		if (k != MAP_FILE) {
			*res = map_kind_is_dir(k) ? -EISDIR : -ENOENT;
			return 0;
		}
		const struct kv_rec *old = map_node_rec(n);
		rec = apply_rec_copy(old, kv_rec_key(old), old->klen, index,
				     true);
		if (rec == NULL)
			return -ENOMEM;
		rec->mod_rev = old->mod_rev;
		kv_rec_set_lease(rec, index);
	}
	if (leases_reserve(map_leases(m)) != 0) {
		kv_rec_unref(rec);
		return -ENOMEM;
	}
	leases_add(map_leases(m), index, cmd->ttl, index);
	if (rec != NULL) {
		map_replace(m, n, rec);
		apply_changed(fn, ctx, cmd->key, cmd->klen);
	}
	return 0;
}

/* The lease and every key on it go; each key's parent is touched as a
 * delete touches it. */
static int revoke(struct map *m, uint64_t index, const struct kv_cmd *cmd,
		  struct lease *l, change_fn fn, void *ctx)
{
	struct map_node **v;
	size_t n;
	int err = leases_nodes(m, cmd->lease, &v, &n);

	if (err != 0)
		return err;
	for (size_t i = 0; i < n && err == 0; i++) {
		const struct kv_rec *r = map_node_rec(v[i]);
		struct apply_touch tp;
		err = apply_touch_prepare(m, kv_rec_key(r), r->klen,
					  apply_time(cmd), index, &tp);
		if (err != 0)
			break;
		apply_changed(fn, ctx, kv_rec_key(r), r->klen);
		map_remove_node(m, v[i]);
		apply_touch_commit(m, &tp);
	}
	free(v);
	if (err == 0)
		leases_remove(map_leases(m), leases_find(map_leases(m), l->id));
	return err;
}

int apply_lease(struct map *m, uint64_t index, const struct kv_cmd *cmd,
		struct kv_result *res, change_fn fn, void *ctx)
{
	struct lease *l = NULL;
	int r = 0, err = 0;

	if (cmd->op != KV_OP_LEASE_GRANT &&
	    (l = leases_find(map_leases(m), cmd->lease)) == NULL) {
		res->err = -ENOENT;
		return 0;
	}
	switch (cmd->op) {
	case KV_OP_LEASE_GRANT:
		err = grant(m, index, cmd, &r, fn, ctx);
		res->count = cmd->ttl;
		break;
	case KV_OP_LEASE_KEEPALIVE:
		l->rev = index;
		l->local_ms = kv_mono_ms();
		res->count = l->ttl;
		break;
	case KV_OP_LEASE_REVOKE:
		if (cmd->if_rev != 0 && l->rev != cmd->if_rev)
			r = KV_EPRECOND;
		else
			err = revoke(m, index, cmd, l, fn, ctx);
		break;
	default:
		r = -EINVAL;
	}
	res->err = err != 0 ? err : r;
	return err;
}
