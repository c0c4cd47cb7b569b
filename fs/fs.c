/* fs.c - mounting kvfs: the context, the operations table, the loop.
 *
 * One struct fs per mount, reached from every operation through
 * fuse_get_context()->private_data (no globals). libfuse's high-level API
 * hands us paths, which are keys (path.c); the operations live in
 * ops_file.c (contents) and ops_tree.c (names). Cache settings are chosen
 * in fs_init: kernel attributes for attr_timeout seconds, no negative
 * entries, pages dropped on open, and every applied change invalidated
 * through inval.c; docs/mount.md explains why. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fs_int.h"

struct fs *fs_ctx(void)
{
	return fuse_get_context()->private_data;
}

int fs_key(const struct fs *fs, const char *path, char *out, size_t *klen,
	   bool allow_root)
{
	if (!path)
		return -ENOENT;
	int ret = fs_path_to_key(fs->prefix, fs->plen, path, out,
				 KV_MAX_KEY + 1, klen);
	if (ret != 0)
		return ret;
	if (*klen == 0)
		return allow_root ? 0 : -EPERM; /* the root is no key */
	if (*klen == fs->plen && !allow_root)
		return -EPERM; /* nor is the root of a subdir mount */
	return kv_key_check(out, *klen);
}

int fs_barrier(struct fs *fs)
{
	return fs_errno(node_read_barrier(fs->node, fs->linearizable));
}

int fs_propose(struct fs *fs, struct kv_cmd *cmd)
{
	struct kv_result res = {0};
	int ret = node_propose(fs->node, cmd, &res);
	if (ret == 0)
		ret = res.err;
	return fs_errno(ret);
}

void fs_fill_stat(const struct fs *fs, const struct kv_stat *ks,
		  struct stat *st)
{
	memset(st, 0, sizeof(*st));
	uint32_t perm = ks->mode & 07777;
	if (ks->is_dir) {
		st->st_mode = S_IFDIR | (perm ? perm : 0755);
		st->st_nlink = 2;
	} else {
		st->st_mode = S_IFREG | perm;
		st->st_nlink = 1;
		st->st_size = (off_t)ks->size;
		st->st_blocks = (blkcnt_t)((ks->size + 511) / 512);
	}
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_blksize = 4096;
	int64_t mt = ks->mtime_ns;
	if (mt == 0 && ks->is_dir)
		mt = fs->mount_ns; /* implicit directories carry no time */
	st->st_mtim.tv_sec = (time_t)(mt / 1000000000);
	st->st_mtim.tv_nsec = (long)(mt % 1000000000);
	st->st_ctim = st->st_mtim;
	st->st_atim = st->st_mtim;
}

static void *fs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	struct fs *fs = fuse_get_context()->private_data;
	cfg->use_ino = 0;
	cfg->entry_timeout = fs->timeout;
	cfg->attr_timeout = fs->timeout;
	/* No negative entries: a key created by another path must be
	 * visible at once, and nothing could invalidate a cached miss. */
	cfg->negative_timeout = 0;
	cfg->kernel_cache = 0;
	cfg->auto_cache = 0;
	/* Removing an open file removes the key (no .fuse_hidden files in
	 * the store); its later writes go nowhere, as on a local disk. */
	cfg->hard_remove = 1;
	cfg->nullpath_ok = 0; /* commits need the file's current path */
	conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	/* Always readdirplus: ls -l gets every attribute with the listing */
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	return fs;
}

static const struct fuse_operations fs_ops = {
    .init = fs_init,
    .getattr = fs_op_getattr,
    .open = fs_op_open,
    .create = fs_op_create,
    .read = fs_op_read,
    .write = fs_op_write,
    .flush = fs_op_flush,
    .fsync = fs_op_fsync,
    .release = fs_op_release,
    .truncate = fs_op_truncate,
    .opendir = fs_op_opendir,
    .readdir = fs_op_readdir,
    .releasedir = fs_op_releasedir,
    .mkdir = fs_op_mkdir,
    .rmdir = fs_op_rmdir,
    .unlink = fs_op_unlink,
    .rename = fs_op_rename,
    .chmod = fs_op_chmod,
    .chown = fs_op_chown,
    .utimens = fs_op_utimens,
    .statfs = fs_op_statfs,
};

