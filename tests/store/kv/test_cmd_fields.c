/* test_cmd_fields.c - the command reader's field names (cmd.c's lookup
 * by length and first byte), its string and time readers (jr_str_nonul,
 * kv_i64_parse's short path): every field of every version is read, and
 * near-miss names (one byte changed, added or dropped, another case),
 * duplicates, a NUL in a name and every truncation of a line are
 * refused as before; a name spelled with an escape still is its field. */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec.h"
#include "jread.h"
#include "kv.h"

/* Lines that together hold every field (v op k k2 val val64 mt mode flags
 * if_rev if_absent t at uid gid x xn add sid node own pid lt lkind ls le
 * if_sid lease ttl txn), each member its own string. */
#define MAXM 16
static const char *const samples[][MAXM] = {
    {"\"v\":4", "\"op\":\"put\"", "\"k\":\"a/b\"", "\"val\":\"x\"",
     "\"mt\":\"5\"", "\"mode\":420", "\"if_rev\":3", "\"t\":\"7\"",
     "\"at\":\"6\"", "\"uid\":1", "\"gid\":2",
     "\"x\":[{\"n\":\"user.a\",\"v\":\"1\"}]", "\"if_sid\":9", "\"lease\":4",
     NULL},
    {"\"v\":4", "\"op\":\"put\"", "\"k\":\"a\"", "\"val64\":\"eA==\"",
     "\"mt\":\"5\"", "\"if_absent\":true", "\"ttl\":30", NULL},
    {"\"v\":2", "\"op\":\"rename\"", "\"k\":\"a\"", "\"k2\":\"b\"",
     "\"flags\":1", "\"t\":\"3\"", NULL},
    {"\"v\":2", "\"op\":\"setxattr\"", "\"k\":\"a\"", "\"xn\":\"user.q\"",
     "\"val\":\"z\"", "\"flags\":1", "\"t\":\"3\"", NULL},
    {"\"v\":3", "\"op\":\"add\"", "\"k\":\"c\"",
     "\"add\":[{\"n\":\"hits\",\"d\":1}]", "\"t\":\"3\"", NULL},
    {"\"v\":3", "\"op\":\"lock\"", "\"k\":\"f\"", "\"sid\":2", "\"own\":\"5\"",
     "\"pid\":7", "\"lt\":1", "\"lkind\":2", "\"ls\":\"0\"", "\"le\":\"10\"",
     NULL},
    {"\"v\":3", "\"op\":\"sess_open\"", "\"node\":1", NULL},
    {"\"op\":\"noop\"", "\"v\":1", NULL}, /* the version after the op */
};
#define NSAMPLES (sizeof(samples) / sizeof(samples[0]))

static char line[4096];

/* The members joined into line (member skip left out, member dup twice,
 * member ren's name replaced by name); its length. */
static size_t join(const char *const *m, int skip, int dup, int ren,
		   const char *name)
{
	size_t n = 0;
	line[n++] = '{';
	for (int i = 0; m[i]; i++) {
		for (int twice = 0; twice < 1 + (i == dup); twice++) {
			if (i == skip)
				continue;
			if (n > 1)
				line[n++] = ',';
			const char *v = m[i];
			if (i == ren) {
				const char *colon = strchr(v + 1, '"') + 1;
				n +=
				    (size_t)snprintf(line + n, sizeof(line) - n,
						     "\"%s\"%s", name, colon);
			} else {
				n += (size_t)snprintf(
				    line + n, sizeof(line) - n, "%s", v);
			}
		}
	}
	line[n++] = '}';
	line[n] = '\0';
	return n;
}

static int decode(size_t n)
{
	struct kv_cmd c;
	int err = kv_cmd_decode(line, n, &c);
	if (err == 0)
		kv_cmd_clear(&c);
	return err;
}

/* The name of member m ("k" of "\"k\":..."). */
static void name_of(const char *m, char *out, size_t cap)
{
	size_t n = (size_t)(strchr(m + 1, '"') - (m + 1));
	assert_true(n < cap);
	memcpy(out, m + 1, n);
	out[n] = '\0';
}

static void test_every_sample_decodes(void **state)
{
	(void)state;
	for (size_t s = 0; s < NSAMPLES; s++) {
		size_t n = join(samples[s], -1, -1, -1, NULL);
		if (decode(n) != 0)
			fail_msg("sample %zu does not decode: %s", s, line);
	}
}

