/* ops_file.c - the FUSE operations on file contents: open, create, read,
 * write, truncate, flush, fsync, release.
 *
 * A file's content is one value: a writable open buffers its writes in a
 * struct fs_handle (handle.c) and commits the whole buffer as one PUT on
 * flush, fsync or release, only when it changed, so readers see the old
 * value or the new one. A failed commit comes back from close()/fsync()
 * and nothing is stored; release does not retry a commit that failed. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs_int.h"

static struct fs_handle *handle_of(const struct fuse_file_info *fi)
{
	return fi ? (struct fs_handle *)(uintptr_t)fi->fh : NULL;
}

/* Allocate a handle for fi and fill it from rec (borrowed) per the open
 * flags; rec NULL means an empty new file with mode. */
static int handle_open(struct fuse_file_info *fi, struct kv_rec *rec,
		       uint32_t mode)
{
	struct fs_handle *h = malloc(sizeof(*h));
	if (!h)
		return -ENOMEM;
	int acc = fi->flags & O_ACCMODE;
	int ret;
	if (acc == O_RDONLY && rec) {
		kv_rec_ref(rec);
		ret = fs_handle_init_read(h, rec);
		if (ret != 0)
			kv_rec_unref(rec);
	} else {
		bool trunc = (fi->flags & O_TRUNC) && acc != O_RDONLY;
		const void *val = rec && !trunc ? rec->val : NULL;
		size_t len = rec && !trunc ? rec->vlen : 0;
		ret = fs_handle_init_buf(h, val, len, KV_MAX_VALUE,
					 acc != O_RDONLY,
					 (fi->flags & O_APPEND) != 0,
					 rec ? rec->mode & 07777 : mode);
		/* O_TRUNC on an existing value: the empty value is a change
		 * to commit even if nothing is written. */
		if (ret == 0 && trunc && rec)
			h->dirty = true;
	}
	if (ret != 0) {
		free(h);
		return ret;
	}
	fi->fh = (uint64_t)(uintptr_t)h;
	/* Pages are dropped on every open (keep_cache off): a new open
	 * reads what this node applied; see docs/mount.md. */
	fi->keep_cache = 0;
	fi->direct_io = 0;
	return 0;
}

int fs_op_open(const char *path, struct fuse_file_info *fi)
{
	struct fs *fs = fs_ctx();
	char key[KV_MAX_KEY + 1];
	size_t klen;
	int ret = fs_key(fs, path, key, &klen, false);
	if (ret != 0)
		return ret;
	ret = fs_barrier(fs);
	if (ret != 0)
		return ret;
	struct kv_rec *rec = NULL;
	ret = store_get(node_store(fs->node), key, klen, &rec);
	if (ret != 0)
		return fs_errno(ret);
	ret = handle_open(fi, rec, 0);
	kv_rec_unref(rec);
	return ret;
}

int fs_op_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	struct fs *fs = fs_ctx();
	char key[KV_MAX_KEY + 1];
	size_t klen;
	int ret = fs_key(fs, path, key, &klen, false);
	if (ret != 0)
		return ret;
	struct kv_cmd cmd = {.op = KV_OP_PUT,
			     .key = key,
			     .klen = klen,
			     .mode = mode & 07777,
			     .if_absent = true};
	ret = fs_propose(fs, &cmd);
	if (ret == 0)
		return handle_open(fi, NULL, mode & 07777);
	if (ret != -EEXIST || (fi->flags & O_EXCL))
		return ret;
	/* It appeared since the kernel looked: open it as it is. */
	return fs_op_open(path, fi);
}

int fs_op_read(const char *path, char *buf, size_t size, off_t off,
	       struct fuse_file_info *fi)
{
	(void)path;
	struct fs_handle *h = handle_of(fi);
	if (!h)
		return -EBADF;
	pthread_mutex_lock(&h->lock);
	size_t n = fs_handle_read(h, buf, size, off);
	pthread_mutex_unlock(&h->lock);
	return (int)n;
}

int fs_op_write(const char *path, const char *buf, size_t size, off_t off,
		struct fuse_file_info *fi)
{
	(void)path;
	struct fs_handle *h = handle_of(fi);
	if (!h)
		return -EBADF;
	pthread_mutex_lock(&h->lock);
	int ret = fs_handle_write(h, buf, size, off);
	pthread_mutex_unlock(&h->lock);
	return ret;
}

