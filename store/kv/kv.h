/* kv.h - the vocabulary every kvfs module shares.
 *
 * Not the store's API (that is store/store.h) but the words the store, the
 * node, the peers, the HTTP API and the mount all speak: the format
 * version, error codes and kv_strerror, limits and key rules, the record of
 * one key, the command that changes the map and its result, and the small
 * helpers written once for everyone (checksums, durable files, EINTR-safe
 * writes, the monotonic clock, host:port addresses). It depends on libc,
 * pthreads and cJSON only; codec.h and jread.h are its JSON helpers. */
#ifndef KV_KV_H
#define KV_KV_H

#include <assert.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

/* Every file and every message carries a format version; this is ours.
 * The command JSON has its own, KV_CMD_VERSION (version 2 added owners,
 * ctime and atime, file kinds and extended attributes; version 3 the op
 * "add" and the lock table's ops and fields; a command is encoded with the
 * lowest version that has its op, so nodes of version 2 still read every
 * other command; version 1 commands still decode, with the defaults
 * docs/map-and-db.md lists; version 4 the lease ops, a put's lease and
 * ttl, and the op "txn"). */
#define KV_FORMAT_VERSION 1
#define KV_CMD_VERSION	  4

/* Key rules (kv_key_check): valid UTF-8, '/'-separated segments, no empty,
 * "." or ".." segment (so no leading, trailing or double '/'), no NUL, at
 * most KV_MAX_KEY bytes in all (the kernel's PATH_MAX) and KV_MAX_SEGMENT
 * bytes a segment (its NAME_MAX), so every key is a legal file name. */
#define KV_MAX_KEY     4096
#define KV_MAX_SEGMENT 255
/* Largest value: 16 MiB. A value is any byte string up to this size. */
#define KV_MAX_VALUE (16u * 1024u * 1024u)
/* Largest symbolic link target (PATH_MAX less its NUL). */
#define KV_MAX_LINK 4095
/* Extended attributes: a name is valid UTF-8 without NUL, at most
 * KV_MAX_XATTR_NAME bytes, in the "user." namespace (others are the
 * mount's to answer); a value at most KV_MAX_XATTR_VALUE bytes (-E2BIG);
 * the names and values of one key at most KV_MAX_XATTR_TOTAL bytes
 * together (-ENOSPC). "user.kvfs." names are reserved (read-only
 * attributes the mount computes). */
#define KV_MAX_XATTR_NAME  255
#define KV_MAX_XATTR_VALUE (64u * 1024u)
#define KV_MAX_XATTR_TOTAL (256u * 1024u)
#define KV_XATTR_USER	   "user."
#define KV_XATTR_RESERVED  "user.kvfs."
/* uid or gid of a record that has no owner (written over HTTP, or kept
 * from before owners were recorded): the mount shows its own user. */
#define KV_NO_OWNER UINT32_MAX

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
	KV_EGONE = -1107, /* a watch's revision is older than the history */
	KV_ERR_LAST = -1107,
};

/* A message for any error this project returns (kv codes and -errno). */
const char *kv_strerror(int err);

/* 0 if key[0..len) follows the key rules; -EINVAL or -ENAMETOOLONG. */
int kv_key_check(const char *key, size_t len);

/* The name every mount keeps at its root for itself (docs/mount.md,
 * ".kvfs/"): no new key may have a segment so named, so no mount's
 * reserved directory hides a key, whatever its --subdir. The rule is
 * checked where a write is proposed (every put, mkdir, attribute change
 * and a rename's target; a delete, an rmdir and a rename's source may
 * name one, so a key made before the rule can still be removed), not
 * where entries are applied or a db is read: a log or db from before
 * stays valid and applies alike on every node. */
#define KV_RESERVED_SEGMENT ".kvfs"
/* True if a segment of key[0..len) is KV_RESERVED_SEGMENT. */
bool kv_key_reserved(const char *key, size_t len);

