/* test_bigturn.c - the per-byte work of a big value is done where it
 * arrives, not on the thread that appends and applies (issue 20).
 *
 * The node thread calls store_append and store_apply; its turns hold up
 * the heartbeats. A 16 MiB value must be read there only to be written
 * into the log: its checks and CRC (store_data_check), its record and
 * record hash (store_cmd_prepare) are the receiving thread's. These tests
 * do that preparation on a thread of their own, then append and apply on
 * the test's thread and count that thread's per-byte work (kv.h,
 * kv_work): the checksummed, hashed and copied bytes stay below a few
 * KiB. What was prepared must give what the plain path gives: the same
 * record, the same state hash as a store that did the work itself, and a
 * log that reads back (its lines' CRCs right). */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "store.h"

#define BIG	   (16u << 20)
#define DEADLINE_S 60
/* What the appending thread may read of a prepared big entry beyond
 * writing it: the short fields (key, line prefix), never the value. */
#define SMALL_WORK 4096

/* ---- the store's reports ---- */

struct reports {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	uint64_t persisted;
	size_t applied;
	int last_err;
};

static void on_persisted(void *ctx, uint64_t index, uint64_t term)
{
	struct reports *r = ctx;
	(void)term;
	pthread_mutex_lock(&r->mu);
	r->persisted = index;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->mu);
}

static void on_applied(void *ctx, uint64_t index, uint64_t term,
		       const struct kv_result *res)
{
	struct reports *r = ctx;
	(void)index;
	(void)term;
	pthread_mutex_lock(&r->mu);
	r->applied++;
	r->last_err = res ? res->err : 0;
	pthread_mutex_unlock(&r->mu);
}

static void on_snapshotted(void *ctx, uint64_t index)
{
	(void)ctx;
	(void)index;
}

static const struct store_raft_ops ops = {
    .persisted = on_persisted,
    .applied = on_applied,
    .snapshotted = on_snapshotted,
};

static void wait_persisted(struct reports *r, uint64_t index)
{
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	t.tv_sec += DEADLINE_S;
	pthread_mutex_lock(&r->mu);
	int ret = 0;
	while (r->persisted < index && ret != ETIMEDOUT)
		ret = pthread_cond_timedwait(&r->cond, &r->mu, &t);
	uint64_t got = r->persisted;
	pthread_mutex_unlock(&r->mu);
	if (got < index)
		fail_msg("persisted %llu, not %llu, within %d s",
			 (unsigned long long)got, (unsigned long long)index,
			 DEADLINE_S);
}

/* ---- stores ---- */

struct fixture {
	char dir[64];
	struct store *st;
	struct reports rep;
};

static void fixture_open(struct fixture *f)
{
	struct store_options o = {
	    .dir = f->dir, .raft = &ops, .raft_ctx = &f->rep};
	char *msg = NULL;
	int ret = store_open(&o, &f->st, &msg);
	if (ret != 0)
		fail_msg("store_open %s: %s: %s", f->dir, kv_strerror(ret),
			 msg ? msg : "");
	free(msg);
}

