/* store.h - the public API of the store module.
 *
 * The store owns the key-value map and the files of one node (log, db
 * snapshot, hard state) for the Raft node above it: the node hands it
 * entries to make durable (store_append) and committed entries to apply
 * (store_apply); the store reports back through store_raft_ops, takes db
 * snapshots on schedule and compacts the log. What every layer shares
 * (errors, key rules, records, commands) is in kv.h, which this header
 * includes. The threads and who owns what: store/store_int.h. */
#ifndef KV_STORE_H
#define KV_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv.h"

struct store;

/* ---- Entries and the callbacks that report on them ---- */

/* One log entry as the Raft core hands it out. type: 1 a command (data is
 * kv_cmd_encode JSON), 2 a leader's no-op (no data), 3 a configuration
 * (data is raft_config_encode text). data is borrowed by the calls. */
struct store_entry {
	uint64_t index, term;
	int type;
	const void *data;
	size_t len;
	/* store_apply, a CMD entry: its command already decoded from data
	 * (borrowed), or NULL to decode it there; for a big put, prepared
	 * too (store_cmd_prepare), so the apply neither copies nor hashes
	 * its value */
	const struct kv_cmd *cmd;
	/* store_append: data was checked on another thread
	 * (store_data_check): data_crc is its CRC-32C, and the append does
	 * not read data again but to write it */
	bool data_checked;
	uint32_t data_crc;
};

/* The per-byte work on a big entry that need not be the node thread's
 * (docs/architecture.md, "Big values"), for the thread that received it
 * to do. Any thread; neither touches a store. */
/* True if data[0..len) may be a log line's command (no '\n', no NUL),
 * with *crc its CRC-32C: store_entry.data_checked and data_crc. */
bool store_data_check(const void *data, size_t len, uint32_t *crc);
/* For a put of a big value (STORE_PREPARE_BYTES or more): the record it
 * will insert, its key, value and attributes copied and their part of
 * the record hash taken (cmd->prep, cmd->prep_hash); cmd->val then
 * points into that record. The apply takes it when the key's old record
 * does not change what it holds (attributes kept from it), else builds
 * its own as before. Nothing done for other commands. 0 or -ENOMEM
 * (cmd unchanged: the apply does the work). */
#define STORE_PREPARE_BYTES (64u * 1024u)
int store_cmd_prepare(struct kv_cmd *cmd);
/* The same with the value's bytes taken from val[0..vlen) instead of
 * cmd->val, which is freed (a put decoded without its value, whose bytes
 * the caller holds: propose.c): on success cmd->val and vlen are the
 * record's; on failure or for a small value cmd is unchanged. */
int store_cmd_prepare_from(struct kv_cmd *cmd, const void *val, size_t vlen);
#define STORE_ENTRY_CMD	   1
#define STORE_ENTRY_NOOP   2
#define STORE_ENTRY_CONFIG 3

/* The store's reports. None may block or call a store function that
 * waits for the owner (store_status, store_snapshot, ...); each says the
 * thread it runs on. */
struct store_raft_ops {
	/* Every entry up to (index, term) is durable (store_append). On the
	 * store's sync thread, in the order of the appends (after a conflict
	 * truncation the index may be below the last report's), never after
	 * a failed sync, with no store lock held. */
	void (*persisted)(void *ctx, uint64_t index, uint64_t term);
	/* The entry at (index, term) was applied; res is the command's
	 * outcome, NULL for a no-op, a configuration or an installed
	 * snapshot (index is then the snapshot's). On the thread that called
	 * store_apply or store_install, before that call returns, with no
	 * store lock held (it may call store_get). */
	void (*applied)(void *ctx, uint64_t index, uint64_t term,
			const struct kv_result *res);
	/* A db covering index is in place (the log before it may be gone).
	 * On the store's owner thread. */
	void (*snapshotted)(void *ctx, uint64_t index);
};

