/* test_txn.c - the op "txn" in the state machine (store/apply_txn.c):
 * each comparison target and op on present and absent keys (and a
 * directory, which is no key), the branch taken and its results (a get
 * sees the writes before it, deletes count what they removed, a
 * delete_range a whole subtree), a failing op leaving the map exactly as
 * it was (its index and branch answered), the changes reported, every
 * command decoded from its line as the log gives it, and the same log
 * giving the same map (state hash) on two maps. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "map_impl.h"
#include "mapfix.h"

/* Apply cmd as the next entry, through its JSON line as the log holds
 * it; the result (its txn the caller's to unref). */
static struct kv_result apply(struct fixture *f, const struct kv_cmd *c)
{
	struct kv_result res = {.err = 12345};
	struct kv_cmd d;
	char *line;
	size_t len;

	assert_int_equal(kv_cmd_encode(c, &line, &len), 0);
	assert_int_equal(kv_cmd_decode(line, len, &d), 0);
	free(line);
	f->changes[0] = '\0';
	assert_int_equal(map_apply(f->m, ++f->index, &d, &res, on_change, f),
			 0);
	kv_cmd_clear(&d);
	assert_int_equal(res.rev, f->index);
	return res;
}

static void put(struct fixture *f, const char *k, const char *v)
{
	struct kv_cmd c = {.op = KV_OP_PUT,
			   .key = (char *)k,
			   .klen = strlen(k),
			   .val = (unsigned char *)v,
			   .vlen = strlen(v),
			   .mtime_ns = 1000};
	struct kv_result r = apply(f, &c);
	assert_int_equal(r.err, 0);
}

/* The value of key now, or NULL. */
static const char *value(struct fixture *f, const char *k)
{
	static char buf[256];
	struct map_node *n;
	if (map_lookup(f->m, k, strlen(k), &n) != MAP_FILE)
		return NULL;
	const struct kv_rec *r = map_node_rec(n);
	snprintf(buf, sizeof(buf), "%.*s", (int)r->vlen, kv_rec_val(r));
	return buf;
}

#define OP(k_, key_, v_)                                                       \
	{                                                                      \
		.kind = (k_), .key = (char *)(key_), .klen = strlen(key_),     \
		.val = (unsigned char *)(v_), .vlen = slen(v_)                 \
	}

static size_t slen(const char *s)
{
	return s ? strlen(s) : 0;
}

/* A txn of one comparison and a get of "r" in each branch: which ran. */
static bool holds(struct fixture *f, struct kv_txn_cmp cmp)
{
	struct kv_txn_op s[] = {OP(KV_TXN_GET, "r", NULL)};
	struct kv_txn_op x[] = {OP(KV_TXN_GET, "r", NULL)};
	struct kv_txn t = {.cmp = &cmp, .ncmp = 1, .br = {s, x}, .nop = {1, 1}};
	struct kv_cmd c = {.op = KV_OP_TXN, .txn = &t, .time_ns = 5};
	struct kv_result r = apply(f, &c);
	assert_int_equal(r.err, 0);
	assert_non_null(r.txn);
	bool ok = r.txn->succeeded;
	kv_txn_res_unref(r.txn);
	return ok;
}

static struct kv_txn_cmp rev_cmp(const char *k, enum kv_txn_target tg,
				 enum kv_txn_cmp_op op, uint64_t n)
{
	return (struct kv_txn_cmp){.key = (char *)k,
				   .klen = strlen(k),
				   .target = tg,
				   .op = op,
				   .n = n};
}

static struct kv_txn_cmp val_cmp(const char *k, enum kv_txn_cmp_op op,
				 const char *v)
{
	return (struct kv_txn_cmp){.key = (char *)k,
				   .klen = strlen(k),
				   .target = KV_TXN_VALUE,
				   .op = op,
				   .val = (unsigned char *)v,
				   .vlen = strlen(v)};
}

