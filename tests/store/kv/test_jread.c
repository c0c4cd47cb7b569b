/* test_jread.c - the in-place JSON reader (store/jread.c): what it
 * accepts and refuses as JSON, and that what it reads agrees with cJSON
 * and with our own writer (kv_buf_json_str). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "codec.h"
#include "jread.h"

static int check(const char *doc)
{
	const char *end;
	int rc = jr_check(doc, strlen(doc), &end);
	return rc < 0 ? rc : (int)(end - doc);
}

static void test_accepts_json_and_finds_its_end(void **state)
{
	(void)state;
	assert_int_equal(check("{}"), 2);
	assert_int_equal(check(" [1, -0, 0.5, 1e3, 2E-2, true, false, null] x"),
			 43);
	assert_int_equal(check("\"a\\\"b\\\\\\/\\b\\f\\n\\r\\t\\u00e9\""), 26);
	assert_int_equal(check("\"\\ud83d\\ude00\""), 14); /* a pair */
	assert_int_equal(check("{\"a\":{\"b\":[{}]}}"), 16);
	assert_int_equal(check("\"caf\xc3\xa9\""), 7); /* raw UTF-8 */
	/* One value, then whatever follows: the caller decides. */
	assert_int_equal(check("01"), 1);
}

static void test_refuses_what_is_not_json(void **state)
{
	static const char *const bad[] = {
	    "",
	    "   ",
	    "{",
	    "[1,]",
	    "{\"a\"}",
	    "{\"a\":}",
	    "{\"a\":1,}",
	    "{a:1}",
	    "[1 2]",
	    "[01]",
	    "+1",
	    "1.",
	    ".5",
	    "1e",
	    "-",
	    "tru",
	    "nul",
	    "\"abc",
	    "\"\\x\"",
	    "\"\\u12\"",
	    "\"\\ud83d\"",
	    "\"\\ude00\"",
	    "\"\\ud83dx\"",
	    "\"a\tb\"",
	    "'a'",
	    "[\"\\ud83d\\u0041\"]",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *end;
		if (jr_check(bad[i], strlen(bad[i]), &end) != -EINVAL)
			fail_msg("accepted: %s", bad[i]);
	}
}

static void test_refuses_deep_nesting_without_overflowing(void **state)
{
	char doc[2 * (JR_MAX_DEPTH + 2) + 1];
	const char *end;

	(void)state;
	for (int depth = JR_MAX_DEPTH; depth <= JR_MAX_DEPTH + 1; depth++) {
		size_t n = 0;
		for (int i = 0; i < depth; i++)
			doc[n++] = '[';
		for (int i = 0; i < depth; i++)
			doc[n++] = ']';
		assert_int_equal(jr_check(doc, n, &end),
				 depth <= JR_MAX_DEPTH ? 0 : -EINVAL);
	}
}

/* Every byte string our writer makes reads back the same, and as cJSON
 * reads it (cJSON stops at a NUL; we keep it). */
static void test_strings_read_back_what_was_written(void **state)
{
	uint64_t rng = 0x243f6a8885a308d3ull;

	(void)state;
	for (int round = 0; round < 2000; round++) {
		unsigned char raw[64];
		size_t n = (size_t)(round % 64), dl;
		struct kv_buf b;
		char *d;

		for (size_t i = 0; i < n; i++) {
			rng ^= rng << 13;
			rng ^= rng >> 7;
			rng ^= rng << 17;
			/* Mostly ASCII with control bytes and quotes; some
			 * multi-byte UTF-8 so the writer's input is valid. */
			raw[i] = (unsigned char)(rng % 0x80);
		}
		if (n >= 4 && round % 3 == 0)
			memcpy(raw, "\xf0\x9f\x98\x80", 4); /* U+1F600 */
		kv_buf_init(&b);
		kv_buf_json_str(&b, raw, n);
		assert_int_equal(b.err, 0);
		struct jr r = {b.p, b.p + b.len};
		const char *end;
		assert_int_equal(jr_check(b.p, b.len, &end), 0);
		assert_ptr_equal(end, b.p + b.len);
		assert_int_equal(jr_str_dup(&r, &d, &dl), 0);
		assert_int_equal(dl, n);
		assert_memory_equal(d, raw, n);
		assert_ptr_equal(r.p, b.p + b.len);

		cJSON *j = cJSON_ParseWithLength(b.p, b.len);
		assert_non_null(j);
		size_t cl = strlen(j->valuestring);
		assert_true(cl == strnlen(d, dl));
		assert_memory_equal(j->valuestring, d, cl);
		cJSON_Delete(j);
		free(d);
		kv_buf_free(&b);
	}
}

static void test_reads_members_numbers_and_skips(void **state)
{
	const char *doc = "{ \"n\" : 9007199254740991, \"f\":-0.25,"
			  "\"big\":1e300, \"skip\": {\"x\":[1,\"]}\",{}]},"
			  "\"t\":true,\"s\":\"a\\u00e9\\n\",\"z\":null,"
			  "\"long-name-past-the-cap\":1,\"nul\\u0000\":2}";
	struct jr r = {doc, doc + strlen(doc)};
	char k[8], s[8];
	bool first = true;
	int seen = 0;

	(void)state;
	assert_int_equal(jr_kind(&r), '{');
	jr_enter(&r);
	while (jr_more(&r, &first)) {
		size_t kl = jr_name(&r, k, sizeof(k));
		seen++;
		if (strcmp(k, "n") == 0) {
			assert_int_equal(jr_kind(&r), 'n');
			assert_true(jr_num(&r) == 9007199254740991.0);
		} else if (strcmp(k, "f") == 0) {
			assert_true(jr_num(&r) == -0.25);
		} else if (strcmp(k, "big") == 0) {
			assert_true(jr_num(&r) == 1e300);
		} else if (strcmp(k, "skip") == 0) {
			assert_int_equal(jr_kind(&r), '{');
			jr_skip(&r);
		} else if (strcmp(k, "t") == 0) {
			assert_int_equal(jr_kind(&r), 't');
			assert_true(jr_bool(&r));
		} else if (strcmp(k, "s") == 0) {
			assert_int_equal(jr_str(&r, s, sizeof(s)), 4);
			assert_string_equal(s, "a\xc3\xa9\n");
		} else if (strcmp(k, "z") == 0) {
			assert_int_equal(jr_kind(&r), 'z');
			jr_skip(&r);
		} else {
			/* the long name, and the one with a NUL inside */
			assert_string_equal(k, "");
			assert_true(kl == sizeof(k) || kl == 4);
			jr_skip(&r);
		}
	}
	assert_int_equal(seen, 9);
	assert_ptr_equal(r.p, doc + strlen(doc));
	/* A string too long for the buffer comes back as "" and cap. */
	const char *lng = "\"abcdefghij\"";
	struct jr r2 = {lng, lng + strlen(lng)};
	assert_int_equal(jr_str(&r2, s, sizeof(s)), sizeof(s));
	assert_string_equal(s, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_accepts_json_and_finds_its_end),
	    cmocka_unit_test(test_refuses_what_is_not_json),
	    cmocka_unit_test(test_refuses_deep_nesting_without_overflowing),
	    cmocka_unit_test(test_strings_read_back_what_was_written),
	    cmocka_unit_test(test_reads_members_numbers_and_skips),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
