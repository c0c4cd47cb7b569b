/* fs_int.h - what the files of the fs module share, not for other modules.
 *
 * struct fs is the one context of a mount (FUSE private_data, reached with
 * fs_ctx()); the pure parts live beside it: path<->key mapping (path.c),
 * error mapping (errno.c), the per-open buffer (handle.c) and the
 * invalidation queue (inval.c). The FUSE operations are in ops_file.c and
 * ops_tree.c; mounting and the loop in fs.c. */
#ifndef KV_FS_INT_H
#define KV_FS_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "fs.h"

/* ---- path.c: FUSE paths and store keys ---- */

/* Normalize a subdir prefix: leading and trailing '/' stripped, "" or NULL
 * meaning the whole store. *out is malloc'd (caller frees). Returns 0,
 * -EINVAL / -ENAMETOOLONG if the rest breaks the key rules, -ENOMEM. */
int fs_prefix_new(const char *subdir, char **out, size_t *outlen);

/* Map FUSE path ("/", "/a/b") to its key under prefix[0..plen) into
 * out[0..outsz) (NUL-terminated); *klen gets the key's length (0 for the
 * root of an unprefixed mount). Returns 0 or -ENAMETOOLONG if it does not
 * fit; the key rules are not checked here (fs_key in ops). Pure. */
int fs_path_to_key(const char *prefix, size_t plen, const char *path, char *out,
		   size_t outsz, size_t *klen);

/* The reverse: the FUSE path of key[0..klen) into out. Returns 0, -ENOENT
 * if the key is not under the prefix, -ENAMETOOLONG if out is too small.
 * The prefix itself maps to "/". Pure. */
int fs_key_to_path(const char *prefix, size_t plen, const char *key,
		   size_t klen, char *out, size_t outsz);

/* The parent of a FUSE path into out ("/a/b" -> "/a", "/a" -> "/").
 * Returns 0, -ENOENT for "/" itself, -ENAMETOOLONG. Pure. */
int fs_path_parent(const char *path, char *out, size_t outsz);

/* ---- errno.c: the one place store/node errors become errno ---- */

/* A negative errno for FUSE from any project error: kv codes are mapped
 * (no quorum, not leader, failed store -> EIO; failed condition -> EEXIST;
 * shutting down -> ESHUTDOWN), negative errnos pass through, anything else
 * becomes -EIO; 0 and positive counts pass through. Pure. */
int fs_errno(int err);

/* ---- handle.c: the buffer of one open file ---- */

/* One open file. A read-only open holds a reference to the record it
 * opened (a snapshot: every read of this open sees one value). A writable
 * open holds a private copy that becomes one PUT when committed. Every
 * field is guarded by lock; FUSE may call into one handle from several
 * threads. */
struct fs_handle {
	pthread_mutex_t lock;
	bool writable;
	bool append;	    /* O_APPEND: writes go to the end */
	struct kv_rec *rec; /* read-only snapshot, or NULL */
	unsigned char *buf; /* writable copy (also reads when rec NULL) */
	size_t len, cap;
	size_t max;    /* largest value: KV_MAX_VALUE */
	uint32_t mode; /* permission bits committed with the value */
	bool dirty;    /* changed since the last commit */
	int poison;    /* a write overflowed: never commit (-EFBIG) */
	int failed;    /* the last commit's error, 0 if none */
};

/* A handle reading rec (takes ownership of the reference). Returns 0 or
 * -ENOMEM. */
int fs_handle_init_read(struct fs_handle *h, struct kv_rec *rec);
/* A writable (or, with writable false, readable) handle over a copy of
 * val[0..len) (borrowed). Returns 0, -ENOMEM, -EFBIG if len > max. */
int fs_handle_init_buf(struct fs_handle *h, const void *val, size_t len,
		       size_t max, bool writable, bool append, uint32_t mode);
void fs_handle_close(struct fs_handle *h);
/* Copy up to size bytes at off into out; the count (0 at the end). */
size_t fs_handle_read(struct fs_handle *h, void *out, size_t size, off_t off);
/* Write data at off (at the end with O_APPEND), growing with zeros.
 * Returns size, -EFBIG past max (and poisons the handle: the value would
 * be half-written), -ENOMEM, -EBADF if not writable. Caller holds lock. */
int fs_handle_write(struct fs_handle *h, const void *data, size_t size,
		    off_t off);
/* Resize to size (zeros when growing). 0, -EFBIG, -ENOMEM, -EBADF, -EINVAL.
 * Caller holds lock. */
