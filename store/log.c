/* log.c - the replicated log: JSON Lines in mmap'd, preallocated segments.
 *
 * Each segment file (log-<first index, 20 digits>.jsonl) starts with a
 * header line and holds one entry a line; the command text is stored
 * verbatim. Segments are reserved with posix_fallocate and written by
 * memcpy into a MAP_SHARED mapping (a big entry's whole line by pwritev
 * into the same pages), so a full disk is -ENOSPC at segment creation, never a
 * SIGBUS. Durability is fdatasync on dup'd descriptors (log_sync_run, which may
 * run on another thread). The line formats are in log_format.c, reading a log
 * back in log_replay.c; the file format and the numbered durability invariants
 * this file keeps are in docs/log-format.md. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "kv.h"
#include "log_int.h"

struct log_sync {
	size_t nfds;
	int dirfd; /* -1 if the directory needs no sync */
	int fds[];
};

/* ---- segments ---- */

/* Unlink and free segment i, keeping the array in order. */
static void seg_delete(struct log *log, size_t i)
{
	struct seg *s = log->segs[i];
	unlinkat(log->dirfd, s->name, 0);
	seg_free(s);
	memmove(&log->segs[i], &log->segs[i + 1],
		(log->nsegs - i - 1) * sizeof(log->segs[0]));
	log->nsegs--;
	log->dir_dirty = true;
}

/* Create, preallocate and map a new segment whose first entry will be
 * first, big enough for at least `need` bytes of entries. On any failure
 * the file is removed and nothing changes: -ENOSPC, -errno. */
static int seg_create(struct log *log, uint64_t first, uint64_t prev_term,
		      size_t need, struct seg **out)
{
	char hdr[HDR_MAX];
	int hlen = logfmt_header(hdr, sizeof(hdr), first, prev_term);
	size_t size = log->seg_size;
	if (size < (size_t)hlen + need)
		size = (size_t)hlen + need;
	size = (size + log->page - 1) / log->page * log->page;
	struct seg *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->fd = -1;
	snprintf(s->name, sizeof(s->name), "log-%020" PRIu64 ".jsonl", first);
	int ret;
	s->fd = openat(log->dirfd, s->name,
		       O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (s->fd < 0) {
		ret = -errno;
		goto err_free;
	}
	/* Invariant 2: real blocks, so stores through the mapping cannot
	 * fault on a full disk. */
	ret = -posix_fallocate(s->fd, 0, (off_t)size);
	if (ret)
		goto err_unlink;
	s->map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, s->fd, 0);
	if (s->map == MAP_FAILED) {
		s->map = NULL;
		ret = -errno;
		goto err_unlink;
	}
	s->map_len = s->limit = size;
	memcpy(s->map, hdr, (size_t)hlen);
	s->used = (size_t)hlen;
	s->first = first;
	s->prev_term = prev_term;
	s->dirty = true;
	log->dir_dirty = true;
	*out = s;
	return 0;

err_unlink:
	unlinkat(log->dirfd, s->name, 0);
err_free:
	seg_free(s);
	return ret;
}

/* The segment holding index (first <= index <= last physically). */
static struct seg *seg_find(const struct log *log, uint64_t index)
{
	size_t lo = 0, hi = log->nsegs;
	while (hi - lo > 1) {
		size_t mid = (lo + hi) / 2;
		if (log->segs[mid]->first <= index)
			lo = mid;
		else
			hi = mid;
	}
	if (hi == 0)
		return NULL;
	struct seg *s = log->segs[lo];
	if (index < s->first || index - s->first >= s->count)
		return NULL;
	return s;
}

/* ---- public API ---- */

int log_open(const char *dir, size_t segment_size, struct log **out,
	     char **errmsg)
{
	struct log *log = calloc(1, sizeof(*log));
	if (!log)
		return -ENOMEM;
	int ret = -ENOMEM;
	log->dirfd = -1;
	log->dir = strdup(dir);
	if (!log->dir)
		goto err_free;
	log->page = (size_t)sysconf(_SC_PAGESIZE);
	log->seg_size = segment_size ? segment_size : LOG_DEFAULT_SEGMENT;
	if (log->seg_size > LOG_MAX_SEGMENT) {
		ret = -EINVAL;
		if (errmsg && asprintf(errmsg,
				       "segment size %zu is over the largest, "
				       "%u bytes (1 GiB)",
				       log->seg_size, LOG_MAX_SEGMENT) < 0)
			*errmsg = NULL;
		goto err_free;
	}
	log->first = 1;
	log->last = 0;
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		ret = -errno;
		goto err_free;
	}
	log->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (log->dirfd < 0) {
		ret = -errno;
		goto err_free;
	}
	ret = log_replay(log, errmsg);
	if (ret)
		goto err_free;
	log_release(log); /* what the replay read */
	log->checked = log->last;
	*out = log;
	return 0;

