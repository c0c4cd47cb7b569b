/* test_peer.c - the peer senders (raft/peer/peer_*.c) against real
 * sockets.
 *
 * The peers are hand-made (tests/lib/fakepeer.h): a libmicrohttpd server
 * on 127.0.0.1 that cuts every stream into frames and records each with
 * its request's method, path, headers and client port; ports with nothing
 * listening for peers that are down (one bound but not listening yet comes
 * up when the test serves it); a listening socket that never answers for
 * a hung peer. Every wait polls with a deadline; nothing sleeps a fixed
 * time before an assertion. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fakepeer.h"
#include "kv.h"
#include "peer.h"

#define CLUSTER "test-cluster"
#define TOKEN	"t0ken-Secret"
#define SELF	1
/* Deadline of every wait: the fixture's (generous, only reached when
 * something is broken). */
#define DEADLINE_MS FAKEPEER_DEADLINE_MS

/* ---- Helpers ---- */

static struct raft_message hb(uint64_t to, uint64_t seq)
{
	struct raft_message m = {.type = RAFT_MSG_HEARTBEAT,
				 .from = SELF,
				 .to = to,
				 .term = 1,
				 .commit = seq};
	return m;
}

static struct peer_set *new_set(const struct peer_options *o)
{
	struct peer_set *ps = NULL;

	assert_int_equal(peers_new(CLUSTER, TOKEN, SELF, o, &ps), 0);
	return ps;
}

static void add(struct peer_set *ps, uint64_t id, unsigned port)
{
	char addr[32];

	snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
	assert_int_equal(peers_add(ps, id, addr), 0);
}

static struct peer_info info(struct peer_set *ps, uint64_t id)
{
	struct peer_info pi;

	assert_int_equal(peers_info(ps, id, &pi), 0);
	return pi;
}

/* Poll until peer id has sent n messages. */
static void wait_sent(struct peer_set *ps, uint64_t id, uint64_t n)
{
	uint64_t end = kv_mono_ms() + DEADLINE_MS;

	while (info(ps, id).sent < n && kv_mono_ms() < end)
		fakepeer_nap();
	assert_int_equal(info(ps, id).sent, n);
}

/* Poll until peer id has failed n times in a row. */
static void wait_failures(struct peer_set *ps, uint64_t id, uint64_t n)
{
	uint64_t end = kv_mono_ms() + DEADLINE_MS;

	while (info(ps, id).failures < n && kv_mono_ms() < end)
		fakepeer_nap();
	assert_int_equal(info(ps, id).failures, n);
}

/* peers_free (or remove) on a thread, so the test can bound its wait. */
struct stopper {
	struct peer_set *ps;
	uint64_t remove_id; /* 0: peers_free */
	atomic_bool done;
};

static void *stopper_main(void *arg)
{
	struct stopper *st = arg;

	if (st->remove_id)
		peers_remove(st->ps, st->remove_id);
	else
		peers_free(st->ps);
	atomic_store(&st->done, true);
	return NULL;
}

/* Run the stop on a thread; it must finish well before any curl timeout
 * (the options below set 60 s). */
static void stop_within(struct peer_set *ps, uint64_t remove_id, int ms)
{
	struct stopper st = {.ps = ps, .remove_id = remove_id};
	uint64_t end = kv_mono_ms() + (uint64_t)ms;
	pthread_t t;

	atomic_init(&st.done, false);
	assert_int_equal(pthread_create(&t, NULL, stopper_main, &st), 0);
	while (!atomic_load(&st.done) && kv_mono_ms() < end)
		fakepeer_nap();
	assert_true(atomic_load(&st.done));
	pthread_join(t, NULL);
}

/* ---- Tests ---- */

/* What was queued while the peer could not be reached goes in one frame
 * once it can; later messages follow as frames of the same stream, on one
 * connection, with the cluster's headers. */
