/* store_int.h - what the files of the store share (private to store/).
 *
 * One concept a file: store.c opens and closes a store, runs the owner
 * thread and its requests, and serves reads; append.c writes entries into
 * the log and runs the sync thread (group commit, a full disk); applier.c
 * applies committed entries to the map; snapshot.c keeps the snapshot
 * schedule, the db-writer thread and its replica of the map, and compacts
 * the log; recovery.c puts a state in place: the files at open, what
 * store_recover hands the core, a leader's snapshot (store_install).
 *
 * Threads, and what each one owns:
 *  - the owner (kvfs-store): requests (status, hard state, snapshot,
 *    recover, install), stalled appends, the snapshot schedule, and the
 *    fields marked "owner" below;
 *  - the sync thread (kvfs-sync): fdatasync of the log, the persisted
 *    reports;
 *  - the db-writer (kvfs-dbwrite): a snapshot job, from bringing the
 *    replica up to the job's index to the db in place;
 *  - the node's thread: store_append, store_apply, store_install (one
 *    thread for the three, so their order is the caller's);
 *  - any thread: store_get, store_stat, store_list, store_applied,
 *    store_room, and the blocking calls, which hand a request to the owner.
 * Locks, always taken in this order: log_mu, then map_lock, then mu.
 *
 * Invariants:
 *  1. Every field is guarded as its comment says: log_mu, map_lock (held
 *     for writing to change, for reading to read), mu, atomic, or one
 *     thread's own.
 *  2. ops->persisted names only entries a log_sync_run returned 0 for,
 *     whose prepare came after the entries were written (log.h).
 *  3. A failed write or sync is sticky (failed): no later entry is
 *     written or reported.
 *  4. The log is compacted only after the db covering it is in place. */
#ifndef KV_STORE_INT_H
#define KV_STORE_INT_H

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "db.h"
#include "leases.h"
#include "locks.h"
#include "log.h"
#include "map.h"
#include "metrics.h"
#include "store.h"

#define DEFAULT_SNAPSHOT_EVERY 100000
#define DEFAULT_SNAPSHOT_BYTES (64u * 1024 * 1024)
#define DEFAULT_SEGMENT_SIZE   (64u * 1024 * 1024)

enum req_type {
	REQ_STATUS,
	REQ_HARDSTATE,
	REQ_SNAPSHOT,
	REQ_RECOVER,
	REQ_INSTALL,
	REQ_SYNC_DONE, /* internal: the sync thread went idle */
	REQ_SNAP_DONE, /* internal: the db-writer finished a job */
};

/* A request to the owner, or a stalled append. The caller's until it is
 * queued; then the owner's until complete() posts done. */
struct req {
	enum req_type type;
	struct req *next;
	int ret;
	sem_t done;
	uint64_t term, vote; /* REQ_HARDSTATE in; term REQ_INSTALL out */
	uint64_t index;	     /* REQ_INSTALL out: the snapshot's index */
	struct store_status *status;
	struct store_recovery *recovery;
	const char *path; /* REQ_INSTALL */
	/* a stalled append (st->stalled): copies of the entries, and how
	 * many of them are written */
	struct store_entry *ents;
	size_t n, written;
};

/* The snapshot job (snapshot.c). */
struct snap_state {
	/* owner */
	bool running;	     /* a job is with the db-writer */
	struct req *waiters; /* store_snapshot calls waiting for it */
	unsigned failures;   /* failed jobs in a row: the backoff */
	uint64_t retry_ms;   /* no job before this (kv_mono_ms), 0: any */
	/* the job: set by the owner before it hands the job over (under
	 * mu), then the db-writer's until it hands it back */
	struct db_meta meta; /* index, term, conf of the db to write */
	uint64_t hash;	     /* map_state_hash of the map at meta.index */
	/* The lock table at meta.index, copied when the job starts; the
	 * records are collected from the map's cut (map_cut_begin), a step
	 * at a time, so that a db is written without holding map_lock for
	 * more than a moment. */
	struct locks locks;
	struct leases leases; /* the lease table at the cut */
	int ret;
};

/* The history of changes (history.c). */
#define STORE_MAX_HOOKS 4
struct store_hook {
	void (*fn)(void *ctx, uint64_t first);
	void *ctx;
};
struct store_history {
	pthread_mutex_t mu; /* guards the rest */
	struct store_event *ring;
	size_t cap, head, n;
	size_t bytes, max_bytes;
	uint64_t oldest; /* complete from this revision on */
	uint64_t seq;	 /* bumped by every change */
	struct store_hook hooks[STORE_MAX_HOOKS];
	unsigned n_hooks;
	bool notifying;	     /* hooks are being called */
	pthread_cond_t idle; /* signalled when they return */
};
int hist_init(struct store_history *h, const struct store_options *opt);
void hist_free(struct store_history *h);
/* Empty it: complete from index + 1 (an open, an installed snapshot). */
void hist_start_after(struct store_history *h, uint64_t index);
/* The event of cmd applied at rev (the applier, map write lock held). */
struct store;
void hist_add(struct store *st, uint64_t rev, const struct kv_cmd *cmd);
/* A txn's writes (history_txn.c): an event each, all at rev, from what it
 * did (tr: the branch taken). */
