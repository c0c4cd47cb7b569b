/* snapshot.c - snapshots on schedule: the db-writer thread, its replica
 * of the map, and compaction of the log.
 *
 * A db is due after snapshot_every applied entries or snapshot_bytes of
 * log. The appender and the applier check the schedule the owner
 * published (two atomic loads) after every call and wake the owner when it
 * is due, so snapshots follow the traffic with no turn of their own. A
 * job's start takes map_lock for a moment only: the applied index, its
 * term, the map's state hash and the configuration. The db-writer thread
 * then brings its own replica of the map up to that index by applying the
 * log's entries (deterministic: the same entries make the same map), checks
 * the replica's hash against the map's, and writes the db from it; the
 * map itself is never walked, so appliers and readers are not stalled
 * (walking 1M keys under the lock took 200 ms). A failed job (a full disk)
 * is retried after a backoff, not at once. Threads: store_int.h. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_int.h"

#define RETRY_FIRST_MS 1000
#define RETRY_MAX_MS   60000
#define CATCH_UP_CHUNK 64
/* log_get checks each entry's checksum under log_mu, which the node
 * thread's appends need: 64 entries of 16 MiB held it for 200 ms. A chunk
 * ends once it holds this many bytes (one entry at least). */
#define CATCH_UP_BYTES (1u << 20)

/* ---- the owner's side ---- */

bool snapshot_start(struct store *st)
{
	struct snap_state *sn = &st->snap;
	if (sn->running)
		return true;
	pthread_rwlock_rdlock(&st->map_lock);
	uint64_t applied = st->applied, term = st->applied_term;
	uint64_t hash = map_state_hash(st->map);
	char *conf = NULL;
	bool ok = applied != st->snap_index &&
		  (!st->conf_json || (conf = strdup(st->conf_json)));
	pthread_rwlock_unlock(&st->map_lock);
	if (!ok)
		return false; /* nothing new, or no memory: later */
	/* Not before the log holds the applied entry with its term: an
	 * entry may be applied before the appender wrote it (a full disk),
	 * or while the log holds an older copy from another term; the
	 * replica reads the entries from the log, and the log is compacted
	 * up to the db. Checked after map_lock (lock order): an applied
	 * entry is committed, so once the log holds it only a compaction,
	 * ours, removes it. */
	pthread_mutex_lock(&st->log_mu);
	ok = log_last_index(st->log) >= applied &&
	     log_term_at(st->log, applied) == term;
	pthread_mutex_unlock(&st->log_mu);
	if (!ok) {
		free(conf);
		return false;
	}
	sn->meta =
	    (struct db_meta){.index = applied, .term = term, .conf = conf};
	sn->base = st->snap_index;
	sn->hash = hash;
	sn->running = true;
	pthread_mutex_lock(&st->mu);
	st->snap_job = true;
	pthread_cond_signal(&st->snap_cond);
	pthread_mutex_unlock(&st->mu);
	return true;
}

/* Publish what the owner waits for; then, if the state already reached
 * it (an apply that read the thresholds before they were published),
 * ask for another turn at once. */
static void publish(struct store *st, uint64_t applied_at, uint64_t bytes_at)
{
	st->due_applied = applied_at;
	st->due_bytes = bytes_at;
	if (st->pub_applied >= applied_at || st->pub_log_bytes >= bytes_at)
		st->kicked = true;
}

/* The log bytes that make a db due: snapshot_bytes, or the size of the
 * db in place when that is larger. A db rewrites the live data, so with
 * 1 GiB of it a db every 64 MiB of log would write 16 bytes for each
 * byte of log; this way the log grows to about the db's size at most
 * (docs/log-format.md). A stat on the owner thread, once per turn of the
 * schedule. */
static uint64_t byte_trigger(const struct store *st)
{
	uint64_t db = db_size(st->dir);
	return db > st->bytes ? db : st->bytes;
}