static void test_messages_arrive_batched_in_order_on_one_stream(void **state)
{
	struct peer_options o = {.backoff_min_ms = 1000};
	unsigned port;
	int fd = fakepeer_reserved_port(&port);
	struct peer_set *ps = new_set(&o);
	struct raft_message *got, m[200];
	struct fakepeer *s;
	struct peer_info pi;
	size_t n;

	(void)state;
	add(ps, 2, port);
	m[0] = hb(2, 0);
	assert_int_equal(peers_send(ps, m, 1), 1);
	wait_failures(ps, 2, 1); /* refused: lost; the sender waits 1 s */
	for (int i = 0; i < 200; i++)
		m[i] = hb(2, (uint64_t)i + 1);
	assert_int_equal(peers_send(ps, m, 100), 100);
	assert_int_equal(peers_send(ps, m + 100, 100), 100);
	s = fakepeer_start_fd(fd);
	wait_sent(ps, 2, 200);
	for (int i = 0; i < 10; i++) {
		m[0] = hb(2, 201 + (uint64_t)i);
		assert_int_equal(peers_send(ps, m, 1), 1);
		wait_sent(ps, 2, 201 + (uint64_t)i);
	}

	got = fakepeer_wait_msgs(s, CLUSTER, 2, 210, &n);
	assert_int_equal(n, 210);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(got[i].commit, i + 1);
		assert_int_equal(got[i].from, SELF);
		assert_int_equal(got[i].type, RAFT_MSG_HEARTBEAT);
	}
	peer_msgs_free(got, n);
	/* The 200 in one frame, then one frame each, in one stream. */
	assert_int_equal(s->n, 11);
	assert_int_equal(s->streams, 1);
	for (unsigned i = 0; i < s->n; i++) {
		assert_string_equal(s->frames[i].method, "POST");
		assert_string_equal(s->frames[i].url, PEER_STREAM_PATH);
		assert_string_equal(s->frames[i].ctype,
				    "application/x-kvfs-raft-stream");
		assert_string_equal(s->frames[i].cluster, CLUSTER);
		assert_string_equal(s->frames[i].token, TOKEN);
		assert_string_equal(s->frames[i].protocol, "2");
		assert_int_equal(s->frames[i].client_port,
				 s->frames[0].client_port);
	}
	pi = info(ps, 2);
	assert_int_equal(pi.batches, 11);
	assert_int_equal(pi.sent, 210);
	assert_true(pi.reachable);
	assert_true(pi.last_ok_ms > 0);
	assert_int_equal(pi.failures, 0);
	assert_int_equal(pi.queued, 0);
	assert_int_equal(pi.dropped, 1);
	assert_non_null(strstr(pi.addr, "127.0.0.1:"));
	peers_free(ps);
	fakepeer_stop(s);
}

static void test_entries_reach_the_peer_intact(void **state)
{
	static const unsigned char bin[] = {0, 0xfe, 'x', 0};
	struct fakepeer *s = fakepeer_start();
	struct peer_set *ps = new_set(NULL);
	struct raft_entry e[2] = {
	    {1, 8, RAFT_ENTRY_NORMAL, (void *)"{\"op\":\"put\"}", 12, NULL},
	    {1, 9, RAFT_ENTRY_NORMAL, (void *)bin, sizeof(bin), NULL},
	};
	struct raft_message m = {.type = RAFT_MSG_APPEND,
				 .from = SELF,
				 .to = 2,
				 .term = 1,
				 .index = 7,
				 .log_term = 1,
				 .commit = 6,
				 .entries = e,
				 .n_entries = 2};
	struct raft_message *got;
	size_t n;

	(void)state;
	add(ps, 2, s->port);
	assert_int_equal(peers_send(ps, &m, 1), 1);
	/* The caller's copy is its own: change it after sending. */
	m.entries = NULL;
	m.n_entries = 0;
	wait_sent(ps, 2, 1);
	got = fakepeer_wait_msgs(s, CLUSTER, 2, 1, &n);
	assert_int_equal(n, 1);
	assert_int_equal(got[0].n_entries, 2);
	assert_memory_equal(got[0].entries[0].data, "{\"op\":\"put\"}", 12);
	assert_int_equal(got[0].entries[1].len, sizeof(bin));
	assert_memory_equal(got[0].entries[1].data, bin, sizeof(bin));
	peer_msgs_free(got, n);
	peers_free(ps);
	fakepeer_stop(s);
}

/* peers_send_take (the node's): the entries are taken, not copied, and a
 * frame of big entries, left to the sender thread, arrives intact, on an
 * open stream too; the heartbeats go on the control stream. */
static void test_taken_big_entries_go_through_the_sender_intact(void **state)
{
	struct fakepeer *s = fakepeer_start();
	struct peer_set *ps = new_set(NULL);
	size_t big = 3u << 20;
	struct raft_message hb = {
	    .type = RAFT_MSG_HEARTBEAT, .from = SELF, .to = 2, .term = 1};
	struct raft_message m[3] = {hb,
				    {.type = RAFT_MSG_APPEND,
				     .from = SELF,
				     .to = 2,
				     .term = 1,
				     .index = 7,
				     .log_term = 1},
				    hb};
	struct raft_message *got;
	size_t n;

	(void)state;
	add(ps, 2, s->port);
	assert_int_equal(peers_send(ps, &hb, 1), 1);
	wait_sent(ps, 2, 1); /* the stream is open */
	m[1].entries = calloc(1, sizeof(struct raft_entry));
	m[1].n_entries = 1;
	m[1].entries[0] = (struct raft_entry){
	    1, 8, RAFT_ENTRY_NORMAL, malloc(big), big, NULL};
	for (size_t i = 0; i < big; i++)
		((unsigned char *)m[1].entries[0].data)[i] =
		    (unsigned char)(i * 7 + i / 4096);
	m[2].commit = 8;
	assert_int_equal(peers_send_take(ps, m, 3), 3);
	assert_null(m[1].entries);
	assert_int_equal(m[1].n_entries, 0);
	wait_sent(ps, 2, 4);
	got = fakepeer_wait_msgs(s, CLUSTER, 2, 4, &n);
	assert_int_equal(n, 4);
	/* the heartbeat went on the control stream, the append on the data
	 * stream: both arrive, in either order */
	struct raft_message *a = NULL, *h = NULL;
	for (size_t j = 1; j < n; j++) {
		if (got[j].type == RAFT_MSG_APPEND)
			a = &got[j];
		else if (got[j].type == RAFT_MSG_HEARTBEAT && got[j].commit)
			h = &got[j];
	}
	assert_non_null(a);
	assert_non_null(h);
	assert_int_equal(h->commit, 8);
	assert_int_equal(a->n_entries, 1);
	assert_int_equal(a->entries[0].len, big);
	for (size_t i = 0; i < big; i++)
		if (((unsigned char *)a->entries[0].data)[i] !=
		    (unsigned char)(i * 7 + i / 4096))
			fail_msg("byte %zu of the entry differs", i);
	peer_msgs_free(got, n);
	peers_free(ps);
	fakepeer_stop(s);
}

