/* ops_dir.c - the FUSE operations on directories: opendir, readdir,
 * readdirplus, releasedir, mkdir, rmdir.
 *
 * readdir pages through the ordered map with store_list's 'after' cursor,
 * and readdirplus hands the kernel each entry's inode and attributes with
 * it, so `ls -l` of a big directory costs one listing and no per-entry
 * getattr. Files made here and not committed yet are listed after the
 * store's entries, as a local filesystem would show them. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fs_int.h"

/* Entries fetched from the store at a time. */
#define FS_DIR_PAGE 1024
/* readdir offsets: 1 and 2 are "." and "..", store entry i is i + 3,
 * pending file j is FS_DIR_PENDING + j + 1. */
#define FS_DIR_PENDING (UINT64_C(1) << 62)

/* An open directory: the page of the listing last fetched, and the files
 * pending in it when the listing reached its end. */
struct fs_dir {
	pthread_mutex_t lock;
	struct fs_inode *in; /* a reference held */
	struct kv_list page;
	uint64_t start; /* index of page.ents[0] */
	bool loaded;
	char **pending;
	size_t npending;
	bool pending_taken;
};

static void dir_free(struct fs *fs, struct fs_dir *d)
{
	kv_list_clear(&d->page);
	fs_names_free(d->pending, d->npending);
	fs_inode_put(&fs->itab, d->in);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

void fs_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct fs_dir *d = calloc(1, sizeof(*d));

	if (d == NULL) {
		fs_reply_err(req, ENOMEM);
		return;
	}
	d->in = fs_inode_get(&fs->itab, ino);
	if (d->in == NULL) {
		free(d);
		fs_reply_err(req, ENOENT);
		return;
	}
	pthread_mutex_init(&d->lock, NULL);
	fi->fh = (uint64_t)(uintptr_t)d;
	if (fuse_reply_open(req, fi) != 0) /* interrupted: never opened */
		dir_free(fs, d);
}

