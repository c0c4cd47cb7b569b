/* store.c - the store-owner thread.
 *
 * One thread owns the map and the files of a node; other threads enqueue a
 * request and wait on its semaphore (the seeds' channel with a reply
 * channel), except reads, which look the map up on their own thread under
 * a read lock the owner takes for writing around each batch of changes
 * (a read costs no thread hand-off). The owner drains the queue in batches:
 * appends of a batch are written into the log's mapping and share one
 * fdatasync, which runs on a sync thread so that the owner keeps serving reads
 * and collecting the next batch meanwhile (group commit). Entries are applied
 * to the map and their writers answered only after the sync covering them
 * returned. Snapshots are written by a third thread from references to the
 * immutable records, so writes go on while a db is written.
 *
 * The Raft path appends and applies on the caller's thread (the node
 * thread), not the owner's. store_append writes entries into the log's
 * mapping under log_mu and hands the sync thread a job if it is idle; the
 * sync thread, when it finishes, reports the node its entries durable and
 * takes whatever was written meanwhile as the next job. A stream of writes
 * so needs no owner turn at all: each hand-off to the owner cost a thread
 * wake-up on every write's path. The owner keeps what is slow or rare:
 * appends stalled on a full disk, snapshots and compaction, installs,
 * status. store_apply takes map_lock for writing and changes the map,
 * st->applied, st->applied_term and st->conf_json there. An entry is
 * committed before it is applied, so applying it needs nothing of the log.
 *
 * Invariants:
 *  1. st->log, the stalled appends and the sync hand-off are touched only
 *     under log_mu. The other fields below "owner state" are the owner's,
 *     except the applied state, which changes only under map_lock held for
 *     writing (store_apply on the applier's thread; the owner's install
 *     and legacy propose path, which never run at the same time as an
 *     apply); other threads read it under map_lock.
 *  2. A proposal is answered only after the fdatasync covering its entry
 *     returned 0 and the entry was applied.
 *  3. A failed sync is sticky (st->failed): no later write is accepted.
 *  4. The log is compacted only after the db covering it is in place. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "db.h"
#include "hardstate.h"
#include "log.h"
#include "map.h"
#include "store.h"

enum req_type {
	REQ_PROPOSE,
	REQ_STATUS,
	REQ_HARDSTATE,
	REQ_SNAPSHOT,
	REQ_RECOVER,
	REQ_INSTALL,
	REQ_SYNC_DONE, /* internal: the sync thread finished */
	REQ_SNAP_DONE, /* internal: the snapshot thread finished */
};

struct req {
	enum req_type type;
	struct req *next;
	int ret;
	sem_t done;
	/* inputs */
	uint64_t term, vote;
	const struct kv_cmd *cmd;
	const char *json; /* encoded cmd */
	size_t json_len;
	/* outputs */
	uint64_t index;
	struct kv_result *res;
	struct store_status *status;
	/* raft path, a stalled append (st->stalled): copies of the entries
	 * not yet written */
	struct store_entry *ents;
	size_t n;
	size_t written; /* entries written so far */
	struct store_recovery *recovery;
	const char *path; /* REQ_INSTALL */
};

struct store {
	char *dir;
	struct store_options opt;
	int lock_fd;

	pthread_mutex_t mu; /* guards the queue and the two job slots */
	pthread_cond_t cond;
	struct req *head, *tail;
	bool stopping;	   /* no new requests; the owner drains and exits */
	bool workers_stop; /* the owner has exited: sync/snapshot threads too */

	pthread_t owner, syncer, snapper;
	pthread_cond_t snap_cond;
	bool snap_job; /* the snapshot thread has work */
	int snap_ret;
	struct req sync_done, snap_done; /* preallocated internal requests */
	bool sync_done_queued;		 /* sync_done is in the queue */

	/* The log and the sync hand-off. The Raft path writes entries on the
	 * caller's thread (store_append), the owner on its own (stalled
	 * appends, the legacy propose path, compaction, installs): log_mu
	 * guards st->log, the stalled list, the room, and the fields below.
	 * snap_index and snap_term change under it too (the appender skips
	 * what a db holds). Lock order: log_mu, then map_lock, then mu. */
	pthread_mutex_t log_mu;
	pthread_cond_t sync_cond;
	struct log_sync *sync_job;	    /* handed to the sync thread */
	uint64_t sync_p_index, sync_p_term; /* the last append it covers */
	int sync_ret;
	bool sync_busy;	  /* a job is with the sync thread */
	bool sync_notify; /* the owner wants sync_done once it is idle */
	/* an install waits: no new job (what it drops is never reported) */
	bool sync_hold;
	/* the last entry written since the last job was prepared (0: none):
	 * the sync thread prepares the next job itself when it finishes, so
	 * a stream of appends needs no owner turn per group commit */
	uint64_t w_index, w_term;

