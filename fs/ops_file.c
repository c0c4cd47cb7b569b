/* ops_file.c - the FUSE operations on file contents: open, create, read,
 * write, flush, fsync, release.
 *
 * Every open of a file on this node shares its inode's struct fs_file
 * (file.c): writes go to one buffer, reads see it, and a commit
 * (commit.c) sends it as one put when a writer's descriptor is closed
 * (flush), on fsync and on the last release. A file made without O_EXCL
 * is not proposed at create: it exists here (pending) until its first
 * commit, so create + write + close is one entry. O_EXCL must be exact
 * across nodes, so it proposes a create-only put at once (then the close
 * is a second entry); if that file then overflows and is never written,
 * its last release removes it again. A read-only open waits for its read
 * barrier without its worker (fs_barrier_later), as a lookup does. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs_int.h"

static struct fs_handle *handle_of(const struct fuse_file_info *fi)
{
	return (struct fs_handle *)(uintptr_t)fi->fh;
}

/* Count an open of f (caller holds f->lock) and hand the kernel a handle
 * holding in's reference. 0 or -ENOMEM (nothing counted then). */
static int add_handle(struct fs *fs, struct fs_file *f, struct fs_inode *in,
		      struct fuse_file_info *fi, bool made)
{
	struct fs_handle *h = malloc(sizeof(*h));
	int acc = fi->flags & O_ACCMODE;

	if (h == NULL)
		return -ENOMEM;
	h->fs = fs;
	h->in = in;
	h->writable = acc != O_RDONLY;
	h->append = (fi->flags & O_APPEND) != 0;
	h->commits = h->writable || made;
	h->gen = f->gen;
	h->lk_sid = h->lk_owner = 0;
	h->lk_held = h->lk_lost = false;
	pthread_mutex_lock(&fs->handles_lock);
	h->prev = NULL;
	h->next = fs->handles;
	if (h->next)
		h->next->prev = h;
	fs->handles = h;
	pthread_mutex_unlock(&fs->handles_lock);
	f->opens++;
	if (h->writable)
		f->writers++;
	fi->fh = (uint64_t)(uintptr_t)h;
	fi->direct_io = 0;
	/* close-to-open: see docs/mount.md, "Cache and invalidation" */
	fi->keep_cache = fs_file_cache_open(f, h->writable, &h->drop);
	return 0;
}

/* An open's file, f of in, joined or started with the store's record
 * (rec, taken; ret the outcome of reading it, after the barrier), unless
 * the file held changes already (fresh: it is the truth here, rec NULL);
 * active: it was open then. in's reference passes to the handle. */
static int open_join(struct fs *fs, struct fs_inode *in, struct fs_file *f,
		     struct kv_rec *rec, int ret, bool active,
		     struct fuse_file_info *fi)
{
	if (ret == -ESTALE && active)
		ret = 0; /* no name: the open file is all there is */
	if (ret != 0)
		return ret;
	pthread_mutex_lock(&f->lock);
	if (f->opens == 0 && rec == NULL) {
		ret = -ENOENT; /* it was all there was, and it closed */
	} else {
		if (f->opens == 0)
			fs_file_start(f, rec, NULL);
		else if (rec != NULL)
			fs_file_refresh(f, rec);
		rec = NULL;
		ret = add_handle(fs, f, in, fi, false);
		if (ret == 0 && (fi->flags & O_TRUNC) &&
		    (fi->flags & O_ACCMODE) != O_RDONLY) {
			ret = fs_file_truncate(f, 0, fs_now());
			handle_of(fi)->gen = f->gen;
		}
	}
	pthread_mutex_unlock(&f->lock);
	kv_rec_unref(rec);
	return ret;
}

/* The first step of an open of in's file: 1 if the file holds changes
 * (no store read), else 0 with its key, or -errno. *active: it is open. */
static int open_start(struct fs *fs, struct fs_inode *in, struct fs_file **fp,
		      bool *active, char *key, size_t *klen)
{
	struct fs_file *f = fs_inode_file(&fs->itab, in);

	if (f == NULL)
		return -ENOMEM;
	*fp = f;
	pthread_mutex_lock(&f->lock);
	*active = f->opens > 0;
	bool fresh = *active && fs_file_dirty(f);
	pthread_mutex_unlock(&f->lock);
	if (fresh)
		return 1;
	return fs_key_of(fs, in, key, klen);
}

