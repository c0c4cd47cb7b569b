/* test_gate.c - the listener's gate: deadlines that fire, the per-address
 * limit, room made for newcomers, the reserve, peers exempt.
 *
 * A node that can never lead (two of its three members do not exist), so
 * that a write stays suspended until the write timeout, serves a second
 * listener per test started with short limits (http_start_with); raw
 * sockets from distinct loopback addresses (127.0.0.N) play the slow,
 * idle and many clients, and the listener's counters (http_stats, also
 * GET /status/http) say which limit closed what. The gate is
 * raft/http/http_gate.c; the attack at full scale is
 * tests/e2e/test_slow_clients.py. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "http_gate.h"
#include "http_int.h"
#include "peer.h"
#include "tnode.h"

#define WRITE_TIMEOUT_MS 2000

static char datadir[] = "/tmp/kvfs-test-gate-XXXXXX";
static struct tnode node;

/* Short limits, so that every deadline fires within a test. */
static const struct http_limits short_limits = {
    .max_connections = 16,
    .reserve = 4,
    .per_address = 4,
    .header_ms = 400,
    .idle_ms = 600,
    .body_grace_ms = 300,
    .body_rate = 4096,
    .stall_ms = 30000,
};

static struct http_server *listener(const struct http_limits *lim)
{
	struct http_server *h = NULL;
	char *err = NULL;
	struct http_options o = {.listen = "127.0.0.1:0", .limits = lim};
	if (http_start_with(node.node, &o, &h, &err) != 0)
		fail_msg("http_start_with: %s", err ? err : "?");
	return h;
}

static struct http_stats stats(struct http_server *h)
{
	struct http_stats s;
	http_stats(h, &s);
	return s;
}

/* A connection from src (a loopback address) to the listener. */
static int dial(struct http_server *h, const char *src)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(inet_pton(AF_INET, src, &a.sin_addr), 1);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	a.sin_port = htons((uint16_t)http_port(h));
	assert_int_equal(inet_pton(AF_INET, "127.0.0.1", &a.sin_addr), 1);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	return fd;
}

static void say(int fd, const char *s)
{
	size_t n = strlen(s);
	assert_int_equal(send(fd, s, n, MSG_NOSIGNAL), (ssize_t)n);
}

static uint64_t now_ms(void)
{
	return kv_mono_ms();
}

/* Read what fd receives (kept in buf, if not NULL) until the other side
 * closes it: the milliseconds that took, or -1 if it is still open after
 * max_ms. */
static long wait_closed(int fd, int max_ms, char *buf, size_t cap)
{
	uint64_t start = now_ms(), end = start + (uint64_t)max_ms;
	size_t len = 0;
	for (;;) {
		uint64_t t = now_ms();
		if (t >= end)
			return -1;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, (int)(end - t)) <= 0)
			continue;
		char tmp[4096];
		ssize_t n = recv(fd, tmp, sizeof(tmp), 0);
		if (n <= 0)
			return (long)(now_ms() - start);
		if (buf && len + 1 < cap) {
			size_t k = (size_t)n < cap - 1 - len ? (size_t)n
							     : cap - 1 - len;
			memcpy(buf + len, tmp, k);
			len += k;
			buf[len] = '\0';
		}
	}
}

/* One answer's status line and body on a kept-alive connection (the
 * answer carries Content-Length). Its status, 0 if the connection closed
 * first. */
static int answer(int fd, char *body, size_t cap)
{
	char buf[8192];
	size_t len = 0;
	while (len < sizeof(buf) - 1) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, 10000) <= 0)
			return 0;
		ssize_t n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
		if (n <= 0)
			return 0;
		len += (size_t)n;
		buf[len] = '\0';
		char *end = strstr(buf, "\r\n\r\n");
		const char *cl = strcasestr(buf, "\r\nContent-Length:");
		if (!end || !cl)
			continue;
		size_t want = strtoul(cl + 17, NULL, 10);
		if (len - (size_t)(end + 4 - buf) < want)
			continue;
		if (body)
			snprintf(body, cap, "%.*s", (int)want, end + 4);
		return atoi(buf + 9);
	}
	return 0;
}

static int get(int fd, const char *path, char *body, size_t cap)
{
	char req[256];
	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path);
	say(fd, req);
	return answer(fd, body, cap);
}

/* Wait until the listener has taken or refused count connections. */
static void wait_seen(struct http_server *h, uint64_t count)
{
	for (int i = 0; i < 2000; i++) {
		struct http_stats s = stats(h);
		if (s.accepted + s.refused_address + s.refused_full >= count)
			return;
		nanosleep(&(struct timespec){0, 1000000}, NULL);
	}
	fail_msg("the listener did not see %llu connections",
		 (unsigned long long)count);
}