/* Heartbeats queued behind a big append go out before it: the follower
 * hears its leader without waiting for megabytes to be encoded and sent
 * first. The appends keep their order. */
static void test_small_messages_overtake_a_queued_big_append(void **state)
{
	struct fakepeer *s = fakepeer_start();
	struct peer_set *ps = new_set(NULL);
	size_t big = 2u << 20;
	struct raft_message m[4];
	struct raft_message *got;
	size_t n;

	(void)state;
	add(ps, 2, s->port);
	for (int i = 0; i < 4; i++) {
		bool app = i % 2 == 0;
		m[i] = (struct raft_message){
		    .type = app ? RAFT_MSG_APPEND : RAFT_MSG_HEARTBEAT,
		    .from = SELF,
		    .to = 2,
		    .term = 1,
		    .index = app ? (uint64_t)(7 + i) : 0,
		    .log_term = app ? 1 : 0,
		    .commit = (uint64_t)i + 1};
		if (!app)
			continue;
		m[i].entries = calloc(1, sizeof(struct raft_entry));
		m[i].n_entries = 1;
		m[i].entries[0] = (struct raft_entry){1,
						      (uint64_t)(8 + i),
						      RAFT_ENTRY_NORMAL,
						      calloc(1, big),
						      big,
						      NULL};
	}
	/* the stream is not open yet: all four wait in its queue (one
	 * stream: peers_send; peers_send_take would send the heartbeats on
	 * the control stream) */
	assert_int_equal(peers_send(ps, m, 4), 4);
	for (int i = 0; i < 4; i += 2)
		raft_message_clear(&m[i]);
	wait_sent(ps, 2, 4);
	got = fakepeer_wait_msgs(s, CLUSTER, 2, 4, &n);
	assert_int_equal(n, 4);
	assert_int_equal(got[0].type, RAFT_MSG_HEARTBEAT);
	assert_int_equal(got[0].commit, 2);
	assert_int_equal(got[1].type, RAFT_MSG_HEARTBEAT);
	assert_int_equal(got[1].commit, 4);
	assert_int_equal(got[2].type, RAFT_MSG_APPEND);
	assert_int_equal(got[2].index, 7);
	assert_int_equal(got[3].type, RAFT_MSG_APPEND);
	assert_int_equal(got[3].index, 9);
	peer_msgs_free(got, n);
	peers_free(ps);
	fakepeer_stop(s);
}

/* What the unsent callback heard. */
static struct {
	pthread_mutex_t mu;
	uint64_t to[64], ctx[64];
	size_t n;
} unsent = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void on_unsent(void *arg, uint64_t to, uint64_t ctx)
{
	assert_ptr_equal(arg, &unsent);
	pthread_mutex_lock(&unsent.mu);
	if (unsent.n < 64) {
		unsent.to[unsent.n] = to;
		unsent.ctx[unsent.n++] = ctx;
	}
	pthread_mutex_unlock(&unsent.mu);
}

static size_t unsent_count(void)
{
	pthread_mutex_lock(&unsent.mu);
	size_t n = unsent.n;
	pthread_mutex_unlock(&unsent.mu);
	return n;
}

static struct raft_message propose(uint64_t to, uint64_t ctx)
{
	static char cmd[] = "{\"v\":1}";
	static struct raft_entry e = {
	    .type = RAFT_ENTRY_NORMAL, .data = cmd, .len = sizeof(cmd) - 1};
	struct raft_message m = {.type = RAFT_MSG_PROPOSE,
				 .from = SELF,
				 .to = to,
				 .ctx = ctx,
				 .entries = &e,
				 .n_entries = 1};
	return m;
}

/* A follower forwards writes in propose messages and may send one again
 * only if the leader surely never got it: the sender says so for those
 * it could not hand over whole, and only for those. */
