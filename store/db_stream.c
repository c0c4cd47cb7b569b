/* db_stream.c - a db's record lines read on two threads while the
 * loader's thread puts the records in the map (db_int.h).
 *
 * Reading a line (the JSON check, the fields, the record's allocation)
 * costs about one and a half times what adding its record costs (the
 * tree, the index, the counts), so the lines from the cursor on are cut
 * in two at a newline and each half is read on a thread of its own; the
 * adder takes the first half's records, then the second's, in file
 * order, so the map, the errors and their offsets are what the one-thread
 * loop gives. A reader hands over batches of records on a list with no
 * bound: the second half's records wait there until the adder gets to
 * them (they are the map's records, so only the lists' 16 bytes a record
 * are extra, mapped and unmapped batch by batch, and only while the load
 * runs).
 *
 * A reader takes every record line it can make a record of, in place
 * (db_read.c) or through the loader's own reader (the slow function, for
 * a record with attributes), and stops at the first other line (a table
 * line, a damaged one, the trailer), or at the end of its half. If the
 * first half stops before its end, the second half's work is dropped and
 * db.c's loop goes on from that line. Each reader checksums its own
 * lines; the checksums are joined with kv_crc32c_combine. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "codec.h"
#include "db_int.h"
#include "db_read.h"

#define BATCH	     8192 /* records a hand-over (128 KiB, mapped) */
#define READERS	     2	  /* threads reading lines (the machine's cores) */
#define SPLIT_MIN    (256u << 10) /* bytes worth a second reader */
#define LOAD_RELEASE (16u << 20)

struct item {
	struct kv_rec *rec;
	size_t off;
};

struct batch {
	struct batch *next;
	size_t n;
	struct item v[BATCH];
};

struct stream;

/* One half: the lines that start in [start, end). */
struct reader {
	struct stream *s;
	size_t start, end;
	struct db_cursor cur;	    /* crc and seen of this half's lines only */
	struct batch *head, **tail; /* handed over, not taken */
	bool done;		    /* finished: cur and err are final */
	int err;
	bool started;
	pthread_t t;
};

struct stream {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	bool stop; /* the adder failed or is done: readers stop */
	const char *base;
	size_t size;
	uint64_t version;
	const struct db_stream_ops *ops;
	struct reader r[READERS];
	size_t nr;
};

void db_release_behind(const char *base, size_t off, size_t *done)
{
	size_t upto = off / LOAD_RELEASE * LOAD_RELEASE;
	if (upto > *done) {
		(void)madvise((char *)base + *done, upto - *done,
			      MADV_DONTNEED);
		*done = upto;
	}
}

/* The record of the line p[0..len) at r's cursor: 1 and *rec, 0 if the
 * line is not one the stream takes, or an error. */
static int read_line(struct reader *r, struct db_scratch *sc, const char *p,
		     size_t len, struct kv_rec **rec)
{
	struct stream *s = r->s;
	if (len <= 5 || memcmp(p, "{\"k\":", 5) != 0)
		return 0;
	int ret = db_read_rec(p, len, s->version, sc, rec);
	if (ret == 0 && s->ops->slow != NULL)
		ret = s->ops->slow(s->ops->ctx, p, len, rec);
	return ret;
}

/* Fill b with r's next lines; false once r is finished (r->err set on
 * an error). */
static bool fill(struct reader *r, struct db_scratch *sc, struct batch *b)
{
	struct db_cursor *c = &r->cur;
	const char *base = r->s->base;

	b->n = 0;
	while (b->n < BATCH) {
		if (c->off >= r->end)
			return false;
		const char *line = base + c->off;
		const char *nl = memchr(line, '\n', r->s->size - c->off);
		struct kv_rec *rec;
		if (nl == NULL)
			return false;
		size_t len = (size_t)(nl - line);
		int ret = read_line(r, sc, line, len, &rec);
		if (ret <= 0) {
			r->err = ret;
			return false;
		}
		b->v[b->n++] = (struct item){rec, c->off};
		c->crc = kv_crc32c(c->crc, line, len + 1);
		c->off += len + 1;
		c->seen++;
		db_release_behind(base, c->off, &c->released);
	}
	return true;
}

/* A batch is mapped, not malloc'd: made on a reader's thread and
 * released on the loader's, a malloc'd one went back to the reader's
 * heap, between the records it had made since, and the second half's
 * (released only after that reader was done) stayed there as 8 MiB of
 * holes at 1M keys. */
