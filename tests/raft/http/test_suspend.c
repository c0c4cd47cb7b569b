/* test_suspend.c - requests the listener suspends while the node works.
 *
 * The HTTP listener runs every connection on one thread: a write or a
 * linearizable read suspends its request until the node answers
 * (raft/http.c). These tests use a node that can never lead (two of its
 * three members do not exist), so that its requests stay suspended: each
 * must still be answered by the write timeout, and closing the node must
 * answer every one of them and return, never hang or abort (libmicrohttpd
 * refuses to stop with a connection suspended). */
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
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

#include "http_int.h"
#include "tnode.h"

#define CLIENTS 16

static char datadir[] = "/tmp/kvfs-test-suspend-XXXXXX";

/* Member 1 of a three-member cluster whose other two never answer. */
static struct tnode *open_alone(int write_timeout_ms)
{
	static struct tnode t;
	if (tnode_start_leaderless(datadir, write_timeout_ms, &t) != 0)
		fail_msg("tnode_open failed");
	return &t;
}

struct call {
	unsigned port;
	const char *method;
	const char *path;
	long status; /* 0: no answer (the connection closed) */
	char code[32];
	double seconds;
	/* loop: ask again until there is no answer; others counts the
	 * answers that were not 503 not_ready */
	bool loop;
	unsigned rounds, others;
};

static size_t keep_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct call *c = arg;
	const char *p = memmem(data, size * nmemb, "\"code\":\"", 8);
	if (p) {
		p += 8;
		size_t n = strcspn(p, "\"");
		if (n >= sizeof(c->code))
			n = sizeof(c->code) - 1;
		memcpy(c->code, p, n);
		c->code[n] = '\0';
	}
	return size * nmemb;
}

static void call_once(struct call *c)
{
	char url[256];
	CURL *h = curl_easy_init();
	struct curl_slist *hdrs = curl_slist_append(NULL, "Expect:");
	snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", c->port, c->path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, c->method);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	if (strcmp(c->method, "PUT") == 0) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, "v");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 1L);
	}
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, keep_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 120L);
	if (curl_easy_perform(h) == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &c->status);
	curl_easy_getinfo(h, CURLINFO_TOTAL_TIME, &c->seconds);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(h);
}

static void *call_main(void *arg)
{
	struct call *c = arg;
	do {
		c->status = 0;
		c->code[0] = '\0';
		call_once(c);
		if (c->status != 0 &&
		    (c->status != 503 || strcmp(c->code, "not_ready") != 0))
			c->others++;
	} while (c->loop && c->status != 0 && ++c->rounds < 100000);
	return NULL;
}

static void start_calls(struct tnode *n, struct call *calls, pthread_t *threads,
			size_t count)
{
	for (size_t i = 0; i < count; i++) {
		calls[i] = (struct call){
		    .port = n->port,
		    .method = i % 2 ? "GET" : "PUT",
		    .path = i % 2 ? "/kv/read" : "/kv/write",
		    .loop = i % 4 >= 2,
		};
		assert_int_equal(
		    pthread_create(&threads[i], NULL, call_main, &calls[i]), 0);
	}
}

/* Wait until count requests are suspended on n's listener. */
static void wait_held(struct tnode *n, unsigned count)
{
	struct http_server *h = n->http;
	for (int i = 0; i < 30000; i++) {
		pthread_mutex_lock(&h->mu);
		unsigned held = h->held;
		pthread_mutex_unlock(&h->mu);
		if (held >= count)
			return;
		struct timespec ms = {0, 1000000};
		nanosleep(&ms, NULL);
	}
	fail_msg("the requests were not suspended");
}

static void test_suspended_requests_fail_503_by_the_write_timeout(void **state)
{
	(void)state;
	struct tnode *n = open_alone(1000);
	struct call calls[2];
	pthread_t threads[2];
	start_calls(n, calls, threads, 2);
	for (size_t i = 0; i < 2; i++)
		pthread_join(threads[i], NULL);
	for (size_t i = 0; i < 2; i++) {
		/* no leader: a write is retried until its time is up, a read
		 * waits for a ReadIndex round that never comes */
		assert_int_equal(calls[i].status, 503);
		assert_string_equal(calls[i].code, "no_quorum");
		assert_true(calls[i].seconds >= 0.9);
	}
	/* the listener was free all along: a local read answers at once */
	struct call local = {.port = n->port,
			     .method = "GET",
			     .path = "/kv/read?consistency=local"};
	call_main(&local);
	assert_int_equal(local.status, 404);
	tnode_close(n);
}

static void test_closing_the_node_answers_every_suspended_request(void **state)
{
	(void)state;
	struct tnode *n = open_alone(60000);
	struct call calls[CLIENTS];
	pthread_t threads[CLIENTS];
	start_calls(n, calls, threads, CLIENTS);
	wait_held(n, CLIENTS);
	/* returns, with each request answered or its connection closed,
	 * long before the minute the writes would otherwise wait; half the
	 * clients ask again at once, racing the listener's stop */
	tnode_close(n);
	for (size_t i = 0; i < CLIENTS; i++) {
		pthread_join(threads[i], NULL);
		assert_true(calls[i].seconds < 30);
		assert_int_equal(calls[i].others, 0);
	}
}

static int setup(void **state)
{
	(void)state;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	return mkdtemp(datadir) ? 0 : -1;
}

static int each(void **state)
{
	(void)state;
	rmtree(datadir);
	return mkdir(datadir, 0700);
}

static int teardown(void **state)
{
	(void)state;
	rmtree(datadir);
	curl_global_cleanup();
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(
		test_suspended_requests_fail_503_by_the_write_timeout, each),
	    cmocka_unit_test_setup(
		test_closing_the_node_answers_every_suspended_request, each),
	};
	return cmocka_run_group_tests_name("suspend", tests, setup, teardown);
}