struct store_options {
	const char *dir; /* data directory, created if missing */
	/* The snapshot schedule: a db is written once this many entries were
	 * applied since the last one (0: 10000), or once the log holds this
	 * many bytes of entries (0: 64 MiB) or the size of the db in place if
	 * that is larger (a db rewrites the live data; docs/log-format.md),
	 * whichever comes first, whatever
	 * the traffic; the log before it is then dropped. A failed db (a full
	 * disk) is tried again after 1 s, then 2, 4 ... up to 60 s. */
	uint64_t snapshot_every;
	uint64_t snapshot_bytes;
	size_t segment_size; /* log segment size; 0: 64 MiB */
	/* Called after a change to key is applied (for cache invalidation),
	 * on the thread that calls store_apply, with the map's write lock
	 * held: it must not block nor call into the store (store_get would
	 * deadlock). May be NULL. */
	void (*on_change)(void *ctx, const char *key, size_t klen);
	/* Called once after a chunk of applied entries that reported changes
	 * to on_change, with the map's lock released, before any of the
	 * chunk's entries is reported applied (so before their writers are
	 * answered): where the work on_change queued is started. The same
	 * thread and ctx; may be NULL. */
	void (*on_changes_done)(void *ctx);
	void *on_change_ctx;
	/* Required: the reports on appended and applied entries. Recovery
	 * applies only the db; the log's entries after it are handed to the
	 * core (store_recover), which applies them again once it knows they
	 * are committed. */
	const struct store_raft_ops *raft;
	void *raft_ctx;
	/* The history of changes watches read (history.c): at most this many
	 * events (0: 100,000) and this many bytes of keys and values (0: 64
	 * MiB), the oldest dropped first. */
	size_t history_events;
	size_t history_bytes;
};

/* A change, as watches see it: the command applied at revision rev (its
 * log index). A put, mkdir, rename or attribute change carries the
 * record it left (a reference; a rename's at key2). */
enum store_event_op {
	STORE_EV_PUT,
	STORE_EV_DELETE,
	STORE_EV_MKDIR,
	STORE_EV_RMDIR,
	STORE_EV_RENAME,
	STORE_EV_ATTR,
};
struct store_event {
	uint64_t rev;
	/* NUL-terminated; key2 a rename's target, else NULL. Each is the
	 * event's record's own key (kv_rec_key(rec), borrowed) where that is
	 * the same text, else malloc'd (key_own, key2_own). */
	const char *key, *key2;
	struct kv_rec *rec;
	enum store_event_op op;
	uint16_t klen, k2len; /* at most KV_MAX_KEY */
	bool recursive;	      /* an rmdir of the directory and all below it */
	bool key_own, key2_own;
};

/* Open (recovering the db and checking the log), start the store's
 * threads (owner, sync, db-writer). On failure *errmsg (malloc'd, caller
 * frees) says what and where, e.g. the file and offset of damaged data.
 * Returns 0, -EINVAL (opt->raft or one of its callbacks missing),
 * -EBUSY (another process has dir), -errno, KV_ECORRUPT or KV_EVERSION.
 * Any thread. */
/* Seed the empty data directory dir from the db snapshot at path (a
 * backup): verified whole, then written as dir's db at the backup's
 * index with no configuration and term 1 (restore.c). *index is that
 * index. 0, or KV_ECORRUPT / KV_EVERSION / -errno with *errmsg saying
 * what (malloc'd). Before store_open, no store running on dir. */
int store_restore(const char *dir, const char *path, uint64_t *index,
		  char **errmsg);
int store_open(const struct store_options *opt, struct store **out,
	       char **errmsg);
/* Finish the requests queued so far, a db being written (and one due by
 * the schedule), the running sync; stop the threads; free st. Entries
 * still stalled on a full disk are dropped (never reported). Any thread
 * but the store's own, once no other call on st runs; st may be NULL. */
void store_close(struct store *st);

/* ---- Reads: the caller's thread, under the map's read lock ---- */

/* Read one key: *out is a counted reference (kv_rec_unref it) or NULL with
 * -ENOENT. A directory returns -EISDIR. Any thread, including the applied
 * and persisted callbacks (not on_change); it sees every entry whose
 * applied callback has run. */
int store_get(struct store *st, const char *key, size_t klen,
	      struct kv_rec **out);
