/* test_forward_answer.c - the follower's side of writes it forwards.
 *
 * A follower sends the writes of a turn to the leader as one PROPOSE
 * batch; the leader's PROPOSE_RESP gives the index of the batch's first
 * entry, and each call of the batch waits for the entry at that index
 * plus its own place in the batch (raft/node/forward.c). A call whose
 * deadline passes while the answer is on its way leaves the list of
 * forwarded calls first: the calls after it must still wait for their own
 * entries, not take the entry (and so the outcome) of the call before
 * them. That once happened under faults (e2e_cluster_linearizable: a CAS
 * answered 200 that was never applied).
 *
 * Here a real node is member 1 of a three-member cluster whose member 2
 * is this test playing leader (its messages go to the node over POST
 * /raft/message, the node's stream to it is recorded by a fakepeer) and
 * whose member 3 does not exist. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "fakepeer.h"
#include "kv.h"
#include "peer.h"
#include "tcurl.h"
#include "tnode.h"

#define WRITE_TIMEOUT_MS 3000
#define LEADER_TERM	 7

static char datadir[] = "/tmp/kvfs-test-forward-answer-XXXXXX";
static struct tnode tn;
static struct fakepeer *fp;

/* ---- member 2, the leader this test plays ---- */

static struct {
	pthread_mutex_t mu;
	uint64_t last,
	    commit; /* its log: entries 1..last, all of LEADER_TERM */
	atomic_bool stop;
	pthread_t beat;
	bool beating;
} leader = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* msgs to the node, as member 2 sends a batch (one POST): the status,
 * or 0 if it could not be encoded. Any thread: it asserts nothing but
 * the transport (which fails only if the node is gone). */
static long post_as_leader(const struct raft_message *msgs, size_t n)
{
	char *text, hc[PEER_ID_MAX + 32], ht[PEER_ID_MAX + 32];
	size_t len;
	struct kv_node *node = tn.node;
	if (peer_msgs_encode(node_cluster_id(node), 2, msgs, n, &text, &len))
		return 0;
	snprintf(hc, sizeof(hc), PEER_HDR_CLUSTER ": %s",
		 node_cluster_id(node));
	snprintf(ht, sizeof(ht), PEER_HDR_TOKEN ": %s", node_token(node));
	const char *hdrs[] = {hc, ht, "Content-Type: application/json",
			      "Expect:", NULL};
	struct tresp r;
	tcurl_req(tn.port, "POST", PEER_PATH, text, len, hdrs, true, &r);
	long status = r.status;
	tresp_clear(&r);
	free(text);
	return status;
}

static void send_as_leader(const struct raft_message *msgs, size_t n)
{
	assert_int_equal(post_as_leader(msgs, n), 204);
}

/* An APPEND from member 2 after its entry prev, with entries e[0..n)
 * (borrowed) and its commit index. */
static struct raft_message append_msg(uint64_t prev, uint64_t commit,
				      struct raft_entry *e, size_t n)
{
	return (struct raft_message){.type = RAFT_MSG_APPEND,
				     .from = 2,
				     .to = 1,
				     .term = LEADER_TERM,
				     .index = prev,
				     .log_term = prev ? LEADER_TERM : 0,
				     .commit = commit,
				     .entries = e,
				     .n_entries = n};
}

/* Heartbeats every 50 ms, so that the node keeps member 2 as its leader
 * (its election timeout is 0.5 to 1 s). A heartbeat that overtakes the
 * entries before it is only refused by the node (a log it lacks). */
static void *beat_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&leader.stop)) {
		pthread_mutex_lock(&leader.mu);
		struct raft_message m =
		    append_msg(leader.last, leader.commit, NULL, 0);
		pthread_mutex_unlock(&leader.mu);
		post_as_leader(&m, 1); /* refused or lost: the next one */
		nanosleep(&(struct timespec){0, 50000000}, NULL);
	}
	return NULL;
}

/* ---- the node's answers ---- */

struct answer {
	atomic_bool done;
	int ret, err;
	uint64_t rev;
};

static void on_done(void *ctx, int ret, const struct kv_result *res)
{
	struct answer *a = ctx;
	a->ret = ret;
	a->err = res ? res->err : 0;
	a->rev = res ? res->rev : 0;
	atomic_store(&a->done, true);
}

static void wait_answer(struct answer *a, const char *what)
{
	for (int t = 0; t < 2000 && !atomic_load(&a->done); t++)
		fakepeer_nap();
	if (!atomic_load(&a->done))
		fail_msg("no answer to %s", what);
}

/* A put of key=val, or only if its mod_rev is if_rev (nonzero). */
static void put_async(const char *key, const char *val, uint64_t if_rev,
		      struct answer *a)
{
	struct kv_cmd cmd = {.op = KV_OP_PUT,
			     .key = (char *)key,
			     .klen = strlen(key),
			     .val = (unsigned char *)val,
			     .vlen = strlen(val),
			     .mode = 0644,
			     .if_rev = if_rev};
	assert_int_equal(node_propose_async(tn.node, &cmd, on_done, a), 0);
}

