/* test_msg.c - the peer message codec (raft/msg.c).
 *
 * Round trips of every message type with every field set, entries with
 * text and binary data, and a table of malformed and hostile documents
 * that must be refused with the right code. A mutation pass (truncations
 * and byte flips of a valid batch) checks that nothing crashes; run it
 * under ASan (meson setup -Db_sanitize=address,undefined). The frames of
 * a stream (peer_recv.c) are cut the same whatever pieces they come in. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "kv.h"
#include "peer.h"

#define CLUSTER "c-0123"

static struct raft_entry entry(uint64_t term, uint64_t index,
			       enum raft_entry_type type, const void *data,
			       size_t len)
{
	struct raft_entry e = {.term = term, .index = index, .type = type};

	if (len > 0) {
		e.data = malloc(len);
		assert_non_null(e.data);
		memcpy(e.data, data, len);
	}
	e.len = len;
	return e;
}

static void free_entries(struct raft_message *m)
{
	for (size_t i = 0; i < m->n_entries; i++)
		free(m->entries[i].data);
	free(m->entries);
}

static void assert_msg_equal(const struct raft_message *a,
			     const struct raft_message *b)
{
	assert_int_equal(a->type, b->type);
	assert_int_equal(a->from, b->from);
	assert_int_equal(a->to, b->to);
	assert_int_equal(a->term, b->term);
	assert_int_equal(a->index, b->index);
	assert_int_equal(a->log_term, b->log_term);
	assert_int_equal(a->commit, b->commit);
	assert_int_equal(a->ctx, b->ctx);
	assert_int_equal(a->hint_index, b->hint_index);
	assert_int_equal(a->hint_term, b->hint_term);
	assert_int_equal(a->reject, b->reject);
	assert_int_equal(a->transfer, b->transfer);
	assert_int_equal(a->n_entries, b->n_entries);
	for (size_t i = 0; i < a->n_entries; i++) {
		const struct raft_entry *x = &a->entries[i],
					*y = &b->entries[i];
		assert_int_equal(x->term, y->term);
		assert_int_equal(x->index, y->index);
		assert_int_equal(x->type, y->type);
		assert_int_equal(x->len, y->len);
		if (x->len > 0)
			assert_memory_equal(x->data, y->data, x->len);
	}
	if (a->type == RAFT_MSG_SNAPSHOT) {
		assert_int_equal(a->snapshot.index, b->snapshot.index);
		assert_int_equal(a->snapshot.term, b->snapshot.term);
		assert_int_equal(a->snapshot.conf.n, b->snapshot.conf.n);
		for (unsigned i = 0; i < a->snapshot.conf.n; i++) {
			const struct raft_server *x =
			    &a->snapshot.conf.servers[i];
			const struct raft_server *y =
			    &b->snapshot.conf.servers[i];
			assert_int_equal(x->id, y->id);
			assert_int_equal(x->role, y->role);
			assert_string_equal(x->addr, y->addr);
		}
	}
}

/* Encode then decode; the result must equal the input. */
static void round_trip(const struct raft_message *msgs, size_t n, uint64_t from)
{
	struct raft_message *out = NULL;
	char *body = NULL, why[128];
	size_t len = 0, got = 99;
	uint64_t sender = 0;

	assert_int_equal(peer_msgs_encode(CLUSTER, from, msgs, n, &body, &len),
			 0);
	assert_int_equal(strlen(body), len);
	assert_int_equal(peer_msgs_decode(body, len, CLUSTER, &sender, &out,
					  &got, why, sizeof(why)),
			 0);
	assert_int_equal(sender, from);
	assert_int_equal(got, n);
	for (size_t i = 0; i < n; i++)
		assert_msg_equal(&msgs[i], &out[i]);
	peer_msgs_free(out, got);
	free(body);
}

/* A message of type t with every scalar field set to something distinct
 * (and large, up to 2^53 - 1). */
static struct raft_message full_msg(enum raft_msg_type t)
{
	struct raft_message m = {
	    .type = t,
	    .from = 3,
	    .to = 7,
	    .term = 9007199254740991ull,
	    .index = 12345678901234ull,
	    .log_term = 41,
	    .commit = 99,
	    .ctx = 4503599627370497ull,
	    .hint_index = 17,
	    .hint_term = 18,
	    .reject = true,
	    .transfer = true,
	};
	return m;
}

static void test_every_message_type_round_trips_with_all_fields(void **state)
{
	(void)state;
	for (int t = RAFT_MSG_APPEND; t <= RAFT_MSG_PROPOSE_RESP; t++) {
		struct raft_message m = full_msg((enum raft_msg_type)t);
		if (t == RAFT_MSG_SNAPSHOT) {
			m.snapshot.index = 500;
			m.snapshot.term = 4;
			m.snapshot.conf.n = 2;
			m.snapshot.conf.servers[0] = (struct raft_server){
			    1, RAFT_VOTER, "127.0.0.1:7001"};
			m.snapshot.conf.servers[1] =
			    (struct raft_server){2, RAFT_LEARNER, "[::1]:7002"};
		}
		round_trip(&m, 1, 3);
		/* And with every optional field at its zero default. */
		m.index = m.log_term = m.commit = m.ctx = 0;
		m.hint_index = m.hint_term = 0;
		m.reject = m.transfer = false;
		round_trip(&m, 1, 3);
	}
}

