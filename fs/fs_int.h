/* fs_int.h - what the files of the fs module share, not for other modules.
 *
 * struct fs is the one context of a mount (the session's userdata, reached
 * with fs_of(req)). The mount speaks libfuse's low-level API: the kernel
 * names inodes, and inode.c keeps the table from inode numbers to names
 * (and back), so an inode lives on after its name is gone, as an open
 * file must. An open regular file's state (its buffer, attributes and
 * what is not yet committed) is one struct fs_file per inode, shared by
 * every open of it on this node (file.c holds its pure parts, commit.c
 * turns it into commands). The pure helpers beside them: path<->key
 * mapping (path.c), error mapping (errno.c), the invalidation queue
 * (inval.c). The operations are in ops_*.c, below them what they share
 * (ctx.c, entry.c); mounting, the operations table and the loop in fs.c. */
#ifndef KV_FS_INT_H
#define KV_FS_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "fs.h"
#include "metrics.h"

/* ---- path.c: FUSE paths and store keys ---- */

/* Normalize a subdir prefix: leading and trailing '/' stripped, "" or NULL
 * meaning the whole store. *out is malloc'd (caller frees). Returns 0,
 * -EINVAL / -ENAMETOOLONG if the rest breaks the key rules, -ENOMEM. */
int fs_prefix_new(const char *subdir, char **out, size_t *outlen);

/* Map FUSE path ("/", "/a/b") to its key under prefix[0..plen) into
 * out[0..outsz) (NUL-terminated); *klen gets the key's length (0 for the
 * root of an unprefixed mount). Returns 0 or -ENAMETOOLONG if it does not
 * fit; the key rules are not checked here. Pure. */
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

/* ---- file.c: the state of one open regular file ---- */

/* What of an open file is not committed yet (fs_file.dirty). */
enum {
	FS_DIRTY_DATA = 1u << 0,
	FS_DIRTY_MODE = 1u << 1,
	FS_DIRTY_UID = 1u << 2,
	FS_DIRTY_GID = 1u << 3,
	FS_DIRTY_ATIME = 1u << 4,
	FS_DIRTY_XATTR = 1u << 5,
};

/* The attributes an open file shows (and commits). uid/gid may be
 * KV_NO_OWNER: a record without an owner. */
struct fs_attr {
	uint32_t mode; /* S_IFREG plus permission bits */
	uint32_t uid, gid;
	int64_t mtime_ns, ctime_ns, atime_ns;
};

/* An open regular file, shared by every open of its inode on this node:
 * what one writes the others read at once, as on a local filesystem. It
 * is a view of the committed record (rec) with local changes on top: the
 * content in buf once anything changed it (copied from rec on the first
 * change), the attributes in attr, and in dirty which of them are not
 * committed. pending: created here and never committed (the key does not
 * exist in the store yet). A file lives as long as its inode; with no
 * open handle (opens 0) it is idle, holds nothing and means nothing (the
 * store is the truth). Every field is guarded by lock. */
/* A file's record (its revision) and its local change count (gen). */
struct fs_cache_mark {
	uint64_t rev, gen;
};

struct fs_file {
	pthread_mutex_t lock;
	pthread_cond_t cond; /* a commit finished (committing fell) */
	struct kv_rec *rec;  /* the committed record, NULL while pending */
	unsigned char *buf;  /* the content when has_buf, else rec's */
	size_t len, cap;
	bool has_buf;
	size_t max; /* largest value: KV_MAX_VALUE */
	struct fs_attr attr;
	/* The extended attributes, when FS_DIRTY_XATTR (else rec's):
	 * names and values malloc'd, owned. */
	struct kv_xattr *xattrs;
	size_t nxattr;
	unsigned dirty;
	bool pending;
	bool committing;   /* a commit's proposal is out (lock dropped) */
	uint64_t gen;	   /* bumped by every change */
	int poison;	   /* a write overflowed: never commit (-EFBIG) */
	int failed;	   /* the last commit's error, 0 if none */
	uint64_t excl_rev; /* made by O_EXCL at this revision, unwritten */
	unsigned opens;	   /* open handles */
	unsigned writers;  /* of which writable */
	/* The key this node's locks on the file are taken on (lock.c): its
	 * name at the first lock since the first open, kept while it is
	 * open so that unlocks find the locks after a rename (malloc'd, or
	 * NULL: never locked). Dropped at the last close. */
	char *lock_key;
	size_t lock_klen;
	/* What the kernel's cached pages of the file hold: nothing but the
	 * value of the record at cache.rev, as the file was at cache.gen
	 * (rev 0: not known). Kept while the file is idle (the inode lives
	 * as long as the kernel's). fs_file_cache_open. */
	struct fs_cache_mark cache;
};