int fs_handle_truncate(struct fs_handle *h, off_t size);
/* The bytes a read sees now. Caller holds lock. */
size_t fs_handle_size(const struct fs_handle *h);

/* ---- inval.c: invalidating the kernel's caches off the applying thread ----
 */

struct fs_inval_item;

struct fs_inval {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct fs_inval_item *head, *tail;
	bool stop;
	bool started;
	pthread_t thread;
	struct fuse *fuse;
	const char *prefix; /* borrowed from struct fs */
	size_t plen;
	uint64_t queued, done, dropped;
	/* The invalidation itself; fuse_invalidate_path in production, a
	 * recorder in the unit tests. */
	int (*invalidate)(void *ctx, const char *path);
	void *invalidate_ctx;
};

/* Prepare iv and start its thread. Returns 0 or -errno. */
int fs_inval_start(struct fs_inval *iv, const char *prefix, size_t plen,
		   int (*invalidate)(void *ctx, const char *path), void *ctx);
/* The node_watch callback: queue key's path (and its parent) and return
 * at once. Runs on the node thread: never blocks beyond a short
 * mutex, never calls FUSE. */
void fs_inval_push(void *ctx, const char *key, size_t klen);
/* Stop taking work and tell the thread to finish; fs_inval_join waits. */
void fs_inval_stop(struct fs_inval *iv);
void fs_inval_join(struct fs_inval *iv);

/* ---- the mount ---- */

struct fs {
	struct kv_node *node;
	struct fuse *fuse;
	char *prefix; /* normalized subdir, "" for the whole store */
	size_t plen;
	bool linearizable;
	double timeout;
	uid_t uid;
	gid_t gid;
	int64_t mount_ns; /* mtime of directories that have none (the root) */
	char *data_dir;
	char *mountpoint;
	bool mounted;
	bool watching;
	struct fs_inval inval;
};

/* The mount's context from inside a FUSE operation. */
struct fs *fs_ctx(void);
/* The key of a FUSE path, checked against the store's key rules (the root
 * of an unprefixed mount is "" and allowed only with allow_root).
 * out must hold KV_MAX_KEY + 1 bytes. 0, -EINVAL, -ENAMETOOLONG. */
int fs_key(const struct fs *fs, const char *path, char *out, size_t *klen,
	   bool allow_root);
/* Wait until reads may be served (ReadIndex unless -o local_reads). */
int fs_barrier(struct fs *fs);
/* Propose cmd; the command's outcome or the node's error, as -errno. */
int fs_propose(struct fs *fs, struct kv_cmd *cmd);
/* Fill st from a store stat, owned by the mounting user. */
void fs_fill_stat(const struct fs *fs, const struct kv_stat *ks,
		  struct stat *st);

/* The operations (ops_file.c, ops_tree.c). */
int fs_op_getattr(const char *path, struct stat *st, struct fuse_file_info *fi);
int fs_op_open(const char *path, struct fuse_file_info *fi);
int fs_op_create(const char *path, mode_t mode, struct fuse_file_info *fi);
int fs_op_read(const char *path, char *buf, size_t size, off_t off,
	       struct fuse_file_info *fi);
int fs_op_write(const char *path, const char *buf, size_t size, off_t off,
		struct fuse_file_info *fi);
int fs_op_flush(const char *path, struct fuse_file_info *fi);
int fs_op_fsync(const char *path, int datasync, struct fuse_file_info *fi);
int fs_op_release(const char *path, struct fuse_file_info *fi);
int fs_op_truncate(const char *path, off_t size, struct fuse_file_info *fi);
int fs_op_opendir(const char *path, struct fuse_file_info *fi);
int fs_op_readdir(const char *path, void *buf, fuse_fill_dir_t filler,
		  off_t off, struct fuse_file_info *fi,
		  enum fuse_readdir_flags flags);
int fs_op_releasedir(const char *path, struct fuse_file_info *fi);
int fs_op_mkdir(const char *path, mode_t mode);
int fs_op_rmdir(const char *path);
int fs_op_unlink(const char *path);
int fs_op_rename(const char *from, const char *to, unsigned int flags);
int fs_op_chmod(const char *path, mode_t mode, struct fuse_file_info *fi);
int fs_op_chown(const char *path, uid_t uid, gid_t gid,
		struct fuse_file_info *fi);
int fs_op_utimens(const char *path, const struct timespec tv[2],
		  struct fuse_file_info *fi);
int fs_op_statfs(const char *path, struct statvfs *st);

#endif