/* The store's record of key, after the barrier (ret its outcome). */
static int open_read(struct fs *fs, const char *key, size_t klen, int ret,
		     struct kv_rec **rec)
{
	if (ret == 0)
		ret = fs_errno(store_get(node_store(fs->node), key, klen, rec));
	return ret;
}

/* Join or start in's file for an open with fi's flags: the store's
 * record after a read barrier, unless the file already holds changes
 * (then it is the truth here). in's reference passes to the handle. */
static int open_file(struct fs *fs, struct fs_inode *in,
		     struct fuse_file_info *fi)
{
	struct fs_file *f = NULL;
	struct kv_rec *rec = NULL;
	char key[KV_MAX_KEY + 1];
	size_t klen;
	bool active = false;
	int ret = open_start(fs, in, &f, &active, key, &klen);

	if (ret == 0)
		ret = open_read(fs, key, klen, fs_barrier(fs), &rec);
	else if (ret == 1)
		ret = 0;
	if (f == NULL)
		return ret;
	return open_join(fs, in, f, rec, ret, active, fi);
}

static void release(fuse_req_t req, struct fuse_file_info *fi, bool may_commit);

/* Reply to an open (ret its outcome). later: on the thread that settled
 * its barrier, whose release of a handle the caller never got must not
 * commit (a read-only handle holds nothing to commit: another handle's
 * release does that). */
static void open_reply(fuse_req_t req, struct fs *fs, struct fs_inode *in,
		       struct fuse_file_info *fi, int ret, bool later,
		       uint64_t t0)
{
	if (ret != 0) {
		fs_inode_put(&fs->itab, in);
		fs_reply_err(req, -ret);
	} else if (fuse_reply_open(req, fi) != 0) { /* interrupted */
		release(NULL, fi, !later);
	}
	fs_metric_op(FS_OP_OPEN, t0);
}

/* An open waiting for its barrier (fs_barrier_later). */
struct open_later {
	struct fs_later l;
	fuse_req_t req;
	struct fs_inode *in;
	struct fs_file *f;
	struct fuse_file_info fi; /* the request's, copied */
	bool active;
	uint64_t t0;
	size_t klen;
	char key[]; /* klen + 1 */
};

static void open_then(struct fs_later *l, int ret)
{
	struct open_later *w = (struct open_later *)l;
	struct kv_rec *rec = NULL;

	ret = open_read(l->fs, w->key, w->klen, ret, &rec);
	ret = open_join(l->fs, w->in, w->f, rec, ret, w->active, &w->fi);
	open_reply(w->req, l->fs, w->in, &w->fi, ret, true, w->t0);
	free(w);
}

/* Start w's wait for its barrier (an open of fi in in, f, with key):
 * false if there is no memory for it. */
static bool open_later(fuse_req_t req, struct fs *fs, struct fs_inode *in,
		       struct fs_file *f, bool active,
		       struct fuse_file_info *fi, const char *key, size_t klen,
		       uint64_t t0)
{
	struct open_later *w = malloc(sizeof(*w) + klen + 1);

	if (w == NULL)
		return false;
	w->req = req;
	w->in = in;
	w->f = f;
	w->fi = *fi;
	w->active = active;
	w->t0 = t0;
	w->klen = klen;
	memcpy(w->key, key, klen + 1);
	fs_barrier_later(fs, &w->l, open_then);
	return true;
}