/* The PROPOSE the node sent with n entries (copied: raft_message_clear
 * and free it), waiting for it. */
static struct raft_message *sent_propose(size_t n)
{
	for (int t = 0; t < 2000; t++) {
		size_t count;
		struct raft_message *m =
		    fakepeer_msgs(fp, node_cluster_id(tn.node), 2, &count);
		for (size_t i = 0; i < count; i++) {
			if (m[i].type != RAFT_MSG_PROPOSE)
				continue;
			if (m[i].n_entries != n)
				fail_msg("the writes went in a batch of %zu "
					 "entries, not %zu",
					 m[i].n_entries, n);
			struct raft_message *out = malloc(sizeof(*out));
			assert_non_null(out);
			*out = m[i];
			out->entries = calloc(n, sizeof(*out->entries));
			assert_non_null(out->entries);
			for (size_t k = 0; k < n; k++)
				assert_int_equal(
				    raft_entry_dup(&out->entries[k],
						   &m[i].entries[k]),
				    0);
			peer_msgs_free(m, count);
			return out;
		}
		peer_msgs_free(m, count);
		fakepeer_nap();
	}
	fail_msg("the node forwarded no batch of %zu writes", n);
	return NULL;
}

/* ---- the test ---- */

static void test_calls_after_an_expired_one_keep_their_own_entries(void **state)
{
	(void)state;
	struct answer a = {0}, b = {0}, c = {0};
	/* no leader yet: the writes are parked until one is known, then go
	 * to it as one batch; a's deadline is a second before b's and c's */
	put_async("k-a", "from a", 0, &a);
	nanosleep(&(struct timespec){1, 0}, NULL);
	put_async("k-b", "from b", 123456, &b); /* its condition fails */
	put_async("k-c", "from c", 0, &c);
	/* a parked write waits NODE_RETRY_PAUSE_MS (20 ms) before it may go
	 * again in the same term: past that, all three are due at once */
	nanosleep(&(struct timespec){0, 200000000}, NULL);
	assert_false(atomic_load(&a.done) || atomic_load(&b.done) ||
		     atomic_load(&c.done));

	assert_int_equal(pthread_create(&leader.beat, NULL, beat_main, NULL),
			 0);
	leader.beating = true;
	struct raft_message *p = sent_propose(3);

	/* the answer comes after a's deadline: a leaves the list first */
	wait_answer(&a, "the write whose deadline passed");
	assert_int_equal(a.ret, KV_ENOQUORUM);
	assert_false(atomic_load(&b.done) || atomic_load(&c.done));

	struct raft_message resp = {.type = RAFT_MSG_PROPOSE_RESP,
				    .from = 2,
				    .to = 1,
				    .term = LEADER_TERM,
				    .ctx = p->ctx,
				    .index = 1,
				    .log_term = LEADER_TERM,
				    .hint_index = 3};
	send_as_leader(&resp, 1);
	for (size_t k = 0; k < 3; k++) {
		p->entries[k].term = LEADER_TERM;
		p->entries[k].index = 1 + k;
	}
	struct raft_message app = append_msg(0, 3, p->entries, 3);
	send_as_leader(&app, 1);
	pthread_mutex_lock(&leader.mu);
	leader.last = leader.commit = 3;
	pthread_mutex_unlock(&leader.mu);

	/* b is entry 2, whose condition failed; c is entry 3, applied */
	wait_answer(&b, "the conditional write");
	wait_answer(&c, "the plain write after it");
	assert_int_equal(b.ret, 0);
	assert_int_equal(b.err, KV_EPRECOND);
	assert_int_equal(c.ret, 0);
	assert_int_equal(c.err, 0);
	assert_int_equal(c.rev, 3);
	raft_message_clear(p);
	free(p);
}

/* ---- the node under test ---- */

static int setup(void **state)
{
	char peers[160], listen[64];
	(void)state;
	if (!mkdtemp(datadir))
		return -1;
	fp = fakepeer_start();
	unsigned p1 = tnode_free_port();
	snprintf(listen, sizeof(listen), "127.0.0.1:%u", p1);
	snprintf(peers, sizeof(peers),
		 "1=127.0.0.1:%u,2=127.0.0.1:%u,3=127.0.0.1:%u", p1, fp->port,
		 fakepeer_dead_port());
	struct node_options opt = {.id = 1,
				   .data_dir = datadir,
				   .listen = listen,
				   .peers = peers,
				   .write_timeout_ms = WRITE_TIMEOUT_MS};
	curl_global_init(CURL_GLOBAL_DEFAULT);
	return tnode_start(&opt, &tn) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	atomic_store(&leader.stop, true);
	if (leader.beating)
		pthread_join(leader.beat, NULL);
	tnode_close(&tn);
	fakepeer_stop(fp);
	rmtree(datadir);
	curl_global_cleanup();
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
		test_calls_after_an_expired_one_keep_their_own_entries),
	};
	return cmocka_run_group_tests_name("forward_answer", tests, setup,
					   teardown);
}