/* stat a path ("" is the root). -ENOENT if neither key nor directory. Any
 * thread, as store_get. */
int store_stat(struct store *st, const char *path, size_t plen,
	       struct kv_stat *out);
/* List the children of directory dir ("" is the root), in byte order,
 * starting after name `after` (NULL: from the start), at most limit (0:
 * no limit). -ENOENT if dir does not exist, -ENOTDIR if it is a key,
 * -ENOMEM; release *out with kv_list_clear. Any thread, as store_get. */
int store_list(struct store *st, const char *dir, size_t dlen,
	       const char *after, size_t limit, struct kv_list *out);
/* Every key below dir at any depth (directories left out), names
 * relative to dir, in key order, paged as store_list. Any thread. */
int store_list_all(struct store *st, const char *dir, size_t dlen,
		   const char *after, size_t limit, struct kv_list *out);

/* ---- The lock table (docs/mount.md): reads like store_get ---- */

/* A granted lock as store_lock_test shows it. */
struct store_lock {
	uint64_t sid, owner;
	uint64_t start, end; /* inclusive; end KV_LOCK_EOF: to the end */
	uint32_t pid;
	enum kv_lock_type type;
};
/* 1 if a lock of another owner than (sid, owner) on key, in the lock
 * space of kind, conflicts with type over [start, end] (the first such
 * in *conflict, which may be NULL), else 0. Any thread, as store_get. */
int store_lock_test(struct store *st, const char *key, size_t klen,
		    enum kv_lock_kind kind, uint64_t sid, uint64_t owner,
		    enum kv_lock_type type, uint64_t start, uint64_t end,
		    struct store_lock *conflict);
/* How many locks (sid, owner) holds on key in kind; owner UINT64_MAX:
 * any owner of sid; key NULL: on any key, of either kind. Any thread. */
size_t store_locks_held(struct store *st, const char *key, size_t klen,
			enum kv_lock_kind kind, uint64_t sid, uint64_t owner);
/* The live sessions: sid (the index of its sess_open), the node that
 * opened it, rev (the index of its last command). *out malloc'd (NULL
 * when none), the caller frees. 0 or -ENOMEM. Any thread. */
struct store_session {
	uint64_t sid, node, rev;
};
int store_sessions(struct store *st, struct store_session **out, size_t *n);

/* ---- The lease table (docs/http-api.md, "Leases"): reads like
 * store_get ---- */

/* A lease: its id (the index that granted it), TTL in seconds, rev (the
 * index of its grant or latest keepalive), how many keys are on it, and
 * when this node applied rev (kv_mono_ms; not replicated: what this
 * node counts the remaining TTL from). */
struct store_lease {
	uint64_t id, ttl, rev, nkeys, local_ms;
};
/* Every lease, by id. *out malloc'd (NULL when none), the caller frees.
 * 0 or -ENOMEM. Any thread. */
int store_leases(struct store *st, struct store_lease **out, size_t *n);
/* Lease id into *out, and if keys is not NULL the names of its keys in
 * key order (kv_list_clear them; each entry's size and revisions set).
 * 0, -ENOENT, -ENOMEM. Any thread. */
int store_lease_get(struct store *st, uint64_t id, struct store_lease *out,
		    struct kv_list *keys);
/* Up to max leases whose TTL has run out at now_ms, counted from when
 * this node applied their rev or from floor_ms if that is later (a new
 * leader's office plus an election timeout), into out[]: how many. Any
 * thread (the node thread's expiry). */
size_t store_leases_due(struct store *st, uint64_t now_ms, uint64_t floor_ms,
			struct store_lease *out, size_t max);

/* ---- Requests to the owner thread: they wait for its answer ---- */