/* CRC-32C (Castagnoli) of buf, continuing from crc (start with 0). */
uint32_t kv_crc32c(uint32_t crc, const void *buf, size_t len);
/* The CRC-32C of A followed by B from crc_a = kv_crc32c(0, A) and
 * crc_b = kv_crc32c(0, B) of len_b bytes, without reading either: a
 * checksum of a big command taken where it arrived extends to its log
 * line's (whose index and term come first) in 32 steps, not 16 MiB. */
uint32_t kv_crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b);

/* The bytes of per-byte work this thread did (work.c): checksummed
 * (kv_crc32c), hashed into a record's hash, copied into a record, written
 * into the log. Counted always (one add a call); read by tests that check
 * which thread does the work of a big value (the node thread must not). */
struct kv_thread_work {
	uint64_t crc, hash, copy, write;
};
extern _Thread_local struct kv_thread_work kv_work;
/* One step of a 64-bit hash over numbers (not a checksum of bytes): the
 * state hash's terms for the lock and lease tables. */
static inline uint64_t kv_hash_mix(uint64_t h, uint64_t v)
{
	h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return h;
}

/* One extended attribute: name (NUL-terminated) and value bytes. */
struct kv_xattr {
	const char *name;
	size_t nlen;
	const unsigned char *val;
	size_t vlen;
};

/* One key as the map holds it. Immutable once published, shared by
 * reference count, so readers and the snapshot writer can hold it while
 * the owner thread replaces it. The key, value and attributes live in the
 * same allocation; val may hold NULs and is not terminated. Times are
 * nanoseconds since 1970 taken from the commands (the proposer's clock),
 * so they are the same on every node. */
struct kv_rec {
	atomic_uint refs;
	uint32_t uid, gid; /* owner, or KV_NO_OWNER */
	/* Narrow on purpose: a value is at most KV_MAX_VALUE (16 MiB), a key
	 * at most KV_MAX_KEY (4,096) bytes and a record has at most
	 * KV_MAX_XATTR_TOTAL / 6 (43,690) attributes (a name is "user." and
	 * a byte at least). With the key, value and attributes found from
	 * the header (below) and the lease kept only by records that may
	 * have one, the header is 72 bytes, and a record of a 10-byte key
	 * and a 100-byte value a 192-byte allocation (docs/map-and-db.md,
	 * "Memory per key"). */
	uint32_t vlen;
	/* The kind (S_IFREG, S_IFDIR, S_IFLNK, S_IFIFO, S_IFSOCK) plus the
	 * permission bits (07777): 16 bits. */
	uint16_t mode;
	uint16_t klen;
	uint16_t nxattr;
	uint8_t flags;	     /* KV_REC_LEASE_SLOT */
	uint64_t create_rev; /* log index that created the key */
	uint64_t mod_rev;    /* log index of the last change */
	int64_t mtime_ns;    /* content (or, for a directory, entries) */
	int64_t ctime_ns;    /* any change: content, attributes, name */
	int64_t atime_ns;    /* set at creation and by utimensat only */
	/* The store's hash of the record (map_rec_hash), set by the map
	 * when it takes the record, before others see it; 0 until then. */
	uint64_t hash;
	/* After the header: the lease id (8 bytes, only with
	 * KV_REC_LEASE_SLOT), the attributes (kv_rec_xattrs), the key and its
	 * NUL (kv_rec_key), the value (kv_rec_val), the attributes' names and
	 * values. */
};

/* The record has room for a lease id after its header (kv_rec_lease). */
#define KV_REC_LEASE_SLOT 0x1u

/* The lease the key is on (its id), 0: none. */
static inline uint64_t kv_rec_lease(const struct kv_rec *rec)
{
	uint64_t id = 0;

	if (rec->flags & KV_REC_LEASE_SLOT)
		memcpy(&id, rec + 1, sizeof(id));
	return id;
}