/* An idle file (no view). 0 or -ENOMEM. */
int fs_file_init(struct fs_file *f);
/* The first open: a view of rec (takes the reference), or a new pending
 * file (rec NULL) with attr. Caller holds lock; the file is idle. */
void fs_file_start(struct fs_file *f, struct kv_rec *rec,
		   const struct fs_attr *attr);
/* The last close: drop the view, back to idle. Caller holds lock. */
void fs_file_stop(struct fs_file *f);
/* Free what an idle or active file holds (its inode goes). */
void fs_file_close(struct fs_file *f);
/* A clean file (nothing dirty, not pending) takes rec (a newer committed
 * record; takes the reference) as its view; a dirty one keeps its own and
 * drops rec. Caller holds lock. */
void fs_file_refresh(struct fs_file *f, struct kv_rec *rec);
/* The content a read sees now, and its size. Caller holds lock. */
const unsigned char *fs_file_data(const struct fs_file *f);
size_t fs_file_size(const struct fs_file *f);
/* Copy up to size bytes at off into out; the count (0 at the end). */
size_t fs_file_read(const struct fs_file *f, void *out, size_t size, off_t off);
/* Write data at off (at the end when append), growing with zeros; now is
 * the mtime and ctime it sets. Returns size, -EFBIG past max (and poisons
 * the file: the value would be half-written), -ENOMEM, -EINVAL. Caller
 * holds lock. */
int fs_file_write(struct fs_file *f, const void *data, size_t size, off_t off,
		  bool append, int64_t now);
/* Resize to size (zeros when growing), setting mtime and ctime to now.
 * 0, -EFBIG, -ENOMEM, -EINVAL. Caller holds lock. */
int fs_file_truncate(struct fs_file *f, off_t size, int64_t now);
/* The extended attributes the file has now (local or rec's). */
const struct kv_xattr *fs_file_xattrs(const struct fs_file *f, size_t *n);
/* Set (val non-NULL) or remove name among the local attributes, with
 * setxattr's flags (KV_XATTR_CREATE/REPLACE) and limits: 0, -EEXIST,
 * -ENODATA, -E2BIG, -ENOSPC, -ENOMEM. Marks FS_DIRTY_XATTR. Caller holds
 * lock. */
int fs_file_setxattr(struct fs_file *f, const char *name, const void *val,
		     size_t vlen, unsigned flags, int64_t now);
/* True if anything is not committed (pending or dirty). */
bool fs_file_dirty(const struct fs_file *f);
/* An open of f, counted (writable or not): may the kernel keep its pages
 * of the file (keep_cache)? Yes if they hold the value of f's record, as
 * f is now. Else the open drops them, and *drop is what f was then, for
 * fs_file_cache_settle (rev 0: nothing to settle). A writable open
 * forgets what the pages held. Caller holds lock. */
bool fs_file_cache_open(struct fs_file *f, bool writable,
			struct fs_cache_mark *drop);
/* The first read through a descriptor whose open dropped the pages
 * (drop): the kernel has filled them from f alone since, so if f is still
 * what it was then, they hold its record's value. Clears *drop. Caller
 * holds lock. */
void fs_file_cache_settle(struct fs_file *f, struct fs_cache_mark *drop);

/* ---- inode.c: the kernel's inodes and their names ---- */

/* One inode the kernel knows (or we keep for it). A linked inode has a
 * parent and a name; an unlinked one (removed, renamed over, or replaced
 * by a key of another kind) keeps living while the kernel or an open
 * file holds it. Fields are guarded by the table's lock, except file's
 * content (its own lock). */
struct fs_inode {
	uint64_t ino;
	struct fs_inode *parent; /* NULL: the root, or unlinked */
	char *name;		 /* NULL: the root, or unlinked */
	size_t nlen;
	uint32_t kind;	  /* S_IFMT of what it is */
	uint64_t nlookup; /* the kernel's references */
	unsigned refs;	  /* ours: children, open handles, running ops */
	/* An open (or pending) regular file's state, or NULL. Set and
	 * cleared under the table's lock; its content under its own. The
	 * table's lock is never taken with a file's held the other way
	 * round: a file's lock first, then the table's. */
	struct fs_file *file;
	bool pending;	       /* made here, not committed (file->pending) */
	unsigned pending_kids; /* children pending */
	struct fs_inode *ino_next, *name_next; /* hash chains */
};

