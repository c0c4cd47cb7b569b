/* test_store.c - the store as a node uses it: proposals through the Raft
 * path, group commit, reads, snapshots with compaction, recovery, and
 * refusal of damaged data or missing options.
 *
 * Each test opens a store on a fresh temporary directory and talks to it
 * only through store.h, from one or many threads, with a minimal node
 * (below) doing what raft/node does: append, wait for the persisted
 * report, apply. The Raft path's own rules are in test_store_raft.c. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
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

/* ---- a minimal node: the Raft path as raft/node drives it ---- */

/* Proposals from any thread get the next index and are appended in that
 * order (store_append, one caller at a time); an applier thread applies
 * what the persisted report covers (store_apply), as the node does once
 * entries are committed; the applied report answers the proposer. Results
 * are kept by index. */
#define MAX_INDEX 8192

struct node {
	struct store *st;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	uint64_t next;			    /* the index of the next proposal */
	uint64_t persisted, applied;	    /* reported so far */
	struct store_entry ents[MAX_INDEX]; /* by index; data malloc'd */
	struct kv_result res[MAX_INDEX];
	bool stop;
	pthread_t applier;
};

static void on_persisted(void *ctx, uint64_t index, uint64_t term)
{
	(void)term;
	struct node *n = ctx;
	pthread_mutex_lock(&n->mu);
	if (index > n->persisted)
		n->persisted = index;
	pthread_cond_broadcast(&n->cond);
	pthread_mutex_unlock(&n->mu);
}

static void on_applied(void *ctx, uint64_t index, uint64_t term,
		       const struct kv_result *res)
{
	(void)term;
	struct node *n = ctx;
	pthread_mutex_lock(&n->mu);
	if (res && index < MAX_INDEX)
		n->res[index] = *res;
	n->applied = index;
	pthread_cond_broadcast(&n->cond);
	pthread_mutex_unlock(&n->mu);
}

static void on_snapshotted(void *ctx, uint64_t index)
{
	(void)ctx;
	(void)index;
}

static const struct store_raft_ops node_ops = {.persisted = on_persisted,
					       .applied = on_applied,
					       .snapshotted = on_snapshotted};

/* Apply every persisted entry, in order, until stopped. */
static void *applier_main(void *arg)
{
	struct node *n = arg;
	pthread_mutex_lock(&n->mu);
	for (;;) {
		while (!n->stop && n->applied >= n->persisted)
			pthread_cond_wait(&n->cond, &n->mu);
		if (n->applied >= n->persisted)
			break;
		uint64_t from = n->applied + 1, to = n->persisted;
		pthread_mutex_unlock(&n->mu);
		/* ents[from..to] are not changed while they are unapplied */
		assert_int_equal(
		    store_apply(n->st, &n->ents[from], (size_t)(to - from + 1)),
		    0);
		pthread_mutex_lock(&n->mu);
	}
	pthread_mutex_unlock(&n->mu);
	return NULL;
}

static struct store_options node_options(const char *dir, uint64_t every,
					 struct node *n)
{
	return (struct store_options){.dir = dir,
				      .snapshot_every = every,
				      .segment_size = 64 * 1024,
				      .raft = &node_ops,
				      .raft_ctx = n};
}

/* A node with no store yet. */
static struct node *node_alloc(void)
{
	struct node *n = calloc(1, sizeof(*n));
	assert_non_null(n);
	pthread_mutex_init(&n->mu, NULL);
	pthread_cond_init(&n->cond, NULL);
	return n;
}

/* Open the store in dir and start the node: the log's entries after the
 * db are applied again (they were all committed), as the core would. */
static struct node *node_open(const char *dir, uint64_t every)
{
	struct node *n = node_alloc();
	struct store_options o = node_options(dir, every, n);
	char *msg = NULL;
	int ret = store_open(&o, &n->st, &msg);
	if (ret != 0)
		fail_msg("store_open: %s: %s", kv_strerror(ret),
			 msg ? msg : "");
	struct store_recovery rec;
	assert_int_equal(store_recover(n->st, &rec), 0);
	n->applied = n->persisted = rec.snap_index;
	n->next = rec.snap_index + 1;
	assert_true(rec.snap_index + rec.n < MAX_INDEX);
	for (size_t i = 0; i < rec.n; i++) {
		n->ents[n->next] = rec.entries[i];
		/* a copy: the entries' data is the store's (one arena) */
		void *d = malloc(rec.entries[i].len ? rec.entries[i].len : 1);
		assert_non_null(d);
		memcpy(d, rec.entries[i].data, rec.entries[i].len);
		n->ents[n->next].data = d;
		n->next++;
	}
	n->persisted = n->next - 1;
	store_recovery_free(&rec);
	assert_int_equal(pthread_create(&n->applier, NULL, applier_main, n), 0);
	return n;
}