/* Wait until count requests are suspended on h. */
static void wait_held(struct http_server *h, unsigned count)
{
	for (int i = 0; i < 5000; i++) {
		pthread_mutex_lock(&h->mu);
		unsigned held = h->held;
		pthread_mutex_unlock(&h->mu);
		if (held >= count)
			return;
		nanosleep(&(struct timespec){0, 1000000}, NULL);
	}
	fail_msg("the requests were not suspended");
}

static void
test_headers_that_trickle_are_cut_off_at_the_header_deadline(void **state)
{
	(void)state;
	struct http_server *h = listener(&short_limits);
	int fd = dial(h, "127.0.0.2");
	const char *req = "GET /status HTTP/1.1\r\nHost: t\r\nX-Slow: yes\r\n";
	uint64_t start = now_ms();
	bool cut = false;
	/* a byte every 50 ms: libmicrohttpd's own timeout never fires for
	 * it, the gate's deadline counts from the connection */
	for (size_t i = 0; req[i] && !cut; i++) {
		cut = send(fd, &req[i], 1, MSG_NOSIGNAL) != 1 ||
		      wait_closed(fd, 50, NULL, 0) >= 0;
	}
	if (!cut)
		assert_true(wait_closed(fd, 2000, NULL, 0) >= 0);
	uint64_t took = now_ms() - start;
	assert_true(took >= 390);
	assert_true(took < 2500);
	assert_int_equal(stats(h).closed_header, 1);
	close(fd);

	/* a connection that sends nothing at all: the same deadline */
	fd = dial(h, "127.0.0.2");
	long ms = wait_closed(fd, 3000, NULL, 0);
	assert_true(ms >= 390 && ms < 2500);
	assert_int_equal(stats(h).closed_header, 2);
	close(fd);
	http_stop(h);
}

static void
test_an_idle_kept_alive_connection_is_closed_after_idle_ms(void **state)
{
	(void)state;
	struct http_server *h = listener(&short_limits);
	int fd = dial(h, "127.0.0.3");
	/* requests that follow each other closer than idle_ms are served,
	 * for longer than idle_ms and header_ms together */
	for (int i = 0; i < 6; i++) {
		assert_int_equal(get(fd, "/status/http", NULL, 0), 200);
		assert_int_equal(wait_closed(fd, 300, NULL, 0), -1);
	}
	assert_int_equal(get(fd, "/status/http", NULL, 0), 200);
	long ms = wait_closed(fd, 3000, NULL, 0);
	assert_true(ms >= 550 && ms < 2500);
	struct http_stats s = stats(h);
	assert_int_equal(s.closed_idle, 1);
	assert_int_equal(s.closed_header, 0);
	close(fd);
	http_stop(h);
}

/* Send a PUT of total bytes in pieces of piece bytes every gap_ms. The
 * bytes sent before the connection closed. */
static size_t put_slowly(int fd, size_t total, size_t piece, int gap_ms)
{
	char head[128], data[65536];
	size_t sent = 0;
	snprintf(head, sizeof(head),
		 "PUT /kv/slow HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n"
		 "\r\n",
		 total);
	say(fd, head);
	memset(data, 'v', sizeof(data));
	while (sent < total) {
		size_t n = total - sent < piece ? total - sent : piece;
		if (send(fd, data, n, MSG_NOSIGNAL) != (ssize_t)n)
			break;
		sent += n;
		if (sent < total && wait_closed(fd, gap_ms, NULL, 0) >= 0)
			break;
	}
	return sent;
}

static void
test_a_body_slower_than_the_rate_is_cut_off_after_its_grace(void **state)
{
	(void)state;
	struct http_server *h = listener(&short_limits);
	int fd = dial(h, "127.0.0.4");
	/* 100 bytes every 100 ms = 1000 B/s, the rate is 4096 B/s */
	uint64_t start = now_ms();
	size_t sent = put_slowly(fd, 100000, 100, 100);
	assert_true(sent < 100000);
	assert_true(wait_closed(fd, 2000, NULL, 0) >= 0);
	uint64_t took = now_ms() - start;
	assert_true(took >= 290);
	assert_true(took < 3000);
	assert_int_equal(stats(h).closed_body, 1);
	close(fd);
	http_stop(h);
}

static void
test_a_large_body_at_the_rate_gets_all_the_time_it_needs(void **state)
{
	(void)state;
	struct http_server *h = listener(&short_limits);
	int fd = dial(h, "127.0.0.5");
	char body[512];
	/* 64 KiB at about 16 KiB/s: four times the grace, above the rate */
	assert_int_equal(put_slowly(fd, 65536, 4096, 250), 65536);
	/* in whole: suspended until the write timeout, then answered */
	assert_int_equal(answer(fd, body, sizeof(body)), 503);
	assert_non_null(strstr(body, "no_quorum"));
	struct http_stats s = stats(h);
	assert_int_equal(s.closed_body, 0);
	assert_int_equal(s.closed_header, 0);
	close(fd);
	http_stop(h);
}