struct fs_itable {
	pthread_mutex_t lock;
	struct fs_inode root;
	struct fs_inode **by_ino, **by_name;
	size_t nbuckets, n;
	uint64_t next_ino;
};

int fs_itable_init(struct fs_itable *t, uint32_t root_kind);
void fs_itable_close(struct fs_itable *t);
/* The inode numbered ino, with a reference taken (fs_inode_put), or NULL
 * if the kernel named one we do not know (cannot happen: it holds it). */
struct fs_inode *fs_inode_get(struct fs_itable *t, uint64_t ino);
void fs_inode_put(struct fs_itable *t, struct fs_inode *in);
/* The inode linked as name in dir, with a reference, or NULL. */
struct fs_inode *fs_inode_child(struct fs_itable *t, struct fs_inode *dir,
				const char *name);
/* The inode for name in dir, of kind: the linked one if it has that
 * kind, else a new one (an old one of another kind is unlinked). Adds one
 * kernel lookup (the reply of lookup, create, readdirplus...) and takes a
 * reference for the caller. NULL without memory. */
struct fs_inode *fs_inode_link(struct fs_itable *t, struct fs_inode *dir,
			       const char *name, uint32_t kind);
/* The file of in, made (idle) on first use; NULL without memory. The
 * file lives as long as in. fs_inode_peek: the file if there is one. */
struct fs_file *fs_inode_file(struct fs_itable *t, struct fs_inode *in);
struct fs_file *fs_inode_peek(struct fs_itable *t, struct fs_inode *in);
/* in was made here and not committed (pending), or no longer is: its
 * parent counts its pending children (rmdir, readdir need them). */
void fs_inode_set_pending(struct fs_itable *t, struct fs_inode *in,
			  bool pending);
/* How many of dir's children are pending; whether in is. */
unsigned fs_inode_pending_kids(struct fs_itable *t, struct fs_inode *dir);
bool fs_inode_is_pending(struct fs_itable *t, struct fs_inode *in);
/* The names of dir's pending children (malloc'd array of malloc'd
 * strings; free with fs_names_free). 0 or -ENOMEM. */
int fs_inode_pending_names(struct fs_itable *t, struct fs_inode *dir,
			   char ***names, size_t *n);
void fs_names_free(char **names, size_t n);
/* The kernel forgot n lookups of ino. */
void fs_inode_forget(struct fs_itable *t, uint64_t ino, uint64_t n);
/* name in dir is gone (unlink, rmdir, renamed over): its inode, if any,
 * loses its name, so its file (if open) commits nowhere. */
void fs_inode_unlink(struct fs_itable *t, struct fs_inode *dir,
		     const char *name);
/* The same for in itself, whatever its name. */
void fs_inode_detach(struct fs_itable *t, struct fs_inode *in);
/* rename(2) in the table: the inode of name in dir now is newname in
 * newdir (the one there before is unlinked), or with exchange the two
 * swap. */
void fs_inode_move(struct fs_itable *t, struct fs_inode *dir, const char *name,
		   struct fs_inode *newdir, const char *newname, bool exchange);
/* The key of in (under the mount's prefix) into out (KV_MAX_KEY + 1
 * bytes): 0, -ENOENT once unlinked, -ENAMETOOLONG. The key of its child
 * name (checked against the key rules: -EINVAL, -ENAMETOOLONG) with
 * fs_inode_child_key. */
int fs_inode_key(struct fs_itable *t, const char *prefix, size_t plen,
		 struct fs_inode *in, char *out, size_t *klen);
int fs_inode_child_key(struct fs_itable *t, const char *prefix, size_t plen,
		       struct fs_inode *dir, const char *name, char *out,
		       size_t *klen);
/* The inode at FUSE path "/a/b" if the table has it (with a reference),
 * and its parent's number and its last name (for invalidation). */
struct fs_inode *fs_inode_at(struct fs_itable *t, const char *path,
			     uint64_t *parent_ino, char *name, size_t cap);
/* Call fn on every inode that has a file, with the table unlocked and a
 * reference held on each (for the stop: committing what is open). */
void fs_inode_each_file(struct fs_itable *t,
			void (*fn)(void *ctx, struct fs_inode *in), void *ctx);

/* ---- inval.c: invalidating the kernel's caches off the applying thread ----
 */