static int invalidate_path(void *ctx, const char *path)
{
	struct fs *fs = ctx;
	return fuse_invalidate_path(fs->fuse, path);
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

int fs_mount(struct kv_node *n, const char *mountpoint, struct fuse_args *args,
	     const struct fs_options *opt, struct fs **out)
{
	int ret = check_mountpoint(mountpoint);
	if (ret != 0)
		return ret;
	struct fs *fs = calloc(1, sizeof(*fs));
	if (!fs)
		return -ENOMEM;
	fs->node = n;
	fs->linearizable = !opt->local_reads;
	fs->timeout = opt->attr_timeout >= 0 ? opt->attr_timeout : 1.0;
	fs->uid = getuid();
	fs->gid = getgid();
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	fs->mount_ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
	ret = fs_prefix_new(opt->subdir, &fs->prefix, &fs->plen);
	if (ret != 0) {
		fprintf(stderr, "kvfs: bad subdir \"%s\": %s\n", opt->subdir,
			kv_strerror(ret));
		goto err_free;
	}
	if (opt->data_dir && !(fs->data_dir = strdup(opt->data_dir))) {
		ret = -ENOMEM;
		goto err_free;
	}
	fs->mountpoint = strdup(mountpoint);
	if (!fs->mountpoint) {
		ret = -ENOMEM;
		goto err_free;
	}

	char *argv0[] = {"kvfs", NULL};
	struct fuse_args none = FUSE_ARGS_INIT(1, argv0);
	fs->fuse = fuse_new(args && args->argc > 0 ? args : &none, &fs_ops,
			    sizeof(fs_ops), fs);
	if (!fs->fuse) {
		fprintf(stderr, "kvfs: cannot set up FUSE (see the message "
				"above for the option it refused)\n");
		ret = -EINVAL;
		goto err_free;
	}
	if (fuse_mount(fs->fuse, mountpoint) != 0) {
		fprintf(stderr,
			"kvfs: cannot mount on %s (is /dev/fuse there and "
			"fusermount3 installed? is the mountpoint busy?)\n",
			mountpoint);
		ret = -EIO;
		goto err_fuse;
	}
	fs->mounted = true;
	ret = fs_inval_start(&fs->inval, fs->prefix, fs->plen, invalidate_path,
			     fs);
	if (ret != 0)
		goto err_unmount;
	node_watch(n, fs_inval_push, &fs->inval);
	fs->watching = true;
	*out = fs;
	return 0;

err_unmount:
	fuse_unmount(fs->fuse);
err_fuse:
	fuse_destroy(fs->fuse);
err_free:
	free(fs->mountpoint);
	free(fs->data_dir);
	free(fs->prefix);
	free(fs);
	return ret;
}

int fs_loop(struct fs *fs)
{
	struct fuse_session *se = fuse_get_session(fs->fuse);
	if (fuse_set_signal_handlers(se) != 0)
		return -EIO;
	struct fuse_loop_config cfg = {.clone_fd = 0, .max_idle_threads = 10};
	int ret = fuse_loop_mt(fs->fuse, &cfg);
	fuse_remove_signal_handlers(se);
	/* > 0: the signal that ended it (SIGTERM...): a clean stop too */
	return ret < 0 ? -EIO : 0;
}

void fs_free(struct fs *fs)
{
	if (!fs)
		return;
	/* No more callbacks (node_watch waits out a running one), then no
	 * more invalidations, then the kernel connection goes: unmounting
	 * aborts requests an in-flight invalidation may be waiting on. */
	if (fs->watching)
		node_watch(fs->node, NULL, NULL);
	fs_inval_stop(&fs->inval);
	if (fs->mounted)
		fuse_unmount(fs->fuse);
	fs_inval_join(&fs->inval);
	fuse_destroy(fs->fuse);
	free(fs->mountpoint);
	free(fs->data_dir);
	free(fs->prefix);
	free(fs);
}
