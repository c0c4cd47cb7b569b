/* test_store.c - the store-owner thread: proposals, group commit, reads,
 * snapshots with compaction, recovery, and refusal of damaged data.
 *
 * Each test opens a store on a fresh temporary directory and talks to it
 * only through store.h, from one or many threads. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "store.h"

static char *make_dir(void)
{
	char tmpl[] = "/tmp/kvfs-store-test.XXXXXX";
	char *d = mkdtemp(tmpl);
	assert_non_null(d);
	return strdup(d);
}

static void remove_dir(char *dir)
{
	char cmd[4200];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	free(dir);
}

static struct store *open_store(const char *dir, uint64_t every)
{
	struct store_options o = {
	    .dir = dir, .snapshot_every = every, .segment_size = 64 * 1024};
	struct store *st;
	char *msg = NULL;
	int ret = store_open(&o, &st, &msg);
	if (ret != 0)
		fail_msg("store_open: %s: %s", kv_strerror(ret),
			 msg ? msg : "");
	return st;
}

static int put(struct store *st, const char *key, const void *val, size_t vlen,
	       struct kv_result *res)
{
	struct kv_cmd c = {.op = KV_OP_PUT,
			   .key = (char *)key,
			   .klen = strlen(key),
			   .val = (unsigned char *)val,
			   .vlen = vlen,
			   .mtime_ns = 1};
	return store_propose(st, 1, &c, res);
}

static void expect_stored(struct store *st, const char *key, const void *val,
			  size_t vlen)
{
	struct kv_rec *rec;
	assert_int_equal(store_get(st, key, strlen(key), &rec), 0);
	assert_int_equal(rec->vlen, vlen);
	assert_memory_equal(rec->val, val, vlen);
	kv_rec_unref(rec);
}

static void test_store_applies_a_proposal_and_serves_it(void **state)
{
	(void)state;
	char *dir = make_dir();
	struct store *st = open_store(dir, 0);
	struct kv_result res;
	const unsigned char bin[] = {0, 0xff, '\n', 'x'};
	assert_int_equal(put(st, "a/b", bin, sizeof(bin), &res), 0);
	assert_int_equal(res.err, 0);
	assert_int_equal(res.rev, 1);
	expect_stored(st, "a/b", bin, sizeof(bin));
	struct kv_rec *rec;
	assert_int_equal(store_get(st, "a/c", 3, &rec), -ENOENT);
	struct kv_stat s;
	assert_int_equal(store_stat(st, "a", 1, &s), 0);
	assert_true(s.is_dir);
	struct kv_list l;
	assert_int_equal(store_list(st, "a", 1, NULL, 0, &l), 0);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.ents[0].name, "b");
	kv_list_clear(&l);
	store_close(st);
	remove_dir(dir);
}

static void test_store_reports_a_command_failure_as_its_result(void **state)
{
	(void)state;
	char *dir = make_dir();
	struct store *st = open_store(dir, 0);
	struct kv_result res;
	assert_int_equal(put(st, "k", "v1", 2, &res), 0);
	struct kv_cmd c = {.op = KV_OP_PUT,
			   .key = "k",
			   .klen = 1,
			   .val = (unsigned char *)"v2",
			   .vlen = 2,
			   .mtime_ns = 1,
			   .if_rev = 99};
	assert_int_equal(store_propose(st, 1, &c, &res), 0);
	assert_int_equal(res.err, KV_EPRECOND);
	expect_stored(st, "k", "v1", 2);
	store_close(st);
	remove_dir(dir);
}

struct writer {
	struct store *st;
	int id;
	int n;
	int failures;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	for (int i = 0; i < w->n; i++) {
		char key[64], val[64];
		snprintf(key, sizeof(key), "w%d/k%d", w->id, i);
		snprintf(val, sizeof(val), "value %d %d", w->id, i);
		struct kv_result res;
		if (put(w->st, key, val, strlen(val), &res) != 0 || res.err)
			w->failures++;
	}
	return NULL;
}

/* Many writers at once: every proposal is answered, applied, and survives
 * a reopen (their entries shared syncs; nothing was answered unsynced). */
static void test_store_commits_concurrent_writers_and_recovers_them(void **s)
{
	(void)s;
	char *dir = make_dir();
	struct store *st = open_store(dir, 0);
	enum { W = 16, N = 200 };
	struct writer ws[W];
	pthread_t th[W];
	for (int i = 0; i < W; i++) {
		ws[i] = (struct writer){.st = st, .id = i, .n = N};
		assert_int_equal(
		    pthread_create(&th[i], NULL, writer_main, &ws[i]), 0);
	}
	for (int i = 0; i < W; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(ws[i].failures, 0);
	}
	struct store_status ss;
	assert_int_equal(store_status(st, &ss), 0);
	assert_int_equal(ss.keys, W * N);
	assert_int_equal(ss.applied_index, W * N);
	store_close(st);

	st = open_store(dir, 0);
	assert_int_equal(store_status(st, &ss), 0);
	assert_int_equal(ss.keys, W * N);
	for (int i = 0; i < W; i++)
		for (int j = 0; j < N; j += 37) {
			char key[64], val[64];
			snprintf(key, sizeof(key), "w%d/k%d", i, j);
			snprintf(val, sizeof(val), "value %d %d", i, j);
			expect_stored(st, key, val, strlen(val));
		}
	store_close(st);
	remove_dir(dir);
}

