/* store.c - opening and closing a store, the owner thread, reads.
 *
 * One thread owns what is slow or rare: status, the hard state, the
 * snapshot schedule, installs, appends stalled on a full disk. Other
 * threads queue a request and wait on its semaphore; the owner drains the
 * queue in batches. The fast paths need no owner turn: store_append
 * (append.c) and store_apply (applier.c) run on the node's thread, and
 * reads run on the caller's thread under the map's read lock. The rest of
 * the store and the threads' contracts: store_int.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hardstate.h"
#include "leases.h"
#include "locks.h"
#include "store_int.h"

/* ---- the queue ---- */

/* Submit r and wait for the owner's answer. */
static int call(struct store *st, struct req *r)
{
	sem_init(&r->done, 0, 0);
	pthread_mutex_lock(&st->mu);
	bool open = !st->stopping;
	if (open)
		owner_push_locked(st, r);
	pthread_mutex_unlock(&st->mu);
	if (!open) {
		sem_destroy(&r->done);
		return KV_ESHUTDOWN;
	}
	while (sem_wait(&r->done) != 0 && errno == EINTR)
		;
	sem_destroy(&r->done);
	return r->ret;
}

/* ---- the owner thread ---- */

static void do_status(struct store *st, struct store_status *s)
{
	memset(s, 0, sizeof(*s));
	pthread_rwlock_rdlock(&st->map_lock);
	s->applied_index = st->applied;
	s->keys = map_count(st->map);
	s->bytes = map_bytes(st->map);
	s->state_hash = map_state_hash(st->map);
	s->lock_sessions = map_locks_c(st->map)->ns;
	s->locks = map_locks_c(st->map)->n;
	s->leases = map_leases_c(st->map)->n;
	s->leased_keys = map_leases_c(st->map)->nkeys;
	pthread_rwlock_unlock(&st->map_lock);
	pthread_mutex_lock(&st->log_mu);
	s->first_index = log_first_index(st->log);
	s->last_index = log_last_index(st->log);
	s->log_bytes = log_bytes(st->log);
	pthread_mutex_unlock(&st->log_mu);
	s->snapshot_index = st->snap_index;
	s->snapshot_term = st->snap_term;
	s->term = st->term;
	s->vote = st->vote;
	s->failed = st->failed;
	s->write_error = store_write_error(st, &s->write_error_since_ms);
}

static void handle(struct store *st, struct req *r)
{
	switch (r->type) {
	case REQ_STATUS:
		do_status(st, r->status);
		owner_complete(r, 0);
		break;
	case REQ_HARDSTATE: {
		int ret = hardstate_save(st->dir, r->term, r->vote);
		if (ret == 0) {
			st->term = r->term;
			st->vote = r->vote;
		}
		owner_complete(r, ret);
		break;
	}
	case REQ_SNAPSHOT:
		/* a db at least at what is applied now (a job under way may
		 * be older: snapshot_finish starts the next) */
		r->index = st->pub_applied;
		if (!snapshot_start(st)) {
			owner_complete(r, 0); /* nothing new to write */
			break;
		}
		r->next = st->snap.waiters;
		st->snap.waiters = r;
		break;
	case REQ_RECOVER:
		owner_complete(r, recovery_recover(st, r->recovery));
		break;
	case REQ_INSTALL:
		st->install_waiting = r;
		recovery_maybe_install(st);
		break;
	case REQ_SYNC_DONE:
		pthread_mutex_lock(&st->mu);
		st->sync_done_queued = false;
		pthread_mutex_unlock(&st->mu);
		recovery_maybe_install(st);
		break;
	case REQ_SNAP_DONE:
		snapshot_finish(st);
		/* an install waits for a running db write to end */
		recovery_maybe_install(st);
		break;
	}
}

/* How long the owner may sleep with nothing queued: -1 for ever; 100 ms
 * while appends wait for space (it looks again); until a snapshot retry. */
static long idle_ms(const struct store *st)
{
	long ms = snapshot_retry_in_ms(st);
	if (st->any_stalled && (ms < 0 || ms > 100))
		ms = 100;
	return ms;
}

/* Wait for requests or a timed turn and take them all; NULL with *stop
 * set once stopping with nothing left to finish. The sync thread
 * finishes before the owner exits (it reports to the node), so stopping
 * first asks to hear when it is idle. */