	/* owner state; the map is also read by other threads (store_get,
	 * store_stat, store_list) under map_lock, which the owner takes for
	 * writing around every change to it */
	pthread_rwlock_t map_lock;
	struct map *map;
	struct log *log;
	uint64_t applied, applied_term; /* under map_lock (invariant 1) */
	uint64_t snap_index, snap_term;
	uint64_t term, vote;
	_Atomic int failed; /* set by the owner, or by store_apply */
	/* the legacy propose path: its writers wait for the sync covering
	 * their entries, which only the owner starts for them */
	struct req *pending, *pending_tail;   /* appended, not yet syncing */
	struct req *inflight, *inflight_tail; /* covered by the running sync */
	bool sync_running;		      /* the owner's sync */
	bool snap_running;
	uint64_t snap_retry_at; /* after a failed snapshot: applied index to
				   wait for before trying again */
	struct req *snap_waiters;
	/* handed to the snapshot thread while snap_running */
	struct kv_rec **snap_recs;
	size_t snap_n;
	struct db_meta snap_meta;
	/* raft path */
	char *conf_json; /* configuration in effect at applied, as JSON */
	struct req *stalled, *stalled_tail; /* appends waiting for space */
	atomic_bool any_stalled;     /* stalled != NULL, for the owner's wait */
	struct req *install_waiting; /* REQ_INSTALL behind a running db write */
	uint64_t fs_room, fs_checked_ms; /* update_room's statvfs, cached */
	_Atomic uint64_t room;
	_Atomic uint64_t pub_applied;
};

#define DEFAULT_SNAPSHOT_EVERY 10000
#define DEFAULT_SNAPSHOT_BYTES (64u * 1024 * 1024)

static void complete(struct req *r, int ret)
{
	r->ret = ret;
	sem_post(&r->done);
}

/* Append r to the queue and wake the owner; st->mu held. */
static void push_locked(struct store *st, struct req *r)
{
	r->next = NULL;
	if (st->tail)
		st->tail->next = r;
	else
		st->head = r;
	st->tail = r;
	pthread_cond_signal(&st->cond);
}

/* Append r to the queue; false if the store is stopping. */
static bool enqueue(struct store *st, struct req *r)
{
	pthread_mutex_lock(&st->mu);
	bool open = !st->stopping;
	if (open)
		push_locked(st, r);
	pthread_mutex_unlock(&st->mu);
	return open;
}

/* Submit r and wait for the owner's answer. */
static int call(struct store *st, struct req *r)
{
	sem_init(&r->done, 0, 0);
	if (!enqueue(st, r)) {
		sem_destroy(&r->done);
		return KV_ESHUTDOWN;
	}
	while (sem_wait(&r->done) != 0 && errno == EINTR)
		;
	sem_destroy(&r->done);
	return r->ret;
}

static void on_change(void *ctx, const char *key, size_t klen)
{
	struct store *st = ctx;
	if (st->opt.on_change)
		st->opt.on_change(st->opt.on_change_ctx, key, klen);
}

/* ---- sync and snapshot threads ---- */

static void set_failed(struct store *st, int err, const char *what);

/* Hand the sync thread a job covering what was written since the last
 * one, if it is idle and something was. log_mu held. */
static void kick_sync_locked(struct store *st)
{
	if (st->sync_busy || !st->w_index || st->failed || st->sync_hold)
		return;
	struct log_sync *job;
	int ret = log_sync_prepare(st->log, &job);
	if (ret != 0) {
		set_failed(st, ret, "log sync failed");
		st->w_index = 0;
		return;
	}
	st->sync_job = job;
	st->sync_p_index = st->w_index;
	st->sync_p_term = st->w_term;
	st->w_index = st->w_term = 0;
	st->sync_busy = true;
	pthread_cond_signal(&st->sync_cond);
}

/* Queue st->sync_done for the owner unless it is queued already. */
static void notify_owner(struct store *st)
{
	pthread_mutex_lock(&st->mu);
	if (!st->sync_done_queued) {
		st->sync_done_queued = true;
		/* internal requests bypass the stopping check: the owner
		 * waits for them before it exits */
		push_locked(st, &st->sync_done);
	}
	pthread_mutex_unlock(&st->mu);
}

static void *sync_main(void *arg)
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
		int ret = log_sync_run(job);
		log_sync_done(job);
		/* tell the node at once, not through the owner: one hand-off
		 * less on every write's path (an install waits for this sync,
		 * so these entries are still the log's) */
		if (ret == 0 && p_index)
			st->opt.raft->persisted(st->opt.raft_ctx, p_index,
						p_term);
		if (ret != 0)
			set_failed(st, ret, "fdatasync of the log failed");
		pthread_mutex_lock(&st->log_mu);
		st->sync_job = NULL;
		st->sync_ret = ret;
		st->sync_busy = false;
		/* what was written meanwhile: the next group commit */
		kick_sync_locked(st);
		if (!st->sync_busy && st->sync_notify) {
			st->sync_notify = false;
			notify_owner(st);
		}
	}
	pthread_mutex_unlock(&st->log_mu);
	return NULL;
}

/* The owner is gone, or never started: the sync and db threads end. */
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

static void *snap_main(void *arg)
{
	pthread_setname_np(pthread_self(), "kvfs-dbwrite");
	struct store *st = arg;
	pthread_mutex_lock(&st->mu);
	for (;;) {
		while (!st->snap_job && !st->workers_stop)
			pthread_cond_wait(&st->snap_cond, &st->mu);
		if (!st->snap_job)
			break;
		pthread_mutex_unlock(&st->mu);
		int ret = db_write(st->dir, &st->snap_meta, st->snap_recs,
				   st->snap_n);
		pthread_mutex_lock(&st->mu);
		st->snap_job = false;
		st->snap_ret = ret;
		push_locked(st, &st->snap_done);
	}
	pthread_mutex_unlock(&st->mu);
	return NULL;
}

/* ---- owner thread ---- */

static void req_free(struct req *r)
{
	for (size_t i = 0; i < r->n; i++)
		free((void *)r->ents[i].data);
	free(r->ents);
	free(r);
}

