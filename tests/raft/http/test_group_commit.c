/* test_group_commit.c - many writes parked at once on a one-member node.
 *
 * The node is the only voter, so a write queued while its log's sync runs
 * does not wake the node thread: the sync's report does, and every write
 * queued meanwhile goes into the next sync (raft/node/update.c,
 * calls_lazy_update). These tests drive that path from many connections
 * at once over raw sockets (HTTP/1.1 keep-alive): every answer comes,
 * once, to its own request, a connection's revisions rise in the order it
 * sent its writes and no two writes share one; a client that closes while
 * its write is parked neither loses the write nor holds the listener; a
 * refused write (If-Match that does not hold, a bad key) parked among the
 * others gets its own error. */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "http_int.h"
#include "tcurl.h"

#define CONNS  24
#define ROUNDS 40

static char datadir[] = "/tmp/kvfs-test-group-XXXXXX";
static struct tnode node;

static int dial(unsigned port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
		return -1;
	return fd;
}

static bool send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w <= 0)
			return false;
		p += w;
		n -= (size_t)w;
	}
	return true;
}

static bool send_put(int fd, const char *key, const char *val,
		     const char *extra)
{
	char req[512];
	int n = snprintf(req, sizeof(req),
			 "PUT /kv/%s HTTP/1.1\r\nHost: t\r\n%s"
			 "Content-Length: %zu\r\n\r\n%s",
			 key, extra ? extra : "", strlen(val), val);
	return n > 0 && send_all(fd, req, (size_t)n);
}

/* One answer off fd: its status and body (NUL-terminated, in body of
 * cap bytes). Bytes of the next answer read with it stay in *buf. */
struct rd {
	char buf[8192];
	size_t len;
};

static int read_answer(int fd, struct rd *rd, char *body, size_t cap)
{
	for (;;) {
		rd->buf[rd->len] = '\0';
		char *end = strstr(rd->buf, "\r\n\r\n");
		if (end) {
			char *cl = strcasestr(rd->buf, "\r\nContent-Length:");
			size_t blen =
			    cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0;
			size_t hl = (size_t)(end + 4 - rd->buf);
			if (rd->len >= hl + blen) {
				int status = atoi(rd->buf + 9);
				size_t k = blen < cap - 1 ? blen : cap - 1;
				memcpy(body, rd->buf + hl, k);
				body[k] = '\0';
				memmove(rd->buf, rd->buf + hl + blen,
					rd->len - hl - blen);
				rd->len -= hl + blen;
				return status;
			}
		}
		if (rd->len + 1 >= sizeof(rd->buf))
			return -1;
		ssize_t r = recv(fd, rd->buf + rd->len,
				 sizeof(rd->buf) - 1 - rd->len, 0);
		if (r <= 0)
			return -1;
		rd->len += (size_t)r;
	}
}

static uint64_t body_rev(const char *body)
{
	const char *p = strstr(body, "\"rev\":");
	return p ? strtoull(p + 6, NULL, 10) : 0;
}

struct writer {
	unsigned id;
	uint64_t revs[ROUNDS];
	int status[ROUNDS];
	bool ok;
};

/* ROUNDS writes on one connection, each sent once the previous one is
 * answered; every third writer's odd rounds carry an If-Match that
 * cannot hold (412), every fifth's round 7 a key the rules refuse (400). */
static void *writer_main(void *arg)
{
	struct writer *w = arg;
	int fd = dial(node.port);
	struct rd rd = {.len = 0};
	char key[64], val[64], body[512];
	w->ok = fd >= 0;
	for (unsigned i = 0; w->ok && i < ROUNDS; i++) {
		bool refused = w->id % 3 == 0 && i % 2 == 1;
		bool bad = w->id % 5 == 0 && i == 7;
		snprintf(key, sizeof(key), bad ? "w%u/../x" : "w%u", w->id);
		snprintf(val, sizeof(val), "v%u-%u", w->id, i);
		w->ok = send_put(fd, key, val,
				 refused ? "If-Match: \"1\"\r\n" : NULL);
		if (w->ok) {
			w->status[i] = read_answer(fd, &rd, body, sizeof(body));
			w->revs[i] = body_rev(body);
		}
		if (w->ok && w->status[i] == 400) {
			/* a bad request's connection is closed after it */
			close(fd);
			fd = dial(node.port);
			rd.len = 0;
			w->ok = fd >= 0;
		}
	}
	if (fd >= 0)
		close(fd);
	return NULL;
}

