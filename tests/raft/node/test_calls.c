/* test_calls.c - the blocking calls of node.h, which are the asynchronous
 * ones plus a wait (raft/node/call.c).
 *
 * A write made before any leader is known waits on the node thread and
 * is proposed once one is; a write or a read barrier that never finds a
 * leader is answered KV_ENOQUORUM by its deadline; node_stop answers every
 * blocking call still waiting with KV_ESHUTDOWN and refuses new ones. The
 * lonely node is member 1 of three whose other two never exist, so it can
 * never lead. The HTTP side of the same calls is tests/raft/http. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cmocka.h>

#include "raft.h"
#include "tnode.h"

static char datadir[] = "/tmp/kvfs-test-calls-XXXXXX";

static struct kv_node *open_node(bool lonely, int write_timeout_ms)
{
	static char listen[64], peers[128];
	unsigned p1 = tnode_free_port();
	snprintf(listen, sizeof(listen), "127.0.0.1:%u", p1);
	snprintf(peers, sizeof(peers),
		 "1=127.0.0.1:%u,2=127.0.0.1:%u,3=127.0.0.1:%u", p1,
		 tnode_free_port(), tnode_free_port());
	/* a member of several needs the cluster's token */
	static char token[sizeof(datadir) + 8];
	snprintf(token, sizeof(token), "%s/token", datadir);
	FILE *f = fopen(token, "we");
	if (!f ||
	    fprintf(f, "test-calls-token-0123456789abcdef0123456789\n") < 0)
		fail_msg("cannot write %s", token);
	fclose(f);
	struct node_options opt = {.id = 1,
				   .data_dir = datadir,
				   .listen = listen,
				   .peers = lonely ? peers : NULL,
				   .cluster_token_file = lonely ? token : NULL,
				   .write_timeout_ms = write_timeout_ms};
	struct kv_node *n = NULL;
	char *err = NULL;
	if (node_open(&opt, &n, &err) != 0)
		fail_msg("node_open: %s", err ? err : "?");
	return n;
}

/* Propose key = val (both copied into the command). */
static int put(struct kv_node *n, const char *key, const char *val,
	       struct kv_result *res)
{
	char k[64], v[64];
	snprintf(k, sizeof(k), "%s", key);
	snprintf(v, sizeof(v), "%s", val);
	struct kv_cmd cmd = {.op = KV_OP_PUT,
			     .key = k,
			     .klen = strlen(k),
			     .val = (unsigned char *)v,
			     .vlen = strlen(v)};
	return node_propose(n, &cmd, res);
}

static void
test_a_write_made_before_a_leader_is_known_is_applied_once_one_is(void **state)
{
	(void)state;
	/* alone, it elects itself after an election timeout (0.5 to 1 s);
	 * the write goes in at once and waits for that on the node thread */
	struct kv_node *n = open_node(false, 10000);
	struct kv_result res;
	assert_int_equal(put(n, "early", "bird", &res), 0);
	assert_int_equal(res.err, 0);
	assert_int_equal(node_leader(n, NULL, 0), 1);
	struct kv_rec *rec = NULL;
	assert_int_equal(node_read_barrier(n, true), 0);
	assert_int_equal(store_get(node_store(n), "early", 5, &rec), 0);
	assert_int_equal(rec->vlen, 4);
	assert_memory_equal(kv_rec_val(rec), "bird", 4);
	kv_rec_unref(rec);
	node_close(n);
}

static void
test_calls_without_a_leader_fail_no_quorum_at_their_deadline(void **state)
{
	(void)state;
	struct kv_node *n = open_node(true, 300);
	struct kv_result res;
	struct timespec due = kv_deadline(300); /* no later than the call's */
	assert_int_equal(put(n, "k", "v", &res), KV_ENOQUORUM);
	/* not before its deadline: it was retried until then */
	assert_true(kv_past(&due));
	assert_int_equal(node_read_barrier(n, true), KV_ENOQUORUM);
	/* a local read needs no leader */
	assert_int_equal(node_read_barrier(n, false), 0);
	node_close(n);
}

struct blocked {
	struct kv_node *n;
	bool read;
	int ret;
};

static void *blocked_main(void *arg)
{
	struct blocked *b = arg;
	struct kv_result res;
	b->ret = b->read ? node_read_barrier(b->n, true)
			 : put(b->n, "waits", "forever", &res);
	return NULL;
}

