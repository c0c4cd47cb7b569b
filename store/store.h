/* store.h - the public API of the store module.
 *
 * The store owns the key-value map and the files of one node (log, db
 * snapshot, hard state). One store-owner thread does all of that work; every
 * other thread submits a request and waits for the reply (store.c). This
 * header also holds what every layer above shares: error codes, key rules,
 * the record of one key and the command that changes the map. */
#ifndef KV_STORE_H
#define KV_STORE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Every file and every message carries a format version; this is ours. */
#define KV_FORMAT_VERSION 1

/* Key rules (kv_key_check): valid UTF-8, '/'-separated segments, no empty,
 * "." or ".." segment (so no leading, trailing or double '/'), no NUL, at
 * most KV_MAX_KEY bytes in all and KV_MAX_SEGMENT bytes a segment (the
 * kernel's NAME_MAX, so every key is a legal file name). */
#define KV_MAX_KEY     1024
#define KV_MAX_SEGMENT 255
/* Largest value: 16 MiB. A value is any byte string up to this size. */
#define KV_MAX_VALUE (16u * 1024u * 1024u)

/* Errors: functions return 0 (or a count) on success, a negative errno for
 * the world's errors, or one of these codes from a reserved range. */
enum kv_error {
	KV_ERR_FIRST = -1100,
	KV_ENOTLEADER = -1100, /* this node is not the leader */
	KV_ENOQUORUM = -1101,  /* no leader / no quorum within the deadline */
	KV_ECORRUPT = -1102,   /* a data file is damaged */
	KV_ESHUTDOWN = -1103,  /* the store or node is shutting down */
	KV_EPRECOND = -1104,   /* a conditional write's condition failed */
	KV_EFAILED = -1105,    /* an earlier sync failed; writes are refused */
	KV_EVERSION = -1106,   /* unknown format version */
	KV_ERR_LAST = -1106,
};

/* A message for any error this project returns (kv codes and -errno). */
const char *kv_strerror(int err);

/* 0 if key[0..len) follows the key rules; -EINVAL or -ENAMETOOLONG. */
int kv_key_check(const char *key, size_t len);

/* fsync the directory dir, so that a rename or a new file in it is
 * durable. 0 or -errno. Any thread. */
int kv_sync_dir(const char *dir);

/* CRC-32C (Castagnoli) of buf, continuing from crc (start with 0). */
uint32_t kv_crc32c(uint32_t crc, const void *buf, size_t len);

/* One key as the map holds it. Immutable once published, shared by
 * reference count, so readers and the snapshot writer can hold it while
 * the owner thread replaces it. The key and value bytes live in the same
 * allocation; val may hold NULs and is not terminated. */
struct kv_rec {
	atomic_uint refs;
	uint32_t mode;	     /* S_IFREG or S_IFDIR plus permission bits */
	uint64_t create_rev; /* log index that created the key */
	uint64_t mod_rev;    /* log index of the last change */
	int64_t mtime_ns; /* wall clock of the proposer, same on every node */
	size_t klen;
	size_t vlen;
	const char *key; /* NUL-terminated for convenience */
	const unsigned char *val;
};

/* A new record with refs = 1, copying key and value. NULL if out of memory. */
struct kv_rec *kv_rec_new(const char *key, size_t klen, const void *val,
			  size_t vlen);
void kv_rec_ref(struct kv_rec *rec);
void kv_rec_unref(struct kv_rec *rec); /* frees at zero; NULL is fine */

/* A command: one change to the map, as proposed, logged and applied. */
enum kv_op {
	KV_OP_NOOP = 0,
	KV_OP_PUT,     /* key, val, mode, mtime; conditions */
	KV_OP_DEL,     /* key; if_rev */
	KV_OP_MKDIR,   /* key, mode, mtime */
	KV_OP_RMDIR,   /* key */
	KV_OP_RENAME,  /* key -> key2 (a key or a directory), flags */
	KV_OP_SETATTR, /* key; mode if set_mode, mtime if set_mtime */
};

#define KV_RENAME_NOREPLACE 1u
#define KV_RENAME_EXCHANGE  2u

struct kv_cmd {
	enum kv_op op;
	char *key; /* owned, NUL-terminated */
	size_t klen;
	char *key2; /* rename target, owned */
	size_t k2len;
	unsigned char *val; /* put value, owned */
	size_t vlen;
	int64_t mtime_ns;
	uint32_t mode; /* permission bits (07777) */
	unsigned flags;
	uint64_t if_rev; /* nonzero: only if the key's mod_rev equals it */
	bool if_absent;	 /* only if the key does not exist */
	bool set_mode;
	bool set_mtime;
};

/* Encode cmd as one line of JSON (no newline in it). *out is malloc'd,
 * caller frees. Values that are valid UTF-8 without NUL are JSON strings,
 * others base64. Returns 0 or -ENOMEM. */
int kv_cmd_encode(const struct kv_cmd *cmd, char **out, size_t *len);
/* Decode JSON text into cmd (which then owns its buffers; release with
 * kv_cmd_clear). Returns 0, -EINVAL for a malformed command, or
 * KV_EVERSION. */
int kv_cmd_decode(const char *json, size_t len, struct kv_cmd *cmd);
void kv_cmd_clear(struct kv_cmd *cmd);

/* The outcome of applying one command. */
struct kv_result {
	int err;      /* 0, -ENOENT, -EEXIST, -ENOTEMPTY, -ENOTDIR, -EISDIR,
			 KV_EPRECOND, ... */
	uint64_t rev; /* index of the entry that carried the command */
};

/* What stat needs to know of a path: a key, an explicit directory (mkdir)
 * or an implicit one (keys exist below it). */
struct kv_stat {
	bool is_dir;
	uint32_t mode;
	uint64_t size;
	uint64_t create_rev;
	uint64_t mod_rev;
	int64_t mtime_ns;
};

/* One child of a directory in a listing. */
struct kv_dirent {
	char *name; /* the last segment, malloc'd */
	struct kv_stat st;
};

struct kv_list {
	struct kv_dirent *ents;
	size_t n;
	bool more; /* truncated at the limit: list again after the last name */
};
void kv_list_clear(struct kv_list *list);

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