void hist_add_txn(struct store *st, uint64_t rev, const struct kv_cmd *cmd,
		  const struct kv_txn_res *tr);
/* One event of cmd at rev (history.c). */
void hist_add_one(struct store *st, uint64_t rev, const struct kv_cmd *cmd);
/* Call the hooks if events were added since the last call (the applier,
 * no lock held). */
void hist_notify(struct store *st);
/* store_leases.c: a revoke's keys, named before the applier applies it
 * (nothing for another op; map_lock held), and a delete event for each
 * once it was applied. */
int lease_revoke_keys(struct store *st, const struct kv_cmd *cmd,
		      struct kv_list *keys);
void lease_revoke_events(struct store *st, uint64_t rev,
			 const struct kv_list *keys);

struct store {
	/* fixed at open */
	char *dir;
	struct store_options opt;
	uint64_t every, bytes; /* the schedule, defaults applied */
	size_t seg_size;
	int lock_fd;
	pthread_t owner, syncer, writer;

	/* the owner's queue: mu */
	pthread_mutex_t mu;
	pthread_cond_t cond; /* CLOCK_MONOTONIC */
	struct req *head, *tail;
	bool stopping;	       /* no new requests; the owner drains and exits */
	bool workers_stop;     /* the owner is gone: sync and db-writer too
				  (set under mu and under log_mu) */
	bool sync_done_queued; /* sync_done is in the queue */
	struct req sync_done, snap_done; /* preallocated internal requests */
	pthread_cond_t snap_cond;	 /* the db-writer waits on it */
	bool snap_job;			 /* the db-writer has a job */

	/* the log and the sync hand-off: log_mu */
	pthread_mutex_t log_mu;
	pthread_cond_t sync_cond; /* the sync thread waits on it */
	struct log *log;
	struct log_sync *sync_job;	    /* handed to the sync thread */
	uint64_t sync_p_index, sync_p_term; /* the last entry it covers */
	bool sync_busy;			    /* a job is with the sync thread */
	bool sync_notify; /* the owner wants sync_done once it is idle */
	bool sync_hold;	  /* an install waits: no new job */
	/* the last entry written since the last job was prepared (0: none):
	 * the sync thread prepares the next job itself when it finishes, so
	 * a stream of appends needs no owner turn per group commit */
	uint64_t w_index, w_term;
	struct req *stalled, *stalled_tail; /* appends waiting for space */
	/* -ENOSPC while appends are stalled, and since when (kv_mono_ms):
	 * written under log_mu (ms first), read lock-free */
	_Atomic int stall_error;
	_Atomic uint64_t stall_ms;
	uint64_t fs_room, fs_checked_ms; /* the last statvfs */
	/* the db in place; changed by the owner under log_mu (the appender
	 * skips what a db holds), so the owner reads them without it */
	uint64_t snap_index, snap_term;
	uint64_t lost_index; /* log_lost_index at open if after the db */

	/* the map: map_lock. store_apply changes it on the node's thread;
	 * the owner only to install (never beside an apply: one caller) */
	pthread_rwlock_t map_lock;
	struct map *map;
	uint64_t applied, applied_term;
	char *conf_json; /* configuration in effect at applied, as JSON */
	struct store_history hist;
	bool hist_added; /* the applier's: events since hist_notify */
	bool changed;	 /* the applier's: on_change since on_changes_done */
	uint64_t hist_first; /* the first of them; 0: the history restarted */
	/* the recovered entries' commands, decoded ahead (predecode.c): set
	 * by the owner in store_recover, before any apply; then the
	 * applier's, until it is past them (or store_close) */
	struct predecode *pre;

	/* owner */
	uint64_t term, vote;
	struct req *install_waiting; /* REQ_INSTALL behind a job or sync */
	struct snap_state snap;
	/* the last entry store_recover handed the core (0: none): until the
	 * applies reach it the schedule starts no db (snapshot.c); an append
	 * that replaces recovered entries cuts it to the entry before. Under
	 * log_mu. */
	uint64_t replay_end;

	/* atomic: read by any thread */
	_Atomic int failed;		/* sticky error, 0 if none */
	_Atomic uint64_t failed_ms;	/* since when */
	atomic_bool any_stalled;	/* stalled != NULL */
	_Atomic uint64_t room;		/* store_room */
	_Atomic uint64_t pub_applied;	/* store_applied */
	_Atomic uint64_t pub_log_bytes; /* log_bytes after the last change */
	/* the schedule as the owner published it: it wants a turn once
	 * applied or the log's bytes reach these (owner_kick_if_due) */
	_Atomic uint64_t due_applied, due_bytes;
	atomic_bool kicked;	  /* a turn was asked for since the last one */
	_Atomic uint64_t want_db; /* store_snapshot_soon's highest index */
};

/* ---- owner.c: reaching the owner, failing, the trigger ---- */

/* Post r's answer. */
void owner_complete(struct req *r, int ret);
/* Queue internal request r and wake the owner; mu held. Internal
 * requests bypass the stopping check: the owner waits for them. */
