/* log_mem.c - the core's in-memory copy of the log.
 *
 * The core keeps every entry after the last snapshot (compaction point) in
 * one array, so the leader can send without reading the disk (the node
 * persists what u.entries hands out). Entry i lives at ents[i - snap_index
 * - 1]; compaction moves the tail down. Entries own their data. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "log_mem.h"

void mlog_init(struct raft_log *l, uint64_t snap_index, uint64_t snap_term)
{
	memset(l, 0, sizeof(*l));
	l->snap_index = snap_index;
	l->snap_term = snap_term;
}

void mlog_entries_free(struct raft_entry *ents, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(ents[i].data);
	free(ents);
}

void mlog_close(struct raft_log *l)
{
	mlog_entries_free(l->ents, l->n);
	l->ents = NULL;
	l->n = l->cap = 0;
}

uint64_t mlog_last_index(const struct raft_log *l)
{
	return l->snap_index + l->n;
}

uint64_t mlog_last_term(const struct raft_log *l)
{
	return l->n ? l->ents[l->n - 1].term : l->snap_term;
}

uint64_t mlog_term(const struct raft_log *l, uint64_t index)
{
	if (index == l->snap_index)
		return l->snap_term;
	if (index < l->snap_index || index > mlog_last_index(l))
		return 0;
	return l->ents[index - l->snap_index - 1].term;
}

const struct raft_entry *mlog_get(const struct raft_log *l, uint64_t index)
{
	if (index <= l->snap_index || index > mlog_last_index(l))
		return NULL;
	return &l->ents[index - l->snap_index - 1];
}

static int entry_copy(struct raft_entry *dst, const struct raft_entry *src)
{
	*dst = *src;
	dst->data = NULL;
	if (src->len) {
		dst->data = malloc(src->len);
		if (!dst->data)
			return -ENOMEM;
		memcpy(dst->data, src->data, src->len);
	}
	return 0;
}

int mlog_append(struct raft_log *l, const struct raft_entry *e)
{
	assert(e->index == mlog_last_index(l) + 1);
	assert(e->term >= mlog_last_term(l));
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct raft_entry *p = realloc(l->ents, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		l->ents = p;
		l->cap = cap;
	}
	int rc = entry_copy(&l->ents[l->n], e);
	if (rc)
		return rc;
	l->n++;
	return 0;
}

void mlog_truncate(struct raft_log *l, uint64_t index)
{
	assert(index > l->snap_index);
	while (mlog_last_index(l) >= index) {
		l->n--;
		free(l->ents[l->n].data);
	}
}

void mlog_compact(struct raft_log *l, uint64_t index)
{
	assert(index > l->snap_index && index <= mlog_last_index(l));
	size_t drop = index - l->snap_index;
	uint64_t term = mlog_term(l, index);
	for (size_t i = 0; i < drop; i++)
		free(l->ents[i].data);
	memmove(l->ents, l->ents + drop, (l->n - drop) * sizeof(*l->ents));
	l->n -= drop;
	l->snap_index = index;
	l->snap_term = term;
}

void mlog_reset(struct raft_log *l, uint64_t index, uint64_t term)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->ents[i].data);
	l->n = 0;
	l->snap_index = index;
	l->snap_term = term;
}

int mlog_view(const struct raft_log *l, uint64_t lo, uint64_t hi,
	      struct raft_entry **out)
{
	*out = NULL;
	if (hi < lo)
		return 0;
	assert(lo > l->snap_index && hi <= mlog_last_index(l));
	size_t n = hi - lo + 1;
	struct raft_entry *v = malloc(n * sizeof(*v));
	if (!v)
		return -ENOMEM;
	memcpy(v, mlog_get(l, lo), n * sizeof(*v));
	*out = v;
	return 0;
}

int mlog_copy(const struct raft_log *l, uint64_t lo, uint64_t hi,
	      struct raft_entry **out)
{
	*out = NULL;
	if (hi < lo)
		return 0;
	assert(lo > l->snap_index && hi <= mlog_last_index(l));
	size_t n = hi - lo + 1;
	struct raft_entry *v = calloc(n, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (entry_copy(&v[i], mlog_get(l, lo + i))) {
			mlog_entries_free(v, i);
			return -ENOMEM;
		}
	}
	*out = v;
	return 0;
}

uint64_t mlog_find_conflict_by_term(const struct raft_log *l, uint64_t index,
				    uint64_t term)
{
	if (index > mlog_last_index(l))
		index = mlog_last_index(l);
	while (index > l->snap_index) {
		if (mlog_term(l, index) <= term)
			return index;
		index--;
	}
	return index;
}
