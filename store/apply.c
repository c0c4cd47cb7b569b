/* apply.c - the state machine: what each command does to the map.
 *
 * map_apply checks a command against the map (POSIX-like rules for files,
 * directories and rename) and changes the tree only through map_impl.h, so
 * map.c keeps its counters and state hash. Everything that can fail
 * (allocation) happens before the tree changes, and every outcome is a
 * function of the map and the entry alone: every node that applies the
 * same log gets the same map. The rules are tabled in docs/map-and-db.md.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "map_impl.h"

typedef void (*change_fn)(void *ctx, const char *key, size_t klen);

static void changed(change_fn fn, void *ctx, const char *key, size_t klen)
{
	if (fn != NULL)
		fn(ctx, key, klen);
}

/* A new record for key with old's value and attributes, changed at index. */
static struct kv_rec *rec_copy(const struct kv_rec *old, const char *key,
			       size_t klen, uint64_t index)
{
	struct kv_rec *rec = kv_rec_new(key, klen, old->val, old->vlen);

	if (rec == NULL)
		return NULL;
	rec->mode = old->mode;
	rec->create_rev = old->create_rev;
	rec->mod_rev = index;
	rec->mtime_ns = old->mtime_ns;
	return rec;
}

static int apply_put(struct map *m, uint64_t index, const struct kv_cmd *cmd,
		     int *res)
{
	struct map_node *n;
	enum map_kind k;
	struct kv_rec *rec;
	uint32_t perm = 0644;
	int err;

	if ((*res = kv_key_check(cmd->key, cmd->klen)) != 0)
		return 0;
	if (cmd->vlen > KV_MAX_VALUE) {
		*res = -EFBIG;
		return 0;
	}
	if ((*res = map_check_ancestors(m, cmd->key, cmd->klen)) != 0)
		return 0;
	k = map_lookup(m, cmd->key, cmd->klen, &n);
	if (map_kind_is_dir(k)) {
		*res = -EISDIR;
		return 0;
	}
	if ((cmd->if_absent && k == MAP_FILE) ||
	    (cmd->if_rev != 0 &&
	     (k != MAP_FILE || map_node_rec(n)->mod_rev != cmd->if_rev))) {
		*res = KV_EPRECOND;
		return 0;
	}
	rec = kv_rec_new(cmd->key, cmd->klen, cmd->val, cmd->vlen);
	if (rec == NULL)
		return -ENOMEM;
	if (k == MAP_FILE)
		perm = map_node_rec(n)->mode & 07777;
	if (cmd->mode != 0)
		perm = cmd->mode & 07777;
	rec->mode = S_IFREG | perm;
	rec->create_rev = k == MAP_FILE ? map_node_rec(n)->create_rev : index;
	rec->mod_rev = index;
	rec->mtime_ns = cmd->mtime_ns;
	if (k == MAP_FILE) {
		map_replace(m, n, rec);
	} else if ((err = map_insert(m, rec)) != 0) {
		kv_rec_unref(rec);
		return err;
	}
	return 0;
}

static int apply_del(struct map *m, const struct kv_cmd *cmd, int *res)
{
	struct map_node *n;
	enum map_kind k;

	if ((*res = kv_key_check(cmd->key, cmd->klen)) != 0)
		return 0;
	k = map_lookup(m, cmd->key, cmd->klen, &n);
	if (map_kind_is_dir(k))
		*res = -EISDIR;
	else if (cmd->if_rev != 0 &&
		 (k != MAP_FILE || map_node_rec(n)->mod_rev != cmd->if_rev))
		*res = KV_EPRECOND;
	else if (k == MAP_NONE)
		*res = -ENOENT;
	else
		map_remove_node(m, n);
	return 0;
}

static int apply_mkdir(struct map *m, uint64_t index, const struct kv_cmd *cmd,
		       int *res)
{
	struct map_node *n;
	struct kv_rec *rec;
	int err;

	if ((*res = kv_key_check(cmd->key, cmd->klen)) != 0)
		return 0;
	if ((*res = map_check_ancestors(m, cmd->key, cmd->klen)) != 0)
		return 0;
	if (map_lookup(m, cmd->key, cmd->klen, &n) != MAP_NONE) {
		*res = -EEXIST;
		return 0;
	}
	rec = kv_rec_new(cmd->key, cmd->klen, NULL, 0);
	if (rec == NULL)
		return -ENOMEM;
	rec->mode = S_IFDIR | (cmd->mode ? cmd->mode & 07777 : 0755);
	rec->create_rev = index;
	rec->mod_rev = index;
	rec->mtime_ns = cmd->mtime_ns;
	if ((err = map_insert(m, rec)) != 0)
		kv_rec_unref(rec);
	return err;
}