/* Every field of the samples is read: each, left out of a line that
 * does not need it or not, changes nothing but that field; and renamed
 * (a byte changed, one added, one dropped, the first upper-cased), the
 * line is refused. */
static void test_near_miss_names_refused(void **state)
{
	(void)state;
	for (size_t s = 0; s < NSAMPLES; s++)
		for (int i = 0; samples[s][i]; i++) {
			char name[32], bad[40];
			name_of(samples[s][i], name, sizeof(name));
			size_t len = strlen(name);
			for (int how = 0; how < 6; how++) {
				strcpy(bad, name);
				if (how == 0)
					bad[len - 1]++;
				else if (how == 1)
					bad[0]++;
				else if (how == 2)
					strcat(bad, "x");
				else if (how == 3 && len > 1)
					bad[len - 1] = '\0';
				else if (how == 4)
					bad[0] = (char)(bad[0] - 'a' + 'A');
				else if (how == 5)
					bad[len / 2]--;
				else
					continue;
				size_t n = join(samples[s], -1, -1, i, bad);
				if (decode(n) != -EINVAL)
					fail_msg("accepted (%s for %s): %s",
						 bad, name, line);
			}
		}
}

static void test_duplicates_refused(void **state)
{
	(void)state;
	for (size_t s = 0; s < NSAMPLES; s++)
		for (int i = 0; samples[s][i]; i++) {
			size_t n = join(samples[s], -1, i, -1, NULL);
			if (decode(n) != -EINVAL)
				fail_msg("a duplicate accepted: %s", line);
		}
}

/* A name spelled with an escape is the field it unescapes to; with a NUL
 * it is none. */
static void test_escaped_names(void **state)
{
	(void)state;
	for (size_t s = 0; s < NSAMPLES; s++)
		for (int i = 0; samples[s][i]; i++) {
			char name[32], esc[48];
			name_of(samples[s][i], name, sizeof(name));
			snprintf(esc, sizeof(esc), "\\u%04x%s",
				 (unsigned char)name[0], name + 1);
			size_t n = join(samples[s], -1, -1, i, esc);
			if (decode(n) != 0)
				fail_msg("escaped name refused: %s", line);
			snprintf(esc, sizeof(esc), "%s\\u0000", name);
			n = join(samples[s], -1, -1, i, esc);
			if (decode(n) != -EINVAL)
				fail_msg("a NUL in a name accepted: %s", line);
		}
}

static void test_every_truncation_refused(void **state)
{
	(void)state;
	for (size_t s = 0; s < NSAMPLES; s++) {
		size_t n = join(samples[s], -1, -1, -1, NULL);
		for (size_t cut = 0; cut < n; cut++)
			if (decode(cut) == 0)
				fail_msg("sample %zu cut at %zu accepted", s,
					 cut);
	}
}

/* The fields land where they belong (a lookup that mixed two up would
 * decode, into the wrong place). */
static void test_fields_land(void **state)
{
	(void)state;
	struct kv_cmd c;
	size_t n = join(samples[0], -1, -1, -1, NULL);
	assert_int_equal(kv_cmd_decode(line, n, &c), 0);
	assert_int_equal(c.op, KV_OP_PUT);
	assert_string_equal(c.key, "a/b");
	assert_memory_equal(c.val, "x", 1);
	assert_int_equal(c.mtime_ns, 5);
	assert_int_equal(c.mode, 420);
	assert_int_equal(c.if_rev, 3);
	assert_int_equal(c.time_ns, 7);
	assert_int_equal(c.atime_ns, 6);
	assert_int_equal(c.uid, 1);
	assert_int_equal(c.gid, 2);
	assert_int_equal(c.nxattr, 1);
	assert_int_equal(c.if_sid, 9);
	assert_int_equal(c.lease, 4);
	kv_cmd_clear(&c);
	n = join(samples[2], -1, -1, -1, NULL);
	assert_int_equal(kv_cmd_decode(line, n, &c), 0);
	assert_string_equal(c.key2, "b");
	assert_int_equal(c.flags, 1);
	kv_cmd_clear(&c);
	n = join(samples[5], -1, -1, -1, NULL);
	assert_int_equal(kv_cmd_decode(line, n, &c), 0);
	assert_int_equal(c.sid, 2);
	assert_int_equal(c.lock_owner, 5);
	assert_int_equal(c.lock_pid, 7);
	assert_int_equal(c.lock_type, KV_LOCK_RD);
	assert_int_equal(c.lock_kind, KV_LOCK_POSIX);
	assert_int_equal(c.lock_start, 0);
	assert_int_equal(c.lock_end, 10);
	kv_cmd_clear(&c);
	n = join(samples[1], -1, -1, -1, NULL);
	assert_int_equal(kv_cmd_decode(line, n, &c), 0);
	assert_true(c.if_absent);
	assert_int_equal(c.ttl, 30);
	kv_cmd_clear(&c);
}

