/* append.c - the log appender and the sync thread: group commit, a full
 * disk.
 *
 * store_append writes entries into the log's mapping on the caller's
 * thread (the node's) under log_mu and hands the sync thread a job if it
 * is idle; the sync thread, when its fdatasync returns, reports the node
 * its entries durable and takes whatever was written meanwhile as the next
 * job. A stream of writes so needs no owner turn at all. On a full disk the
 * entries that do not fit are copied and stalled; the owner retries them
 * every turn (every 100 ms while any wait) and store_room tells proposers.
 * Threads and locks: store_int.h; the log itself: log.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "store_int.h"

/* ---- the sync thread ---- */

/* Hand the sync thread what was written since its last job, if it is
 * idle; log_mu held. True if a job was handed: the caller signals
 * sync_cond, after log_mu is released where it can (a thread woken while
 * the lock is still held would only block on it again). */
static bool kick_sync_locked(struct store *st)
{
	if (st->sync_busy || !st->w_index || st->failed || st->sync_hold)
		return false;
	struct log_sync *job;
	int ret = log_sync_prepare(st->log, &job);
	if (ret != 0) {
		store_fail(st, ret, "log sync failed");
		st->w_index = 0;
		return false;
	}
	st->sync_job = job;
	st->sync_p_index = st->w_index;
	st->sync_p_term = st->w_term;
	st->w_index = st->w_term = 0;
	st->sync_busy = true;
	return true;
}

void append_kick_sync_locked(struct store *st)
{
	if (kick_sync_locked(st))
		pthread_cond_signal(&st->sync_cond);
}

/* Queue st->sync_done for the owner unless it is queued already. */
static void notify_owner(struct store *st)
{
	pthread_mutex_lock(&st->mu);
	if (!st->sync_done_queued) {
		st->sync_done_queued = true;
		owner_push_locked(st, &st->sync_done);
	}
	pthread_mutex_unlock(&st->mu);
}

void *append_sync_main(void *arg)
{
	pthread_setname_np(pthread_self(), "kvfs-sync");
	struct store *st = arg;
	pthread_mutex_lock(&st->log_mu);
	for (;;) {
		while (!st->sync_job && !st->workers_stop)
			pthread_cond_wait(&st->sync_cond, &st->log_mu);
		if (!st->sync_job)
			break;
		struct log_sync *job = st->sync_job;
		uint64_t p_index = st->sync_p_index, p_term = st->sync_p_term;
		pthread_mutex_unlock(&st->log_mu);
		uint64_t t0 = kv_mono_ns();
		int ret = log_sync_run(job);
		uint64_t took = kv_mono_ns() - t0;
		kv_hist_observe_ns(store_m_fsync_seconds.hists, took);
		if (took > STORE_SLOW_SYNC_NS)
			kv_log(
			    KV_LOG_WARN,
			    "slow fdatasync of the log: %llu ms (writes wait "
			    "for it)",
			    (unsigned long long)(took / 1000000));
		if (ret != 0)
			kv_metric_add(&store_m_fsync_errors, 0, 1);
		log_sync_done(job);
		/* tell the node at once, not through the owner: one hand-off
		 * less on every write's path (an install waits for this sync,
		 * so these entries are still the log's) */
		if (ret == 0)
			st->opt.raft->persisted(st->opt.raft_ctx, p_index,
						p_term);
		else
			store_fail(st, ret, "fdatasync of the log failed");
		pthread_mutex_lock(&st->log_mu);
		st->sync_job = NULL;
		st->sync_busy = false;
		/* what was written meanwhile: the next group commit (this
		 * thread's own job: nobody to wake) */
		kick_sync_locked(st);
		if (!st->sync_busy && st->sync_notify) {
			st->sync_notify = false;
			notify_owner(st);
		}
	}
	pthread_mutex_unlock(&st->log_mu);
	return NULL;
}

/* ---- writing entries ---- */

/* Write entry e into the log; log_mu held. Entries a db holds are skipped
 * (an install) but reported like the others. 0; -ENOSPC and -ENOMEM leave
 * the log as it was; anything else failed the store. */
static int write_entry(struct store *st, const struct store_entry *e)
{
	if (e->index <= st->snap_index) {
		/* durable in the db: still reported, or a node that installed
		 * a snapshot past what its leader resends would never answer
		 * for it */
		st->w_index = e->index;
		st->w_term = e->term;
		return 0;
	}
	char *conf = NULL;
	struct log_entry le = {.index = e->index,
			       .term = e->term,
			       .type = (uint8_t)(e->type - 1),
			       .data = e->data,
			       .len = e->len,
			       .data_checked = e->data_checked,
			       .data_crc = e->data_crc};
	if (e->type == STORE_ENTRY_CONFIG) {
		/* configuration texts become JSON strings: the log keeps
		 * JSON */
		conf = store_conf_to_json(e->data, e->len);
		if (!conf)
			return -ENOMEM;
		le.data = conf;
		le.len = strlen(conf);
		le.data_checked = false;
	}
	/* a leader's entry in place of recovered ones: those past it are
	 * gone, and so is the replay of them the schedule waits for; the
	 * owner's next turn schedules anew (it published the old end, which
	 * the applies may never reach) */
	if (e->index <= st->replay_end) {
		st->replay_end = e->index - 1;
		notify_owner(st);
	}
	int ret = log_append(st->log, &le);
	free(conf);
	if (ret == 0) {
		st->w_index = e->index;
		st->w_term = e->term;
	} else if (ret != -ENOSPC) {
		char what[96];
		snprintf(what, sizeof(what), "log write of entry %llu",
			 (unsigned long long)e->index);
		store_fail(st, ret, what);
	}
	return ret;
}

