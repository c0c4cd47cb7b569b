/* test_cmd_txn.c - the op "txn" as a JSON line (store/kv/cmd_txn.c):
 * comparisons of every target and op and both branches of every kind
 * round-trip through kv_cmd_encode/kv_cmd_decode as version 4, binary
 * values exactly; the rules of kv_txn_check (the limits, the key rules,
 * writes of a branch apart) with the item they name; and malformed txn
 * lines (unknown fields, a missing or extra value, too many items, a
 * version 3 line, overlapping writes) are rejected. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kv.h"

static int decode(const char *s)
{
	struct kv_cmd c;
	int err = kv_cmd_decode(s, strlen(s), &c);
	if (err == 0)
		kv_cmd_clear(&c);
	return err;
}

#define OP(k_, key_, v_, n_)                                                   \
	{                                                                      \
		.kind = (k_), .key = (char *)(key_), .klen = strlen(key_),     \
		.val = (unsigned char *)(v_), .vlen = (n_)                     \
	}

static void test_txn_round_trips_as_version_4(void **state)
{
	(void)state;
	static const unsigned char bin[] = {0, 0xff, '\n', 'a', 0};
	struct kv_txn_cmp cmp[] = {
	    {.key = "a",
	     .klen = 1,
	     .target = KV_TXN_VALUE,
	     .op = KV_TXN_LT,
	     .val = (unsigned char *)bin,
	     .vlen = sizeof(bin)},
	    {.key = "b",
	     .klen = 1,
	     .target = KV_TXN_MOD_REV,
	     .op = KV_TXN_EQ,
	     .n = 9007199254740992ull},
	    {.key = "c",
	     .klen = 1,
	     .target = KV_TXN_CREATE_REV,
	     .op = KV_TXN_GT,
	     .n = 0},
	    {.key = "d/\xc3\xa9",
	     .klen = 4,
	     .target = KV_TXN_EXISTS,
	     .op = KV_TXN_NE,
	     .n = 1},
	};
	struct kv_txn_op s[] = {
	    OP(KV_TXN_PUT, "a", bin, sizeof(bin)),
	    OP(KV_TXN_PUT, "x/y", "text", 4),
	    OP(KV_TXN_GET, "a", NULL, 0),
	    OP(KV_TXN_DEL, "b", NULL, 0),
	    OP(KV_TXN_DEL_RANGE, "dir", NULL, 0),
	    OP(KV_TXN_PUT, "empty", "", 0),
	};
	struct kv_txn_op f[] = {OP(KV_TXN_GET, "a", NULL, 0)};
	struct kv_txn t = {.cmp = cmp, .ncmp = 4, .br = {s, f}, .nop = {6, 1}};
	struct kv_cmd c = {.op = KV_OP_TXN, .txn = &t, .time_ns = 77}, d;
	char *line;
	size_t len;

	assert_int_equal(kv_cmd_encode(&c, &line, &len), 0);
	assert_non_null(strstr(line, "{\"v\":4,\"op\":\"txn\""));
	assert_null(memchr(line, '\n', len));
	assert_int_equal(kv_cmd_decode(line, len, &d), 0);
	free(line);
	assert_int_equal(d.op, KV_OP_TXN);
	assert_int_equal(d.time_ns, 77);
	assert_int_equal(d.klen, 0);
	const struct kv_txn *u = d.txn;
	assert_non_null(u);
	assert_int_equal(u->ncmp, 4);
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(u->cmp[i].klen, cmp[i].klen);
		assert_memory_equal(u->cmp[i].key, cmp[i].key, cmp[i].klen);
		assert_int_equal(u->cmp[i].target, cmp[i].target);
		assert_int_equal(u->cmp[i].op, cmp[i].op);
		assert_int_equal(u->cmp[i].n, cmp[i].n);
		assert_int_equal(u->cmp[i].vlen, cmp[i].vlen);
		if (cmp[i].vlen)
			assert_memory_equal(u->cmp[i].val, cmp[i].val,
					    cmp[i].vlen);
	}
	for (int b = 0; b < 2; b++) {
		assert_int_equal(u->nop[b], t.nop[b]);
		for (size_t i = 0; i < t.nop[b]; i++) {
			const struct kv_txn_op *x = &t.br[b][i],
					       *y = &u->br[b][i];
			assert_int_equal(y->kind, x->kind);
			assert_int_equal(y->klen, x->klen);
			assert_memory_equal(y->key, x->key, x->klen);
			assert_int_equal(y->vlen, x->vlen);
			if (x->vlen)
				assert_memory_equal(y->val, x->val, x->vlen);
		}
	}
	kv_cmd_clear(&d);
	assert_null(d.txn);
	/* an empty txn (no comparison, no op) is one too */
	struct kv_txn e = {0};
	c.txn = &e;
	assert_int_equal(kv_cmd_encode(&c, &line, &len), 0);
	assert_int_equal(kv_cmd_decode(line, len, &d), 0);
	assert_int_equal(d.txn->ncmp + d.txn->nop[0] + d.txn->nop[1], 0);
	kv_cmd_clear(&d);
	free(line);
	/* a txn without its body cannot be written */
	c.txn = NULL;
	assert_int_equal(kv_cmd_encode(&c, &line, &len), -EINVAL);
}

