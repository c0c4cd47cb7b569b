/* dircount.c - the table of sub-directory counts (dircount.h).
 *
 * Chained hashing on a hash the caller computes (map.c's key hash), one
 * malloc per directory that has sub-directories, freed when its count
 * drops to zero. The table doubles when it holds more entries than
 * buckets; without memory to double, chains just get longer. Without
 * memory for an entry the counts are wrong from then on, so they are all
 * dropped and the table says so (lost): link counts are derived data, and
 * "unknown" is better than wrong. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "dircount.h"

#define DIRCOUNT_MIN_BUCKETS 64

struct dircount {
	struct dircount *next; /* in its bucket */
	uint64_t kh;
	uint32_t n;
	size_t len;
	char path[];
};

static struct dircount **bucket(const struct dircounts *t, uint64_t kh)
{
	return &t->buckets[kh & (t->nbuckets - 1)];
}

static struct dircount *find(const struct dircounts *t, const char *p,
			     size_t plen, uint64_t kh)
{
	if (t->nbuckets == 0)
		return NULL;
	for (struct dircount *d = *bucket(t, kh); d != NULL; d = d->next)
		if (d->kh == kh && d->len == plen &&
		    memcmp(d->path, p, plen) == 0)
			return d;
	return NULL;
}

/* Room for one more entry; false only without any table at all. */
static bool grow(struct dircounts *t)
{
	size_t nb = t->nbuckets ? t->nbuckets * 2 : DIRCOUNT_MIN_BUCKETS;
	struct dircount **nt;

	if (t->n < t->nbuckets)
		return true;
	if ((nt = calloc(nb, sizeof(*nt))) == NULL)
		return t->nbuckets != 0;
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct dircount *d = t->buckets[i], *next;
		for (; d != NULL; d = next) {
			next = d->next;
			d->next = nt[d->kh & (nb - 1)];
			nt[d->kh & (nb - 1)] = d;
		}
	}
	free(t->buckets);
	t->buckets = nt;
	t->nbuckets = nb;
	return true;
}

void dircount_adjust(struct dircounts *t, const char *p, size_t plen,
		     uint64_t kh, int sign)
{
	struct dircount *d, **link;

	if (t->lost)
		return;
	d = find(t, p, plen, kh);
	if (sign > 0) {
		if (d != NULL) {
			d->n++;
			return;
		}
		if (!grow(t) || (d = malloc(sizeof(*d) + plen)) == NULL) {
			dircounts_free(t);
			t->lost = true;
			return;
		}
		*d = (struct dircount){.kh = kh, .n = 1, .len = plen};
		memcpy(d->path, p, plen);
		link = bucket(t, kh);
		d->next = *link;
		*link = d;
		t->n++;
		return;
	}
	assert(d != NULL && d->n > 0);
	if (d == NULL || --d->n > 0)
		return;
	for (link = bucket(t, kh); *link != d; link = &(*link)->next)
		;
	*link = d->next;
	free(d);
	t->n--;
}

uint32_t dircount_get(const struct dircounts *t, const char *p, size_t plen,
		      uint64_t kh)
{
	const struct dircount *d = find(t, p, plen, kh);
	return d ? d->n : 0;
}

void dircounts_free(struct dircounts *t)
{
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct dircount *d = t->buckets[i], *next;
		for (; d != NULL; d = next) {
			next = d->next;
			free(d);
		}
	}
	free(t->buckets);
	t->buckets = NULL;
	t->nbuckets = t->n = 0;
}
