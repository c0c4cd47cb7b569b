/* store.h - the public API of the store module.
 *
 * The store owns the key-value map and the files of one node (log, db
 * snapshot, hard state). What every layer shares (errors, key rules,
 * records, commands) is in kv.h, which this header includes. */
#ifndef KV_STORE_H
#define KV_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv.h"

/* ---- The store-owner thread ---- */

struct store;

/* ---- The Raft path: the node thread hands entries in, the owner thread
 * reports back through these callbacks (store_options.raft). ---- */

/* One log entry as the Raft core hands it out. type: 1 a command (data is
 * kv_cmd_encode JSON), 2 a leader's no-op (no data), 3 a configuration
 * (data is raft_config_encode text). data is borrowed by the calls. */
struct store_entry {
	uint64_t index, term;
	int type;
	const void *data;
	size_t len;
};
#define STORE_ENTRY_CMD	   1
#define STORE_ENTRY_NOOP   2
#define STORE_ENTRY_CONFIG 3

/* Called on the owner thread; they must not block nor call the store. */
struct store_raft_ops {
	/* Every entry up to (index, term) is durable (store_append). */
	void (*persisted)(void *ctx, uint64_t index, uint64_t term);
	/* The entry at (index, term) was applied (store_apply); res is the
	 * command's outcome, NULL for a no-op or a configuration. */
	void (*applied)(void *ctx, uint64_t index, uint64_t term,
			const struct kv_result *res);
	/* A db covering index is in place (the log before it may be gone).
	 */
	void (*snapshotted)(void *ctx, uint64_t index);
};

struct store_options {
	const char *dir; /* data directory, created if missing */
	uint64_t
	    snapshot_every; /* applied entries between snapshots; 0: 10000 */
	uint64_t snapshot_bytes; /* or this much log; 0: 64 MiB */
	size_t segment_size;	 /* log segment size; 0: 64 MiB */
	/* Called on the owner thread after a change to key is applied (for
	 * cache invalidation). Must not block or call back into the store. */
	void (*on_change)(void *ctx, const char *key, size_t klen);
	void *on_change_ctx;
	/* Set: the Raft path. Recovery then applies only the db; the log's
	 * entries after it are handed to the core (store_recover), which
	 * applies them again once it knows they are committed. */
	const struct store_raft_ops *raft;
	void *raft_ctx;
};

/* Open (recovering db and log) and start the owner thread. On failure
 * *errmsg (malloc'd, caller frees) says what and where, e.g. the file and
 * offset of damaged data. Returns 0, -errno, KV_ECORRUPT or KV_EVERSION. */
int store_open(const struct store_options *opt, struct store **out,
	       char **errmsg);
/* Stop the owner thread after the requests queued so far, sync, close. */
void store_close(struct store *st);

/* Single-member path (until the raft node drives the store): log cmd as the
 * next entry at term, wait until it is durable (group commit), apply it,
 * and return its result in *res. Returns 0 (res->err tells the outcome of
 * the command), -ENOSPC, KV_EFAILED, KV_ESHUTDOWN. Any thread but the
 * owner. */
int store_propose(struct store *st, uint64_t term, const struct kv_cmd *cmd,
		  struct kv_result *res);

/* Read one key: *out is a counted reference (kv_rec_unref it) or NULL with
 * -ENOENT. A directory returns -EISDIR. Any thread, including the store's
 * callbacks (it runs on the caller's thread under the map's read lock;
 * it sees every entry whose applied callback has run). */
int store_get(struct store *st, const char *key, size_t klen,
	      struct kv_rec **out);
/* stat a path ("" is the root). -ENOENT if neither key nor directory. */
int store_stat(struct store *st, const char *path, size_t plen,
	       struct kv_stat *out);
/* List the children of directory dir ("" is the root), in byte order,
 * starting after name `after` (NULL: from the start), at most limit (0:
 * no limit). -ENOENT if dir does not exist, -ENOTDIR if it is a key. */
int store_list(struct store *st, const char *dir, size_t dlen,
	       const char *after, size_t limit, struct kv_list *out);

struct store_status {
	uint64_t first_index, last_index;
	uint64_t applied_index, snapshot_index, snapshot_term;
	uint64_t keys, bytes; /* keys (files) and bytes of values */
	uint64_t log_bytes;
	uint64_t term, vote; /* hard state */
	int failed;	     /* sticky error, 0 if none */
	uint64_t state_hash; /* map_state_hash: equal maps, equal hashes */
};
int store_status(struct store *st, struct store_status *out);

/* Raft hard state: persisted atomically (written, synced, renamed). */
int store_save_hardstate(struct store *st, uint64_t term, uint64_t vote);

/* Write a db snapshot now (waits until it is in place). */
int store_snapshot(struct store *st);

/* ---- The Raft path (store_options.raft set) ---- */

/* What the store recovered, for raft_new: the hard state, the db's
 * (index, term) and configuration text (raft_config_encode format, NULL if
 * the db has none), and copies of the log's entries after the db. */
struct store_recovery {
	uint64_t term, vote;
	uint64_t snap_index, snap_term;
	char *conf; /* malloc'd or NULL */
	size_t conf_len;
	struct store_entry *entries; /* malloc'd, each data malloc'd */
	size_t n;
};
/* Fill *out; call before the first store_append. 0, -ENOMEM, KV_ECORRUPT.
 * Release with store_recovery_free. Any thread but the owner. */
int store_recover(struct store *st, struct store_recovery *out);
void store_recovery_free(struct store_recovery *rec);

/* Write entries e[0..n) into the log on the calling thread, in call
 * order: an entry at an index the log holds replaces it and everything
 * after (Raft's conflict truncation). Returns without waiting for a sync;
 * ops->persisted reports when they are durable (group commit: the sync
 * thread takes everything written since its last job). A full disk stalls
 * them (copied; the owner retries until space returns, and store_room
 * tells proposers); a failed write or sync is sticky and nothing more is
 * reported. 0 or -ENOMEM. Any thread but the owner; one thread at a time
 * (order), the one that calls store_install. */
int store_append(struct store *st, const struct store_entry *e, size_t n);

/* Apply committed entries e[0..n) in order, on the calling thread (no
 * hand-off to the owner); each one is reported by ops->applied before this
 * returns. Entries already applied (a db or an earlier call) are skipped. A
 * command that does not decode is applied as a failed command (-EINVAL).
 * 0 or -ENOMEM. One thread at a time: the thread that also calls
 * store_install, never the owner. */
int store_apply(struct store *st, const struct store_entry *e, size_t n);

/* Bytes the log can take now without creating a file on a full disk:
 * what is left in the open segment, plus a whole segment when the file
 * system has room for one (checked after each batch). Proposers refuse
 * writes that do not fit with -ENOSPC. Any thread. */
uint64_t store_room(const struct store *st);

/* Applied index, lock-free. Any thread. */
uint64_t store_applied(const struct store *st);

/* Install the verified db snapshot file at path (from the leader): load
 * and check it, put it in place of db.jsonl, drop the log (it starts
 * after the snapshot) and the map, and report the snapshot's index through
 * ops->applied. Entries up to that index handed to store_append or
 * store_apply later are skipped: the snapshot holds them. Waits for a db
 * being written to finish first. 0, KV_ECORRUPT (with the reason on
 * stderr), -errno. Any thread but the owner. */
int store_install(struct store *st, const char *path);

#endif