static void node_close(struct node *n)
{
	pthread_mutex_lock(&n->mu);
	n->stop = true;
	pthread_cond_broadcast(&n->cond);
	pthread_mutex_unlock(&n->mu);
	pthread_join(n->applier, NULL);
	store_close(n->st);
	for (size_t i = 0; i < MAX_INDEX; i++)
		free((void *)n->ents[i].data);
	pthread_cond_destroy(&n->cond);
	pthread_mutex_destroy(&n->mu);
	free(n);
}

/* Append cmd at term 1 as n's next entry (*index); n->mu held, or no
 * applier yet: appends in index order, one caller at a time. */
static int append_cmd(struct node *n, const struct kv_cmd *cmd, uint64_t *index)
{
	char *json;
	size_t len;
	int ret = kv_cmd_encode(cmd, &json, &len);
	if (ret != 0)
		return ret;
	*index = n->next++;
	assert_true(*index < MAX_INDEX);
	n->ents[*index] = (struct store_entry){.index = *index,
					       .term = 1,
					       .type = STORE_ENTRY_CMD,
					       .data = json,
					       .len = len};
	return store_append(n->st, &n->ents[*index], 1);
}

/* Propose cmd at term 1 and wait until it is applied: 0 with its result
 * in *res, or the store's error. Any thread. */
static int propose(struct node *n, const struct kv_cmd *cmd,
		   struct kv_result *res)
{
	uint64_t index;
	pthread_mutex_lock(&n->mu);
	int ret = append_cmd(n, cmd, &index);
	while (ret == 0 && n->applied < index)
		pthread_cond_wait(&n->cond, &n->mu);
	if (ret == 0)
		*res = n->res[index];
	pthread_mutex_unlock(&n->mu);
	return ret;
}

static int put(struct node *n, const char *key, const void *val, size_t vlen,
	       struct kv_result *res)
{
	struct kv_cmd c = {.op = KV_OP_PUT,
			   .key = (char *)key,
			   .klen = strlen(key),
			   .val = (unsigned char *)val,
			   .vlen = vlen,
			   .mtime_ns = 1};
	return propose(n, &c, res);
}

static struct store_status status_of(struct node *n)
{
	struct store_status ss;
	assert_int_equal(store_status(n->st, &ss), 0);
	return ss;
}

/* Wait until index is applied (the applier catches up after an open). */
static void wait_applied(struct node *n, uint64_t index)
{
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	t.tv_sec += 60;
	pthread_mutex_lock(&n->mu);
	int ret = 0;
	while (n->applied < index && ret != ETIMEDOUT)
		ret = pthread_cond_timedwait(&n->cond, &n->mu, &t);
	uint64_t got = n->applied;
	pthread_mutex_unlock(&n->mu);
	if (got < index)
		fail_msg("applied %llu, not %llu, within 60 s",
			 (unsigned long long)got, (unsigned long long)index);
}

static void expect_stored(struct store *st, const char *key, const void *val,
			  size_t vlen)
{
	struct kv_rec *rec;
	assert_int_equal(store_get(st, key, strlen(key), &rec), 0);
	assert_int_equal(rec->vlen, vlen);
	assert_memory_equal(kv_rec_val(rec), val, vlen);
	kv_rec_unref(rec);
}

