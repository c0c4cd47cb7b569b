/* test_codec.c - the JSON byte-string helpers of store/codec.c: base64
 * round trips at every length mod 3 and rejection of non-canonical input,
 * the UTF-8 validator, and JSON string escaping checked by parsing the
 * output back with cJSON. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "codec.h"

static void test_base64_round_trips_every_length(void **state)
{
	unsigned char in[300];

	(void)state;
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (unsigned char)(i * 7 + 3);
	for (size_t n = 0; n < sizeof(in); n++) {
		struct kv_buf b;
		unsigned char *out;
		size_t outlen;

		kv_buf_init(&b);
		kv_buf_base64(&b, in, n);
		assert_int_equal(b.err, 0);
		assert_int_equal(b.len, (n + 2) / 3 * 4);
		assert_int_equal(kv_base64_decode(b.p, b.len, &out, &outlen),
				 0);
		assert_int_equal(outlen, n);
		assert_memory_equal(out, in, n);
		free(out);
		kv_buf_free(&b);
	}
}

static void test_base64_matches_known_vectors(void **state)
{
	static const char *const want[] = {
	    "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
	(void)state;
	for (size_t n = 0; n <= 6; n++) {
		struct kv_buf b;
		kv_buf_init(&b);
		kv_buf_base64(&b, "foobar", n);
		assert_string_equal(b.p, want[n]);
		kv_buf_free(&b);
	}
}

static void test_base64_rejects_malformed_input(void **state)
{
	static const char *const bad[] = {
	    "Zg=",	/* not a multiple of 4 */
	    "Zh==",	/* nonzero unused bits */
	    "Zm9=",	/* nonzero unused bits */
	    "Z===",	/* too much padding */
	    "Zg==Zg==", /* padding in the middle */
	    "Zm 9",	/* whitespace */
	    "Zm9*",	/* bad character */
	    "=Zm9",
	    "Zm9*Zm9v", /* bad characters before the last group */
	    "Zm9\xffZm9v",
	    "Zm-vZm9v",
	};
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		unsigned char *out = NULL;
		size_t outlen;
		assert_int_equal(
		    kv_base64_decode(bad[i], strlen(bad[i]), &out, &outlen),
		    -EINVAL);
		assert_null(out);
	}
}

/* The word-at-a-time scan stops where a byte-by-byte one does, wherever
 * the special byte sits in a word and whatever surrounds it. */
static void test_json_plain_span_matches_a_byte_by_byte_scan(void **state)
{
	static const unsigned char specials[] = {0, 1, 0x1f, '"', '\\'};
	static const unsigned char others[] = {' ',  'a',  0x21, 0x5b, 0x5d,
					       0x7f, 0x80, 0xc3, 0xff};
	unsigned char buf[40];
	(void)state;
	for (size_t o = 0; o < sizeof(others); o++)
		for (size_t sp = 0; sp < sizeof(specials); sp++)
			for (size_t at = 0; at <= 24; at++) {
				memset(buf, others[o], sizeof(buf));
				buf[at] = specials[sp];
				assert_int_equal(kv_json_plain_span(buf, 32),
						 at < 32 ? at : 32);
				assert_int_equal(kv_json_plain_span(buf, at),
						 at);
			}
	memset(buf, 'x', sizeof(buf));
	assert_int_equal(kv_json_plain_span(buf, sizeof(buf)), sizeof(buf));
}