static struct req *owner_wait(struct store *st, bool *stop)
{
	pthread_mutex_lock(&st->mu);
	bool stopping = st->stopping;
	pthread_mutex_unlock(&st->mu);
	bool sync_busy = false;
	if (stopping) {
		pthread_mutex_lock(&st->log_mu);
		sync_busy = st->sync_busy;
		if (sync_busy)
			st->sync_notify = true;
		pthread_mutex_unlock(&st->log_mu);
	}
	pthread_mutex_lock(&st->mu);
	bool done =
	    stopping && !sync_busy && !st->snap.running && !st->install_waiting;
	long ms = idle_ms(st);
	struct timespec until = kv_deadline((int)(ms < 0 ? 0 : ms));
	while (!st->head && !done && !st->kicked) {
		if (st->stopping && !stopping)
			break; /* look at the sync thread first */
		if (ms < 0)
			pthread_cond_wait(&st->cond, &st->mu);
		else if (pthread_cond_timedwait(&st->cond, &st->mu, &until) ==
			 ETIMEDOUT)
			break;
	}
	struct req *batch = st->head;
	st->head = st->tail = NULL;
	*stop = !batch && done;
	pthread_mutex_unlock(&st->mu);
	return batch;
}

static void *owner_main(void *arg)
{
	pthread_setname_np(pthread_self(), "kvfs-store");
	struct store *st = arg;
	for (;;) {
		bool stop;
		struct req *batch = owner_wait(st, &stop);
		if (stop)
			break;
		st->kicked = false; /* before the schedule reads the state */
		while (batch) {
			struct req *r = batch;
			batch = r->next;
			handle(st, r);
		}
		/* the room first: once the sync starts, its thread may report
		 * these appends durable, and the room must already count them
		 */
		pthread_mutex_lock(&st->log_mu);
		append_retry_stalled_locked(st);
		append_update_room_locked(st);
		append_kick_sync_locked(st);
		pthread_mutex_unlock(&st->log_mu);
		if (!st->failed)
			snapshot_schedule(st);
	}
	return NULL;
}

/* ---- opening ---- */

static char *fmt_msg(const char *fmt, const char *a, const char *b)
{
	char *m = NULL;
	if (asprintf(&m, fmt, a, b) < 0)
		return NULL;
	return m;
}

/* Create the data directory and take its lock (one process a directory).
 */
static int lock_dir(struct store *st, char **errmsg)
{
	int ret = kv_mkdir_p(st->dir);
	if (ret != 0) {
		*errmsg = fmt_msg("cannot create data directory %s: %s",
				  st->dir, strerror(-ret));
		return ret;
	}
	char path[4096];
	snprintf(path, sizeof(path), "%s/LOCK", st->dir);
	st->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (st->lock_fd < 0) {
		ret = -errno;
		*errmsg = fmt_msg("cannot open %s: %s", path, strerror(-ret));
		return ret;
	}
	if (flock(st->lock_fd, LOCK_EX | LOCK_NB) != 0) {
		*errmsg = fmt_msg("data directory %s is in use by another "
				  "kvfs process%s",
				  st->dir, "");
		return -EBUSY;
	}
	return 0;
}

/* The log opened (its lines read and checked) on a thread of its own
 * while the db loads: neither needs the other until both are in. */
struct log_opening {
	struct store *st;
	struct log *log;
	char *errmsg;
	int ret;
};

static void *log_open_main(void *arg)
{
	struct log_opening *o = arg;
	pthread_setname_np(pthread_self(), "kvfs-logopen");
	o->ret = log_open(o->st->dir, o->st->seg_size, &o->log, &o->errmsg);
	return NULL;
}

/* The db into the map and the log opened, side by side (on this thread
 * alone if no thread can start): the db's result; the log's in *log_ret
 * (with *log, or its message in *log_msg). */
static int load_db_and_log(struct store *st, struct db_meta *meta,
			   char **errmsg, int *log_ret, char **log_msg)
{
	struct log_opening o = {.st = st};
	pthread_t th;
	bool apart = pthread_create(&th, NULL, log_open_main, &o) == 0;
	int ret = db_load(st->dir, st->map, meta, errmsg);
	if (apart)
		pthread_join(th, NULL);
	else
		log_open_main(&o);
	st->log = o.log; /* NULL if it failed */
	*log_ret = o.ret;
	*log_msg = o.errmsg;
	return ret;
}

