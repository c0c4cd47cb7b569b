/* log_replay.c - reading the log back at open: segments, torn and damaged
 * tails.
 *
 * Segments are read in name order and every line is checked. Only the
 * last line of the last segment may be bad without stopping the open, and
 * then it is cut: silently when it is torn (incomplete: no newline before
 * the zeros), with a message and log_lost_index when it is complete but
 * damaged (it ends in its newline and holds no zero byte, so it was once
 * written whole). Any other damage stops the open with the file and
 * offset. The rules: "Recovery" in docs/log-format.md; the segments
 * themselves are in log.c. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kv.h"
#include "log_int.h"

static void set_err(char **errmsg, const char *dir, const char *name,
		    size_t off, const char *why)
{
	if (!errmsg)
		return;
	free(*errmsg);
	if (asprintf(errmsg, "%s/%s: offset %zu: %s", dir, name, off, why) < 0)
		*errmsg = NULL;
}

static bool is_seg_name(const char *n)
{
	if (strlen(n) != SEG_NAME_LEN || strncmp(n, "log-", 4) != 0 ||
	    strcmp(n + 24, ".jsonl") != 0)
		return false;
	for (int i = 4; i < 24; i++)
		if (n[i] < '0' || n[i] > '9')
			return false;
	return true;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Open and map an existing segment file (no parsing yet). KV_ECORRUPT
 * with *errmsg for a file too big to index. */
static int seg_load(struct log *log, const char *name, struct seg **out,
		    char **errmsg)
{
	struct seg *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	snprintf(s->name, sizeof(s->name), "%s", name);
	int ret;
	s->fd = openat(log->dirfd, name, O_RDWR | O_CLOEXEC);
	struct stat sb;
	if (s->fd < 0 || fstat(s->fd, &sb) < 0) {
		ret = -errno;
		goto err_free;
	}
	s->map_len = s->limit = (size_t)sb.st_size;
	if ((uint64_t)sb.st_size > UINT32_MAX) {
		/* offsets are 32-bit (LOG_MAX_SEGMENT): never written so */
		set_err(errmsg, log->dir, name, 0,
			"segment file of 4 GiB or more");
		ret = KV_ECORRUPT;
		goto err_free;
	}
	if (s->map_len > 0) {
		s->map = mmap(NULL, s->map_len, PROT_READ | PROT_WRITE,
			      MAP_SHARED, s->fd, 0);
		if (s->map == MAP_FAILED) {
			s->map = NULL;
			ret = -errno;
			goto err_free;
		}
	}
	*out = s;
	return 0;

err_free:
	seg_free(s);
	return ret;
}

/* Cut s at off: zero [off, end) and make that durable, so that later
 * appends cannot leave stale bytes behind them (invariant 8). */
static int seg_cut(struct seg *s, size_t off, size_t end)
{
	memset(s->map + off, 0, end - off);
	if (fdatasync(s->fd) < 0)
		return -errno;
	return 0;
}

/* Check the header of s against the segment before it (*expect: the index
 * it must start at, 0 for the first segment). 0 with *pos after the header;
 * 1 if s is a torn new segment to drop (last segment only); KV_ECORRUPT or
 * KV_EVERSION with *errmsg. */
static int seg_header(struct log *log, struct seg *s, bool is_last,
		      uint64_t expect, uint64_t expect_prev_term, size_t *pos,
		      char **errmsg)
{
	const unsigned char *m = s->map;
	size_t n = s->map_len;
	if (n == 0) {
		/* created just before a crash, before its preallocation */
		if (is_last)
			return 1;
		set_err(errmsg, log->dir, s->name, 0, "empty segment file");
		return KV_ECORRUPT;
	}
	const unsigned char *nl = memchr(m, '\n', n < HDR_MAX ? n : HDR_MAX);
	int ret = nl ? logfmt_parse_header(m, (size_t)(nl - m), &s->first,
					   &s->prev_term)
		     : KV_ECORRUPT;
	if (ret == KV_EVERSION) {
		set_err(errmsg, log->dir, s->name, 0,
			"unknown log format version");
		return ret;
	}
	if (ret) {
		/* a segment created just before a crash: header torn or
		 * missing and nothing after it */
		size_t z = 0;
		while (z < n && m[z] && (!nl || m + z <= nl))
			z++;
		if (is_last && logfmt_all_zero(m + z, n - z))
			return 1;
		set_err(errmsg, log->dir, s->name, 0, "bad segment header");
		return KV_ECORRUPT;
	}
	char want[SEG_NAME_LEN + 1];
	snprintf(want, sizeof(want), "log-%020" PRIu64 ".jsonl", s->first);
	const char *why = NULL;
	if (strcmp(want, s->name) != 0)
		why = "header's first index does not match the file name";
	else if (expect && s->first > expect)
		why = "gap in indexes before this segment";
	else if (expect && s->first < expect)
		why = "segment overlaps the previous one";
	else if (expect && s->prev_term != expect_prev_term)
		why = "header's prev_term differs from the previous entry";
	if (why) {
		set_err(errmsg, log->dir, s->name, 0, why);
		return KV_ECORRUPT;
	}
	*pos = (size_t)(nl - m) + 1;
	return 0;
}

/* A bad line at pos, whose bytes up to tail are not zero, that would hold
 * entry index. The last line of the last segment is cut (a torn one
 * silently; a complete one, damaged, said on stderr and remembered in
 * log->lost_index); any other is damage: KV_ECORRUPT with *errmsg. */