/* Free the stalled appends (an install, a failure, the end); log_mu held
 * or no other thread left. Never written, never acknowledged. */
static void drop_stalled(struct store *st)
{
	while (st->stalled) {
		struct req *r = st->stalled;
		st->stalled = r->next;
		req_free(r);
	}
	st->stalled_tail = NULL;
	st->any_stalled = false;
}

/* A write or sync failed: refuse every later write (invariant 3). */
static void set_failed(struct store *st, int err, const char *what)
{
	int none = 0;
	if (!atomic_compare_exchange_strong(&st->failed, &none, err))
		return;
	fprintf(stderr, "kvfs: %s: %s; refusing writes\n", what,
		kv_strerror(err));
}

static void pending_push(struct store *st, struct req *r)
{
	r->next = NULL;
	if (st->pending_tail)
		st->pending_tail->next = r;
	else
		st->pending = r;
	st->pending_tail = r;
}

static char *conf_to_json(const void *text, size_t len);

/* Write entry e into the log; log_mu held. Entries a db holds are skipped
 * (an install) but reported like the others. 0; -ENOSPC and -ENOMEM leave the
 * log as it was; anything else failed the store. */
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
			       .len = e->len};
	if (e->type == STORE_ENTRY_CONFIG) {
		/* configuration texts become JSON strings: the log keeps
		 * JSON */
		conf = conf_to_json(e->data, e->len);
		if (!conf)
			return -ENOMEM;
		le.data = conf;
		le.len = strlen(conf);
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
		set_failed(st, ret, what);
	}
	return ret;
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

/* Retry stalled appends (a full disk) in order; log_mu held. */
static void retry_stalled(struct store *st)
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
	if (st->failed)
		drop_stalled(st);
	st->any_stalled = st->stalled != NULL;
}

/* A configuration entry's text as the JSON string the log and db keep. */
static char *conf_to_json(const void *text, size_t len)
{
	char *t = strndup(text, len);
	if (!t)
		return NULL;
	cJSON *j = cJSON_CreateString(t);
	free(t);
	char *out = j ? cJSON_PrintUnformatted(j) : NULL;
	cJSON_Delete(j);
	return out;
}

static char *conf_from_json(const char *json, size_t len, size_t *out_len)
{
	cJSON *j = cJSON_ParseWithLength(json, len);
	char *out = NULL;
	if (cJSON_IsString(j)) {
		out = strdup(j->valuestring);
		if (out)
			*out_len = strlen(out);
	}
	cJSON_Delete(j);
	return out;
}

/* What apply_chunk did with each entry. */
enum applied_as { NOT_APPLIED, APPLIED, APPLIED_CMD };

#define APPLY_CHUNK 64

/* Apply committed entries e[0..n) (n <= APPLY_CHUNK) with their decoded
 * commands under one write lock, then report them with the lock released
 * (the callbacks wake readers, who take it). The applier's thread. */
static void apply_chunk(struct store *st, const struct store_entry *e,
			const struct kv_cmd *cmds, const int *cmd_err, size_t n)
{
	struct kv_result res[APPLY_CHUNK];
	unsigned char as[APPLY_CHUNK] = {0};
	pthread_rwlock_wrlock(&st->map_lock);
	for (size_t i = 0; i < n && !st->failed; i++) {
		if (e[i].index <= st->applied)
			continue; /* applied before (db or an earlier batch) */
		if (e[i].index != st->applied + 1) {
			char what[96];
			snprintf(what, sizeof(what),
				 "entry %llu to apply after %llu",
				 (unsigned long long)e[i].index,
				 (unsigned long long)st->applied);
			set_failed(st, KV_ECORRUPT, what);
			break;
		}
		res[i] = (struct kv_result){.err = 0, .rev = e[i].index};
		if (e[i].type == STORE_ENTRY_CMD) {
			if (cmd_err[i]) {
				res[i].err = cmd_err[i];
			} else if (map_apply(st->map, e[i].index, &cmds[i],
					     &res[i], on_change, st) != 0) {
				set_failed(st, -ENOMEM, "applying an entry");
				break;
			}
		} else if (e[i].type == STORE_ENTRY_CONFIG) {
			char *c = conf_to_json(e[i].data, e[i].len);
			if (!c) {
				set_failed(st, -ENOMEM, "applying a config");
				break;
			}
			free(st->conf_json);
			st->conf_json = c;
		}
		as[i] = e[i].type == STORE_ENTRY_CMD ? APPLIED_CMD : APPLIED;
		st->applied = e[i].index;
		st->applied_term = e[i].term;
		st->pub_applied = e[i].index;
	}
	pthread_rwlock_unlock(&st->map_lock);
	for (size_t i = 0; i < n; i++)
		if (as[i] != NOT_APPLIED)
			st->opt.raft->applied(
			    st->opt.raft_ctx, e[i].index, e[i].term,
			    as[i] == APPLIED_CMD ? &res[i] : NULL);
}

static int do_install(struct store *st, struct req *r);

/* Run a waiting install once no db write (its rename must not land over
 * the installed db) and no log sync (it reports its appends durable) is
 * under way; no sync starts while one waits (sync_hold). */