static void test_comparisons(void **state)
{
	struct fixture *f = *state;
	put(f, "a", "m");  /* rev 1 */
	put(f, "b", "x");  /* rev 2 */
	put(f, "a", "mm"); /* rev 3: a created 1, modified 3 */
	put(f, "d/k", "1");
	assert_true(holds(f, rev_cmp("a", KV_TXN_MOD_REV, KV_TXN_EQ, 3)));
	assert_false(holds(f, rev_cmp("a", KV_TXN_MOD_REV, KV_TXN_EQ, 1)));
	assert_true(holds(f, rev_cmp("a", KV_TXN_CREATE_REV, KV_TXN_EQ, 1)));
	assert_false(holds(f, rev_cmp("a", KV_TXN_CREATE_REV, KV_TXN_EQ, 3)));
	assert_true(holds(f, rev_cmp("a", KV_TXN_MOD_REV, KV_TXN_GT, 2)));
	assert_false(holds(f, rev_cmp("a", KV_TXN_MOD_REV, KV_TXN_LT, 3)));
	assert_true(holds(f, rev_cmp("a", KV_TXN_MOD_REV, KV_TXN_NE, 2)));
	/* absent: revisions 0, value never holds, exists false */
	assert_true(holds(f, rev_cmp("zz", KV_TXN_MOD_REV, KV_TXN_EQ, 0)));
	assert_true(holds(f, rev_cmp("zz", KV_TXN_CREATE_REV, KV_TXN_LT, 1)));
	assert_false(holds(f, val_cmp("zz", KV_TXN_NE, "q")));
	assert_false(holds(f, val_cmp("zz", KV_TXN_EQ, "")));
	assert_true(holds(f, rev_cmp("zz", KV_TXN_EXISTS, KV_TXN_EQ, 0)));
	assert_true(holds(f, rev_cmp("a", KV_TXN_EXISTS, KV_TXN_EQ, 1)));
	assert_true(holds(f, rev_cmp("a", KV_TXN_EXISTS, KV_TXN_NE, 0)));
	/* a directory is no key */
	assert_true(holds(f, rev_cmp("d", KV_TXN_EXISTS, KV_TXN_EQ, 0)));
	/* values compare as bytes, then by length */
	assert_true(holds(f, val_cmp("a", KV_TXN_EQ, "mm")));
	assert_true(holds(f, val_cmp("a", KV_TXN_GT, "m")));
	assert_true(holds(f, val_cmp("a", KV_TXN_LT, "mmm")));
	assert_true(holds(f, val_cmp("a", KV_TXN_LT, "n")));
	assert_true(holds(f, val_cmp("a", KV_TXN_GT, "")));
	assert_false(holds(f, val_cmp("a", KV_TXN_NE, "mm")));
	/* all must hold */
	struct kv_txn_cmp two[] = {val_cmp("a", KV_TXN_EQ, "mm"),
				   val_cmp("b", KV_TXN_EQ, "y")};
	struct kv_txn t = {.cmp = two, .ncmp = 2};
	struct kv_cmd c = {.op = KV_OP_TXN, .txn = &t, .time_ns = 5};
	struct kv_result r = apply(f, &c);
	assert_false(r.txn->succeeded);
	assert_int_equal(r.txn->n, 0);
	kv_txn_res_unref(r.txn);
	assert_string_equal(f->changes, "");
}

static void test_branch_runs_in_order(void **state)
{
	struct fixture *f = *state;
	put(f, "a", "1");
	put(f, "old/x", "1");
	put(f, "old/y/z", "1");
	put(f, "gone", "1");
	struct kv_txn_op s[] = {
	    OP(KV_TXN_GET, "a", NULL),	      OP(KV_TXN_PUT, "a", "2"),
	    OP(KV_TXN_GET, "a", NULL),	      OP(KV_TXN_DEL, "gone", NULL),
	    OP(KV_TXN_DEL, "never", NULL),    OP(KV_TXN_DEL_RANGE, "old", NULL),
	    OP(KV_TXN_DEL_RANGE, "no", NULL), OP(KV_TXN_PUT, "new/k", "3"),
	    OP(KV_TXN_GET, "old/x", NULL),
	};
	struct kv_txn_op x[] = {OP(KV_TXN_PUT, "a", "never")};
	struct kv_txn_cmp cmp = val_cmp("a", KV_TXN_EQ, "1");
	struct kv_txn t = {.cmp = &cmp, .ncmp = 1, .br = {s, x}, .nop = {9, 1}};
	struct kv_cmd c = {.op = KV_OP_TXN, .txn = &t, .time_ns = 5};
	struct kv_result r = apply(f, &c);
	assert_int_equal(r.err, 0);
	const struct kv_txn_res *tr = r.txn;
	assert_true(tr->succeeded);
	assert_int_equal(tr->n, 9);
	assert_memory_equal(kv_rec_val(tr->r[0].rec), "1", 1);
	assert_int_equal(tr->r[0].rec->mod_rev, 1);
	assert_memory_equal(kv_rec_val(tr->r[2].rec), "2",
			    1); /* after the put */
	assert_int_equal(tr->r[2].rec->mod_rev, f->index);
	assert_int_equal(tr->r[2].rec->create_rev, 1);
	assert_int_equal(tr->r[3].deleted, 1);
	assert_int_equal(tr->r[4].deleted, 0);
	assert_int_equal(tr->r[5].deleted, 2);
	assert_int_equal(tr->r[6].deleted, 0);
	assert_null(tr->r[8].rec);
	assert_string_equal(value(f, "a"), "2");
	assert_string_equal(value(f, "new/k"), "3");
	assert_null(value(f, "gone"));
	assert_null(value(f, "old/y/z"));
	struct map_node *n;
	assert_int_equal(map_lookup(f->m, "old", 3, &n), MAP_NONE);
	assert_string_equal(f->changes, "a gone old/x old/y/z old new/k");
	/* the records a get found outlive the map's */
	put(f, "a", "3");
	assert_memory_equal(kv_rec_val(tr->r[0].rec), "1", 1);
	kv_txn_res_unref(r.txn);
}

