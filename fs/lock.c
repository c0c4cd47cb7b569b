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
 * (kvfs-locks) tries it again when the table changes. Operations: ops_lock.c.
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

/* The leader's view of one session: its rev, since when (kv_mono_ms),
 * and the rev an end was proposed for. */
struct fs_sess_watch {
	uint64_t sid, node, rev, since;
	uint64_t ending_rev, ending_at;
};

/* What a renew in flight needs to know when it is answered. */
struct renew_call {
	struct fs *fs;
	uint64_t sid, sent;
};

static uint64_t max_u64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

uint64_t fs_lock_sid(struct fs *fs)
{
	pthread_mutex_lock(&fs->locks.mu);
	uint64_t sid = fs->locks.sid;
	pthread_mutex_unlock(&fs->locks.mu);
	return sid;
}

bool fs_lock_lost(struct fs *fs, struct fs_handle *h)
{
	pthread_mutex_lock(&fs->locks.mu);
	/* Past the fence, lost already: the session thread's tick that
	 * says so formally may come a little later. */
	bool lost = h->lk_lost ||
		    (h->lk_held && (h->lk_sid != fs->locks.sid ||
				    kv_mono_ms() >= fs->locks.valid_until));
	pthread_mutex_unlock(&fs->locks.mu);
	return lost;
}

bool fs_lock_owner_of(struct fs *fs, struct fs_handle *h, uint64_t *owner)
{
	pthread_mutex_lock(&fs->locks.mu);
	bool held = h->lk_held && h->lk_sid == fs->locks.sid;
	*owner = h->lk_owner;
	pthread_mutex_unlock(&fs->locks.mu);
	return held;
}

void fs_locks_changed(struct fs *fs)
{
	pthread_mutex_lock(&fs->locks.mu);
	fs->locks.gen++;
	if (fs->locks.nwaiters > 0)
		pthread_cond_broadcast(&fs->locks.cond);
	pthread_mutex_unlock(&fs->locks.mu);
}

static void ignore_answer(void *ctx, int ret, const struct kv_result *res)
{
	(void)ctx;
	(void)ret;
	(void)res;
}

/* End session sid through the log without waiting (its locks go). */
static void end_session_async(struct fs *fs, uint64_t sid, uint64_t if_rev)
{
	struct kv_cmd cmd = {
	    .op = KV_OP_SESS_END, .sid = sid, .if_rev = if_rev};
	int ret = node_propose_async(fs->node, &cmd, ignore_answer, NULL);
	if (ret != 0)
		kv_log(KV_LOG_WARN, "lock session %" PRIu64 ": ending it: %s",
		       sid, kv_strerror(ret));
}

/* sid is no longer ours (expired, ended, or not renewed in time): every
 * handle that may hold a lock under it loses it. why says how. */
static void session_lost(struct fs *fs, uint64_t sid, const char *why)
{
	size_t lost = 0;

	pthread_mutex_lock(&fs->locks.mu);
	if (fs->locks.sid != sid) {
		pthread_mutex_unlock(&fs->locks.mu);
		return;
	}
	fs->locks.sid = 0;
	pthread_mutex_lock(&fs->handles_lock);
	for (struct fs_handle *h = fs->handles; h != NULL; h = h->next)
		if (h->lk_sid == sid && h->lk_held) {
			h->lk_lost = true;
			h->lk_held = false;
			lost++;
		}
	pthread_mutex_unlock(&fs->handles_lock);
	pthread_mutex_unlock(&fs->locks.mu);
	if (lost > 0)
		kv_log(KV_LOG_WARN,
		       "lock session %" PRIu64 " lost (%s): the locks of %zu "
		       "open file(s) are gone; their writes fail with EIO",
		       sid, why, lost);
	end_session_async(fs, sid, 0);
}

void fs_lock_session_ended(struct fs *fs, uint64_t sid)
{
	session_lost(fs, sid, "the cluster ended it");
}

void fs_lock_drop_session(struct fs *fs, const char *why)
{
	uint64_t sid = fs_lock_sid(fs);
	if (sid != 0)
		session_lost(fs, sid, why);
}

