/* ops_lock.c - the FUSE lock operations: getlk, setlk (F_SETLK and
 * F_SETLKW), flock, and the releases a close implies.
 *
 * Every lock is an entry of the replicated lock table (lock.c proposes,
 * store/locks.c decides), so it holds across nodes. A request is turned
 * into the table's terms here: the file's key (the one its first lock
 * used, while it stays open), the kernel's lock owner, the range. Data
 * goes with the lock: an unlock commits what the file holds first, as a
 * close does, so the next holder on any node reads it; a grant drops what
 * this node cached (lock.c). A blocking request that meets a conflict is
 * parked (lock.c) and the FUSE thread returns. POSIX locks go at every
 * flush of their owner, flock locks at the release the kernel marks;
 * docs/mount.md has the table. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>

#include "fs_int.h"

static struct fs_handle *handle_of(const struct fuse_file_info *fi)
{
	return (struct fs_handle *)(uintptr_t)fi->fh;
}

/* The key r locks: the one this node's locks on the file use, or its
 * name now (then kept). -ENOLCK for a file with no name. */
static int lock_key(struct fs *fs, struct fs_handle *h, struct fs_lock_req *r)
{
	struct fs_file *f = h->in->file;
	int ret = 0;

	pthread_mutex_lock(&f->lock);
	if (f->lock_key != NULL) {
		memcpy(r->key, f->lock_key, f->lock_klen + 1);
		r->klen = f->lock_klen;
		pthread_mutex_unlock(&f->lock);
		return 0;
	}
	pthread_mutex_unlock(&f->lock);
	if (fs_key_of(fs, h->in, r->key, &r->klen) != 0)
		return -ENOLCK;
	pthread_mutex_lock(&f->lock);
	if (f->lock_key == NULL) {
		f->lock_key = malloc(r->klen + 1);
		if (f->lock_key == NULL)
			ret = -ENOLCK;
		else {
			memcpy(f->lock_key, r->key, r->klen + 1);
			f->lock_klen = r->klen;
		}
	} else {
		memcpy(r->key, f->lock_key, f->lock_klen + 1);
		r->klen = f->lock_klen;
	}
	pthread_mutex_unlock(&f->lock);
	return ret;
}

/* The range of a struct flock as libfuse hands it (l_start and l_len
 * from the kernel's normalized range; l_len 0: to the end). */
static void range_of(const struct flock *lk, struct fs_lock_req *r)
{
	uint64_t start = lk->l_start < 0 ? 0 : (uint64_t)lk->l_start;
	r->start = start > KV_LOCK_EOF ? KV_LOCK_EOF : start;
	if (lk->l_len <= 0 || (uint64_t)lk->l_len - 1 > KV_LOCK_EOF - r->start)
		r->end = KV_LOCK_EOF;
	else
		r->end = r->start + (uint64_t)lk->l_len - 1;
}

static enum kv_lock_type type_of(short t)
{
	return t == F_RDLCK   ? KV_LOCK_RD
	       : t == F_WRLCK ? KV_LOCK_WR
			      : KV_LOCK_UN;
}

/* Set or clear r through h, parking a blocking one that conflicts, and
 * answer req. An unlock commits the file's changes first. */
static void do_lock(struct fs *fs, fuse_req_t req, struct fs_handle *h,
		    struct fs_lock_req *r, bool sleep)
{
	int ret = lock_key(fs, h, r);

	if (ret == 0 && r->type == KV_LOCK_UN && !fs_lock_lost(fs, h))
		(void)fs_commit(fs, h->in); /* its error stays for close */
	if (ret == 0)
		ret = fs_lock_apply(fs, h, r);
	if (ret == -EAGAIN && sleep) {
		fs_lock_park(fs, req, h, r);
		return;
	}
	fs_reply_err(req, -ret);
}

void fs_op_setlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		 struct flock *lock, int sleep)
{
	struct fs_lock_req r = {
	    .kind = KV_LOCK_POSIX,
	    .type = type_of(lock->l_type),
	    .owner = fi->lock_owner,
	    .pid = lock->l_pid > 0 ? (uint32_t)lock->l_pid : 0,
	};

	(void)ino;
	range_of(lock, &r);
	do_lock(fs_of(req), req, handle_of(fi), &r, sleep != 0);
}

void fs_op_flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		 int op)
{
	int how = op & (LOCK_SH | LOCK_EX | LOCK_UN);
	struct fs_lock_req r = {
	    .kind = KV_LOCK_FLOCK,
	    .type = how == LOCK_SH   ? KV_LOCK_RD
		    : how == LOCK_EX ? KV_LOCK_WR
				     : KV_LOCK_UN,
	    .start = 0,
	    .end = KV_LOCK_EOF,
	    .owner = fi->lock_owner,
	    .pid = (uint32_t)fuse_req_ctx(req)->pid,
	};

	(void)ino;
	if (how != LOCK_SH && how != LOCK_EX && how != LOCK_UN) {
		fs_reply_err(req, EINVAL);
		return;
	}
	do_lock(fs_of(req), req, handle_of(fi), &r, !(op & LOCK_NB));
}

void fs_op_getlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		 struct flock *lock)
{
	struct fs *fs = fs_of(req);
	struct fs_lock_req r = {.kind = KV_LOCK_POSIX,
				.type = type_of(lock->l_type),
				.owner = fi->lock_owner};
	struct store_lock c;
	int ret;

	(void)ino;
	range_of(lock, &r);
	if ((ret = lock_key(fs, handle_of(fi), &r)) != 0 ||
	    (ret = fs_barrier(fs)) != 0) {
		fs_reply_err(req, -ret);
		return;
	}
	uint64_t sid = fs_lock_sid(fs);
	if (r.type == KV_LOCK_UN ||
	    !store_lock_test(node_store(fs->node), r.key, r.klen, r.kind, sid,
			     r.owner, r.type, r.start, r.end, &c)) {
		lock->l_type = F_UNLCK;
	} else {
		lock->l_type = c.type == KV_LOCK_WR ? F_WRLCK : F_RDLCK;
		lock->l_whence = SEEK_SET;
		lock->l_start = (off_t)c.start;
		lock->l_len =
		    c.end == KV_LOCK_EOF ? 0 : (off_t)(c.end - c.start + 1);
		/* a pid means something on its own node only */
		lock->l_pid = sid != 0 && c.sid == sid ? (pid_t)c.pid : 0;
	}
	fuse_reply_lock(req, lock);
}

void fs_lock_release_owner(struct fs *fs, struct fs_handle *h,
			   enum kv_lock_kind kind, uint64_t owner)
{
	struct fs_file *f = h->in->file;
	struct fs_lock_req r = {.kind = kind,
				.type = KV_LOCK_UN,
				.start = 0,
				.end = KV_LOCK_EOF,
				.owner = owner};

	pthread_mutex_lock(&f->lock);
	bool locked = f->lock_key != NULL;
	if (locked) {
		memcpy(r.key, f->lock_key, f->lock_klen + 1);
		r.klen = f->lock_klen;
	}
	pthread_mutex_unlock(&f->lock);
	if (!locked)
		return; /* never locked on this node since it was opened */
	int ret = fs_lock_apply(fs, h, &r);
	if (ret != 0) {
		/* No lock may outlive its close: the session goes instead
		 * (its end is proposed; failing that, the leader ends it). */
		kv_log(KV_LOG_WARN,
		       "releasing the locks of a closed file: %s; giving up "
		       "the lock session instead",
		       kv_strerror(ret));
		fs_lock_drop_session(fs, "a release at close failed");
	}
}
