/* log.c - the replicated log: JSON Lines in mmap'd, preallocated segments.
 *
 * Each segment file (log-<first index, 20 digits>.jsonl) starts with a
 * header line and holds one entry a line, fields in a fixed order so that
 * replay is a scan, not a JSON parse; the command text is stored verbatim.
 * Segments are reserved with posix_fallocate and written by memcpy into a
 * MAP_SHARED mapping, so a full disk is -ENOSPC at segment creation, never a
 * SIGBUS. Durability is fdatasync on dup'd descriptors (log_sync_run, which
 * may run on another thread). The file format and the numbered durability
 * invariants this file keeps are in docs/log-format.md. */
#include "log.h"
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_VERSION	    1
#define LOG_DEFAULT_SEGMENT (64u * 1024u * 1024u)
#define SEG_NAME_LEN	    30	/* "log-" + 20 digits + ".jsonl" */
#define HDR_MAX		    256 /* a header line is shorter than this */

struct seg {
	char name[SEG_NAME_LEN + 1];
	int fd;
	unsigned char *map;
	size_t map_len; /* mapped bytes: the file size */
	size_t limit;	/* bytes we may write: fallocated, <= map_len */
	size_t used;	/* header and entries; zeros from here on */
	uint64_t first; /* index of the first entry */
	uint64_t prev_term;
	uint64_t count;
	uint64_t cap;
	size_t *off;	 /* off[k]: offset of entry first + k */
	uint64_t *terms; /* terms[k]: its term */
	bool dirty;	 /* written since the last log_sync_prepare */
};

struct log {
	char *dir;
	int dirfd;
	size_t seg_size;
	size_t page;
	struct seg **segs; /* ascending by first */
	size_t nsegs, capsegs;
	uint64_t first, last; /* logical: entries first..last */
	uint64_t prev_term;   /* term of first - 1 (snapshot or header) */
	bool dir_dirty;	      /* a segment was created since the last sync */
};

struct log_sync {
	size_t nfds;
	int dirfd; /* -1 if the directory needs no sync */
	int fds[];
};

/* ---- small helpers ---- */

static void put_le64(unsigned char *b, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char)(v >> (8 * i));
}

/* The checksum of an entry: CRC-32C over index (8 bytes little-endian),
 * term (8 bytes little-endian), type (1 byte) and the command bytes. */
static uint32_t entry_crc(uint64_t index, uint64_t term, uint8_t type,
			  const char *data, size_t len)
{
	unsigned char b[17];
	put_le64(b, index);
	put_le64(b + 8, term);
	b[16] = type;
	return kv_crc32c(kv_crc32c(0, b, sizeof(b)), data, len);
}

/* Parse an unsigned decimal at *p (no sign, no leading zeros, no
 * overflow); advances *p. */
static bool scan_u64(const unsigned char **p, const unsigned char *end,
		     uint64_t *out)
{
	const unsigned char *s = *p;
	uint64_t v = 0;
	if (s >= end || *s < '0' || *s > '9')
		return false;
	if (*s == '0' && s + 1 < end && s[1] >= '0' && s[1] <= '9')
		return false;
	while (s < end && *s >= '0' && *s <= '9') {
		unsigned d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
		s++;
	}
	*p = s;
	*out = v;
	return true;
}