/* Put rec on lease id (0: none). Only before rec is published, and id may
 * be nonzero only in a record made with a lease slot (asserted). */
static inline void kv_rec_set_lease(struct kv_rec *rec, uint64_t id)
{
	assert(id == 0 || (rec->flags & KV_REC_LEASE_SLOT));
	if (rec->flags & KV_REC_LEASE_SLOT)
		memcpy(rec + 1, &id, sizeof(id));
}

/* The nxattr attributes, sorted by name (bytes). */
static inline const struct kv_xattr *kv_rec_xattrs(const struct kv_rec *rec)
{
	return (const struct kv_xattr *)((const char *)(rec + 1) +
					 (rec->flags & KV_REC_LEASE_SLOT
					      ? sizeof(uint64_t)
					      : 0));
}

/* The key, NUL-terminated for convenience. */
static inline const char *kv_rec_key(const struct kv_rec *rec)
{
	return (const char *)(kv_rec_xattrs(rec) + rec->nxattr);
}

/* A file's content; a symbolic link's target; empty otherwise. */
static inline const unsigned char *kv_rec_val(const struct kv_rec *rec)
{
	return (const unsigned char *)kv_rec_key(rec) + rec->klen + 1;
}

/* A new record with refs = 1, copying key and value, no owner, zero times
 * and no attributes. NULL if out of memory. */
struct kv_rec *kv_rec_new(const char *key, size_t klen, const void *val,
			  size_t vlen);
/* The same with the extended attributes xa[0..n) copied too (any order:
 * the record keeps them sorted; names must differ). */
struct kv_rec *kv_rec_new_x(const char *key, size_t klen, const void *val,
			    size_t vlen, const struct kv_xattr *xa, size_t n);
/* The same with room for a lease id if lease_slot (kv_rec_set_lease): for
 * a record whose lease is known only later, or is not 0. */
struct kv_rec *kv_rec_new_l(const char *key, size_t klen, const void *val,
			    size_t vlen, const struct kv_xattr *xa, size_t n,
			    bool lease_slot);
void kv_rec_ref(struct kv_rec *rec);
void kv_rec_unref(struct kv_rec *rec); /* frees at zero; NULL is fine */
/* The attribute of rec named name[0..nlen), or NULL. */
const struct kv_xattr *kv_rec_xattr(const struct kv_rec *rec, const char *name,
				    size_t nlen);
/* The bytes xa[0..n) count against KV_MAX_XATTR_TOTAL: names and values. */
size_t kv_xattrs_size(const struct kv_xattr *xa, size_t n);
/* 0 if name[0..nlen) may be stored (valid UTF-8, no NUL, "user." and not
 * reserved, at most KV_MAX_XATTR_NAME bytes); -EINVAL, -ERANGE (too
 * long), -EOPNOTSUPP (another namespace) or -EPERM (reserved). */
int kv_xattr_name_check(const char *name, size_t nlen);

/* A command: one change to the map, as proposed, logged and applied. */
enum kv_op {
	KV_OP_NOOP = 0,
	KV_OP_PUT,	/* key, val, mode, mtime; conditions */
	KV_OP_DEL,	/* key; if_rev */
	KV_OP_MKDIR,	/* key, mode, mtime */
	KV_OP_RMDIR,	/* key */
	KV_OP_RENAME,	/* key -> key2 (a key or a directory), flags */
	KV_OP_SETATTR,	/* key; each attribute whose set_ flag is set */
	KV_OP_SETXATTR, /* key, xname, val; flags */
	KV_OP_RMXATTR,	/* key, xname */
	KV_OP_ADD,	/* key (a directory), adds: counters below it */
	/* version 3: the lock table (store/locks.c, docs/mount.md) */
	KV_OP_LOCK,	  /* key, sid, lock_owner, lock_*: set or clear */
	KV_OP_SESS_OPEN,  /* node: a new session, its id the entry's index */
	KV_OP_SESS_RENEW, /* sid: the session is alive */
	KV_OP_SESS_END,	  /* sid; if_rev: the session and its locks go */
	/* version 4: leases (store/leases.c, docs/http-api.md "Leases") */
	KV_OP_LEASE_GRANT,     /* ttl; key (may be absent): a new lease,
				  its id the entry's index */
	KV_OP_LEASE_KEEPALIVE, /* lease: it lives on, its TTL again */
	KV_OP_LEASE_REVOKE,    /* lease; if_rev: it and its keys go */
	/* version 4: transactions (store/apply_txn.c) */
	KV_OP_TXN, /* txn: comparisons, then one of two lists of ops */
};