static void test_a_propose_that_never_went_is_reported(void **state)
{
	struct peer_options o = {.unsent = on_unsent, .unsent_arg = &unsent};
	struct fakepeer *s = fakepeer_start();
	struct peer_set *ps = new_set(&o);
	uint64_t end = kv_mono_ms() + DEADLINE_MS;

	(void)state;
	unsent.n = 0;
	add(ps, 2, s->port);
	add(ps, 3, fakepeer_dead_port());
	struct raft_message m[3] = {propose(2, 41), hb(3, 1), propose(3, 42)};
	assert_int_equal(peers_send(ps, m, 3), 3);
	while (unsent_count() == 0 && kv_mono_ms() < end)
		fakepeer_nap();
	wait_sent(ps, 2, 1);
	assert_int_equal(unsent_count(), 1);
	assert_int_equal(unsent.to[0], 3);
	assert_int_equal(unsent.ctx[0], 42);
	/* the one delivered is not reported, even once its stream ends */
	stop_within(ps, 0, 3000);
	assert_int_equal(unsent_count(), 1);
	fakepeer_stop(s);
}

static void test_down_peer_backs_off_without_blocking_others(void **state)
{
	struct peer_options o = {.max_queue = 16, .timeout_ms = 60000};
	struct fakepeer *s = fakepeer_start();
	struct peer_set *ps = new_set(&o);
	uint64_t end = kv_mono_ms() + DEADLINE_MS;
	unsigned last_backoff = 0, grew = 0;
	struct peer_info pi;

	(void)state;
	add(ps, 2, s->port);
	add(ps, 3, fakepeer_dead_port());
	for (int i = 0; i < 300; i++) {
		struct raft_message m[2] = {hb(3, (uint64_t)i),
					    hb(2, (uint64_t)i)};
		assert_int_equal(peers_send(ps, m, 2), 2);
		/* The queue of the dead peer never exceeds its bound. */
		assert_true(info(ps, 3).queued <= o.max_queue);
		/* Paced below the live peer's bound, so it loses nothing. */
		if (i % 8 == 7)
			wait_sent(ps, 2, (uint64_t)i + 1);
	}
	wait_sent(ps, 2, 300);

	/* Keep feeding the dead peer; its backoff doubles up to the cap. */
	do {
		struct raft_message m = hb(3, 1);
		peers_send(ps, &m, 1);
		pi = info(ps, 3);
		assert_true(pi.queued <= o.max_queue);
		assert_true(pi.backoff_ms <= 1000);
		if (pi.backoff_ms > last_backoff) {
			grew++;
			last_backoff = pi.backoff_ms;
		}
		fakepeer_nap();
	} while (last_backoff < 1000 && kv_mono_ms() < end);
	assert_int_equal(last_backoff, 1000);
	assert_true(grew >= 3); /* 10, 20, 40, ... 1000 */
	assert_false(pi.reachable);
	assert_true(pi.failures >= 5);
	assert_true(pi.last_err[0] != '\0');
	assert_true(pi.last_err_ms > 0);
	assert_int_equal(pi.last_ok_ms, 0);
	assert_int_equal(pi.sent, 0);
	assert_true(pi.dropped > 0);
	assert_true(info(ps, 2).reachable);
	print_message("dead peer: %s\n", pi.last_err);
	stop_within(ps, 0, 3000);
	fakepeer_stop(s);
}

static void test_full_queue_drops_oldest_heartbeats_first(void **state)
{
	struct peer_options o = {.max_queue = 8, .backoff_min_ms = 1000};
	unsigned port;
	int fd = fakepeer_reserved_port(&port);
	struct peer_set *ps = new_set(&o);
	struct raft_message *got, m;
	struct raft_message vote = {
	    .type = RAFT_MSG_VOTE, .from = SELF, .to = 2, .term = 2};
	struct fakepeer *s;
	size_t n;

	(void)state;
	add(ps, 2, port);
	m = hb(2, 1000);
	peers_send(ps, &m, 1);
	wait_failures(ps, 2, 1); /* refused; the sender waits 1 s */
	assert_int_equal(peers_send(ps, &vote, 1), 1);
	for (int i = 0; i < 50; i++) {
		m = hb(2, (uint64_t)i);
		assert_int_equal(peers_send(ps, &m, 1), 1);
	}
	assert_int_equal(info(ps, 2).queued, 8);
	assert_int_equal(info(ps, 2).dropped, 1 + 43);
	s = fakepeer_start_fd(fd);
	wait_sent(ps, 2, 8);

	got = fakepeer_wait_msgs(s, CLUSTER, 2, 8, &n);
	assert_int_equal(n, 8);
	assert_int_equal(got[0].type, RAFT_MSG_VOTE);
	for (size_t i = 1; i < 8; i++)
		assert_int_equal(got[i].commit, 43 + (i - 1));
	peer_msgs_free(got, n);
	peers_free(ps);
	fakepeer_stop(s);
}

/* Frames larger than the socket takes at once: the sender writes the
 * rest, later messages wait behind it (no frame is cut by another), and
 * every byte arrives in order. */