/* A command of sid sent at sent (kv_mono_ms) was answered: the session
 * lives at least until sent + TTL on the leader's clock. */
static void heard(struct fs *fs, uint64_t sid, uint64_t sent)
{
	pthread_mutex_lock(&fs->locks.mu);
	if (fs->locks.sid == sid)
		fs->locks.valid_until =
		    max_u64(fs->locks.valid_until,
			    sent + FS_LOCK_TTL_MS - FS_LOCK_MARGIN_MS);
	pthread_mutex_unlock(&fs->locks.mu);
}

/* The session to lock under: ours, or (open) a new one. 0, -ENOENT (none
and !open), or -errno. */
static int session(struct fs *fs, bool open, uint64_t *sid)
{
	uint64_t now = kv_mono_ms(), old = 0;

	pthread_mutex_lock(&fs->locks.mu);
	*sid = fs->locks.sid;
	if (*sid != 0 && now >= fs->locks.valid_until) {
		old = *sid;
		*sid = 0;
	}
	pthread_mutex_unlock(&fs->locks.mu);
	if (old != 0)
		session_lost(fs, old, "no renewal answered in time");
	if (*sid != 0)
		return 0;
	if (!open)
		return -ENOENT;
	pthread_mutex_lock(&fs->locks.open_mu);
	pthread_mutex_lock(&fs->locks.mu);
	*sid = fs->locks.sid;
	pthread_mutex_unlock(&fs->locks.mu);
	if (*sid == 0) {
		struct kv_cmd cmd = {.op = KV_OP_SESS_OPEN,
				     .node = node_id(fs->node)};
		struct kv_result res = {0};
		uint64_t sent = kv_mono_ms();
		int ret = node_propose(fs->node, &cmd, &res);
		if (ret == 0)
			ret = res.err;
		if (ret != 0) {
			pthread_mutex_unlock(&fs->locks.open_mu);
			return fs_errno(ret);
		}
		pthread_mutex_lock(&fs->locks.mu);
		fs->locks.sid = *sid = res.rev;
		fs->locks.valid_until =
		    sent + FS_LOCK_TTL_MS - FS_LOCK_MARGIN_MS;
		fs->locks.renew_sent = sent;
		pthread_mutex_unlock(&fs->locks.mu);
		kv_log(KV_LOG_DEBUG, "lock session %" PRIu64 " opened", *sid);
	}
	pthread_mutex_unlock(&fs->locks.open_mu);
	return 0;
}

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
		int ret = session(fs, r->type != KV_LOCK_UN, &sid);
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
			session_lost(fs, sid, "the cluster ended it");
			continue;
		}
		heard(fs, sid, sent);
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

/* ---- the session's upkeep ---- */

static void renew_done(void *ctx, int ret, const struct kv_result *res)
{
	struct renew_call *c = ctx;
	struct fs *fs = c->fs;

	pthread_mutex_lock(&fs->locks.mu);
	fs->locks.renew_out = false;
	if (ret == 0 && res->err == 0 && fs->locks.sid == c->sid)
		fs->locks.valid_until =
		    max_u64(fs->locks.valid_until,
			    c->sent + FS_LOCK_TTL_MS - FS_LOCK_MARGIN_MS);
	else if (ret == 0 && res->err == -ENOENT && fs->locks.sid == c->sid) {
		fs->locks.lost_sid = c->sid;
		pthread_cond_broadcast(&fs->locks.cond);
	}
	pthread_mutex_unlock(&fs->locks.mu);
	free(c);
}

/* Renew the session while it holds or waits for something; give it up
 * once it is past its fence. */
