/* test_cmd.c - commands as JSON lines: every op and every field
 * (owners, times, kinds, extended attributes) round-trips through
 * kv_cmd_encode/kv_cmd_decode, values of any bytes (NUL, invalid UTF-8,
 * newlines, 0xFF, KV_MAX_VALUE bytes) come back exactly, version 1 lines
 * still decode, and malformed JSON, wrong types, unknown fields or ops,
 * fields a version does not have and another version are rejected. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "kv.h"

static void assert_cmd_equal(const struct kv_cmd *a, const struct kv_cmd *b)
{
	assert_int_equal(a->op, b->op);
	assert_int_equal(a->klen, b->klen);
	if (a->klen)
		assert_memory_equal(a->key, b->key, a->klen);
	assert_int_equal(a->k2len, b->k2len);
	if (a->k2len)
		assert_memory_equal(a->key2, b->key2, a->k2len);
	assert_int_equal(a->vlen, b->vlen);
	if (a->vlen)
		assert_memory_equal(a->val, b->val, a->vlen);
	assert_int_equal(a->mtime_ns, b->mtime_ns);
	assert_int_equal(a->mode, b->mode);
	assert_int_equal(a->flags, b->flags);
	assert_int_equal(a->if_rev, b->if_rev);
	assert_int_equal(a->if_absent, b->if_absent);
	assert_int_equal(a->set_mode, b->set_mode);
	assert_int_equal(a->set_mtime, b->set_mtime);
	assert_int_equal(a->xnlen, b->xnlen);
	if (a->xnlen)
		assert_memory_equal(a->xname, b->xname, a->xnlen);
	assert_int_equal(a->set_xattrs, b->set_xattrs);
	assert_int_equal(a->nxattr, b->nxattr);
	for (size_t i = 0; i < a->nxattr; i++) {
		assert_int_equal(a->xattrs[i].nlen, b->xattrs[i].nlen);
		assert_memory_equal(a->xattrs[i].name, b->xattrs[i].name,
				    a->xattrs[i].nlen);
		assert_int_equal(a->xattrs[i].vlen, b->xattrs[i].vlen);
		if (a->xattrs[i].vlen)
			assert_memory_equal(a->xattrs[i].val, b->xattrs[i].val,
					    a->xattrs[i].vlen);
	}
	assert_int_equal(a->time_ns, b->time_ns);
	assert_int_equal(a->set_atime, b->set_atime);
	if (a->set_atime)
		assert_int_equal(a->atime_ns, b->atime_ns);
	assert_int_equal(a->set_uid, b->set_uid);
	assert_int_equal(a->set_gid, b->set_gid);
	if (a->set_uid)
		assert_int_equal(a->uid, b->uid);
	if (a->set_gid)
		assert_int_equal(a->gid, b->gid);
	assert_int_equal(a->sid, b->sid);
	assert_int_equal(a->node, b->node);
	assert_int_equal(a->lock_owner, b->lock_owner);
	assert_int_equal(a->lock_pid, b->lock_pid);
	assert_int_equal(a->lock_type, b->lock_type);
	assert_int_equal(a->lock_kind, b->lock_kind);
	assert_int_equal(a->lock_start, b->lock_start);
	assert_int_equal(a->lock_end, b->lock_end);
	assert_int_equal(a->if_sid, b->if_sid);
}

/* Encode, check it is one line, decode, compare. */
static void round_trip(const struct kv_cmd *c)
{
	struct kv_cmd d;
	char *line;
	size_t len;

	assert_int_equal(kv_cmd_encode(c, &line, &len), 0);
	assert_int_equal(strlen(line), len);
	assert_null(memchr(line, '\n', len));
	assert_int_equal(kv_cmd_decode(line, len, &d), 0);
	assert_cmd_equal(c, &d);
	kv_cmd_clear(&d);
	free(line);
}

static struct kv_cmd cmd(enum kv_op op, const char *key)
{
	struct kv_cmd c = {.op = op};
	if (key != NULL) {
		c.key = (char *)key;
		c.klen = strlen(key);
	}
	return c;
}

