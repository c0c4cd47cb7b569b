/* log_mem.c - the core's in-memory copy of the log.
 *
 * The core keeps the entries after its compaction point in one array
 * (the caller compacts it to a bounded trail: mlog_trail_cut), so the leader
 * can send without reading the disk (the node persists what u.entries hands
 * out). Entry i lives at ents[i - snap_index
 * - 1]; compaction moves the tail down. Entries hold their data shared
 * (raft.h, struct raft_entry): an entry given shared is kept by a new
 * reference, a plain one is copied once into a buffer of its own, and the
 * appends the leader sends take references (mlog_share), not copies. The
 * count is atomic because the holders of a reference (a peer's sender,
 * the node's outbox) drop it on their own threads; the data itself is
 * never written once shared. */
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

/* A shared buffer: the count, then the data, in one allocation when the
 * core copied the bytes (data == the bytes after the header) or adopted
 * from the caller (data is its malloc'd pointer). */
struct raft_buf {
	size_t refs;
	void *data;
	uint64_t note; /* raft_entry_set_note's; the core never reads it */
	/* a foreign buffer (raft_buf_foreign): the bytes are the caller's,
	 * given back with release(ctx) when the last reference goes */
	void (*release)(void *ctx);
	void *ctx;
};

static void *inline_bytes(struct raft_buf *b)
{
	return b + 1;
}

