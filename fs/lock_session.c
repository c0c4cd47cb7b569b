/* lock_session.c - the mount's lock session: opened through the log,
 * renewed while it holds or waits for a lock, fenced on this node before
 * any leader can end it, and (on the leader) ended through the log once
 * it was not heard of for FS_LOCK_TTL_MS. The lock thread (kvfs-locks)
 * runs the upkeep. The rules are in lock.c's opening comment. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs_int.h"

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
void fs_lock_session_lost(struct fs *fs, uint64_t sid, const char *why)
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
	fs_lock_session_lost(fs, sid, "the cluster ended it");
}

void fs_lock_drop_session(struct fs *fs, const char *why)
{
	uint64_t sid = fs_lock_sid(fs);
	if (sid != 0)
		fs_lock_session_lost(fs, sid, why);
}

/* A command of sid sent at sent (kv_mono_ms) was answered: the session
 * lives at least until sent + TTL on the leader's clock. */
void fs_lock_heard(struct fs *fs, uint64_t sid, uint64_t sent)
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
int fs_lock_session(struct fs *fs, bool open, uint64_t *sid)
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
		fs_lock_session_lost(fs, old, "no renewal answered in time");
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
		fs_lock_session_lost(fs, lost, "the cluster ended it");
		return;
	}
	if (sid == 0)
		return;
	if (expired) {
		fs_lock_session_lost(fs, sid, "no renewal answered in time");
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

/* The session's thread (kvfs-locks): every tick, or when a renew found
 * the session gone, renew or give up this node's session and, on the
 * leader, end the sessions not heard of. The watch is its own. */
void *fs_lock_session_main(void *arg)
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