static void test_every_op_round_trips(void **state)
{
	struct kv_cmd c;

	(void)state;
	round_trip(&(struct kv_cmd){.op = KV_OP_NOOP});

	c = cmd(KV_OP_PUT, "dir/k\xc3\xa9y \"quoted\"");
	c.val = (unsigned char *)"hello\nworld";
	c.vlen = 11;
	c.mtime_ns = 1712345678123456789LL;
	round_trip(&c);
	c.mode = 0600;
	c.set_mode = true;
	c.if_rev = 77;
	round_trip(&c);
	c.if_rev = 0;
	c.if_absent = true;
	c.mtime_ns = -5;
	round_trip(&c);

	c = cmd(KV_OP_PUT, "empty");
	c.val = (unsigned char *)"";
	round_trip(&c);

	c = cmd(KV_OP_DEL, "a/b");
	round_trip(&c);
	c.if_rev = 9007199254740992ULL;
	round_trip(&c);

	c = cmd(KV_OP_MKDIR, "a/b");
	c.mode = 0750;
	c.set_mode = true;
	c.mtime_ns = INT64_MAX;
	round_trip(&c);

	round_trip(&(struct kv_cmd){.op = KV_OP_RMDIR, .key = "x", .klen = 1});

	c = cmd(KV_OP_RENAME, "a");
	c.key2 = "b/c";
	c.k2len = 3;
	round_trip(&c);
	c.flags = KV_RENAME_NOREPLACE;
	round_trip(&c);
	c.flags = KV_RENAME_EXCHANGE;
	round_trip(&c);

	c = cmd(KV_OP_SETATTR, "f");
	round_trip(&c);
	c.set_mode = true;
	c.mode = 04755;
	round_trip(&c);
	c.set_mtime = true;
	c.mtime_ns = INT64_MIN;
	round_trip(&c);
	c.set_mode = false;
	c.mode = 0;
	round_trip(&c);
}

static void test_version_2_fields_round_trip(void **state)
{
	struct kv_xattr xa[3] = {
	    {"user.text", 9, (const unsigned char *)"hello", 5},
	    {"user.bin", 8, (const unsigned char *)"\0\xff", 2},
	    {"user.empty", 10, (const unsigned char *)"", 0},
	};
	struct kv_cmd c = cmd(KV_OP_PUT, "f");

	(void)state;
	c.val = (unsigned char *)"x";
	c.vlen = 1;
	c.mtime_ns = 1;
	c.time_ns = 1712345678123456789LL;
	c.atime_ns = -1;
	c.set_atime = true;
	c.uid = 0;
	c.set_uid = true;
	c.gid = KV_NO_OWNER - 1;
	c.set_gid = true;
	c.set_mode = true;
	c.mode = 0; /* mode 0 is a mode */
	round_trip(&c);
	c.mode = S_IFLNK | 0777;
	round_trip(&c);
	c.mode = S_IFIFO | 0600;
	c.xattrs = xa;
	c.nxattr = 3;
	c.set_xattrs = true;
	round_trip(&c);
	c.nxattr = 0; /* an empty set: every attribute removed */
	round_trip(&c);

	c = cmd(KV_OP_SETATTR, ""); /* the root */
	c.uid = 7;
	c.set_uid = true;
	c.atime_ns = 5;
	c.set_atime = true;
	c.time_ns = 6;
	round_trip(&c);

	c = cmd(KV_OP_SETXATTR, "f");
	c.xname = "user.a";
	c.xnlen = 6;
	c.val = (unsigned char *)"\x01\x02";
	c.vlen = 2;
	round_trip(&c);
	c.flags = KV_XATTR_CREATE;
	c.time_ns = 9;
	round_trip(&c);
	c.flags = KV_XATTR_REPLACE;
	c.val = (unsigned char *)"";
	c.vlen = 0;
	round_trip(&c);

	c = cmd(KV_OP_RMXATTR, "f");
	c.xname = "user.a";
	c.xnlen = 6;
	round_trip(&c);
	for (int op = KV_OP_DEL; op <= KV_OP_RENAME; op++) {
		if (op == KV_OP_MKDIR)
			continue;
		c = cmd((enum kv_op)op, "a");
		c.key2 = "b";
		c.k2len = op == KV_OP_RENAME ? 1 : 0;
		c.time_ns = 42;
		round_trip(&c);
	}
}