struct store_status {
	uint64_t first_index, last_index;
	uint64_t applied_index, snapshot_index, snapshot_term;
	uint64_t keys, bytes; /* keys (files) and bytes of values */
	uint64_t log_bytes;   /* entries first..last as stored */
	uint64_t term, vote;  /* hard state */
	int failed;	      /* sticky error, 0 if none */
	/* This store cannot write its log now: -ENOSPC while appends wait
	 * for space (a full disk; cleared once they are written), or the
	 * sticky error of a failed write or sync (= failed, never cleared).
	 * 0 if writes go through. since_ms: when it began, kv_mono_ms(). A
	 * leader that refuses proposals by store_room never stalls: there
	 * store_room is the sign of a full disk. */
	int write_error;
	uint64_t write_error_since_ms;
	uint64_t state_hash; /* map_state_hash: equal maps, equal hashes */
	uint64_t lock_sessions, locks; /* the lock table's sizes */
	uint64_t leases, leased_keys;  /* the lease table's */
};
/* Fill *out. 0 or KV_ESHUTDOWN. Any thread but the store's own (not from
 * a callback). */
int store_status(struct store *st, struct store_status *out);

/* Raft hard state: persisted atomically (written, synced, renamed, the
 * directory synced) before this returns. 0, -errno, KV_ESHUTDOWN. Any
 * thread but the store's own. */
int store_save_hardstate(struct store *st, uint64_t term, uint64_t vote);

/* Write a db snapshot of the applied state now, or wait for the one being
 * written, until it is in place and the log compacted. 0 (also when
 * nothing was applied since the last db, or the log does not yet hold the
 * last applied entry: no db then), -errno (the old db stays), KV_ESHUTDOWN.
 * Any thread but the store's own. */
int store_snapshot(struct store *st);

/* Ask for a db covering at least index soon, without waiting: the
 * owner starts one at its next turn unless the db in place covers it
 * already (or one is being written: the next then follows it). For a
 * leader whose follower needs entries older than those it keeps in
 * memory (index <= the applied index). ops->snapshotted reports the db.
 * Any thread (the node thread). */
void store_snapshot_soon(struct store *st, uint64_t index);

/* ---- Recovery, appends, applies: the node's thread ---- */

/* What the store recovered, for raft_new: the hard state, the db's
 * (index, term) and configuration text (raft_config_encode format, NULL if
 * the db has none), and copies of the log's entries after the db.
 *
 * lost_index: the index of an entry this log lost, 0 if none. Its line
 * was the last of the log and complete (it ended in its newline) but
 * damaged (a bad checksum: a flipped byte, not a torn write), so it was
 * cut at open and said on stderr; entries come back up to lost_index - 1.
 * That entry may have been acknowledged to the leader, so this node should
 * not vote until its leader has given it back (raft_restore's
 * abstain_until). Entries a db covers are never reported lost. */
struct store_recovery {
	uint64_t term, vote;
	uint64_t snap_index, snap_term;
	char *conf; /* malloc'd or NULL */
	size_t conf_len;
	struct store_entry *entries; /* malloc'd; their data the store's */
	size_t n;
	uint64_t lost_index;
	void *arena; /* the store's: the entries' data */
};
/* Fill *out; call before the first store_append. 0, -ENOMEM, KV_ECORRUPT,
 * KV_ESHUTDOWN. Release with store_recovery_free (any thread). Any thread
 * but the store's own. */
int store_recover(struct store *st, struct store_recovery *out);
void store_recovery_free(struct store_recovery *rec);
/* A reference of the caller's to the block holding rec's entries' data
 * (not the configurations'), which then outlives store_recovery_free
 * until store_recovery_drop (any thread). NULL if there is none. */
void *store_recovery_hold(const struct store_recovery *rec);
void store_recovery_drop(void *arena);

/* Write entries e[0..n) into the log on the calling thread, in call
 * order: an entry at an index the log holds replaces it and everything
 * after (Raft's conflict truncation). Returns without waiting for a sync;
 * ops->persisted reports when they are durable (group commit: the sync
 * thread takes everything written since its last job). A full disk stalls
 * them (copied; the owner retries until space returns, store_room tells
 * proposers and store_status's write_error says since when); a failed
 * write or sync is sticky and nothing more is reported. 0 or -ENOMEM.
 * Checks the snapshot schedule (by log bytes). The node's thread: one
 * thread for store_append, store_apply and store_install. */