/* The hard state, the db into the map, the log after it. */
static int load_files(struct store *st, char **errmsg)
{
	int ret = hardstate_load(st->dir, &st->term, &st->vote, errmsg);
	if (ret != 0)
		return ret;
	st->map = map_new();
	if (!st->map)
		return -ENOMEM;
	struct db_meta meta = {0};
	int log_ret;
	char *log_msg = NULL;
	ret = load_db_and_log(st, &meta, errmsg, &log_ret, &log_msg);
	if (ret != 0) {
		free(log_msg);
		return ret; /* the log, if open, is closed with the store */
	}
	st->conf_json = meta.conf;
	st->snap_index = st->applied = meta.index;
	st->snap_term = st->applied_term = meta.term;
	if (log_ret != 0) {
		*errmsg = log_msg;
		return log_ret;
	}
	free(log_msg);
	uint64_t lost = log_lost_index(st->log);
	st->lost_index = lost > st->snap_index ? lost : 0;
	if (lost && !st->lost_index)
		kv_log(KV_LOG_INFO,
		       "%s: entry %llu is in the db: nothing "
		       "is lost",
		       st->dir, (unsigned long long)lost);
	ret = recovery_check_log(st, errmsg);
	if (ret != 0)
		return ret;
	st->pub_applied = st->applied;
	/* the log after the db is applied again, with its events */
	hist_start_after(&st->hist, st->applied);
	st->due_applied = st->snap_index + st->every;
	st->due_bytes = st->bytes;
	append_update_room_locked(st);
	return 0;
}

static int init_sync(struct store *st)
{
	pthread_mutex_init(&st->mu, NULL);
	pthread_mutex_init(&st->log_mu, NULL);
	pthread_cond_init(&st->sync_cond, NULL);
	pthread_cond_init(&st->snap_cond, NULL);
	int ret = kv_cond_init(&st->cond);
	/* writers first: a stream of readers must not hold off the applier
	 */
	pthread_rwlockattr_t rwa;
	pthread_rwlockattr_init(&rwa);
	pthread_rwlockattr_setkind_np(
	    &rwa, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&st->map_lock, &rwa);
	pthread_rwlockattr_destroy(&rwa);
	st->sync_done.type = REQ_SYNC_DONE;
	st->snap_done.type = REQ_SNAP_DONE;
	return ret;
}

static void destroy_sync(struct store *st)
{
	pthread_rwlock_destroy(&st->map_lock);
	pthread_cond_destroy(&st->sync_cond);
	pthread_cond_destroy(&st->snap_cond);
	pthread_cond_destroy(&st->cond);
	pthread_mutex_destroy(&st->log_mu);
	pthread_mutex_destroy(&st->mu);
}

/* The owner is gone, or never started: the sync and db-writer threads
 * end. */
static void stop_workers(struct store *st)
{
	pthread_mutex_lock(&st->mu);
	st->workers_stop = true;
	pthread_cond_broadcast(&st->snap_cond);
	pthread_mutex_unlock(&st->mu);
	pthread_mutex_lock(&st->log_mu);
	st->workers_stop = true;
	pthread_cond_broadcast(&st->sync_cond);
	pthread_mutex_unlock(&st->log_mu);
}

static int start_threads(struct store *st)
{
	int ret = -pthread_create(&st->syncer, NULL, append_sync_main, st);
	if (ret != 0)
		return ret;
	ret = -pthread_create(&st->writer, NULL, snapshot_writer_main, st);
	if (ret != 0)
		goto err_sync;
	ret = -pthread_create(&st->owner, NULL, owner_main, st);
	if (ret != 0)
		goto err_writer;
	return 0;

err_writer:
	stop_workers(st);
	pthread_join(st->writer, NULL);
err_sync:
	stop_workers(st);
	pthread_join(st->syncer, NULL);
	return ret;
}

/* Free what open built; the threads are gone or never started. */
static void free_store(struct store *st)
{
	append_drop_stalled(st); /* a full disk at shutdown */
	log_close(st->log);
	map_free(st->map);
	hist_free(&st->hist);
	free(st->conf_json);
	if (st->lock_fd >= 0)
		close(st->lock_fd);
	free(st->dir);
	free(st);
}