static void
test_a_frame_the_socket_cannot_take_at_once_is_finished(void **state)
{
	enum { BIG = 3 * 1024 * 1024, N = 3 };
	struct fakepeer *s = fakepeer_start();
	struct peer_set *ps = new_set(NULL);
	char *data[N];
	struct raft_entry e[N];
	struct raft_message m, *got;
	size_t n;

	(void)state;
	add(ps, 2, s->port);
	m = hb(2, 1);
	assert_int_equal(peers_send(ps, &m, 1), 1);
	wait_sent(ps, 2, 1); /* the stream is open */
	for (int i = 0; i < N; i++) {
		data[i] = malloc(BIG);
		assert_non_null(data[i]);
		memset(data[i], 'a' + i, BIG);
		e[i] = (struct raft_entry){.term = 1,
					   .index = (uint64_t)i + 1,
					   .type = RAFT_ENTRY_NORMAL,
					   .data = data[i],
					   .len = BIG};
		m = (struct raft_message){.type = RAFT_MSG_APPEND,
					  .from = SELF,
					  .to = 2,
					  .term = 1,
					  .index = (uint64_t)i,
					  .log_term = i ? 1 : 0,
					  .commit = (uint64_t)i,
					  .entries = &e[i],
					  .n_entries = 1};
		assert_int_equal(peers_send(ps, &m, 1), 1);
		m = hb(2, (uint64_t)i + 2);
		assert_int_equal(peers_send(ps, &m, 1), 1);
	}
	for (int i = 0; i < N; i++)
		free(data[i]); /* the caller's to free once sent */
	wait_sent(ps, 2, 1 + 2 * N);
	got = fakepeer_wait_msgs(s, CLUSTER, 2, 1 + 2 * N, &n);
	assert_int_equal(n, 1 + 2 * N);
	assert_int_equal(got[0].type, RAFT_MSG_HEARTBEAT);
	/* the appends in their order, each whole; the heartbeats in theirs
	 * (they may overtake an append still queued: queue_small_first) */
	int apps = 0, hbs = 0;
	for (size_t j = 1; j < n; j++) {
		struct raft_message *a = &got[j];
		if (a->type == RAFT_MSG_HEARTBEAT) {
			assert_int_equal(a->commit, (uint64_t)hbs + 2);
			hbs++;
			continue;
		}
		assert_int_equal(a->type, RAFT_MSG_APPEND);
		assert_int_equal(a->index, (uint64_t)apps);
		assert_int_equal(a->n_entries, 1);
		assert_int_equal(a->entries[0].len, BIG);
		for (size_t k = 0; k < BIG; k += 4099)
			assert_int_equal(((char *)a->entries[0].data)[k],
					 'a' + apps);
		apps++;
	}
	assert_int_equal(apps, N);
	assert_int_equal(hbs, N);
	peer_msgs_free(got, n);
	assert_int_equal(info(ps, 2).failures, 0);
	assert_int_equal(info(ps, 2).dropped, 0);
	peers_free(ps);
	fakepeer_stop(s);
}

/* ---- Writing on the caller's thread, and falling back to the queue ---- */

enum { STALL_LEN = 16 * 1024 };

/* An append of one entry of STALL_LEN bytes, all (i % 251), copied by
 * peers_send; buf is the caller's. */
static struct raft_message stall_append(uint64_t i, char *buf,
					struct raft_entry *e)
{
	memset(buf, (int)(i % 251), STALL_LEN);
	*e = (struct raft_entry){.term = 1,
				 .index = i + 1,
				 .type = RAFT_ENTRY_NORMAL,
				 .data = buf,
				 .len = STALL_LEN};
	return (struct raft_message){.type = RAFT_MSG_APPEND,
				     .from = SELF,
				     .to = 2,
				     .term = 1,
				     .index = i,
				     .commit = i,
				     .entries = e,
				     .n_entries = 1};
}

/* Appends first..first+count, one peers_send each, on a thread. */
struct stall_sender {
	struct peer_set *ps;
	uint64_t first, count;
	atomic_bool done;
};

static void *stall_sender_main(void *arg)
{
	struct stall_sender *st = arg;
	char *buf = malloc(STALL_LEN);
	struct raft_entry e;

	for (uint64_t i = st->first; buf && i < st->first + st->count; i++) {
		struct raft_message m = stall_append(i, buf, &e);
		if (peers_send(st->ps, &m, 1) != 1)
			break; /* seen as messages missing */
	}
	free(buf);
	atomic_store(&st->done, true);
	return NULL;
}

/* peers_send writes a frame into an idle open stream itself (peer_set.c);
 * here the peer stops reading, so the socket fills up in the middle of a
 * frame. The callers never block on it: what the socket did not take
 * waits whole in the stream's out, later messages go to the queue behind
 * it, and once the peer reads again (while more are sent, some written
 * by the caller, some by the sender thread) every append arrives once,
 * whole, in the order it was sent, on the one stream. */