static void test_binary_values_round_trip_exactly(void **state)
{
	unsigned char all[256];
	struct kv_cmd c = cmd(KV_OP_PUT, "bin");

	(void)state;
	for (int i = 0; i < 256; i++)
		all[i] = (unsigned char)i;
	c.val = all;
	for (size_t n = 0; n <= 256; n++) { /* every prefix of all bytes */
		c.vlen = n;
		round_trip(&c);
	}
	c.val = (unsigned char *)"\0";
	c.vlen = 1;
	round_trip(&c);
	c.val = (unsigned char *)"\xff\xfe";
	c.vlen = 2;
	round_trip(&c);
	c.val = (unsigned char *)"ok\xc3"; /* truncated UTF-8 */
	c.vlen = 3;
	round_trip(&c);
	c.val = (unsigned char *)"\xed\xa0\x80"; /* a surrogate */
	round_trip(&c);
}

static void test_largest_values_round_trip(void **state)
{
	struct kv_cmd c = cmd(KV_OP_PUT, "big");
	unsigned char *v = malloc(KV_MAX_VALUE);

	(void)state;
	assert_non_null(v);
	for (size_t i = 0; i < KV_MAX_VALUE; i++)
		v[i] = (unsigned char)(i * 2654435761u >> 13);
	c.val = v;
	c.vlen = KV_MAX_VALUE;
	round_trip(&c); /* binary: base64 */
	for (size_t i = 0; i < KV_MAX_VALUE; i++)
		v[i] = (unsigned char)('a' + i % 26);
	v[1000] = '\n';
	v[2000] = '"';
	round_trip(&c); /* text: a JSON string */
	free(v);
}

static int decode(const char *json)
{
	struct kv_cmd c;
	int err = kv_cmd_decode(json, strlen(json), &c);
	if (err == 0)
		kv_cmd_clear(&c);
	return err;
}

static void test_valid_hand_written_command_decodes(void **state)
{
	struct kv_cmd c;
	const char *j = "{\"v\":1,\"op\":\"put\",\"k\":\"a\\u00e9\","
			"\"val64\":\"AP8=\",\"mt\":\"12\",\"if_absent\":true}";

	(void)state;
	assert_int_equal(kv_cmd_decode(j, strlen(j), &c), 0);
	assert_int_equal(c.op, KV_OP_PUT);
	assert_string_equal(c.key, "a\xc3\xa9");
	assert_int_equal(c.vlen, 2);
	assert_memory_equal(c.val, "\0\xff", 2);
	assert_int_equal(c.mtime_ns, 12);
	assert_true(c.if_absent);
	kv_cmd_clear(&c);
}