static bool scan_lit(const unsigned char **p, const unsigned char *end,
		     const char *lit)
{
	size_t n = strlen(lit);
	if ((size_t)(end - *p) < n || memcmp(*p, lit, n) != 0)
		return false;
	*p += n;
	return true;
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static bool all_zero(const unsigned char *p, size_t n)
{
	while (n && ((uintptr_t)p & 7)) {
		if (*p++)
			return false;
		n--;
	}
	for (; n >= 8; n -= 8, p += 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		if (w)
			return false;
	}
	while (n--)
		if (*p++)
			return false;
	return true;
}

static void set_err(char **errmsg, const char *dir, const char *name,
		    size_t off, const char *why)
{
	if (!errmsg)
		return;
	free(*errmsg);
	if (asprintf(errmsg, "%s/%s: offset %zu: %s", dir, name, off, why) < 0)
		*errmsg = NULL;
}

/* ---- line formats ---- */

struct line {
	uint64_t index, term;
	uint8_t type;
	const char *data;
	size_t len;
};

/* Parse one entry line p[0..n) (without its '\n') and check its CRC.
 * Returns NULL or why it is bad. */
static const char *parse_line(const unsigned char *p, size_t n,
			      struct line *out)
{
	const unsigned char *end = p + n;
	uint64_t type;
	uint32_t crc = 0;
	if (!scan_lit(&p, end, "{\"i\":") || !scan_u64(&p, end, &out->index) ||
	    !scan_lit(&p, end, ",\"t\":") || !scan_u64(&p, end, &out->term) ||
	    !scan_lit(&p, end, ",\"y\":") || !scan_u64(&p, end, &type) ||
	    type > 255 || !scan_lit(&p, end, ",\"crc\":\""))
		return "unparsable entry";
	if (end - p < 8)
		return "unparsable entry";
	for (int i = 0; i < 8; i++) {
		int h = hexval(*p++);
		if (h < 0)
			return "unparsable entry";
		crc = crc << 4 | (uint32_t)h;
	}
	if (!scan_lit(&p, end, "\",\"c\":") || end - p < 2 || end[-1] != '}')
		return "unparsable entry";
	out->type = (uint8_t)type;
	out->data = (const char *)p;
	out->len = (size_t)(end - 1 - p);
	if (out->len == 4 && memcmp(out->data, "null", 4) == 0)
		out->len = 0;
	if (entry_crc(out->index, out->term, out->type, out->data, out->len) !=
	    crc)
		return "entry checksum mismatch";
	return NULL;
}

static int format_header(char *buf, size_t n, uint64_t first,
			 uint64_t prev_term)
{
	return snprintf(buf, n,
			"{\"kvfs\":\"log\",\"version\":%d,\"first\":%" PRIu64
			",\"prev_term\":%" PRIu64 "}\n",
			LOG_VERSION, first, prev_term);
}

/* Parse the header line p[0..n) (without '\n'). 0, KV_EVERSION or
 * KV_ECORRUPT. */
static int parse_header(const unsigned char *p, size_t n, uint64_t *first,
			uint64_t *prev_term)
{
	const unsigned char *end = p + n;
	uint64_t version;
	if (!scan_lit(&p, end, "{\"kvfs\":\"log\",\"version\":") ||
	    !scan_u64(&p, end, &version))
		return KV_ECORRUPT;
	if (version != LOG_VERSION)
		return KV_EVERSION;
	if (!scan_lit(&p, end, ",\"first\":") || !scan_u64(&p, end, first) ||
	    !scan_lit(&p, end, ",\"prev_term\":") ||
	    !scan_u64(&p, end, prev_term) || !scan_lit(&p, end, "}") ||
	    p != end || *first == 0)
		return KV_ECORRUPT;
	return 0;
}

/* ---- segments ---- */

static void seg_free(struct seg *s)
{
	if (!s)
		return;
	if (s->map)
		munmap(s->map, s->map_len);
	if (s->fd >= 0)
		close(s->fd);
	free(s->off);
	free(s->terms);
	free(s);
}

static int seg_reserve(struct seg *s, uint64_t n)
{
	if (s->count + n <= s->cap)
		return 0;
	uint64_t cap = s->cap ? s->cap * 2 : 1024;
	while (cap < s->count + n)
		cap *= 2;
	size_t *off = realloc(s->off, cap * sizeof(*off));
	if (!off)
		return -ENOMEM;
	s->off = off;
	uint64_t *terms = realloc(s->terms, cap * sizeof(*terms));
	if (!terms)
		return -ENOMEM;
	s->terms = terms;
	s->cap = cap;
	return 0;
}

static int seg_push(struct seg *s, size_t off, uint64_t term)
{
	int ret = seg_reserve(s, 1);
	if (ret)
		return ret;
	s->off[s->count] = off;
	s->terms[s->count] = term;
	s->count++;
	return 0;
}

/* Room for one more segment, so that adding one cannot fail later. */
static int segs_reserve(struct log *log)
{
	if (log->nsegs < log->capsegs)
		return 0;
	size_t cap = log->capsegs ? log->capsegs * 2 : 8;
	struct seg **a = realloc(log->segs, cap * sizeof(*a));
	if (!a)
		return -ENOMEM;
	log->segs = a;
	log->capsegs = cap;
	return 0;
}

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
	int hlen = format_header(hdr, sizeof(hdr), first, prev_term);
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

/* ---- recovery ---- */

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

/* Open and map an existing segment file (no parsing yet). */
static int seg_load(struct log *log, const char *name, struct seg **out)
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

/* Replay segment s, whose first index must be *expect (unless it is the
 * first segment, *expect == 0). Returns 0, 1 if s is a torn new segment to
 * drop (last segment only), KV_ECORRUPT/KV_EVERSION with *errmsg, -errno. */
static int seg_replay(struct log *log, struct seg *s, bool is_last,
		      uint64_t *expect, uint64_t expect_prev_term,
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
	int ret =
	    nl ? parse_header(m, (size_t)(nl - m), &s->first, &s->prev_term)
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
		if (is_last && all_zero(m + z, n - z))
			return 1;
		set_err(errmsg, log->dir, s->name, 0, "bad segment header");
		return KV_ECORRUPT;
	}
	char want[SEG_NAME_LEN + 1];
	snprintf(want, sizeof(want), "log-%020" PRIu64 ".jsonl", s->first);
	if (strcmp(want, s->name) != 0) {
		set_err(errmsg, log->dir, s->name, 0,
			"header's first index does not match the file name");
		return KV_ECORRUPT;
	}
	if (*expect && s->first != *expect) {
		set_err(errmsg, log->dir, s->name, 0,
			s->first > *expect
			    ? "gap in indexes before this segment"
			    : "segment overlaps the previous one");
		return KV_ECORRUPT;
	}
	if (*expect && s->prev_term != expect_prev_term) {
		set_err(errmsg, log->dir, s->name, 0,
			"header's prev_term differs from the previous entry");
		return KV_ECORRUPT;
	}
	uint64_t next = s->first;
	size_t pos = (size_t)(nl - m) + 1;
	while (pos < n && m[pos]) {
		const unsigned char *p = m + pos;
		const unsigned char *e = memchr(p, '\n', n - pos);
		const unsigned char *z =
		    memchr(p, 0, e ? (size_t)(e - p) : n - pos);
		const char *why = "incomplete line";
		struct line ln;
		if (!z && e) {
			why = parse_line(p, (size_t)(e - p), &ln);
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
			if (!is_last || !all_zero(m + tail, n - tail)) {
				set_err(errmsg, log->dir, s->name, pos, why);
				return KV_ECORRUPT;
			}
			/* a torn last line: cut it off */
			ret = seg_cut(s, pos, tail);
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
	if (!all_zero(m + pos, n - pos)) {
		set_err(errmsg, log->dir, s->name, pos,
			"data after a zero-filled gap");
		return KV_ECORRUPT;
	}
	*expect = next;
	return 0;
}

static int log_replay(struct log *log, char **errmsg)
{
	DIR *d = fdopendir(dup(log->dirfd));
	if (!d)
		return -errno;
	char **names = NULL;
	size_t nn = 0, cap = 0;
	int ret = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!is_seg_name(de->d_name))
			continue;
		if (nn == cap) {
			cap = cap ? cap * 2 : 16;
			char **a = realloc(names, cap * sizeof(*a));
			if (!a) {
				ret = -ENOMEM;
				goto out_names;
			}
			names = a;
		}
		names[nn] = strdup(de->d_name);
		if (!names[nn]) {
			ret = -ENOMEM;
			goto out_names;
		}
		nn++;
	}
	if (nn)
		qsort(names, nn, sizeof(*names), cmp_names);
	uint64_t expect = 0, prev_term = 0;
	for (size_t i = 0; i < nn; i++) {
		struct seg *s = NULL;
		ret = seg_load(log, names[i], &s);
		if (ret)
			goto out_names;
		ret =
		    seg_replay(log, s, i + 1 == nn, &expect, prev_term, errmsg);
		if (ret == 1) {
			/* torn new segment: nothing in it was ever synced */
			unlinkat(log->dirfd, s->name, 0);
			seg_free(s);
			if (fsync(log->dirfd) < 0) {
				ret = -errno;
				goto out_names;
			}
			ret = 0;
			break;
		}
		if (ret == 0)
			ret = segs_reserve(log);
		if (ret) {
			seg_free(s);
			goto out_names;
		}
		log->segs[log->nsegs++] = s;
		prev_term = s->count ? s->terms[s->count - 1] : s->prev_term;
	}
	if (log->nsegs) {
		struct seg *s0 = log->segs[0];
		struct seg *sl = log->segs[log->nsegs - 1];
		log->first = s0->first;
		log->prev_term = s0->prev_term;
		log->last = sl->first + sl->count - 1;
		/* If the file came to us sparse (copied), writing into holes
		 * could fault on a full disk: reserve, or append elsewhere. */
		if (posix_fallocate(sl->fd, 0, (off_t)sl->map_len) != 0)
			sl->limit = sl->used;
	}
out_names:
	for (size_t i = 0; i < nn; i++)
		free(names[i]);
	free(names);
	closedir(d);
	return ret;
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
	return s ? s->terms[index - s->first] : 0;
}