int store_append(struct store *st, const struct store_entry *e, size_t n);

/* Apply committed entries e[0..n) in order, on the calling thread (no
 * hand-off to the owner); each one is reported by ops->applied before this
 * returns. Entries already applied (a db or an earlier call) are skipped. A
 * command that does not decode is applied as a failed command (-EINVAL).
 * Checks the snapshot schedule (by applied entries and log bytes) and
 * wakes the owner when a db is due. 0 or -ENOMEM. The node's thread: the
 * one that calls store_append and store_install, never a callback. */
int store_apply(struct store *st, const struct store_entry *e, size_t n);

/* Bytes the log can take now without creating a file on a full disk:
 * what is left in the open segment, plus a whole segment when the file
 * system has room for one (checked after each append and owner turn).
 * Proposers refuse writes that do not fit with -ENOSPC. Lock-free; any
 * thread. */
uint64_t store_room(const struct store *st);

/* What store_status reports as write_error, lock-free: 0 if the log takes
 * writes, -ENOSPC while appends wait for space, or the sticky error of a
 * failed write or sync; *since_ms (may be NULL) gets when it began
 * (kv_mono_ms), 0 with no error. For the node thread, which may look every
 * tick without a hand-off to the owner. Any thread, the callbacks
 * included. */
int store_write_error(const struct store *st, uint64_t *since_ms);

/* Applied index, lock-free. Any thread, the callbacks included. */
uint64_t store_applied(const struct store *st);

/* Watches. Up to max events at revision >= since touching prefix (the
 * key itself or keys under it; "" all) into out[0..*n) (free them with
 * store_events_free); *next is where to read from next time (past the
 * applied revisions without a matching event), *oldest the first
 * revision the history is complete from. A read never splits a
 * revision (an add's counters are one revision): it stops before one
 * that does not fit whole. 0, KV_EGONE if since < *oldest, or -ENOBUFS
 * (*n 0) if the first revision alone has more than max matching events:
 * read again with more room. Any thread, never blocks on the applier. */
int store_watch_read(struct store *st, uint64_t since, const char *prefix,
		     size_t plen, struct store_event *out, size_t max,
		     size_t *n, uint64_t *next, uint64_t *oldest);
void store_events_free(struct store_event *e, size_t n);
/* e as the one JSON line a watch sends (docs/http-api.md#watch; the
 * mount's .kvfs/events too): revision, op, key, "to", "recursive",
 * "size", and with values a put's value ("value", or "value_base64"
 * when not UTF-8). Appended to b with its newline. */
struct kv_buf;
void store_event_line(struct kv_buf *b, const struct store_event *e,
		      bool values);
/* fn(ctx, first) is called after every batch of applied changes (the
 * applier's thread, no store lock held; it must not block): first is the
 * batch's first revision, 0 if the history started again (a snapshot
 * installed). At most 4 hooks; -ENOSPC. */
int store_watch_hook(struct store *st, void (*fn)(void *ctx, uint64_t first),
		     void *ctx);
/* Remove that hook (once this returns it is not running nor called). */
void store_watch_unhook(struct store *st, void (*fn)(void *ctx, uint64_t first),
			void *ctx);
/* Is there an event at revision >= from touching prefix (or is from
 * older than the history)? For a hook deciding whom to wake. */
bool store_watch_any(struct store *st, uint64_t from, const char *prefix,
		     size_t plen);
/* A number that grows with every change to the history. */
uint64_t store_watch_seq(struct store *st);

/* Install the verified db snapshot file at path (from the leader): load
 * and check it, put it in place of db.jsonl, drop the log (it starts
 * after the snapshot) and the map (on the owner thread), then report the
 * snapshot's index through ops->applied on the calling thread. Entries up
 * to that index handed to store_append or store_apply later are skipped:
 * the snapshot holds them. Waits for a db being written and a running
 * sync to finish first. 0, KV_ECORRUPT (with the reason on stderr),
 * -errno, KV_ESHUTDOWN. The node's thread (as store_apply). */
int store_install(struct store *st, const char *path);

#endif
