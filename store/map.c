/* map.c - the ordered map of keys and the state machine that changes it.
 *
 * An intrusive red-black tree from libbsd (sys/tree.h) holds one node per
 * file and per explicit directory, each pointing at an immutable kv_rec; a
 * change swaps in a new record, so readers holding the old one are safe.
 * Nodes sort by an "effective key": a file by its key, an explicit directory
 * by its key plus '/', so a directory's record sits right before its
 * contents and the subtree of "d" is exactly the range ["d/", "d0"). That
 * makes listing a walk that skips each sub-directory with one lower-bound
 * seek, and renaming a directory a range move. Semantics: docs/map-and-db.md.
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

#include "map.h"

struct map_node {
	RB_ENTRY(map_node) link;
	struct kv_rec *rec; /* NULL in search nodes */
	const char *key;
	size_t klen;
	/* Appended to the key when sorting: '/' for a directory, 0 for a
	 * file; '0' (the byte after '/') in a search node seeks past a
	 * subtree. */
	char tail;
};

RB_HEAD(map_tree, map_node);

struct map {
	struct map_tree tree;
	uint64_t nodes; /* files and explicit directories */
	uint64_t count; /* files */
	uint64_t bytes; /* sum of file value sizes */
};

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

	if (m != NULL)
		RB_INIT(&m->tree);
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
	return tree(m, key, klen, tail, true);
}

/* First node whose effective key is >= key + tail. */
static struct map_node *lower_bound(const struct map *m, const char *key,
				    size_t klen, char tail)
{
	return tree(m, key, klen, tail, false);
}

static struct map_node *next(const struct map *m, struct map_node *n)
{
	(void)m;
	return RB_NEXT(map_tree, (struct map_tree *)&m->tree, n);
}

/* True if n is in the subtree of directory p: its explicit record or
 * anything below it. Everything is below the root (plen 0). */
static bool in_subtree(const struct map_node *n, const char *p, size_t plen)
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
	return n != NULL && in_subtree(n, p, plen) ? n : NULL;
}

static void account(struct map *m, const struct kv_rec *rec, int sign)
{
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
}

/* Insert a node for rec (takes the reference), or replace the record of
 * the node already there. */
static int insert_rec(struct map *m, struct kv_rec *rec)
{
	struct map_node *n = malloc(sizeof(*n)), *old;

	if (n == NULL)
		return -ENOMEM;
	node_set(n, rec);
	old = RB_INSERT(map_tree, &m->tree, n);
	if (old != NULL) {
		free(n);
		account(m, old->rec, -1);
		kv_rec_unref(old->rec);
		node_set(old, rec);
	} else {
		m->nodes++;
	}
	account(m, rec, +1);
	return 0;
}

static void replace_rec(struct map *m, struct map_node *n, struct kv_rec *rec)
{
	account(m, n->rec, -1);
	kv_rec_unref(n->rec);
	node_set(n, rec);
	account(m, rec, +1);
}

static void remove_node(struct map *m, struct map_node *n)
{
	RB_REMOVE(map_tree, &m->tree, n);
	m->nodes--;
	account(m, n->rec, -1);
	kv_rec_unref(n->rec);
	free(n);
}

/* ---- what a path is ---- */

enum kind { K_NONE, K_FILE, K_DIR, K_IMPLICIT, K_ROOT };

/* What path is. For K_FILE and K_DIR *np is its node; for K_IMPLICIT the
 * first node below it. */
static enum kind lookup(const struct map *m, const char *p, size_t plen,
			struct map_node **np)
{
	struct map_node *n;

	*np = NULL;
	if (plen == 0)
		return K_ROOT;
	n = find(m, p, plen, 0);
	if (n != NULL) {
		*np = n;
		return K_FILE;
	}
	n = subtree_first(m, p, plen);
	if (n == NULL)
		return K_NONE;
	*np = n;
	return n->klen == plen ? K_DIR : K_IMPLICIT;
}

static bool is_dir_kind(enum kind k)
{
	return k == K_DIR || k == K_IMPLICIT || k == K_ROOT;
}

/* True if directory p (of kind k) has anything below it. */
static bool has_children(const struct map *m, const char *p, size_t plen,
			 enum kind k, struct map_node *n)
{
	if (k == K_IMPLICIT)
		return true;
	if (k == K_ROOT)
		return m->nodes > 0;
	n = next(m, n);
	return n != NULL && in_subtree(n, p, plen);
}

