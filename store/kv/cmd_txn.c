/* cmd_txn.c - a transaction's body in a command (the op "txn", version
 * 4): its rules (kv_txn_check), its JSON in the log line, its results.
 *
 * In the line, "txn" is an object {"c":[comparisons],"s":[ops],"f":[ops]}
 * (each list may be absent: empty). A comparison is
 * {"k":KEY,"tg":"value"|"mod_rev"|"create_rev"|"exists","o":"=="|"!="|
 * "<"|">"} with "val"/"val64" (value) or "n" (the others); an op is
 * {"o":"get"|"put"|"del"|"del_range","k":KEY} with "val"/"val64" for a
 * put. Decoding is as strict as the rest of the command (cmd.c): unknown
 * or repeated fields, a wrong type or a body that breaks kv_txn_check are
 * -EINVAL. What a txn does is store/apply_txn.c; the format is tabled in
 * docs/map-and-db.md. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cmd_int.h"
#include "codec.h"
#include "jread.h"
#include "kv.h"

static const char *const target_names[] = {"value", "mod_rev", "create_rev",
					   "exists"};
static const char *const cmp_names[] = {"==", "!=", "<", ">"};
static const char *const kind_names[] = {"get", "put", "del", "del_range"};

/* ---- the rules ---- */

/* Is a[0..an) the key b[0..bn) or a directory above it? */
static bool covers(const char *a, size_t an, const char *b, size_t bn)
{
	return an <= bn && memcmp(a, b, an) == 0 && (an == bn || b[an] == '/');
}

static int fail(const char **why, const char *msg, const char **where,
		const char *w, size_t *item, size_t i, int err)
{
	if (why)
		*why = msg;
	if (where)
		*where = w;
	if (item)
		*item = i;
	return err;
}

/* The writes of one branch touch keys apart from each other. */
static bool apart(const struct kv_txn_op *ops, size_t i)
{
	const struct kv_txn_op *o = &ops[i];
	for (size_t j = 0; j < i; j++) {
		const struct kv_txn_op *p = &ops[j];
		if (p->kind == KV_TXN_GET)
			continue;
		if (covers(p->key, p->klen, o->key, o->klen) ||
		    covers(o->key, o->klen, p->key, p->klen))
			return false;
	}
	return true;
}

int kv_txn_check(const struct kv_txn *t, const char **why, const char **where,
		 size_t *item)
{
	static const char *const br_names[] = {"success", "failure"};
	uint64_t bytes = 0;
	int err;

	if (t == NULL)
		return fail(why, "no transaction", where, "", item, 0, -EINVAL);
	if (t->ncmp + t->nop[0] + t->nop[1] > KV_TXN_MAX_ITEMS)
		return fail(why,
			    "more than 128 comparisons and operations in all",
			    where, "", item, 0, -E2BIG);
	for (size_t i = 0; i < t->ncmp; i++) {
		const struct kv_txn_cmp *c = &t->cmp[i];
		if ((err = kv_key_check(c->key, c->klen)) != 0)
			return fail(why, "the key breaks the key rules", where,
				    "compare", item, i, err);
		if ((unsigned)c->target > KV_TXN_EXISTS ||
		    (unsigned)c->op > KV_TXN_GT)
			return fail(why, "unknown target or op", where,
				    "compare", item, i, -EINVAL);
		if (c->target == KV_TXN_EXISTS &&
		    (c->n > 1 || (c->op != KV_TXN_EQ && c->op != KV_TXN_NE)))
			return fail(why,
				    "exists compares with == or != to true "
				    "or false",
				    where, "compare", item, i, -EINVAL);
		bytes += c->vlen;
	}
	for (int b = 0; b < 2; b++)
		for (size_t i = 0; i < t->nop[b]; i++) {
			const struct kv_txn_op *o = &t->br[b][i];
			if ((err = kv_key_check(o->key, o->klen)) != 0)
				return fail(why, "the key breaks the key rules",
					    where, br_names[b], item, i, err);
			if ((unsigned)o->kind > KV_TXN_DEL_RANGE ||
			    (o->kind != KV_TXN_PUT && o->vlen != 0))
				return fail(why,
					    "unknown op, or a value "
					    "for an op that takes none",
					    where, br_names[b], item, i,
					    -EINVAL);
			if (o->kind != KV_TXN_GET && !apart(t->br[b], i))
				return fail(
				    why,
				    "two writes of a branch on the same "
				    "key, or one below the other's",
				    where, br_names[b], item, i, -EINVAL);
			bytes += o->vlen;
		}
	if (bytes > KV_MAX_VALUE)
		return fail(why, "the values add up to more than 16 MiB", where,
			    "", item, 0, -EFBIG);
	return 0;
}

void kv_txn_free(struct kv_txn *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->ncmp; i++) {
		free(t->cmp[i].key);
		free(t->cmp[i].val);
	}
	free(t->cmp);
	for (int b = 0; b < 2; b++) {
		for (size_t i = 0; i < t->nop[b]; i++) {
			free(t->br[b][i].key);
			free(t->br[b][i].val);
		}
		free(t->br[b]);
	}
	free(t);
}