static void test_a_stalled_peer_neither_blocks_nor_reorders(void **state)
{
	enum { STALLED = 500, AFTER = 300 };
	struct peer_options o = {.timeout_ms = 60000};
	struct fakepeer *s = fakepeer_start();
	struct peer_set *ps = new_set(&o);
	struct stall_sender st = {.ps = ps, .first = 0, .count = STALLED};
	struct raft_message m = hb(2, 1), *got;
	uint64_t end = kv_mono_ms() + DEADLINE_MS;
	pthread_t t;
	size_t n;

	(void)state;
	add(ps, 2, s->port);
	assert_int_equal(peers_send(ps, &m, 1), 1);
	wait_sent(ps, 2, 1); /* the stream is open and idle */
	atomic_store(&s->paused, true);
	atomic_init(&st.done, false);
	assert_int_equal(pthread_create(&t, NULL, stall_sender_main, &st), 0);
	while (!atomic_load(&st.done) && kv_mono_ms() < end)
		fakepeer_nap();
	/* 8 MB the peer did not read: sent all the same, none blocked */
	assert_true(atomic_load(&st.done));
	pthread_join(t, NULL);
	struct peer_info pi = info(ps, 2);
	assert_true(pi.queued > 0); /* the fallback was taken */
	assert_true(pi.sent < 1 + STALLED);
	assert_int_equal(pi.dropped, 0);

	atomic_store(&s->paused, false);
	st = (struct stall_sender){.ps = ps, .first = STALLED, .count = AFTER};
	atomic_init(&st.done, false);
	stall_sender_main(&st); /* on this thread, as the sender drains */
	wait_sent(ps, 2, 1 + STALLED + AFTER);

	got = fakepeer_wait_msgs(s, CLUSTER, 2, 1 + STALLED + AFTER, &n);
	assert_int_equal(n, 1 + STALLED + AFTER);
	assert_int_equal(got[0].type, RAFT_MSG_HEARTBEAT);
	for (size_t j = 1; j < n; j++) {
		const struct raft_message *a = &got[j];
		assert_int_equal(a->type, RAFT_MSG_APPEND);
		assert_int_equal(a->index, j - 1);
		assert_int_equal(a->n_entries, 1);
		assert_int_equal(a->entries[0].len, STALL_LEN);
		const unsigned char *d = a->entries[0].data;
		for (size_t k = 0; k < STALL_LEN; k += 509)
			assert_int_equal(d[k], (j - 1) % 251);
	}
	peer_msgs_free(got, n);
	pi = info(ps, 2);
	assert_int_equal(pi.failures, 0);
	assert_int_equal(pi.dropped, 0);
	assert_int_equal(pi.queued, 0);
	assert_int_equal(s->streams, 1);
	peers_free(ps);
	fakepeer_stop(s);
}

/* An append of one entry of len bytes, all (i % 251), to be taken by
 * peers_send_take (the entries are the message's). */
static struct raft_message taken_append(uint64_t i, size_t len)
{
	struct raft_entry *e = calloc(1, sizeof(*e));
	assert_non_null(e);
	*e = (struct raft_entry){.term = 1,
				 .index = i + 1,
				 .type = RAFT_ENTRY_NORMAL,
				 .data = malloc(len),
				 .len = len};
	assert_non_null(e->data);
	memset(e->data, (int)(i % 251), len);
	return (struct raft_message){.type = RAFT_MSG_APPEND,
				     .from = SELF,
				     .to = 2,
				     .term = 1,
				     .index = i,
				     .commit = i,
				     .entries = e,
				     .n_entries = 1};
}

/* An append too big for the caller's thread (past PEER_DIRECT_BYTES) is
 * queued for the sender to encode; the small appends sent right after it
 * on the same stream, which the caller could write itself, wait behind it
 * in the queue and never overtake it. */
static void test_a_small_append_never_overtakes_a_queued_one(void **state)
{
	enum { ROUNDS = 20, SMALL = 5 };
	struct fakepeer *s = fakepeer_start();
	struct peer_set *ps = new_set(NULL);
	struct raft_message m = hb(2, 1), *got;
	uint64_t i = 0;
	size_t n;

	(void)state;
	add(ps, 2, s->port);
	assert_int_equal(peers_send(ps, &m, 1), 1);
	wait_sent(ps, 2, 1); /* the stream is open and idle */
	for (int r = 0; r < ROUNDS; r++) {
		m = taken_append(i, PEER_DIRECT_BYTES + 1);
		assert_int_equal(peers_send_take(ps, &m, 1), 1);
		raft_message_clear(
		    &m); /* queued: nothing left; written: ours */
		i++;
		for (int k = 0; k < SMALL; k++, i++) {
			m = taken_append(i, 100);
			assert_int_equal(peers_send_take(ps, &m, 1), 1);
			raft_message_clear(&m);
		}
	}
	wait_sent(ps, 2, 1 + i);
	got = fakepeer_wait_msgs(s, CLUSTER, 2, 1 + i, &n);
	assert_int_equal(n, 1 + i);
	for (size_t j = 1; j < n; j++) {
		const struct raft_message *a = &got[j];
		assert_int_equal(a->type, RAFT_MSG_APPEND);
		if (a->index != j - 1)
			fail_msg("append %zu arrived as the %zu-th",
				 (size_t)a->index, j - 1);
		size_t len =
		    (j - 1) % (SMALL + 1) ? 100 : PEER_DIRECT_BYTES + 1;
		assert_int_equal(a->entries[0].len, len);
		assert_int_equal(((unsigned char *)a->entries[0].data)[len - 1],
				 (j - 1) % 251);
	}
	peer_msgs_free(got, n);
	assert_int_equal(info(ps, 2).dropped, 0);
	peers_free(ps);
	fakepeer_stop(s);
}

