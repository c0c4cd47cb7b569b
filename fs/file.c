/* file.c - the state of one open regular file (struct fs_file).
 *
 * A file's content is one value, so writes cannot go to the store as they
 * come: the file is a view of its committed record, and the first change
 * copies the record's value into a buffer that writes and truncates then
 * edit; commit.c sends the buffer, with whatever attributes changed, as
 * one put. Until then every stat, read and lseek on this node sees the
 * buffer, its size and its times, as on a local filesystem. Nothing here
 * touches FUSE or the node; the unit tests drive it directly. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fs_int.h"

static void attr_of_rec(struct fs_attr *a, const struct kv_rec *rec)
{
	a->mode = rec->mode;
	a->uid = rec->uid;
	a->gid = rec->gid;
	a->mtime_ns = rec->mtime_ns;
	a->ctime_ns = rec->ctime_ns;
	a->atime_ns = rec->atime_ns;
}

int fs_file_init(struct fs_file *f)
{
	memset(f, 0, sizeof(*f));
	if (pthread_mutex_init(&f->lock, NULL) != 0)
		return -ENOMEM;
	if (pthread_cond_init(&f->cond, NULL) != 0) {
		pthread_mutex_destroy(&f->lock);
		return -ENOMEM;
	}
	f->max = KV_MAX_VALUE;
	return 0;
}

void fs_file_start(struct fs_file *f, struct kv_rec *rec,
		   const struct fs_attr *attr)
{
	f->rec = rec;
	if (rec != NULL) {
		attr_of_rec(&f->attr, rec);
	} else {
		f->attr = *attr;
		f->pending = true;
		f->has_buf = true; /* empty */
	}
}

static void xattrs_free(struct kv_xattr *xa, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free((char *)xa[i].name);
		free((unsigned char *)xa[i].val);
	}
	free(xa);
}

void fs_file_stop(struct fs_file *f)
{
	kv_rec_unref(f->rec);
	free(f->buf);
	xattrs_free(f->xattrs, f->nxattr);
	f->rec = NULL;
	f->buf = NULL;
	f->len = f->cap = 0;
	f->has_buf = false;
	f->xattrs = NULL;
	f->nxattr = 0;
	f->dirty = 0;
	f->pending = false;
	f->poison = 0;
	f->failed = 0;
	f->excl_rev = 0;
	free(f->lock_key);
	f->lock_key = NULL;
	f->lock_klen = 0;
	memset(&f->attr, 0, sizeof(f->attr));
}

void fs_file_close(struct fs_file *f)
{
	fs_file_stop(f);
	pthread_cond_destroy(&f->cond);
	pthread_mutex_destroy(&f->lock);
}

bool fs_file_dirty(const struct fs_file *f)
{
	return f->pending || f->dirty != 0;
}

/* Nothing but the record's value can reach the kernel's pages of f now:
 * it is the committed record, unchanged here, and no descriptor could
 * write into them (through write() or a shared mapping). */
static bool cache_clean(const struct fs_file *f)
{
	return f->rec != NULL && !fs_file_dirty(f) && !f->has_buf &&
	       !f->committing && f->writers == 0;
}

/* NFS's close-to-open rule, with what the pages hold known exactly: they
 * are filled from the file's one view, so once an open has dropped them
 * (keep_cache off) and the view has not changed since, they hold its
 * record's value, and an open that reads that same record may keep
 * them. */
bool fs_file_cache_open(struct fs_file *f, bool writable,
			struct fs_cache_mark *drop)
{
	drop->rev = drop->gen = 0;
	if (writable) {
		f->cache.rev = 0; /* its writes go into the pages */
		return false;
	}
	if (!cache_clean(f))
		return false;
	if (f->cache.rev == f->rec->mod_rev && f->cache.gen == f->gen)
		return true;
	drop->rev = f->rec->mod_rev;
	drop->gen = f->gen;
	return false;
}

void fs_file_cache_settle(struct fs_file *f, struct fs_cache_mark *drop)
{
	if (drop->rev != 0 && cache_clean(f) && f->rec->mod_rev == drop->rev &&
	    f->gen == drop->gen)
		f->cache = *drop;
	drop->rev = drop->gen = 0;
}

