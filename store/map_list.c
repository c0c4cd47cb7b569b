/* map_list.c - the children of a directory, a page at a time (map_list).
 *
 * The map's order puts a directory's record right before its contents
 * and everything below directory d in the range ["d/", "d0"), so a listing
 * walks the range of its directory and, meeting a sub-directory, emits it
 * once and seeks past its whole subtree with one lower-bound seek: a
 * directory with 100k keys below one child lists in O(log n). Pages resume
 * after the last name returned, even if that name has gone since. The tree
 * itself is map.c's (map_impl.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "map_impl.h"

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
	n = map_find(m, c, clen, 0);
	if (n != NULL) /* a file: the next node */
		n = map_next(m, n);
	else if (map_subtree_first(m, c, clen) != NULL) /* a directory */
		n = map_lower_bound(m, c, clen, '0');
	else /* gone since: whatever sorts after its name */
		n = map_lower_bound(m, c, clen, 0);
	free(c);
	*out = n;
	return 0;
}

int map_list_all(const struct map *m, const char *dir, size_t dlen,
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
		/* the key dir/after, or whatever sorts after it now */
		size_t alen = strlen(after), clen = prelen + alen;
		char *c = malloc(clen + 1);
		if (c == NULL)
			return -ENOMEM;
		memcpy(c, dir, dlen);
		if (dlen)
			c[dlen] = '/';
		memcpy(c + prelen, after, alen);
		n = map_find(m, c, clen, 0);
		n = n ? map_next(m, n) : map_lower_bound(m, c, clen, 0);
		free(c);
	} else {
		n = map_subtree_first(m, dir, dlen);
	}
	for (; n != NULL && map_in_subtree(n, dir, dlen); n = map_next(m, n)) {
		const struct kv_rec *r = map_node_rec(n);
		struct kv_stat st;
		if (r->klen <= prelen || map_node_is_dir(n))
			continue; /* directories: their keys are listed */
		if (limit != 0 && out->n == limit) {
			out->more = true;
			break;
		}
		map_stat_of(m, MAP_FILE, n, kv_rec_key(r), r->klen, &st);
		err = list_add(out, &cap, kv_rec_key(r) + prelen,
			       r->klen - prelen, &st);
		if (err != 0) {
			kv_list_clear(out);
			return err;
		}
	}
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
	struct kv_rec *self = k == MAP_DIR    ? map_node_rec(n)
			      : k == MAP_ROOT ? (struct kv_rec *)map_root(m)
					      : NULL;
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
		n = map_subtree_first(m, dir, dlen);
	}
	if (self != NULL) {
		kv_rec_ref(self);
		out->self = self;
	}
	for (; n != NULL && map_in_subtree(n, dir, dlen);) {
		const struct kv_rec *r = map_node_rec(n);
		const char *rest = kv_rec_key(r) + prelen, *slash;
		size_t rlen, nlen;
		struct map_node *nx;
		struct kv_stat st;

		if (r->klen < prelen) { /* dir's own explicit record */
			n = map_next(m, n);
			continue;
		}
		rlen = r->klen - prelen;
		slash = memchr(rest, '/', rlen);
		nlen = slash ? (size_t)(slash - rest) : rlen;
		if (slash == NULL && !map_node_is_dir(n)) {
			map_stat_of(m, MAP_FILE, n, kv_rec_key(r), r->klen,
				    &st);
			nx = map_next(m, n);
		} else {
			/* A sub-directory: its explicit record, if any, comes
			 * first; then skip everything below it. */
			map_stat_of(m, slash ? MAP_IMPLICIT : MAP_DIR, n,
				    kv_rec_key(r), prelen + nlen, &st);
			nx = map_lower_bound(m, kv_rec_key(r), prelen + nlen,
					     '0');
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
