/* handle.c - the buffer of one open file.
 *
 * A file's content is one value, so writes cannot go to the store as they
 * come: a writable open copies the value (nothing, with O_TRUNC), applies
 * writes and truncates to the copy, and ops_file.c commits the whole copy
 * as one PUT on flush/fsync/release. A read-only open keeps a reference to
 * the record it opened instead, so all its reads see one value. Nothing
 * here touches FUSE or the node; the unit tests drive it directly. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fs_int.h"

int fs_handle_init_read(struct fs_handle *h, struct kv_rec *rec)
{
	memset(h, 0, sizeof(*h));
	if (pthread_mutex_init(&h->lock, NULL) != 0)
		return -ENOMEM;
	h->rec = rec;
	h->max = KV_MAX_VALUE;
	h->mode = rec ? rec->mode & 07777 : 0644;
	return 0;
}

int fs_handle_init_buf(struct fs_handle *h, const void *val, size_t len,
		       size_t max, bool writable, bool append, uint32_t mode)
{
	memset(h, 0, sizeof(*h));
	if (len > max)
		return -EFBIG;
	if (len > 0) {
		h->buf = malloc(len);
		if (!h->buf)
			return -ENOMEM;
		memcpy(h->buf, val, len);
	}
	if (pthread_mutex_init(&h->lock, NULL) != 0) {
		free(h->buf);
		return -ENOMEM;
	}
	h->len = h->cap = len;
	h->max = max;
	h->writable = writable;
	h->append = append;
	h->mode = mode & 07777;
	return 0;
}

void fs_handle_close(struct fs_handle *h)
{
	kv_rec_unref(h->rec);
	free(h->buf);
	pthread_mutex_destroy(&h->lock);
	memset(h, 0, sizeof(*h));
}

size_t fs_handle_size(const struct fs_handle *h)
{
	return h->rec ? h->rec->vlen : h->len;
}

size_t fs_handle_read(struct fs_handle *h, void *out, size_t size, off_t off)
{
	const unsigned char *src = h->rec ? h->rec->val : h->buf;
	size_t len = fs_handle_size(h);
	if (off < 0 || (uint64_t)off >= len)
		return 0;
	size_t n = len - (size_t)off;
	if (n > size)
		n = size;
	memcpy(out, src + off, n);
	return n;
}

/* Make room for size bytes, zero-filling from len. */
static int reserve(struct fs_handle *h, size_t size)
{
	if (size <= h->cap)
		return 0;
	size_t cap = h->cap ? h->cap : 4096;
	while (cap < size)
		cap = cap > h->max / 2 ? size : cap * 2;
	if (cap > h->max && size <= h->max)
		cap = h->max;
	unsigned char *nb = realloc(h->buf, cap);
	if (!nb)
		return -ENOMEM;
	h->buf = nb;
	h->cap = cap;
	return 0;
}

int fs_handle_write(struct fs_handle *h, const void *data, size_t size,
		    off_t off)
{
	if (!h->writable)
		return -EBADF;
	if (h->poison)
		return h->poison;
	if (off < 0)
		return -EINVAL;
	uint64_t start = h->append ? h->len : (uint64_t)off;
	if (start > h->max || size > h->max - start) {
		/* Part of this value may already be in the buffer (the
		 * kernel splits big writes): committing it would store a
		 * half-written value, so this open never commits. */
		h->poison = -EFBIG;
		return -EFBIG;
	}
	size_t end = (size_t)start + size;
	int ret = reserve(h, end);
	if (ret != 0)
		return ret;
	if (start > h->len)
		memset(h->buf + h->len, 0, (size_t)start - h->len);
	memcpy(h->buf + start, data, size);
	if (end > h->len)
		h->len = end;
	h->dirty = true;
	return (int)size;
}

int fs_handle_truncate(struct fs_handle *h, off_t size)
{
	if (!h->writable)
		return -EBADF;
	if (size < 0)
		return -EINVAL;
	if ((uint64_t)size > h->max)
		return -EFBIG;
	int ret = reserve(h, (size_t)size);
	if (ret != 0)
		return ret;
	if ((size_t)size > h->len)
		memset(h->buf + h->len, 0, (size_t)size - h->len);
	h->len = (size_t)size;
	h->dirty = true;
	return 0;
}