/* Commit h's buffer as the value of path (the file's current path, as
 * libfuse tracks renames; NULL once it was removed: then the data goes
 * with it, as on a local disk). Caller holds h->lock. */
static int commit_locked(struct fs *fs, struct fs_handle *h, const char *path)
{
	if (h->poison)
		return h->poison;
	if (!h->dirty)
		return 0;
	if (!path) {
		h->dirty = false;
		return 0;
	}
	char key[KV_MAX_KEY + 1];
	size_t klen;
	int ret = fs_key(fs, path, key, &klen, false);
	if (ret != 0)
		return ret;
	struct kv_cmd cmd = {.op = KV_OP_PUT,
			     .key = key,
			     .klen = klen,
			     .val = h->buf,
			     .vlen = h->len,
			     .mode = h->mode};
	ret = fs_propose(fs, &cmd);
	if (ret == 0) {
		h->dirty = false;
		h->failed = 0;
	} else {
		h->failed = ret;
	}
	return ret;
}

int fs_op_flush(const char *path, struct fuse_file_info *fi)
{
	struct fs_handle *h = handle_of(fi);
	if (!h)
		return 0;
	pthread_mutex_lock(&h->lock);
	int ret = commit_locked(fs_ctx(), h, path);
	pthread_mutex_unlock(&h->lock);
	return ret;
}

int fs_op_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	(void)datasync;
	return fs_op_flush(path, fi);
}

int fs_op_release(const char *path, struct fuse_file_info *fi)
{
	struct fs_handle *h = handle_of(fi);
	if (!h)
		return 0;
	pthread_mutex_lock(&h->lock);
	/* Writes after the last flush (a shared mapping written back) are
	 * committed here; a commit that already failed is not retried: its
	 * close() reported the error and nothing may appear later. */
	if (h->dirty && !h->failed && !h->poison) {
		int ret = commit_locked(fs_ctx(), h, path);
		if (ret != 0)
			fprintf(stderr, "kvfs: %s: commit on release: %s\n",
				path, kv_strerror(ret));
	}
	pthread_mutex_unlock(&h->lock);
	fs_handle_close(h);
	free(h);
	fi->fh = 0;
	return 0;
}

int fs_op_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	struct fs_handle *h = handle_of(fi);
	if (h && h->writable) {
		pthread_mutex_lock(&h->lock);
		int ret = fs_handle_truncate(h, size);
		pthread_mutex_unlock(&h->lock);
		return ret;
	}
	if (size < 0)
		return -EINVAL;
	if ((uint64_t)size > KV_MAX_VALUE)
		return -EFBIG;
	struct fs *fs = fs_ctx();
	char key[KV_MAX_KEY + 1];
	size_t klen;
	int ret = fs_key(fs, path, key, &klen, false);
	if (ret != 0)
		return ret;
	/* truncate(2) by name: a read-modify-write of the whole value,
	 * conditional on the revision read so a concurrent write is not
	 * lost; retried a few times if one wins the race. */
	for (int attempt = 0; attempt < 8; attempt++) {
		ret = fs_barrier(fs);
		if (ret != 0)
			return ret;
		struct kv_rec *rec = NULL;
		ret = store_get(node_store(fs->node), key, klen, &rec);
		if (ret != 0)
			return fs_errno(ret);
		unsigned char *val = NULL;
		if (size > 0) {
			val = calloc(1, (size_t)size);
			if (!val) {
				kv_rec_unref(rec);
				return -ENOMEM;
			}
			memcpy(val, rec->val,
			       rec->vlen < (size_t)size ? rec->vlen
							: (size_t)size);
		}
		struct kv_cmd cmd = {.op = KV_OP_PUT,
				     .key = key,
				     .klen = klen,
				     .val = val,
				     .vlen = (size_t)size,
				     .mode = rec->mode & 07777,
				     .if_rev = rec->mod_rev};
		kv_rec_unref(rec);
		ret = fs_propose(fs, &cmd);
		free(val);
		if (ret != -EEXIST) /* KV_EPRECOND: someone else wrote */
			return ret;
	}
	return -EAGAIN;
}