static struct batch *batch_new(void)
{
	void *p = mmap(NULL, sizeof(struct batch), PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	struct stream *s = r->s;
	struct db_scratch sc = {0};

	pthread_setname_np(pthread_self(), "kvfs-dbload");
	for (bool more = true; more;) {
		struct batch *b = batch_new();
		if (b == NULL) {
			r->err = -ENOMEM;
			more = false;
		} else {
			more = fill(r, &sc, b);
		}
		pthread_mutex_lock(&s->mu);
		if (b != NULL) {
			b->next = NULL;
			*r->tail = b;
			r->tail = &b->next;
		}
		more = more && !s->stop;
		r->done = !more;
		pthread_cond_broadcast(&s->cond);
		pthread_mutex_unlock(&s->mu);
	}
	db_scratch_free(&sc);
	return NULL;
}

/* r's next batch, NULL once r is finished and all are taken. */
static struct batch *next_batch(struct stream *s, struct reader *r)
{
	pthread_mutex_lock(&s->mu);
	while (r->head == NULL && !r->done)
		pthread_cond_wait(&s->cond, &s->mu);
	struct batch *b = r->head;
	if (b != NULL) {
		r->head = b->next;
		if (r->head == NULL)
			r->tail = &r->head;
	}
	pthread_mutex_unlock(&s->mu);
	return b;
}

static void free_batch(struct batch *b, size_t from)
{
	for (size_t i = from; i < b->n; i++)
		kv_rec_unref(b->v[i].rec);
	munmap(b, sizeof(*b));
}

/* Cut [cur->off, size) in up to READERS halves at newlines. */
static void split(struct stream *s, const struct db_cursor *cur)
{
	size_t at = cur->off, mid = at + (s->size - at) / 2;
	const char *nl = NULL;

	if (s->size - at >= SPLIT_MIN && READERS > 1)
		nl = memchr(s->base + mid, '\n', s->size - mid);
	s->nr = 0;
	if (nl != NULL && (size_t)(nl + 1 - s->base) < s->size) {
		size_t cut = (size_t)(nl + 1 - s->base);
		s->r[s->nr++] = (struct reader){.start = at, .end = cut};
		at = cut;
	}
	s->r[s->nr++] = (struct reader){.start = at, .end = s->size};
	for (size_t i = 0; i < s->nr; i++) {
		struct reader *r = &s->r[i];
		r->s = s;
		r->tail = &r->head;
		r->cur.off = r->start;
		if (i == 0) {
			r->cur = *cur;
		} else {
			/* its pages from the next 16 MiB mark on */
			r->cur.released = (r->start + LOAD_RELEASE - 1) /
					  LOAD_RELEASE * LOAD_RELEASE;
		}
	}
}

/* Records a hint goes ahead of their add: the misses of that many
 * index buckets wait on memory together. */
#define HINT_AHEAD 8

/* Add every record of r in order; 0, or add's error. */
static int take_all(struct stream *s, struct reader *r)
{
	const struct db_stream_ops *ops = s->ops;
	struct batch *b;
	int err = 0;

	while (err == 0 && (b = next_batch(s, r)) != NULL) {
		size_t i = 0;
		for (size_t h = 0; ops->hint && h < HINT_AHEAD && h < b->n; h++)
			ops->hint(ops->ctx, b->v[h].rec);
		while (i < b->n && err == 0) {
			if (ops->hint && i + HINT_AHEAD < b->n)
				ops->hint(ops->ctx, b->v[i + HINT_AHEAD].rec);
			struct item *it = &b->v[i++];
			err = ops->add(ops->ctx, it->rec, it->off); /* takes */
		}
		free_batch(b, i);
	}
	return err;
}

/* Stop and join every reader, and drop what they read and was not
 * taken. */
static void stop_all(struct stream *s)
{
	pthread_mutex_lock(&s->mu);
	s->stop = true;
	pthread_mutex_unlock(&s->mu);
	for (size_t i = 0; i < s->nr; i++) {
		struct reader *r = &s->r[i];
		if (r->started)
			pthread_join(r->t, NULL);
		while (r->head != NULL) {
			struct batch *b = r->head;
			r->head = b->next;
			free_batch(b, 0);
		}
	}
}

int db_stream(const char *base, size_t size, uint64_t version,
	      struct db_cursor *cur, const struct db_stream_ops *ops)
{
	struct stream *s = calloc(1, sizeof(*s));
	struct db_cursor total = *cur;
	int err = 0;

	if (s == NULL)
		return 1;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cond, NULL);
	s->base = base;
	s->size = size;
	s->version = version;
	s->ops = ops;
	split(s, cur);
	for (size_t i = 0; i < s->nr; i++) {
		s->r[i].started = pthread_create(&s->r[i].t, NULL, reader_main,
						 &s->r[i]) == 0;
		if (!s->r[i].started) {
			/* no thread for this half: the halves before it
			 * still count, db.c's loop reads on from there */
			s->r[i].done = true;
			s->r[i].cur.off = s->r[i].start;
			if (i == 0)
				err = 1;
			s->nr = i + 1;
			break;
		}
	}
	for (size_t i = 0; err == 0 && i < s->nr; i++) {
		struct reader *r = &s->r[i];
		err = take_all(s, r);
		if (err != 0)
			break;
		/* r is done: its cursor and error are final */
		if (i == 0) {
			total = r->cur;
		} else {
			total.crc = kv_crc32c_combine(total.crc, r->cur.crc,
						      r->cur.off - r->start);
			total.seen += r->cur.seen;
			total.off = r->cur.off;
			total.released = r->cur.released;
		}
		err = r->err;
		if (r->cur.off != r->end)
			break; /* a line it does not take: db.c reads it */
	}
	stop_all(s);
	if (err == 0)
		*cur = total;
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cond);
	free(s);
	return err;
}
