/* apply_rename.c - rename: moving a file or a whole subtree, atomically.
 *
 * The checks are rename(2)'s and renameat2(2)'s (NOREPLACE, EXCHANGE);
 * then every node of the source (and, for an exchange, of the target) is
 * gathered and a record under its new key made, all before the tree
 * changes, so the move itself cannot fail half-way. A directory's subtree
 * is a range of the map's order (map.c), so gathering is a walk. The moved
 * file or directory gets the command's time as its ctime, and both parents
 * their mtime and ctime; the other rules are in apply.c. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "apply_int.h"

struct move {
	struct map_node *node;
	struct kv_rec *old, *rec; /* before and after */
};

struct moves {
	struct move *v;
	size_t n, cap;
};

/* Add the nodes of path p (kind k, node n from lookup) to mv. */
static int gather(const struct map *m, const char *p, size_t plen,
		  enum map_kind k, struct map_node *n, struct moves *mv)
{
	for (; n != NULL; n = map_next(m, n)) {
		if (k != MAP_FILE && !map_in_subtree(n, p, plen))
			break;
		if (mv->n == mv->cap) {
			size_t cap = mv->cap ? mv->cap * 2 : 16;
			struct move *v = realloc(mv->v, cap * sizeof(*v));
			if (v == NULL)
				return -ENOMEM;
			mv->v = v;
			mv->cap = cap;
		}
		mv->v[mv->n++] =
		    (struct move){.node = n, .old = map_node_rec(n)};
		if (k == MAP_FILE)
			break;
	}
	return 0;
}

/* New records for moves [from, to) of mv: prefix p (plen) replaced by q. */
static int make_moved(struct moves *mv, size_t from, size_t to, size_t plen,
		      const char *q, size_t qlen, uint64_t index, int64_t t,
		      int *res)
{
	char *buf = NULL;
	size_t cap = 0;
	int err = 0;

	for (size_t i = from; i < to; i++) {
		struct kv_rec *old = mv->v[i].old;
		size_t slen = old->klen - plen, nlen = qlen + slen;

		if (nlen > KV_MAX_KEY) {
			*res = -ENAMETOOLONG;
			break;
		}
		if (nlen > cap) {
			char *b = realloc(buf, nlen);
			if (b == NULL) {
				err = -ENOMEM;
				break;
			}
			buf = b;
			cap = nlen;
		}
		memcpy(buf, q, qlen);
		memcpy(buf + qlen, kv_rec_key(old) + plen, slen);
		mv->v[i].rec = apply_rec_copy(old, buf, nlen, index, false);
		if (mv->v[i].rec == NULL) {
			err = -ENOMEM;
			break;
		}
		/* The moved file or directory itself changed (its name);
		 * what is below it did not. */
		if (old->klen == plen && t != 0)
			mv->v[i].rec->ctime_ns = t;
	}
	free(buf);
	return err;
}

/* Both parents' times, the same record when they are one directory. */
static int touch_parents(const struct map *m, const struct kv_cmd *cmd,
			 int64_t t, uint64_t index, struct apply_touch *tp1,
			 struct apply_touch *tp2)
{
	const char *s1 = memrchr(cmd->key, '/', cmd->klen);
	const char *s2 = memrchr(cmd->key2, '/', cmd->k2len);
	size_t p1 = s1 ? (size_t)(s1 - cmd->key) : 0;
	size_t p2 = s2 ? (size_t)(s2 - cmd->key2) : 0;
	int err = apply_touch_prepare(m, cmd->key, cmd->klen, t, index, tp1);

	if (err != 0 || (p1 == p2 && memcmp(cmd->key, cmd->key2, p1) == 0))
		return err;
	return apply_touch_prepare(m, cmd->key2, cmd->k2len, t, index, tp2);
}

static bool is_below(const char *a, size_t alen, const char *b, size_t blen)
{
	return alen > blen && memcmp(a, b, blen) == 0 && a[blen] == '/';
}

/* The POSIX checks of rename(2) and renameat2(2) flags; 0 if it may go. */
static int rename_check(const struct map *m, const struct kv_cmd *cmd,
			enum map_kind sk, enum map_kind dk, struct map_node *dn)
{
	bool sdir = map_kind_is_dir(sk), ddir = map_kind_is_dir(dk);
	int err;