/* ---- results ---- */

struct kv_txn_res *kv_txn_res_new(size_t n)
{
	struct kv_txn_res *t = calloc(1, sizeof(*t));
	if (t == NULL)
		return NULL;
	t->r = calloc(n ? n : 1, sizeof(*t->r));
	if (t->r == NULL) {
		free(t);
		return NULL;
	}
	t->n = n;
	atomic_init(&t->refs, 1);
	return t;
}

void kv_txn_res_ref(struct kv_txn_res *t)
{
	if (t)
		atomic_fetch_add(&t->refs, 1);
}

void kv_txn_res_unref(struct kv_txn_res *t)
{
	if (t == NULL || atomic_fetch_sub(&t->refs, 1) != 1)
		return;
	for (size_t i = 0; i < t->n; i++)
		kv_rec_unref(t->r[i].rec);
	free(t->r);
	free(t);
}

/* ---- writing ---- */

static void put_bytes(struct kv_buf *b, const void *p, size_t n)
{
	if (kv_utf8_valid(p, n, false)) {
		kv_buf_puts(b, ",\"val\":");
		kv_buf_json_str(b, p, n);
	} else {
		kv_buf_puts(b, ",\"val64\":\"");
		kv_buf_base64(b, p, n);
		kv_buf_puts(b, "\"");
	}
}

static void put_ops(struct kv_buf *b, const char *name,
		    const struct kv_txn_op *ops, size_t n)
{
	kv_buf_printf(b, ",\"%s\":[", name);
	for (size_t i = 0; i < n; i++) {
		kv_buf_printf(b, "%s{\"o\":\"%s\",\"k\":", i ? "," : "",
			      kind_names[ops[i].kind]);
		kv_buf_json_str(b, ops[i].key, ops[i].klen);
		if (ops[i].kind == KV_TXN_PUT)
			put_bytes(b, ops[i].val, ops[i].vlen);
		kv_buf_puts(b, "}");
	}
	kv_buf_puts(b, "]");
}

void kv_cmd_txn_encode(struct kv_buf *b, const struct kv_txn *t)
{
	kv_buf_puts(b, ",\"txn\":{\"c\":[");
	for (size_t i = 0; i < t->ncmp; i++) {
		const struct kv_txn_cmp *c = &t->cmp[i];
		kv_buf_puts(b, i ? ",{\"k\":" : "{\"k\":");
		kv_buf_json_str(b, c->key, c->klen);
		kv_buf_printf(b, ",\"tg\":\"%s\",\"o\":\"%s\"",
			      target_names[c->target], cmp_names[c->op]);
		if (c->target == KV_TXN_VALUE) {
			put_bytes(b, c->val, c->vlen);
		} else {
			kv_buf_puts(b, ",\"n\":");
			kv_buf_u64(b, c->n);
		}
		kv_buf_puts(b, "}");
	}
	kv_buf_puts(b, "]");
	put_ops(b, "s", t->br[0], t->nop[0]);
	put_ops(b, "f", t->br[1], t->nop[1]);
	kv_buf_puts(b, "}");
}

/* ---- reading ---- */

static int name_index(struct jr *r, const char *const *names, unsigned n,
		      unsigned *out)
{
	char buf[16];
	if (jr_kind(r) != '"' ||
	    jr_str_nonul(r, buf, sizeof(buf)) >= sizeof(buf))
		return -EINVAL;
	for (*out = 0; *out < n; (*out)++)
		if (strcmp(buf, names[*out]) == 0)
			return 0;
	return -EINVAL;
}

static int get_key(struct jr *r, char **key, size_t *klen)
{
	int err;
	if (jr_kind(r) != '"')
		return -EINVAL;
	if ((err = jr_str_dup(r, key, klen)) < 0)
		return err;
	return kv_utf8_valid(*key, *klen, false) ? 0 : -EINVAL;
}

/* "val" (text) or "val64" (base64) into val; once. */
static int get_val(struct jr *r, bool b64, unsigned char **val, size_t *vlen,
		   bool *seen)
{
	char *text;
	size_t n;
	int err;

	if (*seen || jr_kind(r) != '"')
		return -EINVAL;
	*seen = true;
	if ((err = jr_str_dup(r, &text, &n)) < 0)
		return err;
	if (!b64) {
		*val = (unsigned char *)text;
		*vlen = n;
		return kv_utf8_valid(text, n, false) ? 0 : -EINVAL;
	}
	err = kv_base64_decode(text, n, val, vlen);
	free(text);
	return err;
}