struct fs_inval {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	char *buf; /* the queued paths, each NUL-terminated */
	size_t len, cap;
	bool stop;
	bool started;
	pthread_t thread;
	const char *prefix; /* borrowed from struct fs */
	size_t plen;
	uint64_t queued, done, dropped;
	/* The invalidation itself: the mount's in production, a recorder in
	 * the unit tests. */
	int (*invalidate)(void *ctx, const char *path);
	void *invalidate_ctx;
};

/* Prepare iv and start its thread. Returns 0 or -errno. */
int fs_inval_start(struct fs_inval *iv, const char *prefix, size_t plen,
		   int (*invalidate)(void *ctx, const char *path), void *ctx);
/* The node_watch callback: queue key's path (and its parent) and return
 * at once. Runs on the node thread: never blocks beyond a short
 * mutex, never calls FUSE. The thread is not woken yet (unless much is
 * queued): fs_inval_flush, after each chunk of changes, wakes it. */
void fs_inval_push(void *ctx, const char *key, size_t klen);
void fs_inval_flush(void *ctx);
/* Stop taking work and tell the thread to finish; fs_inval_join waits. */
void fs_inval_stop(struct fs_inval *iv);
void fs_inval_join(struct fs_inval *iv);

/* ---- lock.c, lock_session.c: locks across nodes (lock.h) ---- */
#include "lock.h"

/* ---- the mount ---- */

struct fs {
	struct kv_node *node;
	struct fuse_session *se;
	char *prefix; /* normalized subdir, "" for the whole store */
	size_t plen;
	bool linearizable;
	double timeout;
	uid_t uid; /* the owner of records that have none */
	gid_t gid;
	int64_t mount_ns; /* times of directories that have none */
	char *data_dir;
	char *mountpoint;
	unsigned long mnt_id; /* the mount's id in mountinfo, 0 unknown */
	bool mounted;
	bool watching;
	struct fs_itable itab;
	struct fs_inval inval;
	/* Every open handle, for the stop: the kernel releases none of
	 * those still open when the mount goes. */
	pthread_mutex_t handles_lock;
	struct fs_handle *handles;
	struct fs_locks locks;
	struct fs_dot *dot; /* .kvfs/events (dotkvfs.c) */
	/* Requests waiting for a read barrier on no worker (ctx.c,
	 * fs_barrier_later): the stop waits for them to be answered before
	 * the session and the inodes go. */
	pthread_mutex_t laters_mu;
	pthread_cond_t laters_cv;
	unsigned laters;
};

/* An open file handle (fuse_file_info.fh): which inode, and how it was
 * opened. The file's state is the inode's (in->file). */
struct fs_handle {
	struct fs *fs;
	struct fs_handle *prev, *next; /* in fs->handles */
	struct fs_inode *in;	       /* a reference held */
	bool writable;
	bool append;  /* O_APPEND: writes go to the end of the buffer */
	bool commits; /* its close() commits: writable, or it made the file */
	uint64_t gen; /* the file's gen once opened (O_TRUNC included) */
	/* Locks taken through it (fs->locks.mu): under which session, the
	 * last owner, whether it may still hold one, and whether it held
	 * one when the session was lost. */
	uint64_t lk_sid, lk_owner;
	bool lk_held, lk_lost;
	/* Its open made the kernel drop the file's pages when the file was
	 * this (rev 0: it did not); its first read, which comes after that
	 * drop, may then say what the pages hold (fs_file_cache_settle). */
	struct fs_cache_mark drop;
};

/* Take h off fs's list and free it. */
void fs_handle_forget(struct fs *fs, struct fs_handle *h);

/* ---- copies.c: descriptors a closing process still holds ---- */

/* Find the mount's id (fs->mnt_id, 0 if unknown) once it is mounted. */
int fs_copies_init(struct fs *fs);
/* Does process pid hold a writable descriptor of ino on this mount? false
 * when that cannot be told. */
bool fs_copy_held(const struct fs *fs, pid_t pid, fuse_ino_t ino);

/* ---- ctx.c: what every operation uses ---- */

/* The mount of a request. */
struct fs *fs_of(fuse_req_t req);
/* The caller's clock, for times (kv_wall_ns). */
int64_t fs_now(void);
/* Wait until reads may be served (ReadIndex unless -o local_reads). */
int fs_barrier(struct fs *fs);
/* May reads be served now, with no round to wait for (the leader of a
 * cluster of one, or -o local_reads)? Then the caller goes on itself. */