static void fixture_init(struct fixture *f)
{
	memset(f, 0, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/kvfs-bigturn-test.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	pthread_mutex_init(&f->rep.mu, NULL);
	pthread_cond_init(&f->rep.cond, NULL);
	fixture_open(f);
}

static void fixture_done(struct fixture *f)
{
	char cmd[128];
	store_close(f->st);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	pthread_cond_destroy(&f->rep.cond);
	pthread_mutex_destroy(&f->rep.mu);
}

static uint64_t state_hash(struct store *st)
{
	struct store_status s;
	assert_int_equal(store_status(st, &s), 0);
	return s.state_hash;
}

/* ---- big entries, made and prepared on a receiving thread ---- */

struct big {
	const char *key;
	bool binary;	 /* random bytes (base64 in the command), else text */
	bool set_xattrs; /* with one attribute of its own */
	/* made by the receiver */
	char *json;
	size_t len;
	int enc_ret, dec_ret; /* checked on the test's thread */
	bool checked;
	uint32_t crc;
	struct kv_cmd cmd; /* decoded and prepared */
	int prep_ret;
};

static unsigned char *value_of(const struct big *b)
{
	static const char text[] = "abcdefghijklmnopqrstuvwxyz0123456789 "
				   "\"\\\t/{}[],:";
	unsigned char *v = malloc(BIG);
	assert_non_null(v);
	uint64_t x = 88172645463325252ull;
	for (size_t i = 0; i < BIG; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		v[i] = b->binary ? (unsigned char)x
				 : (unsigned char)text[x % (sizeof(text) - 1)];
	}
	return v;
}

/* What the proposer's or the peer receiving thread does with a big
 * write: encode (a leader's proposer) or receive the command, check and
 * checksum it, decode it and prepare its record. No cmocka assertion
 * here (another thread): the outcomes are checked by the caller. */
static void receive(struct big *b)
{
	unsigned char *v = value_of(b);
	struct kv_xattr xa = {.name = "user.a",
			      .nlen = 6,
			      .val = (const unsigned char *)"1",
			      .vlen = 1};
	struct kv_cmd c = {.op = KV_OP_PUT,
			   .key = (char *)b->key,
			   .klen = strlen(b->key),
			   .val = v,
			   .vlen = BIG,
			   .mode = 0644,
			   .set_mode = true,
			   .mtime_ns = 1234,
			   .set_xattrs = b->set_xattrs,
			   .xattrs = b->set_xattrs ? &xa : NULL,
			   .nxattr = b->set_xattrs ? 1 : 0};
	b->enc_ret = kv_cmd_encode(&c, &b->json, &b->len);
	free(v);
	if (b->enc_ret != 0)
		return;
	b->checked = store_data_check(b->json, b->len, &b->crc);
	b->dec_ret = kv_cmd_decode(b->json, b->len, &b->cmd);
	if (b->dec_ret == 0)
		b->prep_ret = store_cmd_prepare(&b->cmd);
}

static void *receiver_main(void *arg)
{
	struct big *b = arg;
	for (; b->key; b++)
		receive(b);
	return NULL;
}

/* Prepare every big of bigs (ended by a NULL key) on another thread. */
static void receive_elsewhere(struct big *bigs)
{
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, receiver_main, bigs), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	for (struct big *b = bigs; b->key; b++) {
		assert_int_equal(b->enc_ret, 0);
		assert_int_equal(b->dec_ret, 0);
		assert_true(b->checked);
		assert_int_equal(b->prep_ret, 0);
		assert_non_null(b->cmd.prep);
	}
}

static void bigs_free(struct big *bigs)
{
	for (struct big *b = bigs; b->key; b++) {
		free(b->json);
		kv_cmd_clear(&b->cmd);
	}
}

/* The entry of b at index: prepared (its check, CRC and command), or
 * plain, as a store gets it when nothing was done elsewhere. */
static struct store_entry entry_of(const struct big *b, uint64_t index,
				   bool prepared)
{
	struct store_entry e = {.index = index,
				.term = 1,
				.type = STORE_ENTRY_CMD,
				.data = b->json,
				.len = b->len};
	if (prepared) {
		e.data_checked = true;
		e.data_crc = b->crc;
		e.cmd = &b->cmd;
	}
	return e;
}

static void append_apply(struct fixture *f, const struct store_entry *e,
			 size_t n)
{
	assert_int_equal(store_append(f->st, e, n), 0);
	assert_int_equal(store_apply(f->st, e, n), 0);
	wait_persisted(&f->rep, e[n - 1].index);
}

/* A small put, to give a key attributes before a big one. */
static struct store_entry small_put(uint64_t index, const char *key,
				    bool with_xattr)
{
	struct kv_xattr xa = {.name = "user.old",
			      .nlen = 8,
			      .val = (const unsigned char *)"x",
			      .vlen = 1};
	struct kv_cmd c = {.op = KV_OP_PUT,
			   .key = (char *)key,
			   .klen = strlen(key),
			   .val = (unsigned char *)"small",
			   .vlen = 5,
			   .mtime_ns = 1,
			   .set_xattrs = with_xattr,
			   .xattrs = with_xattr ? &xa : NULL,
			   .nxattr = with_xattr ? 1 : 0};
	struct store_entry e = {
	    .index = index, .term = 1, .type = STORE_ENTRY_CMD};
	char *json;
	assert_int_equal(kv_cmd_encode(&c, &json, &e.len), 0);
	e.data = json;
	return e;
}

static void expect_big_value(struct store *st, const struct big *b)
{
	unsigned char *v = value_of(b);
	struct kv_rec *rec = NULL;
	assert_int_equal(store_get(st, b->key, strlen(b->key), &rec), 0);
	assert_int_equal(rec->vlen, BIG);
	assert_memory_equal(kv_rec_val(rec), v, BIG);
	kv_rec_unref(rec);
	free(v);
}

/* The log of f reads back: every line's CRC is checked at open. */
static void expect_log_reads_back(struct fixture *f, const struct big *bigs,
				  size_t n)
{
	store_close(f->st);
	fixture_open(f);
	struct store_recovery rec;
	assert_int_equal(store_recover(f->st, &rec), 0);
	assert_int_equal(rec.n, n);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(rec.entries[i].len, bigs[i].len);
		assert_memory_equal(rec.entries[i].data, bigs[i].json,
				    bigs[i].len);
	}
	store_recovery_free(&rec);
}

