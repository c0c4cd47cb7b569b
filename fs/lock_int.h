/* lock_int.h - what lock.c (grants and parked waits) and lock_session.c
 * (the session) share. Private to those two files. */
#ifndef KVFS_FS_LOCK_INT_H
#define KVFS_FS_LOCK_INT_H

#include <stdbool.h>
#include <stdint.h>

struct fs;

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