static void buf_unref(struct raft_buf *b)
{
	if (__atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	if (b->release)
		b->release(b->ctx);
	else if (b->data != inline_bytes(b))
		free(b->data);
	free(b);
}

int raft_entry_share(struct raft_entry *e)
{
	if (e->buf || !e->data)
		return 0;
	struct raft_buf *b = malloc(sizeof(*b));
	if (!b)
		return RAFT_ENOMEM;
	b->refs = 1;
	b->data = e->data;
	b->note = 0;
	b->release = NULL;
	b->ctx = NULL;
	e->buf = b;
	return 0;
}

struct raft_buf *raft_buf_foreign(size_t refs, void (*release)(void *ctx),
				  void *ctx)
{
	struct raft_buf *b = malloc(sizeof(*b));
	if (!b)
		return NULL;
	b->refs = refs;
	b->data = NULL;
	b->note = 0;
	b->release = release;
	b->ctx = ctx;
	return b;
}

void raft_buf_unref(struct raft_buf *b)
{
	if (b)
		buf_unref(b);
}

/* A foreign buffer holds many entries' bytes: it takes no note. */
void raft_entry_set_note(struct raft_entry *e, uint64_t note)
{
	if (e->buf && !e->buf->release)
		e->buf->note = note;
}

uint64_t raft_entry_note(const struct raft_entry *e)
{
	return e->buf && !e->buf->release ? e->buf->note : 0;
}

void raft_entry_release(struct raft_entry *e)
{
	if (e->buf)
		buf_unref(e->buf);
	else
		free(e->data);
	e->data = NULL;
	e->buf = NULL;
	e->len = 0;
}

int raft_entry_dup(struct raft_entry *dst, const struct raft_entry *src)
{
	*dst = *src;
	if (src->buf) {
		__atomic_add_fetch(&src->buf->refs, 1, __ATOMIC_RELAXED);
		return 0;
	}
	dst->data = NULL;
	if (src->len) {
		dst->data = malloc(src->len);
		if (!dst->data) {
			memset(dst, 0, sizeof(*dst));
			return RAFT_ENOMEM;
		}
		memcpy(dst->data, src->data, src->len);
	}
	return 0;
}

/* *dst = *src, shared: a new reference to src's buffer, or src's bytes
 * copied once into a new buffer (no data: none). 0 or -ENOMEM. */
static int entry_share_copy(struct raft_entry *dst,
			    const struct raft_entry *src)
{
	if (src->buf || !src->len)
		return raft_entry_dup(dst, src) ? -ENOMEM : 0;
	struct raft_buf *b = malloc(sizeof(*b) + src->len);
	if (!b)
		return -ENOMEM;
	b->refs = 1;
	b->note = 0;
	b->release = NULL;
	b->ctx = NULL;
	b->data = inline_bytes(b);
	memcpy(b->data, src->data, src->len);
	*dst = *src;
	dst->data = b->data;
	dst->buf = b;
	return 0;
}

void mlog_entries_free(struct raft_entry *ents, size_t n)
{
	for (size_t i = 0; i < n; i++)
		raft_entry_release(&ents[i]);
	free(ents);
}

void mlog_close(struct raft_log *l)
{
	mlog_entries_free(l->ents, l->n);
	l->ents = NULL;
	l->n = l->cap = 0;
	l->bytes = 0;
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

/* A plain copy of src (data copied, not shared). 0 or -ENOMEM. */
static int entry_copy(struct raft_entry *dst, const struct raft_entry *src)
{
	*dst = *src;
	dst->data = NULL;
	dst->buf = NULL;
	if (src->len) {
		dst->data = malloc(src->len);
		if (!dst->data)
			return -ENOMEM;
		memcpy(dst->data, src->data, src->len);
	}
	return 0;
}

int mlog_own(struct raft_log *l, const struct raft_buf *b)
{
	for (size_t i = 0; i < l->n; i++) {
		struct raft_entry *e = &l->ents[i];
		if (e->buf != b)
			continue;
		struct raft_entry plain = *e, own;
		plain.buf = NULL;
		if (entry_share_copy(&own, &plain))
			return -ENOMEM; /* the others stay shared: later */
		buf_unref(e->buf);
		*e = own;
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
	int rc = entry_share_copy(&l->ents[l->n], e);
	if (rc)
		return rc;
	l->bytes += e->len;
	l->n++;
	return 0;
}

void mlog_truncate(struct raft_log *l, uint64_t index)
{
	assert(index > l->snap_index);
	while (mlog_last_index(l) >= index) {
		l->n--;
		l->bytes -= l->ents[l->n].len;
		raft_entry_release(&l->ents[l->n]);
	}
}

void mlog_compact(struct raft_log *l, uint64_t index)
{
	assert(index > l->snap_index && index <= mlog_last_index(l));
	size_t drop = index - l->snap_index;
	uint64_t term = mlog_term(l, index);
	for (size_t i = 0; i < drop; i++) {
		l->bytes -= l->ents[i].len;
		raft_entry_release(&l->ents[i]);
	}
	memmove(l->ents, l->ents + drop, (l->n - drop) * sizeof(*l->ents));
	l->n -= drop;
	l->snap_index = index;
	l->snap_term = term;
	/* a log that held a restart's whole replay keeps no array for it */
	if (l->cap > 1024 && l->n < l->cap / 4) {
		size_t cap = l->n * 2 > 64 ? l->n * 2 : 64;
		struct raft_entry *p = realloc(l->ents, cap * sizeof(*p));
		if (p) {
			l->ents = p;
			l->cap = cap;
		}
	}
}

uint64_t mlog_trail_cut(const struct raft_log *l, uint64_t limit,
			uint64_t keep_entries, uint64_t keep_bytes,
			uint64_t *drop)
{
	if (limit > mlog_last_index(l))
		limit = mlog_last_index(l);
	uint64_t c = l->snap_index, bytes = l->bytes;
	while (c < limit && (limit - c > keep_entries || bytes > keep_bytes)) {
		c++;
		bytes -= l->ents[c - l->snap_index - 1].len;
	}
	*drop = l->bytes - bytes;
	return c;
}

void mlog_reset(struct raft_log *l, uint64_t index, uint64_t term)
{
	for (size_t i = 0; i < l->n; i++)
		raft_entry_release(&l->ents[i]);
	l->n = 0;
	l->bytes = 0;
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

int mlog_share(const struct raft_log *l, uint64_t lo, uint64_t hi,
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
		if (entry_share_copy(&v[i], mlog_get(l, lo + i))) {
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