/* A txn's field: encoded, then its name near-missed. */
static void test_txn_field(void **state)
{
	(void)state;
	struct kv_txn_op s[] = {{.kind = KV_TXN_GET, .key = "a", .klen = 1}};
	struct kv_txn t = {.br = {s, NULL}, .nop = {1, 0}};
	struct kv_cmd c = {.op = KV_OP_TXN, .txn = &t, .time_ns = 3}, d;
	char *json;
	size_t len;
	assert_int_equal(kv_cmd_encode(&c, &json, &len), 0);
	assert_int_equal(kv_cmd_decode(json, len, &d), 0);
	assert_non_null(d.txn);
	kv_cmd_clear(&d);
	char *p = strstr(json, "\"txn\"");
	assert_non_null(p);
	p[3] = 'o'; /* "txo" */
	assert_int_equal(kv_cmd_decode(json, len, &d), -EINVAL);
	free(json);
}

/* The old kv_i64_parse, the rule the short path must keep. */
static int ref_i64(const char *s, int64_t *out)
{
	char *end;
	size_t i = s[0] == '-';
	if (s[i] == '\0' || strspn(s + i, "0123456789") != strlen(s + i))
		return -EINVAL;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return -EINVAL;
	*out = v;
	return 0;
}

static void test_i64_parse_as_strtoll(void **state)
{
	(void)state;
	static const char *const v[] = {"0",
					"-0",
					"7",
					"007",
					"-12",
					"123456789012345678",
					"999999999999999999",
					"-999999999999999999",
					"1234567890123456789",
					"9223372036854775807",
					"9223372036854775808",
					"-9223372036854775808",
					"-9223372036854775809",
					"00000000000000000001",
					"99999999999999999999",
					"9999999999999999999",
					"-9999999999999999999",
					"1764720000123456789",
					"-1764720000123456789",
					"",
					"-",
					"--1",
					"1-",
					"+1",
					" 1",
					"1 ",
					"12a",
					"a",
					"0x10",
					"1.5"};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		int64_t a = 0x5a5a, b = 0x5a5a;
		int ea = kv_i64_parse(v[i], &a), eb = ref_i64(v[i], &b);
		if (ea != eb || (ea == 0 && a != b))
			fail_msg("\"%s\": %d %" PRId64
				 ", strtoll's %d %" PRId64,
				 v[i], ea, a, eb, b);
	}
}

static void test_str_nonul(void **state)
{
	(void)state;
	static const struct {
		const char *json;
		size_t cap, want;
		const char *out;
	} c[] = {
	    {"\"abc\"", 8, 3, "abc"},	      {"\"a\\nb\"", 8, 3, "a\nb"},
	    {"\"a\\u0000b\"", 8, 8, ""},      {"\"\\u0000\"", 8, 8, ""},
	    {"\"abcdefgh\"", 8, 8, ""},	      {"\"abcdefg\"", 8, 7, "abcdefg"},
	    {"\"\\u0061bcdefgh\"", 8, 8, ""}, {"\"\"", 8, 0, ""},
	};
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		const char *end;
		char buf[16];
		assert_int_equal(jr_check(c[i].json, strlen(c[i].json), &end),
				 0);
		struct jr r = {c[i].json, end};
		assert_int_equal(jr_str_nonul(&r, buf, c[i].cap), c[i].want);
		assert_string_equal(buf, c[i].out);
		assert_ptr_equal(r.p, end);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_sample_decodes),
	    cmocka_unit_test(test_near_miss_names_refused),
	    cmocka_unit_test(test_duplicates_refused),
	    cmocka_unit_test(test_escaped_names),
	    cmocka_unit_test(test_every_truncation_refused),
	    cmocka_unit_test(test_fields_land),
	    cmocka_unit_test(test_txn_field),
	    cmocka_unit_test(test_i64_parse_as_strtoll),
	    cmocka_unit_test(test_str_nonul),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