/* A lease's TTL in seconds: 1 .. KV_LEASE_TTL_MAX (30 days). */
#define KV_LEASE_TTL_MAX (30u * 24u * 3600u)

struct kv_txn; /* a transaction's body (below, with the results) */
struct kv_txn_res;

/* One counter of an add: the key KEY/name holds a decimal count (absent:
 * 0) that grows by n. An add's names are single segments, in strictly
 * increasing byte order (so each once), at most KV_MAX_ADDS of them. */
struct kv_add {
	char *name;
	size_t nlen;
	uint64_t n; /* 1 .. 2^53 (a JSON number stays exact) */
};
#define KV_MAX_ADDS 100000

/* Lock types and kinds (struct kv_cmd lock_type, lock_kind). A flock
 * lock covers the whole file; a POSIX lock [lock_start, lock_end], both
 * inclusive, KV_LOCK_EOF meaning "to the end, however far". flock and
 * POSIX locks never conflict with each other (as on Linux). */
enum kv_lock_type { KV_LOCK_UN = 0, KV_LOCK_RD = 1, KV_LOCK_WR = 2 };
enum kv_lock_kind { KV_LOCK_FLOCK = 1, KV_LOCK_POSIX = 2 };
#define KV_LOCK_EOF ((uint64_t)INT64_MAX)

#define KV_RENAME_NOREPLACE 1u
#define KV_RENAME_EXCHANGE  2u
#define KV_XATTR_CREATE	    1u /* setxattr: -EEXIST if it exists */
#define KV_XATTR_REPLACE    2u /* setxattr: -ENODATA if it does not */
#define KV_RMDIR_RECURSIVE  1u /* rmdir: and everything below */

/* A command. Decoded commands own their buffers (kv_cmd_clear); a
 * proposer's command borrows whatever it points at. Which op takes which
 * field, and what an absent one means, is tabled in docs/map-and-db.md. */
