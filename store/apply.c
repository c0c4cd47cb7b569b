/* apply.c - the state machine: what each command does to the map.
 *
 * apply_plain (map_apply for all but txn, apply_entry.c) checks a command
 * against the map (POSIX-like rules for files, directories and attributes;
 * rename is in apply_rename.c) and changes the tree only through map_impl.h, so
 * map.c keeps its counters and state hash. Everything that can fail
 * (allocation) happens before the tree changes, and every outcome is a function
 * of the map and the entry alone (times come from the command, never from this
 * node's clock): every node that applies the same log gets the same map. The
 * rules are tabled in docs/map-and-db.md. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "apply_int.h"
#include "leases.h"
#include "locks.h"

/* ---- put, del, mkdir, rmdir ---- */

/* A put or mkdir sets the permission bits when set_mode says so or the
 * mode (kind included) is nonzero (callers that predate set_mode);
 * kv_cmd_encode writes the mode in both cases, so a decoded command means
 * the same as the one proposed. */
static bool mode_given(const struct kv_cmd *cmd)
{
	return cmd->set_mode || cmd->mode != 0;
}

/* The kind a put makes, and whether its value fits that kind: 0 or the
 * command's error. */
static int put_kind(const struct kv_cmd *cmd, uint32_t *kind)
{
	*kind = cmd->mode & S_IFMT ? cmd->mode & S_IFMT : S_IFREG;
	switch (*kind) {
	case S_IFREG:
		return cmd->vlen > KV_MAX_VALUE ? -EFBIG : 0;
	case S_IFLNK:
		if (cmd->vlen > KV_MAX_LINK)
			return -ENAMETOOLONG;
		if (cmd->vlen == 0 || memchr(cmd->val, '\0', cmd->vlen))
			return -EINVAL;
		return 0;
	case S_IFIFO:
	case S_IFSOCK:
		return cmd->vlen == 0 ? 0 : -EINVAL;
	default:
		return -EINVAL;
	}
}

/* A put's attribute set: valid names, each once, within the limits. */
static int check_xattrs(const struct kv_xattr *xa, size_t n)
{
	int err;

	for (size_t i = 0; i < n; i++) {
		if ((err = kv_xattr_name_check(xa[i].name, xa[i].nlen)) != 0)
			return err;
		if (xa[i].vlen > KV_MAX_XATTR_VALUE)
			return -E2BIG;
		for (size_t j = 0; j < i; j++)
			if (xa[j].nlen == xa[i].nlen &&
			    memcmp(xa[j].name, xa[i].name, xa[i].nlen) == 0)
				return -EINVAL;
	}
	return kv_xattrs_size(xa, n) > KV_MAX_XATTR_TOTAL ? -ENOSPC : 0;
}

/* Can the put go, given what the key is (k, old)? 0 or its error. */
static int put_check(const struct map *m, const struct kv_cmd *cmd,
		     enum map_kind k, const struct kv_rec *old)
{
	int err;

	/* a commit made under a lock, after its session ended: fenced */
	if (cmd->if_sid != 0 &&
	    locks_session(map_locks_c(m), cmd->if_sid) == NULL)
		return -ENOLCK;
	if ((err = map_check_ancestors(m, cmd->key, cmd->klen)) != 0)
		return err;
	if (map_kind_is_dir(k))
		return -EISDIR;
	if ((cmd->if_absent && k == MAP_FILE) ||
	    (cmd->if_rev != 0 &&
	     (k != MAP_FILE || old->mod_rev != cmd->if_rev)))
		return KV_EPRECOND;
	if (cmd->set_xattrs && (err = check_xattrs(cmd->xattrs, cmd->nxattr)))
		return err;
	return apply_put_lease_check(m, cmd);
}

/* May the put take the record prepared with it (store_cmd_prepare) as
 * it is? It holds the command's key, value and attributes (none without
 * set_xattrs), which is the record to build unless the put keeps old's
 * attributes and old has some; and only its command holds it (a command
 * applied twice must not change a record the map holds). */
