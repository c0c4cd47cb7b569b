/* test_proto.c - the byte protocol's framing (raft/tcp/tcp_proto.c):
 * whole requests, requests arriving a byte at a time, binary keys and
 * values, sizes over the limits refused before their bytes, garbage
 * refused at its first wrong byte, pipelined requests, and the replies'
 * framing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tcp_int.h"

/* A request as the byte DB's client frames it, into buf: its length. */
static size_t frame(unsigned char *buf, const char *cmd, const void *key,
		    uint32_t klen, const void *val, uint32_t vlen)
{
	size_t n = 0;
	memcpy(buf, cmd, 3);
	n = 3;
	if (strcmp(cmd, "ALL") == 0)
		return n;
	buf[n++] = ' ';
	tcp_put_u32(buf + n, klen);
	n += 4;
	buf[n++] = ' ';
	if (strcmp(cmd, "SET") == 0) {
		tcp_put_u32(buf + n, vlen);
		n += 4;
		buf[n++] = ' ';
	}
	memcpy(buf + n, key, klen);
	n += klen;
	if (strcmp(cmd, "SET") == 0) {
		buf[n++] = ' ';
		memcpy(buf + n, val, vlen);
		n += vlen;
	}
	return n;
}

static void test_whole_requests_parse(void **state)
{
	unsigned char b[256];
	struct tcp_frame f;
	size_t need, n;

	(void)state;
	n = frame(b, "SET", "k", 1, "hello", 5);
	assert_int_equal(tcp_parse(b, n, &f, &need), (long)n);
	assert_int_equal(f.cmd, TCP_SET);
	assert_int_equal(f.klen, 1);
	assert_memory_equal(f.key, "k", 1);
	assert_int_equal(f.vlen, 5);
	assert_memory_equal(f.val, "hello", 5);
	n = frame(b, "GET", "dir/key", 7, NULL, 0);
	assert_int_equal(tcp_parse(b, n, &f, &need), (long)n);
	assert_int_equal(f.cmd, TCP_GET);
	assert_memory_equal(f.key, "dir/key", 7);
	n = frame(b, "DEL", "x", 1, NULL, 0);
	assert_int_equal(tcp_parse(b, n, &f, &need), (long)n);
	assert_int_equal(f.cmd, TCP_DEL);
	assert_int_equal(tcp_parse((const unsigned char *)"ALL", 3, &f, &need),
			 3);
	assert_int_equal(f.cmd, TCP_ALL);
	/* an empty value, and an empty key (the listener refuses it as a
	 * key, not as framing) */
	n = frame(b, "SET", "k", 1, "", 0);
	assert_int_equal(tcp_parse(b, n, &f, &need), (long)n);
	assert_int_equal(f.vlen, 0);
	n = frame(b, "GET", "", 0, NULL, 0);
	assert_int_equal(tcp_parse(b, n, &f, &need), (long)n);
	assert_int_equal(f.klen, 0);
}

static void test_a_byte_at_a_time_is_more_until_whole(void **state)
{
	unsigned char b[256];
	struct tcp_frame f;
	size_t need;

	(void)state;
	const char *cmds[] = {"SET", "GET", "DEL", "ALL"};
	for (size_t c = 0; c < 4; c++) {
		size_t n = frame(b, cmds[c], "some/key", 8, "v a l", 5);
		for (size_t i = 0; i < n; i++) {
			assert_int_equal(tcp_parse(b, i, &f, &need), TCP_MORE);
			/* once the sizes are in, the whole length is known */
			size_t hdr = c == 0 ? 14 : 9;
			if (c < 3 && i >= hdr)
				assert_int_equal(need, n);
		}
		assert_int_equal(tcp_parse(b, n, &f, &need), (long)n);
		assert_int_equal(f.cmd, (enum tcp_cmd)(c + 1));
	}
}

static void test_binary_keys_and_values_are_exact(void **state)
{
	unsigned char b[1024], key[200], val[600];
	struct tcp_frame f;
	size_t need;

	(void)state;
	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = (unsigned char)(i * 7);
	for (size_t i = 0; i < sizeof(val); i++)
		val[i] = (unsigned char)(255 - i); /* spaces, NULs, 0xff */
	key[3] = ' ';
	val[0] = ' ';
	val[sizeof(val) - 1] = ' ';
	size_t n = frame(b, "SET", key, sizeof(key), val, sizeof(val));
	assert_int_equal(tcp_parse(b, n, &f, &need), (long)n);
	assert_int_equal(f.klen, sizeof(key));
	assert_memory_equal(f.key, key, sizeof(key));
	assert_int_equal(f.vlen, sizeof(val));
	assert_memory_equal(f.val, val, sizeof(val));
}

