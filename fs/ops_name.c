/* ops_name.c - the FUSE operations on names: mknod, symlink, readlink,
 * link, unlink, rename.
 *
 * Each is one proposal. A symbolic link is a key whose kind is S_IFLNK
 * and whose value is its target; FIFOs and sockets are keys of their kind
 * with no value (the kernel does their I/O, we only keep the entry); all
 * are made with a create-only put, so EEXIST is exact across nodes. Hard
 * links are refused (EPERM): a key has one name, and a second name needs
 * an inode indirection the map does not have. A file with changes not
 * committed yet is committed before it is renamed, so the rename moves
 * what the store holds; one made here and never committed is removed by
 * forgetting it. */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fs_int.h"

void fs_op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		 mode_t mode, dev_t rdev)
{
	uint32_t kind = mode & S_IFMT;

	(void)rdev;
	if (kind == 0)
		kind = S_IFREG;
	/* Devices are not kept (and a FUSE mount is nodev anyway). */
	if (kind != S_IFREG && kind != S_IFIFO && kind != S_IFSOCK) {
		fs_reply_err(req, EPERM);
		return;
	}
	fs_make_entry(req, parent, name, KV_OP_PUT, kind | (mode & 07777), "",
		      0);
}

void fs_op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		   const char *name)
{
	size_t n = strlen(link);

	if (n > KV_MAX_LINK) {
		fs_reply_err(req, ENAMETOOLONG);
		return;
	}
	fs_make_entry(req, parent, name, KV_OP_PUT, S_IFLNK | 0777, link, n);
}

void fs_op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct fs *fs = fs_of(req);
	struct fs_inode *in = fs_inode_get(&fs->itab, ino);
	char key[KV_MAX_KEY + 1], target[KV_MAX_LINK + 1];
	struct kv_rec *rec = NULL;
	size_t klen;
	int ret;

	if (in == NULL) {
		fs_reply_err(req, ENOENT);
		return;
	}
	ret = fs_key_of(fs, in, key, &klen);
	fs_inode_put(&fs->itab, in);
	if (ret == 0 && (ret = fs_barrier(fs)) == 0)
		ret =
		    fs_errno(store_get(node_store(fs->node), key, klen, &rec));
	if (ret == 0 && (!S_ISLNK(rec->mode) || rec->vlen > KV_MAX_LINK))
		ret = -EINVAL;
	if (ret == 0) {
		memcpy(target, kv_rec_val(rec), rec->vlen);
		target[rec->vlen] = '\0';
	}
	kv_rec_unref(rec);
	if (ret == 0)
		fuse_reply_readlink(req, target);
	else
		fs_reply_err(req, -ret);
}

void fs_op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		const char *newname)
{
	(void)ino;
	(void)newparent;
	(void)newname;
	fs_reply_err(req, EPERM);
}

void fs_op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);
	struct fs_inode *dir = fs_inode_get(&fs->itab, parent), *c;
	char key[KV_MAX_KEY + 1];
	size_t klen;
	int ret;

	if (dir == NULL) {
		fs_reply_err(req, ENOENT);
		return;
	}
	c = fs_inode_child(&fs->itab, dir, name);
	if (c != NULL && fs_inode_is_pending(&fs->itab, c)) {
		/* Made here and never committed: forgetting its name is all
		 * there is to remove. Its descriptors keep working. */
		fs_inode_detach(&fs->itab, c);
		ret = 0;
	} else if ((ret = fs_child_key(fs, dir, name, key, &klen)) == 0) {
		struct kv_cmd cmd = {.op = KV_OP_DEL,
				     .key = key,
				     .klen = klen,
				     .time_ns = fs_now()};
		ret = fs_propose(fs, &cmd, NULL);
		if (ret == 0)
			fs_inode_unlink(&fs->itab, dir, name);
	}
	fs_inode_put(&fs->itab, c);
	fs_inode_put(&fs->itab, dir);
	fs_reply_err(req, -ret);
}

/* Before a rename: the changes of name in dir (a file open here) go to
 * the store first, so the rename moves them. *pending: it exists here
 * only (then it is not committed: it is the target, about to go). */
static int settle(struct fs *fs, struct fs_inode *dir, const char *name,
		  bool commit, bool *pending, unsigned *kids)
{
	struct fs_inode *c = fs_inode_child(&fs->itab, dir, name);
	int ret = 0;

	*pending = false;
	*kids = 0;
	if (c == NULL)
		return 0;
	*pending = fs_inode_is_pending(&fs->itab, c);
	*kids = fs_inode_pending_kids(&fs->itab, c);
	if (commit && (ret = fs_commit(fs, c)) == 0)
		*pending = false;
	fs_inode_put(&fs->itab, c);
	return ret;
}

static int do_rename(struct fs *fs, struct fs_inode *dir, const char *name,
		     struct fs_inode *newdir, const char *newname,
		     unsigned flags)
{
	char key[KV_MAX_KEY + 1], key2[KV_MAX_KEY + 1];
	size_t klen, k2len;
	bool exchange = flags & RENAME_EXCHANGE, sp, dp;
	unsigned skids, dkids;
	int ret;

	if (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE))
		return -EINVAL; /* RENAME_WHITEOUT: no such thing here */
	if ((flags & RENAME_NOREPLACE) && exchange)
		return -EINVAL;
	if ((ret = fs_child_key(fs, dir, name, key, &klen)) != 0 ||
	    (ret = fs_child_key(fs, newdir, newname, key2, &k2len)) != 0)
		return ret;
	if ((ret = settle(fs, dir, name, true, &sp, &skids)) != 0 ||
	    (ret = settle(fs, newdir, newname, exchange, &dp, &dkids)) != 0)
		return ret;
	if (dp && (flags & RENAME_NOREPLACE))
		return -EEXIST;
	if (dkids > 0)
		return -ENOTEMPTY; /* files made in it here, not committed */
	struct kv_cmd cmd = {.op = KV_OP_RENAME,
			     .key = key,
			     .klen = klen,
			     .key2 = key2,
			     .k2len = k2len,
			     .time_ns = fs_now()};
	if (flags & RENAME_NOREPLACE)
		cmd.flags |= KV_RENAME_NOREPLACE;
	if (exchange)
		cmd.flags |= KV_RENAME_EXCHANGE;
	if ((ret = fs_propose(fs, &cmd, NULL)) == 0)
		fs_inode_move(&fs->itab, dir, name, newdir, newname, exchange);
	return ret;
}

void fs_op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		  fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	struct fs *fs = fs_of(req);
	struct fs_inode *dir = fs_inode_get(&fs->itab, parent);
	struct fs_inode *newdir = fs_inode_get(&fs->itab, newparent);
	int ret = -ENOENT;

	if (dir != NULL && newdir != NULL)
		ret = do_rename(fs, dir, name, newdir, newname, flags);
	fs_inode_put(&fs->itab, dir);
	fs_inode_put(&fs->itab, newdir);
	fs_reply_err(req, -ret);
}