err_free:
	log_close(log);
	return ret;
}

void log_close(struct log *log)
{
	if (!log)
		return;
	for (size_t i = 0; i < log->nsegs; i++)
		seg_free(log->segs[i]);
	free(log->segs);
	if (log->dirfd >= 0)
		close(log->dirfd);
	free(log->dir);
	free(log);
}

uint64_t log_first_index(const struct log *log)
{
	return log->first;
}

uint64_t log_last_index(const struct log *log)
{
	return log->last;
}

uint64_t log_term_at(const struct log *log, uint64_t index)
{
	if (index == 0)
		return 0;
	if (index == log->first - 1)
		return log->prev_term;
	if (index < log->first || index > log->last)
		return 0;
	const struct seg *s = seg_find(log, index);
	return s ? seg_term(s, index - s->first) : 0;
}

uint64_t log_bytes(const struct log *log)
{
	return log->bytes;
}

uint64_t log_lost_index(const struct log *log)
{
	return log->lost_index;
}

uint64_t log_room(const struct log *log)
{
	if (!log->nsegs)
		return 0;
	const struct seg *s = log->segs[log->nsegs - 1];
	return s->limit - s->used;
}

void log_release(struct log *log)
{
	for (size_t i = 0; i < log->nsegs; i++) {
		/* From the start, not from the mark of the last release: a
		 * read since (the recovery's copies after the replay) maps
		 * pages behind it again. */
		log->segs[i]->released = 0;
		seg_release(log->segs[i], log->segs[i]->used, log->page);
		seg_release_tail(log->segs[i], log->page);
	}
}

int log_truncate(struct log *log, uint64_t index)
{
	if (index < log->first || index > log->last + 1)
		return -EINVAL;
	if (index == log->last + 1)
		return 0;
	struct seg *s = seg_find(log, index);
	if (!s)
		return -EINVAL;
	bool deleted = false;
	while (log->segs[log->nsegs - 1] != s) {
		seg_delete(log, log->nsegs - 1);
		deleted = true;
	}
	uint64_t k = index - s->first;
	size_t from = s->off[k];
	memset(s->map + from, 0, s->used - from);
	s->used = from;
	if (s->released > from)
		s->released = from / log->page * log->page;
	seg_cut_to(s, k);
	s->dirty = true;
	log->last = index - 1;
	if (log->checked > log->last)
		log->checked = log->last;
	log->bytes = log_bytes_scan(log);
	/* Invariant 4: the cut is on disk before anything written after it
	 * can be (docs/log-format.md). */
	if (fdatasync(s->fd) < 0)
		return -errno;
	if (deleted && fsync(log->dirfd) < 0)
		return -errno;
	return 0;
}

/* The appended bytes of the segment being filled that stay mapped in
 * resident memory; what is older is given back in steps of as much
 * (seg_release): the log's pages, read back by the replay and written by
 * every append, were 80 to 160 MiB of a 1M-key node's resident memory. */
#define LOG_RESIDENT_BYTES (4u << 20)

/* Entry data past this size is written with pwrite rather than stored
 * through the mapping: a fresh page of the mapping costs a fault, and the
 * 4,000 of a 16 MiB entry took 50 to 300 ms of the node thread; write(2)
 * fills the same page cache (the mapping sees it) at memcpy speed. The
 * blocks are reserved (Invariant 2), so it cannot fail for room. */
#define LOG_PWRITE_BYTES (256u * 1024u)

/* The line pre, data, "}\n" at off of fd, whole, with pwritev: the
 * whole line of a big entry goes through write(2), the mapping is not
 * touched. Storing the prefix and the "}\n" through it faulted in its
 * page, and the fault's readahead read (zero-filled) the pages after it,
 * which the next pwrite then overwrote: a memset of about every byte
 * written, 11% of the node thread's samples with 1 MiB values. 0 or
 * -errno. */