struct kv_cmd {
	enum kv_op op;
	char *key; /* NUL-terminated; "" (the root) for setattr, *xattr */
	size_t klen;
	char *key2; /* rename target */
	size_t k2len;
	/* put: the value (a symbolic link's target); setxattr: the
	 * attribute's value */
	unsigned char *val;
	size_t vlen;
	char *xname; /* setxattr, rmxattr: the attribute's name */
	size_t xnlen;
	/* put with set_xattrs: every extended attribute the key has after */
	struct kv_xattr *xattrs;
	size_t nxattr;
	/* add: the counters and their increments */
	struct kv_add *adds;
	size_t nadd;
	int64_t mtime_ns; /* put, mkdir; setattr with set_mtime */
	int64_t atime_ns; /* with set_atime (put, mkdir, setattr) */
	/* When the change was made (the proposer's clock): the changed
	 * key's ctime and, for an op that adds or removes a name, its
	 * parent directories' mtime and ctime. 0: put and mkdir use
	 * mtime_ns; other ops leave those times alone. */
	int64_t time_ns;
	/* Permission bits (07777); put also takes a kind (S_IFREG,
	 * S_IFLNK, S_IFIFO, S_IFSOCK; none is S_IFREG). */
	uint32_t mode;
	uint32_t uid, gid; /* with set_uid, set_gid */
	unsigned flags;	   /* rename: KV_RENAME_*; setxattr: KV_XATTR_* */
	uint64_t if_rev;   /* nonzero: only if the key's mod_rev equals it */
	bool if_absent;	   /* only if the key does not exist */
	bool set_mode;
	bool set_mtime;
	bool set_atime;
	bool set_uid;
	bool set_gid;
	bool set_xattrs;
	/* lock, sess_*: the session (sid), the node that opens one, and a
	 * lock's owner (the kernel's lock owner on that node), the pid that
	 * asked (shown by F_GETLK on that node), type, kind and range. */
	uint64_t sid;
	uint64_t node;
	uint64_t lock_owner;
	uint32_t lock_pid;
	enum kv_lock_type lock_type;
	enum kv_lock_kind lock_kind;
	uint64_t lock_start, lock_end;
	/* put (version 3): only while lock session if_sid lives, else
	 * -ENOLCK: a commit made under a lock is fenced by its session, so
	 * one that reaches the log after the session's end (a delayed
	 * message) cannot overwrite what the next holder wrote. */
	uint64_t if_sid;
	/* Leases (version 4). lease: the lease of keepalive and revoke; of
	 * a put with set_lease, the lease the key is on after (0: none);
	 * a put without set_lease keeps the key's lease. ttl: of a grant,
	 * and of a put a lease of its own granted with it (its id the
	 * entry's index). */
	uint64_t lease;
	bool set_lease;
	uint32_t ttl;
	/* txn: the comparisons and both branches (owned when decoded) */
	struct kv_txn *txn;
	/* A put of a big value prepared on another thread
	 * (store_cmd_prepare): the record it makes (one reference, val then
	 * points at its value; a replay's predecoder points key at its key
	 * too) and the record hash's state after its key and value. NULL
	 * when not prepared. kv_cmd_clear drops it, and frees key only if
	 * it is not the record's. */
	struct kv_rec *prep;
	uint64_t prep_hash;
};

/* True if op names a key (every op but noop and the sess_* ops). */
bool kv_op_has_key(enum kv_op op);

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
	int err;	/* 0, -ENOENT, -EEXIST, -ENOTEMPTY, -ENOTDIR, -EISDIR,
			   KV_EPRECOND, ...; lock: -EAGAIN (a conflicting
			   lock is held), -ENOENT (no such session) */
	uint64_t rev;	/* index of the entry that carried the command */
	uint64_t count; /* an add of one counter: the count it left; a
			   lease grant or keepalive: the lease's TTL; a txn
			   that failed with err: the index of the op */
	/* txn: what it did and read (refcounted; NULL otherwise). The
	 * applier holds it while it reports the entry; whoever keeps it
	 * past that takes a reference (kv_txn_res_ref). */
	struct kv_txn_res *txn;
};

/* ---- Transactions (cmd_txn.c; applied by store/apply_txn.c) ---- */

/* A comparison: the key's record (a key: a directory is absent) against
 * a value. value: the bytes (absent: false whatever the op); mod_rev,
 * create_rev: n (absent: 0); exists: n 1 or 0, with == or != only. */
enum kv_txn_target {
	KV_TXN_VALUE,
	KV_TXN_MOD_REV,
	KV_TXN_CREATE_REV,
	KV_TXN_EXISTS,
};
enum kv_txn_cmp_op { KV_TXN_EQ, KV_TXN_NE, KV_TXN_LT, KV_TXN_GT };
struct kv_txn_cmp {
	char *key;
	size_t klen;
	enum kv_txn_target target;
	enum kv_txn_cmp_op op;
	unsigned char *val;
	size_t vlen;
	uint64_t n;
};
/* An op of a branch: get (the key's record as the op finds it), put
 * (key, val), del (a key; absent: nothing), del_range (a directory and
 * everything below it, as DELETE ?recursive; absent: nothing). */
