/* test_key.c - the key rules of kv_key_check: what is a valid key, each
 * class of invalid key, the length limits, and strict UTF-8 (overlongs,
 * surrogates, truncated sequences, code points past U+10FFFF). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "kv.h"

static int check(const char *k)
{
	return kv_key_check(k, strlen(k));
}

static void test_ordinary_keys_are_valid(void **state)
{
	(void)state;
	assert_int_equal(check("a"), 0);
	assert_int_equal(check("a/b/c"), 0);
	assert_int_equal(check("..a/b..c/.d"), 0);
	assert_int_equal(check("with space/and-dash_and.dot"), 0);
	assert_int_equal(check("caf\xc3\xa9/\xe2\x82\xac/\xf0\x9f\x98\x80"), 0);
	assert_int_equal(check("line\nbreak"), 0);
}

static void test_empty_segments_and_dot_segments_are_invalid(void **state)
{
	(void)state;
	assert_int_equal(kv_key_check("", 0), -EINVAL);
	assert_int_equal(kv_key_check(NULL, 0), -EINVAL);
	assert_int_equal(check("/a"), -EINVAL);
	assert_int_equal(check("a/"), -EINVAL);
	assert_int_equal(check("a//b"), -EINVAL);
	assert_int_equal(check("/"), -EINVAL);
	assert_int_equal(check("."), -EINVAL);
	assert_int_equal(check(".."), -EINVAL);
	assert_int_equal(check("a/./b"), -EINVAL);
	assert_int_equal(check("a/../b"), -EINVAL);
	assert_int_equal(check("a/.."), -EINVAL);
	assert_int_equal(check("./a"), -EINVAL);
}

static void test_nul_byte_is_invalid(void **state)
{
	(void)state;
	assert_int_equal(kv_key_check("a\0b", 3), -EINVAL);
	assert_int_equal(kv_key_check("ab\0", 3), -EINVAL);
}

static void test_length_limits_give_enametoolong(void **state)
{
	char k[KV_MAX_KEY + 2];

	(void)state;
	memset(k, 'x', sizeof(k));
	assert_int_equal(kv_key_check(k, KV_MAX_SEGMENT), 0);
	assert_int_equal(kv_key_check(k, KV_MAX_SEGMENT + 1), -ENAMETOOLONG);
	/* Segments of 200 separated by '/', up to the whole-key limit. */
	for (size_t i = 200; i < sizeof(k); i += 201)
		k[i] = '/';
	assert_int_equal(kv_key_check(k, KV_MAX_KEY), 0);
	assert_int_equal(kv_key_check(k, KV_MAX_KEY + 1), -ENAMETOOLONG);
}

static void test_invalid_utf8_is_invalid(void **state)
{
	(void)state;
	assert_int_equal(check("\xff"), -EINVAL);
	assert_int_equal(check("a\x80"), -EINVAL);	      /* lone cont. */
	assert_int_equal(check("\xc3"), -EINVAL);	      /* truncated */
	assert_int_equal(check("\xe2\x82"), -EINVAL);	      /* truncated */
	assert_int_equal(check("\xc3\x28"), -EINVAL);	      /* bad cont. */
	assert_int_equal(check("\xf4\x90\x80\x80"), -EINVAL); /* > 10FFFF */
	assert_int_equal(check("\xf5\x80\x80\x80"), -EINVAL);
}

static void test_overlong_encodings_are_invalid(void **state)
{
	(void)state;
	assert_int_equal(check("\xc0\xaf"), -EINVAL); /* '/' in 2 bytes */
	assert_int_equal(check("\xc1\xbf"), -EINVAL);
	assert_int_equal(check("\xe0\x80\xaf"), -EINVAL);
	assert_int_equal(check("\xe0\x9f\xbf"), -EINVAL);
	assert_int_equal(check("\xf0\x80\x80\xaf"), -EINVAL);
	assert_int_equal(check("\xf0\x8f\xbf\xbf"), -EINVAL);
	assert_int_equal(check("\xc0\x80"), -EINVAL); /* NUL in 2 bytes */
	/* The smallest of each length is fine. */
	assert_int_equal(check("\xc2\x80"), 0);
	assert_int_equal(check("\xe0\xa0\x80"), 0);
	assert_int_equal(check("\xf0\x90\x80\x80"), 0);
	assert_int_equal(check("\xf4\x8f\xbf\xbf"), 0); /* U+10FFFF */
}

static void test_surrogates_are_invalid(void **state)
{
	(void)state;
	assert_int_equal(check("\xed\xa0\x80"), -EINVAL); /* U+D800 */
	assert_int_equal(check("\xed\xbf\xbf"), -EINVAL); /* U+DFFF */
	assert_int_equal(check("\xed\x9f\xbf"), 0);	  /* U+D7FF */
	assert_int_equal(check("\xee\x80\x80"), 0);	  /* U+E000 */
}

static bool reserved(const char *k)
{
	return kv_key_reserved(k, strlen(k));
}

/* .kvfs is the mounts' own (docs/mount.md): any segment so named. */
static void test_a_kvfs_segment_is_reserved(void **state)
{
	(void)state;
	assert_true(reserved(".kvfs"));
	assert_true(reserved(".kvfs/events"));
	assert_true(reserved("a/.kvfs"));
	assert_true(reserved("a/.kvfs/b"));
	assert_false(reserved(".kvfsx"));
	assert_false(reserved("x.kvfs"));
	assert_false(reserved("a/.kvf"));
	assert_false(reserved("a/b.kvfs/c"));
	assert_false(reserved(".kvfs2/a"));
	assert_false(reserved("kvfs"));
	/* still a valid key by the rules a db or log is read with */
	assert_int_equal(check(".kvfs/events"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ordinary_keys_are_valid),
	    cmocka_unit_test(test_empty_segments_and_dot_segments_are_invalid),
	    cmocka_unit_test(test_nul_byte_is_invalid),
	    cmocka_unit_test(test_length_limits_give_enametoolong),
	    cmocka_unit_test(test_invalid_utf8_is_invalid),
	    cmocka_unit_test(test_overlong_encodings_are_invalid),
	    cmocka_unit_test(test_surrogates_are_invalid),
	    cmocka_unit_test(test_a_kvfs_segment_is_reserved),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
