/* test_predecode.c - a big put decoded on the proposer's thread without
 * its value (raft/node/propose.c, propose_predecode) is what decoding its
 * entry gives: the same command, field for field, and the same record and
 * record hash.
 *
 * The node thread applies the predecoded command in place of the entry
 * (decoded.c), and every other member decodes the entry itself, so any
 * difference would make the leader's map differ from the followers'. Each
 * command is encoded, then given to propose_predecode and, as the
 * reference, to kv_cmd_decode and store_cmd_prepare; the two must encode
 * to the same line and hold the same value bytes, record and hash. Values
 * are text (escapes and multi-byte characters, so the entry's form is not
 * the value's bytes), binary (base64 in the entry) and text with one bad
 * byte, of sizes about the prepare threshold (64 KiB) and 1 MiB; with
 * attributes, a lease, a TTL, a mode, owners, if_absent. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec.h"
#include "node_int.h"
#include "store.h"

static unsigned char *make_value(size_t n, int kind, unsigned seed)
{
	static const char *const text[] = {"abc",  "\"",       "\\",
					   "\n",   "\xc3\xa9", "\xe2\x82\xac",
					   "\x01", "xyz "};
	unsigned char *v = malloc(n + 8);
	assert_non_null(v);
	size_t i = 0;
	while (i < n) {
		if (kind == 1) { /* binary */
			v[i++] = (unsigned char)rand_r(&seed);
			continue;
		}
		const char *p = text[rand_r(&seed) % 8];
		size_t l = strlen(p);
		if (i + l > n)
			p = "a", l = 1;
		memcpy(v + i, p, l);
		i += l;
	}
	if (kind == 2) /* text but for one byte: base64 in the entry */
		v[n / 2] = 0xff;
	return v;
}

static char *encode(const struct kv_cmd *c, size_t *len)
{
	char *json;
	assert_int_equal(kv_cmd_encode(c, &json, len), 0);
	return json;
}

static void expect_as_decoded(const struct kv_cmd *cmd)
{
	size_t len;
	char *json = encode(cmd, &len);
	struct kv_cmd *got = propose_predecode(cmd, json, len);
	struct kv_cmd want;
	assert_int_equal(kv_cmd_decode(json, len, &want), 0);
	assert_int_equal(store_cmd_prepare(&want), 0);
	if (len < NODE_PREDECODE_BYTES) {
		assert_null(got);
	} else {
		assert_non_null(got);
		size_t la, lb;
		char *a = encode(got, &la), *b = encode(&want, &lb);
		assert_int_equal(la, lb);
		assert_memory_equal(a, b, la);
		assert_memory_equal(a, json, len); /* and the entry itself */
		free(a);
		free(b);
		assert_int_equal(got->vlen, cmd->vlen);
		assert_memory_equal(got->val, cmd->val, cmd->vlen);
		assert_true((got->prep != NULL) == (want.prep != NULL));
		if (want.prep) {
			assert_int_equal(got->prep_hash, want.prep_hash);
			assert_int_equal(got->prep->vlen, want.prep->vlen);
			assert_memory_equal(kv_rec_val(got->prep),
					    kv_rec_val(want.prep),
					    want.prep->vlen);
			assert_int_equal(got->prep->klen, want.prep->klen);
			assert_memory_equal(kv_rec_key(got->prep),
					    kv_rec_key(want.prep),
					    want.prep->klen);
			assert_ptr_equal(got->val, kv_rec_val(got->prep));
		}
		kv_cmd_clear(got);
		free(got);
	}
	kv_cmd_clear(&want);
	free(json);
}

static void test_a_big_put_predecodes_as_its_entry_decodes(void **state)
{
	(void)state;
	const size_t sizes[] = {
	    1000,	    (64u << 10) - 200, (64u << 10) - 1,
	    64u << 10,	    (64u << 10) + 1,   (64u << 10) + 7,
	    (1u << 20) - 3, 1u << 20,	       (1u << 20) + 5};
	struct kv_xattr x[2] = {{.name = "user.a",
				 .nlen = 6,
				 .val = (const unsigned char *)"one",
				 .vlen = 3},
				{.name = "user.b",
				 .nlen = 6,
				 .val = (const unsigned char *)"\x00\xff",
				 .vlen = 2}};
	unsigned seed = 7;
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++)
		for (int kind = 0; kind < 3; kind++)
			for (int extra = 0; extra < 4; extra++) {
				unsigned char *v =
				    make_value(sizes[s], kind, seed++);
				struct kv_cmd c = {.op = KV_OP_PUT,
						   .key = "dir/big\xc3\xa9",
						   .klen = 9,
						   .val = v,
						   .vlen = sizes[s],
						   .mtime_ns = 1234567890123,
						   .mode = 0644};
				if (extra == 1) {
					c.set_xattrs = true;
					c.xattrs = x;
					c.nxattr = 2;
					c.set_uid = c.set_gid = true;
					c.uid = 1000;
					c.gid = 100;
					c.if_absent = true;
				} else if (extra == 2) {
					c.set_lease = true;
					c.lease = 42;
					c.set_mode = true;
					c.mode = 0600;
				} else if (extra == 3) {
					c.ttl = 30;
				}
				expect_as_decoded(&c);
				free(v);
			}
}

/* Not a put: decoded from the entry as before. */
static void test_other_big_commands_decode_from_the_entry(void **state)
{
	(void)state;
	size_t n = 100u << 10;
	unsigned char *v = make_value(n, 0, 3);
	struct kv_cmd c = {.op = KV_OP_SETATTR,
			   .key = "k",
			   .klen = 1,
			   .set_xattrs = true,
			   .nxattr = 1};
	struct kv_xattr x = {
	    .name = "user.big", .nlen = 8, .val = v, .vlen = n};
	c.xattrs = &x;
	expect_as_decoded(&c);
	free(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_a_big_put_predecodes_as_its_entry_decodes),
	    cmocka_unit_test(test_other_big_commands_decode_from_the_entry),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