static void test_check_names_the_broken_rule(void **state)
{
	(void)state;
	struct kv_txn_op ops[130];
	struct kv_txn_cmp cmp = {.key = "a",
				 .klen = 1,
				 .target = KV_TXN_EXISTS,
				 .op = KV_TXN_EQ,
				 .n = 1};
	struct kv_txn t = {.cmp = &cmp, .ncmp = 1, .br = {ops, NULL}};
	const char *why, *where;
	size_t item;
	char keys[130][8];

	for (size_t i = 0; i < 130; i++) {
		snprintf(keys[i], sizeof(keys[i]), "k%zu", i);
		ops[i] = (struct kv_txn_op)OP(KV_TXN_GET, keys[i], NULL, 0);
	}
	t.nop[0] = 127; /* 127 + 1 comparison: the most */
	assert_int_equal(kv_txn_check(&t, &why, &where, &item), 0);
	t.nop[0] = 128;
	assert_int_equal(kv_txn_check(&t, &why, &where, &item), -E2BIG);
	assert_non_null(strstr(why, "128"));
	t.nop[0] = 3;
	ops[2] = (struct kv_txn_op)OP(KV_TXN_PUT, "a//b", "v", 1);
	assert_int_equal(kv_txn_check(&t, &why, &where, &item), -EINVAL);
	assert_string_equal(where, "success");
	assert_int_equal(item, 2);
	/* writes of a branch apart: the same key, one below the other */
	ops[0] = (struct kv_txn_op)OP(KV_TXN_PUT, "d/e", "v", 1);
	ops[1] = (struct kv_txn_op)OP(KV_TXN_GET, "d/e", NULL, 0);
	ops[2] = (struct kv_txn_op)OP(KV_TXN_DEL_RANGE, "d", NULL, 0);
	assert_int_equal(kv_txn_check(&t, &why, &where, &item), -EINVAL);
	assert_int_equal(item, 2);
	ops[2] = (struct kv_txn_op)OP(KV_TXN_DEL, "d/e", NULL, 0);
	assert_int_equal(kv_txn_check(&t, NULL, NULL, NULL), -EINVAL);
	ops[2] = (struct kv_txn_op)OP(KV_TXN_PUT, "d/e/f", "v", 1);
	assert_int_equal(kv_txn_check(&t, NULL, NULL, NULL), -EINVAL);
	/* a key that only starts like another is apart from it */
	ops[2] = (struct kv_txn_op)OP(KV_TXN_PUT, "d/ef", "v", 1);
	assert_int_equal(kv_txn_check(&t, NULL, NULL, NULL), 0);
	/* the other branch may write the same keys */
	struct kv_txn_op other[] = {OP(KV_TXN_PUT, "d/e", "w", 1)};
	t.br[1] = other;
	t.nop[1] = 1;
	assert_int_equal(kv_txn_check(&t, NULL, NULL, NULL), 0);
	/* the values add up */
	static unsigned char big[KV_MAX_VALUE / 2 + 1];
	ops[0].val = big;
	ops[0].vlen = sizeof(big);
	other[0].val = big;
	other[0].vlen = sizeof(big);
	assert_int_equal(kv_txn_check(&t, &why, &where, &item), -EFBIG);
	assert_non_null(strstr(why, "16 MiB"));
	/* exists: == or != only, true or false */
	other[0].vlen = 1;
	cmp.op = KV_TXN_LT;
	assert_int_equal(kv_txn_check(&t, &why, &where, &item), -EINVAL);
	assert_string_equal(where, "compare");
	cmp.op = KV_TXN_NE;
	cmp.n = 2;
	assert_int_equal(kv_txn_check(&t, NULL, NULL, NULL), -EINVAL);
	/* a value on a get */
	cmp.n = 0;
	ops[1].val = (unsigned char *)"x";
	ops[1].vlen = 1;
	assert_int_equal(kv_txn_check(&t, NULL, NULL, NULL), -EINVAL);
	assert_int_equal(kv_txn_check(NULL, NULL, NULL, NULL), -EINVAL);
}