static void test_store_applies_a_proposal_and_serves_it(void **state)
{
	(void)state;
	char *dir = make_dir();
	struct node *n = node_open(dir, 0);
	struct kv_result res;
	const unsigned char bin[] = {0, 0xff, '\n', 'x'};
	assert_int_equal(put(n, "a/b", bin, sizeof(bin), &res), 0);
	assert_int_equal(res.err, 0);
	assert_int_equal(res.rev, 1);
	expect_stored(n->st, "a/b", bin, sizeof(bin));
	struct kv_rec *rec;
	assert_int_equal(store_get(n->st, "a/c", 3, &rec), -ENOENT);
	struct kv_stat s;
	assert_int_equal(store_stat(n->st, "a", 1, &s), 0);
	assert_true(s.is_dir);
	struct kv_list l;
	assert_int_equal(store_list(n->st, "a", 1, NULL, 0, &l), 0);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.ents[0].name, "b");
	kv_list_clear(&l);
	node_close(n);
	remove_dir(dir);
}

static void test_store_reports_a_command_failure_as_its_result(void **state)
{
	(void)state;
	char *dir = make_dir();
	struct node *n = node_open(dir, 0);
	struct kv_result res;
	assert_int_equal(put(n, "k", "v1", 2, &res), 0);
	struct kv_cmd c = {.op = KV_OP_PUT,
			   .key = "k",
			   .klen = 1,
			   .val = (unsigned char *)"v2",
			   .vlen = 2,
			   .mtime_ns = 1,
			   .if_rev = 99};
	assert_int_equal(propose(n, &c, &res), 0);
	assert_int_equal(res.err, KV_EPRECOND);
	expect_stored(n->st, "k", "v1", 2);
	node_close(n);
	remove_dir(dir);
}

struct writer {
	struct node *n;
	int id;
	int n_puts;
	int failures;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	for (int i = 0; i < w->n_puts; i++) {
		char key[64], val[64];
		snprintf(key, sizeof(key), "w%d/k%d", w->id, i);
		snprintf(val, sizeof(val), "value %d %d", w->id, i);
		struct kv_result res;
		if (put(w->n, key, val, strlen(val), &res) != 0 || res.err)
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
	struct node *n = node_open(dir, 0);
	enum { W = 16, N = 200 };
	struct writer ws[W];
	pthread_t th[W];
	for (int i = 0; i < W; i++) {
		ws[i] = (struct writer){.n = n, .id = i, .n_puts = N};
		assert_int_equal(
		    pthread_create(&th[i], NULL, writer_main, &ws[i]), 0);
	}
	for (int i = 0; i < W; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(ws[i].failures, 0);
	}
	struct store_status ss = status_of(n);
	assert_int_equal(ss.keys, W * N);
	assert_int_equal(ss.applied_index, W * N);
	node_close(n);

	n = node_open(dir, 0);
	wait_applied(n, W * N);
	ss = status_of(n);
	assert_int_equal(ss.keys, W * N);
	for (int i = 0; i < W; i++)
		for (int j = 0; j < N; j += 37) {
			char key[64], val[64];
			snprintf(key, sizeof(key), "w%d/k%d", i, j);
			snprintf(val, sizeof(val), "value %d %d", i, j);
			expect_stored(n->st, key, val, strlen(val));
		}
	node_close(n);
	remove_dir(dir);
}

/* Snapshots compact the log; a reopen loads the db and replays only the
 * rest, with the same content. */
static void test_store_snapshots_compact_the_log_and_reload(void **state)
{
	(void)state;
	char *dir = make_dir();
	struct node *n = node_open(dir, 100);
	struct kv_result res;
	for (int i = 0; i < 1000; i++) {
		char key[32], val[32];
		snprintf(key, sizeof(key), "k%04d", i % 300);
		snprintf(val, sizeof(val), "v%d", i);
		assert_int_equal(put(n, key, val, strlen(val), &res), 0);
	}
	assert_int_equal(store_snapshot(n->st), 0);
	struct store_status ss = status_of(n);
	assert_int_equal(ss.snapshot_index, 1000);
	assert_true(ss.first_index > 1); /* segments were dropped */
	node_close(n);

	n = node_open(dir, 100);
	ss = status_of(n);
	assert_int_equal(ss.keys, 300);
	assert_int_equal(ss.applied_index, 1000);
	expect_stored(n->st, "k0099", "v999", 4);
	assert_int_equal(put(n, "after", "x", 1, &res), 0);
	assert_int_equal(res.rev, 1001);
	node_close(n);
	remove_dir(dir);
}

static void test_store_persists_hard_state(void **state)
{
	(void)state;
	char *dir = make_dir();
	struct node *n = node_open(dir, 0);
	assert_int_equal(store_save_hardstate(n->st, 7, 3), 0);
	node_close(n);
	n = node_open(dir, 0);
	struct store_status ss = status_of(n);
	assert_int_equal(ss.term, 7);
	assert_int_equal(ss.vote, 3);
	node_close(n);
	remove_dir(dir);
}

/* A second process (here: a second open) on the same directory is refused. */
static void test_store_refuses_a_directory_in_use(void **state)
{
	(void)state;
	char *dir = make_dir();
	struct node *n = node_open(dir, 0);
	struct store_options o = node_options(dir, 0, n);
	struct store *st2;
	char *msg = NULL;
	assert_int_equal(store_open(&o, &st2, &msg), -EBUSY);
	assert_non_null(msg);
	assert_non_null(strstr(msg, "in use"));
	free(msg);
	node_close(n);
	remove_dir(dir);
}

/* The Raft path is the only one: without its callbacks nothing would ever
 * report an entry durable or applied, so the open is refused. */
static void test_store_refuses_options_without_raft_callbacks(void **state)
{
	(void)state;
	char *dir = make_dir();
	struct store_options o = {.dir = dir};
	struct store *st = NULL;
	char *msg = NULL;
	assert_int_equal(store_open(&o, &st, &msg), -EINVAL);
	assert_null(st);
	assert_non_null(msg);
	assert_non_null(strstr(msg, "raft"));
	free(msg);
	struct store_raft_ops half = {.persisted = on_persisted};
	o.raft = &half;
	msg = NULL;
	assert_int_equal(store_open(&o, &st, &msg), -EINVAL);
	free(msg);
	remove_dir(dir);
}

/* A damaged db stops the open with a message naming the file. */
static void test_store_refuses_a_damaged_db_with_its_name(void **state)
{
	(void)state;
	char *dir = make_dir();
	struct node *n = node_open(dir, 0);
	struct kv_result res;
	for (int i = 0; i < 50; i++)
		assert_int_equal(put(n, "k", "value", 5, &res), 0);
	assert_int_equal(store_snapshot(n->st), 0);
	node_close(n);
	char path[4200];
	snprintf(path, sizeof(path), "%s/db.jsonl", dir);
	int fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "#", 1, 20), 1);
	close(fd);
	struct node dummy = {0};
	struct store_options o = node_options(dir, 0, &dummy);
	struct store *st;
	char *msg = NULL;
	assert_int_equal(store_open(&o, &st, &msg), KV_ECORRUPT);
	assert_non_null(msg);
	assert_non_null(strstr(msg, "db.jsonl"));
	free(msg);
	remove_dir(dir);
}