void fs_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		uint64_t t0)
{
	struct fs *fs = fs_of(req);
	struct fs_inode *in = fs_inode_get(&fs->itab, ino);
	struct fs_file *f = NULL;
	struct kv_rec *rec = NULL;
	char key[KV_MAX_KEY + 1];
	size_t klen;
	bool active = false;
	int ret;

	if (in == NULL) {
		fs_reply_err(req, ENOENT);
		fs_metric_op(FS_OP_OPEN, t0);
		return;
	}
	ret = open_start(fs, in, &f, &active, key, &klen);
	if (ret == 0) {
		/* A read-only open waits for its barrier without its
		 * worker. Not a writable one: if its reply failed (the
		 * caller was interrupted), its release could commit, and
		 * wait for the node, on the thread that settles barriers. */
		bool later = (fi->flags & O_ACCMODE) == O_RDONLY &&
			     !(fi->flags & O_TRUNC);
		if (!later)
			ret = open_read(fs, key, klen, fs_barrier(fs), &rec);
		else if (fs_barrier_now(fs))
			ret = open_read(fs, key, klen, 0, &rec);
		else if (open_later(req, fs, in, f, active, fi, key, klen, t0))
			return;
		else
			ret = -ENOMEM;
	} else if (ret == 1) {
		ret = 0; /* the file's changes are the truth here */
	}
	if (f != NULL)
		ret = open_join(fs, in, f, rec, ret, active, fi);
	open_reply(req, fs, in, fi, ret, false, t0);
}

/* O_EXCL: a create-only put now, exact across nodes. *rev its entry. */
static int create_exclusive(struct fs *fs, char *key, size_t klen,
			    uint32_t mode, uint32_t uid, uint32_t gid,
			    uint64_t *rev)
{
	struct kv_cmd cmd;

	fs_new_entry_cmd(&cmd, KV_OP_PUT, key, klen, mode, uid, gid);
	cmd.val = (unsigned char *)"";
	return fs_propose(fs, &cmd, rev);
}

static int do_create(struct fs *fs, fuse_req_t req, struct fs_inode *dir,
		     const char *name, mode_t mode, struct fuse_file_info *fi,
		     struct fuse_entry_param *e)
{
	char key[KV_MAX_KEY + 1];
	size_t klen;
	uint32_t uid, gid, m = S_IFREG | (mode & 07777);
	uint64_t rev = 0;
	struct kv_stat ks;
	bool excl = fi->flags & O_EXCL;
	int ret = fs_child_key(fs, dir, name, key, &klen);

	if (ret != 0)
		return ret;
	fs_new_owner(fs, req, dir, &uid, &gid, &m);
	struct fs_inode *old = fs_inode_child(&fs->itab, dir, name);
	bool here = old != NULL && fs_inode_is_pending(&fs->itab, old);
	fs_inode_put(&fs->itab, old);
	bool exists =
	    here || store_stat(node_store(fs->node), key, klen, &ks) == 0;
	if (exists && !excl) {
		/* It appeared since the kernel looked: open it as it is. */
		if (!here && ks.is_dir)
			return -EISDIR;
		if (!here && !S_ISREG(ks.mode))
			return -EEXIST;
	} else if (excl && (ret = here ? -EEXIST
				       : create_exclusive(fs, key, klen, m, uid,
							  gid, &rev)) != 0) {
		return ret;
	}
	struct fs_inode *in = fs_inode_link(&fs->itab, dir, name, S_IFREG);
	struct fs_file *f = in ? fs_inode_file(&fs->itab, in) : NULL;
	if (f == NULL) {
		fs_inode_put(&fs->itab, in);
		return -ENOMEM;
	}
	if (exists || excl) {
		/* An existing file (or the one O_EXCL just made): open it.
		 * The kernel counts the lookup of this reply. */
		ret = open_file(fs, in, fi);
		if (ret == 0 && excl) {
			pthread_mutex_lock(&f->lock);
			if (f->opens == 1 && !fs_file_dirty(f))
				f->excl_rev = rev;
			pthread_mutex_unlock(&f->lock);
		}
	} else {
		int64_t now = fs_now();
		struct fs_attr a = {m, uid, gid, now, now, now};
		pthread_mutex_lock(&f->lock);
		if (f->opens == 0) {
			fs_file_start(f, NULL, &a);
			fs_inode_set_pending(&fs->itab, in, true);
		}
		ret = add_handle(fs, f, in, fi, true);
		pthread_mutex_unlock(&f->lock);
	}
	if (ret != 0) {
		fs_inode_forget(&fs->itab, in->ino, 1);
		fs_inode_put(&fs->itab, in);
		return ret;
	}
	struct stat st;
	pthread_mutex_lock(&f->lock);
	fs_fill_file_stat(fs, in->ino, f, &st);
	pthread_mutex_unlock(&f->lock);
	fs_fill_entry(fs, in, &st, e);
	return 0; /* in's reference went to the handle */
}