bool fs_barrier_now(struct fs *fs);
/* The rest of a request after a read barrier, without its worker: the
 * worker goes back to the kernel's queue instead of sleeping until the
 * round is answered. l->then(l, 0 or -errno) is called once: later, on
 * the thread that settles the round (the node thread or the peer
 * listener, so it must not wait for either: it takes the mount's locks
 * briefly, reads the store and replies), or at once with an error. */
struct fs_later;
typedef void (*fs_then_fn)(struct fs_later *l, int ret);
struct fs_later {
	struct fs *fs;
	fs_then_fn then;
};
void fs_barrier_later(struct fs *fs, struct fs_later *l, fs_then_fn then);
/* Wait until no request waits for a barrier (the stop). */
void fs_laters_drain(struct fs *fs);
/* Propose cmd and wait: the command's outcome or the node's error, as
 * -errno; *rev (may be NULL) the entry's index. */
int fs_propose(struct fs *fs, struct kv_cmd *cmd, uint64_t *rev);

/* xattr_lease.c: user.kvfs.ttl and user.kvfs.lease (a file's lease). Is
 * name one of them; its value into out[0..cap) (its length, or -ENODATA:
 * no lease); setting user.kvfs.ttl to N puts the file on a new lease of
 * N seconds (0 or -errno). */
bool fs_lease_attr_name(const char *name);
int fs_lease_attr(struct fs *fs, struct fs_inode *in, const char *name,
		  char *out, size_t cap);
int fs_lease_set(struct fs *fs, struct fs_inode *in, const char *name,
		 const char *value, size_t size);
/* The key of inode ino's child name, checked: 0, -EINVAL, -ENAMETOOLONG.
 * out holds KV_MAX_KEY + 1 bytes. */
int fs_child_key(struct fs *fs, struct fs_inode *dir, const char *name,
		 char *out, size_t *klen);
/* ---- entry.c: making new entries ---- */

/* The owner of a new entry in dir made by req's caller: its uid and
 * gid, or dir's gid when dir is set-group-ID (a new directory, *mode
 * S_IFDIR..., then gets S_ISGID too). */
void fs_new_owner(struct fs *fs, fuse_req_t req, struct fs_inode *dir,
		  uint32_t *uid, uint32_t *gid, uint32_t *mode);
/* The command that makes a new entry key[0..klen) of op (put or mkdir)
 * with mode (the kind for a put, and the permission bits), owned by
 * uid:gid, made now (its mtime, ctime and atime). */
void fs_new_entry_cmd(struct kv_cmd *cmd, enum kv_op op, char *key, size_t klen,
		      uint32_t mode, uint32_t uid, uint32_t gid);
/* Make name in dir (parent) as op with mode and value val[0..vlen) (a
 * put is create-only), owned by req's caller, and reply with its entry
 * or the error. */
void fs_make_entry(fuse_req_t req, fuse_ino_t parent, const char *name,
		   enum kv_op op, uint32_t mode, const char *val, size_t vlen);
/* Reply to req with the entry of name in dir (key[0..klen)), just made:
 * read without a barrier (the change was applied here). */
void fs_reply_made(fuse_req_t req, struct fs *fs, struct fs_inode *dir,
		   const char *name, const char *key, size_t klen);
/* The key of in: 0, -ESTALE once unlinked. */
int fs_key_of(struct fs *fs, struct fs_inode *in, char *out, size_t *klen);
/* struct stat for ino from a store stat; owners KV_NO_OWNER become the
 * mount's user, directories without times the mount's time. */
void fs_fill_stat(const struct fs *fs, uint64_t ino, const struct kv_stat *ks,
		  struct stat *st);
/* The same from an open file's view. Caller holds f->lock. */
void fs_fill_file_stat(const struct fs *fs, uint64_t ino,
		       const struct fs_file *f, struct stat *st);
/* The attributes of in as the kernel should see them: an open file's
 * with uncommitted changes from its view, else the store's (after a read
 * barrier unless barrier is false). 0, -ENOENT, -ESTALE, -EIO. */
int fs_stat_inode(struct fs *fs, struct fs_inode *in, bool barrier,
		  struct stat *st);
/* fs_stat_inode in two steps, for a barrier in between: the open file's
 * view (1, st filled: no store read) or the key to read (0, key and
 * *klen set; key holds KV_MAX_KEY + 1 bytes), or -errno; then, after the
 * barrier, the store's attributes. */
int fs_stat_inode_view(struct fs *fs, struct fs_inode *in, char *key,
		       size_t *klen, struct stat *st);
