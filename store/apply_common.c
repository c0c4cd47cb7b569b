/* apply_common.c - what the state machine's rules share: reporting a
 * change, a command's time, copying a record's attributes, and touching a
 * parent directory's times (prepared before the tree changes, committed
 * after, so that a change cannot fail half-way).
 *
 * Below apply.c (put, del, mkdir, rmdir, attributes) and apply_rename.c
 * (rename), which both use it. Declared in apply_int.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "apply_int.h"

void apply_changed(change_fn fn, void *ctx, const char *key, size_t klen)
{
	if (fn != NULL)
		fn(ctx, key, klen);
}

int64_t apply_time(const struct kv_cmd *cmd)
{
	if (cmd->time_ns != 0)
		return cmd->time_ns;
	if (cmd->op == KV_OP_PUT || cmd->op == KV_OP_MKDIR)
		return cmd->mtime_ns;
	return 0;
}

/* rec takes old's kind, mode, owner, create revision and times. */
void apply_same_attrs(struct kv_rec *rec, const struct kv_rec *old)
{
	rec->mode = old->mode;
	rec->uid = old->uid;
	rec->gid = old->gid;
	rec->create_rev = old->create_rev;
	rec->mtime_ns = old->mtime_ns;
	rec->ctime_ns = old->ctime_ns;
	rec->atime_ns = old->atime_ns;
	/* a renamed key keeps its lease: rec was made with room for it */
	kv_rec_set_lease(rec, kv_rec_lease(old));
}

struct kv_rec *apply_rec_copy(const struct kv_rec *old, const char *key,
			      size_t klen, uint64_t index, bool lease_slot)
{
	struct kv_rec *rec = kv_rec_new_l(key, klen, kv_rec_val(old), old->vlen,
					  kv_rec_xattrs(old), old->nxattr,
					  lease_slot || kv_rec_lease(old) != 0);

	if (rec == NULL)
		return NULL;
	apply_same_attrs(rec, old);
	rec->mod_rev = index;
	return rec;
}

/* ---- parents' times ---- */

static size_t parent_len(const char *key, size_t klen)
{
	const char *s = memrchr(key, '/', klen);
	return s ? (size_t)(s - key) : 0;
}

int apply_touch_prepare(const struct map *m, const char *key, size_t klen,
			int64_t t, uint64_t index, struct apply_touch *tp)
{
	size_t plen = parent_len(key, klen);
	const struct kv_rec *old;

	tp->rec = NULL;
	if (t == 0)
		return 0;
	if (plen == 0) {
		old = map_root(m);
	} else {
		struct map_node *n = map_find(m, key, plen, '/');
		if (n == NULL)
			return 0; /* implicit: no times of its own */
		old = map_node_rec(n);
	}
	if (old != NULL) {
		tp->rec = apply_rec_copy(old, key, plen, index, false);
	} else {
		tp->rec = kv_rec_new(key, 0, NULL, 0);
		if (tp->rec != NULL)
			tp->rec->mode = S_IFDIR | 0755;
	}
	if (tp->rec == NULL)
		return -ENOMEM;
	tp->rec->mod_rev = index;
	tp->rec->mtime_ns = t;
	tp->rec->ctime_ns = t;
	return 0;
}

void apply_touch_commit(struct map *m, struct apply_touch *tp)
{
	struct kv_rec *rec = tp->rec;
	struct map_node *n;

	if (rec == NULL)
		return;
	tp->rec = NULL;
	if (rec->klen == 0) {
		map_set_root(m, rec);
		return;
	}
	n = map_find(m, kv_rec_key(rec), rec->klen, '/');
	if (n != NULL)
		map_replace(m, n, rec);
	else
		kv_rec_unref(rec); /* cannot happen: the change kept it */
}