void fs_op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		  mode_t mode, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct fs_inode *dir = fs_inode_get(&fs->itab, parent);
	struct fuse_entry_param e;
	int ret;

	if (dir == NULL) {
		fs_reply_err(req, ENOENT);
		return;
	}
	ret = do_create(fs, req, dir, name, mode, fi, &e);
	fs_inode_put(&fs->itab, dir);
	if (ret != 0)
		fs_reply_err(req, -ret);
	else if (fuse_reply_create(req, &e, fi) != 0) {
		/* interrupted: never opened, and the lookup not counted */
		fs_inode_forget(&fs->itab, e.ino, 1);
		fs_op_release(NULL, e.ino, fi);
	}
}

void fs_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		struct fuse_file_info *fi)
{
	struct fs_handle *h = handle_of(fi);
	struct fs_file *f = h->in->file;

	(void)ino;
	pthread_mutex_lock(&f->lock);
	if (h->drop.rev != 0)
		fs_file_cache_settle(f, &h->drop);
	const unsigned char *data = fs_file_data(f);
	size_t len = fs_file_size(f), n = 0;
	if (off >= 0 && (uint64_t)off < len) {
		n = len - (size_t)off;
		if (n > size)
			n = size;
	}
	/* Straight from the view; the lock keeps it in place meanwhile. */
	fuse_reply_buf(req, n ? (const char *)data + off : NULL, n);
	pthread_mutex_unlock(&f->lock);
}

void fs_op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
		 off_t off, struct fuse_file_info *fi)
{
	struct fs_handle *h = handle_of(fi);
	struct fs_file *f = h->in->file;
	int ret;

	(void)ino;
	if (!h->writable) {
		fs_reply_err(req, EBADF);
		return;
	}
	if (fs_lock_lost(h->fs, h)) {
		fs_reply_err(req, EIO); /* written under a lost lock */
		return;
	}
	pthread_mutex_lock(&f->lock);
	ret = fs_file_write(f, buf, size, off, h->append, fs_now());
	pthread_mutex_unlock(&f->lock);
	if (ret < 0)
		fs_reply_err(req, -ret);
	else
		fuse_reply_write(req, (size_t)ret);
}

static void remove_excl(struct fs *fs, struct fs_inode *in, uint64_t rev);

/* A close that changed nothing since its open (the open's own create or
 * O_TRUNC aside) while the closing process still holds a writable copy of
 * the file: the shell's "> f" (open, dup2 onto fd 1, close the original,
 * then write). Committing here would cost an entry for an empty file
 * that the copy's close replaces at once; that close commits instead
 * (and the last release, if nothing closes it). Not on a file locked
 * through this node since it was opened: POSIX locks go at this close,
 * and the next holder must read what the open did. */
static bool left_to_copy(fuse_req_t req, struct fs_handle *h)
{
	struct fs_file *f = h->in->file;
	pthread_mutex_lock(&f->lock);
	bool idle = fs_file_dirty(f) && !f->poison && f->gen == h->gen &&
		    f->lock_key == NULL;
	pthread_mutex_unlock(&f->lock);
	return idle && fs_copy_held(h->fs, fuse_req_ctx(req)->pid, h->in->ino);
}

/* Every close() of a descriptor: commits if it could write (or made the
 * file), then lets go of the POSIX locks its owner holds on the file
 * (after the commit: the next holder reads what was written). A
 * descriptor whose lock was lost commits nothing: EIO. A file O_EXCL made
 * whose value overflowed can never be committed: what the create left is
 * removed here, before close() returns (release comes after it,
 * asynchronously, and a stat right after the close must not find the
 * file). */
void fs_op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_handle *h = handle_of(fi);
	struct fs *fs = fs_of(req);
	int ret = fs_lock_lost(fs, h)			? -EIO
		  : !h->commits || left_to_copy(req, h) ? 0
							: fs_commit(fs, h->in);
	struct fs_file *f = h->in->file;
	uint64_t excl = 0;

	(void)ino;
	pthread_mutex_lock(&f->lock);
	if (f->poison && f->excl_rev) {
		excl = f->excl_rev;
		f->excl_rev = 0;
	}
	pthread_mutex_unlock(&f->lock);
	if (excl)
		remove_excl(fs, h->in, excl);
	fs_lock_release_owner(fs, h, KV_LOCK_POSIX, fi->lock_owner);
	fs_reply_err(req, -ret);
}