static void test_forwarded_writes_round_trip(void **state)
{
	static const unsigned char bin[] = {0x00, 0xff, 'k'};
	static const char cmd[] = "{\"op\":\"put\",\"k\":\"a\"}";
	struct raft_entry e[2] = {
	    entry(0, 0, RAFT_ENTRY_NORMAL, cmd, strlen(cmd)),
	    entry(0, 0, RAFT_ENTRY_NORMAL, bin, sizeof(bin)),
	};
	struct raft_message m[2] = {
	    {.type = RAFT_MSG_PROPOSE,
	     .from = 3,
	     .to = 1,
	     .ctx = 1763700000000001ull,
	     .entries = e,
	     .n_entries = 2},
	    {.type = RAFT_MSG_PROPOSE_RESP,
	     .from = 3,
	     .to = 1,
	     .ctx = 1763700000000001ull,
	     .index = 41,
	     .log_term = 7,
	     .hint_index = 2},
	};

	(void)state;
	round_trip(m, 2, 3);
	m[1].reject = true;
	m[1].hint_term = 28; /* ENOSPC */
	m[1].index = m[1].log_term = m[1].hint_index = 0;
	round_trip(m, 2, 3);
	free(e[0].data);
	free(e[1].data);
}

static void test_batch_keeps_messages_in_order(void **state)
{
	struct raft_message m[20];

	(void)state;
	for (int i = 0; i < 20; i++) {
		m[i] = full_msg(RAFT_MSG_HEARTBEAT);
		m[i].to = (uint64_t)(i % 4) + 1;
		m[i].commit = (uint64_t)i;
	}
	round_trip(m, 20, 3);
	round_trip(m, 0, 3);
}

static void test_entries_with_text_and_binary_data_round_trip(void **state)
{
	static const unsigned char bin[] = {0x00, 0xff, 0x80, 'a', 0x00, 0xc0};
	static const char text[] = "{\"op\":\"put\",\"k\":\"caf\xc3\xa9\"\n\t}";
	unsigned char all[256];
	struct raft_message m = full_msg(RAFT_MSG_APPEND);
	struct raft_entry e[6];
	char *body;
	size_t len;

	(void)state;
	for (int i = 0; i < 256; i++)
		all[i] = (unsigned char)i;
	m.index = 10;
	m.log_term = 2;
	m.term = 3;
	e[0] = entry(2, 11, RAFT_ENTRY_NORMAL, text, strlen(text));
	e[1] = entry(3, 12, RAFT_ENTRY_NORMAL, bin, sizeof(bin));
	e[2] = entry(3, 13, RAFT_ENTRY_NOOP, NULL, 0);
	e[3] = entry(3, 14, RAFT_ENTRY_CONFIG, "raftconf 1\n", 11);
	e[4] = entry(3, 15, RAFT_ENTRY_NORMAL, all, sizeof(all));
	e[5] =
	    entry(3, 16, RAFT_ENTRY_NORMAL, "\xed\xa0\x80", 3); /* surrogate */
	m.entries = e;
	m.n_entries = 6;
	round_trip(&m, 1, 3);

	/* Text travels as a string, the rest as base64. */
	assert_int_equal(peer_msgs_encode(CLUSTER, 3, &m, 1, &body, &len), 0);
	assert_non_null(strstr(body, "\"data\":\"{\\\"op\\\":\\\"put\\\""));
	assert_non_null(strstr(body, "\"data64\":\"AP+AYQDA\""));
	free(body);
	for (int i = 0; i < 6; i++)
		free(e[i].data);
}

static void test_large_entry_batch_round_trips(void **state)
{
	struct raft_message m = full_msg(RAFT_MSG_APPEND);
	size_t n = 300, size = 64 * 1024;

	(void)state;
	m.index = 1000;
	m.log_term = m.term = 5;
	m.entries = calloc(n, sizeof(*m.entries));
	assert_non_null(m.entries);
	for (size_t i = 0; i < n; i++) {
		unsigned char *p = malloc(size);
		assert_non_null(p);
		for (size_t k = 0; k < size; k++)
			p[k] =
			    (unsigned char)(i % 2 ? 'a' + k % 26 : k * 7 + i);
		m.entries[i] = (struct raft_entry){
		    5, 1001 + i, RAFT_ENTRY_NORMAL, p, size, NULL};
	}
	m.n_entries = n;
	round_trip(&m, 1, 3);
	free_entries(&m);
}