/* -ENOTDIR if a proper ancestor of key is a file. */
static int check_ancestors(const struct map *m, const char *key, size_t klen)
{
	for (size_t i = 1; i < klen; i++)
		if (key[i] == '/' && find(m, key, i, 0) != NULL)
			return -ENOTDIR;
	return 0;
}

static void stat_of(enum kind k, const struct map_node *n, struct kv_stat *st)
{
	memset(st, 0, sizeof(*st));
	st->is_dir = is_dir_kind(k);
	if (k == K_ROOT) {
		st->mode = S_IFDIR | 0755;
		return;
	}
	/* An implicit directory shows the revisions and mtime of the first
	 * key below it: cheap (no subtree scan) and stable while that key
	 * is unchanged. */
	st->mode = k == K_IMPLICIT ? (S_IFDIR | 0755) : n->rec->mode;
	st->size = k == K_FILE ? n->rec->vlen : 0;
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
	enum kind k = lookup(m, path, plen, &n);

	if (k == K_NONE)
		return -ENOENT;
	stat_of(k, n, out);
	return 0;
}

/* ---- listing ---- */

void kv_list_clear(struct kv_list *list)
{
	for (size_t i = 0; i < list->n; i++)
		free(list->ents[i].name);
	free(list->ents);
	memset(list, 0, sizeof(*list));
}

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
		n = next(m, n);
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
	enum kind k = lookup(m, dir, dlen, &n);
	size_t cap = 0, prelen = dlen ? dlen + 1 : 0;
	int err = 0;

	memset(out, 0, sizeof(*out));
	if (k == K_NONE)
		return -ENOENT;
	if (k == K_FILE)
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
	for (; n != NULL && in_subtree(n, dir, dlen);) {
		const char *rest = n->key + prelen, *slash;
		size_t rlen, nlen;
		struct map_node *nx;
		struct kv_stat st;

		if (n->klen < prelen) { /* dir's own explicit record */
			n = next(m, n);
			continue;
		}
		rlen = n->klen - prelen;
		slash = memchr(rest, '/', rlen);
		nlen = slash ? (size_t)(slash - rest) : rlen;
		if (slash == NULL && !node_is_dir(n)) {
			stat_of(K_FILE, n, &st);
			nx = next(m, n);
		} else {
			/* A sub-directory: its explicit record, if any, comes
			 * first; then skip everything below it. */
			stat_of(slash ? K_IMPLICIT : K_DIR, n, &st);
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

/* ---- the state machine ---- */

typedef void (*change_fn)(void *ctx, const char *key, size_t klen);

static void changed(change_fn fn, void *ctx, const char *key, size_t klen)
{
	if (fn != NULL)
		fn(ctx, key, klen);
}

/* A new record for key with old's value and attributes, changed at index. */
static struct kv_rec *rec_copy(const struct kv_rec *old, const char *key,
			       size_t klen, uint64_t index)
{
	struct kv_rec *rec = kv_rec_new(key, klen, old->val, old->vlen);

	if (rec == NULL)
		return NULL;
	rec->mode = old->mode;
	rec->create_rev = old->create_rev;
	rec->mod_rev = index;
	rec->mtime_ns = old->mtime_ns;
	return rec;
}

static int apply_put(struct map *m, uint64_t index, const struct kv_cmd *cmd,
		     int *res)
{
	struct map_node *n;
	enum kind k;
	struct kv_rec *rec;
	uint32_t perm = 0644;
	int err;

	if ((*res = kv_key_check(cmd->key, cmd->klen)) != 0)
		return 0;
	if (cmd->vlen > KV_MAX_VALUE) {
		*res = -EFBIG;
		return 0;
	}
	if ((*res = check_ancestors(m, cmd->key, cmd->klen)) != 0)
		return 0;
	k = lookup(m, cmd->key, cmd->klen, &n);
	if (is_dir_kind(k)) {
		*res = -EISDIR;
		return 0;
	}
	if ((cmd->if_absent && k == K_FILE) ||
	    (cmd->if_rev != 0 &&
	     (k != K_FILE || n->rec->mod_rev != cmd->if_rev))) {
		*res = KV_EPRECOND;
		return 0;
	}
	rec = kv_rec_new(cmd->key, cmd->klen, cmd->val, cmd->vlen);
	if (rec == NULL)
		return -ENOMEM;
	if (k == K_FILE)
		perm = n->rec->mode & 07777;
	if (cmd->mode != 0)
		perm = cmd->mode & 07777;
	rec->mode = S_IFREG | perm;
	rec->create_rev = k == K_FILE ? n->rec->create_rev : index;
	rec->mod_rev = index;
	rec->mtime_ns = cmd->mtime_ns;
	if (k == K_FILE) {
		replace_rec(m, n, rec);
	} else if ((err = insert_rec(m, rec)) != 0) {
		kv_rec_unref(rec);
		return err;
	}
	return 0;
}

static int apply_del(struct map *m, const struct kv_cmd *cmd, int *res)
{
	struct map_node *n;
	enum kind k;

	if ((*res = kv_key_check(cmd->key, cmd->klen)) != 0)
		return 0;
	k = lookup(m, cmd->key, cmd->klen, &n);
	if (is_dir_kind(k))
		*res = -EISDIR;
	else if (cmd->if_rev != 0 &&
		 (k != K_FILE || n->rec->mod_rev != cmd->if_rev))
		*res = KV_EPRECOND;
	else if (k == K_NONE)
		*res = -ENOENT;
	else
		remove_node(m, n);
	return 0;
}

static int apply_mkdir(struct map *m, uint64_t index, const struct kv_cmd *cmd,
		       int *res)
{
	struct map_node *n;
	struct kv_rec *rec;
	int err;

	if ((*res = kv_key_check(cmd->key, cmd->klen)) != 0)
		return 0;
	if ((*res = check_ancestors(m, cmd->key, cmd->klen)) != 0)
		return 0;
	if (lookup(m, cmd->key, cmd->klen, &n) != K_NONE) {
		*res = -EEXIST;
		return 0;
	}
	rec = kv_rec_new(cmd->key, cmd->klen, NULL, 0);
	if (rec == NULL)
		return -ENOMEM;
	rec->mode = S_IFDIR | (cmd->mode ? cmd->mode & 07777 : 0755);
	rec->create_rev = index;
	rec->mod_rev = index;
	rec->mtime_ns = cmd->mtime_ns;
	if ((err = insert_rec(m, rec)) != 0)
		kv_rec_unref(rec);
	return err;
}

static int apply_rmdir(struct map *m, const struct kv_cmd *cmd, int *res)
{
	struct map_node *n;
	enum kind k;

	if ((*res = kv_key_check(cmd->key, cmd->klen)) != 0)
		return 0;
	k = lookup(m, cmd->key, cmd->klen, &n);
	if (k == K_NONE)
		*res = -ENOENT;
	else if (k == K_FILE)
		*res = -ENOTDIR;
	else if (has_children(m, cmd->key, cmd->klen, k, n))
		*res = -ENOTEMPTY;
	else
		remove_node(m, n);
	return 0;
}

/* chmod and utimens. An implicit directory becomes an explicit one, since
 * its attributes now need a record. */
static int apply_setattr(struct map *m, uint64_t index,
			 const struct kv_cmd *cmd, int *res)
{
	struct map_node *n;
	struct kv_rec *rec;
	enum kind k;
	int err;

	if ((*res = kv_key_check(cmd->key, cmd->klen)) != 0)
		return 0;
	k = lookup(m, cmd->key, cmd->klen, &n);
	if (k == K_NONE) {
		*res = -ENOENT;
		return 0;
	}
	if (k == K_IMPLICIT) {
		rec = kv_rec_new(cmd->key, cmd->klen, NULL, 0);
		if (rec == NULL)
			return -ENOMEM;
		rec->mode = S_IFDIR | 0755;
		rec->create_rev = index;
		rec->mtime_ns = n->rec->mtime_ns;
	} else {
		rec = rec_copy(n->rec, cmd->key, cmd->klen, index);
		if (rec == NULL)
			return -ENOMEM;
	}
	rec->mod_rev = index;
	if (cmd->set_mode)
		rec->mode = (rec->mode & S_IFMT) | (cmd->mode & 07777);
	if (cmd->set_mtime)
		rec->mtime_ns = cmd->mtime_ns;
	if (k != K_IMPLICIT) {
		replace_rec(m, n, rec);
	} else if ((err = insert_rec(m, rec)) != 0) {
		kv_rec_unref(rec);
		return err;
	}
	return 0;
}

/* ---- rename: moving a file or a subtree ---- */

struct move {
	struct map_node *node;
	struct kv_rec *old, *rec; /* before and after */
};

struct moves {
	struct move *v;
	size_t n, cap;
};

/* Add the nodes of path p (kind k, node n from lookup) to mv. */
static int gather(const struct map *m, const char *p, size_t plen, enum kind k,
		  struct map_node *n, struct moves *mv)
{
	for (; n != NULL; n = next(m, n)) {
		if (k != K_FILE && !in_subtree(n, p, plen))
			break;
		if (mv->n == mv->cap) {
			size_t cap = mv->cap ? mv->cap * 2 : 16;
			struct move *v = realloc(mv->v, cap * sizeof(*v));
			if (v == NULL)
				return -ENOMEM;
			mv->v = v;
			mv->cap = cap;
		}
		mv->v[mv->n++] = (struct move){.node = n, .old = n->rec};
		if (k == K_FILE)
			break;
	}
	return 0;
}

/* New records for moves [from, to) of mv: prefix p (plen) replaced by q. */
static int make_moved(struct moves *mv, size_t from, size_t to, size_t plen,
		      const char *q, size_t qlen, uint64_t index, int *res)
{
	char *buf = NULL;
	size_t cap = 0;
	int err = 0;

	for (size_t i = from; i < to; i++) {
		struct kv_rec *old = mv->v[i].old;
		size_t slen = old->klen - plen, nlen = qlen + slen;

		if (nlen > KV_MAX_KEY) {
			*res = -ENAMETOOLONG;
			break;
		}
		if (nlen > cap) {
			char *b = realloc(buf, nlen);
			if (b == NULL) {
				err = -ENOMEM;
				break;
			}
			buf = b;
			cap = nlen;
		}
		memcpy(buf, q, qlen);
		memcpy(buf + qlen, old->key + plen, slen);
		mv->v[i].rec = rec_copy(old, buf, nlen, index);
		if (mv->v[i].rec == NULL) {
			err = -ENOMEM;
			break;
		}
	}
	free(buf);
	return err;
}

static bool is_below(const char *a, size_t alen, const char *b, size_t blen)
{
	return alen > blen && memcmp(a, b, blen) == 0 && a[blen] == '/';
}

/* The POSIX checks of rename(2) and renameat2(2) flags; 0 if it may go. */
static int rename_check(const struct map *m, const struct kv_cmd *cmd,
			enum kind sk, enum kind dk, struct map_node *dn)
{
	bool sdir = is_dir_kind(sk), ddir = is_dir_kind(dk);
	int err;

	if (sk == K_NONE)
		return -ENOENT;
	if ((err = check_ancestors(m, cmd->key2, cmd->k2len)) != 0)
		return err;
	if (is_below(cmd->key2, cmd->k2len, cmd->key, cmd->klen))
		return -EINVAL; /* into its own subtree */
	if (cmd->flags & KV_RENAME_EXCHANGE) {
		if (dk == K_NONE)
			return -ENOENT;
		if (is_below(cmd->key, cmd->klen, cmd->key2, cmd->k2len))
			return -EINVAL;
		return 0;
	}
	if (dk == K_NONE)
		return 0;
	if (cmd->flags & KV_RENAME_NOREPLACE)
		return -EEXIST;
	if (!sdir && ddir)
		return -EISDIR;
	if (sdir && !ddir)
		return -ENOTDIR;
	if (ddir && has_children(m, cmd->key2, cmd->k2len, dk, dn))
		return -ENOTEMPTY;
	return 0;
}

static int apply_rename(struct map *m, uint64_t index, const struct kv_cmd *cmd,
			int *res, change_fn fn, void *ctx)
{
	struct moves mv = {0};
	struct map_node *sn, *dn;
	enum kind sk, dk;
	size_t na;
	int err = 0;

	if ((*res = kv_key_check(cmd->key, cmd->klen)) != 0 ||
	    (*res = kv_key_check(cmd->key2, cmd->k2len)) != 0)
		return 0;
	if ((cmd->flags & ~(KV_RENAME_NOREPLACE | KV_RENAME_EXCHANGE)) ||
	    cmd->flags == (KV_RENAME_NOREPLACE | KV_RENAME_EXCHANGE)) {
		*res = -EINVAL;
		return 0;
	}
	sk = lookup(m, cmd->key, cmd->klen, &sn);
	dk = lookup(m, cmd->key2, cmd->k2len, &dn);
	if (sk != K_NONE && cmd->klen == cmd->k2len &&
	    memcmp(cmd->key, cmd->key2, cmd->klen) == 0) {
		/* Same path: nothing to do, as rename(2) does. */
		if (cmd->flags & KV_RENAME_NOREPLACE)
			*res = -EEXIST;
		return 0;
	}
	if ((*res = rename_check(m, cmd, sk, dk, dn)) != 0)
		return 0;

	/* Everything that can fail happens before the tree changes. */
	if ((err = gather(m, cmd->key, cmd->klen, sk, sn, &mv)) != 0)
		goto out_free;
	na = mv.n;
	if (cmd->flags & KV_RENAME_EXCHANGE)
		err = gather(m, cmd->key2, cmd->k2len, dk, dn, &mv);
	if (err != 0)
		goto out_free;
	err = make_moved(&mv, 0, na, cmd->klen, cmd->key2, cmd->k2len, index,
			 res);
	if (err == 0 && *res == 0)
		err = make_moved(&mv, na, mv.n, cmd->k2len, cmd->key, cmd->klen,
				 index, res);
	if (err != 0 || *res != 0)
		goto out_free;

	/* Replaced target: a file, or an empty explicit directory. */
	if (!(cmd->flags & KV_RENAME_EXCHANGE) && (dk == K_FILE || dk == K_DIR))
		remove_node(m, dn);
	for (size_t i = 0; i < mv.n; i++) {
		RB_REMOVE(map_tree, &m->tree, mv.v[i].node);
		account(m, mv.v[i].old, -1);
	}
	for (size_t i = 0; i < mv.n; i++) {
		struct map_node *clash;

		node_set(mv.v[i].node, mv.v[i].rec);
		clash = RB_INSERT(map_tree, &m->tree, mv.v[i].node);
		assert(clash == NULL);
		(void)clash;
		account(m, mv.v[i].rec, +1);
		mv.v[i].rec = NULL;
	}
	for (size_t i = 0; i < mv.n; i++) {
		struct kv_rec *o = mv.v[i].old, *r = mv.v[i].node->rec;
		changed(fn, ctx, o->key, o->klen);
		changed(fn, ctx, r->key, r->klen);
		kv_rec_unref(o);
	}
	/* An implicit directory has no record of its own to report. */
	if (sk == K_IMPLICIT ||
	    (dk == K_IMPLICIT && (cmd->flags & KV_RENAME_EXCHANGE))) {
		changed(fn, ctx, cmd->key, cmd->klen);
		changed(fn, ctx, cmd->key2, cmd->k2len);
	}
	if (dk == K_FILE || dk == K_DIR)
		changed(fn, ctx, cmd->key2, cmd->k2len);
	free(mv.v);
	return 0;

out_free:
	for (size_t i = 0; i < mv.n; i++)
		kv_rec_unref(mv.v[i].rec);
	free(mv.v);
	return err;
}

int map_apply(struct map *m, uint64_t index, const struct kv_cmd *cmd,
	      struct kv_result *res,
	      void (*on_change)(void *ctx, const char *key, size_t klen),
	      void *ctx)
{
	int err = 0, r = 0;

	res->rev = index;
	switch (cmd->op) {
	case KV_OP_NOOP:
		break;
	case KV_OP_PUT:
		err = apply_put(m, index, cmd, &r);
		break;
	case KV_OP_DEL:
		err = apply_del(m, cmd, &r);
		break;
	case KV_OP_MKDIR:
		err = apply_mkdir(m, index, cmd, &r);
		break;
	case KV_OP_RMDIR:
		err = apply_rmdir(m, cmd, &r);
		break;
	case KV_OP_SETATTR:
		err = apply_setattr(m, index, cmd, &r);
		break;
	case KV_OP_RENAME:
		err = apply_rename(m, index, cmd, &r, on_change, ctx);
		break;
	default:
		r = -EINVAL;
	}
	res->err = err != 0 ? err : r;
	if (err == 0 && r == 0 && cmd->op != KV_OP_NOOP &&
	    cmd->op != KV_OP_RENAME)
		changed(on_change, ctx, cmd->key, cmd->klen);
	return err;
}
