/* ops_tree.c - the FUSE operations on names: getattr, readdir, mkdir,
 * rmdir, unlink, rename, chmod, chown, utimens, statfs.
 *
 * Each is one store read or one node proposal. readdir pages through the
 * ordered map with store_list's 'after' cursor and hands the kernel each
 * entry's attributes with it (readdirplus), so `ls -l` of a big directory
 * costs one listing and no per-entry getattr. */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>

#include "fs_int.h"

/* Entries fetched from the store at a time by readdir. */
#define FS_DIR_PAGE 1024

int fs_op_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	struct fs *fs = fs_ctx();
	char key[KV_MAX_KEY + 1];
	size_t klen;
	int ret = fs_key(fs, path, key, &klen, true);
	if (ret != 0)
		return ret;
	ret = fs_barrier(fs);
	if (ret != 0)
		return ret;
	struct kv_stat ks;
	ret = store_stat(node_store(fs->node), key, klen, &ks);
	if (ret == -ENOENT && strcmp(path, "/") == 0) {
		/* The subtree of -o subdir does not exist yet: an empty
		 * root until a key appears under it. */
		memset(&ks, 0, sizeof(ks));
		ks.is_dir = true;
		ks.mode = S_IFDIR | 0755;
		ret = 0;
	}
	if (ret != 0)
		return fs_errno(ret);
	fs_fill_stat(fs, &ks, st);
	/* An open file shows the size its writer sees (the kernel keeps
	 * that size too while the writes are buffered). */
	struct fs_handle *h = fi ? (struct fs_handle *)(uintptr_t)fi->fh : NULL;
	if (h && h->writable && !ks.is_dir) {
		pthread_mutex_lock(&h->lock);
		if (h->dirty) {
			st->st_size = (off_t)h->len;
			st->st_blocks = (blkcnt_t)((h->len + 511) / 512);
		}
		pthread_mutex_unlock(&h->lock);
	}
	return 0;
}

/* ---- directories ---- */

/* An open directory: the page of the listing last fetched. Entry i of the
 * directory (0-based, after "." and "..") has readdir offset i + 3. */
struct fs_dir {
	pthread_mutex_t lock;
	struct kv_list page;
	uint64_t start; /* index of page.ents[0] */
	bool loaded;
};

int fs_op_opendir(const char *path, struct fuse_file_info *fi)
{
	struct fs *fs = fs_ctx();
	char key[KV_MAX_KEY + 1];
	size_t klen;
	int ret = fs_key(fs, path, key, &klen, true);
	if (ret != 0)
		return ret;
	struct fs_dir *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	pthread_mutex_init(&d->lock, NULL);
	fi->fh = (uint64_t)(uintptr_t)d;
	return 0;
}

int fs_op_releasedir(const char *path, struct fuse_file_info *fi)
{
	(void)path;
	struct fs_dir *d = (struct fs_dir *)(uintptr_t)fi->fh;
	if (!d)
		return 0;
	kv_list_clear(&d->page);
	pthread_mutex_destroy(&d->lock);
	free(d);
	return 0;
}

/* Make d->page hold entry idx (or end the listing: *eof). */
static int dir_seek(struct fs *fs, struct fs_dir *d, const char *key,
		    size_t klen, uint64_t idx, bool *eof)
{
	*eof = false;
	for (;;) {
		if (d->loaded && idx >= d->start && idx < d->start + d->page.n)
			return 0;
		const char *after = NULL;
		char *last = NULL;
		uint64_t next = 0;
		if (d->loaded && idx >= d->start + d->page.n) {
			if (!d->page.more) {
				*eof = true;
				return 0;
			}
			/* The next page starts after the last name. */
			last = d->page.ents[d->page.n - 1].name;
			d->page.ents[d->page.n - 1].name = NULL;
			after = last;
			next = d->start + d->page.n;
		}
		/* else: first listing, or a seek backwards: from the top */
		int ret = fs_barrier(fs);
		if (ret == 0) {
			kv_list_clear(&d->page);
			memset(&d->page, 0, sizeof(d->page));
			ret = store_list(node_store(fs->node), key, klen, after,
					 FS_DIR_PAGE, &d->page);
		}
		free(last);
		if (ret == -ENOENT && klen == fs->plen) {
			/* the subdir root not created yet: empty */
			memset(&d->page, 0, sizeof(d->page));
			ret = 0;
		}
		if (ret != 0) {
			d->loaded = false;
			return fs_errno(ret);
		}
		d->loaded = true;
		d->start = next;
		if (d->page.n == 0) {
			*eof = true;
			return 0;
		}
	}
}

int fs_op_readdir(const char *path, void *buf, fuse_fill_dir_t filler,
		  off_t off, struct fuse_file_info *fi,
		  enum fuse_readdir_flags flags)
{
	struct fs *fs = fs_ctx();
	struct fs_dir *d = (struct fs_dir *)(uintptr_t)fi->fh;
	char key[KV_MAX_KEY + 1];
	size_t klen;
	int ret = fs_key(fs, path, key, &klen, true);
	if (ret != 0)
		return ret;
	enum fuse_fill_dir_flags fill =
	    (flags & FUSE_READDIR_PLUS) ? FUSE_FILL_DIR_PLUS : 0;
	struct stat st;
	memset(&st, 0, sizeof(st));
	st.st_mode = S_IFDIR | 0755;
	if (off < 1 && filler(buf, ".", &st, 1, 0))
		return 0;
	if (off < 2 && filler(buf, "..", &st, 2, 0))
		return 0;
	uint64_t idx = off < 2 ? 0 : (uint64_t)off - 2;