static int apply_rmdir(struct map *m, const struct kv_cmd *cmd, int *res)
{
	struct map_node *n;
	enum map_kind k;

	if ((*res = kv_key_check(cmd->key, cmd->klen)) != 0)
		return 0;
	k = map_lookup(m, cmd->key, cmd->klen, &n);
	if (k == MAP_NONE)
		*res = -ENOENT;
	else if (k == MAP_FILE)
		*res = -ENOTDIR;
	else if (map_has_children(m, cmd->key, cmd->klen, k, n))
		*res = -ENOTEMPTY;
	else
		map_remove_node(m, n);
	return 0;
}

/* chmod and utimens. An implicit directory becomes an explicit one, since
 * its attributes now need a record. */
static int apply_setattr(struct map *m, uint64_t index,
			 const struct kv_cmd *cmd, int *res)
{
	struct map_node *n;
	struct kv_rec *rec;
	enum map_kind k;
	int err;

	if ((*res = kv_key_check(cmd->key, cmd->klen)) != 0)
		return 0;
	k = map_lookup(m, cmd->key, cmd->klen, &n);
	if (k == MAP_NONE) {
		*res = -ENOENT;
		return 0;
	}
	if (k == MAP_IMPLICIT) {
		rec = kv_rec_new(cmd->key, cmd->klen, NULL, 0);
		if (rec == NULL)
			return -ENOMEM;
		rec->mode = S_IFDIR | 0755;
		rec->create_rev = index;
		rec->mtime_ns = map_node_rec(n)->mtime_ns;
	} else {
		rec = rec_copy(map_node_rec(n), cmd->key, cmd->klen, index);
		if (rec == NULL)
			return -ENOMEM;
	}
	rec->mod_rev = index;
	if (cmd->set_mode)
		rec->mode = (rec->mode & S_IFMT) | (cmd->mode & 07777);
	if (cmd->set_mtime)
		rec->mtime_ns = cmd->mtime_ns;
	if (k != MAP_IMPLICIT) {
		map_replace(m, n, rec);
	} else if ((err = map_insert(m, rec)) != 0) {
		kv_rec_unref(rec);
		return err;
	}
	return 0;
}

/* ---- rename: moving a file or a subtree ---- */

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
		      const char *q, size_t qlen, uint64_t index, int *res)
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
		memcpy(buf + qlen, old->key + plen, slen);
		mv->v[i].rec = rec_copy(old, buf, nlen, index);
		if (mv->v[i].rec == NULL) {
			err = -ENOMEM;
			break;
		}
	}
	free(buf);
	return err;
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

static int apply_rename(struct map *m, uint64_t index, const struct kv_cmd *cmd,
			int *res, change_fn fn, void *ctx)
{
	struct moves mv = {0};
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
	err = make_moved(&mv, 0, na, cmd->klen, cmd->key2, cmd->k2len, index,
			 res);
	if (err == 0 && *res == 0)
		err = make_moved(&mv, na, mv.n, cmd->k2len, cmd->key, cmd->klen,
				 index, res);
	if (err != 0 || *res != 0)
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
	for (size_t i = 0; i < mv.n; i++) {
		struct kv_rec *o = mv.v[i].old, *r = map_node_rec(mv.v[i].node);
		changed(fn, ctx, o->key, o->klen);
		changed(fn, ctx, r->key, r->klen);
		kv_rec_unref(o);
	}
	/* An implicit directory has no record of its own to report. */
	if (sk == MAP_IMPLICIT ||
	    (dk == MAP_IMPLICIT && (cmd->flags & KV_RENAME_EXCHANGE))) {
		changed(fn, ctx, cmd->key, cmd->klen);
		changed(fn, ctx, cmd->key2, cmd->k2len);
	}
	if (dk == MAP_FILE || dk == MAP_DIR)
		changed(fn, ctx, cmd->key2, cmd->k2len);
	free(mv.v);
	return 0;

out_free:
	for (size_t i = 0; i < mv.n; i++)
		kv_rec_unref(mv.v[i].rec);
	free(mv.v);
	return err;
}

int map_apply(struct map *m, uint64_t index, const struct kv_cmd *cmd,
	      struct kv_result *res,
	      void (*on_change)(void *ctx, const char *key, size_t klen),
	      void *ctx)
{
	int err = 0, r = 0;

	res->rev = index;
	switch (cmd->op) {
	case KV_OP_NOOP:
		break;
	case KV_OP_PUT:
		err = apply_put(m, index, cmd, &r);
		break;
	case KV_OP_DEL:
		err = apply_del(m, cmd, &r);
		break;
	case KV_OP_MKDIR:
		err = apply_mkdir(m, index, cmd, &r);
		break;
	case KV_OP_RMDIR:
		err = apply_rmdir(m, cmd, &r);
		break;
	case KV_OP_SETATTR:
		err = apply_setattr(m, index, cmd, &r);
		break;
	case KV_OP_RENAME:
		err = apply_rename(m, index, cmd, &r, on_change, ctx);
		break;
	default:
		r = -EINVAL;
	}
	res->err = err != 0 ? err : r;
	if (err == 0 && r == 0 && cmd->op != KV_OP_NOOP &&
	    cmd->op != KV_OP_RENAME)
		changed(on_change, ctx, cmd->key, cmd->klen);
	return err;
}
