/* fs.h - the FUSE frontend: keys as files.
 *
 * fs_mount mounts a kvfs node at a mountpoint with libfuse3's low-level
 * API, fs_loop serves it until unmounted (fusermount3 -u) or signalled
 * (SIGTERM, SIGINT), fs_commit_open commits what open files hold, and
 * fs_free unmounts. Every operation becomes a node proposal or a store
 * read; see fs.c and docs/mount.md. */
#ifndef KV_FS_H
#define KV_FS_H

#include <stdbool.h>

#define FUSE_USE_VERSION 35
#include <fuse_lowlevel.h>

#include "node.h"

struct fs_options {
	const char *subdir;   /* mount only keys under this prefix, or NULL */
	bool local_reads;     /* read the local map without ReadIndex */
	double attr_timeout;  /* kernel attribute/entry cache, seconds */
	const char *data_dir; /* for statfs figures; NULL: the cwd */
	/* The kernel checks permissions against the stored modes and owners
	 * (-o default_permissions) unless this is set. */
	bool no_default_permissions;
	/* The name the mount table shows as its source (fsname); NULL:
	 * "kvfs". Letters, digits and ._:@/- only. */
	const char *fsname;
};

struct fs;

/* Mount n at mountpoint (fuse_session_new + fuse_session_mount; no
 * daemonizing: main forks before any thread starts). args are the
 * remaining FUSE arguments (-d, -o allow_other, ...), borrowed. Returns 0,
 * or a negative errno with a clear message printed to stderr (missing or
 * busy mountpoint, no /dev/fuse). Main thread only. */
int fs_mount(struct kv_node *n, const char *mountpoint, struct fuse_args *args,
	     const struct fs_options *opt, struct fs **out);
/* Serve requests (multi-threaded) until unmounted (fusermount3 -u) or
 * SIGTERM/SIGINT/SIGHUP (handlers installed here). Returns 0 or -errno. */
int fs_loop(struct fs *fs);
/* After fs_loop, before the node stops: commit every open file that holds
 * changes (each within the node's write timeout), and say on stderr which
 * could not be. Their writers' later calls fail (the mount goes), so
 * nothing is lost without a word. Main thread only. */
void fs_commit_open(struct fs *fs);
/* Unmount if still mounted and free. */
void fs_free(struct fs *fs);

#endif