static void test_malformed_commands_are_rejected(void **state)
{
	static const char *const bad[] = {
	    "",
	    "{",
	    "not json",
	    "[]",
	    "\"put\"",
	    "{\"op\":\"put\",\"k\":\"a\",\"val\":\"x\",\"mt\":\"1\"}",
	    "{\"v\":\"1\",\"op\":\"noop\"}",
	    "{\"v\":1.5,\"op\":\"noop\"}",
	    "{\"v\":1}",
	    "{\"v\":1,\"op\":\"frobnicate\"}",
	    "{\"v\":1,\"op\":7}",
	    "{\"v\":1,\"op\":\"put\",\"k\":\"a\",\"mt\":\"1\"}",
	    "{\"v\":1,\"op\":\"put\",\"k\":\"a\",\"val\":\"x\"}",
	    "{\"v\":1,\"op\":\"put\",\"k\":\"a\",\"val\":\"x\",\"mt\":1}",
	    "{\"v\":1,\"op\":\"put\",\"k\":\"a\",\"val\":\"x\",\"mt\":\"1x\"}",
	    "{\"v\":1,\"op\":\"put\",\"k\":\"a\",\"val\":\"x\","
	    "\"mt\":\"99999999999999999999\"}",
	    "{\"v\":1,\"op\":\"put\",\"k\":\"a\",\"val\":\"x\",\"val64\":"
	    "\"eA==\",\"mt\":\"1\"}",
	    "{\"v\":1,\"op\":\"put\",\"k\":\"a\",\"val64\":\"eA=\","
	    "\"mt\":\"1\"}",
	    "{\"v\":1,\"op\":\"put\",\"k\":\"a\",\"val\":5,\"mt\":\"1\"}",
	    "{\"v\":1,\"op\":\"put\",\"k\":1,\"val\":\"x\",\"mt\":\"1\"}",
	    "{\"v\":1,\"op\":\"put\",\"k\":\"a\",\"val\":\"x\",\"mt\":\"1\","
	    "\"if_absent\":1}",
	    "{\"v\":1,\"op\":\"put\",\"k\":\"a\",\"val\":\"x\",\"mt\":\"1\","
	    "\"mode\":-1}",
	    "{\"v\":1,\"op\":\"put\",\"k\":\"a\",\"val\":\"x\",\"mt\":\"1\","
	    "\"mode\":4096}",
	    "{\"v\":1,\"op\":\"put\",\"k\":\"a\",\"val\":\"x\",\"mt\":\"1\","
	    "\"surprise\":1}",
	    "{\"v\":1,\"op\":\"put\",\"k\":\"a\",\"k\":\"b\",\"val\":\"x\","
	    "\"mt\":\"1\"}",
	    "{\"v\":1,\"op\":\"del\",\"k\":\"a\",\"val\":\"x\"}",
	    "{\"v\":1,\"op\":\"del\",\"k\":\"a\",\"if_rev\":0}",
	    "{\"v\":1,\"op\":\"del\",\"k\":\"a\",\"if_rev\":-3}",
	    "{\"v\":1,\"op\":\"del\"}",
	    "{\"v\":1,\"op\":\"rename\",\"k\":\"a\"}",
	    "{\"v\":1,\"op\":\"rename\",\"k\":\"a\",\"k2\":\"b\",\"flags\":3}",
	    "{\"v\":1,\"op\":\"rename\",\"k\":\"a\",\"k2\":\"b\",\"flags\":4}",
	    "{\"v\":1,\"op\":\"noop\",\"k\":\"a\"}",
	    "{\"v\":1,\"op\":\"noop\"} trailing",
	    /* a NUL inside a key, a value or the op: cJSON used to cut the
	     * string there, so "a\u0000b" silently became the key "a" */
	    "{\"v\":1,\"op\":\"put\",\"k\":\"a\\u0000b\",\"val\":\"x\","
	    "\"mt\":\"1\"}",
	    "{\"v\":1,\"op\":\"put\",\"k\":\"a\",\"val\":\"x\\u0000\","
	    "\"mt\":\"1\"}",
	    "{\"v\":1,\"op\":\"noop\\u0000x\"}",
	    "{\"v\":1,\"op\":\"put\",\"k\":\"a\",\"val\":\"x\","
	    "\"mt\":\"1\\u00002\"}",
	    /* raw control bytes and a lone surrogate are not JSON */
	    "{\"v\":1,\"op\":\"put\",\"k\":\"a\tb\",\"val\":\"x\","
	    "\"mt\":\"1\"}",
	    "{\"v\":1,\"op\":\"put\",\"k\":\"a\",\"val\":\"\\ud800\","
	    "\"mt\":\"1\"}",
	    /* version 1 has none of version 2's fields or ops */
	    "{\"v\":1,\"op\":\"put\",\"k\":\"a\",\"val\":\"x\",\"mt\":\"1\","
	    "\"uid\":0}",
	    "{\"v\":1,\"op\":\"del\",\"k\":\"a\",\"t\":\"5\"}",
	    "{\"v\":1,\"op\":\"rmxattr\",\"k\":\"a\",\"xn\":\"user.a\"}",
	    "{\"v\":1,\"op\":\"put\",\"k\":\"a\",\"val\":\"x\",\"mt\":\"1\","
	    "\"mode\":41471}",
	    /* kinds: a put makes no directory or device; setattr and mkdir
	     * take permission bits only */
	    "{\"v\":2,\"op\":\"put\",\"k\":\"a\",\"val\":\"\",\"mt\":\"1\","
	    "\"mode\":16877}",
	    "{\"v\":2,\"op\":\"put\",\"k\":\"a\",\"val\":\"\",\"mt\":\"1\","
	    "\"mode\":8630}",
	    "{\"v\":2,\"op\":\"setattr\",\"k\":\"a\",\"mode\":33188}",
	    "{\"v\":2,\"op\":\"mkdir\",\"k\":\"a\",\"mt\":\"1\",\"mode\":4096}",
	    /* owners: no negative, and KV_NO_OWNER is not an owner */
	    "{\"v\":2,\"op\":\"setattr\",\"k\":\"a\",\"uid\":-1}",
	    "{\"v\":2,\"op\":\"setattr\",\"k\":\"a\",\"gid\":4294967295}",
	    "{\"v\":2,\"op\":\"setattr\",\"k\":\"a\",\"uid\":\"0\"}",
	    /* times: decimal strings, and t is never 0 */
	    "{\"v\":2,\"op\":\"del\",\"k\":\"a\",\"t\":\"0\"}",
	    "{\"v\":2,\"op\":\"del\",\"k\":\"a\",\"t\":5}",
	    "{\"v\":2,\"op\":\"setattr\",\"k\":\"a\",\"at\":\"x\"}",
	    "{\"v\":2,\"op\":\"rmdir\",\"k\":\"a\",\"at\":\"1\"}",
	    /* attribute sets: an array of {n, v|v64}, on a put only */
	    "{\"v\":2,\"op\":\"put\",\"k\":\"a\",\"val\":\"\",\"mt\":\"1\","
	    "\"x\":{}}",
	    "{\"v\":2,\"op\":\"put\",\"k\":\"a\",\"val\":\"\",\"mt\":\"1\","
	    "\"x\":[{\"n\":\"user.a\"}]}",
	    "{\"v\":2,\"op\":\"put\",\"k\":\"a\",\"val\":\"\",\"mt\":\"1\","
	    "\"x\":[{\"v\":\"1\"}]}",
	    "{\"v\":2,\"op\":\"put\",\"k\":\"a\",\"val\":\"\",\"mt\":\"1\","
	    "\"x\":[{\"n\":\"user.a\",\"v\":\"1\",\"v64\":\"MQ==\"}]}",
	    "{\"v\":2,\"op\":\"put\",\"k\":\"a\",\"val\":\"\",\"mt\":\"1\","
	    "\"x\":[{\"n\":\"user.a\",\"v\":\"1\",\"z\":1}]}",
	    "{\"v\":2,\"op\":\"put\",\"k\":\"a\",\"val\":\"\",\"mt\":\"1\","
	    "\"x\":[{\"n\":\"user.a\",\"v64\":\"M\"}]}",
	    "{\"v\":2,\"op\":\"setattr\",\"k\":\"a\",\"x\":[]}",
	    /* setxattr needs a name and a value; rmxattr a name */
	    "{\"v\":2,\"op\":\"setxattr\",\"k\":\"a\",\"val\":\"1\"}",
	    "{\"v\":2,\"op\":\"setxattr\",\"k\":\"a\",\"xn\":\"user.a\"}",
	    "{\"v\":2,\"op\":\"setxattr\",\"k\":\"a\",\"xn\":\"user.a\","
	    "\"val\":\"1\",\"flags\":3}",
	    "{\"v\":2,\"op\":\"rmxattr\",\"k\":\"a\"}",
	    "{\"v\":2,\"op\":\"rmxattr\",\"k\":\"a\",\"xn\":\"user.a\","
	    "\"val\":\"1\"}",
	};
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int err = decode(bad[i]);
		if (err != -EINVAL)
			fail_msg("accepted or wrong error %d: %s", err, bad[i]);
	}
}

