/* apply_add.c - the op "add": counters under one directory, all at once.
 *
 * An add names a directory and counters below it (one segment each) with
 * an increment: the key DIR/NAME holds its count as decimal text ("17",
 * absent: 0; an empty value or one trailing newline are read as written
 * by hand) and grows by the increment. Every counter is checked before
 * any changes (a directory in the way, a value that is not a count, a
 * count past 2^64 - 1 fail the whole add, which then changes nothing), so
 * one add is one atomic change however many counters it names: mem-db's
 * word counts without its lost updates. The rest of the state machine is
 * apply.c; the rules are tabled in docs/map-and-db.md. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "apply_int.h"

/* The count a value holds: 0, or -EINVAL if it is not one. */
static int count_of(const struct kv_rec *rec, uint64_t *out)
{
	size_t n = rec->vlen;
	uint64_t v = 0;

	if (!S_ISREG(rec->mode))
		return -EINVAL;
	if (n > 0 && kv_rec_val(rec)[n - 1] == '\n')
		n--;
	for (size_t i = 0; i < n; i++) {
		unsigned d = (unsigned)kv_rec_val(rec)[i] - '0';
		if (d > 9)
			return -EINVAL;
		if (v > (UINT64_MAX - d) / 10)
			return -EOVERFLOW;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

/* DIR/NAME of add i into buf (room for KV_MAX_KEY + 1 bytes). */
static size_t add_key(const struct kv_cmd *cmd, size_t i, char *buf)
{
	const struct kv_add *a = &cmd->adds[i];
	size_t n = cmd->klen + 1 + a->nlen;

	if (n > KV_MAX_KEY)
		return 0;
	if (cmd->klen == 0) { /* counters at the root */
		memcpy(buf, a->name, a->nlen);
		buf[a->nlen] = '\0';
		return a->nlen;
	}
	memcpy(buf, cmd->key, cmd->klen);
	buf[cmd->klen] = '/';
	memcpy(buf + cmd->klen + 1, a->name, a->nlen);
	buf[n] = '\0';
	return n;
}

/* Can counter key[0..klen) grow by d? 0 or the add's error. */
static int check_one(const struct map *m, const char *key, size_t klen,
		     uint64_t d)
{
	struct map_node *n;
	uint64_t v = 0;
	int err;

	if ((err = kv_key_check(key, klen)) != 0 ||
	    (err = map_check_ancestors(m, key, klen)) != 0)
		return err;
	enum map_kind k = map_lookup(m, key, klen, &n);
	if (map_kind_is_dir(k))
		return -EISDIR;
	if (k == MAP_FILE && (err = count_of(map_node_rec(n), &v)) != 0)
		return err;
	return v > UINT64_MAX - d ? -EOVERFLOW : 0;
}

/* Counter key[0..klen) grows by d (checked by check_one). */
static int add_one(struct map *m, uint64_t index, int64_t t, const char *key,
		   size_t klen, uint64_t d)
{
	struct map_node *n;
	struct kv_rec *rec, *old = NULL;
	struct apply_touch tp = {0};
	uint64_t v = 0;
	char text[24];
	int len, err;

	if (map_lookup(m, key, klen, &n) == MAP_FILE) {
		old = map_node_rec(n);
		if (count_of(old, &v) != 0)
			return -EINVAL; /* checked: cannot happen */
	}
	len = snprintf(text, sizeof(text), "%" PRIu64, v + d);
	rec =
	    old ? kv_rec_new_l(key, klen, text, (size_t)len, kv_rec_xattrs(old),
			       old->nxattr, kv_rec_lease(old) != 0)
		: kv_rec_new(key, klen, text, (size_t)len);
	if (rec == NULL)
		return -ENOMEM;
	if (old != NULL) {
		apply_same_attrs(rec, old);
		if (t != 0)
			rec->mtime_ns = rec->ctime_ns = t;
	} else {
		rec->mode = S_IFREG | 0644;
		rec->uid = rec->gid = KV_NO_OWNER;
		rec->create_rev = index;
		rec->mtime_ns = rec->ctime_ns = rec->atime_ns = t;
	}
	rec->mod_rev = index;
	if (old != NULL) {
		map_replace(m, n, rec);
		return 0;
	}
	if ((err = apply_touch_prepare(m, key, klen, t, index, &tp)) != 0 ||
	    (err = map_insert(m, rec)) != 0) {
		kv_rec_unref(tp.rec);
		kv_rec_unref(rec);
		return err;
	}
	apply_touch_commit(m, &tp);
	return 0;
}

uint64_t apply_add_count(const struct map *m, const struct kv_cmd *cmd)
{
	char key[KV_MAX_KEY + 1];
	struct map_node *n;
	uint64_t v = 0;
	size_t klen = add_key(cmd, 0, key);

	if (klen && map_lookup(m, key, klen, &n) == MAP_FILE)
		count_of(map_node_rec(n), &v);
	return v;
}

int apply_add(struct map *m, uint64_t index, const struct kv_cmd *cmd, int *res,
	      change_fn fn, void *ctx)
{
	char key[KV_MAX_KEY + 1];
	int64_t t = apply_time(cmd);
	size_t klen;
	int err;

	/* the root ("") may hold counters too */
	if (cmd->klen != 0 && (*res = kv_key_check(cmd->key, cmd->klen)) != 0)
		return 0;
	if (cmd->nadd == 0 || cmd->nadd > KV_MAX_ADDS) {
		*res = -EINVAL;
		return 0;
	}
	for (size_t i = 0; i < cmd->nadd; i++) {
		if ((klen = add_key(cmd, i, key)) == 0) {
			*res = -ENAMETOOLONG;
			return 0;
		}
		if ((*res = check_one(m, key, klen, cmd->adds[i].n)) != 0)
			return 0;
	}
	for (size_t i = 0; i < cmd->nadd; i++) {
		klen = add_key(cmd, i, key);
		if ((err = add_one(m, index, t, key, klen, cmd->adds[i].n)) !=
		    0)
			return err; /* the store fails: no half add survives */
		apply_changed(fn, ctx, key, klen);
	}
	return 0;
}
