/* log_seg.c - the log's table of segments in memory: each segment's
 * entry offsets and terms, the array of segments, the byte count.
 *
 * Both log.c (appending, truncating, compacting) and log_replay.c
 * (reading a log back at open) build these tables; this file is the part
 * they share, below both of them. */
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "log_int.h"

void seg_free(struct seg *s)
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

void seg_release(struct seg *s, size_t upto, size_t page)
{
	upto = upto / page * page;
	if (upto <= s->released)
		return;
	/* Advice only: on failure the pages just stay resident. */
	(void)madvise(s->map + s->released, upto - s->released, MADV_DONTNEED);
	s->released = upto;
}

void seg_release_tail(struct seg *s, size_t page)
{
	size_t from = (s->used + page - 1) / page * page;
	if (from < s->map_len)
		(void)madvise(s->map + from, s->map_len - from, MADV_DONTNEED);
}

int seg_reserve(struct seg *s, uint64_t n)
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

int seg_push(struct seg *s, size_t off, uint64_t term)
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
int segs_reserve(struct log *log)
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

uint64_t log_bytes_scan(const struct log *log)
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