/* A peer that closed the stream (a killed process) never gets a propose
 * written into the dead connection, where it would be lost with its
 * outcome unknown: the propose waits for the next stream and arrives on
 * it, and is not reported as unsent. */
static void
test_a_propose_after_the_peer_closed_goes_on_the_next_stream(void **state)
{
	struct peer_options o = {.unsent = on_unsent, .unsent_arg = &unsent};
	struct peer_set *ps = new_set(&o);
	unsigned port;
	int l = fakepeer_hung_listener(&port), c;
	struct raft_message m = hb(2, 1);
	char buf[4096];
	size_t have = 0;
	uint64_t end = kv_mono_ms() + DEADLINE_MS;

	(void)state;
	unsent.n = 0;
	add(ps, 2, port);
	assert_int_equal(peers_send(ps, &m, 1), 1);
	c = fakepeer_accept_stream(l);
	wait_sent(ps, 2, 1);
	close(c); /* the peer goes away; its listener stays */
	m = propose(2, 77);
	assert_int_equal(peers_send(ps, &m, 1), 1);
	c = fakepeer_accept_stream(l); /* a new stream */
	while (kv_mono_ms() < end && have < sizeof(buf) - 1) {
		struct pollfd pfd = {.fd = c, .events = POLLIN};
		if (poll(&pfd, 1, 100) != 1)
			continue;
		ssize_t r = read(c, buf + have, sizeof(buf) - 1 - have);
		assert_true(r > 0);
		have += (size_t)r;
		buf[have] = '\0';
		if (strstr(buf, "\"ctx\":77") != NULL)
			break;
	}
	assert_non_null(strstr(buf, "\"type\":\"propose\""));
	assert_non_null(strstr(buf, "\"ctx\":77"));
	assert_int_equal(unsent_count(), 0);
	wait_sent(ps, 2, 2);
	stop_within(ps, 0, 3000);
	close(c);
	close(l);
}

static void test_stop_is_quick_while_a_stream_hangs(void **state)
{
	struct peer_options o = {.timeout_ms = 60000,
				 .connect_timeout_ms = 60000};
	struct peer_set *ps = new_set(&o);
	unsigned port2, port3;
	int l2 = fakepeer_hung_listener(&port2),
	    l3 = fakepeer_hung_listener(&port3);
	int c2, c3;
	struct raft_message m[2] = {hb(2, 1), hb(3, 1)};

	(void)state;
	add(ps, 2, port2);
	add(ps, 3, port3);
	assert_int_equal(peers_send(ps, m, 2), 2);
	c2 = fakepeer_accept_request(l2);
	c3 = fakepeer_accept_request(l3);
	/* Both streams hang; removing one and freeing the rest is quick. */
	stop_within(ps, 2, 3000);
	assert_int_equal(peers_info(ps, 2, &(struct peer_info){0}), -ENOENT);
	assert_int_equal(peers_info(ps, 3, &(struct peer_info){0}), 0);
	stop_within(ps, 0, 3000);
	close(c2);
	close(c3);
	close(l2);
	close(l3);
}

/* A peer that takes a stream's frames but never answers its end fails
 * the stream in timeout_ms; the sender does not wait for it forever. */
static void test_an_unanswered_end_of_stream_fails_in_time(void **state)
{
	struct peer_options o = {.timeout_ms = 300, .idle_ms = 100};
	struct peer_set *ps = new_set(&o);
	unsigned port;
	int l = fakepeer_hung_listener(&port), c;
	struct raft_message m = hb(2, 1);
	struct peer_info pi;

	(void)state;
	add(ps, 2, port);
	assert_int_equal(peers_send(ps, &m, 1), 1);
	c = fakepeer_accept_stream(l);
	wait_sent(ps, 2, 1); /* the frame went; then nothing answers */
	wait_failures(ps, 2, 1);
	pi = info(ps, 2);
	assert_int_equal(pi.failures, 1);
	assert_false(pi.reachable);
	assert_non_null(strstr(pi.last_err, "did not answer the end"));
	stop_within(ps, 0, 3000);
	close(c);
	close(l);
}

/* A peer that starts an answer mid-stream and never finishes it fails
 * the stream in timeout_ms. */