static void maybe_install(struct store *st)
{
	if (!st->install_waiting)
		return;
	pthread_mutex_lock(&st->log_mu);
	st->sync_hold = true;
	bool busy = st->sync_busy;
	if (busy)
		st->sync_notify = true; /* sync_done brings us back */
	pthread_mutex_unlock(&st->log_mu);
	if (busy || st->snap_running || st->sync_running)
		return;
	struct req *r = st->install_waiting;
	st->install_waiting = NULL;
	int ret = do_install(st, r);
	pthread_mutex_lock(&st->log_mu);
	st->sync_hold = false;
	kick_sync_locked(st); /* a refused install dropped nothing */
	pthread_mutex_unlock(&st->log_mu);
	complete(r, ret);
}

/* Put the snapshot file r->path in place of the map, the db and the log.
 */
static int do_install(struct store *st, struct req *r)
{
	struct map *m = map_new();
	if (!m)
		return -ENOMEM;
	struct db_meta meta = {0};
	char *why = NULL;
	int ret = db_load_file(r->path, m, &meta, &why);
	if (ret != 0) {
		fprintf(stderr, "kvfs: snapshot %s refused: %s\n", r->path,
			why ? why : kv_strerror(ret));
		free(why);
		map_free(m);
		return ret;
	}
	char db[4096];
	snprintf(db, sizeof(db), "%s/db.jsonl", st->dir);
	if (rename(r->path, db) != 0) {
		ret = -errno;
		goto err;
	}
	ret = kv_sync_dir(st->dir);
	if (ret != 0) {
		set_failed(st, ret, "syncing the installed snapshot");
		goto err;
	}
	/* the db is in place: a crash from here on restarts from it. Appends
	 * written before it, synced or not yet, are gone with the log (the
	 * appender waits for this install; the sync thread is idle). */
	pthread_mutex_lock(&st->log_mu);
	drop_stalled(st);
	st->w_index = st->w_term = 0;
	ret = log_reset(st->log, meta.index, meta.term);
	if (ret != 0) {
		pthread_mutex_unlock(&st->log_mu);
		set_failed(st, ret, "resetting the log after a snapshot");
		goto err;
	}
	/* the applier waits for this install: the lock is for readers */
	pthread_rwlock_wrlock(&st->map_lock);
	struct map *old = st->map;
	st->map = m;
	free(st->conf_json);
	st->conf_json = meta.conf;
	st->snap_index = st->applied = st->pub_applied = meta.index;
	st->snap_term = st->applied_term = meta.term;
	pthread_rwlock_unlock(&st->map_lock);
	pthread_mutex_unlock(&st->log_mu);
	map_free(old);
	st->snap_retry_at = 0;
	st->opt.raft->applied(st->opt.raft_ctx, meta.index, meta.term, NULL);
	return 0;
err:
	free(meta.conf);
	map_free(m);
	return ret;
}

static int do_recover_locked(struct store *st, struct store_recovery *rec);

static int do_recover(struct store *st, struct store_recovery *rec)
{
	pthread_mutex_lock(&st->log_mu);
	int ret = do_recover_locked(st, rec);
	pthread_mutex_unlock(&st->log_mu);
	return ret;
}

static int do_recover_locked(struct store *st, struct store_recovery *rec)
{
	memset(rec, 0, sizeof(*rec));
	rec->term = st->term;
	rec->vote = st->vote;
	rec->snap_index = st->snap_index;
	rec->snap_term = st->snap_term;
	int ret = 0;
	if (st->conf_json) {
		rec->conf = conf_from_json(st->conf_json, strlen(st->conf_json),
					   &rec->conf_len);
		if (!rec->conf) {
			ret = KV_ECORRUPT;
			goto out;
		}
	}
	uint64_t last = log_last_index(st->log);
	uint64_t from = st->snap_index + 1;
	if (last >= from) {
		rec->entries = calloc(last - from + 1, sizeof(*rec->entries));
		if (!rec->entries) {
			ret = -ENOMEM;
			goto out;
		}
	}
	for (uint64_t i = from; i <= last; i++) {
		struct log_entry le;
		ret = log_get(st->log, i, &le);
		if (ret != 0)
			goto out;
		struct store_entry *e = &rec->entries[rec->n++];
		e->index = le.index;
		e->term = le.term;
		e->type = le.type + 1;
		void *data = NULL;
		size_t len = 0;
		if (e->type == STORE_ENTRY_CONFIG) {
			data = conf_from_json(le.data, le.len, &len);
			if (!data) {
				ret = KV_ECORRUPT;
				goto out;
			}
		} else if (le.len) {
			data = malloc(le.len);
			if (!data) {
				ret = -ENOMEM;
				goto out;
			}
			memcpy(data, le.data, le.len);
			len = le.len;
		}
		e->data = data;
		e->len = len;
	}
out:
	if (ret != 0)
		store_recovery_free(rec);
	return ret;
}

/* What store_room reports (after each batch); log_mu held, or no other
 * thread yet. */