static void upkeep(struct fs *fs)
{
	uint64_t now = kv_mono_ms();

	pthread_mutex_lock(&fs->locks.mu);
	uint64_t sid = fs->locks.sid, lost = fs->locks.lost_sid;
	bool expired = sid != 0 && now >= fs->locks.valid_until;
	bool waiting = fs->locks.nwaiters > 0;
	bool due = !fs->locks.renew_out &&
		   now - fs->locks.renew_sent >= FS_LOCK_RENEW_MS;
	fs->locks.lost_sid = 0;
	pthread_mutex_unlock(&fs->locks.mu);
	if (lost != 0) {
		session_lost(fs, lost, "the cluster ended it");
		return;
	}
	if (sid == 0)
		return;
	if (expired) {
		session_lost(fs, sid, "no renewal answered in time");
		return;
	}
	if (!due || (!waiting && store_locks_held(node_store(fs->node), NULL, 0,
						  0, sid, UINT64_MAX) == 0))
		return;
	struct renew_call *c = malloc(sizeof(*c));
	if (c == NULL)
		return;
	*c = (struct renew_call){fs, sid, now};
	struct kv_cmd cmd = {.op = KV_OP_SESS_RENEW, .sid = sid};
	pthread_mutex_lock(&fs->locks.mu);
	fs->locks.renew_out = true;
	fs->locks.renew_sent = now;
	pthread_mutex_unlock(&fs->locks.mu);
	if (node_propose_async(fs->node, &cmd, renew_done, c) != 0) {
		pthread_mutex_lock(&fs->locks.mu);
		fs->locks.renew_out = false;
		pthread_mutex_unlock(&fs->locks.mu);
		free(c);
	}
}

/* On the leader: end every session not heard of for FS_LOCK_TTL_MS. The
 * end carries the rev it was decided on, so a session heard of meanwhile
 * (a renew committed first) is not ended. */
static void expire_sessions(struct fs *fs)
{
	uint64_t now = kv_mono_ms();
	bool leader = node_leader(fs->node, NULL, 0) == node_id(fs->node);
	struct store_session *v = NULL;
	size_t n = 0;

	if (!leader) {
		fs->locks.was_leader = false;
		return;
	}
	if (store_sessions(node_store(fs->node), &v, &n) != 0)
		return;
	struct fs_sess_watch *nw = n ? calloc(n, sizeof(*nw)) : NULL;
	if (n > 0 && nw == NULL) {
		free(v);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct fs_sess_watch *old = NULL;
		for (size_t j = 0; j < fs->locks.nwatch; j++)
			if (fs->locks.watch[j].sid == v[i].sid)
				old = &fs->locks.watch[j];
		if (old != NULL && old->rev == v[i].rev && fs->locks.was_leader)
			nw[i] = *old;
		else
			nw[i] = (struct fs_sess_watch){.sid = v[i].sid,
						       .node = v[i].node,
						       .rev = v[i].rev,
						       .since = now};
	}
	free(fs->locks.watch);
	fs->locks.watch = nw;
	fs->locks.nwatch = n;
	fs->locks.was_leader = true;
	free(v);
	for (size_t i = 0; i < n; i++) {
		struct fs_sess_watch *w = &nw[i];
		if (now - w->since < FS_LOCK_TTL_MS ||
		    (w->ending_rev == w->rev &&
		     now - w->ending_at < FS_LOCK_TTL_MS))
			continue;
		w->ending_rev = w->rev;
		w->ending_at = now;
		kv_log(KV_LOG_INFO,
		       "lock session %" PRIu64 " of node %" PRIu64
		       " not heard of for %" PRIu64 " ms: ending it",
		       w->sid, w->node, now - w->since);
		end_session_async(fs, w->sid, w->rev);
	}
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

/* The session's thread (kvfs-locks): every tick, or when a renew found
 * the session gone, renew or give up this node's session and, on the
 * leader, end the sessions not heard of. The watch is its own. */
static void *lock_main(void *arg)
{
	struct fs *fs = arg;

	pthread_setname_np(pthread_self(), "kvfs-locks");
	pthread_mutex_lock(&fs->locks.mu);
	while (!fs->locks.stop) {
		struct timespec dl = kv_deadline(FS_LOCK_TICK_MS);
		if (fs->locks.lost_sid == 0)
			pthread_cond_timedwait(&fs->locks.cond, &fs->locks.mu,
					       &dl);
		if (fs->locks.stop)
			break;
		pthread_mutex_unlock(&fs->locks.mu);
		upkeep(fs);
		expire_sessions(fs);
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
	ret = pthread_create(&l->thread, NULL, lock_main, fs);
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
