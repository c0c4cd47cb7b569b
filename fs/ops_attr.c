/* ops_attr.c - the FUSE operations on inodes and their attributes:
 * lookup, forget, getattr, setattr, statfs.
 *
 * A lookup or getattr is one store read after a read barrier (waited
 * for without the worker, fs_barrier_later: the thread that settles the
 * round reads and replies), except
 * where this node holds what the store does not: a file made here and
 * not committed, or an open file with uncommitted changes, answers from
 * its state (fs_stat_inode). The root's attributes are read without a
 * barrier, so stat of the mountpoint works while there is no leader.
 * setattr (chmod, chown, utimensat, truncate) is one command, or, on a
 * file whose changes are not committed yet, part of its next commit. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "fs_int.h"

/* The open file's view of in, if it has uncommitted changes: 1 with st
 * filled, else 0. */
static int changed_view(struct fs *fs, struct fs_inode *in, struct stat *st)
{
	struct fs_file *f = fs_inode_peek(&fs->itab, in);
	int shown = 0;

	if (f == NULL)
		return 0;
	pthread_mutex_lock(&f->lock);
	if (f->opens > 0 && fs_file_dirty(f)) {
		fs_fill_file_stat(fs, in->ino, f, st);
		shown = 1;
	}
	pthread_mutex_unlock(&f->lock);
	return shown;
}

/* A file made here and not committed: its entry from its state. */
static int pending_entry(struct fs *fs, struct fs_inode *dir, const char *name,
			 struct fuse_entry_param *e)
{
	struct fs_inode *c = fs_inode_child(&fs->itab, dir, name), *in;
	struct stat st;
	int ret = -ENOENT;

	if (c == NULL)
		return -ENOENT;
	if (fs_inode_is_pending(&fs->itab, c) && changed_view(fs, c, &st)) {
		in = fs_inode_link(&fs->itab, dir, name, S_IFREG);
		if (in == NULL) {
			ret = -ENOMEM;
		} else {
			fs_fill_entry(fs, in, &st, e);
			fs_inode_put(&fs->itab, in);
			ret = 0;
		}
	}
	fs_inode_put(&fs->itab, c);
	return ret;
}

/* A lookup's answer from the store (after its barrier, ret its outcome),
 * and its reply; dir's reference is dropped. */
static void lookup_reply(fuse_req_t req, struct fs *fs, struct fs_inode *dir,
			 const char *name, const char *key, size_t klen,
			 int ret, uint64_t t0)
{
	struct fuse_entry_param e;
	struct kv_stat ks;
	struct stat st;
	struct fs_inode *in;

	if (ret == 0)
		ret =
		    fs_errno(store_stat(node_store(fs->node), key, klen, &ks));
	if (ret != 0)
		goto out;
	in = fs_inode_link(&fs->itab, dir, name,
			   ks.is_dir ? S_IFDIR : ks.mode & S_IFMT);
	if (in == NULL) {
		ret = -ENOMEM;
		goto out;
	}
	if (!changed_view(fs, in, &st))
		fs_fill_stat(fs, in->ino, &ks, &st);
	fs_fill_entry(fs, in, &st, &e);
	fs_inode_put(&fs->itab, in);
out:
	fs_inode_put(&fs->itab, dir);
	if (ret == 0)
		fuse_reply_entry(req, &e);
	else
		fs_reply_err(req, -ret);
	fs_metric_op(FS_OP_LOOKUP, t0);
}

/* A lookup waiting for its barrier (fs_barrier_later). */
struct lookup_later {
	struct fs_later l;
	fuse_req_t req;
	struct fs_inode *dir;
	uint64_t t0;
	size_t klen;
	char name[KV_MAX_SEGMENT + 1];
	char key[]; /* klen + 1 */
};

static void lookup_then(struct fs_later *l, int ret)
{
	struct lookup_later *w = (struct lookup_later *)l;
	lookup_reply(w->req, l->fs, w->dir, w->name, w->key, w->klen, ret,
		     w->t0);
	free(w);
}