enum kv_txn_kind { KV_TXN_GET, KV_TXN_PUT, KV_TXN_DEL, KV_TXN_DEL_RANGE };
struct kv_txn_op {
	enum kv_txn_kind kind;
	char *key;
	size_t klen;
	unsigned char *val;
	size_t vlen;
};
/* br[0] runs if every comparison holds ("success"), br[1] otherwise. */
struct kv_txn {
	struct kv_txn_cmp *cmp;
	size_t ncmp;
	struct kv_txn_op *br[2];
	size_t nop[2];
};
/* Comparisons and ops together, at most; their values' bytes together at
 * most KV_MAX_VALUE. */
#define KV_TXN_MAX_ITEMS 128
/* 0 if t is within the rules (docs/http-api.md): the limits, every key
 * valid, the writes of a branch on keys apart (none the same as another
 * or below another's key). Else the error and, in *why and *item (may be
 * NULL), a static reason and which item ("compare" 0.., "success" 0..,
 * "failure" 0..: *where). */
int kv_txn_check(const struct kv_txn *t, const char **why, const char **where,
		 size_t *item);
void kv_txn_free(struct kv_txn *t); /* and its buffers; NULL is fine */

/* What a txn did: the branch, and for each of its ops the record a get
 * found (a reference, NULL: absent) or the keys a delete removed. */
struct kv_txn_op_res {
	struct kv_rec *rec;
	uint64_t deleted;
};
struct kv_txn_res {
	atomic_uint refs;
	bool succeeded;
	size_t n; /* the ops of the branch taken */
	struct kv_txn_op_res *r;
};
struct kv_txn_res *kv_txn_res_new(size_t n); /* refs 1; NULL: no memory */
void kv_txn_res_ref(struct kv_txn_res *t);   /* NULL is fine */
void kv_txn_res_unref(struct kv_txn_res *t); /* frees at zero */

/* What stat needs to know of a path: a key, an explicit directory (mkdir)
 * or an implicit one (keys exist below it). */
struct kv_stat {
	bool is_dir;
	uint32_t mode;	   /* kind and permission bits */
	uint32_t uid, gid; /* or KV_NO_OWNER */
	uint32_t nlink;	   /* 1; a directory: 2 + its sub-directories */
	uint64_t size;
	uint64_t create_rev;
	uint64_t mod_rev;
	int64_t mtime_ns, ctime_ns, atime_ns;
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
	/* The listed directory's own record, a reference (kv_list_clear
	 * drops it): an explicit directory's, the root's once it has one;
	 * NULL for an implicit directory. How a reader gets at a
	 * directory's extended attributes. */
	struct kv_rec *self;
};
void kv_list_clear(struct kv_list *list);

/* ---- Durable files (file.c) ---- */

/* fsync the directory dir, so that a rename or a new file in it is
 * durable. 0 or -errno. Any thread. */
int kv_sync_dir(const char *dir);
/* Write len bytes of buf to fd, going on after short writes and EINTR.
 * 0 or -errno. */
int kv_write_all(int fd, const void *buf, size_t len);
/* The same at offset off (pwrite). */
int kv_pwrite_all(int fd, const void *buf, size_t len, uint64_t off);
/* A file written beside dir/name and put in its place atomically: open
 * creates (truncating) dir/name.tmp with mode; write into t->fd (e.g.
 * kv_write_all); commit fsyncs and closes it, renames it over dir/name and
 * fsyncs dir, so a crash leaves the old file or the new one, never a mix;
 * abort (also after a failed commit) closes and removes the temp file and
 * leaves the old file as it was. 0 or -errno (-ENOSPC: the old file is
 * untouched). Any thread. */
struct kv_tmpfile {
	int fd;
	char *dir, *tmp, *path;
};
int kv_tmpfile_open(struct kv_tmpfile *t, const char *dir, const char *name,
		    unsigned mode);