static void update_room(struct store *st)
{
	uint64_t room = log_room(st->log);
	size_t seg =
	    st->opt.segment_size ? st->opt.segment_size : 64u * 1024u * 1024u;
	/* A new segment is preallocated whole: it needs seg bytes free (and
	 * a margin for the db and hard state). The file system is asked at
	 * most every 100 ms while the open segment has room to spare. */
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	uint64_t now_ms =
	    (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;
	struct statvfs vfs;
	if ((room < (4u << 20) || now_ms >= st->fs_checked_ms + 100) &&
	    statvfs(st->dir, &vfs) == 0) {
		uint64_t free_bytes = (uint64_t)vfs.f_bavail * vfs.f_frsize;
		st->fs_room = free_bytes >= seg + (1u << 20)
				  ? free_bytes - (1u << 20)
				  : 0;
		st->fs_checked_ms = now_ms;
	}
	st->room = room + st->fs_room;
}

/* A db of the applied state. Not before the log holds the last applied
 * entry: store_apply runs on another thread and may apply an entry the
 * owner has not written yet (or one whose conflicting older copy it has
 * not yet replaced), and the log is compacted up to the db's index. */
static void start_snapshot(struct store *st)
{
	if (st->snap_running)
		return;
	pthread_rwlock_rdlock(&st->map_lock);
	uint64_t applied = st->applied, term = st->applied_term;
	struct kv_rec **recs = NULL;
	size_t n = 0;
	char *conf = NULL;
	bool ok = applied != st->snap_index &&
		  map_collect(st->map, &recs, &n) == 0; /* else: try later */
	if (ok && st->conf_json && !(conf = strdup(st->conf_json))) {
		map_collect_free(recs, n);
		ok = false;
	}
	pthread_rwlock_unlock(&st->map_lock);
	if (!ok)
		return;
	/* checked after the collection (lock order): an applied entry is
	 * committed, so once the log holds it only a compaction, ours,
	 * removes it */
	pthread_mutex_lock(&st->log_mu);
	ok = log_last_index(st->log) >= applied &&
	     log_term_at(st->log, applied) == term;
	pthread_mutex_unlock(&st->log_mu);
	if (!ok) {
		map_collect_free(recs, n);
		free(conf);
		return;
	}
	st->snap_recs = recs;
	st->snap_n = n;
	st->snap_meta.index = applied;
	st->snap_meta.term = term;
	st->snap_meta.conf = conf;
	st->snap_running = true;
	pthread_mutex_lock(&st->mu);
	st->snap_job = true;
	pthread_cond_signal(&st->snap_cond);
	pthread_mutex_unlock(&st->mu);
}

static void finish_snapshot(struct store *st)
{
	int ret = st->snap_ret;
	map_collect_free(st->snap_recs, st->snap_n);
	st->snap_recs = NULL;
	free(st->snap_meta.conf);
	st->snap_meta.conf = NULL;
	st->snap_running = false;
	if (ret == 0) {
		pthread_mutex_lock(&st->log_mu);
		st->snap_index = st->snap_meta.index;
		st->snap_term = st->snap_meta.term;
		ret = log_compact(st->log, st->snap_index, st->snap_term);
		pthread_mutex_unlock(&st->log_mu);
		if (ret != 0)
			fprintf(stderr, "kvfs: log compaction failed: %s\n",
				kv_strerror(ret));
		ret = 0; /* the db is in place; compaction can wait */
		if (st->opt.raft)
			st->opt.raft->snapshotted(st->opt.raft_ctx,
						  st->snap_index);
	} else {
		/* e.g. a full disk: the old db and the log still hold
		 * everything; try again after more entries, not at once */
		uint64_t every = st->opt.snapshot_every
				     ? st->opt.snapshot_every
				     : DEFAULT_SNAPSHOT_EVERY;
		st->snap_retry_at = st->pub_applied + every / 4 + 1;
		fprintf(stderr, "kvfs: snapshot failed: %s\n",
			kv_strerror(ret));
	}
	while (st->snap_waiters) {
		struct req *r = st->snap_waiters;
		st->snap_waiters = r->next;
		complete(r, ret);
	}
	maybe_install(st);
}

static void maybe_snapshot(struct store *st)
{
	uint64_t every = st->opt.snapshot_every ? st->opt.snapshot_every
						: DEFAULT_SNAPSHOT_EVERY;
	uint64_t bytes = st->opt.snapshot_bytes ? st->opt.snapshot_bytes
						: DEFAULT_SNAPSHOT_BYTES;
	uint64_t applied = st->pub_applied;
	if (applied < st->snap_retry_at)
		return;
	pthread_mutex_lock(&st->log_mu);
	uint64_t log_size = log_bytes(st->log);
	pthread_mutex_unlock(&st->log_mu);
	if (applied - st->snap_index >= every || log_size >= bytes)
		start_snapshot(st);
}

/* The legacy propose path's group commit: a sync covering the pending
 * proposals, answered at sync_done. */
static void start_sync(struct store *st)
{
	/* an install waiting for the running sync must not wait forever */
	if (st->sync_running || !st->pending || st->install_waiting)
		return;
	pthread_mutex_lock(&st->log_mu);
	if (st->sync_busy) {
		st->sync_notify = true; /* sync_done brings us back */
		pthread_mutex_unlock(&st->log_mu);
		return;
	}
	struct log_sync *job;
	int ret = log_sync_prepare(st->log, &job);
	if (ret == 0) {
		st->sync_job = job;
		st->sync_p_index = st->sync_p_term = 0; /* nothing to report */
		st->sync_busy = true;
		st->sync_notify = true;
		pthread_cond_signal(&st->sync_cond);
	}
	pthread_mutex_unlock(&st->log_mu);
	if (ret != 0) {
		set_failed(st, ret, "log sync failed");
		while (st->pending) {
			struct req *r = st->pending;
			st->pending = r->next;
			complete(r, KV_EFAILED);
		}
		st->pending_tail = NULL;
		return;
	}
	st->inflight = st->pending;
	st->inflight_tail = st->pending_tail;
	st->pending = st->pending_tail = NULL;
	st->sync_running = true;
}

/* sync_done: the sync thread went idle after a job of ours, or the owner
 * asked to hear when it does (an install, the end). */
static void finish_sync(struct store *st)
{
	pthread_mutex_lock(&st->mu);
	st->sync_done_queued = false;
	pthread_mutex_unlock(&st->mu);
	if (!st->sync_running) {
		maybe_install(st);
		return;
	}
	pthread_mutex_lock(&st->log_mu);
	int ret = st->sync_ret;
	pthread_mutex_unlock(&st->log_mu);
	st->sync_running = false;
	if (ret != 0)
		set_failed(st, ret, "fdatasync of the log failed");
	while (st->inflight) {
		struct req *r = st->inflight;
		st->inflight = r->next;
		if (st->failed) {
			complete(r, KV_EFAILED);
			continue;
		}
		pthread_rwlock_wrlock(&st->map_lock);
		int err =
		    map_apply(st->map, r->index, r->cmd, r->res, on_change, st);
		if (err == 0) {
			st->applied = st->pub_applied = r->index;
			st->applied_term = r->term;
		}
		pthread_rwlock_unlock(&st->map_lock);
		complete(r, err);
	}
	st->inflight_tail = NULL;
	maybe_install(st);
}

static void do_propose(struct store *st, struct req *r)
{
	if (st->failed) {
		complete(r, KV_EFAILED);
		return;
	}
	pthread_mutex_lock(&st->log_mu);
	uint64_t index = log_last_index(st->log) + 1;
	struct log_entry e = {.index = index,
			      .term = r->term,
			      .type = 0,
			      .data = r->json,
			      .len = r->json_len};
	int ret = log_append(st->log, &e);
	pthread_mutex_unlock(&st->log_mu);
	if (ret != 0) {
		/* -ENOSPC, -EINVAL, -ENOMEM leave the log unchanged; anything
		 * else came from a sync the log ran itself, and is sticky. */
		if (ret != -ENOSPC && ret != -EINVAL && ret != -ENOMEM) {
			set_failed(st, ret, "log write failed");
			ret = KV_EFAILED;
		}
		complete(r, ret);
		return;
	}
	r->index = index;
	r->res->rev = index;
	pending_push(st, r);
}

static void do_status(struct store *st, struct store_status *s)
{
	pthread_rwlock_rdlock(&st->map_lock);
	s->applied_index = st->applied;
	s->keys = map_count(st->map);
	s->bytes = map_bytes(st->map);
	s->state_hash = map_state_hash(st->map);
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
}

static void handle(struct store *st, struct req *r)
{
	switch (r->type) {
	case REQ_PROPOSE:
		do_propose(st, r);
		break;
	case REQ_STATUS:
		do_status(st, r->status);
		complete(r, 0);
		break;
	case REQ_HARDSTATE: {
		int ret = hardstate_save(st->dir, r->term, r->vote);
		if (ret == 0) {
			st->term = r->term;
			st->vote = r->vote;
		}
		complete(r, ret);
		break;
	}
	case REQ_SNAPSHOT:
		start_snapshot(st);
		if (!st->snap_running) {
			complete(r, 0); /* nothing new to write */
			break;
		}
		r->next = st->snap_waiters;
		st->snap_waiters = r;
		break;
	case REQ_RECOVER:
		complete(r, do_recover(st, r->recovery));
		break;
	case REQ_INSTALL:
		st->install_waiting = r;
		maybe_install(st);
		break;
	case REQ_SYNC_DONE:
		finish_sync(st);
		break;
	case REQ_SNAP_DONE:
		finish_snapshot(st);
		break;
	}
}

/* Stopping, and nothing left to finish; st->mu held. */
static bool owner_done(const struct store *st, bool sync_busy)
{
	return st->stopping && !st->sync_running && !sync_busy &&
	       !st->snap_running && !st->pending;
}

static void *owner_main(void *arg)
{
	pthread_setname_np(pthread_self(), "kvfs-store");
	struct store *st = arg;
	for (;;) {
		/* at the end, the sync thread finishes before we do (it
		 * reports to the node) */
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
		bool recheck = false;
		while (!st->head && !owner_done(st, sync_busy)) {
			if (st->stopping && !stopping) {
				recheck = true; /* the sync thread first */
				break;
			}
			if (!st->any_stalled) {
				pthread_cond_wait(&st->cond, &st->mu);
				continue;
			}
			/* a full disk: look again for space every 100 ms */
			struct timespec t;
			clock_gettime(CLOCK_REALTIME, &t);
			t.tv_nsec += 100 * 1000000;
			if (t.tv_nsec >= 1000000000) {
				t.tv_sec++;
				t.tv_nsec -= 1000000000;
			}
			if (pthread_cond_timedwait(&st->cond, &st->mu, &t) ==
			    ETIMEDOUT)
				break;
		}
		struct req *batch = st->head;
		st->head = st->tail = NULL;
		bool stop = !batch && !recheck && owner_done(st, sync_busy);
		pthread_mutex_unlock(&st->mu);
		if (stop)
			break;
		while (batch) {
			struct req *r = batch;
			batch = r->next;
			handle(st, r);
		}
		/* the room first: once the sync starts, its thread may report
		 * these appends durable, and the room must already count them
		 */
		pthread_mutex_lock(&st->log_mu);
		retry_stalled(st);
		update_room(st);
		kick_sync_locked(st);
		pthread_mutex_unlock(&st->log_mu);
		start_sync(st);
		if (!st->failed)
			maybe_snapshot(st);
	}
	return NULL;
}

/* ---- opening: lock, load the db, replay the log ---- */

static int mkdir_p(const char *dir)
{
	char *p = strdup(dir);
	if (!p)
		return -ENOMEM;
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0755) != 0 && errno != EEXIST) {
			int err = -errno;
			free(p);
			return err;
		}
		*s = '/';
	}
	int ret = 0;
	if (mkdir(p, 0755) != 0 && errno != EEXIST)
		ret = -errno;
	free(p);
	return ret;
}

