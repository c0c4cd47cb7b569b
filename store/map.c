/* map.c - the ordered map of keys: the tree, lookups, listings, the hash.
 *
 * An intrusive red-black tree from libbsd (sys/tree.h) holds one node per
 * file and per explicit directory, each pointing at an immutable kv_rec; a
 * change swaps in a new record, so readers holding the old one are safe.
 * Nodes sort by an "effective key": a file by its key, an explicit directory
 * by its key plus '/', so a directory's record sits right before its
 * contents and the subtree of "d" is exactly the range ["d/", "d0"). That
 * makes listing a walk that skips each sub-directory with one lower-bound
 * seek, and renaming a directory a range move. Every change goes through
 * account(), which keeps the counters and the order-independent state hash.
 * Beside the tree, a chained hash table indexes every node by its key and
 * tail, so the exact lookups a write and a read make (is this key a file,
 * an explicit directory; is an ancestor a file) cost a hash and one or two
 * compares instead of a walk down the tree; seeks and walks still use the
 * tree. The table only speeds lookups up: without memory to grow it, a
 * longer chain still finds the node, and without a table at all find()
 * walks the tree.
 * The rules of each command are in apply.c; semantics in docs/map-and-db.md.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* sys/tree.h marks its static functions __unused, a BSD spelling. */
#ifndef __unused
#define __unused __attribute__((unused))
#endif
#include <bsd/sys/tree.h>

#include "map_impl.h"

struct map_node {
	RB_ENTRY(map_node) link;
	struct kv_rec *rec; /* NULL in search nodes */
	const char *key;
	size_t klen;
	/* Appended to the key when sorting: '/' for a directory, 0 for a
	 * file; '0' (the byte after '/') in a search node seeks past a
	 * subtree. */
	char tail;
	uint64_t hash; /* rec_hash(rec), a term of map->hash */
	uint64_t kh;   /* key_hash(key, tail), set by index_add: its bucket */
	struct map_node *hnext; /* next node in that bucket */
};

RB_HEAD(map_tree, map_node);

struct map {
	struct map_tree tree;
	uint64_t nodes; /* files and explicit directories */
	uint64_t count; /* files */
	uint64_t bytes; /* sum of file value sizes */
	uint64_t hash;	/* sum of rec_hash over every node, mod 2^64 */
	/* The hash index: nbuckets (a power of two, or 0 without a table)
	 * chains of nodes linked by hnext. */
	struct map_node **index;
	size_t nbuckets;
};

/* Buckets of a new map's index; it doubles when the nodes outnumber the
 * buckets. */
#define MAP_INDEX_MIN 64

/* Compare key a plus tail at with key b plus tail bt, bytes unsigned. Equal
 * effective strings (only possible with keys the rules reject) order the
 * node with a tail first, so a seek for "d" + '0' finds a file "d0". */
static int eff_cmp(const char *a, size_t alen, char at, const char *b,
		   size_t blen, char bt)
{
	size_t n = alen < blen ? alen : blen;
	int c = n ? memcmp(a, b, n) : 0;

	if (c != 0)
		return c;
	if (alen == blen)
		return (int)(unsigned char)at - (int)(unsigned char)bt;
	if (alen > blen)
		return -eff_cmp(b, blen, bt, a, alen, at);
	if (at == 0)
		return -1;
	if ((unsigned char)at != (unsigned char)b[n])
		return (int)(unsigned char)at - (int)(unsigned char)b[n];
	return -1;
}

static int node_cmp(const struct map_node *a, const struct map_node *b)
{
	return eff_cmp(a->key, a->klen, a->tail, b->key, b->klen, b->tail);
}

RB_GENERATE_STATIC(map_tree, map_node, link, node_cmp)

static bool node_is_dir(const struct map_node *n)
{
	return n->tail == '/';
}

struct map *map_new(void)
{
	struct map *m = calloc(1, sizeof(*m));

	if (m == NULL)
		return NULL;
	RB_INIT(&m->tree);
	m->index = calloc(MAP_INDEX_MIN, sizeof(*m->index));
	if (m->index != NULL)
		m->nbuckets = MAP_INDEX_MIN;
	return m;
}

