/* test_predecode.c - the recovered commands decoded ahead
 * (store/predecode.c): a slot is taken only by its own entry (index,
 * term, length), with kv_cmd_decode's outcome (a bad line's -EINVAL, a
 * put's record built with it); entries skipped, out of range or past are
 * not taken; more entries than the ring holds; a free before the end
 * leaks nothing (ASan). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store_int.h"

#define N 10000 /* more than the ring's 4096 */

static struct store_entry ents[N];
static void *arena;

/* Entry i (index 100 + i, term 2): every 7th a bad line, every 1000th a
 * configuration, the others puts of key k<i>. */
static void make(void)
{
	static char text[N][96];
	size_t total = 0;
	for (size_t i = 0; i < N; i++) {
		if (i % 7 == 3)
			snprintf(text[i], sizeof(text[i]),
				 "{\"v\":2,\"op\":\"put\",\"k\":\"k%zu\"}", i);
		else
			snprintf(text[i], sizeof(text[i]),
				 "{\"v\":2,\"op\":\"put\",\"k\":\"k%zu\","
				 "\"val\":\"v%zu\",\"mt\":\"5\"}",
				 i, i);
		total += strlen(text[i]);
	}
	arena = pre_arena_new(total);
	assert_non_null(arena);
	char *at = pre_arena_bytes(arena);
	for (size_t i = 0; i < N; i++) {
		size_t len = strlen(text[i]);
		memcpy(at, text[i], len);
		ents[i] = (struct store_entry){.index = 100 + i,
					       .term = 2,
					       .type = i % 1000 == 999
							   ? STORE_ENTRY_CONFIG
							   : STORE_ENTRY_CMD,
					       .data = at,
					       .len = len};
		at += len;
	}
}

static void test_taken_in_order(void **state)
{
	(void)state;
	make();
	struct predecode *p = predecode_start(ents, N, arena);
	assert_non_null(p);
	pre_arena_unref(arena); /* the thread holds its own */
	for (size_t i = 0; i < N; i++) {
		struct kv_cmd c;
		int err = 12345;
		if (ents[i].type != STORE_ENTRY_CMD) {
			assert_false(predecode_take(p, &ents[i], &c, &err));
			continue;
		}
		bool took = predecode_take(p, &ents[i], &c, &err);
		assert_true(took);
		if (i % 7 == 3) {
			assert_int_equal(err, -EINVAL);
			continue;
		}
		assert_int_equal(err, 0);
		char k[16];
		snprintf(k, sizeof(k), "k%zu", i);
		assert_string_equal(c.key, k);
		assert_non_null(c.prep); /* the record built with it */
		assert_int_equal(c.vlen, strlen(k));
		kv_cmd_clear(&c);
		/* taken once: again, or an entry before, is not */
		assert_false(predecode_take(p, &ents[i], &c, &err));
	}
	assert_true(predecode_done(p));
	predecode_free(p);
}

static void test_other_entries_not_taken(void **state)
{
	(void)state;
	make();
	struct predecode *p = predecode_start(ents, N, arena);
	assert_non_null(p);
	pre_arena_unref(arena);
	struct kv_cmd c;
	int err;
	struct store_entry e = ents[0];
	e.index = 99; /* before the first */
	assert_false(predecode_take(p, &e, &c, &err));
	e = ents[N - 1];
	e.index = 100 + N; /* past the last */
	assert_false(predecode_take(p, &e, &c, &err));
	e = ents[5];
	e.term = 3; /* another entry at that index */
	assert_false(predecode_take(p, &e, &c, &err));
	e = ents[6];
	e.len--; /* another length */
	assert_false(predecode_take(p, &e, &c, &err));
	/* skipped ahead past the ring: the ones between are dropped */
	assert_true(predecode_take(p, &ents[5000], &c, &err));
	assert_int_equal(err, 0);
	assert_string_equal(c.key, "k5000");
	kv_cmd_clear(&c);
	assert_false(predecode_take(p, &ents[4999], &c, &err));
	assert_false(predecode_done(p));
	predecode_free(p); /* before the end: nothing leaks */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_taken_in_order),
	    cmocka_unit_test(test_other_entries_not_taken),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