int kv_tmpfile_commit(struct kv_tmpfile *t);
void kv_tmpfile_abort(struct kv_tmpfile *t);
/* mkdir -p dir (mode 0755). 0 or -errno. */
int kv_mkdir_p(const char *dir);
/* The whole dance for data[0..len) in one call. */
int kv_file_replace(const char *dir, const char *name, const void *data,
		    size_t len, unsigned mode);

/* ---- The log (logging.c) ---- */

/* One line an event on stderr: "2026-12-02T04:20:01.123Z INFO node=1
 * message". Any thread; lines never interleave. */
enum kv_log_level { KV_LOG_ERROR, KV_LOG_WARN, KV_LOG_INFO, KV_LOG_DEBUG };
void kv_log(enum kv_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void kv_logv(enum kv_log_level level, const char *fmt, va_list ap);
/* Lines above max are dropped (default KV_LOG_INFO). */
void kv_log_set_level(enum kv_log_level max);
bool kv_log_on(enum kv_log_level level);
/* The id each line shows (0: none). */
void kv_log_set_node(uint64_t id);
/* "error", "warn", "info" or "debug". 0 or -EINVAL. */
int kv_log_level_parse(const char *s, enum kv_log_level *out);

/* ---- Time (clock.c) ---- */

/* CLOCK_MONOTONIC in milliseconds. */
uint64_t kv_mono_ms(void);
/* CLOCK_MONOTONIC in nanoseconds (for measuring durations). */
uint64_t kv_mono_ns(void);
/* CLOCK_REALTIME in nanoseconds since 1970 (what mtimes record). */
int64_t kv_wall_ns(void);
/* The absolute CLOCK_MONOTONIC time ms from now, and whether a time of
 * that kind has passed; the milliseconds left until it (0 if passed). */
struct timespec kv_deadline(int ms);
bool kv_past(const struct timespec *deadline);
long kv_ms_left(const struct timespec *deadline);
/* Initialize c to wait against CLOCK_MONOTONIC (pthread_cond_timedwait
 * with kv_deadline times). 0 or -errno. */
int kv_cond_init(pthread_cond_t *c);

/* ---- Threads (thread.c) ---- */

/* The nice value of background threads (the process's is 0 by default),
 * and of the one thread that sends the heartbeats. */
#define KV_BACKGROUND_NICE 10
#define KV_URGENT_NICE	   -5
/* Lower the calling thread's CPU priority to KV_BACKGROUND_NICE: for
 * threads whose work can wait while the node thread's cannot (heartbeats).
 * Linux; best effort. */
void kv_thread_background(void);
/* Raise the calling thread's CPU priority to KV_URGENT_NICE: the node
 * thread, whose turns send the heartbeats, so that a busy machine delays
 * it less than the rest. Needs CAP_SYS_NICE (root); without it, nothing
 * changes. */
void kv_thread_urgent(void);

/* ---- Addresses (addr.c) ---- */

/* The longest "host:port" kvfs keeps (RAFT_ADDR_MAX - 1). */
#define KV_ADDR_MAX 63
/* Parse "HOST:PORT" (HOST a name or an IPv4 address of letters, digits
 * and ".-_", or an IPv6 address in brackets, "[::1]:7001"; PORT decimal digits
 * only, 1..65535, or 0 when allow_zero: the kernel picks). host gets HOST
 * without brackets (NUL-terminated, at most cap - 1 bytes), *port the number.
 * 0, or -EINVAL with *why (may be NULL) a static reason fit for a message. */
int kv_addr_parse(const char *s, bool allow_zero, char *host, size_t cap,
		  unsigned *port, const char **why);
/* True if s is a "HOST:PORT" kvfs accepts for a member (port 1..65535, at
 * most KV_ADDR_MAX bytes, no spaces or control bytes). */
bool kv_addr_valid(const char *s);

#endif