void snapshot_schedule(struct store *st)
{
	struct snap_state *sn = &st->snap;
	if (sn->retry_ms && kv_mono_ms() >= sn->retry_ms)
		sn->retry_ms = 0;
	if (sn->running || sn->retry_ms || st->install_waiting) {
		/* snapshot_finish, the retry timer or the install runs the
		 * schedule again */
		st->due_applied = st->due_bytes = UINT64_MAX;
		return;
	}
	uint64_t applied = st->pub_applied;
	pthread_mutex_lock(&st->log_mu);
	uint64_t bytes = log_bytes(st->log);
	pthread_mutex_unlock(&st->log_mu);
	uint64_t trigger = byte_trigger(st);
	bool due = applied - st->snap_index >= st->every || bytes >= trigger;
	if (!due) {
		publish(st, st->snap_index + st->every, trigger);
		return;
	}
	if (snapshot_start(st)) {
		st->due_applied = st->due_bytes = UINT64_MAX;
		return;
	}
	/* due but not now: nothing applied since the db (the next apply),
	 * or the log lacks the applied entry (the next append) */
	publish(st, applied + 1, applied > st->snap_index ? 0 : UINT64_MAX);
}

long snapshot_retry_in_ms(const struct store *st)
{
	if (st->snap.running || !st->snap.retry_ms)
		return -1;
	uint64_t now = kv_mono_ms();
	return now >= st->snap.retry_ms ? 0 : (long)(st->snap.retry_ms - now);
}

/* The db at meta is in place: the log before it goes (invariant 4). */
static void compact(struct store *st, const struct db_meta *meta)
{
	pthread_mutex_lock(&st->log_mu);
	st->snap_index = meta->index;
	st->snap_term = meta->term;
	int ret = log_compact(st->log, st->snap_index, st->snap_term);
	append_update_room_locked(st);
	pthread_mutex_unlock(&st->log_mu);
	if (ret != 0) /* the db is in place; compaction can wait */
		kv_log(KV_LOG_WARN, "log compaction failed: %s",
		       kv_strerror(ret));
}

/* store_snapshot calls wait for a db at the index applied when they were
 * made (r->index): answer those this job covered, or all of them with its
 * error; for the others start the next job, or answer 0 if none can start
 * (as store_snapshot does at once). */
static void answer_waiters(struct store *st, int ret)
{
	struct snap_state *sn = &st->snap;
	struct req **p = &sn->waiters;
	while (*p) {
		struct req *r = *p;
		if (ret == 0 && r->index > st->snap_index) {
			p = &r->next;
			continue;
		}
		*p = r->next;
		owner_complete(r, ret);
	}
	if (sn->waiters && !snapshot_start(st)) {
		while (sn->waiters) {
			struct req *r = sn->waiters;
			sn->waiters = r->next;
			owner_complete(r, 0);
		}
	}
}

void snapshot_finish(struct store *st)
{
	struct snap_state *sn = &st->snap;
	int ret = sn->ret;
	sn->running = false;
	if (ret == 0) {
		sn->failures = 0;
		sn->retry_ms = 0;
		compact(st, &sn->meta);
		st->opt.raft->snapshotted(st->opt.raft_ctx, st->snap_index);
	} else {
		/* e.g. a full disk: the old db and the log still hold
		 * everything; try again after a while, not at once */
		unsigned shift = sn->failures < 6 ? sn->failures : 6;
		uint64_t delay = (uint64_t)RETRY_FIRST_MS << shift;
		if (delay > RETRY_MAX_MS)
			delay = RETRY_MAX_MS;
		sn->failures++;
		sn->retry_ms = kv_mono_ms() + delay;
		kv_log(KV_LOG_WARN,
		       "snapshot at %" PRIu64 " failed: %s; next try "
		       "in %" PRIu64 " ms",
		       sn->meta.index, kv_strerror(ret), delay);
	}
	free(sn->meta.conf);
	sn->meta.conf = NULL;
	answer_waiters(st, ret);
}

void snapshot_drop_replica(struct store *st)
{
	map_free(st->snap.replica);
	st->snap.replica = NULL;
	st->snap.replica_index = 0;
}

/* ---- the db-writer's side ---- */

/* The replica from the db in place (the job's base). */
static int replica_load(struct store *st)
{
	struct snap_state *sn = &st->snap;
	struct map *m = map_new();
	if (!m)
		return -ENOMEM;
	struct db_meta meta = {0};
	char *why = NULL;
	int ret = db_load(st->dir, m, &meta, &why);
	free(meta.conf);
	if (ret == 0 && meta.index != sn->base)
		ret = KV_ECORRUPT;
	if (ret != 0) {
		kv_log(KV_LOG_INFO, "loading the db for a snapshot: %s",
		       why ? why : kv_strerror(ret));
		free(why);
		map_free(m);
		return ret;
	}
	sn->replica = m;
	sn->replica_index = sn->base;
	return 0;
}