	if (sk == MAP_NONE)
		return -ENOENT;
	if ((err = map_check_ancestors(m, cmd->key2, cmd->k2len)) != 0)
		return err;
	if (is_below(cmd->key2, cmd->k2len, cmd->key, cmd->klen))
		return -EINVAL; /* into its own subtree */
	if (cmd->flags & KV_RENAME_EXCHANGE) {
		if (dk == MAP_NONE)
			return -ENOENT;
		if (is_below(cmd->key, cmd->klen, cmd->key2, cmd->k2len))
			return -EINVAL;
		return 0;
	}
	if (dk == MAP_NONE)
		return 0;
	if (cmd->flags & KV_RENAME_NOREPLACE)
		return -EEXIST;
	if (!sdir && ddir)
		return -EISDIR;
	if (sdir && !ddir)
		return -ENOTDIR;
	if (ddir && map_has_children(m, cmd->key2, cmd->k2len, dk, dn))
		return -ENOTEMPTY;
	return 0;
}

int apply_rename(struct map *m, uint64_t index, const struct kv_cmd *cmd,
		 int *res, change_fn fn, void *ctx)
{
	struct moves mv = {0};
	struct apply_touch tp1 = {0}, tp2 = {0};
	int64_t t = apply_time(cmd);
	struct map_node *sn, *dn;
	enum map_kind sk, dk;
	size_t na;
	int err = 0;

	if ((*res = kv_key_check(cmd->key, cmd->klen)) != 0 ||
	    (*res = kv_key_check(cmd->key2, cmd->k2len)) != 0)
		return 0;
	if ((cmd->flags & ~(KV_RENAME_NOREPLACE | KV_RENAME_EXCHANGE)) ||
	    cmd->flags == (KV_RENAME_NOREPLACE | KV_RENAME_EXCHANGE)) {
		*res = -EINVAL;
		return 0;
	}
	sk = map_lookup(m, cmd->key, cmd->klen, &sn);
	dk = map_lookup(m, cmd->key2, cmd->k2len, &dn);
	if (sk != MAP_NONE && cmd->klen == cmd->k2len &&
	    memcmp(cmd->key, cmd->key2, cmd->klen) == 0) {
		/* Same path: nothing to do, as rename(2) does. */
		if (cmd->flags & KV_RENAME_NOREPLACE)
			*res = -EEXIST;
		return 0;
	}
	if ((*res = rename_check(m, cmd, sk, dk, dn)) != 0)
		return 0;

	/* Everything that can fail happens before the tree changes. */
	if ((err = gather(m, cmd->key, cmd->klen, sk, sn, &mv)) != 0)
		goto out_free;
	na = mv.n;
	if (cmd->flags & KV_RENAME_EXCHANGE)
		err = gather(m, cmd->key2, cmd->k2len, dk, dn, &mv);
	if (err != 0)
		goto out_free;
	err = make_moved(&mv, 0, na, cmd->klen, cmd->key2, cmd->k2len, index, t,
			 res);
	if (err == 0 && *res == 0)
		err = make_moved(&mv, na, mv.n, cmd->k2len, cmd->key, cmd->klen,
				 index, t, res);
	if (err != 0 || *res != 0)
		goto out_free;
	if ((err = touch_parents(m, cmd, t, index, &tp1, &tp2)) != 0)
		goto out_free;

	/* Replaced target: a file, or an empty explicit directory. */
	if (!(cmd->flags & KV_RENAME_EXCHANGE) &&
	    (dk == MAP_FILE || dk == MAP_DIR))
		map_remove_node(m, dn);
	for (size_t i = 0; i < mv.n; i++)
		map_detach(m, mv.v[i].node);
	for (size_t i = 0; i < mv.n; i++) {
		map_attach(m, mv.v[i].node, mv.v[i].rec);
		mv.v[i].rec = NULL;
	}
	apply_touch_commit(m, &tp1);
	apply_touch_commit(m, &tp2);
	for (size_t i = 0; i < mv.n; i++) {
		struct kv_rec *o = mv.v[i].old, *r = map_node_rec(mv.v[i].node);
		apply_changed(fn, ctx, kv_rec_key(o), o->klen);
		apply_changed(fn, ctx, kv_rec_key(r), r->klen);
		kv_rec_unref(o);
	}
	/* An implicit directory has no record of its own to report. */
	if (sk == MAP_IMPLICIT ||
	    (dk == MAP_IMPLICIT && (cmd->flags & KV_RENAME_EXCHANGE))) {
		apply_changed(fn, ctx, cmd->key, cmd->klen);
		apply_changed(fn, ctx, cmd->key2, cmd->k2len);
	}
	if (dk == MAP_FILE || dk == MAP_DIR)
		apply_changed(fn, ctx, cmd->key2, cmd->k2len);
	free(mv.v);
	return 0;

out_free:
	for (size_t i = 0; i < mv.n; i++)
		kv_rec_unref(mv.v[i].rec);
	free(mv.v);
	kv_rec_unref(tp1.rec);
	kv_rec_unref(tp2.rec);
	return err;
}
