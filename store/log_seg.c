/* log_seg.c - the log's table of segments in memory: each segment's
 * entry offsets (32 bits: LOG_MAX_SEGMENT) and its terms as runs (4 bytes
 * an entry in all), the array of segments, the byte count.
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
	free(s->runs);
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

int seg_reserve(struct seg *s)
{
	if (s->nruns == s->capruns) { /* the entry may start a run */
		size_t cap = s->capruns ? s->capruns * 2 : 4;
		struct seg_run *r = realloc(s->runs, cap * sizeof(*r));
		if (!r)
			return -ENOMEM;
		s->runs = r;
		s->capruns = cap;
	}
	if (s->count < s->cap)
		return 0;
	uint64_t cap = s->cap ? s->cap * 2 : 1024;
	uint32_t *off = realloc(s->off, cap * sizeof(*off));
	if (!off)
		return -ENOMEM;
	s->off = off;
	s->cap = cap;
	return 0;
}

void seg_set(struct seg *s, size_t off, uint64_t term)
{
	s->off[s->count] = (uint32_t)off; /* < 4 GiB: LOG_MAX_SEGMENT */
	if (s->nruns == 0 || s->runs[s->nruns - 1].term != term)
		s->runs[s->nruns++] = (struct seg_run){s->count, term};
	s->count++;
}

int seg_push(struct seg *s, size_t off, uint64_t term)
{
	int ret = seg_reserve(s);
	if (ret)
		return ret;
	seg_set(s, off, term);
	return 0;
}

uint64_t seg_term(const struct seg *s, uint64_t k)
{
	/* the last run starting at or before k; runs[0].k is 0 */
	size_t lo = 0, hi = s->nruns;
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (s->runs[mid].k <= k)
			lo = mid;
		else
			hi = mid;
	}
	return s->nruns ? s->runs[lo].term : 0;
}

void seg_cut_to(struct seg *s, uint64_t k)
{
	s->count = k;
	while (s->nruns && s->runs[s->nruns - 1].k >= k)
		s->nruns--;
}

void seg_fit(struct seg *s)
{
	if (s->count == 0 || s->count == s->cap)
		return;
	uint32_t *off = realloc(s->off, s->count * sizeof(*off));
	if (off) { /* else it keeps its room: only memory */
		s->off = off;
		s->cap = s->count;
	}
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
