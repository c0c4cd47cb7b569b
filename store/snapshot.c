/* snapshot.c - snapshots on schedule: the db-writer thread and compaction
 * of the log.
 *
 * A db is due after snapshot_every applied entries or once the log holds
 * max(snapshot_bytes, min(4 x db, db + 3 x snapshot_bytes)) bytes
 * (byte_trigger): a db rewrites the live data, so with 1 GiB of it a db
 * every 64 MiB of log would write 16 bytes for each byte of log. The appender
 * and the applier check the schedule the owner published (two atomic loads)
 * after every call and wake the owner when it is due, so snapshots follow the
 * traffic with no turn of their own. While the applies replay the log
 * store_recover handed the core (up to st->replay_end) no db is due by
 * count or bytes, only one asked for (store_snapshot_soon): the first
 * turn at the replay's last entry takes it. A job's start takes map_lock for a
 * moment only: the applied index, its term, the map's state hash, the
 * configuration, the lock and lease tables, and it marks the map's cut
 * (map_cut_begin): from then on the applier keeps the record each key had at
 * the cut before its first change. The db-writer thread then collects the cut's
 * records from the map a step of CUT_STEP keys at a time, each step under the
 * read lock (walking 1M keys under the lock at once took 200 ms, and the
 * applier waits for it), checks that their hash is the map's at the cut, ends
 * the cut, and writes the db from the records (referenced, so they outlive any
 * change). No second copy of the map is kept. A failed job (a full disk) is
 * retried after a backoff, not at once. Threads: store_int.h. */
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_int.h"

#define RETRY_FIRST_MS 1000
#define RETRY_MAX_MS   60000
/* Keys looked at in one step of a cut's walk, under the map's read lock:
 * about 0.1 ms. */
#define CUT_STEP 1024

/* ---- the owner's side ---- */

/* End the map's cut and drop the job's lock table. */
static void cut_end(struct store *st)
{
	pthread_rwlock_wrlock(&st->map_lock);
	map_cut_end(st->map);
	pthread_rwlock_unlock(&st->map_lock);
	locks_clear(&st->snap.locks);
	leases_clear(&st->snap.leases);
}

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
		  (!st->conf_json || (conf = strdup(st->conf_json))) &&
		  locks_copy(&sn->locks, map_locks_c(st->map)) == 0 &&
		  leases_copy(&sn->leases, map_leases_c(st->map)) == 0;
	/* The read lock is enough to mark the cut: only the applier, under
	 * the write lock, changes the map (and reads the mark). */
	if (ok && map_cut_begin(st->map) != 0)
		ok = false;
	if (!ok) {
		locks_clear(&sn->locks);
		leases_clear(&sn->leases);
	}
	pthread_rwlock_unlock(&st->map_lock);
	if (!ok) {
		free(conf);
		return false; /* nothing new, or no memory: later */
	}
	/* Not before the log holds the applied entry with its term: an
	 * entry may be applied before the appender wrote it (a full disk),
	 * or while the log holds an older copy from another term; the log
	 * is compacted up to the db. Checked after map_lock (lock order),
	 * the cut already marked (cut_end undoes it): an applied
	 * entry is committed, so once the log holds it only a compaction,
	 * ours, removes it. */
	pthread_mutex_lock(&st->log_mu);
	ok = log_last_index(st->log) >= applied &&
	     log_term_at(st->log, applied) == term;
	pthread_mutex_unlock(&st->log_mu);
	if (!ok) {
		cut_end(st);
		free(conf);
		return false;
	}
	sn->meta =
	    (struct db_meta){.index = applied, .term = term, .conf = conf};
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