static char *fmt_msg(const char *fmt, const char *a, const char *b)
{
	char *m = NULL;
	if (asprintf(&m, fmt, a, b) < 0)
		return NULL;
	return m;
}

static int replay(struct store *st, char **errmsg)
{
	uint64_t first = log_first_index(st->log);
	uint64_t last = log_last_index(st->log);
	if (last < st->snap_index) {
		/* the db is ahead of the whole log: start the log after it */
		return log_reset(st->log, st->snap_index, st->snap_term);
	}
	if (first > st->snap_index + 1) {
		char a[64], b[64];
		snprintf(a, sizeof(a), "%llu",
			 (unsigned long long)st->snap_index);
		snprintf(b, sizeof(b), "%llu", (unsigned long long)first);
		*errmsg = fmt_msg("the db ends at index %s but the log starts "
				  "at %s: entries are missing",
				  a, b);
		return KV_ECORRUPT;
	}
	if (st->opt.raft)
		return 0; /* the core applies what it knows is committed */
	for (uint64_t i = st->snap_index + 1; i <= last; i++) {
		struct log_entry e;
		int ret = log_get(st->log, i, &e);
		if (ret != 0) {
			char a[64];
			snprintf(a, sizeof(a), "%llu", (unsigned long long)i);
			*errmsg = fmt_msg("log entry %s unreadable: %s", a,
					  kv_strerror(ret));
			return ret;
		}
		struct kv_result res;
		if (e.type == 0) {
			struct kv_cmd cmd;
			ret = kv_cmd_decode(e.data, e.len, &cmd);
			if (ret != 0) {
				char a[64];
				snprintf(a, sizeof(a), "%llu",
					 (unsigned long long)i);
				*errmsg = fmt_msg("log entry %s holds a bad "
						  "command: %s",
						  a, kv_strerror(ret));
				return ret == KV_EVERSION ? ret : KV_ECORRUPT;
			}
			ret = map_apply(st->map, i, &cmd, &res, NULL, NULL);
			kv_cmd_clear(&cmd);
			if (ret != 0)
				return ret;
		}
		st->applied = i;
		st->applied_term = e.term;
	}
	return 0;
}