static void test_encoder_refuses_what_the_wire_cannot_carry(void **state)
{
	struct raft_message m = full_msg(RAFT_MSG_VOTE);
	char *body = NULL;
	size_t len;

	(void)state;
	m.term = 9007199254740992ull;
	assert_int_equal(peer_msgs_encode(CLUSTER, 3, &m, 1, &body, &len),
			 -ERANGE);
	m = full_msg(RAFT_MSG_VOTE);
	m.ctx = UINT64_MAX;
	assert_int_equal(peer_msgs_encode(CLUSTER, 3, &m, 1, &body, &len),
			 -ERANGE);
	m = full_msg(RAFT_MSG_NONE);
	assert_int_equal(peer_msgs_encode(CLUSTER, 3, &m, 1, &body, &len),
			 -EINVAL);
	m = full_msg(RAFT_MSG_VOTE);
	assert_int_equal(peer_msgs_encode(CLUSTER, 4, &m, 1, &body, &len),
			 -EINVAL); /* from mismatch */
	assert_int_equal(peer_msgs_encode("bad id", 3, &m, 1, &body, &len),
			 -EINVAL);
	assert_int_equal(peer_msgs_encode("", 3, &m, 1, &body, &len), -EINVAL);
	assert_int_equal(peer_msgs_encode(CLUSTER, 0, &m, 0, &body, &len),
			 -EINVAL);
	assert_null(body);
}

/* Decode doc; expect err. */
static void expect(const char *doc, int err)
{
	struct raft_message *out = NULL;
	char why[160] = "";
	size_t n = 0;
	int rc = peer_msgs_decode(doc, strlen(doc), CLUSTER, NULL, &out, &n,
				  why, sizeof(why));

	if (rc != err)
		print_error("document: %s\ngot %d (%s), want %d\n", doc, rc,
			    why, err);
	assert_int_equal(rc, err);
	if (rc == 0)
		peer_msgs_free(out, n);
	else
		assert_true(why[0] != '\0' && strcmp(why, "ok") != 0);
}

#define HEAD   "{\"kvfs\":\"raft\",\"version\":2,\"cluster\":\"" CLUSTER "\","
#define ONE(m) HEAD "\"from\":1,\"msgs\":[" m "]}"

static void test_decoder_accepts_a_minimal_batch(void **state)
{
	(void)state;
	expect(ONE("{\"type\":\"vote\",\"to\":2,\"term\":1}"), 0);
	expect(ONE(""), 0);
	expect(" " ONE("") "\n", 0);
	expect(ONE("{\"type\":\"append\",\"to\":2,\"term\":1,\"entries\":[]}"),
	       0);
}