static void
test_node_stop_answers_every_blocking_call_shutting_down(void **state)
{
	(void)state;
	/* a minute to wait, far beyond the test's own timeout: only
	 * node_stop can answer them in time */
	struct kv_node *n = open_node(true, 60000);
	struct blocked b[8];
	pthread_t t[8];
	for (int i = 0; i < 8; i++) {
		b[i] = (struct blocked){.n = n, .read = i % 2, .ret = 1};
		assert_int_equal(
		    pthread_create(&t[i], NULL, blocked_main, &b[i]), 0);
	}
	/* whether each call is still on its way in, queued, parked or
	 * waiting for a round, the answer is the same */
	node_stop(n);
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(b[i].ret, KV_ESHUTDOWN);
	}
	struct kv_result res;
	assert_int_equal(put(n, "after", "stop", &res), KV_ESHUTDOWN);
	assert_int_equal(node_read_barrier(n, true), KV_ESHUTDOWN);
	node_close(n);
}

/* ---- read rounds answered on the delivering thread (read.c) ---- */

struct reader {
	struct kv_node *n;
	int ret;
	atomic_bool done;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	r->ret = node_read_barrier(r->n, true);
	atomic_store(&r->done, true);
	return NULL;
}

/* Deliver READ_INDEX_RESP for rounds first..last at index, as from
 * member 2 in term 0. */
static void deliver_answers(struct kv_node *n, uint64_t first, uint64_t last,
			    uint64_t index)
{
	while (first <= last) {
		size_t c = last - first + 1 > 1000 ? 1000 : last - first + 1;
		struct raft_message *m = calloc(c, sizeof(*m));
		assert_non_null(m);
		for (size_t i = 0; i < c; i++)
			m[i] = (struct raft_message){
			    .type = RAFT_MSG_READ_INDEX_RESP,
			    .from = 2,
			    .to = 1,
			    .ctx = first + i,
			    .index = index};
		node_deliver(n, m, c, 64 * c);
		first += c;
	}
}

/* A reader waits on the lonely node (which never leads: it issues a
 * round every tick, and each fails for want of a leader) while answers
 * to rounds are delivered as from a leader, again and again until the
 * reader is answered: what it was answered. The rounds count up from the
 * wall clock's microseconds when the node was opened (node.c), so
 * "round 1" (rel 1) is an answer to every number from just before the
 * open to just after it: one of them is the node's first round. The
 * answers' term is 0, older than the candidate's: the core drops them;
 * only the delivering thread's path (reads_answer_direct) can use them. */
static int read_answered_by(uint64_t rel, uint64_t index)
{
	uint64_t w0 = (uint64_t)kv_wall_ns() / 1000;
	struct kv_node *n = open_node(true, 800);
	uint64_t w1 = (uint64_t)kv_wall_ns() / 1000;
	struct reader r = {.n = n, .ret = 1};
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, reader_main, &r), 0);
	struct timespec due = kv_deadline(5000);
	while (!atomic_load(&r.done) && !kv_past(&due)) {
		deliver_answers(n, w0 + rel, w1 + rel, index);
		struct timespec pause = {0, 5 * 1000 * 1000};
		nanosleep(&pause, NULL); /* the next try, not a sync */
	}
	pthread_join(t, NULL);
	node_close(n);
	return r.ret;
}

static void test_an_answer_to_a_round_serves_its_reader_at_once(void **state)
{
	(void)state;
	/* round 1 is issued within a tick of the reader's arrival; index 0
	 * is applied on a new node */
	assert_int_equal(read_answered_by(1, 0), 0);
}

static void
test_an_answer_for_an_index_not_applied_here_does_not_serve(void **state)
{
	(void)state;
	/* the reader waits for its index, never applied: no quorum at its
	 * deadline */
	assert_int_equal(read_answered_by(1, 1000), KV_ENOQUORUM);
}

static void test_an_answer_to_a_round_never_issued_does_not_serve(void **state)
{
	(void)state;
	/* a round of another process's numbering (or a forged one) */
	assert_int_equal(read_answered_by(UINT64_MAX / 4, 0), KV_ENOQUORUM);
}

static int each(void **state)
{
	(void)state;
	rmtree(datadir);
	return mkdir(datadir, 0700);
}

static int setup(void **state)
{
	(void)state;
	return mkdtemp(datadir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	rmtree(datadir);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(
		test_a_write_made_before_a_leader_is_known_is_applied_once_one_is,
		each),
	    cmocka_unit_test_setup(
		test_calls_without_a_leader_fail_no_quorum_at_their_deadline,
		each),
	    cmocka_unit_test_setup(
		test_node_stop_answers_every_blocking_call_shutting_down, each),
	    cmocka_unit_test_setup(
		test_an_answer_to_a_round_serves_its_reader_at_once, each),
	    cmocka_unit_test_setup(
		test_an_answer_for_an_index_not_applied_here_does_not_serve,
		each),
	    cmocka_unit_test_setup(
		test_an_answer_to_a_round_never_issued_does_not_serve, each),
	};
	return cmocka_run_group_tests_name("calls", tests, setup, teardown);
}
