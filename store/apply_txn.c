/* apply_txn.c - the op "txn": comparisons, then one branch, one change.
 *
 * Every comparison is read against the map as the entry finds it; all
 * holding picks the first branch ("success"), else the second
 * ("failure"). The branch's writes touch keys apart from each other
 * (kv_txn_check: none the same as another or below another's key), so
 * each can be checked against the map before any changes: a put onto a
 * directory or below a file, a delete of a directory, a delete_range of
 * a file fail the whole txn, which then changes nothing (res->err, the
 * op's index in res->count, the branch in res->txn with no results). Then the
 * ops run in order, each as the plain command it is (put, del, rmdir recursive:
 * apply.c's rules), so a get sees the writes before it in the branch.
 * Everything depends on the map and the entry alone: every replica takes the
 * same branch. What the txn did and read goes back in res->txn; the watch
 * events are the history's (history_txn.c). The rules: docs/http-api.md. */
#include <errno.h>
#include <string.h>

#include "apply_int.h"

/* The key's record if it is a key (a directory is absent), else NULL. */
static struct kv_rec *key_rec(const struct map *m, const char *key, size_t klen)
{
	struct map_node *n;
	return map_lookup(m, key, klen, &n) == MAP_FILE ? map_node_rec(n)
							: NULL;
}

static bool holds(int c, enum kv_txn_cmp_op op)
{
	switch (op) {
	case KV_TXN_EQ:
		return c == 0;
	case KV_TXN_NE:
		return c != 0;
	case KV_TXN_LT:
		return c < 0;
	case KV_TXN_GT:
		return c > 0;
	}
	return false;
}

static int cmp_u64(uint64_t a, uint64_t b)
{
	return (a > b) - (a < b);
}

static bool cmp_holds(const struct map *m, const struct kv_txn_cmp *c)
{
	const struct kv_rec *rec = key_rec(m, c->key, c->klen);
	switch (c->target) {
	case KV_TXN_VALUE: {
		if (rec == NULL)
			return false;
		size_t n = rec->vlen < c->vlen ? rec->vlen : c->vlen;
		int d = n ? memcmp(kv_rec_val(rec), c->val, n) : 0;
		if (d == 0)
			d = cmp_u64(rec->vlen, c->vlen);
		return holds(d, c->op);
	}
	case KV_TXN_MOD_REV:
		return holds(cmp_u64(rec ? rec->mod_rev : 0, c->n), c->op);
	case KV_TXN_CREATE_REV:
		return holds(cmp_u64(rec ? rec->create_rev : 0, c->n), c->op);
	case KV_TXN_EXISTS:
		return holds(cmp_u64(rec != NULL, c->n), c->op);
	}
	return false;
}

/* Can write o go, against the map before the txn? 0 or its error. */
static int op_check(const struct map *m, const struct kv_txn_op *o)
{
	struct map_node *n;
	enum map_kind k = map_lookup(m, o->key, o->klen, &n);
	int err;

	switch (o->kind) {
	case KV_TXN_PUT:
		if ((err = map_check_ancestors(m, o->key, o->klen)) != 0)
			return err;
		return map_kind_is_dir(k) ? -EISDIR : 0;
	case KV_TXN_DEL:
		return map_kind_is_dir(k) ? -EISDIR : 0;
	case KV_TXN_DEL_RANGE:
		return k == MAP_FILE ? -ENOTDIR : 0;
	case KV_TXN_GET:
		break;
	}
	return 0;
}

/* The records (keys and explicit directories) in the subtree of
 * directory key, its own too. */
static uint64_t keys_below(const struct map *m, const char *key, size_t klen)
{
	uint64_t count = 0;
	struct map_node *n = map_subtree_first(m, key, klen);
	for (; n != NULL && map_in_subtree(n, key, klen); n = map_next(m, n))
		count++;
	return count;
}

/* Op o of the branch, checked: into out. 0, or the store's error. */
static int op_run(struct map *m, uint64_t index, int64_t t,
		  const struct kv_txn_op *o, struct kv_txn_op_res *out,
		  change_fn fn, void *ctx)
{
	struct kv_cmd sub = {.key = o->key, .klen = o->klen, .time_ns = t};
	struct kv_result r = {0};
	int err;

	switch (o->kind) {
	case KV_TXN_GET:
		out->rec = key_rec(m, o->key, o->klen);
		if (out->rec != NULL)
			kv_rec_ref(out->rec);
		return 0;
	case KV_TXN_PUT:
		sub.op = KV_OP_PUT;
		sub.val = o->val;
		sub.vlen = o->vlen;
		sub.mtime_ns = t;
		break;
	case KV_TXN_DEL:
		sub.op = KV_OP_DEL;
		out->deleted = key_rec(m, o->key, o->klen) != NULL;
		break;
	case KV_TXN_DEL_RANGE:
		sub.op = KV_OP_RMDIR;
		sub.flags = KV_RMDIR_RECURSIVE;
		out->deleted = keys_below(m, o->key, o->klen);
		break;
	}
	if ((err = apply_plain(m, index, &sub, &r, fn, ctx)) != 0)
		return err;
	if (r.err == -ENOENT && o->kind != KV_TXN_PUT)
		return 0; /* nothing there: nothing deleted */
	/* checked before: any other outcome is a bug, and half a txn must
	 * not survive it */
	return r.err == 0 ? 0 : -EIO;
}

int apply_txn(struct map *m, uint64_t index, const struct kv_cmd *cmd,
	      struct kv_result *res, change_fn fn, void *ctx)
{
	const struct kv_txn *t = cmd->txn;
	size_t item;
	bool ok = true;
	int err;

	res->txn = NULL;
	res->err = 0;
	if ((res->err = kv_txn_check(t, NULL, NULL, &item)) != 0) {
		res->count = item;
		return 0;
	}
	for (size_t i = 0; i < t->ncmp && ok; i++)
		ok = cmp_holds(m, &t->cmp[i]);
	int b = ok ? 0 : 1;
	for (size_t i = 0; i < t->nop[b]; i++)
		if ((res->err = op_check(m, &t->br[b][i])) != 0) {
			/* which branch, for the answer: no op's result */
			res->count = i;
			if ((res->txn = kv_txn_res_new(0)) == NULL)
				return -ENOMEM;
			res->txn->succeeded = ok;
			return 0;
		}
	struct kv_txn_res *tr = kv_txn_res_new(t->nop[b]);
	if (tr == NULL)
		return -ENOMEM;
	tr->succeeded = ok;
	for (size_t i = 0; i < t->nop[b]; i++)
		if ((err = op_run(m, index, apply_time(cmd), &t->br[b][i],
				  &tr->r[i], fn, ctx)) != 0) {
			kv_txn_res_unref(tr);
			return err; /* the store fails: no half txn survives */
		}
	res->txn = tr;
	return 0;
}