static void test_a_failing_op_changes_nothing(void **state)
{
	struct fixture *f = *state;
	put(f, "file", "1");
	put(f, "dir/k", "1");
	put(f, "a", "1");
	uint64_t before = map_state_hash(f->m);
	struct {
		struct kv_txn_op op;
		int err;
	} cases[] = {
	    {OP(KV_TXN_PUT, "file/under", "x"), -ENOTDIR},
	    {OP(KV_TXN_PUT, "dir", "x"), -EISDIR},
	    {OP(KV_TXN_DEL, "dir", NULL), -EISDIR},
	    {OP(KV_TXN_DEL_RANGE, "file", NULL), -ENOTDIR},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		/* two writes that would go first; the failing one third */
		struct kv_txn_op x[] = {OP(KV_TXN_PUT, "a", "2"),
					OP(KV_TXN_DEL, "zz", NULL),
					cases[i].op};
		struct kv_txn_cmp cmp = val_cmp("a", KV_TXN_EQ, "no");
		struct kv_txn t = {
		    .cmp = &cmp, .ncmp = 1, .br = {NULL, x}, .nop = {0, 3}};
		struct kv_cmd c = {.op = KV_OP_TXN, .txn = &t, .time_ns = 5};
		struct kv_result r = apply(f, &c);
		assert_int_equal(r.err, cases[i].err);
		assert_int_equal(r.count, 2);
		assert_non_null(r.txn);
		assert_false(r.txn->succeeded); /* the failure branch's op */
		kv_txn_res_unref(r.txn);
		assert_int_equal(map_state_hash(f->m), before);
		assert_string_equal(value(f, "a"), "1");
		assert_string_equal(f->changes, "");
	}
}

static void test_same_log_same_map(void **state)
{
	struct fixture *f = *state;
	struct map *other = map_new();
	assert_non_null(other);
	for (int i = 0; i < 50; i++) {
		char k1[16], k2[16], v[16];
		snprintf(k1, sizeof(k1), "acct/%d", i % 5);
		snprintf(k2, sizeof(k2), "acct/%d", (i + 2) % 5);
		snprintf(v, sizeof(v), "%d", i);
		struct kv_txn_op s[] = {OP(KV_TXN_PUT, k1, v),
					OP(KV_TXN_PUT, k2, v)};
		struct kv_txn_op x[] = {OP(KV_TXN_DEL, k1, NULL)};
		struct kv_txn_cmp cmp =
		    rev_cmp(k1, KV_TXN_MOD_REV, KV_TXN_LT, (uint64_t)i);
		struct kv_txn t = {
		    .cmp = &cmp, .ncmp = 1, .br = {s, x}, .nop = {2, 1}};
		struct kv_cmd c = {.op = KV_OP_TXN, .txn = &t, .time_ns = 5};
		struct kv_result r = apply(f, &c), r2 = {0};
		assert_int_equal(
		    map_apply(other, f->index, &c, &r2, NULL, NULL), 0);
		assert_int_equal(r.txn->succeeded, r2.txn->succeeded);
		kv_txn_res_unref(r.txn);
		kv_txn_res_unref(r2.txn);
	}
	assert_int_equal(map_state_hash(f->m), map_state_hash(other));
	map_free(other);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_comparisons, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_branch_runs_in_order, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_a_failing_op_changes_nothing,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_same_log_same_map, setup,
					    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
