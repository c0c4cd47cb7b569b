/* map_stash.c - the records a changing map had at a cut (map_stash.h),
 * and the map's order, which the map, its stash and the cut's reader
 * share.
 *
 * A red-black tree (libbsd's sys/tree.h) of entries, each a copy of the
 * key and the record the key had at the cut, referenced; it lives only
 * while a db is being collected, so it holds the keys changed during one
 * walk of the map. */
#include <stdlib.h>
#include <string.h>

#ifndef __unused
#define __unused __attribute__((unused))
#endif
#include <bsd/sys/tree.h>

#include "map_stash.h"

struct stash_ent {
	RB_ENTRY(stash_ent) link;
	struct kv_rec *rec; /* at the cut; NULL: no record then */
	const char *key;    /* NUL-terminated, after the entry */
	size_t klen;
	char tail;
};

RB_HEAD(stash_tree, stash_ent);

struct map_stash {
	struct stash_tree tree;
	size_t n;
	bool failed;
	struct kv_rec *root;
};

/* Equal effective strings (only possible with keys the rules reject)
 * order the one with a tail first, so a seek for "d" + '0' finds a file
 * "d0". */
int map_eff_cmp(const char *a, size_t alen, char at, const char *b, size_t blen,
		char bt)
{
	size_t n = alen < blen ? alen : blen;
	int c = n ? memcmp(a, b, n) : 0;

	if (c != 0)
		return c;
	if (alen == blen)
		return (int)(unsigned char)at - (int)(unsigned char)bt;
	if (alen > blen)
		return -map_eff_cmp(b, blen, bt, a, alen, at);
	if (at == 0)
		return -1;
	if ((unsigned char)at != (unsigned char)b[n])
		return (int)(unsigned char)at - (int)(unsigned char)b[n];
	return -1;
}

static int ent_cmp(const struct stash_ent *a, const struct stash_ent *b)
{
	return map_eff_cmp(a->key, a->klen, a->tail, b->key, b->klen, b->tail);
}

RB_GENERATE_STATIC(stash_tree, stash_ent, link, ent_cmp)

struct map_stash *stash_new(struct kv_rec *root)
{
	struct map_stash *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	RB_INIT(&s->tree);
	if (root != NULL)
		kv_rec_ref(root);
	s->root = root;
	return s;
}

void stash_free(struct map_stash *s)
{
	struct stash_ent *e, *next;

	if (s == NULL)
		return;
	RB_FOREACH_SAFE(e, stash_tree, &s->tree, next)
	{
		RB_REMOVE(stash_tree, &s->tree, e);
		kv_rec_unref(e->rec);
		free(e);
	}
	kv_rec_unref(s->root);
	free(s);
}

void stash_note(struct map_stash *s, const char *key, size_t klen, char tail,
		struct kv_rec *rec)
{
	struct stash_ent k = {.key = key, .klen = klen, .tail = tail};

	if (s->failed || RB_FIND(stash_tree, &s->tree, &k) != NULL)
		return;
	struct stash_ent *e = malloc(sizeof(*e) + klen + 1);
	if (e == NULL) {
		s->failed = true;
		return;
	}
	char *kp = (char *)(e + 1);
	memcpy(kp, key, klen);
	kp[klen] = '\0';
	*e = (struct stash_ent){
	    .rec = rec, .key = kp, .klen = klen, .tail = tail};
	if (rec != NULL)
		kv_rec_ref(rec);
	RB_INSERT(stash_tree, &s->tree, e);
	s->n++;
}

bool stash_failed(const struct map_stash *s)
{
	return s->failed;
}

struct kv_rec *stash_root(const struct map_stash *s)
{
	return s->root;
}

struct stash_ent *stash_seek(const struct map_stash *s, const char *key,
			     size_t klen, char tail)
{
	struct stash_ent k = {.key = key, .klen = klen, .tail = tail};

	return RB_NFIND(stash_tree, (struct stash_tree *)&s->tree, &k);
}

struct stash_ent *stash_first(const struct map_stash *s)
{
	return RB_MIN(stash_tree, (struct stash_tree *)&s->tree);
}

struct stash_ent *stash_next(const struct map_stash *s, struct stash_ent *e)
{
	(void)s;
	return RB_NEXT(stash_tree, (struct stash_tree *)&s->tree, e);
}

const char *stash_key(const struct stash_ent *e, size_t *klen, char *tail)
{
	*klen = e->klen;
	*tail = e->tail;
	return e->key;
}

struct kv_rec *stash_rec(const struct stash_ent *e)
{
	return e->rec;
}

size_t stash_count(const struct map_stash *s)
{
	return s->n;
}