static void wait_unheld(void)
{
	struct http_server *h = node.http;
	for (int i = 0; i < 30000; i++) {
		pthread_mutex_lock(&h->mu);
		unsigned held = h->held;
		pthread_mutex_unlock(&h->mu);
		if (held == 0)
			return;
		struct timespec ms = {0, 1000000};
		nanosleep(&ms, NULL);
	}
	fail_msg("requests still held by the listener");
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void test_every_parked_write_gets_its_own_answer_in_order(void **state)
{
	(void)state;
	static struct writer ws[CONNS];
	pthread_t th[CONNS];
	for (unsigned i = 0; i < CONNS; i++) {
		ws[i] = (struct writer){.id = i};
		assert_int_equal(
		    pthread_create(&th[i], NULL, writer_main, &ws[i]), 0);
	}
	static uint64_t all[CONNS * ROUNDS];
	size_t nall = 0;
	for (unsigned i = 0; i < CONNS; i++) {
		pthread_join(th[i], NULL);
		assert_true(ws[i].ok);
		uint64_t last = 0;
		for (unsigned r = 0; r < ROUNDS; r++) {
			bool refused = i % 3 == 0 && r % 2 == 1;
			bool bad = i % 5 == 0 && r == 7;
			int want = bad ? 400 : refused ? 412 : 200;
			int got =
			    ws[i].status[r] == 201 ? 200 : ws[i].status[r];
			if (got != want) /* 201: the key's first write */
				fail_msg("writer %u round %u: %d, not %d", i, r,
					 ws[i].status[r], want);
			if (want != 200)
				continue;
			/* its own answer: later than the one before it */
			assert_true(ws[i].revs[r] > last);
			last = ws[i].revs[r];
			all[nall++] = last;
		}
		/* the last write is what the key holds */
		char path[64], want[64];
		snprintf(path, sizeof(path), "/kv/w%u?consistency=local", i);
		snprintf(want, sizeof(want), "v%u-%u", i,
			 i % 3 == 0 ? ROUNDS - 2 : ROUNDS - 1);
		struct tresp resp;
		tcurl_req(node.port, "GET", path, NULL, 0, NULL, true, &resp);
		assert_int_equal(resp.status, 200);
		assert_string_equal(resp.body, want);
		tresp_clear(&resp);
	}
	/* no two writes answered with one revision */
	qsort(all, nall, sizeof(all[0]), cmp_u64);
	for (size_t i = 1; i < nall; i++)
		assert_true(all[i] > all[i - 1]);
	wait_unheld();
}

/* Clients that send a write and close at once, while others write. */
static void *leaver_main(void *arg)
{
	unsigned id = (unsigned)(uintptr_t)arg;
	for (unsigned i = 0; i < ROUNDS; i++) {
		int fd = dial(node.port);
		if (fd < 0)
			return (void *)1;
		char key[64], val[64];
		snprintf(key, sizeof(key), "gone%u-%u", id, i);
		snprintf(val, sizeof(val), "left-%u", i);
		bool sent = send_put(fd, key, val, NULL);
		close(fd);
		if (!sent)
			return (void *)1;
	}
	return NULL;
}

static void
test_a_client_that_closes_while_parked_loses_nothing_and_holds_nothing(
    void **state)
{
	(void)state;
	pthread_t lv[8], wt[8];
	static struct writer ws[8];
	for (unsigned i = 0; i < 8; i++) {
		ws[i] = (struct writer){.id = 100 + i * 7 + 1};
		assert_int_equal(pthread_create(&lv[i], NULL, leaver_main,
						(void *)(uintptr_t)i),
				 0);
		assert_int_equal(
		    pthread_create(&wt[i], NULL, writer_main, &ws[i]), 0);
	}
	for (unsigned i = 0; i < 8; i++) {
		void *ret;
		pthread_join(lv[i], &ret);
		assert_null(ret);
		pthread_join(wt[i], NULL);
		assert_true(ws[i].ok);
		for (unsigned r = 0; r < ROUNDS; r++)
			if (ws[i].status[r] != 200 && ws[i].status[r] != 201 &&
			    ws[i].status[r] != 412 && ws[i].status[r] != 400)
				fail_msg("writer %u round %u: %d", ws[i].id, r,
					 ws[i].status[r]);
	}
	/* every parked request was taken up again and let go */
	wait_unheld();
	/* a write whose client left was applied or never read: the
	 * listener never dropped one it had proposed. The node still
	 * answers, and what it acknowledged to nobody is readable. */
	struct tresp resp;
	tcurl_req(node.port, "PUT", "/kv/after", "x", 1, NULL, true, &resp);
	assert_int_equal(resp.status, 201);
	tresp_clear(&resp);
	unsigned found = 0;
	for (unsigned i = 0; i < 8; i++)
		for (unsigned r = 0; r < ROUNDS; r++) {
			char path[96], want[32];
			snprintf(path, sizeof(path),
				 "/kv/gone%u-%u?consistency=local", i, r);
			snprintf(want, sizeof(want), "left-%u", r);
			tcurl_req(node.port, "GET", path, NULL, 0, NULL, true,
				  &resp);
			if (resp.status == 200) {
				assert_string_equal(resp.body, want);
				found++;
			} else {
				assert_int_equal(resp.status, 404);
			}
			tresp_clear(&resp);
		}
	print_message("writes of clients that left, applied: %u of %u\n", found,
		      8 * ROUNDS);
}

static int setup(void **state)
{
	(void)state;
	return tcurl_node_start(datadir, &node);
}

static int teardown(void **state)
{
	(void)state;
	tcurl_node_stop(datadir, &node);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
		test_every_parked_write_gets_its_own_answer_in_order),
	    cmocka_unit_test(
		test_a_client_that_closes_while_parked_loses_nothing_and_holds_nothing),
	};
	return cmocka_run_group_tests_name("group_commit", tests, setup,
					   teardown);
}