void fs_op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name,
		  uint64_t t0)
{
	struct fs *fs = fs_of(req);
	struct fs_inode *dir = fs_inode_get(&fs->itab, parent);
	struct fuse_entry_param e;
	char key[KV_MAX_KEY + 1];
	size_t klen, nlen = strlen(name);
	int ret;

	if (dir == NULL) {
		fs_reply_err(req, ENOENT);
		fs_metric_op(FS_OP_LOOKUP, t0);
		return;
	}
	if ((ret = pending_entry(fs, dir, name, &e)) != -ENOENT)
		goto out;
	if ((ret = fs_child_key(fs, dir, name, key, &klen)) != 0)
		goto out;
	if (fs_barrier_now(fs)) {
		lookup_reply(req, fs, dir, name, key, klen, 0, t0);
		return;
	}
	struct lookup_later *w = NULL;
	if (nlen > KV_MAX_SEGMENT) { /* as fs_child_key checked */
		ret = -ENAMETOOLONG;
		goto out;
	}
	if ((w = malloc(sizeof(*w) + klen + 1)) == NULL) {
		ret = -ENOMEM;
		goto out;
	}
	w->req = req;
	w->dir = dir;
	w->t0 = t0;
	w->klen = klen;
	memcpy(w->name, name, nlen + 1);
	memcpy(w->key, key, klen + 1);
	fs_barrier_later(fs, &w->l, lookup_then);
	return;
out:
	fs_inode_put(&fs->itab, dir);
	if (ret == 0)
		fuse_reply_entry(req, &e);
	else
		fs_reply_err(req, -ret);
	fs_metric_op(FS_OP_LOOKUP, t0);
}

void fs_op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	fs_inode_forget(&fs_of(req)->itab, ino, nlookup);
	fuse_reply_none(req);
}

void fs_op_forget_multi(fuse_req_t req, size_t count,
			struct fuse_forget_data *forgets)
{
	struct fs *fs = fs_of(req);

