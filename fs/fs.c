/* fs.c - mounting kvfs: the context, the operations table, the loop.
 *
 * One struct fs per mount, the session's userdata (no globals). The mount
 * uses libfuse's low-level API: the kernel names inodes, inode.c maps them
 * to keys, and every operation (ops_*.c) replies itself. The high-level
 * API resolves a path before it calls the filesystem, so it could not
 * serve an fstat of a file removed while open (the kernel sends it by
 * inode, without a handle); owning the inodes also lets all opens of a
 * file share one state, and replies be sent later. Cache settings are
 * chosen in fs_init: kernel attributes for attr_timeout seconds, no
 * negative entries, pages dropped on open, permissions checked by the
 * kernel, and every applied change invalidated through inval.c;
 * docs/mount.md explains why. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dotkvfs_int.h"
#include "fs_int.h"

static void fs_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	/* O_TRUNC is part of the open, not a separate truncate: the empty
	 * value and the writes after it are one commit. */
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	/* Always readdirplus: ls -l gets every attribute with the listing */
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
	/* Every write() reaches the file's buffer (its size and times are
	 * ours to show), and the kernel clears set-user-ID and set-group-ID
	 * itself, by a setattr, where Linux does (a write or truncate by a
	 * caller without CAP_FSETID, a chown). */
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	conn->want &= ~FUSE_CAP_HANDLE_KILLPRIV;
}

/* Each operation through a wrapper that counts and times it
 * (fs_metrics.c): every operation has replied when it returns, except
 * the three METERED_LATER ones below. Those on
 * .kvfs/ (ops_dotkvfs.c) are answered first and not counted; forget and
 * statfs need no such check (METERED_ALL). */