static bool put_prepared(const struct kv_cmd *cmd, const struct kv_rec *old,
			 uint64_t lease)
{
	if (cmd->prep == NULL ||
	    atomic_load_explicit(&cmd->prep->refs, memory_order_acquire) != 1)
		return false;
	if (lease != 0 && !(cmd->prep->flags & KV_REC_LEASE_SLOT))
		return false; /* no room for the lease (prepare.c) */
	return cmd->set_xattrs || old == NULL || old->nxattr == 0;
}

static int apply_put(struct map *m, uint64_t index, const struct kv_cmd *cmd,
		     int *res)
{
	struct map_node *n;
	struct kv_rec *rec, *old = NULL;
	struct apply_touch tp = {0};
	enum map_kind k;
	uint32_t kind;
	int64_t t = apply_time(cmd);
	int err;

	if ((*res = kv_key_check(cmd->key, cmd->klen)) != 0 ||
	    (*res = put_kind(cmd, &kind)) != 0)
		return 0;
	k = map_lookup(m, cmd->key, cmd->klen, &n);
	if (k == MAP_FILE)
		old = map_node_rec(n);
	if ((*res = put_check(m, cmd, k, old)) != 0)
		return 0;
	if (cmd->ttl != 0 && leases_reserve(map_leases(m)) != 0)
		return -ENOMEM; /* a lease of its own: room first */
	uint64_t lease = cmd->ttl	  ? index
			 : cmd->set_lease ? cmd->lease
			 : old		  ? kv_rec_lease(old)
					  : 0;
	bool prep = put_prepared(cmd, old, lease);
	if (prep) {
		rec = cmd->prep; /* built and hashed where it arrived */
		kv_rec_ref(rec);
	} else if (cmd->set_xattrs || old == NULL)
		rec = kv_rec_new_l(
		    cmd->key, cmd->klen, cmd->val, cmd->vlen, cmd->xattrs,
		    cmd->set_xattrs ? cmd->nxattr : 0, lease != 0);
	else
		rec = kv_rec_new_l(cmd->key, cmd->klen, cmd->val, cmd->vlen,
				   kv_rec_xattrs(old), old->nxattr, lease != 0);
	if (rec == NULL)
		return -ENOMEM;
	if (old == NULL && (err = apply_touch_prepare(m, cmd->key, cmd->klen, t,
						      index, &tp)) != 0)
		goto err_unref;
	rec->mode = kind | (mode_given(cmd) ? cmd->mode & 07777
			    : old	    ? old->mode & 07777
					    : 0644);
	rec->uid = cmd->set_uid ? cmd->uid : old ? old->uid : KV_NO_OWNER;
	rec->gid = cmd->set_gid ? cmd->gid : old ? old->gid : KV_NO_OWNER;
	rec->create_rev = old ? old->create_rev : index;
	rec->mod_rev = index;
	rec->mtime_ns = cmd->mtime_ns;
	rec->ctime_ns = t;
	rec->atime_ns = cmd->set_atime ? cmd->atime_ns
			: old	       ? old->atime_ns
				       : t;
	kv_rec_set_lease(rec, lease);
	if (cmd->ttl != 0)
		apply_put_lease_grant(m, index, cmd); /* room reserved */
	if (prep) /* the map keeps a hash it finds set */
		rec->hash = map_rec_hash_rest(cmd->prep_hash, rec);
	if (old != NULL) {
		map_replace(m, n, rec);
		return 0;
	}
	if ((err = map_insert(m, rec)) != 0) {
		if (cmd->ttl != 0)
			leases_remove(map_leases(m),
				      leases_find(map_leases(m), index));
		goto err_unref;
	}
	apply_touch_commit(m, &tp);
	return 0;

err_unref:
	kv_rec_unref(tp.rec);
	kv_rec_unref(rec);
	return err;
}