int store_open(const struct store_options *opt, struct store **out,
	       char **errmsg)
{
	*errmsg = NULL;
	struct store *st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->opt = *opt;
	st->lock_fd = -1;
	int ret = -ENOMEM;
	st->dir = strdup(opt->dir);
	if (!st->dir)
		goto err_free;
	ret = mkdir_p(st->dir);
	if (ret != 0) {
		*errmsg = fmt_msg("cannot create data directory %s: %s",
				  st->dir, strerror(-ret));
		goto err_free;
	}
	char path[4096];
	snprintf(path, sizeof(path), "%s/LOCK", st->dir);
	st->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (st->lock_fd < 0) {
		ret = -errno;
		*errmsg = fmt_msg("cannot open %s: %s", path, strerror(-ret));
		goto err_free;
	}
	if (flock(st->lock_fd, LOCK_EX | LOCK_NB) != 0) {
		ret = -EBUSY;
		*errmsg = fmt_msg("data directory %s is in use by another "
				  "kvfs process%s",
				  st->dir, "");
		goto err_unlock;
	}
	ret = hardstate_load(st->dir, &st->term, &st->vote, errmsg);
	if (ret != 0)
		goto err_unlock;
	st->map = map_new();
	if (!st->map) {
		ret = -ENOMEM;
		goto err_unlock;
	}
	struct db_meta meta = {0};
	ret = db_load(st->dir, st->map, &meta, errmsg);
	if (ret != 0)
		goto err_map;
	st->conf_json = meta.conf;
	st->snap_index = st->applied = meta.index;
	st->snap_term = st->applied_term = meta.term;
	ret = log_open(st->dir, opt->segment_size, &st->log, errmsg);
	if (ret != 0)
		goto err_map;
	ret = replay(st, errmsg);
	if (ret != 0)
		goto err_log;
	st->pub_applied = st->applied;
	update_room(st);

	pthread_mutex_init(&st->mu, NULL);
	pthread_mutex_init(&st->log_mu, NULL);
	pthread_cond_init(&st->cond, NULL);
	pthread_cond_init(&st->sync_cond, NULL);
	pthread_cond_init(&st->snap_cond, NULL);
	/* writers first: a stream of readers must not hold off the owner */
	pthread_rwlockattr_t rwa;
	pthread_rwlockattr_init(&rwa);
	pthread_rwlockattr_setkind_np(
	    &rwa, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&st->map_lock, &rwa);
	pthread_rwlockattr_destroy(&rwa);
	st->sync_done.type = REQ_SYNC_DONE;
	st->snap_done.type = REQ_SNAP_DONE;
	ret = -pthread_create(&st->syncer, NULL, sync_main, st);
	if (ret != 0)
		goto err_sync;
	ret = -pthread_create(&st->snapper, NULL, snap_main, st);
	if (ret != 0)
		goto err_snap;
	ret = -pthread_create(&st->owner, NULL, owner_main, st);
	if (ret != 0)
		goto err_owner;
	*out = st;
	return 0;

err_owner:
	stop_workers(st);
	pthread_join(st->snapper, NULL);
err_snap:
	stop_workers(st);
	pthread_join(st->syncer, NULL);
err_sync:
	pthread_rwlock_destroy(&st->map_lock);
	pthread_cond_destroy(&st->sync_cond);
	pthread_cond_destroy(&st->snap_cond);
	pthread_cond_destroy(&st->cond);
	pthread_mutex_destroy(&st->log_mu);
	pthread_mutex_destroy(&st->mu);
err_log:
	log_close(st->log);
err_map:
	free(st->conf_json);
	map_free(st->map);
err_unlock:
	close(st->lock_fd);
err_free:
	free(st->dir);
	free(st);
	return ret;
}

