/* db_stream.c - a db's record lines read on a second thread while the
 * loader's thread puts the records in the map (db_int.h).
 *
 * Reading a line (the JSON check, the fields, the record's allocation)
 * and adding its record (the tree, the index, the counts) cost about the
 * same at 1M keys, so the two overlap: the reader hands batches of
 * records over a small ring, in file order, and the adder takes them in
 * that order, so the map, the errors and their offsets are what the
 * one-thread loop gives. The reader takes only the lines db_read.c reads
 * in place, and stops at the first other (a table line, one with
 * attributes, a damaged one, the trailer): db.c's loop goes on from
 * there. The checksum runs over the lines the reader took. */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "codec.h"
#include "db_int.h"
#include "db_read.h"

#define BATCH  1024 /* records a hand-over */
#define NBATCH 4    /* hand-overs in flight */

struct item {
	struct kv_rec *rec;
	size_t off;
};

struct stream {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct {
		struct item v[BATCH];
		size_t n;
	} b[NBATCH];
	uint64_t filled, taken; /* batches handed over, and taken */
	bool done;		/* the reader is finished: its results */
	bool stop;		/* the adder failed: the reader stops */
	const char *base;
	size_t size;
	uint64_t version;
	struct db_cursor cur; /* the reader's, read back once done */
	int err;
};

#define LOAD_RELEASE (16u << 20)
void db_release_behind(const char *base, size_t off, size_t *done)
{
	size_t upto = off / LOAD_RELEASE * LOAD_RELEASE;
	if (upto > *done) {
		(void)madvise((char *)base + *done, upto - *done,
			      MADV_DONTNEED);
		*done = upto;
	}
}

/* Wait for room in the ring; false if the adder stopped. */
static bool room(struct stream *s)
{
	pthread_mutex_lock(&s->mu);
	while (s->filled - s->taken == NBATCH && !s->stop)
		pthread_cond_wait(&s->cond, &s->mu);
	bool ok = !s->stop;
	pthread_mutex_unlock(&s->mu);
	return ok;
}

/* Fill the batch at n with the next lines; false at the first line not
 * taken (or an error in s->err). */
static bool fill(struct stream *s, struct db_scratch *sc, size_t n)
{
	struct db_cursor *c = &s->cur;

	s->b[n].n = 0;
	while (s->b[n].n < BATCH) {
		const char *line = s->base + c->off;
		const char *nl = c->off < s->size
				     ? memchr(line, '\n', s->size - c->off)
				     : NULL;
		struct kv_rec *rec;
		if (nl == NULL)
			return false;
		size_t len = (size_t)(nl - line);
		if (len <= 5 || memcmp(line, "{\"k\":", 5) != 0)
			return false;
		int r = db_read_rec(line, len, s->version, sc, &rec);
		if (r <= 0) {
			s->err = r;
			return false;
		}
		s->b[n].v[s->b[n].n++] = (struct item){rec, c->off};
		c->crc = kv_crc32c(c->crc, line, len + 1);
		c->off += len + 1;
		c->seen++;
		db_release_behind(s->base, c->off, &c->released);
	}
	return true;
}

static void *reader_main(void *arg)
{
	struct stream *s = arg;
	struct db_scratch sc = {0};

	pthread_setname_np(pthread_self(), "kvfs-dbload");
	for (bool more = true; more && room(s);) {
		more = fill(s, &sc, s->filled % NBATCH);
		pthread_mutex_lock(&s->mu);
		s->filled++;
		s->done = !more;
		pthread_cond_broadcast(&s->cond);
		pthread_mutex_unlock(&s->mu);
	}
	db_scratch_free(&sc);
	return NULL;
}

/* The next batch (false once the reader is done and all are taken). */
static bool next_batch(struct stream *s)
{
	pthread_mutex_lock(&s->mu);
	while (s->taken == s->filled && !s->done)
		pthread_cond_wait(&s->cond, &s->mu);
	bool any = s->taken < s->filled;
	pthread_mutex_unlock(&s->mu);
	return any;
}

int db_stream(const char *base, size_t size, uint64_t version,
	      struct db_cursor *cur, db_add_fn add, void *ctx)
{
	struct stream *s = calloc(1, sizeof(*s));
	pthread_t t;
	int err = 0;

	if (s == NULL)
		return 1;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cond, NULL);
	s->base = base;
	s->size = size;
	s->version = version;
	s->cur = *cur;
	if (pthread_create(&t, NULL, reader_main, s) != 0) {
		pthread_mutex_destroy(&s->mu);
		pthread_cond_destroy(&s->cond);
		free(s);
		return 1; /* the caller reads on its own */
	}
	while (err == 0 && next_batch(s)) {
		size_t n = s->taken % NBATCH;
		for (size_t i = 0; i < s->b[n].n; i++) {
			struct item *it = &s->b[n].v[i];
			if (err == 0)
				err =
				    add(ctx, it->rec, it->off); /* takes rec */
			else
				kv_rec_unref(it->rec);
		}
		pthread_mutex_lock(&s->mu);
		s->taken++;
		s->stop = err != 0;
		pthread_cond_broadcast(&s->cond);
		pthread_mutex_unlock(&s->mu);
	}
	pthread_join(t, NULL);
	for (; s->taken < s->filled; s->taken++) /* after a failed add */
		for (size_t i = 0; i < s->b[s->taken % NBATCH].n; i++)
			kv_rec_unref(s->b[s->taken % NBATCH].v[i].rec);
	if (err == 0)
		err = s->err;
	if (err == 0)
		*cur = s->cur;
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cond);
	free(s);
	return err;
}