static void test_utf8_validator_accepts_and_rejects(void **state)
{
	(void)state;
	assert_true(kv_utf8_valid("", 0, false));
	assert_true(kv_utf8_valid("plain ascii\n\t", 13, false));
	assert_true(
	    kv_utf8_valid("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9, false));
	assert_false(kv_utf8_valid("a\0b", 3, false));
	assert_true(kv_utf8_valid("a\0b", 3, true));
	assert_false(kv_utf8_valid("\xff", 1, true));
	assert_false(kv_utf8_valid("\xfe", 1, true));
	assert_false(kv_utf8_valid("\x80", 1, true));
	assert_false(kv_utf8_valid("\xc0\x80", 2, true));
	assert_false(kv_utf8_valid("\xe0\x80\x80", 3, true));
	assert_false(kv_utf8_valid("\xed\xa0\x80", 3, true));
	assert_false(kv_utf8_valid("\xf4\x90\x80\x80", 4, true));
	assert_false(kv_utf8_valid("\xe2\x82", 2, true));
	assert_false(kv_utf8_valid("\xf0\x9f\x98", 3, true));
	/* inside and after runs of eight ASCII bytes */
	assert_false(kv_utf8_valid("0123456789a\0cdefgh", 19, false));
	assert_true(kv_utf8_valid("0123456789a\0cdefgh", 19, true));
	assert_false(kv_utf8_valid("0123456789abcdef\xff", 17, true));
	assert_true(kv_utf8_valid("0123456789abcdef\xc3\xa9", 18, false));
}

/* Escape s, check the output has no raw control bytes, and parse it back. */
static void round_trip_json_string(const char *s, size_t n)
{
	struct kv_buf b;
	cJSON *j;

	kv_buf_init(&b);
	kv_buf_json_str(&b, s, n);
	assert_int_equal(b.err, 0);
	for (size_t i = 0; i < b.len; i++)
		assert_true((unsigned char)b.p[i] >= 0x20);
	j = cJSON_ParseWithLength(b.p, b.len);
	assert_non_null(j);
	assert_true(cJSON_IsString(j));
	assert_int_equal(strlen(j->valuestring), n);
	assert_memory_equal(j->valuestring, s, n);
	cJSON_Delete(j);
	kv_buf_free(&b);
}

static void test_json_string_escapes_control_chars_and_quotes(void **state)
{
	char all[32 + 5];
	struct kv_buf b;

	(void)state;
	for (int i = 1; i < 32; i++)
		all[i - 1] = (char)i;
	memcpy(all + 31, "\"\\/\x7f", 4);
	round_trip_json_string(all, 35);
	round_trip_json_string("", 0);
	round_trip_json_string("caf\xc3\xa9 \xf0\x9f\x98\x80", 10);

	kv_buf_init(&b);
	kv_buf_json_str(&b, "a\"b\\c\nd\x01", 8);
	assert_string_equal(b.p, "\"a\\\"b\\\\c\\nd\\u0001\"");
	kv_buf_free(&b);
}

static void test_buffer_printf_grows_past_its_first_chunk(void **state)
{
	struct kv_buf b;
	char big[1000];

	(void)state;
	memset(big, 'q', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	kv_buf_init(&b);
	kv_buf_puts(&b, "x");
	kv_buf_printf(&b, "%s%d", big, 42);
	assert_int_equal(b.err, 0);
	assert_int_equal(b.len, 1 + 999 + 2);
	assert_string_equal(b.p + 1000, "42");
	kv_buf_free(&b);
}

/* kv_buf_json_text against the three passes it replaces (kv_utf8_valid,
 * then kv_buf_json_str): byte for byte the same text, or false and
 * nothing appended, whatever the prefix already in the buffer (so the
 * value ends near or across the buffer's growth points), the length
 * (each remainder mod 8) and the bytes: plain ASCII, escapes, UTF-8 of
 * every length, and each way to break it (NUL, a stray continuation,
 * overlong, surrogate, past U+10FFFF, cut off at the end). */
static const char *const text_pieces[] = {"a",
					  "bcdefgh",
					  "\"",
					  "\\",
					  "\n",
					  "\t",
					  "\x01",
					  "\x1f",
					  "\x7f",
					  "\xc3\xa9",
					  "\xe2\x82\xac",
					  "\xf0\x9f\x98\x80",
					  "\xf4\x8f\xbf\xbf",
					  "ABCDEFGHIJKLMNOP",
					  "\r\b\f",
					  " ~"};
static const char *const bad_pieces[] = {
    "\x80",	    "\xc0\xaf",		"\xc1\xbf",	    "\xe0\x80\xaf",
    "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xff",
    "\xc3",	    "\xe2\x82",		"\xf0\x9f\x98"};

static void expect_json_text_as_reference(const unsigned char *v, size_t n,
					  size_t prefix)
{
	struct kv_buf want, got;
	kv_buf_init(&want);
	kv_buf_init(&got);
	for (size_t i = 0; i < prefix; i++) {
		kv_buf_put(&want, "p", 1);
		kv_buf_put(&got, "p", 1);
	}
	bool text = kv_utf8_valid(v, n, false);
	if (text)
		kv_buf_json_str(&want, v, n);
	assert_true(kv_buf_json_text(&got, v, n) == text);
	assert_int_equal(got.err, 0);
	assert_int_equal(got.len, want.len);
	if (want.p == NULL) /* nothing before, nothing appended */
		assert_true(got.p == NULL || got.p[0] == '\0');
	else
		assert_memory_equal(got.p, want.p, want.len + 1); /* and NUL */
	kv_buf_free(&want);
	kv_buf_free(&got);
}

static void test_json_text_is_the_check_and_the_escape_in_one(void **state)
{
	(void)state;
	unsigned seed = 25;
	unsigned char v[600];
	size_t ntext = sizeof(text_pieces) / sizeof(text_pieces[0]);
	size_t nbad = sizeof(bad_pieces) / sizeof(bad_pieces[0]);
	for (int round = 0; round < 20000; round++) {
		size_t n = 0, want = (size_t)rand_r(&seed) % 560;
		while (n < want) {
			const char *p = text_pieces[rand_r(&seed) % ntext];
			if (rand_r(&seed) % 3) /* runs of plain ASCII */
				p = "abcdefghijklmnopqrstuvwxyz0123456789";
			size_t l = strlen(p);
			memcpy(v + n, p, l);
			n += l;
		}
		if (round % 4 == 0 && n > 0) { /* break it somewhere */
			const char *b = bad_pieces[rand_r(&seed) % nbad];
			size_t l = strlen(b), at = (size_t)rand_r(&seed) % n;
			if (round % 8 == 0)
				at = n; /* cut off at the very end */
			memcpy(v + at, b, l);
			n = at + l;
		}
		if (round % 16 == 1 && n > 0)
			v[(size_t)rand_r(&seed) % n] = '\0';
		expect_json_text_as_reference(v, n, (size_t)round % 300);
	}
	/* a 1 MiB value, plain but for one escape and one multi-byte
	 * character near its end, and broken in its last byte */
	size_t big = 1u << 20;
	unsigned char *m = malloc(big);
	assert_non_null(m);
	for (size_t i = 0; i < big; i++)
		m[i] = (unsigned char)('a' + i % 26);
	memcpy(m + big - 9, "\"\xc3\xa9", 3);
	expect_json_text_as_reference(m, big, 13);
	m[big - 1] = 0xc3;
	expect_json_text_as_reference(m, big, 13);
	free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_base64_round_trips_every_length),
	    cmocka_unit_test(test_base64_matches_known_vectors),
	    cmocka_unit_test(test_json_plain_span_matches_a_byte_by_byte_scan),
	    cmocka_unit_test(test_base64_rejects_malformed_input),
	    cmocka_unit_test(test_utf8_validator_accepts_and_rejects),
	    cmocka_unit_test(test_json_string_escapes_control_chars_and_quotes),
	    cmocka_unit_test(test_buffer_printf_grows_past_its_first_chunk),
	    cmocka_unit_test(test_json_text_is_the_check_and_the_escape_in_one),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
