/* lock.c - the mount's lock session, its fence, the leader's expiry of
 * sessions, and the blocking lock requests parked until a lock frees.
 *
 * Locks live in the replicated lock table (store/locks.c), held by a
 * session this node opens through the log. A session lives as long as it
 * is heard of: every lock command and a renew each FS_LOCK_RENEW_MS while
 * the node holds or waits for a lock. The leader ends, through the log
 * and on condition that it was not heard of since, every session it has
 * not heard of for FS_LOCK_TTL_MS on its own clock (counted from when it
 * saw the session's last command applied, or from when it became leader),
 * so the locks of a node that died or was cut off go within a bound. The
 * node itself stops believing in its session FS_LOCK_MARGIN_MS earlier,
 * counted from when it sent its last answered command: before any leader
 * can have ended it. The descriptors that held locks then lose them:
 * their writes and commits fail with EIO (docs/mount.md). A blocking
 * request is parked here, not on a FUSE thread, and the lock thread
 * (kvfs-locks) tries it again when the table changes. Operations: ops_lock.c;
 * the session: lock_session.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs_int.h"

struct fs_lock_wait {
	struct fs_lock_wait *next;
	fuse_req_t req;
	struct fs_handle *h;
	struct fs_lock_req r;
	bool ready;	  /* its interrupt callback is registered */
	bool interrupted; /* the kernel asked to give up */
};

/* After a grant: the open file shows what the store has now (the last
 * holder's commit was applied before our lock), and the kernel forgets
 * the pages and attributes it cached. */
static void after_grant(struct fs *fs, struct fs_handle *h)
{
	struct fs_file *f = h->in->file;
	char key[KV_MAX_KEY + 1];
	struct kv_rec *rec = NULL;
	size_t klen;

	if (fs_key_of(fs, h->in, key, &klen) == 0 &&
	    store_get(node_store(fs->node), key, klen, &rec) == 0) {
		pthread_mutex_lock(&f->lock);
		if (f->opens > 0)
			fs_file_refresh(f, rec); /* takes the reference */
		else
			kv_rec_unref(rec);
		pthread_mutex_unlock(&f->lock);
	}
	fuse_lowlevel_notify_inval_inode(fs->se, h->in->ino, 0, 0);
}

static size_t held_on(struct fs *fs, const struct fs_lock_req *r, uint64_t sid)
{
	struct store *st = node_store(fs->node);
	return store_locks_held(st, r->key, r->klen, KV_LOCK_FLOCK, sid,
				r->owner) +
	       store_locks_held(st, r->key, r->klen, KV_LOCK_POSIX, sid,
				r->owner);
}

int fs_lock_apply(struct fs *fs, struct fs_handle *h,
		  const struct fs_lock_req *r)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		uint64_t sid;
		int ret = fs_lock_session(fs, r->type != KV_LOCK_UN, &sid);
		if (ret == -ENOENT)
			return 0; /* an unlock with no session: no locks */
		if (ret != 0)
			return ret;
		if (r->type == KV_LOCK_UN &&
		    store_locks_held(node_store(fs->node), r->key, r->klen,
				     r->kind, sid, r->owner) == 0)
			return 0; /* nothing to release: no entry */
		struct kv_cmd cmd = {
		    .op = KV_OP_LOCK,
		    .key = (char *)r->key,
		    .klen = r->klen,
		    .sid = sid,
		    .lock_owner = r->owner,
		    .lock_pid = r->pid,
		    .lock_type = r->type,
		    .lock_kind = r->kind,
		    .lock_start = r->start,
		    .lock_end = r->end,
		};
		struct kv_result res = {0};
		uint64_t sent = kv_mono_ms();
		ret = node_propose(fs->node, &cmd, &res);
		if (ret != 0)
			return fs_errno(ret);
		if (res.err == -ENOENT) {
			/* the table ended our session: lost, then a new one */
			fs_lock_session_lost(fs, sid, "the cluster ended it");
			continue;
		}
		fs_lock_heard(fs, sid, sent);
		if (res.err != 0)
			return fs_errno(res.err);
		bool held = held_on(fs, r, sid) > 0;
		pthread_mutex_lock(&fs->locks.mu);
		if (held || h->lk_sid == sid) {
			h->lk_sid = sid;
			h->lk_owner = r->owner;
			h->lk_held = held;
		}
		pthread_mutex_unlock(&fs->locks.mu);
		if (r->type != KV_LOCK_UN)
			after_grant(fs, h);
		return 0;
	}
	return -ENOLCK;
}

/* ---- parked requests ---- */

/* libfuse's interrupt callback (data is the mount): find the request
 * among the parked ones; one already answered is not there. */
static void lock_interrupted(fuse_req_t req, void *data)
{
	struct fs *fs = data;

	pthread_mutex_lock(&fs->locks.mu);
	for (struct fs_lock_wait *w = fs->locks.waiters; w; w = w->next)
		if (w->req == req) {
			w->interrupted = true;
			pthread_cond_broadcast(&fs->locks.cond);
		}
	pthread_mutex_unlock(&fs->locks.mu);
}

void fs_lock_park(struct fs *fs, fuse_req_t req, struct fs_handle *h,
		  const struct fs_lock_req *r)
{
	struct fs_lock_wait *w = calloc(1, sizeof(*w));

	if (w == NULL) {
		fs_reply_err(req, ENOLCK);
		return;
	}
	w->req = req;
	w->h = h;
	w->r = *r;
	pthread_mutex_lock(&fs->locks.mu);
	if (fs->locks.stop) {
		pthread_mutex_unlock(&fs->locks.mu);
		free(w);
		fs_reply_err(req, ENOLCK);
		return;
	}
	*fs->locks.tail = w;
	fs->locks.tail = &w->next;
	fs->locks.nwaiters++;
	pthread_mutex_unlock(&fs->locks.mu);
	/* Registered with w listed (an interrupt that came first calls it
	 * at once, and it must find w) and before w is ready (the thread
	 * may answer only a request whose callback is in place). */
	fuse_req_interrupt_func(req, lock_interrupted, fs);
	pthread_mutex_lock(&fs->locks.mu);
	w->ready = true;
	pthread_cond_broadcast(&fs->locks.cond);
	pthread_mutex_unlock(&fs->locks.mu);
}

