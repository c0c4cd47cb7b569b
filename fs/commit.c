/* commit.c - an open file's changes into the store: one put per commit.
 *
 * A commit (flush at every close(), fsync, the last release, the stop)
 * sends the file's whole content with the attributes changed since the
 * last commit (a file made here: all of them) as one put, so a new file
 * written and closed, or a file opened with O_TRUNC, written and closed,
 * is one replicated entry. The proposal is encoded while the file's lock
 * is held and awaited without it (node_propose_async), so reads, writes
 * and stats of the file go on meanwhile; a write that lands during a
 * commit leaves the file dirty for the next one (gen). One commit of a
 * file runs at a time. A failed commit comes back to its caller (close()
 * or fsync() returns the errno) and stays in f->failed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs_int.h"

/* One proposal being awaited. */
struct commit {
	struct fs_inode *in;
	struct fs_file *f;
	uint64_t gen; /* f->gen when it was encoded */
	bool started; /* a proposal is out */
	bool pending; /* the file was made here */
	int ret;      /* the outcome, or an error before the proposal */
	char key[KV_MAX_KEY + 1];
	size_t klen;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool done;
	struct kv_result res;
	uint64_t if_sid; /* the lock session the put is fenced by, or 0 */
};

static void on_done(void *ctx, int ret, const struct kv_result *res)
{
	struct commit *c = ctx;

	pthread_mutex_lock(&c->mu);
	c->ret = ret;
	if (res != NULL)
		c->res = *res;
	c->done = true;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

/* The put that commits f. Caller holds f->lock; the command borrows f's
 * buffers and key. */
static void build_put(const struct fs_file *f, struct commit *c,
		      struct kv_cmd *cmd)
{
	static unsigned char empty[1]; /* never a NULL value */
	const unsigned char *data = fs_file_data(f);
	bool all = f->pending;

	*cmd = (struct kv_cmd){.op = KV_OP_PUT,
			       .key = c->key,
			       .klen = c->klen,
			       .val = (unsigned char *)(data ? data : empty),
			       .vlen = fs_file_size(f),
			       .mtime_ns = f->attr.mtime_ns,
			       .time_ns = f->attr.ctime_ns};
	if (all || (f->dirty & FS_DIRTY_MODE)) {
		cmd->set_mode = true;
		cmd->mode = S_IFREG | (f->attr.mode & 07777);
	}
	if ((all || (f->dirty & FS_DIRTY_UID)) && f->attr.uid != KV_NO_OWNER) {
		cmd->set_uid = true;
		cmd->uid = f->attr.uid;
	}
	if ((all || (f->dirty & FS_DIRTY_GID)) && f->attr.gid != KV_NO_OWNER) {
		cmd->set_gid = true;
		cmd->gid = f->attr.gid;
	}
	if (all || (f->dirty & FS_DIRTY_ATIME)) {
		cmd->set_atime = true;
		cmd->atime_ns = f->attr.atime_ns;
	}
	if (f->dirty & FS_DIRTY_XATTR) {
		cmd->set_xattrs = true;
		cmd->xattrs = f->xattrs;
		cmd->nxattr = f->nxattr;
	}
}

/* The session a commit of f is fenced by: this node's, when it holds a
 * lock on the file (the put then applies only while the session lives:
 * a commit that reaches the log after the cluster ended the session
 * cannot overwrite the next holder's), else 0. Caller holds f->lock. */
static uint64_t fenced_by(struct fs *fs, const struct fs_file *f)
{
	uint64_t sid = f->lock_key != NULL ? fs_lock_sid(fs) : 0;
	struct store *st = node_store(fs->node);

	if (sid == 0 ||
	    store_locks_held(st, f->lock_key, f->lock_klen, KV_LOCK_FLOCK, sid,
			     UINT64_MAX) +
		    store_locks_held(st, f->lock_key, f->lock_klen,
				     KV_LOCK_POSIX, sid, UINT64_MAX) ==
		0)
		return 0;
	return sid;
}

/* Start committing in's file, if it has anything to commit: c->started
 * when a proposal is out, else c->ret is the outcome already. */
static void commit_start(struct fs *fs, struct fs_inode *in, struct commit *c)
{
	struct fs_file *f = fs_inode_peek(&fs->itab, in);
	struct kv_cmd cmd;

	memset(c, 0, sizeof(*c));
	c->in = in;
	c->f = f;
	if (f == NULL)
		return;
	pthread_mutex_lock(&f->lock);
	while (f->committing)
		pthread_cond_wait(&f->cond, &f->lock);
	if (f->opens == 0 || !fs_file_dirty(f))
		goto out;
	if (f->poison) {
		c->ret = f->poison;
		goto out;
	}
	if (fs_key_of(fs, in, c->key, &c->klen) != 0) {
		/* No name left: the changes go with it, as on a local disk
		 * (nothing is stored under a removed name). */
		f->dirty = 0;
		f->pending = false;
		goto out;
	}
	build_put(f, c, &cmd);
	cmd.if_sid = c->if_sid = fenced_by(fs, f);
	c->gen = f->gen;
	c->pending = f->pending;
	pthread_mutex_init(&c->mu, NULL);
	kv_cond_init(&c->cv);
	c->ret = node_propose_async(fs->node, &cmd, on_done, c);
	if (c->ret == 0) {
		c->started = true;
		f->committing = true;
	} else {
		c->ret = fs_errno(c->ret);
		f->failed = c->ret;
		pthread_mutex_destroy(&c->mu);
		pthread_cond_destroy(&c->cv);
	}
out:
	pthread_mutex_unlock(&f->lock);
}

/* After a commit: the file is clean unless it changed meanwhile, and its
 * view is the record now in the store. Caller holds f->lock. */
static void committed(struct fs *fs, struct fs_file *f, struct commit *c)
{
	struct kv_rec *rec = NULL;

	f->pending = false;
	f->failed = 0;
	f->excl_rev = 0;
	if (f->gen != c->gen)
		return; /* written meanwhile: still dirty */
	f->dirty = 0;
	if (store_get(node_store(fs->node), c->key, c->klen, &rec) != 0)
		return;
	if (rec->mod_rev == c->res.rev && f->writers > 0) {
		/* Ours: the buffer holds its value; keep it for the next
		 * write rather than copy it back from the record. */
		kv_rec_unref(f->rec);
		f->rec = rec;
		return;
	}
	fs_file_refresh(f, rec);
}

/* Wait for the proposal commit_start sent, and settle the file. */
static int commit_finish(struct fs *fs, struct commit *c)
{
	struct fs_file *f = c->f;

	if (!c->started)
		return c->ret;
	pthread_mutex_lock(&c->mu);
	while (!c->done)
		pthread_cond_wait(&c->cv, &c->mu);
	pthread_mutex_unlock(&c->mu);
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cv);
	int ret = fs_errno(c->ret != 0 ? c->ret : c->res.err);
	if (ret == -ENOLCK && c->if_sid != 0) {
		/* fenced: the cluster ended the session it was made under */
		fs_lock_session_ended(fs, c->if_sid);
		ret = -EIO;
	}
	pthread_mutex_lock(&f->lock);
	f->committing = false;
	pthread_cond_broadcast(&f->cond);
	if (ret == 0)
		committed(fs, f, c);
	else
		f->failed = ret;
	pthread_mutex_unlock(&f->lock);
	if (ret == 0 && c->pending)
		fs_inode_set_pending(&fs->itab, c->in, false);
	return ret;
}