static int seg_bad_line(struct log *log, struct seg *s, bool is_last,
			size_t pos, size_t tail, bool complete, const char *why,
			uint64_t index, char **errmsg)
{
	if (!is_last || !logfmt_all_zero(s->map + tail, s->map_len - tail)) {
		set_err(errmsg, log->dir, s->name, pos, why);
		return KV_ECORRUPT;
	}
	if (complete) {
		kv_log(KV_LOG_WARN,
		       "%s/%s: offset %zu: %s in the last line, which "
		       "is complete (it ends in its newline): damaged, not "
		       "torn; entry %" PRIu64 " cut, to be had again from "
		       "the leader",
		       log->dir, s->name, pos, why, index);
		log->lost_index = index;
	}
	return seg_cut(s, pos, tail);
}

/* Replay segment s, whose first index must be *expect (unless it is the
 * first segment, *expect == 0). Returns 0, 1 if s is a torn new segment to
 * drop (last segment only), KV_ECORRUPT/KV_EVERSION with *errmsg, -errno. */
static int seg_replay(struct log *log, struct seg *s, bool is_last,
		      uint64_t *expect, uint64_t expect_prev_term,
		      char **errmsg)
{
	size_t pos;
	int ret = seg_header(log, s, is_last, *expect, expect_prev_term, &pos,
			     errmsg);
	if (ret)
		return ret;
	const unsigned char *m = s->map;
	size_t n = s->map_len;
	uint64_t next = s->first;
	while (pos < n && m[pos]) {
		const unsigned char *p = m + pos;
		const unsigned char *e = memchr(p, '\n', n - pos);
		const unsigned char *z =
		    memchr(p, 0, e ? (size_t)(e - p) : n - pos);
		/* complete: written whole once (see the top of the file) */
		bool complete = e && !z;
		const char *why = "incomplete line";
		struct log_line ln;
		if (complete) {
			why = logfmt_parse_line(p, (size_t)(e - p), &ln);
			if (!why && ln.index != next) {
				set_err(errmsg, log->dir, s->name, pos,
					ln.index > next ? "gap in indexes"
							: "index out of order");
				return KV_ECORRUPT;
			}
		}
		if (why) {
			size_t tail = z	  ? (size_t)(z - m)
				      : e ? (size_t)(e - m) + 1
					  : n;
			ret = seg_bad_line(log, s, is_last, pos, tail, complete,
					   why, next, errmsg);
			if (ret)
				return ret;
			break;
		}
		ret = seg_push(s, pos, ln.term);
		if (ret)
			return ret;
		next++;
		pos = (size_t)(e - m) + 1;
	}
	s->used = pos;
	if (!logfmt_all_zero(m + pos, n - pos)) {
		set_err(errmsg, log->dir, s->name, pos,
			"data after a zero-filled gap");
		return KV_ECORRUPT;
	}
	*expect = next;
	return 0;
}

/* The segment file names in dir, sorted (index order). */
static int list_segments(int dirfd, char ***out, size_t *count)
{
	*out = NULL;
	*count = 0;
	DIR *d = fdopendir(dup(dirfd));
	if (!d)
		return -errno;
	char **names = NULL;
	size_t nn = 0, cap = 0;
	int ret = 0;
	struct dirent *de;
	while (ret == 0 && (de = readdir(d))) {
		if (!is_seg_name(de->d_name))
			continue;
		if (nn == cap) {
			cap = cap ? cap * 2 : 16;
			char **a = realloc(names, cap * sizeof(*a));
			if (!a) {
				ret = -ENOMEM;
				break;
			}
			names = a;
		}
		names[nn] = strdup(de->d_name);
		if (!names[nn])
			ret = -ENOMEM;
		else
			nn++;
	}
	closedir(d);
	if (nn)
		qsort(names, nn, sizeof(*names), cmp_names);
	*out = names;
	*count = nn;
	return ret;
}

/* The log's bounds from its segments; the last one reserved again. */
static void log_bounds(struct log *log)
{
	if (!log->nsegs)
		return;
	struct seg *s0 = log->segs[0];
	struct seg *sl = log->segs[log->nsegs - 1];
	log->first = s0->first;
	log->prev_term = s0->prev_term;
	log->last = sl->first + sl->count - 1;
	log->bytes = log_bytes_scan(log);
	/* If the file came to us sparse (copied), writing into holes could
	 * fault on a full disk: reserve, or append elsewhere. */
	if (posix_fallocate(sl->fd, 0, (off_t)sl->map_len) != 0)
		sl->limit = sl->used;
}

int log_replay(struct log *log, char **errmsg)
{
	char **names;
	size_t nn;
	int ret = list_segments(log->dirfd, &names, &nn);
	uint64_t expect = 0, prev_term = 0;
	for (size_t i = 0; ret == 0 && i < nn; i++) {
		struct seg *s = NULL;
		ret = seg_load(log, names[i], &s, errmsg);
		if (ret)
			break;
		ret =
		    seg_replay(log, s, i + 1 == nn, &expect, prev_term, errmsg);
		if (ret == 1) {
			/* torn new segment: nothing in it was ever synced */
			unlinkat(log->dirfd, s->name, 0);
			seg_free(s);
			ret = fsync(log->dirfd) < 0 ? -errno : 0;
			break;
		}
		if (ret == 0)
			ret = segs_reserve(log);
		if (ret) {
			seg_free(s);
			break;
		}
		log->segs[log->nsegs++] = s;
		prev_term = s->count ? seg_term(s, s->count - 1) : s->prev_term;
		if (i + 1 < nn)
			seg_fit(s); /* only the last one is appended to */
	}
	if (ret == 0)
		log_bounds(log);
	for (size_t i = 0; i < nn; i++)
		free(names[i]);
	free(names);
	return ret;
}