void map_free(struct map *m)
{
	struct map_node *n, *next;

	if (m == NULL)
		return;
	RB_FOREACH_SAFE(n, map_tree, &m->tree, next)
	{
		RB_REMOVE(map_tree, &m->tree, n);
		kv_rec_unref(n->rec);
		free(n);
	}
	free(m->index);
	free(m);
}

uint64_t map_count(const struct map *m)
{
	return m->count;
}

uint64_t map_bytes(const struct map *m)
{
	return m->bytes;
}

uint64_t map_state_hash(const struct map *m)
{
	return m->hash;
}

/* ---- the record hash ---- */

/* A bijective 64-bit mixer (the splitmix64 finalizer's shifts and
 * multipliers): every input bit affects every output bit. */
static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= UINT64_C(0xbf58476d1ce4e5b9);
	x ^= x >> 27;
	x *= UINT64_C(0x94d049bb133111eb);
	x ^= x >> 31;
	return x;
}

static uint64_t absorb(uint64_t h, uint64_t w)
{
	return mix64(h ^ w) + UINT64_C(0x9e3779b97f4a7c15);
}

/* Length first, then 8-byte little-endian words, the tail zero-padded:
 * the length makes the padding unambiguous, and the byte order makes the
 * hash the same on every host. */
static uint64_t absorb_bytes(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	size_t i = 0;

	h = absorb(h, (uint64_t)n);
	for (; i + 8 <= n; i += 8) {
		uint64_t w = 0;
		for (int j = 7; j >= 0; j--)
			w = w << 8 | b[i + (size_t)j];
		h = absorb(h, w);
	}
	if (i < n) {
		uint64_t w = 0;
		for (size_t j = n; j > i; j--)
			w = w << 8 | b[j - 1];
		h = absorb(h, w);
	}
	return h;
}

/* A hash of everything a record holds. The state hash is the sum of these
 * over the map: order-independent, so a map built by applying commands and
 * one loaded from a db agree, and O(1) to update on every change. Meant to
 * make accidental divergence visible, not to resist a forger. */
static uint64_t rec_hash(const struct kv_rec *r)
{
	uint64_t h = UINT64_C(0x6b76667303);

	h = absorb_bytes(h, r->key, r->klen);
	h = absorb_bytes(h, r->val, r->vlen);
	h = absorb(h, r->mode);
	h = absorb(h, r->create_rev);
	h = absorb(h, r->mod_rev);
	h = absorb(h, (uint64_t)r->mtime_ns);
	return mix64(h);
}

/* ---- the hash index ---- */

/* Not the record hash: the key and tail only, and fast for short keys. */
static uint64_t key_hash(const char *key, size_t klen, char tail)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325); /* FNV-1a */

	for (size_t i = 0; i < klen; i++)
		h = (h ^ (unsigned char)key[i]) * UINT64_C(0x100000001b3);
	return mix64(h ^ (unsigned char)tail);
}

static struct map_node **bucket_of(const struct map *m, uint64_t kh)
{
	return &m->index[kh & (m->nbuckets - 1)];
}

/* Double the table when the nodes outnumber the buckets. Without memory
 * the table stays as it is: chains get longer, lookups stay right. */
static void index_grow(struct map *m)
{
	size_t nb = m->nbuckets * 2;
	struct map_node **nt;

	if (m->nodes <= m->nbuckets || nb == 0 ||
	    (nt = calloc(nb, sizeof(*nt))) == NULL)
		return;
	for (size_t i = 0; i < m->nbuckets; i++) {
		struct map_node *n = m->index[i], *next;
		for (; n != NULL; n = next) {
			next = n->hnext;
			n->hnext = nt[n->kh & (nb - 1)];
			nt[n->kh & (nb - 1)] = n;
		}
	}
	free(m->index);
	m->index = nt;
	m->nbuckets = nb;
}

/* n has a new key (inserted or attached); a replace keeps key and bucket. */
static void index_add(struct map *m, struct map_node *n)
{
	if (m->nbuckets == 0)
		return;
	n->kh = key_hash(n->key, n->klen, n->tail);
	index_grow(m);
	struct map_node **b = bucket_of(m, n->kh);
	n->hnext = *b;
	*b = n;
}