static void test_decoder_rejects_malformed_documents(void **state)
{
	static const char *const bad[] = {
	    "",
	    "null",
	    "[]",
	    "\"raft\"",
	    "{",
	    ONE("") "x",
	    ONE("") "{}",
	    /* envelope */
	    "{\"kvfs\":\"raft\",\"cluster\":\"" CLUSTER
	    "\",\"from\":1,\"msgs\":[]}",
	    "{\"kvfs\":\"other\",\"version\":2,\"cluster\":\"" CLUSTER
	    "\",\"from\":1,\"msgs\":[]}",
	    "{\"version\":2,\"cluster\":\"" CLUSTER
	    "\",\"from\":1,\"msgs\":[]}",
	    "{\"kvfs\":\"raft\",\"version\":\"1\",\"cluster\":\"" CLUSTER
	    "\",\"from\":1,\"msgs\":[]}",
	    "{\"kvfs\":\"raft\",\"version\":2,\"from\":1,\"msgs\":[]}",
	    "{\"kvfs\":\"raft\",\"version\":2,\"cluster\":7,\"from\":1,"
	    "\"msgs\":[]}",
	    HEAD "\"msgs\":[]}",
	    HEAD "\"from\":0,\"msgs\":[]}",
	    HEAD "\"from\":-1,\"msgs\":[]}",
	    HEAD "\"from\":1.5,\"msgs\":[]}",
	    HEAD "\"from\":\"1\",\"msgs\":[]}",
	    HEAD "\"from\":1}",
	    HEAD "\"from\":1,\"msgs\":{}}",
	    HEAD "\"from\":1,\"msgs\":[],\"extra\":1}",
	    HEAD "\"from\":1,\"from\":2,\"msgs\":[]}",
	    ONE("1"),
	    ONE("[]"),
	    /* missing, wrong and unknown fields of a message */
	    ONE("{}"),
	    ONE("{\"to\":2,\"term\":1}"),
	    ONE("{\"type\":\"vote\",\"term\":1}"),
	    ONE("{\"type\":\"vote\",\"to\":2}"),
	    ONE("{\"type\":\"none\",\"to\":2,\"term\":1}"),
	    ONE("{\"type\":\"VOTE\",\"to\":2,\"term\":1}"),
	    ONE("{\"type\":3,\"to\":2,\"term\":1}"),
	    ONE("{\"type\":\"vote\",\"to\":\"2\",\"term\":1}"),
	    ONE("{\"type\":\"vote\",\"to\":2,\"term\":null}"),
	    ONE("{\"type\":\"vote\",\"to\":2,\"term\":true}"),
	    ONE("{\"type\":\"vote\",\"to\":2,\"term\":1,\"reject\":1}"),
	    ONE("{\"type\":\"vote\",\"to\":2,\"term\":1,\"transfer\":\"y\"}"),
	    ONE("{\"type\":\"vote\",\"to\":2,\"term\":1,\"bogus\":0}"),
	    ONE("{\"type\":\"vote\",\"to\":2,\"term\":1,\"term\":2}"),
	    ONE("{\"type\":\"vote\",\"to\":2,\"term\":1,\"entries\":[]}"),
	    ONE("{\"type\":\"vote\",\"to\":2,\"term\":1,\"snapshot\":{}}"),
	    /* huge and odd numbers */
	    ONE("{\"type\":\"vote\",\"to\":2,\"term\":9007199254740993}"),
	    ONE("{\"type\":\"vote\",\"to\":2,\"term\":18446744073709551616}"),
	    ONE("{\"type\":\"vote\",\"to\":2,\"term\":1e300}"),
	    ONE("{\"type\":\"vote\",\"to\":2,\"term\":1e999}"),
	    ONE("{\"type\":\"vote\",\"to\":2,\"term\":-0.5}"),
	    ONE("{\"type\":\"vote\",\"to\":2,\"term\":2.25}"),
	    ONE("{\"type\":\"vote\",\"to\":2,\"term\":1,\"ctx\":-1}"),
	    /* entries */
	    ONE("{\"type\":\"append\",\"to\":2,\"term\":1,\"entries\":{}}"),
	    ONE("{\"type\":\"append\",\"to\":2,\"term\":1,\"entries\":[1]}"),
	    ONE("{\"type\":\"append\",\"to\":2,\"term\":1,\"entries\":[{}]}"),
	    ONE("{\"type\":\"append\",\"to\":2,\"term\":1,\"entries\":"
		"[{\"term\":1,\"index\":1}]}"),
	    ONE("{\"type\":\"append\",\"to\":2,\"term\":1,\"entries\":"
		"[{\"term\":1,\"index\":1,\"type\":\"weird\"}]}"),
	    ONE("{\"type\":\"append\",\"to\":2,\"term\":1,\"entries\":"
		"[{\"term\":1,\"index\":1,\"type\":\"normal\",\"data\":5}]}"),
	    ONE("{\"type\":\"append\",\"to\":2,\"term\":1,\"entries\":"
		"[{\"term\":1,\"index\":1,\"type\":\"normal\",\"x\":5}]}"),
	    ONE("{\"type\":\"append\",\"to\":2,\"term\":1,\"entries\":"
		"[{\"term\":1,\"index\":1,\"type\":\"normal\",\"data\":\"a\","
		"\"data64\":\"YQ==\"}]}"),
	    ONE("{\"type\":\"append\",\"to\":2,\"term\":1,\"entries\":"
		"[{\"term\":1,\"index\":1,\"type\":\"normal\",\"data\":\"a\"},"
		"{\"term\":1,\"index\":2,\"type\":\"normal\",\"data\":[]}]}"),
	    /* bad base64 */
	    ONE("{\"type\":\"append\",\"to\":2,\"term\":1,\"entries\":"
		"[{\"term\":1,\"index\":1,\"type\":\"normal\",\"data64\":"
		"\"YQ\"}]}"),
	    ONE("{\"type\":\"append\",\"to\":2,\"term\":1,\"entries\":"
		"[{\"term\":1,\"index\":1,\"type\":\"normal\",\"data64\":\"Y!=="
		"\"}]}"),
	    ONE("{\"type\":\"append\",\"to\":2,\"term\":1,\"entries\":"
		"[{\"term\":1,\"index\":1,\"type\":\"normal\",\"data64\":\"YR=="
		"\"}]}"),
	    ONE("{\"type\":\"append\",\"to\":2,\"term\":1,\"entries\":"
		"[{\"term\":1,\"index\":1,\"type\":\"normal\",\"data64\":\"Y "
		"Q=\"}]}"),
	    ONE("{\"type\":\"append\",\"to\":2,\"term\":1,\"entries\":"
		"[{\"term\":1,\"index\":1,\"type\":\"normal\",\"data64\":7}]}"),
	    /* snapshots */
	    ONE("{\"type\":\"snapshot\",\"to\":2,\"term\":1}"),
	    ONE("{\"type\":\"snapshot\",\"to\":2,\"term\":1,\"snapshot\":[]}"),
	    ONE("{\"type\":\"snapshot\",\"to\":2,\"term\":1,\"snapshot\":"
		"{\"index\":1,\"term\":1}}"),
	    ONE("{\"type\":\"snapshot\",\"to\":2,\"term\":1,\"snapshot\":"
		"{\"index\":1,\"term\":1,\"conf\":[{\"id\":0,\"role\":"
		"\"voter\","
		"\"addr\":\"a:1\"}]}}"),
	    ONE("{\"type\":\"snapshot\",\"to\":2,\"term\":1,\"snapshot\":"
		"{\"index\":1,\"term\":1,\"conf\":[{\"id\":1,\"role\":\"boss\","
		"\"addr\":\"a:1\"}]}}"),
	    ONE("{\"type\":\"snapshot\",\"to\":2,\"term\":1,\"snapshot\":"
		"{\"index\":1,\"term\":1,\"conf\":[{\"id\":1,\"role\":"
		"\"voter\"}"
		"]}}"),
	    ONE("{\"type\":\"snapshot\",\"to\":2,\"term\":1,\"snapshot\":"
		"{\"index\":1,\"term\":1,\"conf\":[{\"id\":1,\"role\":"
		"\"voter\","
		"\"addr\":\"a:1\"},{\"id\":1,\"role\":\"voter\",\"addr\":\"b:"
		"1\"}"
		"]}}"),
	    ONE("{\"type\":\"snapshot\",\"to\":2,\"term\":1,\"snapshot\":"
		"{\"index\":1,\"term\":1,\"conf\":[{\"id\":1,\"role\":"
		"\"voter\","
		"\"addr\":"
		"\"0123456789012345678901234567890123456789012345678901"
		"234567890123\"}]}}"),
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect(bad[i], -EINVAL);
}

static void test_decoder_refuses_too_many_messages(void **state)
{
	static const char one[] = "{\"type\":\"vote\",\"to\":2,\"term\":1}";
	size_t cap = 256 + (PEER_MAX_MSGS + 1) * sizeof(one);
	char *doc = malloc(cap);
	size_t len;

	(void)state;
	assert_non_null(doc);
	for (int extra = 0; extra < 2; extra++) {
		len = (size_t)snprintf(doc, cap, HEAD "\"from\":1,\"msgs\":[");
		for (int i = 0; i < PEER_MAX_MSGS + extra; i++) {
			if (i > 0)
				doc[len++] = ',';
			memcpy(doc + len, one, sizeof(one) - 1);
			len += sizeof(one) - 1;
		}
		memcpy(doc + len, "]}", 3);
		expect(doc, extra ? -EINVAL : 0);
	}
	free(doc);
}

static void test_decoder_refuses_other_versions_and_clusters(void **state)
{
	struct raft_message *out = NULL;
	char why[160];
	size_t n;
	const char *v3 = "{\"kvfs\":\"raft\",\"version\":3,\"whatever\":[1]}";

	(void)state;
	assert_int_equal(peer_msgs_decode(v3, strlen(v3), CLUSTER, NULL, &out,
					  &n, why, sizeof(why)),
			 KV_EVERSION);
	assert_non_null(strstr(why, "version 3"));
	/* version 1 had no propose messages: its followers forwarded over
	 * POST /raft/propose, which is gone */
	expect("{\"kvfs\":\"raft\",\"version\":1,\"cluster\":\"" CLUSTER
	       "\",\"from\":1,\"msgs\":[]}",
	       KV_EVERSION);
	expect("{\"kvfs\":\"raft\",\"version\":0,\"cluster\":\"" CLUSTER
	       "\",\"from\":1,\"msgs\":[]}",
	       KV_EVERSION);
	expect("{\"kvfs\":\"raft\",\"version\":2,\"cluster\":\"other\","
	       "\"from\":1,\"msgs\":[]}",
	       -EPERM);
	expect("{\"kvfs\":\"raft\",\"version\":2,\"cluster\":\"" CLUSTER
	       "x\",\"from\":1,\"msgs\":[]}",
	       -EPERM);
}

/* A small deterministic PRNG (xorshift), so failures reproduce. */
static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void test_decoder_survives_truncated_and_mutated_batches(void **state)
{
	static const unsigned char bin[] = {0, 1, 2, 0xff};
	struct raft_message m[3] = {full_msg(RAFT_MSG_APPEND),
				    full_msg(RAFT_MSG_SNAPSHOT),
				    full_msg(RAFT_MSG_READ_INDEX_RESP)};
	struct raft_entry e[2];
	char *body, *copy;
	size_t len;

	(void)state;
	e[0] = entry(1, 5, RAFT_ENTRY_NORMAL, "hello", 5);
	e[1] = entry(1, 6, RAFT_ENTRY_NORMAL, bin, sizeof(bin));
	m[0].entries = e;
	m[0].n_entries = 2;
	m[1].snapshot.conf.n = 1;
	m[1].snapshot.conf.servers[0] =
	    (struct raft_server){1, RAFT_VOTER, "h:1"};
	assert_int_equal(peer_msgs_encode(CLUSTER, 3, m, 3, &body, &len), 0);
	copy = malloc(len + 1);
	assert_non_null(copy);

	/* Every strict prefix is refused (the document is incomplete). */
	for (size_t cut = 0; cut < len; cut++) {
		struct raft_message *out = NULL;
		size_t n;
		memcpy(copy, body, cut);
		assert_int_not_equal(peer_msgs_decode(copy, cut, CLUSTER, NULL,
						      &out, &n, NULL, 0),
				     0);
	}
	/* Random byte changes: any answer but a crash or a leak. */
	for (int round = 0; round < 20000; round++) {
		struct raft_message *out = NULL;
		size_t n;
		memcpy(copy, body, len);
		for (int k = 0; k < 1 + (int)(next_rand() % 4); k++)
			copy[next_rand() % len] = (char)(next_rand() % 256);
		if (peer_msgs_decode(copy, len, CLUSTER, NULL, &out, &n, NULL,
				     0) == 0)
			peer_msgs_free(out, n);
	}
	free(copy);
	free(body);
	free(e[0].data);
	free(e[1].data);
}

static void test_handle_body_checks_destination_and_numbering(void **state)
{
	static const struct {
		const char *doc;
		int err;
	} cases[] = {
	    {ONE("{\"type\":\"vote\",\"to\":2,\"term\":1}"), 0},
	    {ONE("{\"type\":\"vote\",\"to\":3,\"term\":1}"), -EINVAL},
	    {ONE("{\"type\":\"vote\",\"to\":2,\"term\":0}"), -EINVAL},
	    {ONE("{\"type\":\"read_index\",\"to\":2,\"term\":0}"), 0},
	    /* forwarded writes: commands only, numbered by the leader */
	    {ONE("{\"type\":\"propose\",\"to\":2,\"term\":0,\"ctx\":9,"
		 "\"entries\":[{\"term\":0,\"index\":0,\"type\":"
		 "\"normal\",\"data\":\"x\"}]}"),
	     0},
	    {ONE("{\"type\":\"propose\",\"to\":2,\"term\":0,\"ctx\":9,"
		 "\"entries\":[{\"term\":1,\"index\":5,\"type\":"
		 "\"normal\",\"data\":\"x\"}]}"),
	     -EINVAL},
	    {ONE("{\"type\":\"propose\",\"to\":2,\"term\":0,\"ctx\":9,"
		 "\"entries\":[{\"term\":0,\"index\":0,\"type\":"
		 "\"config\",\"data\":\"x\"}]}"),
	     -EINVAL},
	    {ONE("{\"type\":\"propose_resp\",\"to\":2,\"term\":0,"
		 "\"ctx\":9,\"index\":4,\"log_term\":2,\"hint_index\":1}"),
	     0},
	    {ONE("{\"type\":\"propose_resp\",\"to\":2,\"term\":0,"
		 "\"entries\":[{\"term\":2,\"index\":5,\"type\":"
		 "\"noop\"}]}"),
	     -EINVAL},
	    {HEAD "\"from\":2,\"msgs\":[]}", -EINVAL}, /* from ourselves */
	    {ONE("{\"type\":\"append\",\"to\":2,\"term\":3,\"index\":4,"
		 "\"log_term\":2,\"entries\":[{\"term\":2,\"index\":5,"
		 "\"type\":\"noop\"},{\"term\":3,\"index\":6,\"type\":"
		 "\"normal\",\"data\":\"x\"}]}"),
	     0},
	    /* a gap */
	    {ONE("{\"type\":\"append\",\"to\":2,\"term\":3,\"index\":4,"
		 "\"log_term\":2,\"entries\":[{\"term\":2,\"index\":5,"
		 "\"type\":\"noop\"},{\"term\":3,\"index\":7,\"type\":"
		 "\"noop\"}]}"),
	     -EINVAL},
	    /* not after prev index */
	    {ONE("{\"type\":\"append\",\"to\":2,\"term\":3,\"index\":4,"
		 "\"log_term\":2,\"entries\":[{\"term\":2,\"index\":4,"
		 "\"type\":\"noop\"}]}"),
	     -EINVAL},
	    /* terms going down, or above the leader's */
	    {ONE("{\"type\":\"append\",\"to\":2,\"term\":3,\"index\":4,"
		 "\"log_term\":2,\"entries\":[{\"term\":3,\"index\":5,"
		 "\"type\":\"noop\"},{\"term\":2,\"index\":6,\"type\":"
		 "\"noop\"}]}"),
	     -EINVAL},
	    {ONE("{\"type\":\"append\",\"to\":2,\"term\":3,\"index\":4,"
		 "\"log_term\":2,\"entries\":[{\"term\":4,\"index\":5,"
		 "\"type\":\"noop\"}]}"),
	     -EINVAL},
	    {ONE("{\"type\":\"append\",\"to\":2,\"term\":3,\"index\":4,"
		 "\"log_term\":3,\"entries\":[{\"term\":2,\"index\":5,"
		 "\"type\":\"noop\"}]}"),
	     -EINVAL},
	    {"{\"kvfs\":\"raft\",\"version\":9}", KV_EVERSION},
	    {"{\"kvfs\":\"raft\",\"version\":2,\"cluster\":\"x\",\"from\":1,"
	     "\"msgs\":[]}",
	     -EPERM},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct raft_message *out = NULL;
		size_t n = 0;
		char why[160] = "";
		int rc =
		    peer_handle_body(cases[i].doc, strlen(cases[i].doc),
				     CLUSTER, 2, &out, &n, why, sizeof(why));
		if (rc != cases[i].err)
			print_error("case %zu: got %d (%s)\n", i, rc, why);
		assert_int_equal(rc, cases[i].err);
		if (rc == 0) {
			assert_true(n <= 1);
			if (n == 1)
				assert_int_equal(out[0].from, 1);
			peer_msgs_free(out, n);
		}
	}
}

static void test_token_compare_and_status_mapping(void **state)
{
	(void)state;
	assert_true(peer_token_equal("s3cret", "s3cret"));
	assert_false(peer_token_equal("s3cre", "s3cret"));
	assert_false(peer_token_equal("s3cretX", "s3cret"));
	assert_false(peer_token_equal("S3cret", "s3cret"));
	assert_false(peer_token_equal("", "s3cret"));
	assert_false(peer_token_equal(NULL, "s3cret"));
	assert_false(peer_token_equal("", ""));
	assert_int_equal(peer_http_status(0), 204);
	assert_int_equal(peer_http_status(-EINVAL), 400);
	assert_int_equal(peer_http_status(-EPERM), 403);
	assert_int_equal(peer_http_status(-EACCES), 401);
	/* two tokens during a rotation: either is accepted */
	const char *two[] = {"old-s3cret", NULL, "new-s3cret"};
	assert_true(peer_token_any("old-s3cret", two, 3));
	assert_true(peer_token_any("new-s3cret", two, 3));
	assert_false(peer_token_any("s3cret", two, 3));
	assert_false(peer_token_any(NULL, two, 3));
	assert_false(peer_token_any("old-s3cret", two, 0));
	assert_int_equal(peer_http_status(KV_EVERSION), 409);
	assert_int_equal(peer_http_status(-ENOMEM), 503);
}

/* ---- The cluster token (peer_token.c) ---- */

static void test_new_tokens_are_random_hex_of_32_bytes(void **state)
{
	char a[2 * PEER_TOKEN_BYTES + 1], b[sizeof(a)];
	(void)state;
	assert_int_equal(peer_token_new(a), 0);
	assert_int_equal(peer_token_new(b), 0);
	assert_int_equal(strlen(a), 64);
	assert_int_equal(strspn(a, "0123456789abcdef"), 64);
	assert_string_not_equal(a, b);
	assert_true(peer_id_valid(a));
}

/* Write text to a temp file; its path (static). */
static const char *token_file(const char *text)
{
	static char path[] = "/tmp/kvfs-test-token-XXXXXX";
	strcpy(path + strlen(path) - 6, "XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static void
test_token_files_hold_one_or_two_tokens_and_name_a_bad_line(void **state)
{
	char t[PEER_TOKENS][PEER_ID_MAX + 1];
	size_t n = 9;
	char *err = NULL;
	const char *a = "0123456789abcdef0123456789abcdef";
	const char *b = "fedcba9876543210fedcba9876543210";
	char text[256];
	(void)state;

	snprintf(text, sizeof(text), "%s\n", a);
	const char *p = token_file(text);
	assert_int_equal(peer_tokens_read(p, t, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(t[0], a);
	unlink(p);
	/* two, blank lines skipped, no final newline */
	snprintf(text, sizeof(text), "\n%s\r\n\n%s", b, a);
	p = token_file(text);
	assert_int_equal(peer_tokens_read(p, t, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(t[0], b);
	assert_string_equal(t[1], a);
	unlink(p);
	/* three: one too many */
	snprintf(text, sizeof(text), "%s\n%s\n%s\n", a, b, a);
	p = token_file(text);
	assert_int_equal(peer_tokens_read(p, t, &n, &err), -EINVAL);
	assert_non_null(strstr(err, "more than 2"));
	assert_int_equal(n, 0);
	free(err);
	unlink(p);
	/* too short, a space: the line is named, the token is not */
	const char *bad[] = {"short\n", "0123456789abcdef 0123456789abcdef\n"};
	for (size_t i = 0; i < 2; i++) {
		snprintf(text, sizeof(text), "%s\n%s", a, bad[i]);
		p = token_file(text);
		err = NULL;
		assert_int_equal(peer_tokens_read(p, t, &n, &err), -EINVAL);
		assert_non_null(strstr(err, "line 2"));
		assert_null(strstr(err, "short"));
		assert_null(strstr(err, a));
		free(err);
		unlink(p);
	}
	/* empty, and missing */
	p = token_file("\n\n");
	assert_int_equal(peer_tokens_read(p, t, &n, &err), -EINVAL);
	free(err);
	unlink(p);
	assert_int_equal(peer_tokens_read(p, t, &n, &err), -ENOENT);
	free(err);
}

/* ---- Frames of a stream (peer_recv.c) ---- */

struct got_frames {
	char text[4096];
	size_t len;
	unsigned n;
	unsigned stop_at; /* nonzero: return -EPIPE at this frame */
};

/* Record each payload as "<payload>|". */
static int collect(void *ctx, const char *p, size_t len)
{
	struct got_frames *g = ctx;

	g->n++;
	if (g->stop_at && g->n == g->stop_at)
		return -EPIPE;
	assert_true(g->len + len + 1 < sizeof(g->text));
	memcpy(g->text + g->len, p, len);
	g->len += len;
	g->text[g->len++] = '|';
	g->text[g->len] = '\0';
	return 0;
}

/* A stream of three frames and a keep-alive (an empty frame). */
static size_t stream_text(char *buf, size_t cap)
{
	static const char *payloads[] = {"{\"a\":1}", "", "xyz",
					 "{\"long\":\"0123456789abcdef\"}"};
	size_t n = 0;

	for (size_t i = 0; i < 4; i++) {
		char hdr[PEER_FRAME_HDR_MAX];
		size_t plen = strlen(payloads[i]);
		size_t h = peer_frame_header(plen, hdr);
		assert_true(n + h + plen < cap);
		memcpy(buf + n, hdr, h);
		memcpy(buf + n + h, payloads[i], plen);
		n += h + plen;
	}
	return n;
}

static void test_frames_arrive_whole_in_any_pieces(void **state)
{
	char buf[256];
	size_t total = stream_text(buf, sizeof(buf));
	const char *want = "{\"a\":1}|xyz|{\"long\":\"0123456789abcdef\"}|";

	(void)state;
	assert_memory_equal(buf, "7\n{\"a\":1}0\n3\nxyz1b\n", 18);
	/* every piece size, from one byte at a time to all at once */
	for (size_t piece = 1; piece <= total; piece++) {
		struct peer_frames f = {0};
		struct got_frames g = {0};
		for (size_t off = 0; off < total; off += piece) {
			size_t k = total - off < piece ? total - off : piece;
			assert_int_equal(peer_frames_feed(&f, buf + off, k, 64,
							  collect, &g, NULL, 0),
					 0);
		}
		assert_string_equal(g.text, want);
		assert_int_equal(g.n, 3); /* the empty frame is no payload */
		assert_false(f.in_payload);
		assert_int_equal(f.line_len, 0);
		peer_frames_free(&f);
	}
}

static void test_frames_refuse_bad_lengths_and_stop_on_request(void **state)
{
	static const struct {
		const char *text;
		int err;
	} bad[] = {
	    {"\n", -EINVAL},		      /* no length */
	    {"1A\n", -EINVAL},		      /* upper case */
	    {"-1\n", -EINVAL},		      /* a sign */
	    {" 5\n", -EINVAL},		      /* a space */
	    {"12345678901234567\n", -EINVAL}, /* 17 digits */
	    {"ffffffffffffffff\n", -EFBIG},   /* 2^64 - 1 */
	    {"41\n", -EFBIG},		      /* 65 > the limit of 64 */
	};
	char why[160];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct peer_frames f = {0};
		struct got_frames g = {0};
		why[0] = '\0';
		assert_int_equal(
		    peer_frames_feed(&f, bad[i].text, strlen(bad[i].text), 64,
				     collect, &g, why, sizeof(why)),
		    bad[i].err);
		assert_true(why[0] != '\0');
		assert_int_equal(g.n, 0);
		peer_frames_free(&f);
	}
	/* a frame of exactly the limit is fine */
	struct peer_frames f = {0};
	struct got_frames g = {0};
	char big[3 + 64];
	memcpy(big, "40\n", 3);
	memset(big + 3, 'x', 64);
	assert_int_equal(
	    peer_frames_feed(&f, big, sizeof(big), 64, collect, &g, NULL, 0),
	    0);
	assert_int_equal(g.n, 1);
	peer_frames_free(&f);
	/* the callback's error ends the feed with it */
	char buf[256];
	size_t total = stream_text(buf, sizeof(buf));
	struct got_frames stop = {.stop_at = 2};
	assert_int_equal(
	    peer_frames_feed(&f, buf, total, 64, collect, &stop, NULL, 0),
	    -EPIPE);
	assert_string_equal(stop.text, "{\"a\":1}|");
	peer_frames_free(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
		test_every_message_type_round_trips_with_all_fields),
	    cmocka_unit_test(test_batch_keeps_messages_in_order),
	    cmocka_unit_test(test_forwarded_writes_round_trip),
	    cmocka_unit_test(test_entries_with_text_and_binary_data_round_trip),
	    cmocka_unit_test(test_large_entry_batch_round_trips),
	    cmocka_unit_test(test_encoder_refuses_what_the_wire_cannot_carry),
	    cmocka_unit_test(test_decoder_accepts_a_minimal_batch),
	    cmocka_unit_test(test_decoder_rejects_malformed_documents),
	    cmocka_unit_test(test_decoder_refuses_too_many_messages),
	    cmocka_unit_test(test_decoder_refuses_other_versions_and_clusters),
	    cmocka_unit_test(
		test_decoder_survives_truncated_and_mutated_batches),
	    cmocka_unit_test(test_handle_body_checks_destination_and_numbering),
	    cmocka_unit_test(test_token_compare_and_status_mapping),
	    cmocka_unit_test(test_new_tokens_are_random_hex_of_32_bytes),
	    cmocka_unit_test(
		test_token_files_hold_one_or_two_tokens_and_name_a_bad_line),
	    cmocka_unit_test(test_frames_arrive_whole_in_any_pieces),
	    cmocka_unit_test(
		test_frames_refuse_bad_lengths_and_stop_on_request),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