static void test_a_half_answer_fails_in_time(void **state)
{
	struct peer_options o = {.timeout_ms = 300};
	struct peer_set *ps = new_set(&o);
	unsigned port;
	int l = fakepeer_hung_listener(&port), c;
	struct raft_message m = hb(2, 1);
	static const char half[] = "HTTP/1.1 500 Internal";

	(void)state;
	add(ps, 2, port);
	assert_int_equal(peers_send(ps, &m, 1), 1);
	c = fakepeer_accept_stream(l);
	wait_sent(ps, 2, 1);
	assert_int_equal(write(c, half, sizeof(half) - 1),
			 (ssize_t)(sizeof(half) - 1));
	wait_failures(ps, 2, 1);
	assert_non_null(strstr(info(ps, 2).last_err, "did not come whole"));
	stop_within(ps, 0, 3000);
	close(c);
	close(l);
}

static void test_refusal_is_reported_with_the_peers_reason(void **state)
{
	struct fakepeer *s = fakepeer_start();
	struct peer_set *ps = new_set(NULL);
	struct raft_message m = hb(2, 1);
	struct peer_info pi;

	(void)state;
	s->status = 409;
	s->text = "peer protocol version 2, this node speaks 1\n";
	add(ps, 2, s->port);
	peers_send(ps, &m, 1);
	wait_failures(ps, 2, 1);
	pi = info(ps, 2);
	assert_int_equal(pi.failures, 1);
	assert_false(pi.reachable);
	assert_int_equal(pi.sent, 0);
	assert_int_equal(pi.dropped, 1);
	assert_string_equal(pi.last_err,
			    "HTTP 409: peer protocol version 2, this node "
			    "speaks 1");
	peers_free(ps);
	fakepeer_stop(s);
}

static void test_bad_arguments_are_refused(void **state)
{
	struct peer_set *ps = NULL;
	struct raft_message m = hb(9, 1);

	(void)state;
	assert_int_equal(peers_new("", TOKEN, SELF, NULL, &ps), -EINVAL);
	assert_int_equal(peers_new(CLUSTER, "a b", SELF, NULL, &ps), -EINVAL);
	assert_int_equal(peers_new(CLUSTER, "x\r\nEvil: 1", SELF, NULL, &ps),
			 -EINVAL);
	assert_int_equal(peers_new(CLUSTER, TOKEN, 0, NULL, &ps), -EINVAL);
	ps = new_set(NULL);
	assert_int_equal(peers_add(ps, SELF, "127.0.0.1:1"), -EINVAL);
	assert_int_equal(peers_add(ps, 0, "127.0.0.1:1"), -EINVAL);
	assert_int_equal(peers_add(ps, 2, "127.0.0.1:1/x?y"), -EINVAL);
	assert_int_equal(peers_add(ps, 2, ""), -EINVAL);
	/* The port is 1..65535, as everywhere (kv_addr_parse). */
	assert_int_equal(peers_add(ps, 2, "127.0.0.1:99999"), -EINVAL);
	assert_int_equal(peers_add(ps, 2, "127.0.0.1:0"), -EINVAL);
	assert_int_equal(peers_add(ps, 2, "::1:7001"), -EINVAL);
	assert_int_equal(peers_add(ps, 2, "127.0.0.1:1"), 0);
	assert_int_equal(peers_add(ps, 2, "127.0.0.1:2"), -EEXIST);
	assert_int_equal(peers_remove(ps, 5), -ENOENT);
	/* Unknown destination, wrong sender, NONE: nothing queued. */
	assert_int_equal(peers_send(ps, &m, 1), 0);
	m = hb(2, 1);
	m.from = 4;
	assert_int_equal(peers_send(ps, &m, 1), 0);
	m = hb(2, 1);
	m.type = RAFT_MSG_NONE;
	assert_int_equal(peers_send(ps, &m, 1), 0);
	peers_free(ps);
	peers_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
		test_messages_arrive_batched_in_order_on_one_stream),
	    cmocka_unit_test(test_entries_reach_the_peer_intact),
	    cmocka_unit_test(
		test_taken_big_entries_go_through_the_sender_intact),
	    cmocka_unit_test(test_small_messages_overtake_a_queued_big_append),
	    cmocka_unit_test(test_down_peer_backs_off_without_blocking_others),
	    cmocka_unit_test(test_a_propose_that_never_went_is_reported),
	    cmocka_unit_test(test_full_queue_drops_oldest_heartbeats_first),
	    cmocka_unit_test(
		test_a_frame_the_socket_cannot_take_at_once_is_finished),
	    cmocka_unit_test(test_a_stalled_peer_neither_blocks_nor_reorders),
	    cmocka_unit_test(test_a_small_append_never_overtakes_a_queued_one),
	    cmocka_unit_test(
		test_a_propose_after_the_peer_closed_goes_on_the_next_stream),
	    cmocka_unit_test(test_stop_is_quick_while_a_stream_hangs),
	    cmocka_unit_test(test_an_unanswered_end_of_stream_fails_in_time),
	    cmocka_unit_test(test_a_half_answer_fails_in_time),
	    cmocka_unit_test(test_refusal_is_reported_with_the_peers_reason),
	    cmocka_unit_test(test_bad_arguments_are_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
