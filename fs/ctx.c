/* ctx.c - what every operation of the mount uses: the mount's context
 * from a request, the clock, the read barrier and proposals, keys of
 * inodes, and the attributes the kernel is told.
 *
 * These sit below the operations (ops_*.c, entry.c, commit.c) and the
 * mount itself (fs.c, which holds the operations table), so that no
 * operation calls back into the file that registers it. The context is
 * described in fs_int.h. */
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

struct fs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

int64_t fs_now(void)
{
	return kv_wall_ns();
}

int fs_barrier(struct fs *fs)
{
	return fs_errno(node_read_barrier(fs->node, fs->linearizable));
}

bool fs_barrier_now(struct fs *fs)
{
	return !fs->linearizable || node_read_now(fs->node);
}

static void laters_add(struct fs *fs, int d)
{
	pthread_mutex_lock(&fs->laters_mu);
	fs->laters = (unsigned)((int)fs->laters + d);
	if (fs->laters == 0)
		pthread_cond_broadcast(&fs->laters_cv);
	pthread_mutex_unlock(&fs->laters_mu);
}

static void later_done(void *ctx, int ret, const struct kv_result *res)
{
	struct fs_later *l = ctx;
	struct fs *fs = l->fs; /* l is gone once then returns */

	(void)res;
	l->then(l, fs_errno(ret));
	laters_add(fs, -1);
}

void fs_barrier_later(struct fs *fs, struct fs_later *l, fs_then_fn then)
{
	l->fs = fs;
	l->then = then;
	laters_add(fs, 1);
	int ret = node_read_barrier_async(fs->node, later_done, l);
	if (ret != 0) /* done is never called */
		later_done(l, ret, NULL);
}

void fs_laters_drain(struct fs *fs)
{
	/* each is answered when its round is, or fails at the node's
	 * deadline for it: this wait is bounded as a worker's is */
	pthread_mutex_lock(&fs->laters_mu);
	while (fs->laters > 0)
		pthread_cond_wait(&fs->laters_cv, &fs->laters_mu);
	pthread_mutex_unlock(&fs->laters_mu);
}

int fs_propose(struct fs *fs, struct kv_cmd *cmd, uint64_t *rev)
{
	struct kv_result res = {0};
	int ret = node_propose(fs->node, cmd, &res);
	if (ret == 0)
		ret = res.err;
	if (rev != NULL)
		*rev = res.rev;
	return fs_errno(ret);
}

int fs_child_key(struct fs *fs, struct fs_inode *dir, const char *name,
		 char *out, size_t *klen)
{
	int ret = fs_inode_child_key(&fs->itab, fs->prefix, fs->plen, dir, name,
				     out, klen);
	return ret == -ENOENT ? -ESTALE : ret;
}

int fs_key_of(struct fs *fs, struct fs_inode *in, char *out, size_t *klen)
{
	int ret = fs_inode_key(&fs->itab, fs->prefix, fs->plen, in, out, klen);
	return ret == -ENOENT ? -ESTALE : ret;
}

static void set_time(struct timespec *ts, int64_t ns)
{
	ts->tv_sec = (time_t)(ns / 1000000000);
	ts->tv_nsec = (long)(ns % 1000000000);
	if (ts->tv_nsec < 0) {
		ts->tv_sec--;
		ts->tv_nsec += 1000000000;
	}
}

static void fill_owner(const struct fs *fs, uint32_t uid, uint32_t gid,
		       struct stat *st)
{
	st->st_uid = uid == KV_NO_OWNER ? fs->uid : (uid_t)uid;
	st->st_gid = gid == KV_NO_OWNER ? fs->gid : (gid_t)gid;
}

void fs_fill_stat(const struct fs *fs, uint64_t ino, const struct kv_stat *ks,
		  struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = (ino_t)ino;
	st->st_mode = ks->is_dir ? S_IFDIR | (ks->mode & 07777) : ks->mode;
	st->st_nlink = ks->nlink ? ks->nlink : 1;
	fill_owner(fs, ks->uid, ks->gid, st);
	if (!ks->is_dir) {
		st->st_size = (off_t)ks->size;
		st->st_blocks = (blkcnt_t)((ks->size + 511) / 512);
	}
	st->st_blksize = 4096;
	int64_t mt = ks->mtime_ns, ct = ks->ctime_ns, at = ks->atime_ns;
	if (ks->is_dir && mt == 0 && ct == 0)
		mt = ct = at = fs->mount_ns; /* a root that has none */
	set_time(&st->st_mtim, mt);
	set_time(&st->st_ctim, ct);
	set_time(&st->st_atim, at);
}