/* ---- tests ---- */

static void test_crc_of_two_parts_combines_to_the_crc_of_both(void **s)
{
	(void)s;
	static const size_t lens[] = {0, 1, 7, 8, 17, 4097, (1u << 20) + 3};
	unsigned char *buf = malloc(64 + (2u << 20));
	assert_non_null(buf);
	for (size_t i = 0; i < 64 + (2u << 20); i++)
		buf[i] = (unsigned char)(i * 2654435761u >> 13);
	for (size_t a = 0; a < sizeof(lens) / sizeof(lens[0]); a++)
		for (size_t b = 0; b < sizeof(lens) / sizeof(lens[0]); b++) {
			size_t la = lens[a] % 64, lb = lens[b];
			uint32_t whole = kv_crc32c(0, buf, la + lb);
			uint32_t ca = kv_crc32c(0, buf, la);
			uint32_t cb = kv_crc32c(0, buf + la, lb);
			assert_int_equal(kv_crc32c_combine(ca, cb, lb), whole);
		}
	free(buf);
}

static void test_a_prepared_big_put_is_not_read_by_the_appender(void **s)
{
	(void)s;
	struct big bigs[] = {{.key = "big/text"},
			     {.key = "big/binary", .binary = true},
			     {.key = "big/xattr", .set_xattrs = true},
			     {0}};
	receive_elsewhere(bigs);
	struct fixture f, ref;
	fixture_init(&f);
	fixture_init(&ref);
	struct store_entry e[3], plain[3];
	for (uint64_t i = 0; i < 3; i++) {
		e[i] = entry_of(&bigs[i], i + 1, true);
		plain[i] = entry_of(&bigs[i], i + 1, false);
	}

	memset(&kv_work, 0, sizeof(kv_work));
	append_apply(&f, e, 3);
	struct kv_thread_work w = kv_work;
	printf("# the appending thread, 3 prepared entries of 16 MiB: "
	       "%llu bytes checksummed, %llu hashed, %llu copied, %llu "
	       "written\n",
	       (unsigned long long)w.crc, (unsigned long long)w.hash,
	       (unsigned long long)w.copy, (unsigned long long)w.write);
	assert_true(w.crc <= SMALL_WORK);
	assert_true(w.hash <= SMALL_WORK);
	assert_true(w.copy <= SMALL_WORK);
	/* the log write is still this thread's (docs/architecture.md) */
	assert_true(w.write >= 3ull * BIG);

	/* the store that did it all itself: the same map, the same hash */
	memset(&kv_work, 0, sizeof(kv_work));
	append_apply(&ref, plain, 3);
	assert_true(kv_work.crc >= 3ull * BIG);
	assert_true(kv_work.hash >= 3ull * BIG);
	assert_int_equal(state_hash(f.st), state_hash(ref.st));
	for (size_t i = 0; i < 3; i++)
		expect_big_value(f.st, &bigs[i]);

	expect_log_reads_back(&f, bigs, 3);
	fixture_done(&f);
	fixture_done(&ref);
	bigs_free(bigs);
}

/* A put that keeps the old record's attributes cannot take the record
 * prepared without them: the apply builds its own, and the outcome is
 * the plain path's. */
static void test_a_prepared_put_keeping_attributes_builds_its_own(void **s)
{
	(void)s;
	struct big bigs[] = {{.key = "big/kept"}, {0}};
	receive_elsewhere(bigs);
	struct fixture f, ref;
	fixture_init(&f);
	fixture_init(&ref);
	struct store_entry first = small_put(1, "big/kept", true);
	append_apply(&f, &first, 1);
	append_apply(&ref, &first, 1);
	struct store_entry e = entry_of(&bigs[0], 2, true);
	struct store_entry plain = entry_of(&bigs[0], 2, false);
	append_apply(&f, &e, 1);
	append_apply(&ref, &plain, 1);
	assert_int_equal(f.rep.last_err, 0);
	assert_int_equal(state_hash(f.st), state_hash(ref.st));
	expect_big_value(f.st, &bigs[0]);
	struct kv_rec *rec = NULL;
	assert_int_equal(store_get(f.st, "big/kept", 8, &rec), 0);
	assert_int_equal(rec->nxattr, 1);
	assert_non_null(kv_rec_xattr(rec, "user.old", 8));
	kv_rec_unref(rec);
	free((void *)first.data);
	fixture_done(&f);
	fixture_done(&ref);
	bigs_free(bigs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_crc_of_two_parts_combines_to_the_crc_of_both),
	    cmocka_unit_test(
		test_a_prepared_big_put_is_not_read_by_the_appender),
	    cmocka_unit_test(
		test_a_prepared_put_keeping_attributes_builds_its_own),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