static void
test_one_address_gets_per_address_connections_and_no_more(void **state)
{
	(void)state;
	struct http_server *h = listener(&short_limits);
	int fds[6];
	for (int i = 0; i < 6; i++)
		fds[i] = dial(h, "127.0.0.6");
	wait_seen(h, 6);
	struct http_stats s = stats(h);
	/* four are kept, the rest closed at once */
	assert_int_equal(s.accepted, 4);
	assert_int_equal(s.refused_address, 2);
	assert_int_equal(s.clients, 4);
	assert_true(wait_closed(fds[4], 2000, NULL, 0) >= 0);
	assert_true(wait_closed(fds[5], 2000, NULL, 0) >= 0);
	/* another address is not held to that one's count */
	int other = dial(h, "127.0.0.7");
	assert_int_equal(get(other, "/status/http", NULL, 0), 200);
	assert_int_equal(stats(h).refused_address, 2);
	assert_int_equal(stats(h).accepted, 5);
	for (int i = 0; i < 6; i++)
		close(fds[i]);
	close(other);
	http_stop(h);
}

static void
test_a_newcomer_closes_the_oldest_waiting_connection_when_full(void **state)
{
	(void)state;
	/* long deadlines: what closes the oldest here is the newcomer */
	struct http_limits lim = short_limits;
	lim.header_ms = 20000;
	lim.idle_ms = 20000;
	struct http_server *h = listener(&lim);
	int fds[16];
	char src[32];
	for (int i = 0; i < 16; i++) {
		snprintf(src, sizeof(src), "127.0.1.%d", 1 + i / 4);
		fds[i] = dial(h, src);
	}
	wait_seen(h, 16);
	assert_int_equal(stats(h).clients, 16);
	/* every slot holds a connection that only waits: a newcomer is
	 * served at once, and the oldest waiter pays */
	int fd = dial(h, "127.0.0.8");
	char body[2048];
	assert_int_equal(get(fd, "/status/http", body, sizeof(body)), 200);
	assert_non_null(strstr(body, "\"evicted\":1"));
	assert_true(wait_closed(fds[0], 2000, NULL, 0) >= 0);
	for (int i = 1; i < 16; i++)
		assert_int_equal(wait_closed(fds[i], 10, NULL, 0), -1);
	struct http_stats s = stats(h);
	assert_int_equal(s.evicted, 1);
	assert_int_equal(s.closed_header, 0);
	assert_int_equal(s.refused_full, 0);
	for (int i = 0; i < 16; i++)
		close(fds[i]);
	close(fd);
	http_stop(h);
}

static void
test_with_every_slot_busy_the_reserve_serves_status_only(void **state)
{
	(void)state;
	struct http_limits lim = short_limits;
	lim.max_connections = 4;
	lim.reserve = 2;
	lim.header_ms = 20000;
	struct http_server *h = listener(&lim);
	int busy[4];
	char src[32];
	/* four writes held by a node that cannot commit: none waits, none
	 * can be closed to make room */
	for (int i = 0; i < 4; i++) {
		snprintf(src, sizeof(src), "127.0.2.%d", 1 + i);
		busy[i] = dial(h, src);
		say(busy[i], "PUT /kv/held HTTP/1.1\r\nHost: t\r\n"
			     "Content-Length: 1\r\n\r\nv");
	}
	wait_held(h, 4);
	/* /status gets a reserved slot ... */
	int st = dial(h, "127.0.0.9");
	assert_int_equal(get(st, "/status", NULL, 0), 200);
	assert_true(wait_closed(st, 2000, NULL, 0) >= 0); /* one request */
	/* ... a client's write does not: 503 busy, and closed */
	int w = dial(h, "127.0.0.9");
	char body[512];
	say(w, "PUT /kv/more HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\n"
	       "v");
	assert_int_equal(answer(w, body, sizeof(body)), 503);
	assert_non_null(strstr(body, "\"busy\""));
	assert_true(wait_closed(w, 2000, NULL, 0) >= 0);
	struct http_stats s = stats(h);
	assert_int_equal(s.refused_reserve, 1);
	assert_int_equal(s.evicted, 0);
	/* the held writes are answered in their time, nothing cut them */
	for (int i = 0; i < 4; i++) {
		assert_int_equal(answer(busy[i], body, sizeof(body)), 503);
		assert_non_null(strstr(body, "no_quorum"));
		close(busy[i]);
	}
	close(st);
	close(w);
	http_stop(h);
}