/* Take w (at *pp) off the list; fs->locks.mu held. */
static void unlink_waiter(struct fs *fs, struct fs_lock_wait **pp)
{
	struct fs_lock_wait *w = *pp;
	*pp = w->next;
	if (fs->locks.tail == &w->next)
		fs->locks.tail = pp;
	fs->locks.nwaiters--;
}

/* Try every parked request whose lock the table would grant now; answer
 * those granted, failed or interrupted. Only this thread removes
 * waiters, and new ones are appended, so pp stays valid while mu is
 * dropped. */
static void serve_waiters(struct fs *fs)
{
	struct store *st = node_store(fs->node);

	pthread_mutex_lock(&fs->locks.mu);
	struct fs_lock_wait **pp = &fs->locks.waiters;
	while (*pp != NULL) {
		struct fs_lock_wait *w = *pp;
		int ret;
		if (!w->ready) {
			pp = &w->next;
			continue;
		}
		if (w->interrupted) {
			ret = -EINTR;
		} else {
			uint64_t sid = fs->locks.sid;
			pthread_mutex_unlock(&fs->locks.mu);
			ret =
			    store_lock_test(st, w->r.key, w->r.klen, w->r.kind,
					    sid, w->r.owner, w->r.type,
					    w->r.start, w->r.end, NULL)
				? -EAGAIN
				: fs_lock_apply(fs, w->h, &w->r);
			pthread_mutex_lock(&fs->locks.mu);
		}
		if (ret == -EAGAIN) {
			pp = &w->next;
			continue;
		}
		unlink_waiter(fs, pp);
		pthread_mutex_unlock(&fs->locks.mu);
		fs_reply_err(w->req, -ret);
		free(w);
		pthread_mutex_lock(&fs->locks.mu);
	}
	pthread_mutex_unlock(&fs->locks.mu);
}

/* The waiters' thread (kvfs-lockwait): wakes when something was applied,
 * an interrupt came or a tick passed, and tries the parked requests. Its
 * proposals may wait; the session's upkeep has a thread of its own so
 * that they never delay a renew. */
static void *wait_main(void *arg)
{
	struct fs *fs = arg;
	uint64_t seen = 0;

	pthread_setname_np(pthread_self(), "kvfs-lockwait");
	pthread_mutex_lock(&fs->locks.mu);
	while (!fs->locks.stop) {
		struct timespec dl = kv_deadline(FS_LOCK_TICK_MS);
		bool interrupted = false;
		for (struct fs_lock_wait *w = fs->locks.waiters; w; w = w->next)
			interrupted |= w->interrupted && w->ready;
		if (!interrupted && fs->locks.gen == seen)
			pthread_cond_timedwait(&fs->locks.cond, &fs->locks.mu,
					       &dl);
		seen = fs->locks.gen;
		if (fs->locks.stop)
			break;
		pthread_mutex_unlock(&fs->locks.mu);
		serve_waiters(fs);
		pthread_mutex_lock(&fs->locks.mu);
	}
	pthread_mutex_unlock(&fs->locks.mu);
	return NULL;
}

int fs_locks_start(struct fs *fs)
{
	struct fs_locks *l = &fs->locks;
	int ret;

	l->tail = &l->waiters;
	if (pthread_mutex_init(&l->mu, NULL) != 0 ||
	    pthread_mutex_init(&l->open_mu, NULL) != 0 ||
	    kv_cond_init(&l->cond) != 0)
		return -ENOMEM;
	ret = pthread_create(&l->thread, NULL, fs_lock_session_main, fs);
	if (ret != 0)
		return -ret;
	ret = pthread_create(&l->wait_thread, NULL, wait_main, fs);
	if (ret != 0) {
		pthread_mutex_lock(&l->mu);
		l->stop = true;
		pthread_cond_broadcast(&l->cond);
		pthread_mutex_unlock(&l->mu);
		pthread_join(l->thread, NULL);
		return -ret;
	}
	l->started = true;
	return 0;
}

void fs_locks_stop(struct fs *fs)
{
	struct fs_locks *l = &fs->locks;

	if (!l->started)
		return;
	pthread_mutex_lock(&l->mu);
	bool was = l->stop;
	l->stop = true;
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->mu);
	if (was)
		return;
	pthread_join(l->thread, NULL);
	pthread_join(l->wait_thread, NULL);
	while (l->waiters != NULL) {
		struct fs_lock_wait *w = l->waiters;
		l->waiters = w->next;
		fs_reply_err(w->req, ENOLCK);
		free(w);
	}
	l->tail = &l->waiters;
	l->nwaiters = 0;
	if (l->sid != 0) {
		struct kv_cmd cmd = {.op = KV_OP_SESS_END, .sid = l->sid};
		struct kv_result res;
		int ret = node_propose(fs->node, &cmd, &res);
		if (ret != 0)
			kv_log(KV_LOG_WARN,
			       "lock session %" PRIu64 ": not ended at the "
			       "stop (%s); the leader ends it within %d ms",
			       l->sid, kv_strerror(ret), FS_LOCK_TTL_MS);
		l->sid = 0;
	}
	free(l->watch);
	l->watch = NULL;
	l->nwatch = 0;
}