static int get_cmp(struct jr *r, struct kv_txn_cmp *c)
{
	char k[8];
	bool first = true, has_val = false, has_n = false, tg = false,
	     op = false;
	unsigned u = 0; /* set by name_index when it succeeds */
	int err = 0;

	if (jr_kind(r) != '{')
		return -EINVAL;
	jr_enter(r);
	while (err == 0 && jr_more(r, &first)) {
		jr_name(r, k, sizeof(k));
		if (strcmp(k, "k") == 0 && c->key == NULL) {
			err = get_key(r, &c->key, &c->klen);
		} else if (strcmp(k, "tg") == 0 && !tg) {
			err = name_index(r, target_names, 4, &u);
			c->target = (enum kv_txn_target)u;
			tg = true;
		} else if (strcmp(k, "o") == 0 && !op) {
			err = name_index(r, cmp_names, 4, &u);
			c->op = (enum kv_txn_cmp_op)u;
			op = true;
		} else if (strcmp(k, "val") == 0 || strcmp(k, "val64") == 0) {
			err = get_val(r, k[3] == '6', &c->val, &c->vlen,
				      &has_val);
		} else if (strcmp(k, "n") == 0 && !has_n && jr_kind(r) == 'n') {
			err = kv_uint_of_double(jr_num(r), KV_JSON_INT_MAX,
						&c->n);
			has_n = true;
		} else {
			err = -EINVAL;
		}
	}
	if (err == 0 && (c->key == NULL || !tg || !op ||
			 has_val != (c->target == KV_TXN_VALUE) ||
			 has_n == (c->target == KV_TXN_VALUE)))
		err = -EINVAL;
	return err;
}

static int get_op(struct jr *r, struct kv_txn_op *o)
{
	char k[8];
	bool first = true, has_val = false, kind = false;
	unsigned u = 0;
	int err = 0;

	if (jr_kind(r) != '{')
		return -EINVAL;
	jr_enter(r);
	while (err == 0 && jr_more(r, &first)) {
		jr_name(r, k, sizeof(k));
		if (strcmp(k, "k") == 0 && o->key == NULL) {
			err = get_key(r, &o->key, &o->klen);
		} else if (strcmp(k, "o") == 0 && !kind) {
			err = name_index(r, kind_names, 4, &u);
			o->kind = (enum kv_txn_kind)u;
			kind = true;
		} else if (strcmp(k, "val") == 0 || strcmp(k, "val64") == 0) {
			err = get_val(r, k[3] == '6', &o->val, &o->vlen,
				      &has_val);
		} else {
			err = -EINVAL;
		}
	}
	if (err == 0 &&
	    (o->key == NULL || !kind || has_val != (o->kind == KV_TXN_PUT)))
		err = -EINVAL;
	return err;
}

/* A list of items of size sz read by one, into *v (*n of them). */
static int get_list(struct jr *r, void **v, size_t *n, size_t sz,
		    int (*one)(struct jr *, void *))
{
	bool first = true;
	size_t cap = 0;
	int err;

	if (*v != NULL || jr_kind(r) != '[')
		return -EINVAL;
	jr_enter(r);
	while (jr_more(r, &first)) {
		if (*n == KV_TXN_MAX_ITEMS)
			return -EINVAL;
		if (*n == cap) {
			size_t nc = cap ? cap * 2 : 4;
			char *p = realloc(*v, nc * sz);
			if (p == NULL)
				return -ENOMEM;
			memset(p + cap * sz, 0, (nc - cap) * sz);
			*v = p;
			cap = nc;
		}
		(*n)++; /* counted first: freed with the rest on failure */
		if ((err = one(r, (char *)*v + (*n - 1) * sz)) != 0)
			return err;
	}
	if (*v == NULL && (*v = calloc(1, sz)) == NULL)
		return -ENOMEM; /* an empty list seen: not again */
	return 0;
}

static int one_cmp(struct jr *r, void *p)
{
	return get_cmp(r, p);
}

static int one_op(struct jr *r, void *p)
{
	return get_op(r, p);
}

int kv_cmd_txn_decode(struct jr *r, struct kv_cmd *cmd)
{
	struct kv_txn *t;
	bool first = true;
	char k[4];
	int err = 0;

	if (cmd->txn != NULL || jr_kind(r) != '{')
		return -EINVAL;
	if ((t = cmd->txn = calloc(1, sizeof(*t))) == NULL)
		return -ENOMEM;
	jr_enter(r);
	while (err == 0 && jr_more(r, &first)) {
		jr_name(r, k, sizeof(k));
		if (strcmp(k, "c") == 0)
			err = get_list(r, (void **)&t->cmp, &t->ncmp,
				       sizeof(*t->cmp), one_cmp);
		else if (strcmp(k, "s") == 0)
			err = get_list(r, (void **)&t->br[0], &t->nop[0],
				       sizeof(*t->br[0]), one_op);
		else if (strcmp(k, "f") == 0)
			err = get_list(r, (void **)&t->br[1], &t->nop[1],
				       sizeof(*t->br[1]), one_op);
		else
			err = -EINVAL;
	}
	if (err == 0 && kv_txn_check(t, NULL, NULL, NULL) != 0)
		err = -EINVAL;
	return err;
}
