/* ops_xattr.c - extended attributes: getxattr, listxattr, setxattr,
 * removexattr.
 *
 * "user." attributes are part of the key's record: set and removed by
 * one command each (or, on a file with changes not committed yet, as part
 * of its next commit), read after a read barrier. "user.kvfs.rev" and
 * "user.kvfs.create_rev" are computed from the key's revisions, read-only
 * and not listed (so copying tools do not carry them along); the
 * "user.kvfs." names are kept for such attributes: user.kvfs.ttl and
 * user.kvfs.lease, a file's lease, are xattr_lease.c's. The
 * other namespaces (security., trusted., system.) are answered at once,
 * with no lock, barrier or commit, as a filesystem without them would:
 * EOPNOTSUPP, the namespace is not supported. That matters: the kernel
 * asks for security.capability before every write, and ls -l asks for
 * security.selinux and the POSIX ACL of every file unless the answer
 * says "not supported" (then it stops asking for the whole mount; an
 * ENODATA it takes for "none on this file" and asks again for the next,
 * two FUSE round trips a file). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#include "fs_int.h"

enum xattr_ns { NS_USER, NS_KVFS, NS_OTHER, NS_UNKNOWN };

static bool starts(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

static enum xattr_ns ns_of(const char *name)
{
	if (starts(name, KV_XATTR_USER))
		return starts(name, KV_XATTR_RESERVED) ? NS_KVFS : NS_USER;
	if (starts(name, "security.") || starts(name, "trusted.") ||
	    starts(name, "system."))
		return NS_OTHER;
	return NS_UNKNOWN;
}

/* The record that holds in's attributes (a reference; NULL for an
 * implicit directory, which has none), after a read barrier. */
static int attr_rec(struct fs *fs, struct fs_inode *in, struct kv_rec **out)
{
	char key[KV_MAX_KEY + 1];
	size_t klen;
	int ret = fs_key_of(fs, in, key, &klen);

	*out = NULL;
	if (ret != 0 || (ret = fs_barrier(fs)) != 0)
		return ret;
	if (in->kind != S_IFDIR)
		return fs_errno(
		    store_get(node_store(fs->node), key, klen, out));
	struct kv_list l;
	ret = store_list(node_store(fs->node), key, klen, NULL, 1, &l);
	if (ret == -ENOENT && in->ino == FUSE_ROOT_ID)
		return 0; /* a subdir root with nothing in it yet */
	if (ret != 0)
		return fs_errno(ret);
	*out = l.self;
	l.self = NULL;
	kv_list_clear(&l);
	return 0;
}

/* An open file's own attributes, if it has changes not committed. Calls
 * fn with them under the file's lock: 1 if it did. */
static int with_local(struct fs *fs, struct fs_inode *in,
		      void (*fn)(void *ctx, const struct kv_xattr *xa,
				 size_t n),
		      void *ctx)
{
	struct fs_file *f = fs_inode_peek(&fs->itab, in);
	int done = 0;

	if (f == NULL)
		return 0;
	pthread_mutex_lock(&f->lock);
	if (f->opens > 0 && fs_file_dirty(f)) {
		size_t n;
		const struct kv_xattr *xa = fs_file_xattrs(f, &n);
		fn(ctx, xa, n);
		done = 1;
	}
	pthread_mutex_unlock(&f->lock);
	return done;
}

/* Reply with value[0..len) as getxattr/listxattr do (size 0: its size). */
static void reply_value(fuse_req_t req, const void *value, size_t len,
			size_t size)
{
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (size < len)
		fs_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, value, len);
}

struct get {
	fuse_req_t req;
	const char *name;
	size_t size;
};

static void get_from(void *ctx, const struct kv_xattr *xa, size_t n)
{
	struct get *g = ctx;
	size_t nlen = strlen(g->name);

	for (size_t i = 0; i < n; i++)
		if (xa[i].nlen == nlen &&
		    memcmp(xa[i].name, g->name, nlen) == 0) {
			reply_value(g->req, xa[i].val, xa[i].vlen, g->size);
			return;
		}
	fs_reply_err(g->req, ENODATA);
}

/* user.kvfs.rev and user.kvfs.create_rev: the key's revisions. */
static int kvfs_attr(struct fs *fs, struct fs_inode *in, const char *name,
		     char *out, size_t cap)
{
	char key[KV_MAX_KEY + 1];
	size_t klen;
	struct kv_stat ks;
	bool rev = strcmp(name, KV_XATTR_RESERVED "rev") == 0;
	int ret;

	if (fs_lease_attr_name(name)) /* user.kvfs.ttl, user.kvfs.lease */
		return fs_lease_attr(fs, in, name, out, cap);
	if (!rev && strcmp(name, KV_XATTR_RESERVED "create_rev") != 0)
		return -ENODATA;
	if ((ret = fs_key_of(fs, in, key, &klen)) != 0 ||
	    (ret = fs_barrier(fs)) != 0)
		return ret;
	if ((ret = fs_errno(
		 store_stat(node_store(fs->node), key, klen, &ks))) != 0)
		return ret == -ENOENT ? -ENODATA : ret; /* not committed yet */
	uint64_t v = rev ? ks.mod_rev : ks.create_rev;
	if (v == 0)
		return -ENODATA; /* the root before any change */
	return snprintf(out, cap, "%" PRIu64, v);
}