int fs_stat_inode_store(struct fs *fs, struct fs_inode *in, const char *key,
			size_t klen, struct stat *st);
/* Fill e for inode in (its attributes st) with the cache timeouts. */
void fs_fill_entry(const struct fs *fs, const struct fs_inode *in,
		   const struct stat *st, struct fuse_entry_param *e);

/* ---- commit.c: an open file into the store ---- */

/* Commit f (the file of in): one put of its content and of the
 * attributes it changed, if anything is not committed. Waits for a
 * commit already running on it. 0, or the error (poisoned: -EFBIG; also
 * kept in f->failed). Call without f->lock. */
int fs_commit(struct fs *fs, struct fs_inode *in);
/* Commit every open file that has changes, all at once, each within the
 * write timeout; report on stderr what could not be. For the stop, once
 * the loop has ended and before the node stops. */
void fs_commit_all(struct fs *fs);

/* What the mount counts (fs_metrics.c, /metrics): each operation, timed
 * by the operations table's wrappers, and each error reply by errno. */
enum fs_op {
	FS_OP_LOOKUP,
	FS_OP_FORGET,
	FS_OP_GETATTR,
	FS_OP_SETATTR,
	FS_OP_READLINK,
	FS_OP_MKNOD,
	FS_OP_MKDIR,
	FS_OP_UNLINK,
	FS_OP_RMDIR,
	FS_OP_SYMLINK,
	FS_OP_RENAME,
	FS_OP_LINK,
	FS_OP_OPEN,
	FS_OP_READ,
	FS_OP_WRITE,
	FS_OP_FLUSH,
	FS_OP_RELEASE,
	FS_OP_FSYNC,
	FS_OP_OPENDIR,
	FS_OP_READDIR,
	FS_OP_RELEASEDIR,
	FS_OP_STATFS,
	FS_OP_SETXATTR,
	FS_OP_GETXATTR,
	FS_OP_LISTXATTR,
	FS_OP_REMOVEXATTR,
	FS_OP_CREATE,
	FS_OP_LOCK,
	FS_OP_N
};
void fs_metrics_register(void);
/* Count op, started at t0_ns (kv_mono_ns), as answered now. */
void fs_metric_op(enum fs_op op, uint64_t t0_ns);
/* fuse_reply_err, counting a non-zero err by its errno. Every error reply
 * of the mount goes through it. */
int fs_reply_err(fuse_req_t req, int err);

/* The operations (ops_*.c), in the low-level API's signatures; those
 * that may reply after a barrier on another thread take the time they
 * started (t0_ns, kv_mono_ns) and count themselves when they reply. */
void fs_op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name,
		  uint64_t t0_ns);
void fs_op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup);
void fs_op_forget_multi(fuse_req_t req, size_t count,
			struct fuse_forget_data *forgets);
void fs_op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		   uint64_t t0_ns);
void fs_op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		   int to_set, struct fuse_file_info *fi);
void fs_op_statfs(fuse_req_t req, fuse_ino_t ino);
void fs_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		uint64_t t0_ns);
void fs_op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		  mode_t mode, struct fuse_file_info *fi);
void fs_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		struct fuse_file_info *fi);
void fs_op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
		 off_t off, struct fuse_file_info *fi);
void fs_op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		 struct fuse_file_info *fi);
void fs_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		   struct fuse_file_info *fi);
void fs_op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi);
void fs_op_releasedir(fuse_req_t req, fuse_ino_t ino,
		      struct fuse_file_info *fi);
void fs_op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		 mode_t mode);
void fs_op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		 mode_t mode, dev_t rdev);
void fs_op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		   const char *name);
void fs_op_readlink(fuse_req_t req, fuse_ino_t ino);
void fs_op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		const char *newname);
void fs_op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name);
void fs_op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);
void fs_op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		  fuse_ino_t newparent, const char *newname,
		  unsigned int flags);
void fs_op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		    const char *value, size_t size, int flags);
void fs_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		    size_t size);
void fs_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void fs_op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);
void fs_op_getlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		 struct flock *lock);
void fs_op_setlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		 struct flock *lock, int sleep);
void fs_op_flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		 int op);
/* The locks of owner in kind taken on h's file on this node, released
 * (a close: POSIX locks at every flush, flock at the release that says
 * so). Nothing is proposed when the table shows none. */
void fs_lock_release_owner(struct fs *fs, struct fs_handle *h,
			   enum kv_lock_kind kind, uint64_t owner);

#endif