	pthread_mutex_lock(&d->lock);
	for (;;) {
		bool eof;
		ret = dir_seek(fs, d, key, klen, idx, &eof);
		if (ret != 0 || eof)
			break;
		bool full = false;
		while (idx < d->start + d->page.n) {
			struct kv_dirent *e = &d->page.ents[idx - d->start];
			fs_fill_stat(fs, &e->st, &st);
			if (filler(buf, e->name, &st, (off_t)(idx + 3), fill)) {
				full = true;
				break;
			}
			idx++;
		}
		if (full)
			break;
	}
	pthread_mutex_unlock(&d->lock);
	return ret;
}

/* ---- changes by name ---- */

static int propose_path(const char *path, struct kv_cmd *cmd)
{
	struct fs *fs = fs_ctx();
	char key[KV_MAX_KEY + 1];
	size_t klen;
	int ret = fs_key(fs, path, key, &klen, false);
	if (ret != 0)
		return ret;
	cmd->key = key;
	cmd->klen = klen;
	return fs_propose(fs, cmd);
}

int fs_op_mkdir(const char *path, mode_t mode)
{
	struct kv_cmd cmd = {.op = KV_OP_MKDIR, .mode = mode & 07777};
	return propose_path(path, &cmd);
}

int fs_op_rmdir(const char *path)
{
	struct kv_cmd cmd = {.op = KV_OP_RMDIR};
	return propose_path(path, &cmd);
}

int fs_op_unlink(const char *path)
{
	struct kv_cmd cmd = {.op = KV_OP_DEL};
	return propose_path(path, &cmd);
}

int fs_op_rename(const char *from, const char *to, unsigned int flags)
{
	if (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE))
		return -EINVAL; /* RENAME_WHITEOUT: no such thing here */
	if ((flags & RENAME_NOREPLACE) && (flags & RENAME_EXCHANGE))
		return -EINVAL;
	struct fs *fs = fs_ctx();
	char key2[KV_MAX_KEY + 1];
	size_t k2len;
	int ret = fs_key(fs, to, key2, &k2len, false);
	if (ret != 0)
		return ret;
	struct kv_cmd cmd = {.op = KV_OP_RENAME, .key2 = key2, .k2len = k2len};
	if (flags & RENAME_NOREPLACE)
		cmd.flags |= KV_RENAME_NOREPLACE;
	if (flags & RENAME_EXCHANGE)
		cmd.flags |= KV_RENAME_EXCHANGE;
	return propose_path(from, &cmd);
}

int fs_op_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	struct kv_cmd cmd = {
	    .op = KV_OP_SETATTR, .mode = mode & 07777, .set_mode = true};
	int ret = propose_path(path, &cmd);
	/* A writer's commit carries the mode it knows: make it this one. */
	struct fs_handle *h = fi ? (struct fs_handle *)(uintptr_t)fi->fh : NULL;
	if (ret == 0 && h && h->writable) {
		pthread_mutex_lock(&h->lock);
		h->mode = mode & 07777;
		pthread_mutex_unlock(&h->lock);
	}
	return ret;
}

int fs_op_chown(const char *path, uid_t uid, gid_t gid,
		struct fuse_file_info *fi)
{
	/* Every file belongs to the mounting user; only a no-op chown (as
	 * cp -p and rsync issue) succeeds. */
	struct stat st;
	int ret = fs_op_getattr(path, &st, fi);
	if (ret != 0)
		return ret;
	if ((uid != (uid_t)-1 && uid != st.st_uid) ||
	    (gid != (gid_t)-1 && gid != st.st_gid))
		return -EPERM;
	return 0;
}

int fs_op_utimens(const char *path, const struct timespec tv[2],
		  struct fuse_file_info *fi)
{
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	struct timespec m = tv ? tv[1] : now;
	if (m.tv_nsec == UTIME_OMIT) {
		/* only the access time, which is not recorded */
		struct stat st;
		return fs_op_getattr(path, &st, fi);
	}
	if (m.tv_nsec == UTIME_NOW)
		m = now;
	struct kv_cmd cmd = {.op = KV_OP_SETATTR,
			     .set_mtime = true,
			     .mtime_ns =
				 (int64_t)m.tv_sec * 1000000000 + m.tv_nsec};
	if (cmd.mtime_ns == 0)
		cmd.mtime_ns = 1; /* 0 would mean "now" to the node */
	return propose_path(path, &cmd);
}

int fs_op_statfs(const char *path, struct statvfs *st)
{
	(void)path;
	struct fs *fs = fs_ctx();
	struct statvfs disk;
	memset(st, 0, sizeof(*st));
	if (statvfs(fs->data_dir ? fs->data_dir : ".", &disk) != 0)
		memset(&disk, 0, sizeof(disk));
	struct store_status ss;
	memset(&ss, 0, sizeof(ss));
	int ret = store_status(node_store(fs->node), &ss);
	if (ret != 0)
		return fs_errno(ret);
	/* Space is the data directory's filesystem, in 4 KiB blocks. */
	const unsigned long bs = 4096;
	double scale = (double)disk.f_frsize / (double)bs;
	st->f_bsize = bs;
	st->f_frsize = bs;
	st->f_blocks = (fsblkcnt_t)((double)disk.f_blocks * scale);
	st->f_bfree = (fsblkcnt_t)((double)disk.f_bfree * scale);
	st->f_bavail = (fsblkcnt_t)((double)disk.f_bavail * scale);
	/* Files: one per key; as many more as the disk has inodes (a key
	 * costs no inode, so this is a floor, not a limit). */
	fsfilcnt_t free_files = disk.f_favail ? disk.f_favail : 1u << 20;
	st->f_files = (fsfilcnt_t)ss.keys + free_files;
	st->f_ffree = free_files;
	st->f_favail = free_files;
	st->f_namemax = KV_MAX_SEGMENT;
	return 0;
}