/* The log bytes that make a db due: snapshot_bytes, or SNAP_DB_FACTOR
 * times the size of the db in place when that is larger, with at most
 * SNAP_DB_FACTOR - 1 times snapshot_bytes of log beyond the db's size. A
 * db rewrites the live data: with 1 GiB of it a db every 64 MiB of log
 * would write 16 bytes for each byte of log, and with a db about as big
 * as snapshot_bytes (64 keys of 1 MiB rewritten) the disk took every
 * byte twice, once in the log and once in the db; this way a db costs at
 * most 1 / SNAP_DB_FACTOR of the log's bytes while the db is not larger
 * than snapshot_bytes, and the log grows to about the db's size plus
 * (SNAP_DB_FACTOR - 1) x snapshot_bytes at most (docs/log-format.md). A
 * stat on the owner thread, once per turn of the schedule. */
uint64_t snapshot_byte_trigger(uint64_t snapshot_bytes, uint64_t db)
{
	uint64_t k = SNAP_DB_FACTOR;
	uint64_t scaled = db > UINT64_MAX / k ? UINT64_MAX : db * k;
	uint64_t capped = db + (k - 1) * snapshot_bytes;
	if (capped < db) /* overflow */
		capped = UINT64_MAX;
	uint64_t t = scaled < capped ? scaled : capped;
	return t > snapshot_bytes ? t : snapshot_bytes;
}

static uint64_t byte_trigger(const struct store *st)
{
	return snapshot_byte_trigger(st->bytes, db_size(st->dir));
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
	uint64_t replay_end = st->replay_end; /* an append may cut it */
	pthread_mutex_unlock(&st->log_mu);
	if (applied < replay_end &&
	    atomic_load(&st->want_db) <= st->snap_index) {
		/* the applies of the recovered log: the entries are durable
		 * in it, and a db of the whole map taken now would only
		 * compete for the CPU with the replay the first write waits
		 * for; the schedule looks again at its last entry */
		publish(st, replay_end, UINT64_MAX);
		return;
	}
	uint64_t trigger = byte_trigger(st);
	bool due = applied - st->snap_index >= st->every || bytes >= trigger ||
		   atomic_load(&st->want_db) > st->snap_index;
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

void store_snapshot_soon(struct store *st, uint64_t index)
{
	uint64_t want = atomic_load(&st->want_db);
	while (want < index &&
	       !atomic_compare_exchange_weak(&st->want_db, &want, index))
		;
	if (atomic_exchange(&st->kicked, true))
		return; /* a turn is asked for already */
	owner_wake(st);
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

/* ---- the db-writer's side ---- */

/* The records of the cut, a step at a time. */
static int collect_cut(struct store *st, struct map_cut_reader *r)
{
	int ret = 0;
	while (ret == 0 && !r->done) {
		pthread_rwlock_rdlock(&st->map_lock);
		ret = map_cut_step(st->map, r, CUT_STEP);
		pthread_rwlock_unlock(&st->map_lock);
	}
	return ret;
}

/* The job: the map's records at meta.index, checked, written as the db. */
static int write_job(struct store *st)
{
	struct snap_state *sn = &st->snap;
	struct map_cut_reader r = {0};
	int ret = collect_cut(st, &r);
	map_cut_hash(&r); /* after the steps: no lock held */
	uint64_t hash =
	    r.hash + locks_hash(&sn->locks) + leases_hash(&sn->leases);
	pthread_rwlock_wrlock(&st->map_lock);
	map_cut_end(st->map);
	pthread_rwlock_unlock(&st->map_lock);
	if (ret == 0 && hash != sn->hash) {
		kv_log(KV_LOG_WARN,
		       "snapshot at %" PRIu64 ": the records collected hash "
		       "to %016" PRIx64 ", not the map's %016" PRIx64
		       "; no db written",
		       sn->meta.index, hash, sn->hash);
		ret = KV_ECORRUPT;
	}
	if (ret == 0)
		ret = db_write_tables(st->dir, &sn->meta, r.recs, r.n,
				      &sn->locks, &sn->leases);
	map_cut_reader_free(&r);
	locks_clear(&sn->locks);
	leases_clear(&sn->leases);
	/* The records replaced since the last job were freed by the applier
	 * and the history into holes of the heap: give back the free pages
	 * of every arena (a few ms at 1M keys, once a db). */
	malloc_trim(0);
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
