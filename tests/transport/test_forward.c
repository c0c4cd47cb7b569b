/* test_forward.c - the forwarder (raft/forward.c): the batch codec as pure
 * functions, and the thread against a fake leader (libmicrohttpd on
 * 127.0.0.1) that holds requests behind a gate, so a test decides what is
 * in flight when the next commands arrive. The leader's side of batches
 * runs against a real node in the e2e tests (writes on followers). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <microhttpd.h>

#include "forward.h"
#include "node_int.h"

/* ---- the codec ---- */

static void test_batch_split_finds_each_command_of_an_array(void **state)
{
	(void)state;
	const char *body =
	    " [{\"k\":\"a}]\\\"{\"} ,\n{\"x\":[1,{\"y\":2}]},{}] ";
	struct fwd_span s[4];
	size_t n = 0;
	assert_int_equal(fwd_batch_split(body, strlen(body), s, 4, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(s[0].len, strlen("{\"k\":\"a}]\\\"{\"}"));
	assert_memory_equal(s[0].p, "{\"k\":\"a}]\\\"{\"}", s[0].len);
	assert_memory_equal(s[1].p, "{\"x\":[1,{\"y\":2}]}", s[1].len);
	assert_int_equal(s[1].len, strlen("{\"x\":[1,{\"y\":2}]}"));
	assert_int_equal(s[2].len, 2);
}

static void
test_batch_split_refuses_what_is_not_an_array_of_objects(void **state)
{
	(void)state;
	const char *bad[] = {"",	"[]",	       "{\"v\":1}", "[1]",
			     "[{}",	"[{},]",       "[{}{}]",    "[{}] x",
			     "[{\"a\"", "[{\"a\":\"}]"};
	struct fwd_span s[4];
	size_t n;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(
		    fwd_batch_split(bad[i], strlen(bad[i]), s, 4, &n), -EINVAL);
	assert_int_equal(fwd_batch_split("[{},{},{}]", 10, s, 2, &n), -E2BIG);
}

static void test_status_maps_as_the_single_form_always_did(void **state)
{
	(void)state;
	assert_int_equal(fwd_status_ret(421), NODE_RETRY);
	assert_int_equal(fwd_status_ret(507), -ENOSPC);
	assert_int_equal(fwd_status_ret(400), -EINVAL);
	assert_int_equal(fwd_status_ret(413), -EINVAL);
	assert_int_equal(fwd_status_ret(503), KV_ENOQUORUM);
	assert_int_equal(fwd_status_ret(500), KV_ENOQUORUM);
}

static void test_answer_decode_reads_one_result_per_command(void **state)
{
	(void)state;
	const char *a = "{\"results\":[{\"index\":7,\"err\":-2,\"rev\":3},"
			"{\"status\":421,\"code\":\"not_leader\"},"
			"{\"status\":507},{\"status\":503}]}";
	int rets[4];
	uint64_t ix[4];
	struct kv_result res[4];
	assert_int_equal(fwd_answer_decode(a, strlen(a), 4, rets, ix, res), 0);
	assert_int_equal(rets[0], 0);
	assert_int_equal(ix[0], 7);
	assert_int_equal(res[0].err, -2);
	assert_int_equal(res[0].rev, 3);
	assert_int_equal(rets[1], NODE_RETRY);
	assert_int_equal(rets[2], -ENOSPC);
	assert_int_equal(rets[3], KV_ENOQUORUM);
	/* another count, or a result that says nothing: refused whole */
	assert_int_equal(fwd_answer_decode(a, strlen(a), 3, rets, ix, res),
			 -EINVAL);
	const char *b = "{\"results\":[{\"err\":0}]}";
	assert_int_equal(fwd_answer_decode(b, strlen(b), 1, rets, ix, res),
			 -EINVAL);
}

/* ---- a fake leader ---- */

#define MAX_REQS 64

struct leader {
	struct MHD_Daemon *d;
	unsigned short port;
	char addr[32];
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool gate_closed;
	bool refuse_batches; /* 400 to a JSON array, as before batches */
	int arrived;
	char *bodies[MAX_REQS];
	uint64_t next_index;
};

struct upload {
	char *p;
	size_t len;
};

/* One command's result: "notleader" and "full" in it say which. */
static void result_for(struct leader *l, const char *p, size_t len, char *out,
		       size_t cap)
{
	if (memmem(p, len, "notleader", 9))
		snprintf(out, cap, "{\"status\":421}");
	else if (memmem(p, len, "full", 4))
		snprintf(out, cap, "{\"status\":507}");
	else
		snprintf(out, cap, "{\"index\":%llu,\"err\":0,\"rev\":1}",
			 (unsigned long long)++l->next_index);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
				  const char *url, const char *method,
				  const char *version, const char *data,
				  size_t *size, void **con_cls)
{
	struct leader *l = cls;
	struct upload *up = *con_cls;
	(void)url;
	(void)method;
	(void)version;
	if (!up) {
		*con_cls = calloc(1, sizeof(*up));
		return *con_cls ? MHD_YES : MHD_NO;
	}
	if (*size > 0) {
		char *p = realloc(up->p, up->len + *size + 1);
		if (!p)
			return MHD_NO;
		memcpy(p + up->len, data, *size);
		up->len += *size;
		p[up->len] = '\0';
		up->p = p;
		*size = 0;
		return MHD_YES;
	}
	char text[8192];
	unsigned status = 200;
	pthread_mutex_lock(&l->mu);
	if (l->arrived < MAX_REQS)
		l->bodies[l->arrived] = strdup(up->p ? up->p : "");
	l->arrived++;
	pthread_cond_broadcast(&l->cv);
	while (l->gate_closed)
		pthread_cond_wait(&l->cv, &l->mu);
	if (up->p && up->p[0] == '[') {
		struct fwd_span s[16];
		size_t n = 0;
		assert_int_equal(fwd_batch_split(up->p, up->len, s, 16, &n), 0);
		size_t at =
		    (size_t)snprintf(text, sizeof(text), "{\"results\":[");
		for (size_t i = 0; i < n; i++) {
			char one[128];
			result_for(l, s[i].p, s[i].len, one, sizeof(one));
			at += (size_t)snprintf(text + at, sizeof(text) - at,
					       "%s%s", i ? "," : "", one);
		}
		snprintf(text + at, sizeof(text) - at, "]}");
		if (l->refuse_batches) {
			status = 400;
			snprintf(text, sizeof(text), "{\"code\":\"bad\"}");
		}
	} else {
		result_for(l, up->p ? up->p : "", up->len, text, sizeof(text));
		if (strstr(text, "status"))
			status = strstr(text, "421") ? 421 : 507;
	}
	pthread_mutex_unlock(&l->mu);
	struct MHD_Response *resp = MHD_create_response_from_buffer(
	    strlen(text), text, MHD_RESPMEM_MUST_COPY);
	enum MHD_Result ret = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static void on_done(void *cls, struct MHD_Connection *c, void **con_cls,
		    enum MHD_RequestTerminationCode toe)
{
	struct upload *up = *con_cls;
	(void)cls;
	(void)c;
	(void)toe;
	if (up) {
		free(up->p);
		free(up);
	}
	*con_cls = NULL;
}

static struct leader *leader_start(void)
{
	struct leader *l = calloc(1, sizeof(*l));
	struct sockaddr_in sa = {.sin_family = AF_INET};
	assert_non_null(l);
	pthread_mutex_init(&l->mu, NULL);
	pthread_cond_init(&l->cv, NULL);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	l->d = MHD_start_daemon(
	    MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, 0,
	    NULL, NULL, on_request, l, MHD_OPTION_SOCK_ADDR, &sa,
	    MHD_OPTION_NOTIFY_COMPLETED, on_done, l, MHD_OPTION_END);
	assert_non_null(l->d);
	const union MHD_DaemonInfo *di =
	    MHD_get_daemon_info(l->d, MHD_DAEMON_INFO_BIND_PORT);
	l->port = di->port;
	snprintf(l->addr, sizeof(l->addr), "127.0.0.1:%u", l->port);
	return l;
}

static void leader_gate(struct leader *l, bool closed)
{
	pthread_mutex_lock(&l->mu);
	l->gate_closed = closed;
	pthread_cond_broadcast(&l->cv);
	pthread_mutex_unlock(&l->mu);
}

/* Wait (with a generous deadline) until n requests arrived. */
static void leader_wait_arrived(struct leader *l, int n)
{
	struct timespec d;
	clock_gettime(CLOCK_REALTIME, &d);
	d.tv_sec += 20;
	pthread_mutex_lock(&l->mu);
	while (l->arrived < n)
		assert_int_equal(pthread_cond_timedwait(&l->cv, &l->mu, &d), 0);
	pthread_mutex_unlock(&l->mu);
}

static void leader_stop(struct leader *l)
{
	leader_gate(l, false);
	MHD_stop_daemon(l->d);
	for (int i = 0; i < MAX_REQS && i < l->arrived; i++)
		free(l->bodies[i]);
	free(l);
}

/* ---- commands and their answers ---- */

struct outcome {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int answered;
	int calls[16];
	int rets[16];
	uint64_t index[16];
};

struct slot {
	struct outcome *o;
	int i;
};

/* An empty outcome, and sl[i] pointing at its i-th answer. */
static void outcome_init(struct outcome *o, struct slot sl[16])
{
	memset(o, 0, sizeof(*o));
	pthread_mutex_init(&o->mu, NULL);
	pthread_cond_init(&o->cv, NULL);
	for (int i = 0; i < 16; i++)
		sl[i] = (struct slot){o, i};
}

static void on_done_cmd(void *ctx, int ret, uint64_t index,
			const struct kv_result *res)
{
	struct slot *s = ctx;
	struct outcome *o = s->o;
	assert_true(ret != 0 || res != NULL);
	pthread_mutex_lock(&o->mu);
	o->calls[s->i]++;
	o->rets[s->i] = ret;
	o->index[s->i] = index;
	o->answered++;
	pthread_cond_broadcast(&o->cv);
	pthread_mutex_unlock(&o->mu);
}

static void wait_answered(struct outcome *o, int n)
{
	struct timespec d;
	clock_gettime(CLOCK_REALTIME, &d);
	d.tv_sec += 20;
	pthread_mutex_lock(&o->mu);
	while (o->answered < n)
		assert_int_equal(pthread_cond_timedwait(&o->cv, &o->mu, &d), 0);
	pthread_mutex_unlock(&o->mu);
}

static struct timespec in_ms(long ms)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	t.tv_sec += ms / 1000;
	t.tv_nsec += (ms % 1000) * 1000000;
	if (t.tv_nsec >= 1000000000) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000;
	}
	return t;
}

static void submit(struct fwd *f, const char *addr, const char *cmd,
		   struct slot *s, long ms)
{
	struct timespec d = in_ms(ms);
	assert_int_equal(
	    fwd_submit(f, addr, cmd, strlen(cmd), &d, on_done_cmd, s), 0);
}

/* Fill the FWD_INFLIGHT slots with held requests, one command each:
 * commands 0..FWD_INFLIGHT-1 of slots. */
static void fill_inflight(struct fwd *f, struct leader *l, struct slot *sl)
{
	leader_gate(l, true);
	for (int i = 0; i < FWD_INFLIGHT; i++) {
		submit(f, l->addr, "{\"k\":\"held\"}", &sl[i], 20000);
		leader_wait_arrived(l, i + 1);
	}
}

static void
test_forwarder_sends_what_queued_meanwhile_as_one_batch(void **state)
{
	(void)state;
	struct leader *l = leader_start();
	struct fwd *f;
	struct outcome o;
	struct slot sl[16];
	outcome_init(&o, sl);
	assert_int_equal(fwd_new("c-1", "tok", &f), 0);
	fill_inflight(f, l, sl);
	int k = FWD_INFLIGHT;
	submit(f, l->addr, "{\"k\":\"a\"}", &sl[k], 20000);
	submit(f, l->addr, "{\"k\":\"notleader\"}", &sl[k + 1], 20000);
	submit(f, l->addr, "{\"k\":\"full\"}", &sl[k + 2], 20000);
	submit(f, l->addr, "{\"k\":\"b\"}", &sl[k + 3], 20000);
	leader_gate(l, false);
	wait_answered(&o, k + 4);
	/* the held ones went alone, in the single form; the rest together */
	assert_int_equal(l->arrived, k + 1);
	assert_string_equal(l->bodies[0], "{\"k\":\"held\"}");
	assert_string_equal(l->bodies[k],
			    "[{\"k\":\"a\"},{\"k\":\"notleader\"},"
			    "{\"k\":\"full\"},{\"k\":\"b\"}]");
	for (int i = 0; i < k; i++)
		assert_int_equal(o.rets[i], 0);
	assert_int_equal(o.rets[k], 0);
	assert_int_equal(o.rets[k + 1], NODE_RETRY);
	assert_int_equal(o.rets[k + 2], -ENOSPC);
	assert_int_equal(o.rets[k + 3], 0);
	assert_true(o.index[k + 3] > o.index[k]);
	for (int i = 0; i < k + 4; i++)
		assert_int_equal(o.calls[i], 1);
	fwd_free(f);
	leader_stop(l);
}

static void test_forwarder_never_mixes_two_leaders_in_one_batch(void **state)
{
	(void)state;
	struct leader *l = leader_start(), *l2 = leader_start();
	struct fwd *f;
	struct outcome o;
	struct slot sl[16];
	outcome_init(&o, sl);
	assert_int_equal(fwd_new("c-1", "tok", &f), 0);
	fill_inflight(f, l, sl);
	int k = FWD_INFLIGHT;
	submit(f, l->addr, "{\"k\":\"1\"}", &sl[k], 20000);
	submit(f, l2->addr, "{\"k\":\"2\"}", &sl[k + 1], 20000);
	submit(f, l->addr, "{\"k\":\"3\"}", &sl[k + 2], 20000);
	submit(f, l2->addr, "{\"k\":\"4\"}", &sl[k + 3], 20000);
	leader_gate(l, false);
	wait_answered(&o, k + 4);
	assert_int_equal(l->arrived, k + 1);
	assert_string_equal(l->bodies[k], "[{\"k\":\"1\"},{\"k\":\"3\"}]");
	assert_int_equal(l2->arrived, 1);
	assert_string_equal(l2->bodies[0], "[{\"k\":\"2\"},{\"k\":\"4\"}]");
	for (int i = 0; i < k + 4; i++)
		assert_int_equal(o.rets[i], 0);
	fwd_free(f);
	leader_stop(l);
	leader_stop(l2);
}

static void
test_forwarder_sends_one_by_one_to_a_leader_refusing_batches(void **state)
{
	(void)state;
	struct leader *l = leader_start();
	struct fwd *f;
	struct outcome o;
	struct slot sl[16];
	outcome_init(&o, sl);
	l->refuse_batches = true;
	assert_int_equal(fwd_new("c-1", "tok", &f), 0);
	fill_inflight(f, l, sl);
	int k = FWD_INFLIGHT;
	submit(f, l->addr, "{\"k\":\"a\"}", &sl[k], 20000);
	submit(f, l->addr, "{\"k\":\"b\"}", &sl[k + 1], 20000);
	leader_gate(l, false);
	wait_answered(&o, k + 2);
	/* the refused batch, then each of its commands alone */
	assert_int_equal(l->arrived, k + 3);
	assert_int_equal(o.rets[k], 0);
	assert_int_equal(o.rets[k + 1], 0);
	fwd_free(f);
	leader_stop(l);
}

static void test_forwarder_answers_retry_when_nothing_was_sent(void **state)
{
	(void)state;
	struct fwd *f;
	struct outcome o;
	struct slot sl[16];
	outcome_init(&o, sl);
	assert_int_equal(fwd_new("c-1", "tok", &f), 0);
	/* a leader that is gone: the connection is refused */
	struct leader *l = leader_start();
	char addr[32];
	snprintf(addr, sizeof(addr), "%s", l->addr);
	leader_stop(l);
	submit(f, addr, "{\"k\":\"a\"}", &sl[0], 20000);
	/* a deadline already past: never sent */
	submit(f, addr, "{\"k\":\"b\"}", &sl[1], -1000);
	wait_answered(&o, 2);
	assert_int_equal(o.rets[0], NODE_RETRY);
	assert_int_equal(o.rets[1], NODE_RETRY);
	fwd_free(f);
}

static void
test_forwarder_answers_no_quorum_once_sent_and_stops_at_once(void **state)
{
	(void)state;
	struct leader *l = leader_start();
	struct fwd *f;
	struct outcome o;
	struct slot sl[16];
	outcome_init(&o, sl);
	assert_int_equal(fwd_new("c-1", "tok", &f), 0);
	leader_gate(l, true);
	/* sent, and the deadline passes while the leader holds it */
	submit(f, l->addr, "{\"k\":\"a\"}", &sl[0], 300);
	wait_answered(&o, 1);
	assert_int_equal(o.rets[0], KV_ENOQUORUM);
	/* sent and held when the forwarder stops: unknown; queued: shutdown */
	for (int i = 1; i <= FWD_INFLIGHT; i++) {
		submit(f, l->addr, "{\"k\":\"b\"}", &sl[i], 60000);
		leader_wait_arrived(l, i + 1);
	}
	submit(f, l->addr, "{\"k\":\"c\"}", &sl[FWD_INFLIGHT + 1], 60000);
	fwd_free(f); /* returns without waiting for the held requests */
	assert_int_equal(o.answered, FWD_INFLIGHT + 2);
	for (int i = 1; i <= FWD_INFLIGHT; i++)
		assert_int_equal(o.rets[i], KV_ENOQUORUM);
	assert_int_equal(o.rets[FWD_INFLIGHT + 1], KV_ESHUTDOWN);
	leader_stop(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_batch_split_finds_each_command_of_an_array),
	    cmocka_unit_test(
		test_batch_split_refuses_what_is_not_an_array_of_objects),
	    cmocka_unit_test(test_status_maps_as_the_single_form_always_did),
	    cmocka_unit_test(test_answer_decode_reads_one_result_per_command),
	    cmocka_unit_test(
		test_forwarder_sends_what_queued_meanwhile_as_one_batch),
	    cmocka_unit_test(
		test_forwarder_never_mixes_two_leaders_in_one_batch),
	    cmocka_unit_test(
		test_forwarder_sends_one_by_one_to_a_leader_refusing_batches),
	    cmocka_unit_test(
		test_forwarder_answers_retry_when_nothing_was_sent),
	    cmocka_unit_test(
		test_forwarder_answers_no_quorum_once_sent_and_stops_at_once),
	};
	return cmocka_run_group_tests_name("forward", tests, NULL, NULL);
}