void owner_push_locked(struct store *st, struct req *r);
/* Give the owner a turn (it runs the schedule, retries stalled appends).
 * Takes mu: callable with log_mu or nothing held. */
void owner_wake(struct store *st);
/* A write, sync or apply failed: refuse every later write (invariant 3)
 * and say so on stderr, once. Any thread, any lock. */
void store_fail(struct store *st, int err, const char *what);
/* Wake the owner if the published snapshot schedule is due. Any thread,
 * any lock but mu. Cheap when not due: two atomic loads. */
void owner_kick_if_due(struct store *st);
/* A configuration's text as the JSON string the log and the db keep, and
 * back: malloc'd, NULL if out of memory (or, back, not a JSON string). */
char *store_conf_to_json(const void *text, size_t len);
char *store_conf_from_json(const char *json, size_t len, size_t *out_len);

/* ---- append.c: the log appender and the sync thread ---- */

/* Hand the sync thread a job covering what was written since the last
 * one, if it is idle, not held, and something was. log_mu held. */
void append_kick_sync_locked(struct store *st);
/* Write stalled appends (a full disk) in order while the log takes them.
 * log_mu held; the owner. */
void append_retry_stalled_locked(struct store *st);
/* Free the stalled appends: never written, never reported. log_mu held,
 * or no other thread left. */
void append_drop_stalled(struct store *st);
/* Recompute store_room and pub_log_bytes. log_mu held, or no other
 * thread yet. */
void append_update_room_locked(struct store *st);
/* The sync thread. */
void *append_sync_main(void *arg);

/* ---- snapshot.c: the schedule, the db-writer, compaction ---- */

/* Start a job if the schedule says one is due and none runs or waits
 * for a retry, and publish what the next turn waits for. Owner. */
void snapshot_schedule(struct store *st);
/* The log bytes that make a db due with a db of db bytes in place:
 * max(snapshot_bytes, min(SNAP_DB_FACTOR x db, db + (SNAP_DB_FACTOR - 1)
 * x snapshot_bytes)), docs/log-format.md. Pure; snapshot.c. */
#define SNAP_DB_FACTOR 4
uint64_t snapshot_byte_trigger(uint64_t snapshot_bytes, uint64_t db);

/* Start a job now unless one runs or nothing was applied since the db;
 * returns whether one runs. Owner. */
bool snapshot_start(struct store *st);
/* The db-writer handed its job back: compact, report, answer waiters.
 * Owner. */
void snapshot_finish(struct store *st);
/* Milliseconds until a retry after a failed job is due (then the owner
 * wants a turn), -1 if none waits. Owner. */
long snapshot_retry_in_ms(const struct store *st);
/* The db-writer thread. */
void *snapshot_writer_main(void *arg);

/* ---- recovery.c: open, recover, install ---- */

/* Check the log against the db just loaded (the log must go on from it)
 * and start it after the db if it is behind. Open, no thread yet. 0,
 * KV_ECORRUPT with *errmsg, -errno. */
int recovery_check_log(struct store *st, char **errmsg);
/* Fill rec (REQ_RECOVER). Owner. 0, -ENOMEM, KV_ECORRUPT. */
int recovery_recover(struct store *st, struct store_recovery *rec);
/* Run the waiting install once no db job and no log sync runs. Owner. */
void recovery_maybe_install(struct store *st);

/* ---- predecode.c: the recovered commands decoded ahead ---- */

/* One allocation holding the recovered entries' data, counted: the
 * recovery's copies and the decoding thread share it. */
void *pre_arena_new(size_t bytes);
char *pre_arena_bytes(void *arena);
void pre_arena_ref(void *arena);
void pre_arena_unref(void *arena);
/* A thread decoding the commands of e[0..n) (their data in arena, which
 * it references) ahead of the applies; NULL if it cannot start (the
 * applies decode their own). */
struct predecode *predecode_start(const struct store_entry *e, size_t n,
				  void *arena);
/* e's command, decoded (waiting for it if need be) into *cmd with its
 * kv_cmd_decode result in *err, if the thread decoded that entry (the
 * same index, term and length); false: decode it here. The applier. */
bool predecode_take(struct predecode *p, const struct store_entry *e,
		    struct kv_cmd *cmd, int *err);
/* Are the applies past every entry it decodes? */
bool predecode_done(struct predecode *p);
/* Stop the thread and free what it holds. */
void predecode_free(struct predecode *p);

/* prepare.c: a put's record built and hashed with its command
 * (kv_cmd.prep), whatever the value's size: 0 or -ENOMEM. */
int store_prepare_rec(struct kv_cmd *cmd);

/* A log sync longer than this is logged as slow (half an election
 * timeout's worth of waiting for every write). */
#define STORE_SLOW_SYNC_NS (500ull * 1000 * 1000)

/* store_metrics.c: what the store counts for /metrics. */
extern struct kv_metric store_m_fsync_seconds, store_m_fsync_errors,
    store_m_snapshots, store_m_snapshot_seconds;
void store_metrics_register(void);

#endif