static void
test_sizes_over_the_limits_are_refused_before_their_bytes(void **state)
{
	unsigned char b[32];
	struct tcp_frame f;
	size_t need;

	(void)state;
	/* KEY_SIZE 4097: refused with its 4 bytes in, before the key */
	size_t n = frame(b, "GET", "", 0, NULL, 0);
	tcp_put_u32(b + 4, TCP_MAX_KEY + 1);
	assert_int_equal(tcp_parse(b, 8, &f, &need), TCP_EKEYBIG);
	assert_int_equal(tcp_parse(b, n, &f, &need), TCP_EKEYBIG);
	tcp_put_u32(b + 4, TCP_MAX_KEY);
	assert_int_equal(tcp_parse(b, n, &f, &need), TCP_MORE);
	assert_int_equal(need, 9 + TCP_MAX_KEY);
	/* VAL_SIZE 16 MiB + 1, and 0xffffffff */
	n = frame(b, "SET", "k", 1, "", 0);
	tcp_put_u32(b + 9, TCP_MAX_VALUE + 1);
	assert_int_equal(tcp_parse(b, 13, &f, &need), TCP_EVALBIG);
	tcp_put_u32(b + 9, UINT32_MAX);
	assert_int_equal(tcp_parse(b, n, &f, &need), TCP_EVALBIG);
	tcp_put_u32(b + 4, UINT32_MAX);
	assert_int_equal(tcp_parse(b, n, &f, &need), TCP_EKEYBIG);
	/* the largest sizes are fine: more is needed */
	tcp_put_u32(b + 4, 1);
	tcp_put_u32(b + 9, TCP_MAX_VALUE);
	assert_int_equal(tcp_parse(b, 14, &f, &need), TCP_MORE);
	assert_int_equal(need, 14 + 1 + 1 + (size_t)TCP_MAX_VALUE);
}

static void test_garbage_is_refused_at_its_first_wrong_byte(void **state)
{
	struct tcp_frame f;
	size_t need;
	static const struct {
		const char *text;
		size_t len;
	} bad[] = {
	    {"X", 1},
	    {"SE", 2}, /* fine so far: checked below */
	    {"set ", 4},
	    {"SETX", 4},
	    {"GET\n", 4},
	    {"ALLX", 4}, /* ALL is whole at 3: X starts the next request */
	    {"GET \x01\x00\x00\x00X", 9},
	    {"SET \x01\x00\x00\x00 \x01\x00\x00\x00X", 14},
	    {"SET \x01\x00\x00\x00 \x01\x00\x00\x00 kXv", 17},
	    {"HTTP/1.1 GET /", 14},
	    {"\x16\x03\x01", 3}, /* a TLS hello */
	};

	(void)state;
	assert_int_equal(tcp_parse((const unsigned char *)"SE", 2, &f, &need),
			 TCP_MORE);
	assert_int_equal(tcp_parse((const unsigned char *)"ALLX", 4, &f, &need),
			 3);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (i == 1 || i == 5)
			continue;
		long r = tcp_parse((const unsigned char *)bad[i].text,
				   bad[i].len, &f, &need);
		if (r != TCP_EBAD)
			fail_msg("not refused (%ld): %s", r, bad[i].text);
	}
}

static void test_blanks_between_requests_and_pipelining(void **state)
{
	unsigned char b[256];
	struct tcp_frame f;
	size_t need, n = 0;

	(void)state;
	memcpy(b, "\r\n ", 3);
	n = 3;
	n += frame(b + n, "SET", "a", 1, "1", 1);
	size_t first = n;
	b[n++] = '\n';
	n += frame(b + n, "GET", "a", 1, NULL, 0);
	memcpy(b + n, "ALL", 3);
	n += 3;
	long r = tcp_parse(b, n, &f, &need);
	assert_int_equal(r, (long)first);
	assert_int_equal(f.cmd, TCP_SET);
	long r2 = tcp_parse(b + r, n - (size_t)r, &f, &need);
	assert_int_equal(f.cmd, TCP_GET);
	assert_memory_equal(f.key, "a", 1);
	long r3 = tcp_parse(b + r + r2, n - (size_t)(r + r2), &f, &need);
	assert_int_equal(r3, 3);
	assert_int_equal(f.cmd, TCP_ALL);
	assert_int_equal((size_t)(r + r2 + r3), n);
	/* only blanks: more */
	assert_int_equal(tcp_parse((const unsigned char *)"\r\n", 2, &f, &need),
			 TCP_MORE);
}

static void test_replies_are_framed_with_the_same_sizes(void **state)
{
	unsigned char b[64];

	(void)state;
	size_t n = tcp_reply_err(b, sizeof(b), "not_found", "no such key");
	assert_int_equal(n, 9 + strlen("not_found: no such key"));
	assert_memory_equal(b, "ERR ", 4);
	assert_int_equal(tcp_get_u32(b + 4), n - 9);
	assert_int_equal(b[8], ' ');
	assert_memory_equal(b + 9, "not_found: no such key", n - 9);
	/* truncated to the buffer, the size still right */
	n = tcp_reply_err(b, 20, "internal", "a long message here");
	assert_int_equal(n, 19);
	assert_int_equal(tcp_get_u32(b + 4), 10);
	tcp_size_header(b, 0x01020304);
	assert_memory_equal(b, "\x04\x03\x02\x01 ", 5);
	/* a size never reads as "true" or "ERR ": both are over the
	 * limits, so a client tells replies apart by their first 4 bytes */
	assert_true(tcp_get_u32((const unsigned char *)"true") > TCP_MAX_VALUE);
	assert_true(tcp_get_u32((const unsigned char *)"ERR ") > TCP_MAX_VALUE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_whole_requests_parse),
	    cmocka_unit_test(test_a_byte_at_a_time_is_more_until_whole),
	    cmocka_unit_test(test_binary_keys_and_values_are_exact),
	    cmocka_unit_test(
		test_sizes_over_the_limits_are_refused_before_their_bytes),
	    cmocka_unit_test(test_garbage_is_refused_at_its_first_wrong_byte),
	    cmocka_unit_test(test_blanks_between_requests_and_pipelining),
	    cmocka_unit_test(test_replies_are_framed_with_the_same_sizes),
	};
	return cmocka_run_group_tests_name("tcp_proto", tests, NULL, NULL);
}