/* Remove the file or explicit directory n, touching its parent. */
static int remove_touching(struct map *m, uint64_t index,
			   const struct kv_cmd *cmd, struct map_node *n)
{
	struct apply_touch tp;
	int err = apply_touch_prepare(m, cmd->key, cmd->klen, apply_time(cmd),
				      index, &tp);

	if (err != 0)
		return err;
	map_remove_node(m, n);
	apply_touch_commit(m, &tp);
	return 0;
}

static int apply_del(struct map *m, uint64_t index, const struct kv_cmd *cmd,
		     int *res)
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
		return remove_touching(m, index, cmd, n);
	return 0;
}

static int apply_mkdir(struct map *m, uint64_t index, const struct kv_cmd *cmd,
		       int *res)
{
	struct map_node *n;
	struct kv_rec *rec;
	struct apply_touch tp;
	int64_t t = apply_time(cmd);
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
	if ((err = apply_touch_prepare(m, cmd->key, cmd->klen, t, index,
				       &tp)) != 0) {
		kv_rec_unref(rec);
		return err;
	}
	rec->mode = S_IFDIR | (mode_given(cmd) ? cmd->mode & 07777 : 0755);
	rec->uid = cmd->set_uid ? cmd->uid : KV_NO_OWNER;
	rec->gid = cmd->set_gid ? cmd->gid : KV_NO_OWNER;
	rec->create_rev = index;
	rec->mod_rev = index;
	rec->mtime_ns = cmd->mtime_ns;
	rec->ctime_ns = t;
	rec->atime_ns = cmd->set_atime ? cmd->atime_ns : t;
	if ((err = map_insert(m, rec)) != 0) {
		kv_rec_unref(tp.rec);
		kv_rec_unref(rec);
		return err;
	}
	apply_touch_commit(m, &tp);
	return 0;
}

/* rmdir with KV_RMDIR_RECURSIVE: every record below the directory and
 * its own, one change; each removed key is reported to on_change. */
static int
remove_subtree(struct map *m, uint64_t index, const struct kv_cmd *cmd,
	       void (*on_change)(void *ctx, const char *key, size_t klen),
	       void *ctx)
{
	struct apply_touch tp;
	int err = apply_touch_prepare(m, cmd->key, cmd->klen, apply_time(cmd),
				      index, &tp);
	if (err != 0)
		return err;
	struct map_node *n = map_subtree_first(m, cmd->key, cmd->klen);
	while (n != NULL && map_in_subtree(n, cmd->key, cmd->klen)) {
		struct map_node *next = map_next(m, n);
		const struct kv_rec *r = map_node_rec(n);
		if (r->klen != cmd->klen)
			apply_changed(on_change, ctx, kv_rec_key(r), r->klen);
		map_remove_node(m, n);
		n = next;
	}
	apply_touch_commit(m, &tp);
	return 0;
}

static int
apply_rmdir(struct map *m, uint64_t index, const struct kv_cmd *cmd, int *res,
	    void (*on_change)(void *ctx, const char *key, size_t klen),
	    void *ctx)
{
	struct map_node *n;
	enum map_kind k;

	if ((*res = kv_key_check(cmd->key, cmd->klen)) != 0)
		return 0;
	if (cmd->flags & ~KV_RMDIR_RECURSIVE) {
		*res = -EINVAL;
		return 0;
	}
	k = map_lookup(m, cmd->key, cmd->klen, &n);
	if (k == MAP_NONE)
		*res = -ENOENT;
	else if (k == MAP_FILE)
		*res = -ENOTDIR;
	else if (map_has_children(m, cmd->key, cmd->klen, k, n)) {
		if (cmd->flags & KV_RMDIR_RECURSIVE)
			return remove_subtree(m, index, cmd, on_change, ctx);
		*res = -ENOTEMPTY;
	} else
		return remove_touching(m, index, cmd, n);
	return 0;
}

/* ---- attributes: setattr, setxattr, rmxattr ---- */