/* Apply log entry le to the replica, as store_apply applies it. */
static int replica_apply(struct snap_state *sn, const struct log_entry *le)
{
	if (le->type == STORE_ENTRY_CMD - 1) {
		struct kv_cmd cmd = {0};
		int ret = kv_cmd_decode(le->data, le->len, &cmd);
		if (ret == -ENOMEM)
			return ret;
		struct kv_result res = {0};
		/* a command that does not decode changes nothing */
		if (ret == 0 &&
		    map_apply(sn->replica, le->index, &cmd, &res, NULL, NULL))
			ret = -ENOMEM;
		else
			ret = 0;
		kv_txn_res_unref(res.txn);
		kv_cmd_clear(&cmd);
		if (ret)
			return ret;
	}
	sn->replica_index = le->index;
	return 0;
}

/* Bring the replica up to the job's index from the log. The entries are
 * looked up under log_mu a chunk at a time and applied without it: they
 * are committed, and the log drops them only when compacted (after this
 * job) or reset (an install waits for this job), so their bytes stay. */
static int replica_catch_up(struct store *st)
{
	struct snap_state *sn = &st->snap;
	while (sn->replica_index < sn->meta.index) {
		struct log_entry le[CATCH_UP_CHUNK];
		size_t k = 0;
		int ret = 0;
		size_t bytes = 0;
		pthread_mutex_lock(&st->log_mu);
		for (; k < CATCH_UP_CHUNK && bytes < CATCH_UP_BYTES &&
		       sn->replica_index + k < sn->meta.index;
		     k++) {
			ret =
			    log_get(st->log, sn->replica_index + k + 1, &le[k]);
			if (ret != 0)
				break;
			bytes += le[k].len;
		}
		pthread_mutex_unlock(&st->log_mu);
		for (size_t j = 0; j < k; j++) {
			int aret = replica_apply(sn, &le[j]);
			if (aret != 0)
				return aret;
		}
		if (ret != 0)
			return ret;
	}
	return 0;
}

/* The job: the replica at meta.index, checked, written as the db. */
static int write_job(struct store *st)
{
	struct snap_state *sn = &st->snap;
	int ret = 0;
	if (!sn->replica || sn->replica_index > sn->meta.index)
		snapshot_drop_replica(st);
	if (!sn->replica)
		ret = replica_load(st);
	if (ret == 0)
		ret = replica_catch_up(st);
	if (ret == 0 && map_state_hash(sn->replica) != sn->hash) {
		kv_log(KV_LOG_WARN,
		       "snapshot at %" PRIu64 ": the replica's state "
		       "hash %016" PRIx64 " is not the map's %016" PRIx64
		       "; it is rebuilt from the db",
		       sn->meta.index, map_state_hash(sn->replica), sn->hash);
		ret = KV_ECORRUPT;
	}
	if (ret != 0) {
		snapshot_drop_replica(st);
		return ret;
	}
	struct kv_rec **recs;
	size_t n;
	ret = map_collect(sn->replica, &recs, &n);
	if (ret != 0)
		return ret;
	ret = db_write_tables(st->dir, &sn->meta, recs, n,
			      map_locks_c(sn->replica),
			      map_leases_c(sn->replica));
	map_collect_free(recs, n);
	return ret;
}

void *snapshot_writer_main(void *arg)
{
	pthread_setname_np(pthread_self(), "kvfs-dbwrite");
	kv_thread_background();
	struct store *st = arg;
	pthread_mutex_lock(&st->mu);
	for (;;) {
		while (!st->snap_job && !st->workers_stop)
			pthread_cond_wait(&st->snap_cond, &st->mu);
		if (!st->snap_job)
			break;
		pthread_mutex_unlock(&st->mu);
		uint64_t t0 = kv_mono_ns();
		int ret = write_job(st);
		if (ret == 0) {
			kv_metric_add(&store_m_snapshots, 0, 1);
			kv_hist_observe_ns(store_m_snapshot_seconds.hists,
					   kv_mono_ns() - t0);
		}
		pthread_mutex_lock(&st->mu);
		st->snap_job = false;
		st->snap.ret = ret;
		owner_push_locked(st, &st->snap_done);
	}
	pthread_mutex_unlock(&st->mu);
	return NULL;
}