static int del(struct node *n, const char *key)
{
	struct kv_cmd c = {
	    .op = KV_OP_DEL, .key = (char *)key, .klen = strlen(key)};
	struct kv_result res;
	return propose(n, &c, &res);
}

/* Watches read the history: every applied change once, in revision
 * order, filtered by prefix; a put carries its value; the cursor passes
 * revisions without a match; a revision older than the history is
 * KV_EGONE; after a restart the history reaches back to the db. */
static void test_store_history_of_changes_for_watches(void **state)
{
	(void)state;
	char *dir = make_dir();
	struct node *n = node_open(dir, 0);
	struct kv_result res;
	assert_int_equal(put(n, "a/x", "1", 1, &res), 0);  /* rev 1 */
	assert_int_equal(put(n, "b", "2", 1, &res), 0);	   /* rev 2 */
	assert_int_equal(put(n, "a/y", "33", 2, &res), 0); /* rev 3 */
	assert_int_equal(del(n, "a/x"), 0);		   /* rev 4 */
	assert_int_equal(put(n, "ab", "4", 1, &res), 0);   /* rev 5 */
	struct store_event ev[8];
	size_t got;
	uint64_t next, oldest;
	assert_int_equal(
	    store_watch_read(n->st, 1, "a", 1, ev, 8, &got, &next, &oldest), 0);
	/* "a" is the key a and keys under a/, not ab */
	assert_int_equal(got, 3);
	assert_int_equal(ev[0].rev, 1);
	assert_int_equal(ev[0].op, STORE_EV_PUT);
	assert_string_equal(ev[0].key, "a/x");
	assert_memory_equal(kv_rec_val(ev[0].rec), "1", 1);
	assert_int_equal(ev[1].rev, 3);
	assert_int_equal(ev[1].rec->vlen, 2);
	assert_int_equal(ev[2].rev, 4);
	assert_int_equal(ev[2].op, STORE_EV_DELETE);
	assert_null(ev[2].rec);
	assert_int_equal(next, 6); /* past rev 5, which is not under a */
	assert_int_equal(oldest, 1);
	store_events_free(ev, got);
	/* a small page: the cursor stops at the first one left out */
	assert_int_equal(
	    store_watch_read(n->st, 1, "", 0, ev, 2, &got, &next, &oldest), 0);
	assert_int_equal(got, 2);
	assert_int_equal(next, 3);
	store_events_free(ev, got);
	/* nothing new */
	assert_int_equal(
	    store_watch_read(n->st, 6, "", 0, ev, 8, &got, &next, &oldest), 0);
	assert_int_equal(got, 0);
	assert_int_equal(next, 6);
	node_close(n);
	/* a restart replays the log after the db: the same history */
	n = node_open(dir, 0);
	wait_applied(n, 5);
	assert_int_equal(
	    store_watch_read(n->st, 1, "", 0, ev, 8, &got, &next, &oldest), 0);
	assert_int_equal(got, 5);
	assert_int_equal(ev[4].rev, 5);
	assert_string_equal(ev[4].key, "ab");
	store_events_free(ev, got);
	node_close(n);
	remove_dir(dir);
}