uint64_t log_bytes(const struct log *log)
{
	/* entries first..last only: compaction must make this shrink even
	 * while the last segment keeps covered entries */
	uint64_t n = 0;
	for (size_t i = 0; i < log->nsegs; i++) {
		const struct seg *s = log->segs[i];
		if (!s->count || s->first + s->count - 1 < log->first)
			continue;
		size_t from = log->first > s->first
				  ? s->off[log->first - s->first]
				  : s->off[0];
		n += s->used - from;
	}
	return n;
}

uint64_t log_room(const struct log *log)
{
	if (!log->nsegs)
		return 0;
	const struct seg *s = log->segs[log->nsegs - 1];
	return s->limit - s->used;
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
	s->count = k;
	s->dirty = true;
	log->last = index - 1;
	/* Invariant 4: the cut is on disk before anything written after it
	 * can be (docs/log-format.md). */
	if (fdatasync(s->fd) < 0)
		return -errno;
	if (deleted && fsync(log->dirfd) < 0)
		return -errno;
	return 0;
}

int log_append(struct log *log, const struct log_entry *e)
{
	if (e->index < log->first || e->index > log->last + 1 ||
	    e->term < log_term_at(log, e->index - 1) || (e->len && !e->data))
		return -EINVAL;
	if (e->len &&
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
	int plen =
	    snprintf(pre, sizeof(pre),
		     "{\"i\":%" PRIu64 ",\"t\":%" PRIu64
		     ",\"y\":%u,\"crc\":\"%08" PRIx32 "\",\"c\":",
		     e->index, e->term, (unsigned)e->type,
		     entry_crc(e->index, e->term, e->type, e->data, e->len));
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
	ret = seg_reserve(s, 1);
	if (ret)
		return ret;
	unsigned char *p = s->map + s->used;
	memcpy(p, pre, (size_t)plen);
	memcpy(p + plen, data, dlen);
	memcpy(p + plen + dlen, "}\n", 2);
	s->off[s->count] = s->used;
	s->terms[s->count] = e->term;
	s->count++;
	s->used += need;
	s->dirty = true;
	log->last = e->index;
	return 0;
}

int log_get(struct log *log, uint64_t index, struct log_entry *out)
{
	if (index < log->first || index > log->last)
		return -ENOENT;
	struct seg *s = seg_find(log, index);
	if (!s)
		return -ENOENT;
	uint64_t k = index - s->first;
	size_t start = s->off[k];
	size_t end = (k + 1 < s->count ? s->off[k + 1] : s->used) - 1;
	struct line ln;
	if (parse_line(s->map + start, end - start, &ln) || ln.index != index)
		return KV_ECORRUPT;
	out->index = ln.index;
	out->term = ln.term;
	out->type = ln.type;
	out->data = ln.data;
	out->len = ln.len;
	return 0;
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
	log->prev_term = term;
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