void fs_file_refresh(struct fs_file *f, struct kv_rec *rec)
{
	/* never back: two opens of one file each fetch the record after
	 * their own barrier, and the one that fetched first may take the
	 * lock last; revisions only grow, so the newer record stays (a
	 * read would otherwise see an older value than one already read) */
	if (fs_file_dirty(f) || f->committing ||
	    (f->rec != NULL && rec->mod_rev <= f->rec->mod_rev)) {
		kv_rec_unref(rec);
		return;
	}
	kv_rec_unref(f->rec);
	f->rec = rec;
	attr_of_rec(&f->attr, rec);
	/* The buffer held the old value: the record is the content now. */
	f->has_buf = false;
	f->len = 0;
}

const unsigned char *fs_file_data(const struct fs_file *f)
{
	if (f->has_buf)
		return f->buf;
	return f->rec ? kv_rec_val(f->rec) : NULL;
}

size_t fs_file_size(const struct fs_file *f)
{
	if (f->has_buf)
		return f->len;
	return f->rec ? f->rec->vlen : 0;
}

size_t fs_file_read(const struct fs_file *f, void *out, size_t size, off_t off)
{
	const unsigned char *src = fs_file_data(f);
	size_t len = fs_file_size(f);

	if (off < 0 || (uint64_t)off >= len)
		return 0;
	size_t n = len - (size_t)off;
	if (n > size)
		n = size;
	memcpy(out, src + off, n);
	return n;
}

/* Make room for size bytes. */
static int reserve(struct fs_file *f, size_t size)
{
	if (size <= f->cap)
		return 0;
	size_t cap = f->cap ? f->cap : 4096;
	while (cap < size)
		cap = cap > f->max / 2 ? size : cap * 2;
	if (cap > f->max && size <= f->max)
		cap = f->max;
	unsigned char *nb = realloc(f->buf, cap);
	if (!nb)
		return -ENOMEM;
	f->buf = nb;
	f->cap = cap;
	return 0;
}

/* The first change copies the record's value into the buffer. */
static int own_content(struct fs_file *f)
{
	if (f->has_buf)
		return 0;
	size_t n = f->rec ? f->rec->vlen : 0;
	int ret = reserve(f, n);
	if (ret != 0)
		return ret;
	if (n > 0)
		memcpy(f->buf, kv_rec_val(f->rec), n);
	f->len = n;
	f->has_buf = true;
	return 0;
}

static void changed(struct fs_file *f, int64_t now)
{
	f->dirty |= FS_DIRTY_DATA;
	f->attr.mtime_ns = now;
	f->attr.ctime_ns = now;
	f->gen++;
}

int fs_file_write(struct fs_file *f, const void *data, size_t size, off_t off,
		  bool append, int64_t now)
{
	if (f->poison)
		return f->poison;
	if (off < 0)
		return -EINVAL;
	int ret = own_content(f);
	if (ret != 0)
		return ret;
	uint64_t start = append ? f->len : (uint64_t)off;
	if (start > f->max || size > f->max - start) {
		/* Part of this value may already be in the buffer (the
		 * kernel splits big writes): committing it would store a
		 * half-written value, so this file never commits. */
		f->poison = -EFBIG;
		return -EFBIG;
	}
	size_t end = (size_t)start + size;
	ret = reserve(f, end);
	if (ret != 0)
		return ret;
	if (start > f->len)
		memset(f->buf + f->len, 0, (size_t)start - f->len);
	memcpy(f->buf + start, data, size);
	if (end > f->len)
		f->len = end;
	changed(f, now);
	return (int)size;
}

int fs_file_truncate(struct fs_file *f, off_t size, int64_t now)
{
	if (size < 0)
		return -EINVAL;
	if ((uint64_t)size > f->max)
		return -EFBIG;
	int ret = own_content(f);
	if (ret == 0)
		ret = reserve(f, (size_t)size);
	if (ret != 0)
		return ret;
	if ((size_t)size > f->len)
		memset(f->buf + f->len, 0, (size_t)size - f->len);
	f->len = (size_t)size;
	changed(f, now);
	return 0;
}