static void index_del(struct map *m, struct map_node *n)
{
	if (m->nbuckets == 0)
		return;
	struct map_node **p = bucket_of(m, n->kh);
	while (*p != n)
		p = &(*p)->hnext;
	*p = n->hnext;
}

static struct map_node *index_find(const struct map *m, const char *key,
				   size_t klen, char tail)
{
	uint64_t kh = key_hash(key, klen, tail);

	for (struct map_node *n = *bucket_of(m, kh); n != NULL; n = n->hnext)
		if (n->kh == kh && n->klen == klen && n->tail == tail &&
		    memcmp(n->key, key, klen) == 0)
			return n;
	return NULL;
}

/* ---- tree helpers ---- */

static struct map_node *tree(const struct map *m, const char *key, size_t klen,
			     char tail, bool exact)
{
	struct map_node s = {.key = key, .klen = klen, .tail = tail};
	struct map_tree *t = (struct map_tree *)&m->tree;

	return exact ? RB_FIND(map_tree, t, &s) : RB_NFIND(map_tree, t, &s);
}

static struct map_node *find(const struct map *m, const char *key, size_t klen,
			     char tail)
{
	if (m->nbuckets != 0)
		return index_find(m, key, klen, tail);
	return tree(m, key, klen, tail, true);
}

/* First node whose effective key is >= key + tail. */
static struct map_node *lower_bound(const struct map *m, const char *key,
				    size_t klen, char tail)
{
	return tree(m, key, klen, tail, false);
}

struct map_node *map_next(const struct map *m, struct map_node *n)
{
	(void)m;
	return RB_NEXT(map_tree, (struct map_tree *)&m->tree, n);
}

struct kv_rec *map_node_rec(const struct map_node *n)
{
	return n->rec;
}

bool map_in_subtree(const struct map_node *n, const char *p, size_t plen)
{
	if (plen == 0)
		return true;
	if (n->klen < plen || memcmp(n->key, p, plen) != 0)
		return false;
	if (n->klen == plen)
		return node_is_dir(n);
	return n->key[plen] == '/';
}

static struct map_node *subtree_first(const struct map *m, const char *p,
				      size_t plen)
{
	struct map_node *n;

	if (plen == 0)
		return RB_MIN(map_tree, (struct map_tree *)&m->tree);
	n = lower_bound(m, p, plen, '/');
	return n != NULL && map_in_subtree(n, p, plen) ? n : NULL;
}

/* Count n's record in (sign > 0) or out of the counters and the hash.
 * Every change to the tree goes through here. */
static void account(struct map *m, const struct map_node *n, int sign)
{
	const struct kv_rec *rec = n->rec;

	if (sign > 0) {
		m->nodes++;
		m->hash += n->hash;
	} else {
		m->nodes--;
		m->hash -= n->hash;
	}
	if (S_ISDIR(rec->mode))
		return;
	if (sign > 0) {
		m->count++;
		m->bytes += rec->vlen;
	} else {
		m->count--;
		m->bytes -= rec->vlen;
	}
}

static void node_set(struct map_node *n, struct kv_rec *rec)
{
	n->rec = rec;
	n->key = rec->key;
	n->klen = rec->klen;
	n->tail = S_ISDIR(rec->mode) ? '/' : 0;
	n->hash = rec_hash(rec);
}

void map_replace(struct map *m, struct map_node *n, struct kv_rec *rec)
{
	account(m, n, -1);
	kv_rec_unref(n->rec);
	node_set(n, rec);
	account(m, n, +1);
}

/* Insert a node for rec (takes the reference), or replace the record of
 * the node already there. */
static int insert_rec(struct map *m, struct kv_rec *rec)
{
	struct map_node *n, *clash;

	n = find(m, rec->key, rec->klen, S_ISDIR(rec->mode) ? '/' : 0);
	if (n != NULL) {
		map_replace(m, n, rec);
		return 0;
	}
	n = malloc(sizeof(*n));
	if (n == NULL)
		return -ENOMEM;
	node_set(n, rec);
	clash = RB_INSERT(map_tree, &m->tree, n);
	assert(clash == NULL);
	(void)clash;
	account(m, n, +1);
	index_add(m, n);
	return 0;
}