static void
test_a_peer_has_no_deadline_and_its_host_no_address_limit(void **state)
{
	(void)state;
	struct http_server *h = listener(&short_limits);
	int fd = dial(h, "127.0.0.10");
	char req[1024];
	snprintf(req, sizeof(req),
		 "POST /raft/stream HTTP/1.1\r\nHost: t\r\n%s: %s\r\n"
		 "%s: %s\r\n%s: %d\r\nTransfer-Encoding: chunked\r\n\r\n",
		 PEER_HDR_CLUSTER, node_cluster_id(node.node), PEER_HDR_TOKEN,
		 node_token(node.node), PEER_HDR_PROTOCOL,
		 PEER_PROTOCOL_VERSION);
	say(fd, req);
	/* a stream that says nothing for longer than every client deadline
	 * together stays open */
	assert_int_equal(wait_closed(fd, 1500, NULL, 0), -1);
	struct http_stats s = stats(h);
	assert_int_equal(s.peers, 1);
	assert_int_equal(s.clients, 0);
	/* its host is a member's: more than per_address from it are let in */
	int more[6];
	for (int i = 0; i < 6; i++)
		more[i] = dial(h, "127.0.0.10");
	wait_seen(h, 7);
	s = stats(h);
	assert_int_equal(s.accepted, 7);
	assert_int_equal(s.refused_address, 0);
	/* a wrong token is no peer's */
	int bad = dial(h, "127.0.0.11");
	say(bad, "POST /raft/stream HTTP/1.1\r\nHost: t\r\nX-Kvfs-Token: no\r\n"
		 "Transfer-Encoding: chunked\r\n\r\n");
	assert_int_equal(answer(bad, NULL, 0), 401);
	assert_int_equal(stats(h).peers, 1);
	for (int i = 0; i < 6; i++)
		close(more[i]);
	close(bad);
	close(fd);
	http_stop(h);
}

/* The gate's peer test for these tests: the token "token". */
static bool token_is(void *ctx, const char *tok)
{
	(void)ctx;
	return strcmp(tok, "token") == 0;
}

static void test_the_listener_log_is_rate_limited(void **state)
{
	(void)state;
	struct http_limits lim;
	struct http_gate *g;
	http_gate_limits(&short_limits, &lim);
	assert_int_equal(http_gate_new(&lim, token_is, NULL, &g), 0);
	int ok = 0;
	for (int i = 0; i < 100; i++)
		ok += http_gate_log_ok(g);
	struct http_stats s;
	http_gate_stats(g, &s);
	assert_int_equal(ok, 20);
	assert_int_equal(s.log_dropped, 80);
	http_gate_stop(g);
	http_gate_free(g);
}

static void test_limits_left_zero_take_their_defaults(void **state)
{
	(void)state;
	struct http_limits l, zero = {0};
	const struct http_limits def = HTTP_LIMITS_DEFAULT;
	http_gate_limits(&zero, &l);
	assert_int_equal(l.per_address, def.per_address);
	assert_int_equal(l.header_ms, def.header_ms);
	assert_int_equal(l.body_rate, def.body_rate);
	/* the fd limit was raised for them, or they were fitted to it */
	assert_true(l.max_connections <= def.max_connections);
	assert_true(l.max_connections >= 16);
}

static int setup(void **state)
{
	(void)state;
	if (!mkdtemp(datadir))
		return -1;
	return tnode_start_leaderless(datadir, WRITE_TIMEOUT_MS, &node);
}

static int teardown(void **state)
{
	(void)state;
	tnode_close(&node);
	rmtree(datadir);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
		test_headers_that_trickle_are_cut_off_at_the_header_deadline),
	    cmocka_unit_test(
		test_an_idle_kept_alive_connection_is_closed_after_idle_ms),
	    cmocka_unit_test(
		test_a_body_slower_than_the_rate_is_cut_off_after_its_grace),
	    cmocka_unit_test(
		test_a_large_body_at_the_rate_gets_all_the_time_it_needs),
	    cmocka_unit_test(
		test_one_address_gets_per_address_connections_and_no_more),
	    cmocka_unit_test(
		test_a_newcomer_closes_the_oldest_waiting_connection_when_full),
	    cmocka_unit_test(
		test_with_every_slot_busy_the_reserve_serves_status_only),
	    cmocka_unit_test(
		test_a_peer_has_no_deadline_and_its_host_no_address_limit),
	    cmocka_unit_test(test_the_listener_log_is_rate_limited),
	    cmocka_unit_test(test_limits_left_zero_take_their_defaults),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