int fs_commit(struct fs *fs, struct fs_inode *in)
{
	struct commit *c = malloc(sizeof(*c));
	int ret;

	if (c == NULL)
		return -ENOMEM;
	commit_start(fs, in, c);
	ret = commit_finish(fs, c);
	free(c);
	return ret;
}

/* ---- the stop ---- */

struct commit_all {
	struct fs *fs;
	struct commit **v;
	size_t n, cap;
	size_t lost; /* commits that could not even start for want of memory */
};

static void start_one(void *ctx, struct fs_inode *in)
{
	struct commit_all *a = ctx;
	struct commit *c;

	if (a->n == a->cap) {
		size_t nc = a->cap ? a->cap * 2 : 16;
		struct commit **v = realloc(a->v, nc * sizeof(*v));
		if (v == NULL) {
			a->lost++;
			return;
		}
		a->v = v;
		a->cap = nc;
	}
	if ((c = malloc(sizeof(*c))) == NULL) {
		a->lost++;
		return;
	}
	fs_inode_get(&a->fs->itab, in->ino); /* held until finished */
	commit_start(a->fs, in, c);
	a->v[a->n++] = c;
}

void fs_commit_all(struct fs *fs)
{
	struct commit_all a = {.fs = fs};
	size_t ok = 0, failed = 0;

	/* Every proposal first, then the waits: the whole stop takes one
	 * write timeout at most, however many files are open. */
	fs_inode_each_file(&fs->itab, start_one, &a);
	for (size_t i = 0; i < a.n; i++) {
		struct commit *c = a.v[i];
		bool had = c->started || c->ret != 0;
		int ret = commit_finish(fs, c);
		if (had && ret == 0)
			ok++;
		if (ret != 0) {
			failed++;
			kv_log(KV_LOG_ERROR,
			       "stopping: %s: the changes of this open "
			       "file were NOT committed: %s",
			       c->klen ? c->key : "(a file)", kv_strerror(ret));
		}
		fs_inode_put(&fs->itab, c->in);
		free(c);
	}
	free(a.v);
	if (a.lost > 0)
		kv_log(KV_LOG_ERROR,
		       "stopping: out of memory: %zu open files could "
		       "not be committed",
		       a.lost);
	if (ok > 0 || failed > 0)
		kv_log(KV_LOG_INFO,
		       "stopping: committed %zu open files, %zu "
		       "failed",
		       ok, failed);
}