int store_open(const struct store_options *opt, struct store **out,
	       char **errmsg)
{
	store_metrics_register();
	*errmsg = NULL;
	if (!opt->raft || !opt->raft->persisted || !opt->raft->applied ||
	    !opt->raft->snapshotted) {
		*errmsg = strdup("store_open: options.raft and its three "
				 "callbacks are required");
		return -EINVAL;
	}
	struct store *st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->opt = *opt;
	st->lock_fd = -1;
	st->every =
	    opt->snapshot_every ? opt->snapshot_every : DEFAULT_SNAPSHOT_EVERY;
	st->bytes =
	    opt->snapshot_bytes ? opt->snapshot_bytes : DEFAULT_SNAPSHOT_BYTES;
	st->seg_size =
	    opt->segment_size ? opt->segment_size : DEFAULT_SEGMENT_SIZE;
	int ret = -ENOMEM;
	st->dir = strdup(opt->dir);
	if (!st->dir)
		goto err_free;
	ret = hist_init(&st->hist, opt);
	if (ret == 0)
		ret = lock_dir(st, errmsg);
	if (ret == 0)
		ret = load_files(st, errmsg);
	if (ret != 0)
		goto err_free;
	ret = init_sync(st);
	if (ret == 0)
		ret = start_threads(st);
	if (ret != 0) {
		destroy_sync(st);
		goto err_free;
	}
	*out = st;
	return 0;

err_free:
	free_store(st);
	return ret;
}

void store_close(struct store *st)
{
	if (!st)
		return;
	/* the owner finishes what is queued, a db being written, a sync */
	pthread_mutex_lock(&st->mu);
	st->stopping = true;
	pthread_cond_broadcast(&st->cond);
	pthread_mutex_unlock(&st->mu);
	pthread_join(st->owner, NULL);
	stop_workers(st);
	pthread_join(st->syncer, NULL);
	pthread_join(st->writer, NULL);
	destroy_sync(st);
	predecode_free(st->pre);
	free_store(st);
}

/* ---- the calls ---- */

/* Reads run on the caller's thread under the map's read lock: no hand-off
 * to the owner; store_apply takes the lock for writing only around each
 * chunk of changes. */
int store_get(struct store *st, const char *key, size_t klen,
	      struct kv_rec **out)
{
	*out = NULL;
	pthread_rwlock_rdlock(&st->map_lock);
	struct kv_rec *rec = map_get(st->map, key, klen);
	int ret = 0;
	if (!rec)
		ret = -ENOENT;
	else if ((rec->mode & S_IFMT) == S_IFDIR)
		ret = -EISDIR;
	else
		kv_rec_ref(rec);
	pthread_rwlock_unlock(&st->map_lock);
	if (ret == 0)
		*out = rec;
	return ret;
}

int store_stat(struct store *st, const char *path, size_t plen,
	       struct kv_stat *out)
{
	pthread_rwlock_rdlock(&st->map_lock);
	int ret = map_stat(st->map, path, plen, out);
	pthread_rwlock_unlock(&st->map_lock);
	return ret;
}

int store_list(struct store *st, const char *dir, size_t dlen,
	       const char *after, size_t limit, struct kv_list *out)
{
	memset(out, 0, sizeof(*out));
	pthread_rwlock_rdlock(&st->map_lock);
	int ret = map_list(st->map, dir, dlen, after, limit, out);
	pthread_rwlock_unlock(&st->map_lock);
	return ret;
}

int store_list_all(struct store *st, const char *dir, size_t dlen,
		   const char *after, size_t limit, struct kv_list *out)
{
	memset(out, 0, sizeof(*out));
	pthread_rwlock_rdlock(&st->map_lock);
	int ret = map_list_all(st->map, dir, dlen, after, limit, out);
	pthread_rwlock_unlock(&st->map_lock);
	return ret;
}

uint64_t store_applied(const struct store *st)
{
	return st->pub_applied;
}

int store_status(struct store *st, struct store_status *out)
{
	struct req r = {.type = REQ_STATUS, .status = out};
	return call(st, &r);
}

int store_save_hardstate(struct store *st, uint64_t term, uint64_t vote)
{
	struct req r = {.type = REQ_HARDSTATE, .term = term, .vote = vote};
	return call(st, &r);
}

int store_snapshot(struct store *st)
{
	struct req r = {.type = REQ_SNAPSHOT};
	return call(st, &r);
}

int store_recover(struct store *st, struct store_recovery *out)
{
	struct req r = {.type = REQ_RECOVER, .recovery = out};
	memset(out, 0, sizeof(*out));
	return call(st, &r);
}

int store_install(struct store *st, const char *path)
{
	struct req r = {.type = REQ_INSTALL, .path = path};
	int ret = call(st, &r);
	/* reported here, on the caller's thread, like store_apply's */
	if (ret == 0) {
		/* the map was replaced, not changed event by event */
		hist_start_after(&st->hist, r.index);
		st->hist_added = true;
		st->hist_first = 0;
		hist_notify(st);
		st->opt.raft->applied(st->opt.raft_ctx, r.index, r.term, NULL);
	}
	return ret;
}