static int write_line_at(int fd, const char *pre, size_t plen, const void *data,
			 size_t dlen, off_t off)
{
	struct iovec v[3] = {
	    {(void *)pre, plen}, {(void *)data, dlen}, {(void *)"}\n", 2}};
	struct iovec *at = v;
	int cnt = 3;
	while (cnt > 0) {
		ssize_t w = pwritev(fd, at, cnt, off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		off += w;
		while (cnt > 0 && (size_t)w >= at->iov_len) {
			w -= (ssize_t)at->iov_len;
			at++;
			cnt--;
		}
		if (cnt > 0) {
			at->iov_base = (char *)at->iov_base + w;
			at->iov_len -= (size_t)w;
		}
	}
	return 0;
}

int log_append(struct log *log, const struct log_entry *e)
{
	if (e->index < log->first || e->index > log->last + 1 ||
	    e->term < log_term_at(log, e->index - 1) || (e->len && !e->data))
		return -EINVAL;
	if (e->len && !e->data_checked &&
	    (memchr(e->data, '\n', e->len) || memchr(e->data, 0, e->len)))
		return -EINVAL;
	int ret;
	if (e->index <= log->last) {
		ret = log_truncate(log, e->index);
		if (ret)
			return ret;
	}
	const char *data = e->len ? e->data : "null";
	size_t dlen = e->len ? e->len : 4;
	char pre[128];
	int plen = logfmt_prefix(pre, sizeof(pre), e);
	size_t need = (size_t)plen + dlen + 2;

	struct seg *s = log->nsegs ? log->segs[log->nsegs - 1] : NULL;
	if (!s || s->limit - s->used < need) {
		if (s && s->count == 0) {
			/* an empty segment too small for this entry */
			seg_delete(log, log->nsegs - 1);
		} else if (s && fdatasync(s->fd) < 0) {
			/* Invariant 5: a full segment is on disk before the
			 * next one exists. */
			return -errno;
		} else if (s) {
			seg_release(s, s->used, log->page);
			seg_fit(s); /* full: nothing more is appended to it */
		}
		struct seg *ns;
		ret = segs_reserve(log);
		if (ret)
			return ret;
		ret = seg_create(log, e->index, log_term_at(log, e->index - 1),
				 need, &ns);
		if (ret)
			return ret;
		log->segs[log->nsegs++] = ns;
		s = ns;
	}
	ret = seg_reserve(s);
	if (ret)
		return ret;
	unsigned char *p = s->map + s->used;
	kv_work.write += dlen;
	if (dlen > LOG_PWRITE_BYTES) {
		ret = write_line_at(s->fd, pre, (size_t)plen, data, dlen,
				    (off_t)s->used);
		if (ret)
			return ret; /* nothing counted: the next one overwrites
				     */
	} else {
		memcpy(p, pre, (size_t)plen);
		memcpy(p + plen, data, dlen);
		memcpy(p + plen + dlen, "}\n", 2);
	}
	seg_set(s, s->used, e->term);
	s->used += need;
	s->dirty = true;
	if (s->used - s->released >= 2 * LOG_RESIDENT_BYTES)
		seg_release(s, s->used - LOG_RESIDENT_BYTES, log->page);
	log->last = e->index;
	log->bytes += need;
	return 0;
}

static int get(struct log *log, uint64_t index, struct log_entry *out,
	       bool check)
{
	if (index < log->first || index > log->last)
		return -ENOENT;
	struct seg *s = seg_find(log, index);
	if (!s)
		return -ENOENT;
	uint64_t k = index - s->first;
	size_t start = s->off[k];
	size_t end = (k + 1 < s->count ? s->off[k + 1] : s->used) - 1;
	struct log_line ln;
	const char *why =
	    check ? logfmt_parse_line(s->map + start, end - start, &ln)
		  : logfmt_parse_checked_line(s->map + start, end - start, &ln);
	if (why || ln.index != index)
		return KV_ECORRUPT;
	out->index = ln.index;
	out->term = ln.term;
	out->type = ln.type;
	out->data = ln.data;
	out->len = ln.len;
	return 0;
}

int log_get(struct log *log, uint64_t index, struct log_entry *out)
{
	return get(log, index, out, true);
}

int log_get_opened(struct log *log, uint64_t index, struct log_entry *out)
{
	return get(log, index, out, index > log->checked);
}

size_t log_line_bytes(const struct log *log, uint64_t from, uint64_t to)
{
	size_t sum = 0;
	for (size_t i = 0; i < log->nsegs; i++) {
		const struct seg *s = log->segs[i];
		if (!s->count || to < s->first)
			continue;
		uint64_t last = s->first + s->count - 1;
		uint64_t lo = from > s->first ? from : s->first;
		uint64_t hi = to < last ? to : last;
		if (lo > hi)
			continue;
		size_t end = hi < last ? s->off[hi + 1 - s->first] : s->used;
		sum += end - s->off[lo - s->first];
	}
	return sum;
}

int log_compact(struct log *log, uint64_t index, uint64_t term)
{
	if (index < log->first)
		return 0;
	if (index > log->last)
		return log_reset(log, index, term);
	if (log_term_at(log, index) != term)
		return -EINVAL;
	log->first = index + 1;
	log->prev_term = term;
	/* Keep the last segment: its header keeps (first, prev_term) known
	 * across a restart. Deleting older ones needs no sync (invariant 6). */
	while (log->nsegs > 1 &&
	       log->segs[0]->first + log->segs[0]->count - 1 <= index)
		seg_delete(log, 0);
	log->bytes = log_bytes_scan(log);
	return 0;
}

int log_reset(struct log *log, uint64_t index, uint64_t term)
{
	while (log->nsegs)
		seg_delete(log, log->nsegs - 1);
	/* Invariant 7: old segments are gone for good before a new one can
	 * appear after a gap. */
	if (fsync(log->dirfd) < 0)
		return -errno;
	log->first = index + 1;
	log->last = index;
	log->checked = 0;
	log->prev_term = term;
	log->bytes = 0;
	/* An empty segment records (index, term) across a restart; if there
	 * is no room now, the next append creates it. */
	struct seg *s;
	if (segs_reserve(log) == 0) {
		if (seg_create(log, index + 1, term, 0, &s) == 0)
			log->segs[log->nsegs++] = s;
	}
	return 0;
}

int log_sync_prepare(struct log *log, struct log_sync **out)
{
	size_t n = 0;
	for (size_t i = 0; i < log->nsegs; i++)
		n += log->segs[i]->dirty;
	struct log_sync *s = malloc(sizeof(*s) + n * sizeof(int));
	if (!s)
		return -ENOMEM;
	s->nfds = 0;
	s->dirfd = -1;
	int ret;
	for (size_t i = 0; i < log->nsegs; i++) {
		if (!log->segs[i]->dirty)
			continue;
		int fd = fcntl(log->segs[i]->fd, F_DUPFD_CLOEXEC, 0);
		if (fd < 0) {
			ret = -errno;
			goto err_close;
		}
		s->fds[s->nfds++] = fd;
	}
	if (log->dir_dirty) { /* invariant 3 */
		s->dirfd = fcntl(log->dirfd, F_DUPFD_CLOEXEC, 0);
		if (s->dirfd < 0) {
			ret = -errno;
			goto err_close;
		}
	}
	for (size_t i = 0; i < log->nsegs; i++)
		log->segs[i]->dirty = false;
	log->dir_dirty = false;
	*out = s;
	return 0;

err_close:
	log_sync_done(s);
	return ret;
}

int log_sync_run(struct log_sync *s)
{
	int ret = 0;
	for (size_t i = 0; i < s->nfds; i++)
		if (fdatasync(s->fds[i]) < 0 && !ret)
			ret = -errno;
	if (s->dirfd >= 0 && fsync(s->dirfd) < 0 && !ret)
		ret = -errno;
	return ret;
}

void log_sync_done(struct log_sync *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nfds; i++)
		close(s->fds[i]);
	if (s->dirfd >= 0)
		close(s->dirfd);
	free(s);
}

int log_sync(struct log *log)
{
	struct log_sync *s;
	int ret = log_sync_prepare(log, &s);
	if (ret)
		return ret;
	ret = log_sync_run(s);
	log_sync_done(s);
	return ret;
}