void map_remove_node(struct map *m, struct map_node *n)
{
	RB_REMOVE(map_tree, &m->tree, n);
	index_del(m, n);
	account(m, n, -1);
	kv_rec_unref(n->rec);
	free(n);
}

void map_detach(struct map *m, struct map_node *n)
{
	RB_REMOVE(map_tree, &m->tree, n);
	index_del(m, n);
	account(m, n, -1);
}

void map_attach(struct map *m, struct map_node *n, struct kv_rec *rec)
{
	struct map_node *clash;

	node_set(n, rec);
	clash = RB_INSERT(map_tree, &m->tree, n);
	assert(clash == NULL);
	(void)clash;
	account(m, n, +1);
	index_add(m, n);
}

/* ---- what a path is ---- */

enum map_kind map_lookup(const struct map *m, const char *p, size_t plen,
			 struct map_node **np)
{
	struct map_node *n;

	*np = NULL;
	if (plen == 0)
		return MAP_ROOT;
	n = find(m, p, plen, 0);
	if (n != NULL) {
		*np = n;
		return MAP_FILE;
	}
	n = subtree_first(m, p, plen);
	if (n == NULL)
		return MAP_NONE;
	*np = n;
	return n->klen == plen ? MAP_DIR : MAP_IMPLICIT;
}

bool map_kind_is_dir(enum map_kind k)
{
	return k == MAP_DIR || k == MAP_IMPLICIT || k == MAP_ROOT;
}

bool map_has_children(const struct map *m, const char *p, size_t plen,
		      enum map_kind k, struct map_node *n)
{
	if (k == MAP_IMPLICIT)
		return true;
	if (k == MAP_ROOT)
		return m->nodes > 0;
	n = map_next(m, n);
	return n != NULL && map_in_subtree(n, p, plen);
}

int map_check_ancestors(const struct map *m, const char *key, size_t klen)
{
	for (size_t i = 1; i < klen; i++)
		if (key[i] == '/' && find(m, key, i, 0) != NULL)
			return -ENOTDIR;
	return 0;
}

static void stat_of(enum map_kind k, const struct map_node *n,
		    struct kv_stat *st)
{
	memset(st, 0, sizeof(*st));
	st->is_dir = map_kind_is_dir(k);
	if (k == MAP_ROOT) {
		st->mode = S_IFDIR | 0755;
		return;
	}
	/* An implicit directory shows the revisions and mtime of the first
	 * key below it: cheap (no subtree scan) and stable while that key
	 * is unchanged. */
	st->mode = k == MAP_IMPLICIT ? (S_IFDIR | 0755) : n->rec->mode;
	st->size = k == MAP_FILE ? n->rec->vlen : 0;
	st->create_rev = n->rec->create_rev;
	st->mod_rev = n->rec->mod_rev;
	st->mtime_ns = n->rec->mtime_ns;
}

struct kv_rec *map_get(const struct map *m, const char *key, size_t klen)
{
	struct map_node *n = find(m, key, klen, 0);

	if (n == NULL)
		n = find(m, key, klen, '/');
	return n != NULL ? n->rec : NULL;
}

int map_insert(struct map *m, struct kv_rec *rec)
{
	return insert_rec(m, rec);
}

int map_append(struct map *m, struct kv_rec *rec)
{
	struct map_node *last = RB_MAX(map_tree, &m->tree);

	if (last != NULL &&
	    eff_cmp(last->key, last->klen, last->tail, rec->key, rec->klen,
		    S_ISDIR(rec->mode) ? '/' : 0) >= 0)
		return -EINVAL;
	return insert_rec(m, rec);
}

int map_stat(const struct map *m, const char *path, size_t plen,
	     struct kv_stat *out)
{
	struct map_node *n;
	enum map_kind k = map_lookup(m, path, plen, &n);

	if (k == MAP_NONE)
		return -ENOENT;
	stat_of(k, n, out);
	return 0;
}

/* ---- listing ---- */