void fs_op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	dir_free(fs_of(req), (struct fs_dir *)(uintptr_t)fi->fh);
	fs_reply_err(req, 0);
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
			ret = store_list(node_store(fs->node), key, klen, after,
					 FS_DIR_PAGE, &d->page);
		}
		free(last);
		if (ret == -ENOENT && d->in->ino == FUSE_ROOT_ID) {
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

/* The reply being filled. */
struct dirbuf {
	fuse_req_t req;
	char *p;
	size_t size, pos;
	bool plus, full;
};

/* Add name (with inode in and attributes st when plus; in may be NULL
 * for "." and "..", then st is only its number and kind). */
static bool add(struct dirbuf *b, const struct fs *fs, const char *name,
		struct fs_inode *in, const struct stat *st, off_t next)
{
	size_t n;

	if (b->plus) {
		struct fuse_entry_param e;
		if (in != NULL) {
			fs_fill_entry(fs, in, st, &e);
		} else {
			memset(&e, 0, sizeof(e));
			e.attr = *st;
		}
		n = fuse_add_direntry_plus(b->req, b->p + b->pos,
					   b->size - b->pos, name, &e, next);
	} else {
		n = fuse_add_direntry(b->req, b->p + b->pos, b->size - b->pos,
				      name, st, next);
	}
	if (n > b->size - b->pos) {
		b->full = true;
		return false;
	}
	b->pos += n;
	return true;
}

/* Room for name? (Checked before a readdirplus entry takes a lookup.) */
static bool fits(struct dirbuf *b, const char *name)
{
	size_t n = b->plus
		       ? fuse_add_direntry_plus(b->req, NULL, 0, name, NULL, 0)
		       : fuse_add_direntry(b->req, NULL, 0, name, NULL, 0);
	if (n > b->size - b->pos)
		b->full = true;
	return !b->full;
}

/* One child for the reply: its inode (readdirplus counts a lookup) and
 * attributes, an open file's own if it holds changes. */
static bool add_child(struct dirbuf *b, struct fs *fs, struct fs_inode *dir,
		      const char *name, const struct kv_stat *ks, off_t next)
{
	struct stat st;
	uint32_t kind = ks->is_dir ? S_IFDIR : ks->mode & S_IFMT;

	/* a key .kvfs from before the rule: hidden by the mount's own */
	if (dir->ino == FUSE_ROOT_ID && strcmp(name, KV_RESERVED_SEGMENT) == 0)
		return true;
	if (!fits(b, name))
		return false;
	if (!b->plus) {
		struct fs_inode *c = fs_inode_child(&fs->itab, dir, name);
		memset(&st, 0, sizeof(st));
		st.st_ino = c ? c->ino : 0;
		st.st_mode = kind;
		fs_inode_put(&fs->itab, c);
		return add(b, fs, name, NULL, &st, next);
	}
	struct fs_inode *in = fs_inode_link(&fs->itab, dir, name, kind);
	if (in == NULL)
		return false;
	fs_fill_stat(fs, in->ino, ks, &st);
	struct fs_file *f = fs_inode_peek(&fs->itab, in);
	if (f != NULL) {
		pthread_mutex_lock(&f->lock);
		if (f->opens > 0 && fs_file_dirty(f))
			fs_fill_file_stat(fs, in->ino, f, &st);
		pthread_mutex_unlock(&f->lock);
	}
	bool ok = add(b, fs, name, in, &st, next);
	fs_inode_put(&fs->itab, in);
	return ok;
}

/* The files made here and not committed, after the store's entries. */
static int list_pending(struct dirbuf *b, struct fs *fs, struct fs_dir *d,
			const char *key, size_t klen, uint64_t from)
{
	if (!d->pending_taken) {
		int ret = fs_inode_pending_names(&fs->itab, d->in, &d->pending,
						 &d->npending);
		if (ret != 0)
			return ret;
		d->pending_taken = true;
	}
	for (uint64_t j = from; j < d->npending; j++) {
		char ck[KV_MAX_KEY + 1];
		size_t cl;
		struct kv_stat ks = {0};
		struct fs_inode *c =
		    fs_inode_child(&fs->itab, d->in, d->pending[j]);
		bool show =
		    c && fs_inode_is_pending(&fs->itab, c) &&
		    fs_child_key(fs, d->in, d->pending[j], ck, &cl) == 0 &&
		    store_stat(node_store(fs->node), ck, cl, &ks) != 0;
		fs_inode_put(&fs->itab, c);
		(void)key;
		(void)klen;
		if (!show)
			continue; /* committed or gone since: listed or not */
		ks.mode = S_IFREG;
		if (!add_child(b, fs, d->in, d->pending[j], &ks,
			       (off_t)(FS_DIR_PENDING + j + 1)))
			break;
	}
	return 0;
}

static int fill_dir(struct dirbuf *b, struct fs *fs, struct fs_dir *d,
		    off_t off)
{
	char key[KV_MAX_KEY + 1];
	size_t klen;
	struct stat st = {.st_mode = S_IFDIR};
	int ret = fs_key_of(fs, d->in, key, &klen);

	if (ret != 0)
		return ret;
	st.st_ino = (ino_t)d->in->ino;
	if (off < 1 && !add(b, fs, ".", NULL, &st, 1))
		return 0;
	if (off < 2 && !add(b, fs, "..", NULL, &st, 2))
		return 0;
	if ((uint64_t)off >= FS_DIR_PENDING)
		return list_pending(b, fs, d, key, klen,
				    (uint64_t)off - FS_DIR_PENDING);
	uint64_t idx = off < 2 ? 0 : (uint64_t)off - 2;
	for (;;) {
		bool eof;
		if ((ret = dir_seek(fs, d, key, klen, idx, &eof)) != 0)
			return ret;
		if (eof)
			return list_pending(b, fs, d, key, klen, 0);
		while (idx < d->start + d->page.n) {
			struct kv_dirent *e = &d->page.ents[idx - d->start];
			if (!add_child(b, fs, d->in, e->name, &e->st,
				       (off_t)(idx + 3)))
				return 0;
			idx++;
		}
	}
}

static void readdir_common(fuse_req_t req, size_t size, off_t off,
			   struct fuse_file_info *fi, bool plus)
{
	struct fs *fs = fs_of(req);
	struct fs_dir *d = (struct fs_dir *)(uintptr_t)fi->fh;
	struct dirbuf b = {.req = req, .size = size, .plus = plus};
	int ret;

	b.p = malloc(size ? size : 1);
	if (b.p == NULL) {
		fs_reply_err(req, ENOMEM);
		return;
	}
	pthread_mutex_lock(&d->lock);
	ret = fill_dir(&b, fs, d, off);
	pthread_mutex_unlock(&d->lock);
	/* An error after some entries: send those; the next call sees it. */
	if (ret != 0 && b.pos == 0)
		fs_reply_err(req, -ret);
	else
		fuse_reply_buf(req, b.p, b.pos);
	free(b.p);
}

void fs_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		   struct fuse_file_info *fi)
{
	(void)ino;
	readdir_common(req, size, off, fi, false);
}

void fs_op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	(void)ino;
	readdir_common(req, size, off, fi, true);
}

/* ---- mkdir, rmdir ---- */

void fs_op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		 mode_t mode)
{
	fs_make_entry(req, parent, name, KV_OP_MKDIR, S_IFDIR | (mode & 07777),
		      NULL, 0);
}

void fs_op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);
	struct fs_inode *dir = fs_inode_get(&fs->itab, parent);
	char key[KV_MAX_KEY + 1];
	size_t klen;
	int ret;

	if (dir == NULL) {
		fs_reply_err(req, ENOENT);
		return;
	}
	struct fs_inode *c = fs_inode_child(&fs->itab, dir, name);
	/* A file made in it here and not committed is an entry too. */
	ret = c && fs_inode_pending_kids(&fs->itab, c) > 0 ? -ENOTEMPTY : 0;
	fs_inode_put(&fs->itab, c);
	if (ret == 0)
		ret = fs_child_key(fs, dir, name, key, &klen);
	if (ret == 0) {
		struct kv_cmd cmd = {.op = KV_OP_RMDIR,
				     .key = key,
				     .klen = klen,
				     .time_ns = fs_now()};
		ret = fs_propose(fs, &cmd, NULL);
	}
	if (ret == 0)
		fs_inode_unlink(&fs->itab, dir, name);
	fs_inode_put(&fs->itab, dir);
	fs_reply_err(req, -ret);
}