/* The key's attributes as a new record (changed at index) with the
 * attribute set xa[0..nx) (NULL: the key's own) for the op to change and
 * attr_install to put in place. The root and an implicit directory, which
 * have no record, get one: an implicit directory becomes explicit, since
 * its attributes now need a record. *res: -ENOENT, -EINVAL. */
static struct kv_rec *attr_copy(const struct map *m, const struct kv_cmd *cmd,
				uint64_t index, const struct kv_xattr *xa,
				size_t nx, int *res)
{
	struct map_node *n;
	const struct kv_rec *old;
	struct kv_rec *rec;
	enum map_kind k;

	if (cmd->klen != 0 && (*res = kv_key_check(cmd->key, cmd->klen)) != 0)
		return NULL;
	k = map_lookup(m, cmd->key, cmd->klen, &n);
	if (k == MAP_NONE) {
		*res = -ENOENT;
		return NULL;
	}
	old = k == MAP_ROOT	  ? map_root(m)
	      : k == MAP_IMPLICIT ? NULL
				  : map_node_rec(n);
	if (old != NULL && xa == NULL) {
		xa = kv_rec_xattrs(old);
		nx = old->nxattr;
	}
	rec = kv_rec_new_l(cmd->key, cmd->klen, old ? kv_rec_val(old) : NULL,
			   old ? old->vlen : 0, xa, nx,
			   old != NULL && kv_rec_lease(old) != 0);
	if (rec == NULL)
		return NULL;
	if (old != NULL) {
		apply_same_attrs(rec, old);
	} else {
		rec->mode = S_IFDIR | 0755;
		if (k == MAP_IMPLICIT) {
			int64_t t = map_node_rec(n)->mtime_ns;
			rec->create_rev = index;
			rec->mtime_ns = rec->ctime_ns = rec->atime_ns = t;
		}
	}
	rec->mod_rev = index;
	if (apply_time(cmd) != 0)
		rec->ctime_ns = apply_time(cmd);
	return rec;
}

/* Put rec (from attr_copy) in place of the key's attributes. */
static int attr_install(struct map *m, struct kv_rec *rec)
{
	struct map_node *n;
	enum map_kind k = map_lookup(m, kv_rec_key(rec), rec->klen, &n);
	int err;

	if (k == MAP_ROOT) {
		map_set_root(m, rec);
	} else if (k != MAP_IMPLICIT) {
		map_replace(m, n, rec);
	} else if ((err = map_insert(m, rec)) != 0) {
		kv_rec_unref(rec);
		return err;
	}
	return 0;
}

static int apply_setattr(struct map *m, uint64_t index,
			 const struct kv_cmd *cmd, int *res)
{
	struct kv_rec *rec = attr_copy(m, cmd, index, NULL, 0, res);

	if (rec == NULL)
		return *res != 0 ? 0 : -ENOMEM;
	if (cmd->set_mode)
		rec->mode = (rec->mode & S_IFMT) | (cmd->mode & 07777);
	if (cmd->set_uid)
		rec->uid = cmd->uid;
	if (cmd->set_gid)
		rec->gid = cmd->gid;
	if (cmd->set_mtime) {
		rec->mtime_ns = cmd->mtime_ns;
		if (cmd->time_ns == 0) /* version 1: no ctime of its own */
			rec->ctime_ns = cmd->mtime_ns;
	}
	if (cmd->set_atime)
		rec->atime_ns = cmd->atime_ns;
	return attr_install(m, rec);
}

/* setxattr and rmxattr: the key's attribute set with cmd's name set to
 * cmd's value, or removed. */