const struct kv_xattr *fs_file_xattrs(const struct fs_file *f, size_t *n)
{
	if (f->dirty & FS_DIRTY_XATTR) {
		*n = f->nxattr;
		return f->xattrs;
	}
	*n = f->rec ? f->rec->nxattr : 0;
	return f->rec ? kv_rec_xattrs(f->rec) : NULL;
}

/* A malloc'd copy of x (NUL after the name). */
static int xattr_dup(const char *name, size_t nlen, const void *val,
		     size_t vlen, struct kv_xattr *out)
{
	char *n = malloc(nlen + 1);
	unsigned char *v = malloc(vlen ? vlen : 1);

	if (n == NULL || v == NULL) {
		free(n);
		free(v);
		return -ENOMEM;
	}
	memcpy(n, name, nlen);
	n[nlen] = '\0';
	if (vlen > 0)
		memcpy(v, val, vlen);
	*out = (struct kv_xattr){n, nlen, v, vlen};
	return 0;
}

/* Make the attributes local (copies of rec's) before changing them. */
static int own_xattrs(struct fs_file *f)
{
	size_t n;
	const struct kv_xattr *src;

	if (f->dirty & FS_DIRTY_XATTR)
		return 0;
	src = fs_file_xattrs(f, &n);
	struct kv_xattr *xa = calloc(n ? n : 1, sizeof(*xa));
	if (xa == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (xattr_dup(src[i].name, src[i].nlen, src[i].val, src[i].vlen,
			      &xa[i]) != 0) {
			xattrs_free(xa, i);
			return -ENOMEM;
		}
	}
	f->xattrs = xa;
	f->nxattr = n;
	f->dirty |= FS_DIRTY_XATTR;
	return 0;
}

int fs_file_setxattr(struct fs_file *f, const char *name, const void *val,
		     size_t vlen, unsigned flags, int64_t now)
{
	size_t nlen = strlen(name), n, i;
	const struct kv_xattr *cur = fs_file_xattrs(f, &n);

	for (i = 0; i < n; i++)
		if (cur[i].nlen == nlen && memcmp(cur[i].name, name, nlen) == 0)
			break;
	if (val == NULL && i == n)
		return -ENODATA;
	if (val != NULL && i == n && (flags & KV_XATTR_REPLACE))
		return -ENODATA;
	if (val != NULL && i < n && (flags & KV_XATTR_CREATE))
		return -EEXIST;
	if (val != NULL && vlen > KV_MAX_XATTR_VALUE)
		return -E2BIG;
	if (val != NULL && kv_xattrs_size(cur, n) -
				   (i < n ? nlen + cur[i].vlen : 0) + nlen +
				   vlen >
			       KV_MAX_XATTR_TOTAL)
		return -ENOSPC;
	int ret = own_xattrs(f);
	if (ret != 0)
		return ret;
	if (val == NULL) {
		free((char *)f->xattrs[i].name);
		free((unsigned char *)f->xattrs[i].val);
		f->xattrs[i] = f->xattrs[--f->nxattr];
	} else if (i < n) {
		unsigned char *v = malloc(vlen ? vlen : 1);
		if (v == NULL)
			return -ENOMEM;
		if (vlen > 0)
			memcpy(v, val, vlen);
		free((unsigned char *)f->xattrs[i].val);
		f->xattrs[i].val = v;
		f->xattrs[i].vlen = vlen;
	} else {
		struct kv_xattr *xa =
		    realloc(f->xattrs, (f->nxattr + 1) * sizeof(*xa));
		if (xa == NULL)
			return -ENOMEM;
		f->xattrs = xa;
		ret = xattr_dup(name, nlen, val, vlen, &xa[f->nxattr]);
		if (ret != 0)
			return ret;
		f->nxattr++;
	}
	f->attr.ctime_ns = now;
	f->gen++;
	return 0;
}