static void test_other_versions_are_refused_as_version_errors(void **state)
{
	(void)state;
	assert_int_equal(decode("{\"v\":5,\"op\":\"noop\"}"), KV_EVERSION);
	assert_int_equal(decode("{\"v\":0,\"op\":\"noop\",\"new\":[1]}"),
			 KV_EVERSION);
	assert_int_equal(decode("{\"v\":1,\"op\":\"noop\"}"), 0);
	assert_int_equal(decode("{\"v\":2,\"op\":\"noop\"}"), 0);
}

static void test_lock_table_commands_round_trip_as_version_3(void **state)
{
	struct kv_cmd c = cmd(KV_OP_LOCK, "dir/f");
	char *line;
	size_t len;

	(void)state;
	c.sid = 9007199254740992ull; /* 2^53, the largest JSON integer */
	c.lock_owner = UINT64_MAX;   /* owners are any 64 bits: a string */
	c.lock_pid = UINT32_MAX;
	c.lock_type = KV_LOCK_WR;
	c.lock_kind = KV_LOCK_POSIX;
	c.lock_start = 12;
	c.lock_end = KV_LOCK_EOF;
	round_trip(&c);
	c.lock_type = KV_LOCK_UN;
	c.lock_kind = KV_LOCK_FLOCK;
	c.lock_start = c.lock_end = 0;
	round_trip(&c);
	assert_int_equal(kv_cmd_encode(&c, &line, &len), 0);
	assert_non_null(strstr(line, "{\"v\":3,\"op\":\"lock\""));
	free(line);
	round_trip(&(struct kv_cmd){.op = KV_OP_SESS_OPEN, .node = 3});
	round_trip(&(struct kv_cmd){.op = KV_OP_SESS_RENEW, .sid = 17});
	round_trip(&(struct kv_cmd){.op = KV_OP_SESS_END, .sid = 17});
	round_trip(
	    &(struct kv_cmd){.op = KV_OP_SESS_END, .sid = 17, .if_rev = 40});
	/* a session op names no key */
	assert_int_equal(
	    kv_cmd_encode(&(struct kv_cmd){.op = KV_OP_SESS_RENEW, .sid = 17},
			  &line, &len),
	    0);
	assert_string_equal(line, "{\"v\":3,\"op\":\"sess_renew\",\"sid\":17}");
	free(line);
	/* a put fenced by a lock session is version 3; without, 2 */
	struct kv_cmd put = cmd(KV_OP_PUT, "f");
	put.val = (unsigned char *)"v";
	put.vlen = 1;
	put.mtime_ns = 7;
	put.if_sid = 41;
	round_trip(&put);
	assert_int_equal(kv_cmd_encode(&put, &line, &len), 0);
	assert_non_null(strstr(line, "{\"v\":3,\"op\":\"put\""));
	assert_non_null(strstr(line, "\"if_sid\":41"));
	free(line);
	/* the older ops are still written as version 2 */
	struct kv_cmd del = cmd(KV_OP_DEL, "k");
	assert_int_equal(kv_cmd_encode(&del, &line, &len), 0);
	assert_non_null(strstr(line, "{\"v\":2,"));
	free(line);
}

