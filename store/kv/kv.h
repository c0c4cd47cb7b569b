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

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

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
/* The whole dance for data[0..len) in one call. */
int kv_file_replace(const char *dir, const char *name, const void *data,
		    size_t len, unsigned mode);

/* ---- Time (clock.c) ---- */

/* CLOCK_MONOTONIC in milliseconds. */
uint64_t kv_mono_ms(void);
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