	for (size_t i = 0; i < count; i++)
		fs_inode_forget(&fs->itab, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void getattr_reply(fuse_req_t req, struct fs *fs, struct fs_inode *in,
			  const struct stat *st, int ret, uint64_t t0)
{
	fs_inode_put(&fs->itab, in);
	if (ret == 0)
		fuse_reply_attr(req, st, fs->timeout);
	else
		fs_reply_err(req, -ret);
	fs_metric_op(FS_OP_GETATTR, t0);
}

/* A getattr waiting for its barrier (fs_barrier_later). */
struct getattr_later {
	struct fs_later l;
	fuse_req_t req;
	struct fs_inode *in;
	uint64_t t0;
	size_t klen;
	char key[]; /* klen + 1 */
};

static void getattr_then(struct fs_later *l, int ret)
{
	struct getattr_later *w = (struct getattr_later *)l;
	struct stat st;

	if (ret == 0)
		ret = fs_stat_inode_store(l->fs, w->in, w->key, w->klen, &st);
	getattr_reply(w->req, l->fs, w->in, &st, ret, w->t0);
	free(w);
}

void fs_op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		   uint64_t t0)
{
	struct fs *fs = fs_of(req);
	struct fs_inode *in = fs_inode_get(&fs->itab, ino);
	char key[KV_MAX_KEY + 1];
	size_t klen;
	struct stat st;
	int ret;

	(void)fi;
	if (in == NULL) {
		fs_reply_err(req, ENOENT);
		fs_metric_op(FS_OP_GETATTR, t0);
		return;
	}
	ret = fs_stat_inode_view(fs, in, key, &klen, &st);
	if (ret != 0) { /* the open file's view, or an error */
		getattr_reply(req, fs, in, &st, ret < 0 ? ret : 0, t0);
		return;
	}
	/* The root without a barrier: stat of the mountpoint must work
	 * without a leader (its attributes may then be a little old). */
	if (ino == FUSE_ROOT_ID || fs_barrier_now(fs)) {
		ret = fs_stat_inode_store(fs, in, key, klen, &st);
		getattr_reply(req, fs, in, &st, ret, t0);
		return;
	}
	struct getattr_later *w = malloc(sizeof(*w) + klen + 1);
	if (w == NULL) {
		getattr_reply(req, fs, in, &st, -ENOMEM, t0);
		return;
	}
	w->req = req;
	w->in = in;
	w->t0 = t0;
	w->klen = klen;
	memcpy(w->key, key, klen + 1);
	fs_barrier_later(fs, &w->l, getattr_then);
}

static int64_t ns_of(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

/* The times setattr sets: *atime and *mtime, each 0 when not set. */
static void set_times(const struct stat *attr, int to_set, int64_t now,
		      int64_t *atime, int64_t *mtime)
{
	*atime = *mtime = 0;
	if (to_set & FUSE_SET_ATTR_ATIME_NOW)
		*atime = now;
	else if (to_set & FUSE_SET_ATTR_ATIME)
		*atime = ns_of(&attr->st_atim);
	if (to_set & FUSE_SET_ATTR_MTIME_NOW)
		*mtime = now;
	else if (to_set & FUSE_SET_ATTR_MTIME)
		*mtime = ns_of(&attr->st_mtim);
	if (*atime == 0 &&
	    (to_set & (FUSE_SET_ATTR_ATIME_NOW | FUSE_SET_ATTR_ATIME)))
		*atime = 1; /* 1970 exactly: 0 would mean "not set" */
	if (*mtime == 0 &&
	    (to_set & (FUSE_SET_ATTR_MTIME_NOW | FUSE_SET_ATTR_MTIME)))
		*mtime = 1;
}

/* Fold the setattr into f's uncommitted state: 1 (done, *err its
 * outcome) if f has changes to commit, or a truncate through a handle or
 * while a writer has it open; 0 to commit it on its own. */
static int fold_setattr(struct fs_file *f, const struct stat *attr, int to_set,
			bool by_handle, int *err)
{
	int64_t now = fs_now(), at, mt;

	if (f->opens == 0 ||
	    !(fs_file_dirty(f) ||
	      ((to_set & FUSE_SET_ATTR_SIZE) && (by_handle || f->writers > 0))))
		return 0;
	*err = 0;
	if (to_set & FUSE_SET_ATTR_SIZE) {
		*err = fs_file_truncate(f, attr->st_size, now);
		if (*err != 0)
			return 1;
	}
	if (to_set & FUSE_SET_ATTR_MODE) {
		f->attr.mode = S_IFREG | (attr->st_mode & 07777);
		f->dirty |= FS_DIRTY_MODE;
	}
	if (to_set & FUSE_SET_ATTR_UID) {
		f->attr.uid = (uint32_t)attr->st_uid;
		f->dirty |= FS_DIRTY_UID;
	}
	if (to_set & FUSE_SET_ATTR_GID) {
		f->attr.gid = (uint32_t)attr->st_gid;
		f->dirty |= FS_DIRTY_GID;
	}
	set_times(attr, to_set, now, &at, &mt);
	if (at != 0) {
		f->attr.atime_ns = at;
		f->dirty |= FS_DIRTY_ATIME;
	}
	if (mt != 0)
		f->attr.mtime_ns = mt; /* every commit carries the mtime */
	f->attr.ctime_ns = now;
	f->gen++;
	return 1;
}

/* The setattr's attributes into cmd (a setattr or a put). */
static void setattr_cmd(const struct stat *attr, int to_set, int64_t now,
			struct kv_cmd *cmd)
{
	int64_t at, mt;

	set_times(attr, to_set, now, &at, &mt);
	cmd->time_ns = now;
	if (to_set & FUSE_SET_ATTR_MODE) {
		cmd->set_mode = true;
		cmd->mode = (cmd->mode & S_IFMT) | (attr->st_mode & 07777);
	}
	if (to_set & FUSE_SET_ATTR_UID) {
		cmd->set_uid = true;
		cmd->uid = (uint32_t)attr->st_uid;
	}
	if (to_set & FUSE_SET_ATTR_GID) {
		cmd->set_gid = true;
		cmd->gid = (uint32_t)attr->st_gid;
	}
	if (at != 0) {
		cmd->set_atime = true;
		cmd->atime_ns = at;
	}
	if (mt != 0) {
		cmd->set_mtime = true;
		cmd->mtime_ns = mt;
	}
}

/* truncate(2) of a file nobody here writes: a read-modify-write of the
 * whole value, conditional on the revision read so a concurrent write is
 * not lost (retried if one wins), with setattr's other attributes. */
static int truncate_by_name(struct fs *fs, const char *key, size_t klen,
			    const struct stat *attr, int to_set)
{
	off_t size = attr->st_size;

	if (size < 0)
		return -EINVAL;
	if ((uint64_t)size > KV_MAX_VALUE)
		return -EFBIG;
	for (int attempt = 0; attempt < 8; attempt++) {
		struct kv_rec *rec = NULL;
		int ret = fs_barrier(fs);
		if (ret != 0)
			return ret;
		ret = store_get(node_store(fs->node), key, klen, &rec);
		if (ret != 0)
			return fs_errno(ret);
		unsigned char *val = calloc(1, size > 0 ? (size_t)size : 1);
		if (!val) {
			kv_rec_unref(rec);
			return -ENOMEM;
		}
		memcpy(val, kv_rec_val(rec),
		       rec->vlen < (size_t)size ? rec->vlen : (size_t)size);
		int64_t now = fs_now();
		struct kv_cmd cmd = {.op = KV_OP_PUT,
				     .key = (char *)key,
				     .klen = klen,
				     .val = val,
				     .vlen = (size_t)size,
				     .mode = rec->mode, /* exact: if_rev */
				     .if_rev = rec->mod_rev};
		kv_rec_unref(rec);
		setattr_cmd(attr, to_set, now, &cmd);
		if (!cmd.set_mtime) /* truncate(2) marks mtime */
			cmd.mtime_ns = now;
		ret = fs_propose(fs, &cmd, NULL);
		free(val);
		if (ret != -EEXIST) /* KV_EPRECOND: someone else wrote */
			return ret;
	}
	return -EAGAIN;
}

static int do_setattr(struct fs *fs, struct fs_inode *in, struct stat *attr,
		      int to_set, struct fuse_file_info *fi)
{
	struct fs_file *f = fs_inode_peek(&fs->itab, in);
	char key[KV_MAX_KEY + 1];
	size_t klen;
	int ret;

	if (f != NULL) {
		pthread_mutex_lock(&f->lock);
		int done = fold_setattr(f, attr, to_set, fi != NULL, &ret);
		pthread_mutex_unlock(&f->lock);
		if (done)
			return ret;
	}
	if ((ret = fs_key_of(fs, in, key, &klen)) != 0)
		return ret;
	if (to_set & FUSE_SET_ATTR_SIZE)
		return truncate_by_name(fs, key, klen, attr, to_set);
	struct kv_cmd cmd = {.op = KV_OP_SETATTR, .key = key, .klen = klen};
	setattr_cmd(attr, to_set, fs_now(), &cmd);
	return fs_propose(fs, &cmd, NULL);
}

void fs_op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		   int to_set, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct fs_inode *in = fs_inode_get(&fs->itab, ino);
	struct stat st;
	int ret;

	if (in == NULL) {
		fs_reply_err(req, ENOENT);
		return;
	}
	ret = do_setattr(fs, in, attr, to_set, fi);
	if (ret == 0)
		ret = fs_stat_inode(fs, in, false, &st);
	fs_inode_put(&fs->itab, in);
	if (ret == 0)
		fuse_reply_attr(req, &st, fs->timeout);
	else
		fs_reply_err(req, -ret);
}

void fs_op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct fs *fs = fs_of(req);
	struct statvfs disk, st;
	struct store_status ss;