/* An add is one event per counter, all of its revision, and a read
 * never splits it: it stops before it, or asks for more room. */
static void test_store_history_keeps_an_add_whole(void **state)
{
	(void)state;
	char *dir = make_dir();
	struct node *n = node_open(dir, 0);
	struct kv_result res;
	assert_int_equal(put(n, "w/x", "1", 1, &res), 0); /* rev 1 */
	struct kv_add a[] = {{"a", 1, 2}, {"b", 1, 1}, {"x", 1, 1}};
	struct kv_cmd c = {.op = KV_OP_ADD,
			   .key = "w",
			   .klen = 1,
			   .adds = a,
			   .nadd = 3,
			   .time_ns = 7};
	assert_int_equal(propose(n, &c, &res), 0); /* rev 2 */
	assert_int_equal(res.err, 0);
	assert_int_equal(put(n, "z", "9", 1, &res), 0); /* rev 3 */
	struct store_event ev[8];
	size_t got;
	uint64_t next, oldest;
	assert_int_equal(
	    store_watch_read(n->st, 1, "w", 1, ev, 8, &got, &next, &oldest), 0);
	assert_int_equal(got, 4);
	assert_int_equal(ev[1].rev, 2);
	assert_int_equal(ev[1].op, STORE_EV_PUT);
	assert_string_equal(ev[1].key, "w/a");
	assert_memory_equal(kv_rec_val(ev[1].rec), "2", 1);
	assert_string_equal(ev[3].key, "w/x");
	assert_int_equal(ev[3].rev, 2);
	assert_memory_equal(kv_rec_val(ev[3].rec), "2", 1);
	store_events_free(ev, got);
	/* a watch on one counter sees it alone */
	assert_int_equal(
	    store_watch_read(n->st, 1, "w/b", 3, ev, 8, &got, &next, &oldest),
	    0);
	assert_int_equal(got, 1);
	assert_int_equal(ev[0].rev, 2);
	store_events_free(ev, got);
	/* room for 2: the put of rev 1, then the add stays for next time */
	assert_int_equal(
	    store_watch_read(n->st, 1, "", 0, ev, 2, &got, &next, &oldest), 0);
	assert_int_equal(got, 1);
	assert_int_equal(ev[0].rev, 1);
	assert_int_equal(next, 2);
	store_events_free(ev, got);
	/* from the add with room for 2: it does not fit, more room */
	assert_int_equal(
	    store_watch_read(n->st, 2, "", 0, ev, 2, &got, &next, &oldest),
	    -ENOBUFS);
	assert_int_equal(got, 0);
	assert_int_equal(
	    store_watch_read(n->st, 2, "", 0, ev, 3, &got, &next, &oldest), 0);
	assert_int_equal(got, 3);
	assert_int_equal(next, 3);
	store_events_free(ev, got);
	node_close(n);
	remove_dir(dir);
}