static int list_add(struct kv_list *out, size_t *cap, const char *name,
		    size_t nlen, const struct kv_stat *st)
{
	struct kv_dirent *e;

	if (out->n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 64;
		e = realloc(out->ents, ncap * sizeof(*e));
		if (e == NULL)
			return -ENOMEM;
		out->ents = e;
		*cap = ncap;
	}
	e = &out->ents[out->n];
	e->name = malloc(nlen + 1);
	if (e->name == NULL)
		return -ENOMEM;
	memcpy(e->name, name, nlen);
	e->name[nlen] = '\0';
	e->st = *st;
	out->n++;
	return 0;
}

/* Where a listing resumes after child `after` of the directory whose
 * children start with prefix pre (the directory plus '/', or "" at the
 * root). Children come in effective-key order: a directory sorts as its
 * name plus '/'. */
static int list_resume(const struct map *m, const char *pre, size_t prelen,
		       const char *after, struct map_node **out)
{
	size_t alen = strlen(after), clen = prelen + alen;
	struct map_node *n;
	char *c = malloc(clen + 1);

	if (c == NULL)
		return -ENOMEM;
	memcpy(c, pre, prelen);
	memcpy(c + prelen, after, alen);
	n = find(m, c, clen, 0);
	if (n != NULL) /* a file: the next node */
		n = map_next(m, n);
	else if (subtree_first(m, c, clen) != NULL) /* a directory */
		n = lower_bound(m, c, clen, '0');
	else /* gone since: whatever sorts after its name */
		n = lower_bound(m, c, clen, 0);
	free(c);
	*out = n;
	return 0;
}

int map_list(const struct map *m, const char *dir, size_t dlen,
	     const char *after, size_t limit, struct kv_list *out)
{
	struct map_node *n;
	enum map_kind k = map_lookup(m, dir, dlen, &n);
	size_t cap = 0, prelen = dlen ? dlen + 1 : 0;
	int err = 0;

	memset(out, 0, sizeof(*out));
	if (k == MAP_NONE)
		return -ENOENT;
	if (k == MAP_FILE)
		return -ENOTDIR;
	if (after != NULL && after[0] != '\0') {
		/* The prefix "dir/" is dir's bytes and a '/', so build it. */
		char *pre = malloc(prelen + 1);
		if (pre == NULL)
			return -ENOMEM;
		memcpy(pre, dir, dlen);
		if (dlen)
			pre[dlen] = '/';
		err = list_resume(m, pre, prelen, after, &n);
		free(pre);
		if (err != 0)
			return err;
	} else {
		n = subtree_first(m, dir, dlen);
	}
	for (; n != NULL && map_in_subtree(n, dir, dlen);) {
		const char *rest = n->key + prelen, *slash;
		size_t rlen, nlen;
		struct map_node *nx;
		struct kv_stat st;

		if (n->klen < prelen) { /* dir's own explicit record */
			n = map_next(m, n);
			continue;
		}
		rlen = n->klen - prelen;
		slash = memchr(rest, '/', rlen);
		nlen = slash ? (size_t)(slash - rest) : rlen;
		if (slash == NULL && !node_is_dir(n)) {
			stat_of(MAP_FILE, n, &st);
			nx = map_next(m, n);
		} else {
			/* A sub-directory: its explicit record, if any, comes
			 * first; then skip everything below it. */
			stat_of(slash ? MAP_IMPLICIT : MAP_DIR, n, &st);
			nx = lower_bound(m, n->key, prelen + nlen, '0');
		}
		if (limit != 0 && out->n == limit) {
			out->more = true;
			break;
		}
		err = list_add(out, &cap, rest, nlen, &st);
		if (err != 0)
			goto err_clear;
		n = nx;
	}
	return 0;

err_clear:
	kv_list_clear(out);
	return err;
}

int map_collect(const struct map *m, struct kv_rec ***out, size_t *n)
{
	struct map_node *node;
	struct kv_rec **recs;
	size_t i = 0;

	recs = malloc((m->nodes ? m->nodes : 1) * sizeof(*recs));
	if (recs == NULL)
		return -ENOMEM;
	RB_FOREACH(node, map_tree, (struct map_tree *)&m->tree)
	{
		kv_rec_ref(node->rec);
		recs[i++] = node->rec;
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
