/* map_cut.c - the whole map as records: at once (map_collect), or as it
 * was at a cut, a step at a time while it changes (map_cut_step, map.h).
 *
 * A step walks the tree from where the last one stopped and, beside it,
 * the stash of records the keys changed since the cut had then
 * (map_stash.c), merging the two in the map's order: a key in the tree
 * and not in the stash has not changed since the cut, so its record is
 * the cut's; a stashed key gives its stashed record, or nothing if it
 * had none (created since); a stashed key no longer in the tree was
 * removed since, and gives its stashed record. A key changed after the
 * walk passed it was read before its change. Each step holds the map's
 * read lock for at most max keys, so the applier waits for one step, not
 * for a walk of the whole map. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "map_impl.h"
#include "map_stash.h"

static int push(struct kv_rec ***recs, size_t *n, size_t *cap,
		struct kv_rec *rec)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 1024;
		struct kv_rec **v = realloc(*recs, nc * sizeof(*v));
		if (v == NULL)
			return -ENOMEM;
		*recs = v;
		*cap = nc;
	}
	kv_rec_ref(rec);
	(*recs)[(*n)++] = rec;
	return 0;
}

int map_collect(const struct map *m, struct kv_rec ***out, size_t *n)
{
	struct kv_rec **recs = NULL;
	size_t i = 0, cap = 0;
	int ret = 0;

	if (map_root(m) != NULL)
		ret = push(&recs, &i, &cap, (struct kv_rec *)map_root(m));
	for (struct map_node *node = map_subtree_first(m, "", 0);
	     ret == 0 && node != NULL; node = map_next(m, node))
		ret = push(&recs, &i, &cap, map_node_rec(node));
	if (ret == 0 && recs == NULL)
		recs = malloc(sizeof(*recs)); /* an empty map: not NULL */
	if (ret != 0 || recs == NULL) {
		map_collect_free(recs, i);
		return -ENOMEM;
	}
	*out = recs;
	*n = i;
	return 0;
}

void map_collect_free(struct kv_rec **recs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		kv_rec_unref(recs[i]);
	free(recs);
}

static char node_tail(const struct map_node *n)
{
	return map_node_is_dir(n) ? '/' : 0;
}

/* Keep key + tail as where the next step starts. */
static int remember(struct map_cut_reader *r, const char *key, size_t klen,
		    char tail)
{
	char *k = malloc(klen + 1);
	if (k == NULL)
		return -ENOMEM;
	memcpy(k, key, klen);
	k[klen] = '\0';
	free(r->last);
	r->last = k;
	r->last_len = klen;
	r->last_tail = tail;
	r->started = true;
	return 0;
}

static int emit(struct map_cut_reader *r, struct kv_rec *rec)
{
	if (rec == NULL)
		return 0;
	return push(&r->recs, &r->n, &r->cap, rec);
}

/* The records are the reader's references and immutable: their hash
 * needs no lock. Under the read lock, as it was, the hash of a few 16 MiB
 * values kept the applier (the node thread) waiting for the write lock
 * 0.5 to 2 s, behind the db writer at nice 10. */
void map_cut_hash(struct map_cut_reader *r)
{
	r->hash = 0;
	for (size_t i = 0; i < r->n; i++)
		r->hash += map_rec_hash(r->recs[i]);
}

/* Where the step starts in the tree and in the stash: the first of each
 * after the last key read (all of them at the first step). */
static void start_at(const struct map *m, const struct map_stash *s,
		     const struct map_cut_reader *r, struct map_node **t,
		     struct stash_ent **e)
{
	if (!r->started) {
		*t = map_subtree_first(m, "", 0);
		*e = stash_first(s);
		return;
	}
	*t = map_lower_bound(m, r->last, r->last_len, r->last_tail);
	if (*t != NULL) {
		const struct kv_rec *rec = map_node_rec(*t);
		if (map_eff_cmp(kv_rec_key(rec), rec->klen, node_tail(*t),
				r->last, r->last_len, r->last_tail) == 0)
			*t = map_next(m, *t);
	}
	*e = stash_seek(s, r->last, r->last_len, r->last_tail);
	if (*e != NULL) {
		size_t kl;
		char tl;
		const char *k = stash_key(*e, &kl, &tl);
		if (map_eff_cmp(k, kl, tl, r->last, r->last_len,
				r->last_tail) == 0)
			*e = stash_next(s, *e);
	}
}

int map_cut_step(const struct map *m, struct map_cut_reader *r, size_t max)
{
	const struct map_stash *s = map_stash_of(m);
	struct map_node *t;
	struct stash_ent *e;
	const char *key = NULL;
	size_t klen = 0;
	char tail = 0;
	int ret = 0;

	if (s == NULL || stash_failed(s))
		return -ENOMEM;
	if (!r->started && (ret = emit(r, stash_root(s))) != 0)
		return ret;
	start_at(m, s, r, &t, &e);
	for (size_t i = 0; i < max && ret == 0; i++) {
		if (t == NULL && e == NULL) {
			r->done = true;
			break;
		}
		const struct kv_rec *tr = t ? map_node_rec(t) : NULL;
		size_t ekl = 0;
		char etl = 0;
		const char *ek = e ? stash_key(e, &ekl, &etl) : NULL;
		int c = t == NULL   ? 1
			: e == NULL ? -1
				    : map_eff_cmp(kv_rec_key(tr), tr->klen,
						  node_tail(t), ek, ekl, etl);
		if (c < 0) { /* unchanged since the cut */
			key = kv_rec_key(tr), klen = tr->klen,
			tail = node_tail(t);
			ret = emit(r, map_node_rec(t));
			t = map_next(m, t);
		} else { /* changed: as it was at the cut */
			key = ek, klen = ekl, tail = etl;
			ret = emit(r, stash_rec(e));
			if (c == 0)
				t = map_next(m, t);
			e = stash_next(s, e);
		}
	}
	if (ret == 0 && key != NULL)
		ret = remember(r, key, klen, tail);
	if (ret == 0 && !r->started)
		r->started = true; /* an empty map: the root alone */
	return ret;
}

void map_cut_reader_free(struct map_cut_reader *r)
{
	map_collect_free(r->recs, r->n);
	free(r->last);
	memset(r, 0, sizeof(*r));
}