#define METERED_ALL(op, OP, params, args)                                      \
	static void m_##op params                                              \
	{                                                                      \
		uint64_t t0 = kv_mono_ns();                                    \
		fs_op_##op args;                                               \
		fs_metric_op(FS_OP_##OP, t0);                                  \
	}
#define METERED(op, OP, params, args)                                          \
	static void m_##op params                                              \
	{                                                                      \
		if (fs_dot_##op args)                                          \
			return;                                                \
		uint64_t t0 = kv_mono_ns();                                    \
		fs_op_##op args;                                               \
		fs_metric_op(FS_OP_##OP, t0);                                  \
	}
/* Those that may reply later, from the thread that settles their read
 * barrier (ctx.c, fs_barrier_later), count themselves when they reply. */
#define WITH_T0(...) (__VA_ARGS__, kv_mono_ns())
#define METERED_LATER(op, params, args)                                        \
	static void m_##op params                                              \
	{                                                                      \
		if (fs_dot_##op args)                                          \
			return;                                                \
		fs_op_##op WITH_T0 args;                                       \
	}
typedef struct fuse_file_info ffi;
METERED_LATER(lookup, (fuse_req_t r, fuse_ino_t p, const char *n), (r, p, n))
METERED_ALL(forget, FORGET, (fuse_req_t r, fuse_ino_t i, uint64_t n), (r, i, n))
METERED_ALL(forget_multi, FORGET,
	    (fuse_req_t r, size_t c, struct fuse_forget_data *f), (r, c, f))
METERED_LATER(getattr, (fuse_req_t r, fuse_ino_t i, ffi *fi), (r, i, fi))
METERED(setattr, SETATTR,
	(fuse_req_t r, fuse_ino_t i, struct stat *a, int s, ffi *fi),
	(r, i, a, s, fi))
METERED(readlink, READLINK, (fuse_req_t r, fuse_ino_t i), (r, i))
METERED(mknod, MKNOD,
	(fuse_req_t r, fuse_ino_t p, const char *n, mode_t m, dev_t d),
	(r, p, n, m, d))
METERED(mkdir, MKDIR, (fuse_req_t r, fuse_ino_t p, const char *n, mode_t m),
	(r, p, n, m))
METERED(unlink, UNLINK, (fuse_req_t r, fuse_ino_t p, const char *n), (r, p, n))
METERED(rmdir, RMDIR, (fuse_req_t r, fuse_ino_t p, const char *n), (r, p, n))
METERED(symlink, SYMLINK,
	(fuse_req_t r, const char *l, fuse_ino_t p, const char *n),
	(r, l, p, n))
METERED(rename, RENAME,
	(fuse_req_t r, fuse_ino_t p, const char *n, fuse_ino_t np,
	 const char *nn, unsigned int f),
	(r, p, n, np, nn, f))
METERED(link, LINK, (fuse_req_t r, fuse_ino_t i, fuse_ino_t p, const char *n),
	(r, i, p, n))
METERED_LATER(open, (fuse_req_t r, fuse_ino_t i, ffi *fi), (r, i, fi))
METERED(read, READ, (fuse_req_t r, fuse_ino_t i, size_t s, off_t o, ffi *fi),
	(r, i, s, o, fi))
METERED(write, WRITE,
	(fuse_req_t r, fuse_ino_t i, const char *b, size_t s, off_t o, ffi *fi),
	(r, i, b, s, o, fi))
METERED(flush, FLUSH, (fuse_req_t r, fuse_ino_t i, ffi *fi), (r, i, fi))
METERED(release, RELEASE, (fuse_req_t r, fuse_ino_t i, ffi *fi), (r, i, fi))
METERED(fsync, FSYNC, (fuse_req_t r, fuse_ino_t i, int d, ffi *fi),
	(r, i, d, fi))
METERED(opendir, OPENDIR, (fuse_req_t r, fuse_ino_t i, ffi *fi), (r, i, fi))
METERED(readdir, READDIR,
	(fuse_req_t r, fuse_ino_t i, size_t s, off_t o, ffi *fi),
	(r, i, s, o, fi))
METERED(readdirplus, READDIR,
	(fuse_req_t r, fuse_ino_t i, size_t s, off_t o, ffi *fi),
	(r, i, s, o, fi))
METERED(releasedir, RELEASEDIR, (fuse_req_t r, fuse_ino_t i, ffi *fi),
	(r, i, fi))
METERED_ALL(statfs, STATFS, (fuse_req_t r, fuse_ino_t i), (r, i))
METERED(setxattr, SETXATTR,
	(fuse_req_t r, fuse_ino_t i, const char *n, const char *v, size_t s,
	 int f),
	(r, i, n, v, s, f))
METERED(getxattr, GETXATTR,
	(fuse_req_t r, fuse_ino_t i, const char *n, size_t s), (r, i, n, s))
METERED(listxattr, LISTXATTR, (fuse_req_t r, fuse_ino_t i, size_t s), (r, i, s))
METERED(removexattr, REMOVEXATTR, (fuse_req_t r, fuse_ino_t i, const char *n),
	(r, i, n))
METERED(create, CREATE,
	(fuse_req_t r, fuse_ino_t p, const char *n, mode_t m, ffi *fi),
	(r, p, n, m, fi))
METERED(getlk, LOCK, (fuse_req_t r, fuse_ino_t i, ffi *fi, struct flock *l),
	(r, i, fi, l))
METERED(setlk, LOCK,
	(fuse_req_t r, fuse_ino_t i, ffi *fi, struct flock *l, int s),
	(r, i, fi, l, s))
METERED(flock, LOCK, (fuse_req_t r, fuse_ino_t i, ffi *fi, int op),
	(r, i, fi, op))

static const struct fuse_lowlevel_ops fs_ops = {
    .init = fs_init,
    .lookup = m_lookup,
    .forget = m_forget,
    .forget_multi = m_forget_multi,
    .getattr = m_getattr,
    .setattr = m_setattr,
    .readlink = m_readlink,
    .mknod = m_mknod,
    .mkdir = m_mkdir,
    .unlink = m_unlink,
    .rmdir = m_rmdir,
    .symlink = m_symlink,
    .rename = m_rename,
    .link = m_link,
    .open = m_open,
    .read = m_read,
    .write = m_write,
    .flush = m_flush,
    .release = m_release,
    .fsync = m_fsync,
    .opendir = m_opendir,
    .readdir = m_readdir,
    .releasedir = m_releasedir,
    .statfs = m_statfs,
    .setxattr = m_setxattr,
    .getxattr = m_getxattr,
    .listxattr = m_listxattr,
    .removexattr = m_removexattr,
    .create = m_create,
    .readdirplus = m_readdirplus,
    /* Locks through the replicated lock table (ops_lock.c): libfuse asks
     * the kernel for FUSE_CAP_POSIX_LOCKS and FUSE_CAP_FLOCK_LOCKS, so
     * the kernel keeps none of them on this node itself. */
    .getlk = m_getlk,
    .setlk = m_setlk,
    .flock = m_flock,
    /* poll: .kvfs/events waits for changes (ops_dotkvfs.c) */
    .poll = fs_dot_poll,
};

/* After each applied change (node thread, the store's write lock held):
 * the kernel's caches to invalidate, queued. */
static void on_change(void *ctx, const char *key, size_t klen)
{
	struct fs *fs = ctx;
	fs_inval_push(&fs->inval, key, klen);
}

/* After a chunk of them (node thread, the lock released, before their
 * writers are answered): the invalidations start, and the parked lock
 * requests look again. */
static void on_changes_done(void *ctx)
{
	struct fs *fs = ctx;
	fs_inval_flush(&fs->inval);
	fs_locks_changed(fs);
}

/* The production invalidation (inval.c calls it off the node thread):
 * the kernel drops what it caches of path's inode, and forgets the name
 * when the key is gone or changed kind, so the next use looks it up. */
static int invalidate_path(void *ctx, const char *path)
{
	struct fs *fs = ctx;
	char name[KV_MAX_SEGMENT + 1], key[KV_MAX_KEY + 1];
	uint64_t pino = 0;
	size_t klen;
	struct kv_stat ks;
	struct fs_inode *in =
	    fs_inode_at(&fs->itab, path, &pino, name, sizeof(name));

	if (in == NULL)
		return -ENOENT; /* the kernel does not know it either */
	fuse_lowlevel_notify_inval_inode(fs->se, in->ino, 0, 0);
	if (pino != 0 &&
	    fs_path_to_key(fs->prefix, fs->plen, path, key, sizeof(key),
			   &klen) == 0 &&
	    (store_stat(node_store(fs->node), key, klen, &ks) != 0 ||
	     (ks.is_dir ? (uint32_t)S_IFDIR : ks.mode & S_IFMT) != in->kind))
		fuse_lowlevel_notify_inval_entry(fs->se, pino, name,
						 strlen(name));
	fs_inode_put(&fs->itab, in);
	return 0;
}

/* A clear message for a mountpoint that cannot be used. */
static int check_mountpoint(const char *mp)
{
	struct stat st, parent;
	if (stat(mp, &st) != 0) {
		int err = errno;
		if (err == ENOTCONN)
			fprintf(stderr,
				"kvfs: mountpoint %s is a dead FUSE mount "
				"(transport endpoint not connected); run "
				"fusermount3 -u %s first\n",
				mp, mp);
		else
			fprintf(stderr, "kvfs: mountpoint %s: %s\n", mp,
				strerror(err));
		return -err;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "kvfs: mountpoint %s is not a directory\n", mp);
		return -ENOTDIR;
	}
	char up[PATH_MAX];
	if (snprintf(up, sizeof(up), "%s/..", mp) < (int)sizeof(up) &&
	    stat(up, &parent) == 0 &&
	    (st.st_dev != parent.st_dev || st.st_ino == parent.st_ino)) {
		fprintf(stderr,
			"kvfs: mountpoint %s is busy: something is already "
			"mounted there (unmount it first, e.g. fusermount3 "
			"-u %s)\n",
			mp, mp);
		return -EBUSY;
	}
	return 0;
}

/* The FUSE arguments the session gets: the caller's, plus the mount's
 * name and, unless turned off, the kernel's permission checks. */
static int session_args(const struct fuse_args *in,
			const struct fs_options *opt, struct fuse_args *out)
{
	*out = (struct fuse_args)FUSE_ARGS_INIT(0, NULL);
	if (fuse_opt_add_arg(out, in && in->argc > 0 ? in->argv[0] : "kvfs"))
		return -ENOMEM;
	for (int i = 1; in && i < in->argc; i++)
		if (fuse_opt_add_arg(out, in->argv[i]) != 0)
			return -ENOMEM;
	char names[300];
	snprintf(names, sizeof(names), "-osubtype=kvfs,fsname=%s",
		 opt->fsname ? opt->fsname : "kvfs");
	if (fuse_opt_add_arg(out, names) != 0)
		return -ENOMEM;
	if (!opt->no_default_permissions &&
	    fuse_opt_add_arg(out, "-odefault_permissions") != 0)
		return -ENOMEM;
	return 0;
}

static int fs_setup(struct fs *fs, struct kv_node *n, const char *mountpoint,
		    const struct fs_options *opt)
{
	int ret;

	fs->node = n;
	fs->linearizable = !opt->local_reads;
	fs->timeout = opt->attr_timeout >= 0 ? opt->attr_timeout : 1.0;
	fs->uid = getuid();
	fs->gid = getgid();
	fs->mount_ns = kv_wall_ns();
	ret = fs_prefix_new(opt->subdir, &fs->prefix, &fs->plen);
	if (ret != 0) {
		fprintf(stderr, "kvfs: bad subdir \"%s\": %s\n", opt->subdir,
			kv_strerror(ret));
		return ret;
	}
	if (opt->data_dir && !(fs->data_dir = strdup(opt->data_dir)))
		return -ENOMEM;
	if (!(fs->mountpoint = strdup(mountpoint)))
		return -ENOMEM;
	if (pthread_mutex_init(&fs->handles_lock, NULL) != 0)
		return -ENOMEM;
	if (pthread_mutex_init(&fs->laters_mu, NULL) != 0)
		return -ENOMEM;
	if (pthread_cond_init(&fs->laters_cv, NULL) != 0)
		return -ENOMEM;
	return fs_itable_init(&fs->itab, S_IFDIR);
}

int fs_mount(struct kv_node *n, const char *mountpoint, struct fuse_args *args,
	     const struct fs_options *opt, struct fs **out)
{
	int ret = check_mountpoint(mountpoint);
	if (ret != 0)
		return ret;
	fs_metrics_register(); /* a node without a mount has none */
	struct fs *fs = calloc(1, sizeof(*fs));
	if (!fs)
		return -ENOMEM;
	struct fuse_args sargs = FUSE_ARGS_INIT(0, NULL);
	if ((ret = fs_setup(fs, n, mountpoint, opt)) != 0)
		goto err_free;
	if ((ret = session_args(args, opt, &sargs)) != 0)
		goto err_table;
	fs->se = fuse_session_new(&sargs, &fs_ops, sizeof(fs_ops), fs);
	fuse_opt_free_args(&sargs);
	if (!fs->se) {
		fprintf(stderr, "kvfs: cannot set up FUSE (see the message "
				"above for the option it refused)\n");
		ret = -EINVAL;
		goto err_table;
	}
	if (fuse_session_mount(fs->se, mountpoint) != 0) {
		fprintf(stderr,
			"kvfs: cannot mount on %s (is /dev/fuse there and "
			"fusermount3 installed? is the mountpoint busy?)\n",
			mountpoint);
		ret = -EIO;
		goto err_session;
	}
	fs->mounted = true;
	fs_copies_init(fs);
	ret = fs_inval_start(&fs->inval, fs->prefix, fs->plen, invalidate_path,
			     fs);
	if (ret != 0)
		goto err_unmount;
	if ((ret = fs_locks_start(fs)) != 0)
		goto err_inval;
	if ((ret = fs_dot_start(fs)) != 0)
		goto err_locks;
	node_watch(n, on_change, on_changes_done, fs);
	fs->watching = true;
	*out = fs;
	return 0;

err_locks:
	fs_locks_stop(fs);
err_inval:
	fs_inval_stop(&fs->inval);
	fs_inval_join(&fs->inval);
err_unmount:
	fuse_session_unmount(fs->se);
err_session:
	fuse_session_destroy(fs->se);
err_table:
	fs_itable_close(&fs->itab);
err_free:
	fuse_opt_free_args(&sargs);
	free(fs->mountpoint);
	free(fs->data_dir);
	free(fs->prefix);
	free(fs);
	return ret;
}

int fs_loop(struct fs *fs)
{
	if (fuse_set_signal_handlers(fs->se) != 0)
		return -EIO;
	struct fuse_loop_config cfg = {.clone_fd = 0, .max_idle_threads = 10};
	int ret = fuse_session_loop_mt(fs->se, &cfg);
	fuse_remove_signal_handlers(fs->se);
	/* > 0: the signal that ended it (SIGTERM...): a clean stop too */
	return ret < 0 ? -EIO : 0;
}

void fs_commit_open(struct fs *fs)
{
	if (fs) {
		/* the opens still waiting for a barrier first: theirs are
		 * handles too */
		fs_laters_drain(fs);
		fs_commit_all(fs);
		/* then the locks: what they guarded is committed */
		fs_locks_stop(fs);
	}
}

void fs_free(struct fs *fs)
{
	if (!fs)
		return;
	/* No more callbacks (node_watch waits out a running one), then no
	 * more invalidations, then the kernel connection goes: unmounting
	 * aborts requests an in-flight invalidation may be waiting on. */
	if (fs->watching)
		node_watch(fs->node, NULL, NULL, NULL);
	fs_locks_stop(fs);
	fs_dot_stop(fs);
	fs_inval_stop(&fs->inval);
	if (fs->mounted)
		fuse_session_unmount(fs->se);
	fs_inval_join(&fs->inval);
	fs_laters_drain(fs); /* they reply through the session */
	fuse_session_destroy(fs->se);
	/* Handles the kernel never released (files still open at the
	 * stop): their changes were committed by fs_commit_open. */
	while (fs->handles)
		fs_handle_forget(fs, fs->handles);
	fs_dot_free(fs);
	pthread_mutex_destroy(&fs->handles_lock);
	pthread_cond_destroy(&fs->laters_cv);
	pthread_mutex_destroy(&fs->laters_mu);
	fs_itable_close(&fs->itab);
	free(fs->mountpoint);
	free(fs->data_dir);
	free(fs->prefix);
	free(fs);
}
