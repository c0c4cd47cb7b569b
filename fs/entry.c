/* entry.c - making a new entry: its owner (the caller, or the directory's
 * group under set-group-ID), the command that creates it, proposing it,
 * and the kernel's reply with its attributes.
 *
 * mknod, mkdir, symlink and create all make entries the same way; this
 * is the one place, below the operations that use it (ops_name.c,
 * ops_dir.c, ops_file.c). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fs_int.h"

/* The owner of a new entry in dir: the caller, with dir's group when dir
 * is set-group-ID (then a new directory is set-group-ID too). */
void fs_new_owner(struct fs *fs, fuse_req_t req, struct fs_inode *dir,
		  uint32_t *uid, uint32_t *gid, uint32_t *mode)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	char key[KV_MAX_KEY + 1];
	size_t klen;
	struct kv_stat ks;

	*uid = (uint32_t)ctx->uid;
	*gid = (uint32_t)ctx->gid;
	if (fs_key_of(fs, dir, key, &klen) == 0 &&
	    store_stat(node_store(fs->node), key, klen, &ks) == 0 &&
	    (ks.mode & S_ISGID)) {
		*gid = ks.gid != KV_NO_OWNER ? ks.gid : (uint32_t)fs->gid;
		if (S_ISDIR(*mode))
			*mode |= S_ISGID;
	}
}

void fs_new_entry_cmd(struct kv_cmd *cmd, enum kv_op op, char *key, size_t klen,
		      uint32_t mode, uint32_t uid, uint32_t gid)
{
	int64_t now = fs_now();

	*cmd = (struct kv_cmd){.op = op,
			       .key = key,
			       .klen = klen,
			       .mode = op == KV_OP_MKDIR ? mode & 07777 : mode,
			       .set_mode = true,
			       .uid = uid,
			       .gid = gid,
			       .set_uid = true,
			       .set_gid = true,
			       .mtime_ns = now,
			       .atime_ns = now,
			       .set_atime = true,
			       .time_ns = now,
			       .if_absent = op == KV_OP_PUT};
}

void fs_make_entry(fuse_req_t req, fuse_ino_t parent, const char *name,
		   enum kv_op op, uint32_t mode, const char *val, size_t vlen)
{
	struct fs *fs = fs_of(req);
	struct fs_inode *dir = fs_inode_get(&fs->itab, parent);
	char key[KV_MAX_KEY + 1];
	size_t klen;
	uint32_t uid, gid;
	int ret;

	if (dir == NULL) {
		fs_reply_err(req, ENOENT);
		return;
	}
	ret = fs_child_key(fs, dir, name, key, &klen);
	if (ret == 0) {
		struct fs_inode *c = fs_inode_child(&fs->itab, dir, name);
		if (c != NULL && fs_inode_is_pending(&fs->itab, c))
			ret = -EEXIST; /* made here, not yet committed */
		fs_inode_put(&fs->itab, c);
	}
	if (ret == 0) {
		struct kv_cmd cmd;
		fs_new_owner(fs, req, dir, &uid, &gid, &mode);
		fs_new_entry_cmd(&cmd, op, key, klen, mode, uid, gid);
		cmd.val = (unsigned char *)val;
		cmd.vlen = vlen;
		ret = fs_propose(fs, &cmd, NULL);
	}
	if (ret == 0)
		fs_reply_made(req, fs, dir, name, key, klen);
	else
		fs_reply_err(req, -ret);
	fs_inode_put(&fs->itab, dir);
}

/* Reply with the entry of name in dir, kind, just made (read locally:
 * the change was applied here). */
void fs_reply_made(fuse_req_t req, struct fs *fs, struct fs_inode *dir,
		   const char *name, const char *key, size_t klen)
{
	struct kv_stat ks;
	struct fuse_entry_param e;
	struct stat st;
	int ret = fs_errno(store_stat(node_store(fs->node), key, klen, &ks));

	if (ret != 0) { /* changed again since: the kernel looks it up */
		fs_reply_err(req, -ret);
		return;
	}
	struct fs_inode *in = fs_inode_link(
	    &fs->itab, dir, name, ks.is_dir ? S_IFDIR : ks.mode & S_IFMT);
	if (in == NULL) {
		fs_reply_err(req, ENOMEM);
		return;
	}
	fs_fill_stat(fs, in->ino, &ks, &st);
	fs_fill_entry(fs, in, &st, &e);
	if (fuse_reply_entry(req, &e) != 0)
		fs_inode_forget(&fs->itab, in->ino, 1);
	fs_inode_put(&fs->itab, in);
}