static void req_free(struct req *r)
{
	for (size_t i = 0; i < r->n; i++)
		free((void *)r->ents[i].data);
	free(r->ents);
	free(r);
}

/* A stalled append holding copies of e[0..n). */
static struct req *stalled_req(const struct store_entry *e, size_t n)
{
	struct req *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->ents = calloc(n, sizeof(*r->ents));
	if (!r->ents) {
		free(r);
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		struct store_entry *c = &r->ents[i];
		*c = e[i];
		c->data = NULL;
		if (e[i].len) {
			void *d = malloc(e[i].len);
			if (!d) {
				req_free(r);
				return NULL;
			}
			memcpy(d, e[i].data, e[i].len);
			c->data = d;
		}
		r->n = i + 1;
	}
	return r;
}

/* Stall e[0..n) behind the others (a full disk); log_mu held. 0 or
 * -ENOMEM. */
static int stall(struct store *st, const struct store_entry *e, size_t n)
{
	struct req *r = stalled_req(e, n);
	if (!r)
		return -ENOMEM;
	if (st->stalled_tail)
		st->stalled_tail->next = r;
	else
		st->stalled = r;
	st->stalled_tail = r;
	st->any_stalled = true;
	if (!st->stall_error) {
		st->stall_ms = kv_mono_ms(); /* before the error: readers */
		st->stall_error = -ENOSPC;
		kv_log(KV_LOG_WARN,
		       "%s: the disk is full: log appends "
		       "wait for space",
		       st->dir);
	}
	owner_wake(st); /* it retries them */
	return 0;
}

void append_drop_stalled(struct store *st)
{
	while (st->stalled) {
		struct req *r = st->stalled;
		st->stalled = r->next;
		req_free(r);
	}
	st->stalled_tail = NULL;
	st->any_stalled = false;
	st->stall_error = 0;
}

void append_retry_stalled_locked(struct store *st)
{
	while (st->stalled && !st->failed) {
		struct req *r = st->stalled;
		while (r->written < r->n) {
			int ret = write_entry(st, &r->ents[r->written]);
			if (ret == -ENOSPC || ret == -ENOMEM)
				return; /* again at the next turn */
			if (ret != 0)
				break; /* failed: dropped below */
			r->written++;
		}
		st->stalled = r->next;
		if (!st->stalled)
			st->stalled_tail = NULL;
		req_free(r);
	}
	if (!st->failed && st->stall_error)
		kv_log(KV_LOG_INFO, "%s: log appends go through again",
		       st->dir);
	append_drop_stalled(st); /* none left, or failed */
}

void append_update_room_locked(struct store *st)
{
	uint64_t room = log_room(st->log);
	/* A new segment is preallocated whole: it needs seg_size bytes free
	 * (and a margin for the db and hard state). The file system is asked
	 * at most every 100 ms while the open segment has room to spare. */
	uint64_t now_ms = kv_mono_ms();
	struct statvfs vfs;
	if ((room < (4u << 20) || now_ms >= st->fs_checked_ms + 100) &&
	    statvfs(st->dir, &vfs) == 0) {
		uint64_t free_bytes = (uint64_t)vfs.f_bavail * vfs.f_frsize;
		st->fs_room = free_bytes >= st->seg_size + (1u << 20)
				  ? free_bytes - (1u << 20)
				  : 0;
		st->fs_checked_ms = now_ms;
	}
	st->room = room + st->fs_room;
	st->pub_log_bytes = log_bytes(st->log);
}

int store_append(struct store *st, const struct store_entry *e, size_t n)
{
	int ret = 0;
	pthread_mutex_lock(&st->log_mu);
	size_t i = 0;
	if (!st->stalled) /* else behind them, in order */
		for (; i < n && !st->failed; i++) {
			ret = write_entry(st, &e[i]);
			if (ret != 0)
				break;
		}
	if (st->failed)
		ret = 0; /* sticky: nothing more is reported */
	else if (i < n && (ret == 0 || ret == -ENOSPC))
		ret = stall(st, e + i, n - i);
	/* the room first: once the sync starts, its thread may report these
	 * appends durable, and the room must already count them */
	append_update_room_locked(st);
	bool kicked = kick_sync_locked(st);
	pthread_mutex_unlock(&st->log_mu);
	if (kicked) /* the job is set: a sync thread not yet waiting sees it */
		pthread_cond_signal(&st->sync_cond);
	owner_kick_if_due(st);
	return ret;
}

uint64_t store_room(const struct store *st)
{
	return st->room;
}

int store_write_error(const struct store *st, uint64_t *since_ms)
{
	int err = st->failed; /* sticky: it outranks a stall */
	uint64_t since = st->failed_ms;
	if (!err) {
		err = st->stall_error;
		since = err ? st->stall_ms : 0;
	}
	if (since_ms)
		*since_ms = since;
	return err;
}