static void test_malformed_lock_table_commands_are_rejected(void **state)
{
	static const char *const bad[] = {
	    /* version 2 has neither the ops nor the fields */
	    "{\"v\":2,\"op\":\"sess_renew\",\"sid\":1}",
	    "{\"v\":2,\"op\":\"put\",\"k\":\"a\",\"val\":\"\",\"mt\":\"1\","
	    "\"sid\":1}",
	    /* missing fields */
	    "{\"v\":3,\"op\":\"sess_renew\"}",
	    "{\"v\":3,\"op\":\"sess_open\"}",
	    "{\"v\":3,\"op\":\"lock\",\"k\":\"a\",\"sid\":1,\"own\":\"1\","
	    "\"lt\":1,\"lkind\":1,\"ls\":\"0\"}",
	    /* out of range: type, kind, a range backwards, a negative
	     * offset, an owner past 64 bits, sid 0 */
	    "{\"v\":3,\"op\":\"lock\",\"k\":\"a\",\"sid\":1,\"own\":\"1\","
	    "\"lt\":3,\"lkind\":1,\"ls\":\"0\",\"le\":\"0\"}",
	    "{\"v\":3,\"op\":\"lock\",\"k\":\"a\",\"sid\":1,\"own\":\"1\","
	    "\"lt\":1,\"lkind\":0,\"ls\":\"0\",\"le\":\"0\"}",
	    "{\"v\":3,\"op\":\"lock\",\"k\":\"a\",\"sid\":1,\"own\":\"1\","
	    "\"lt\":1,\"lkind\":2,\"ls\":\"5\",\"le\":\"4\"}",
	    "{\"v\":3,\"op\":\"lock\",\"k\":\"a\",\"sid\":1,\"own\":\"1\","
	    "\"lt\":1,\"lkind\":2,\"ls\":\"-1\",\"le\":\"4\"}",
	    "{\"v\":3,\"op\":\"lock\",\"k\":\"a\",\"sid\":1,"
	    "\"own\":\"18446744073709551616\",\"lt\":1,\"lkind\":2,\"ls\":"
	    "\"0\","
	    "\"le\":\"4\"}",
	    "{\"v\":3,\"op\":\"sess_renew\",\"sid\":0}",
	    /* fields an op does not take */
	    "{\"v\":3,\"op\":\"sess_renew\",\"sid\":1,\"k\":\"a\"}",
	    "{\"v\":3,\"op\":\"sess_open\",\"node\":1,\"sid\":1}",
	    "{\"v\":3,\"op\":\"del\",\"k\":\"a\",\"if_sid\":1}",
	    "{\"v\":2,\"op\":\"put\",\"k\":\"a\",\"val\":\"\",\"mt\":\"1\","
	    "\"if_sid\":1}",
	    "{\"v\":3,\"op\":\"put\",\"k\":\"a\",\"val\":\"\",\"mt\":\"1\","
	    "\"if_sid\":0}",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int err = decode(bad[i]);
		if (err != -EINVAL)
			fail_msg("accepted or wrong error %d: %s", err, bad[i]);
	}
	assert_int_equal(
	    decode("{\"v\":3,\"op\":\"lock\",\"k\":\"a\",\"sid\":1,"
		   "\"own\":\"18446744073709551615\",\"lt\":0,"
		   "\"lkind\":2,\"ls\":\"0\",\"le\":"
		   "\"9223372036854775807\"}"),
	    0);
}