void fs_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		    size_t size)
{
	enum xattr_ns ns = ns_of(name);
	struct fs *fs;
	struct fs_inode *in;
	struct kv_rec *rec;
	int ret;

	/* First and without a lock: asked before every write. */
	if (ns == NS_OTHER || ns == NS_UNKNOWN) {
		fs_reply_err(req, EOPNOTSUPP);
		return;
	}
	fs = fs_of(req);
	if ((in = fs_inode_get(&fs->itab, ino)) == NULL) {
		fs_reply_err(req, ENOENT);
		return;
	}
	struct get g = {req, name, size};
	if (ns == NS_KVFS) {
		char v[32];
		ret = kvfs_attr(fs, in, name, v, sizeof(v));
		if (ret > 0)
			reply_value(req, v, (size_t)ret, size);
	} else if (with_local(fs, in, get_from, &g)) {
		ret = 0;
	} else if ((ret = attr_rec(fs, in, &rec)) == 0) {
		if (rec != NULL)
			get_from(&g, kv_rec_xattrs(rec), rec->nxattr);
		else
			fs_reply_err(req, ENODATA);
		kv_rec_unref(rec);
	}
	fs_inode_put(&fs->itab, in);
	if (ret < 0)
		fs_reply_err(req, -ret);
}

struct list {
	fuse_req_t req;
	size_t size;
};

static void list_from(void *ctx, const struct kv_xattr *xa, size_t n)
{
	struct list *l = ctx;
	size_t total = 0;

	for (size_t i = 0; i < n; i++)
		total += xa[i].nlen + 1;
	char *buf = malloc(total ? total : 1), *p = buf;
	if (buf == NULL) {
		fs_reply_err(l->req, ENOMEM);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		memcpy(p, xa[i].name, xa[i].nlen + 1);
		p += xa[i].nlen + 1;
	}
	reply_value(l->req, buf, total, l->size);
	free(buf);
}

void fs_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct fs *fs = fs_of(req);
	struct fs_inode *in = fs_inode_get(&fs->itab, ino);
	struct list l = {req, size};
	struct kv_rec *rec;
	int ret = 0;

	if (in == NULL) {
		fs_reply_err(req, ENOENT);
		return;
	}
	if (!with_local(fs, in, list_from, &l) &&
	    (ret = attr_rec(fs, in, &rec)) == 0) {
		list_from(&l, rec ? kv_rec_xattrs(rec) : NULL,
			  rec ? rec->nxattr : 0);
		kv_rec_unref(rec);
	}
	fs_inode_put(&fs->itab, in);
	if (ret != 0)
		fs_reply_err(req, -ret);
}

/* setxattr (value non-NULL) and removexattr. */
static int change_xattr(struct fs *fs, struct fs_inode *in, const char *name,
			const char *value, size_t size, unsigned flags)
{
	enum xattr_ns ns = ns_of(name);
	char key[KV_MAX_KEY + 1];
	size_t klen;
	int ret;

	if (ns == NS_OTHER || ns == NS_UNKNOWN)
		return -EOPNOTSUPP; /* the namespace is not supported */
	if (ns == NS_KVFS && fs_lease_attr_name(name))
		return fs_lease_set(fs, in, name, value, size);
	if ((ret = kv_xattr_name_check(name, strlen(name))) != 0)
		return ret;
	struct fs_file *f = fs_inode_peek(&fs->itab, in);
	if (f != NULL) {
		pthread_mutex_lock(&f->lock);
		int done = f->opens > 0 && fs_file_dirty(f);
		if (done)
			ret = fs_file_setxattr(f, name, value, size, flags,
					       fs_now());
		pthread_mutex_unlock(&f->lock);
		if (done)
			return ret;
	}
	if ((ret = fs_key_of(fs, in, key, &klen)) != 0)
		return ret;
	struct kv_cmd cmd = {.op = value ? KV_OP_SETXATTR : KV_OP_RMXATTR,
			     .key = key,
			     .klen = klen,
			     .xname = (char *)name,
			     .xnlen = strlen(name),
			     .val = (unsigned char *)(value ? value : ""),
			     .vlen = value ? size : 0,
			     .flags = flags,
			     .time_ns = fs_now()};
	return fs_propose(fs, &cmd, NULL);
}

void fs_op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		    const char *value, size_t size, int flags)
{
	struct fs *fs = fs_of(req);
	struct fs_inode *in = fs_inode_get(&fs->itab, ino);
	unsigned kf = 0;
	int ret;

	if (in == NULL) {
		fs_reply_err(req, ENOENT);
		return;
	}
	if (flags & XATTR_CREATE)
		kf |= KV_XATTR_CREATE;
	if (flags & XATTR_REPLACE)
		kf |= KV_XATTR_REPLACE;
	ret = kf == (KV_XATTR_CREATE | KV_XATTR_REPLACE)
		  ? -EINVAL
		  : change_xattr(fs, in, name, value ? value : "", size, kf);
	fs_inode_put(&fs->itab, in);
	fs_reply_err(req, -ret);
}

void fs_op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct fs *fs = fs_of(req);
	struct fs_inode *in = fs_inode_get(&fs->itab, ino);
	int ret = -ENOENT;

	if (in != NULL)
		ret = change_xattr(fs, in, name, NULL, 0, 0);
	fs_inode_put(&fs->itab, in);
	fs_reply_err(req, -ret);
}