/* Automatic snapshots compact the log; a reopen loads the db and replays
 * only the rest, with the same content. */
static void test_store_snapshots_compact_the_log_and_reload(void **state)
{
	(void)state;
	char *dir = make_dir();
	struct store *st = open_store(dir, 100);
	struct kv_result res;
	for (int i = 0; i < 1000; i++) {
		char key[32], val[32];
		snprintf(key, sizeof(key), "k%04d", i % 300);
		snprintf(val, sizeof(val), "v%d", i);
		assert_int_equal(put(st, key, val, strlen(val), &res), 0);
	}
	assert_int_equal(store_snapshot(st), 0);
	struct store_status ss;
	assert_int_equal(store_status(st, &ss), 0);
	assert_int_equal(ss.snapshot_index, 1000);
	assert_true(ss.first_index > 1); /* segments were dropped */
	store_close(st);

	st = open_store(dir, 100);
	assert_int_equal(store_status(st, &ss), 0);
	assert_int_equal(ss.keys, 300);
	assert_int_equal(ss.applied_index, 1000);
	expect_stored(st, "k0099", "v999", 4);
	assert_int_equal(put(st, "after", "x", 1, &res), 0);
	assert_int_equal(res.rev, 1001);
	store_close(st);
	remove_dir(dir);
}

static void test_store_persists_hard_state(void **state)
{
	(void)state;
	char *dir = make_dir();
	struct store *st = open_store(dir, 0);
	assert_int_equal(store_save_hardstate(st, 7, 3), 0);
	store_close(st);
	st = open_store(dir, 0);
	struct store_status ss;
	assert_int_equal(store_status(st, &ss), 0);
	assert_int_equal(ss.term, 7);
	assert_int_equal(ss.vote, 3);
	store_close(st);
	remove_dir(dir);
}

/* A second process (here: a second open) on the same directory is refused. */
static void test_store_refuses_a_directory_in_use(void **state)
{
	(void)state;
	char *dir = make_dir();
	struct store *st = open_store(dir, 0);
	struct store_options o = {.dir = dir};
	struct store *st2;
	char *msg = NULL;
	assert_int_equal(store_open(&o, &st2, &msg), -EBUSY);
	assert_non_null(msg);
	assert_non_null(strstr(msg, "in use"));
	free(msg);
	store_close(st);
	remove_dir(dir);
}

/* A damaged db stops the open with a message naming the file. */
static void test_store_refuses_a_damaged_db_with_its_name(void **state)
{
	(void)state;
	char *dir = make_dir();
	struct store *st = open_store(dir, 0);
	struct kv_result res;
	for (int i = 0; i < 50; i++)
		assert_int_equal(put(st, "k", "value", 5, &res), 0);
	assert_int_equal(store_snapshot(st), 0);
	store_close(st);
	char path[4200];
	snprintf(path, sizeof(path), "%s/db.jsonl", dir);
	int fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "#", 1, 20), 1);
	close(fd);
	struct store_options o = {.dir = dir};
	char *msg = NULL;
	assert_int_equal(store_open(&o, &st, &msg), KV_ECORRUPT);
	assert_non_null(msg);
	assert_non_null(strstr(msg, "db.jsonl"));
	free(msg);
	remove_dir(dir);
}

static void test_kv_strerror_names_every_code(void **state)
{
	(void)state;
	/* kv_strerror names every code of ours */
	for (int e = KV_ERR_FIRST; e >= KV_ERR_LAST; e--)
		assert_string_not_equal(kv_strerror(e), "unknown error");
	assert_string_equal(kv_strerror(-ENOSPC), strerror(ENOSPC));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_store_applies_a_proposal_and_serves_it),
	    cmocka_unit_test(
		test_store_reports_a_command_failure_as_its_result),
	    cmocka_unit_test(
		test_store_commits_concurrent_writers_and_recovers_them),
	    cmocka_unit_test(test_store_snapshots_compact_the_log_and_reload),
	    cmocka_unit_test(test_store_persists_hard_state),
	    cmocka_unit_test(test_store_refuses_a_directory_in_use),
	    cmocka_unit_test(test_store_refuses_a_damaged_db_with_its_name),
	    cmocka_unit_test(test_kv_strerror_names_every_code),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