void store_close(struct store *st)
{
	if (!st)
		return;
	/* the owner finishes what is queued, in flight and pending */
	pthread_mutex_lock(&st->mu);
	st->stopping = true;
	pthread_cond_broadcast(&st->cond);
	pthread_mutex_unlock(&st->mu);
	pthread_join(st->owner, NULL);
	stop_workers(st);
	pthread_join(st->syncer, NULL);
	pthread_join(st->snapper, NULL);
	drop_stalled(st); /* a full disk at shutdown */
	log_close(st->log);
	map_free(st->map);
	free(st->conf_json);
	pthread_rwlock_destroy(&st->map_lock);
	pthread_cond_destroy(&st->sync_cond);
	pthread_cond_destroy(&st->snap_cond);
	pthread_cond_destroy(&st->cond);
	pthread_mutex_destroy(&st->log_mu);
	pthread_mutex_destroy(&st->mu);
	close(st->lock_fd);
	free(st->dir);
	free(st);
}

/* ---- the calls ---- */

int store_propose(struct store *st, uint64_t term, const struct kv_cmd *cmd,
		  struct kv_result *res)
{
	char *json;
	size_t len;
	/* encode on the caller's thread: the owner's time is the bottleneck */
	int ret = kv_cmd_encode(cmd, &json, &len);
	if (ret != 0)
		return ret;
	struct req r = {.type = REQ_PROPOSE,
			.term = term,
			.cmd = cmd,
			.json = json,
			.json_len = len,
			.res = res};
	res->err = 0;
	res->rev = 0;
	ret = call(st, &r);
	free(json);
	return ret;
}

/* Reads run on the caller's thread under the map's read lock: no
 * hand-off to the owner, which takes the lock for writing only around
 * changes to the map. */
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

/* ---- the raft path ---- */

void store_recovery_free(struct store_recovery *rec)
{
	for (size_t i = 0; i < rec->n; i++)
		free((void *)rec->entries[i].data);
	free(rec->entries);
	free(rec->conf);
	memset(rec, 0, sizeof(*rec));
}

int store_recover(struct store *st, struct store_recovery *out)
{
	struct req r = {.type = REQ_RECOVER, .recovery = out};
	memset(out, 0, sizeof(*out));
	return call(st, &r);
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
	if (i < n && !st->failed && (ret == 0 || ret == -ENOSPC)) {
		/* a full disk: the owner writes the rest when space returns,
		 * and store_room tells proposers meanwhile */
		struct req *r = stalled_req(e + i, n - i);
		if (r) {
			ret = 0;
			if (st->stalled_tail)
				st->stalled_tail->next = r;
			else
				st->stalled = r;
			st->stalled_tail = r;
			st->any_stalled = true;
			pthread_mutex_lock(&st->mu);
			pthread_cond_signal(&st->cond);
			pthread_mutex_unlock(&st->mu);
		} else {
			ret = -ENOMEM;
		}
	} else if (st->failed) {
		ret = 0; /* sticky: nothing more is reported */
	}
	/* the room first: once the sync starts, its thread may report these
	 * appends durable, and the room must already count them */
	update_room(st);
	kick_sync_locked(st);
	pthread_mutex_unlock(&st->log_mu);
	return ret;
}

int store_apply(struct store *st, const struct store_entry *e, size_t n)
{
	for (size_t i = 0; i < n; i += APPLY_CHUNK) {
		size_t k = n - i < APPLY_CHUNK ? n - i : APPLY_CHUNK;
		struct kv_cmd cmds[APPLY_CHUNK];
		int cmd_err[APPLY_CHUNK];
		int ret = 0;
		memset(cmds, 0, k * sizeof(cmds[0]));
		for (size_t j = 0; j < k && ret == 0; j++) {
			cmd_err[j] = 0;
			if (e[i + j].type != STORE_ENTRY_CMD)
				continue;
			ret = kv_cmd_decode(e[i + j].data, e[i + j].len,
					    &cmds[j]);
			if (ret != 0 && ret != -ENOMEM) {
				cmd_err[j] = -EINVAL;
				ret = 0;
			}
		}
		if (ret == 0)
			apply_chunk(st, e + i, cmds, cmd_err, k);
		for (size_t j = 0; j < k; j++)
			kv_cmd_clear(&cmds[j]);
		if (ret != 0)
			return ret;
	}
	return 0;
}

uint64_t store_room(const struct store *st)
{
	return st->room;
}

uint64_t store_applied(const struct store *st)
{
	return st->pub_applied;
}

int store_install(struct store *st, const char *path)
{
	struct req r = {.type = REQ_INSTALL, .path = path};
	return call(st, &r);
}