static int apply_xattr(struct map *m, uint64_t index, const struct kv_cmd *cmd,
		       int *res)
{
	struct map_node *n;
	const struct kv_rec *old;
	const struct kv_xattr *cur = NULL;
	struct kv_xattr *xa;
	struct kv_rec *rec;
	size_t nx = 0, w = 0;
	bool set = cmd->op == KV_OP_SETXATTR;

	if ((*res = kv_xattr_name_check(cmd->xname, cmd->xnlen)) != 0)
		return 0;
	if (set && cmd->vlen > KV_MAX_XATTR_VALUE) {
		*res = -E2BIG;
		return 0;
	}
	enum map_kind k = map_lookup(m, cmd->key, cmd->klen, &n);
	old = k == MAP_ROOT		      ? map_root(m)
	      : k == MAP_FILE || k == MAP_DIR ? map_node_rec(n)
					      : NULL;
	if (old != NULL) {
		cur = kv_rec_xattrs(old);
		nx = old->nxattr;
	}
	const struct kv_xattr *x =
	    old ? kv_rec_xattr(old, cmd->xname, cmd->xnlen) : NULL;
	if ((!set && x == NULL) ||
	    (set && x == NULL && (cmd->flags & KV_XATTR_REPLACE))) {
		*res = k == MAP_NONE ? -ENOENT : -ENODATA;
		return 0;
	}
	if (set && x != NULL && (cmd->flags & KV_XATTR_CREATE)) {
		*res = -EEXIST;
		return 0;
	}
	xa = malloc((nx + 1) * sizeof(*xa));
	if (xa == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < nx; i++)
		if (&cur[i] != x)
			xa[w++] = cur[i];
	if (set)
		xa[w++] = (struct kv_xattr){cmd->xname, cmd->xnlen, cmd->val,
					    cmd->vlen};
	if (kv_xattrs_size(xa, w) > KV_MAX_XATTR_TOTAL) {
		free(xa);
		*res = -ENOSPC;
		return 0;
	}
	rec = attr_copy(m, cmd, index, xa, w, res);
	free(xa);
	if (rec == NULL)
		return *res != 0 ? 0 : -ENOMEM;
	return attr_install(m, rec);
}

int apply_plain(struct map *m, uint64_t index, const struct kv_cmd *cmd,
		struct kv_result *res, change_fn on_change, void *ctx)
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
		err = apply_del(m, index, cmd, &r);
		break;
	case KV_OP_MKDIR:
		err = apply_mkdir(m, index, cmd, &r);
		break;
	case KV_OP_RMDIR:
		err = apply_rmdir(m, index, cmd, &r, on_change, ctx);
		break;
	case KV_OP_SETATTR:
		err = apply_setattr(m, index, cmd, &r);
		break;
	case KV_OP_SETXATTR:
	case KV_OP_RMXATTR:
		err = apply_xattr(m, index, cmd, &r);
		break;
	case KV_OP_RENAME:
		err = apply_rename(m, index, cmd, &r, on_change, ctx);
		break;
	case KV_OP_ADD:
		err = apply_add(m, index, cmd, &r, on_change, ctx);
		if (err == 0 && r == 0 && cmd->nadd == 1)
			res->count = apply_add_count(m, cmd);
		break;
	case KV_OP_LOCK:
	case KV_OP_SESS_OPEN:
	case KV_OP_SESS_RENEW:
	case KV_OP_SESS_END:
		/* the lock table's; it tells on_change of the keys whose
		 * locks changed (waiters for them may try again) */
		return locks_apply(map_locks(m), index, cmd, res, on_change,
				   ctx);
	case KV_OP_LEASE_GRANT:
	case KV_OP_LEASE_KEEPALIVE:
	case KV_OP_LEASE_REVOKE:
		/* the lease table's (apply_lease.c): it tells on_change of
		 * the keys it changed or deleted */
		return apply_lease(m, index, cmd, res, on_change, ctx);
	default:
		r = -EINVAL;
	}
	res->err = err != 0 ? err : r;
	if (err == 0 && r == 0 && cmd->op != KV_OP_NOOP &&
	    cmd->op != KV_OP_RENAME && cmd->op != KV_OP_ADD)
		apply_changed(on_change, ctx, cmd->key, cmd->klen);
	return err;
}