/* A txn's writes are events of its one revision, in its branch's order;
 * gets, deletes of nothing and a failed txn leave none. */
static void test_store_history_has_a_txn_s_writes(void **state)
{
	(void)state;
	char *dir = make_dir();
	struct node *n = node_open(dir, 0);
	struct kv_result res;
	assert_int_equal(put(n, "d/a", "1", 1, &res), 0); /* rev 1 */
	assert_int_equal(put(n, "k", "1", 1, &res), 0);	  /* rev 2 */
	struct kv_txn_op s[] = {
	    {.kind = KV_TXN_PUT,
	     .key = "x",
	     .klen = 1,
	     .val = (unsigned char *)"v",
	     .vlen = 1},
	    {.kind = KV_TXN_GET, .key = "k", .klen = 1},
	    {.kind = KV_TXN_DEL, .key = "none", .klen = 4},
	    {.kind = KV_TXN_DEL_RANGE, .key = "d", .klen = 1},
	    {.kind = KV_TXN_DEL, .key = "k", .klen = 1},
	};
	struct kv_txn t = {.br = {s, NULL}, .nop = {5, 0}};
	struct kv_cmd c = {.op = KV_OP_TXN, .txn = &t, .time_ns = 7};
	assert_int_equal(propose(n, &c, &res), 0); /* rev 3 */
	assert_int_equal(res.err, 0);
	/* rev 4: a put below a file fails the txn; rev 5: gets only */
	struct kv_txn_op bad[] = {{.kind = KV_TXN_PUT,
				   .key = "y",
				   .klen = 1,
				   .val = (unsigned char *)"v",
				   .vlen = 1},
				  {.kind = KV_TXN_PUT,
				   .key = "x/z",
				   .klen = 3,
				   .val = (unsigned char *)"v",
				   .vlen = 1}};
	t = (struct kv_txn){.br = {bad, NULL}, .nop = {2, 0}};
	assert_int_equal(propose(n, &c, &res), 0);
	assert_int_equal(res.err, -ENOTDIR);
	t = (struct kv_txn){.br = {s + 1, NULL}, .nop = {1, 0}};
	assert_int_equal(propose(n, &c, &res), 0);
	assert_int_equal(put(n, "z", "9", 1, &res), 0); /* rev 6 */
	struct store_event ev[8];
	size_t got;
	uint64_t next, oldest;
	assert_int_equal(
	    store_watch_read(n->st, 3, "", 0, ev, 8, &got, &next, &oldest), 0);
	assert_int_equal(got, 4);
	assert_int_equal(ev[0].rev, 3);
	assert_int_equal(ev[0].op, STORE_EV_PUT);
	assert_string_equal(ev[0].key, "x");
	assert_memory_equal(kv_rec_val(ev[0].rec), "v", 1);
	assert_int_equal(ev[1].rev, 3);
	assert_int_equal(ev[1].op, STORE_EV_RMDIR);
	assert_true(ev[1].recursive);
	assert_string_equal(ev[1].key, "d");
	assert_int_equal(ev[2].rev, 3);
	assert_int_equal(ev[2].op, STORE_EV_DELETE);
	assert_string_equal(ev[2].key, "k");
	assert_int_equal(ev[3].rev, 6);
	store_events_free(ev, got);
	/* a watch below the deleted directory sees its rmdir */
	assert_int_equal(
	    store_watch_read(n->st, 2, "d/a", 3, ev, 8, &got, &next, &oldest),
	    0);
	assert_int_equal(got, 1);
	assert_int_equal(ev[0].rev, 3);
	store_events_free(ev, got);
	node_close(n);
	remove_dir(dir);
}

/* A history of three events forgets the oldest: a watch from before
 * them is told (KV_EGONE with the oldest revision kept). */