	(void)ino;
	memset(&st, 0, sizeof(st));
	if (statvfs(fs->data_dir ? fs->data_dir : ".", &disk) != 0)
		memset(&disk, 0, sizeof(disk));
	memset(&ss, 0, sizeof(ss));
	int ret = store_status(node_store(fs->node), &ss);
	if (ret != 0) {
		fs_reply_err(req, -fs_errno(ret));
		return;
	}
	/* Space is the data directory's filesystem, in 4 KiB blocks. */
	const unsigned long bs = 4096;
	double scale = (double)disk.f_frsize / (double)bs;
	st.f_bsize = bs;
	st.f_frsize = bs;
	st.f_blocks = (fsblkcnt_t)((double)disk.f_blocks * scale);
	st.f_bfree = (fsblkcnt_t)((double)disk.f_bfree * scale);
	st.f_bavail = (fsblkcnt_t)((double)disk.f_bavail * scale);
	/* Files: one per key; as many more as the disk has inodes (a key
	 * costs no inode, so this is a floor, not a limit). */
	fsfilcnt_t free_files = disk.f_favail ? disk.f_favail : 1u << 20;
	st.f_files = (fsfilcnt_t)ss.keys + free_files;
	st.f_ffree = free_files;
	st.f_favail = free_files;
	st.f_namemax = KV_MAX_SEGMENT;
	fuse_reply_statfs(req, &st);
}