void fs_fill_file_stat(const struct fs *fs, uint64_t ino,
		       const struct fs_file *f, struct stat *st)
{
	size_t size = fs_file_size(f);

	memset(st, 0, sizeof(*st));
	st->st_ino = (ino_t)ino;
	st->st_mode = f->attr.mode;
	st->st_nlink = 1;
	fill_owner(fs, f->attr.uid, f->attr.gid, st);
	st->st_size = (off_t)size;
	st->st_blocks = (blkcnt_t)((size + 511) / 512);
	st->st_blksize = 4096;
	set_time(&st->st_mtim, f->attr.mtime_ns);
	set_time(&st->st_ctim, f->attr.ctime_ns);
	set_time(&st->st_atim, f->attr.atime_ns);
}

void fs_fill_entry(const struct fs *fs, const struct fs_inode *in,
		   const struct stat *st, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = in->ino;
	e->attr = *st;
	e->attr_timeout = fs->timeout;
	e->entry_timeout = fs->timeout;
}

/* An open file's view, if it holds what the store does not (changes, or
 * a file with no name left): 1 with st filled, else 0. The view of a
 * clean file is refreshed from the store's record (rec, borrowed). */
static int file_view(struct fs *fs, struct fs_inode *in, bool unlinked,
		     struct kv_rec *rec, struct stat *st)
{
	struct fs_file *f = fs_inode_peek(&fs->itab, in);
	int shown = 0;

	if (f == NULL)
		return 0;
	pthread_mutex_lock(&f->lock);
	if (f->opens > 0 && rec != NULL) {
		kv_rec_ref(rec);
		fs_file_refresh(f, rec);
	}
	if (f->opens > 0 && (fs_file_dirty(f) || unlinked)) {
		fs_fill_file_stat(fs, in->ino, f, st);
		if (unlinked)
			st->st_nlink = 0;
		shown = 1;
	}
	pthread_mutex_unlock(&f->lock);
	return shown;
}

int fs_stat_inode_view(struct fs *fs, struct fs_inode *in, char *key,
		       size_t *klen, struct stat *st)
{
	int ret = fs_key_of(fs, in, key, klen);

	if (ret == -ESTALE && file_view(fs, in, true, NULL, st))
		return 1;
	if (ret != 0)
		return ret;
	return file_view(fs, in, false, NULL, st);
}

int fs_stat_inode_store(struct fs *fs, struct fs_inode *in, const char *key,
			size_t klen, struct stat *st)
{
	struct kv_stat ks;
	int ret = store_stat(node_store(fs->node), key, klen, &ks);

	if (ret == -ENOENT && in->ino == FUSE_ROOT_ID) {
		/* The subtree of -o subdir does not exist yet: an empty
		 * root until a key appears under it. */
		memset(&ks, 0, sizeof(ks));
		ks.is_dir = true;
		ks.mode = S_IFDIR | 0755;
		ks.uid = ks.gid = KV_NO_OWNER;
		ks.nlink = 2;
		ret = 0;
	}
	if (ret != 0)
		return fs_errno(ret);
	if (S_ISREG(ks.mode)) {
		/* An open clean file follows the store. */
		struct kv_rec *rec = NULL;
		if (fs_inode_peek(&fs->itab, in) != NULL &&
		    store_get(node_store(fs->node), key, klen, &rec) == 0) {
			int shown = file_view(fs, in, false, rec, st);
			kv_rec_unref(rec);
			if (shown)
				return 0;
		}
	}
	fs_fill_stat(fs, in->ino, &ks, st);
	return 0;
}

int fs_stat_inode(struct fs *fs, struct fs_inode *in, bool barrier,
		  struct stat *st)
{
	char key[KV_MAX_KEY + 1];
	size_t klen;
	int ret = fs_stat_inode_view(fs, in, key, &klen, st);

	if (ret != 0)
		return ret < 0 ? ret : 0;
	if (barrier && (ret = fs_barrier(fs)) != 0)
		return ret;
	return fs_stat_inode_store(fs, in, key, klen, st);
}
