/* lock.h - the mount's locks across nodes: flock and POSIX byte-range
 * locks granted through the replicated lock table (store/locks.c) under
 * this node's lock session. lock.c takes and parks requests, lock_session.c
 * keeps the session; ops_lock.c and ops_file.c call them. Part of the fs
 * module (included by fs_int.h), not for other modules. */
#ifndef KV_FS_LOCK_H
#define KV_FS_LOCK_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fs.h"

struct fs;

/* The session's bounds (docs/mount.md): the leader ends a session not
 * heard of for FS_LOCK_TTL_MS; a node renews its session every
 * FS_LOCK_RENEW_MS while it holds or waits for a lock, and stops
 * believing in it FS_LOCK_MARGIN_MS before the leader could end it,
 * counted from when it sent the last command that was answered. */
#define FS_LOCK_TTL_MS	  4000
#define FS_LOCK_RENEW_MS  1000
#define FS_LOCK_MARGIN_MS 1000
#define FS_LOCK_TICK_MS	  200

/* One lock request of the kernel's, as the table takes it. */
struct fs_lock_req {
	char key[KV_MAX_KEY + 1];
	size_t klen;
	enum kv_lock_kind kind;
	enum kv_lock_type type;
	uint64_t start, end; /* inclusive; end KV_LOCK_EOF */
	uint64_t owner;	     /* fuse_file_info.lock_owner */
	uint32_t pid;
};

struct fs_lock_wait;
struct fs_handle;
struct fs_sess_watch;

/* The mount's side of the lock table: its session, the requests parked
 * until a lock frees, and (on the leader) the watch on every session.
 * Guarded by mu (open_mu serializes opening a session and is taken
 * first), but the watch and was_leader, which are the session thread's
 * (kvfs-locks: renews, fences, expires); kvfs-lockwait retries the
 * parked requests. */
struct fs_locks {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	pthread_mutex_t open_mu;
	uint64_t sid;	      /* this node's session, 0: none */
	uint64_t valid_until; /* kv_mono_ms: believed alive until then */
	uint64_t renew_sent;  /* kv_mono_ms of the last renew sent */
	bool renew_out;	      /* a renew is in flight */
	uint64_t lost_sid;    /* a renew found the session gone */
	uint64_t gen;	      /* bumped by every applied change */
	struct fs_lock_wait *waiters, **tail;
	size_t nwaiters;
	struct fs_sess_watch *watch; /* the leader's */
	size_t nwatch;
	bool was_leader;
	bool stop, started;
	pthread_t thread, wait_thread;
};

/* Start the threads. 0 or -errno. */
int fs_locks_start(struct fs *fs);
/* Stop the threads, answer the parked requests (ENOLCK) and end the
 * session (its locks go at once, not after FS_LOCK_TTL_MS). Before the
 * node stops; twice is fine. */
void fs_locks_stop(struct fs *fs);
/* The node_watch callback's part: something was applied (a lock may have
 * freed). Never blocks beyond a short mutex. */
void fs_locks_changed(struct fs *fs);
/* The session the locks are taken under now (0: none). */
uint64_t fs_lock_sid(struct fs *fs);
/* Take or clear r through handle h (the caller's FUSE thread, or the
 * lock thread): opens a session if there is none (and once more if the
 * table no longer has ours), proposes the lock command and waits for it.
 * A grant refreshes the open file's view and drops the kernel's cache of
 * it, so what the last holder committed is read. 0, -EAGAIN (a
 * conflicting lock), -ENOLCK, or the node's error as -errno. */
int fs_lock_apply(struct fs *fs, struct fs_handle *h,
		  const struct fs_lock_req *r);
/* Park req (a blocking F_SETLKW or flock) until r can be granted: the
 * lock thread tries again whenever the table changes (and every tick)
 * and replies; an interrupt replies EINTR. The FUSE thread returns. */
void fs_lock_park(struct fs *fs, fuse_req_t req, struct fs_handle *h,
		  const struct fs_lock_req *r);
/* The table says session sid is gone (a fenced commit found it so): if
 * it is still this node's, it is lost, as when a renew finds it gone. */
void fs_lock_session_ended(struct fs *fs, uint64_t sid);
/* Give up this node's session (its locks go, its descriptors that held
 * one get EIO): for a release that could not be proposed, which must not
 * leave a lock behind. why goes in the log. */
void fs_lock_drop_session(struct fs *fs, const char *why);
/* True if h may still hold a lock of this node's session, with the
 * owner that last locked through it in *owner. */
bool fs_lock_owner_of(struct fs *fs, struct fs_handle *h, uint64_t *owner);
/* True if a lock taken through h was lost with its session: writes and
 * commits through h then fail with EIO. */
bool fs_lock_lost(struct fs *fs, struct fs_handle *h);

/* ---- between lock.c and lock_session.c ---- */

/* The session to lock under: ours, or (open) a new one opened through
 * the log. 0, -ENOENT (none and !open), or -errno. */
int fs_lock_session(struct fs *fs, bool open, uint64_t *sid);
/* A command of sid sent at sent (kv_mono_ms) was answered: the session
 * lives at least until sent + FS_LOCK_TTL_MS on the leader's clock. */
void fs_lock_heard(struct fs *fs, uint64_t sid, uint64_t sent);
/* sid is no longer ours (expired, ended, or not renewed in time): every
 * handle that may hold a lock under it loses it, and the end is
 * proposed. why goes in the log. */
void fs_lock_session_lost(struct fs *fs, uint64_t sid, const char *why);
/* The session thread (kvfs-locks): arg is the struct fs. */
void *fs_lock_session_main(void *arg);

#endif