static void test_malformed_txn_lines_are_rejected(void **state)
{
	(void)state;
	const char *good = "{\"v\":4,\"op\":\"txn\",\"t\":\"1\",\"txn\":{\"c\":"
			   "[{\"k\":\"a\",\"tg\":\"mod_rev\",\"o\":\"==\","
			   "\"n\":3}],\"s\":[{\"o\":\"put\",\"k\":\"a\","
			   "\"val\":\"1\"}],\"f\":[{\"o\":\"get\",\"k\":"
			   "\"a\"}]}}";
	assert_int_equal(decode(good), 0);
	const char *bad[] = {
	    /* version 3 has no txn */
	    "{\"v\":3,\"op\":\"txn\",\"t\":\"1\",\"txn\":{}}",
	    /* no body, no time, a key */
	    "{\"v\":4,\"op\":\"txn\",\"t\":\"1\"}",
	    "{\"v\":4,\"op\":\"txn\",\"txn\":{}}",
	    "{\"v\":4,\"op\":\"txn\",\"t\":\"1\",\"k\":\"a\",\"txn\":{}}",
	    /* no other op takes a body */
	    "{\"v\":4,\"op\":\"put\",\"k\":\"a\",\"val\":\"\",\"mt\":\"1\","
	    "\"txn\":{}}",
	    /* unknown fields, lists twice, wrong types */
	    "{\"v\":4,\"op\":\"txn\",\"t\":\"1\",\"txn\":{\"x\":[]}}",
	    "{\"v\":4,\"op\":\"txn\",\"t\":\"1\",\"txn\":{\"s\":[],\"s\":[]}}",
	    "{\"v\":4,\"op\":\"txn\",\"t\":\"1\",\"txn\":{\"s\":{}}}",
	    "{\"v\":4,\"op\":\"txn\",\"t\":\"1\",\"txn\":[]}",
	    /* comparisons: a value for a revision, none for a value, a bad
	     * target or op, a revision past 2^53 */
	    "{\"v\":4,\"op\":\"txn\",\"t\":\"1\",\"txn\":{\"c\":[{\"k\":\"a\","
	    "\"tg\":\"mod_rev\",\"o\":\"==\",\"val\":\"1\"}]}}",
	    "{\"v\":4,\"op\":\"txn\",\"t\":\"1\",\"txn\":{\"c\":[{\"k\":\"a\","
	    "\"tg\":\"value\",\"o\":\"==\",\"n\":1}]}}",
	    "{\"v\":4,\"op\":\"txn\",\"t\":\"1\",\"txn\":{\"c\":[{\"k\":\"a\","
	    "\"tg\":\"version\",\"o\":\"==\",\"n\":1}]}}",
	    "{\"v\":4,\"op\":\"txn\",\"t\":\"1\",\"txn\":{\"c\":[{\"k\":\"a\","
	    "\"tg\":\"mod_rev\",\"o\":\"<=\",\"n\":1}]}}",
	    "{\"v\":4,\"op\":\"txn\",\"t\":\"1\",\"txn\":{\"c\":[{\"k\":\"a\","
	    "\"tg\":\"mod_rev\",\"o\":\"==\",\"n\":1e300}]}}",
	    "{\"v\":4,\"op\":\"txn\",\"t\":\"1\",\"txn\":{\"c\":[{\"k\":\"a\","
	    "\"tg\":\"exists\",\"o\":\">\",\"n\":1}]}}",
	    /* ops: a put without a value, a get with one, a bad op, a bad
	     * key, writes that overlap */
	    "{\"v\":4,\"op\":\"txn\",\"t\":\"1\",\"txn\":{\"s\":[{\"o\":"
	    "\"put\","
	    "\"k\":\"a\"}]}}",
	    "{\"v\":4,\"op\":\"txn\",\"t\":\"1\",\"txn\":{\"s\":[{\"o\":"
	    "\"get\","
	    "\"k\":\"a\",\"val\":\"1\"}]}}",
	    "{\"v\":4,\"op\":\"txn\",\"t\":\"1\",\"txn\":{\"s\":[{\"o\":"
	    "\"frob\","
	    "\"k\":\"a\"}]}}",
	    "{\"v\":4,\"op\":\"txn\",\"t\":\"1\",\"txn\":{\"s\":[{\"o\":"
	    "\"del\","
	    "\"k\":\"a/../b\"}]}}",
	    "{\"v\":4,\"op\":\"txn\",\"t\":\"1\",\"txn\":{\"f\":[{\"o\":"
	    "\"del\","
	    "\"k\":\"a\"},{\"o\":\"put\",\"k\":\"a/b\",\"val\":\"\"}]}}",
	    "{\"v\":4,\"op\":\"txn\",\"t\":\"1\",\"txn\":{\"s\":[{\"o\":"
	    "\"put\","
	    "\"k\":\"a\",\"val\":\"1\",\"val64\":\"AA==\"}]}}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int err = decode(bad[i]);
		if (err != -EINVAL)
			fail_msg("accepted or wrong error %d: %s", err, bad[i]);
	}
	/* more than 128 items in one list */
	char line[16384];
	size_t n = (size_t)snprintf(line, sizeof(line),
				    "{\"v\":4,\"op\":\"txn\",\"t\":\"1\","
				    "\"txn\":{\"s\":[");
	for (int i = 0; i < 129; i++)
		n += (size_t)snprintf(line + n, sizeof(line) - n,
				      "%s{\"o\":\"get\",\"k\":\"k%d\"}",
				      i ? "," : "", i);
	snprintf(line + n, sizeof(line) - n, "]}}");
	assert_int_equal(decode(line), -EINVAL);
}

static void test_results_are_shared_by_reference(void **state)
{
	(void)state;
	struct kv_txn_res *r = kv_txn_res_new(2);
	assert_non_null(r);
	assert_int_equal(r->n, 2);
	r->r[0].rec = kv_rec_new("a", 1, "v", 1);
	kv_txn_res_ref(r);
	kv_txn_res_unref(r);
	assert_int_equal(r->r[0].rec->vlen, 1); /* still there */
	kv_txn_res_unref(r);			/* frees it and the record */
	kv_txn_res_ref(NULL);
	kv_txn_res_unref(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_txn_round_trips_as_version_4),
	    cmocka_unit_test(test_check_names_the_broken_rule),
	    cmocka_unit_test(test_malformed_txn_lines_are_rejected),
	    cmocka_unit_test(test_results_are_shared_by_reference),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