static void test_decode_reads_exactly_the_given_length(void **state)
{
	const char *j = "{\"v\":1,\"op\":\"noop\"}GARBAGE";
	size_t n = strlen("{\"v\":1,\"op\":\"noop\"}");
	struct kv_cmd c;

	(void)state;
	assert_int_equal(kv_cmd_decode(j, n, &c), 0);
	kv_cmd_clear(&c);
	assert_int_equal(kv_cmd_decode(j, n - 1, &c), -EINVAL);
	assert_int_equal(kv_cmd_decode(j, n + 1, &c), -EINVAL);
	assert_int_equal(
	    kv_cmd_decode("{\"v\":1,\"op\":\"noop\"} \r", n + 2, &c), 0);
	kv_cmd_clear(&c);
}

static void test_add_round_trips_as_version_3(void **state)
{
	struct kv_add a[] = {{"b\xc3\xa9", 3, 2},
			     {"c", 1, 9007199254740992ull}};
	struct kv_cmd c = {.op = KV_OP_ADD,
			   .key = ".words",
			   .klen = 6,
			   .adds = a,
			   .nadd = 2,
			   .time_ns = 5};
	struct kv_cmd d;
	char *line;
	size_t len;

	(void)state;
	assert_int_equal(kv_cmd_encode(&c, &line, &len), 0);
	assert_non_null(strstr(line, "{\"v\":3,\"op\":\"add\""));
	assert_int_equal(kv_cmd_decode(line, len, &d), 0);
	assert_int_equal(d.op, KV_OP_ADD);
	assert_int_equal(d.nadd, 2);
	assert_int_equal(d.time_ns, 5);
	assert_memory_equal(d.adds[0].name, "b\xc3\xa9", 3);
	assert_int_equal(d.adds[0].n, 2);
	assert_int_equal(d.adds[1].n, 9007199254740992ull);
	kv_cmd_clear(&d);
	free(line);
	/* every other op is still written as version 2 */
	c = (struct kv_cmd){.op = KV_OP_DEL, .key = "k", .klen = 1};
	assert_int_equal(kv_cmd_encode(&c, &line, &len), 0);
	assert_non_null(strstr(line, "{\"v\":2,"));
	free(line);
	const char *bad[] = {
	    /* version 2 has no add */
	    "{\"v\":2,\"op\":\"add\",\"k\":\"w\",\"add\":[{\"n\":\"a\",\"d\":1}"
	    "]}",
	    "{\"v\":3,\"op\":\"add\",\"k\":\"w\",\"add\":[]}",
	    "{\"v\":3,\"op\":\"add\",\"k\":\"w\"}",
	    "{\"v\":3,\"op\":\"add\",\"k\":\"w\",\"add\":[{\"n\":\"a\",\"d\":0}"
	    "]}",
	    "{\"v\":3,\"op\":\"add\",\"k\":\"w\",\"add\":[{\"n\":\"a/"
	    "b\",\"d\":1}]}",
	    "{\"v\":3,\"op\":\"add\",\"k\":\"w\",\"add\":[{\"n\":\"\",\"d\":1}]"
	    "}",
	    "{\"v\":3,\"op\":\"add\",\"k\":\"w\",\"add\":[{\"n\":\"a\",\"d\":-"
	    "1}]}",
	    "{\"v\":3,\"op\":\"add\",\"k\":\"w\",\"add\":[{\"n\":\"a\"}]}",
	    "{\"v\":3,\"op\":\"add\",\"k\":\"w\",\"add\":[{\"n\":\"a\",\"d\":1,"
	    "\"x\":1}]}",
	    /* not in increasing order, or twice */
	    "{\"v\":3,\"op\":\"add\",\"k\":\"w\",\"add\":[{\"n\":\"b\",\"d\":1}"
	    ",{\"n\":\"a\",\"d\":1}]}",
	    "{\"v\":3,\"op\":\"add\",\"k\":\"w\",\"add\":[{\"n\":\"a\",\"d\":1}"
	    ",{\"n\":\"a\",\"d\":1}]}",
	    "{\"v\":3,\"op\":\"put\",\"k\":\"w\",\"val\":\"\",\"mt\":\"1\","
	    "\"add\":[]}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (decode(bad[i]) != -EINVAL)
			fail_msg("accepted: %s", bad[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_op_round_trips),
	    cmocka_unit_test(test_version_2_fields_round_trip),
	    cmocka_unit_test(test_binary_values_round_trip_exactly),
	    cmocka_unit_test(test_largest_values_round_trip),
	    cmocka_unit_test(test_valid_hand_written_command_decodes),
	    cmocka_unit_test(test_malformed_commands_are_rejected),
	    cmocka_unit_test(test_other_versions_are_refused_as_version_errors),
	    cmocka_unit_test(test_decode_reads_exactly_the_given_length),
	    cmocka_unit_test(test_add_round_trips_as_version_3),
	    cmocka_unit_test(test_lock_table_commands_round_trip_as_version_3),
	    cmocka_unit_test(test_malformed_lock_table_commands_are_rejected),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