static void test_store_history_is_bounded_and_says_so(void **state)
{
	(void)state;
	char *dir = make_dir();
	struct node *n = node_alloc();
	struct store_options o = node_options(dir, 0, n);
	o.history_events = 3;
	char *msg = NULL;
	assert_int_equal(store_open(&o, &n->st, &msg), 0);
	n->next = 1;
	assert_int_equal(pthread_create(&n->applier, NULL, applier_main, n), 0);
	struct kv_result res;
	for (int i = 0; i < 5; i++)
		assert_int_equal(put(n, "k", "v", 1, &res), 0);
	struct store_event ev[8];
	size_t got;
	uint64_t next, oldest;
	assert_int_equal(
	    store_watch_read(n->st, 2, "", 0, ev, 8, &got, &next, &oldest),
	    KV_EGONE);
	assert_int_equal(oldest, 3);
	assert_int_equal(
	    store_watch_read(n->st, 3, "", 0, ev, 8, &got, &next, &oldest), 0);
	assert_int_equal(got, 3);
	store_events_free(ev, got);
	node_close(n);
	remove_dir(dir);
}

/* What on_change and on_changes_done saw (the applier's thread). */
struct changes {
	struct node *n;
	unsigned changes, since_done, dones, empty_dones, late_dones;
	unsigned got_in_done; /* store_get calls that worked in done */
	uint64_t last_index;  /* of the last change, from its key */
};

static void saw_change(void *ctx, const char *key, size_t klen)
{
	struct changes *c = ctx;
	(void)klen;
	c->changes++;
	c->since_done++;
	c->last_index = strtoull(key + 1, NULL, 10);
}

static void saw_done(void *ctx)
{
	struct changes *c = ctx;
	struct kv_rec *rec;
	char key[16];
	c->dones++;
	if (c->since_done == 0)
		c->empty_dones++;
	c->since_done = 0;
	/* the map's lock is released: a read works from here */
	snprintf(key, sizeof(key), "k%llu", (unsigned long long)c->last_index);
	if (store_get(c->n->st, key, strlen(key), &rec) == 0) {
		c->got_in_done++;
		kv_rec_unref(rec);
	}
	/* and none of the chunk's entries is reported applied yet */
	pthread_mutex_lock(&c->n->mu);
	if (c->n->applied >= c->last_index)
		c->late_dones++;
	pthread_mutex_unlock(&c->n->mu);
}

static void test_store_reports_each_chunk_of_changes_once(void **state)
{
	(void)state;
	char *dir = make_dir();
	struct node *n = node_alloc();
	struct changes c = {.n = n};
	struct store_options o = node_options(dir, 0, n);
	o.on_change = saw_change;
	o.on_changes_done = saw_done;
	o.on_change_ctx = &c;
	char *msg = NULL;
	assert_int_equal(store_open(&o, &n->st, &msg), 0);
	n->next = 1;
	/* 200 puts persisted before the applier starts: it applies them in
	 * chunks of at most 64, keys k1..k200 at indexes 1..200 */
	for (int i = 1; i <= 200; i++) {
		char key[16];
		snprintf(key, sizeof(key), "k%d", i);
		struct kv_cmd cmd = {.op = KV_OP_PUT,
				     .key = key,
				     .klen = strlen(key),
				     .val = (unsigned char *)"v",
				     .vlen = 1,
				     .mtime_ns = 1};
		uint64_t index;
		assert_int_equal(append_cmd(n, &cmd, &index), 0);
		assert_int_equal(index, (uint64_t)i);
	}
	assert_int_equal(pthread_create(&n->applier, NULL, applier_main, n), 0);
	wait_applied(n, 200);
	node_close(n);
	assert_int_equal(c.changes, 200);
	assert_int_equal(c.since_done, 0); /* every change was followed */
	assert_int_equal(c.empty_dones, 0);
	assert_true(c.dones >= 4 && c.dones <= 200);
	assert_int_equal(c.got_in_done, c.dones);
	assert_int_equal(c.late_dones, 0);
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
	    cmocka_unit_test(test_store_refuses_options_without_raft_callbacks),
	    cmocka_unit_test(test_store_refuses_a_damaged_db_with_its_name),
	    cmocka_unit_test(test_store_history_of_changes_for_watches),
	    cmocka_unit_test(test_store_history_keeps_an_add_whole),
	    cmocka_unit_test(test_store_history_has_a_txn_s_writes),
	    cmocka_unit_test(test_store_history_is_bounded_and_says_so),
	    cmocka_unit_test(test_store_reports_each_chunk_of_changes_once),
	    cmocka_unit_test(test_kv_strerror_names_every_code),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