void fs_op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		 struct fuse_file_info *fi)
{
	struct fs_handle *h = handle_of(fi);
	struct fs *fs = fs_of(req);

	(void)ino;
	(void)datasync;
	fs_reply_err(req, fs_lock_lost(fs, h) ? EIO : -fs_commit(fs, h->in));
}

/* The last close of a file O_EXCL made that then overflowed and never
 * stored a value: remove what the create left. */
static void remove_excl(struct fs *fs, struct fs_inode *in, uint64_t rev)
{
	char key[KV_MAX_KEY + 1];
	size_t klen;

	if (fs_key_of(fs, in, key, &klen) != 0)
		return;
	struct kv_cmd cmd = {.op = KV_OP_DEL,
			     .key = key,
			     .klen = klen,
			     .if_rev = rev,
			     .time_ns = fs_now()};
	if (fs_propose(fs, &cmd, NULL) == 0)
		fs_inode_detach(&fs->itab, in);
}

void fs_handle_forget(struct fs *fs, struct fs_handle *h)
{
	pthread_mutex_lock(&fs->handles_lock);
	if (h->prev)
		h->prev->next = h->next;
	else
		fs->handles = h->next;
	if (h->next)
		h->next->prev = h->prev;
	pthread_mutex_unlock(&fs->handles_lock);
	free(h);
}

/* Release fi's handle, and answer req unless it is NULL (an open whose
 * reply failed: nothing to answer). may_commit: it may commit what the
 * file holds, and wait for it; not on a thread that settles barriers. */
static void release(fuse_req_t req, struct fuse_file_info *fi, bool may_commit)
{
	struct fs_handle *h = handle_of(fi);
	struct fs_inode *in = h->in;
	struct fs_file *f = in->file;
	struct fs *fs = h->fs;

	pthread_mutex_lock(&f->lock);
	bool last = f->opens == 1;
	bool retry = may_commit && fs_file_dirty(f) && !f->failed &&
		     !f->poison && (h->commits || last) && !fs_lock_lost(fs, h);
	pthread_mutex_unlock(&f->lock);
	/* Writes after the last flush (a shared mapping written back) are
	 * committed here; a commit that already failed is not retried: its
	 * close() reported the error and nothing may appear later. */
	if (retry) {
		int ret = fs_commit(fs, in);
		if (ret != 0)
			kv_log(KV_LOG_ERROR, "commit on release: %s",
			       kv_strerror(ret));
	}
	/* The last close of an open file description lets go of its flock
	 * lock (the kernel says which). A process's POSIX locks went at its
	 * flush; what is left under the owner that last locked through this
	 * description is an open file description lock (F_OFD_SETLK, owned
	 * by the description, of which the kernel tells nothing). */
	if (fi->flock_release)
		fs_lock_release_owner(fs, h, KV_LOCK_FLOCK, fi->lock_owner);
	uint64_t ofd_owner;
	if (fs_lock_owner_of(fs, h, &ofd_owner))
		fs_lock_release_owner(fs, h, KV_LOCK_POSIX, ofd_owner);
	pthread_mutex_lock(&f->lock);
	f->opens--;
	if (h->writable)
		f->writers--;
	uint64_t excl = 0;
	bool dropped = false;
	if (f->opens == 0) {
		if (f->poison && f->excl_rev)
			excl = f->excl_rev;
		dropped = f->pending; /* never committed: it never was */
		fs_file_stop(f);
	}
	pthread_mutex_unlock(&f->lock);
	if (excl)
		remove_excl(fs, in, excl);
	if (dropped)
		fs_inode_detach(&fs->itab, in);
	fs_inode_put(&fs->itab, in);
	fs_handle_forget(fs, h);
	if (req)
		fs_reply_err(req, 0);
}

void fs_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	release(req, fi, true);
}
