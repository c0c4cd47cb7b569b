/* dotkvfs_int.h - the reserved .kvfs/ directory at the root of every
 * mount (docs/mount.md, ".kvfs/"), for the files of the fs module.
 *
 * .kvfs/ holds three read-only files: events (the changes under the
 * mount as they are applied on this node, one JSON line each; events@REV
 * starts at revision REV), status and members (GET /status and GET
 * /cluster/members). Its inodes are numbers the inode table never hands
 * out (from FS_DOT_INO up); fs.c asks ops_dotkvfs.c first about every
 * request that may name one (fs_dot_*: true when it answered), so no
 * other operation sees them. dotkvfs.c is the events streams: one per
 * open, fed from the store's history (store_watch_read) by the thread
 * kvfs-events, which the store's hook wakes after each applied batch and
 * which answers the reads parked for data and the poll handles. */
#ifndef KV_FS_DOTKVFS_INT_H
#define KV_FS_DOTKVFS_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fs_int.h"

#define FS_DOT_NAME	   ".kvfs"
#define FS_DOT_INO	   (UINT64_C(1) << 62) /* the directory */
#define FS_DOT_EVENTS_INO  (FS_DOT_INO + 1)
#define FS_DOT_STATUS_INO  (FS_DOT_INO + 2)
#define FS_DOT_MEMBERS_INO (FS_DOT_INO + 3)
/* events@REV is FS_DOT_AT_INO + REV, REV from 1 to FS_DOT_AT_MAX */
#define FS_DOT_AT_INO (UINT64_C(1) << 63)
#define FS_DOT_AT_MAX (UINT64_MAX - FS_DOT_AT_INO)

/* Is ino one of .kvfs's (the directory, a file, an events@REV)? */
static inline bool fs_dot_ino(uint64_t ino)
{
	return ino >= FS_DOT_INO;
}

/* ---- dotkvfs.c: the events streams ---- */

struct fs_dot_stream;

/* An open file of .kvfs, listed so that what the kernel never released
 * (files still open at the stop) is freed with the mount: free is
 * called from fs_dot_free for each still listed. */
struct fs_dot_open {
	struct fs_dot_open *prev, *next;
	void (*free)(struct fs *fs, struct fs_dot_open *o);
};
void fs_dot_open_add(struct fs *fs, struct fs_dot_open *o);
void fs_dot_open_del(struct fs *fs, struct fs_dot_open *o);

/* Hook the store's history and start kvfs-events. 0 or -errno. */
int fs_dot_start(struct fs *fs);
/* Stop the thread, unhook, answer the parked reads (EINTR) and drop the
 * poll handles: before the session goes. Twice is fine. */
void fs_dot_stop(struct fs *fs);
/* Free what is left (open files the kernel never released). */
void fs_dot_free(struct fs *fs);
/* A new stream from revision from (>= 1): its first line says where it
 * starts. NULL without memory or without a history to read. */
struct fs_dot_stream *fs_dot_stream_open(struct fs *fs, uint64_t from);
void fs_dot_stream_close(struct fs *fs, struct fs_dot_stream *s);
/* The stream's end (bytes made for it so far), after taking what the
 * history has; and the same for every stream of the mount together (what
 * a stat without a handle shows: never less than any stream's), with
 * the time of the last line made. */
uint64_t fs_dot_stream_size(struct fs *fs, struct fs_dot_stream *s);
uint64_t fs_dot_total(struct fs *fs, int64_t *mtime_ns);
/* read(2) of size bytes at off: answered now (data, EAGAIN when
 * nonblock, EINVAL before what is kept, EBUSY if a read is parked
 * already) or parked until a line comes (an interrupt answers EINTR). */
void fs_dot_stream_read(fuse_req_t req, struct fs *fs, struct fs_dot_stream *s,
			size_t size, uint64_t off, bool nonblock);
/* poll(2): answered with POLLIN if there is unread data, else 0 and ph
 * (may be NULL) kept for the notification. */
void fs_dot_stream_poll(fuse_req_t req, struct fs *fs, struct fs_dot_stream *s,
			struct fuse_pollhandle *ph);

/* ---- ops_dotkvfs.c: the operations on .kvfs's inodes ---- */

bool fs_dot_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
bool fs_dot_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
bool fs_dot_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		    int to_set, struct fuse_file_info *fi);
bool fs_dot_readlink(fuse_req_t req, fuse_ino_t ino);
bool fs_dot_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		  mode_t mode, dev_t rdev);
bool fs_dot_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		  mode_t mode);
bool fs_dot_unlink(fuse_req_t req, fuse_ino_t parent, const char *name);
bool fs_dot_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);
bool fs_dot_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		    const char *name);
bool fs_dot_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		   fuse_ino_t newparent, const char *newname,
		   unsigned int flags);
bool fs_dot_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		 const char *newname);
bool fs_dot_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
bool fs_dot_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		 struct fuse_file_info *fi);
bool fs_dot_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
		  off_t off, struct fuse_file_info *fi);
bool fs_dot_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
bool fs_dot_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
bool fs_dot_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		  struct fuse_file_info *fi);
bool fs_dot_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
bool fs_dot_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi);
bool fs_dot_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			struct fuse_file_info *fi);
bool fs_dot_releasedir(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi);
bool fs_dot_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		     const char *value, size_t size, int flags);
bool fs_dot_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		     size_t size);
bool fs_dot_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
bool fs_dot_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);
bool fs_dot_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		   mode_t mode, struct fuse_file_info *fi);
bool fs_dot_getlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		  struct flock *lock);
bool fs_dot_setlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		  struct flock *lock, int sleep);
bool fs_dot_flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		  int op);
/* poll on any inode of the mount: the events streams' readiness, and
 * POLLIN|POLLOUT at once for every other file (a regular file's). */
void fs_dot_poll(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		 struct fuse_pollhandle *ph);

#endif
