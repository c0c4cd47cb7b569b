/* test_forwarded.c - the leader's side of writes a follower forwards.
 *
 * A follower sends its clients' writes to the leader as PROPOSE messages
 * on its peer stream, and the leader answers each with a PROPOSE_RESP
 * saying where the entries went (raft/node_loop.c). Here a real node leads
 * a cluster of itself and a learner, node 2, which is a fake peer in this
 * test: its writes go to the node over POST /raft/message, and the node's
 * stream to it is recorded, so the answers can be read. The follower's
 * side (waiting for its own apply) is exercised end to end by the e2e
 * tests, which write on followers. */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <microhttpd.h>

#include "codec.h"
#include "peer.h"
#include "store.h"
#include "tnode.h"

static char datadir[] = "/tmp/kvfs-test-forwarded-XXXXXX";
static struct tnode tn;
static struct kv_node *node;
static unsigned port;

/* ---- the fake node 2: records the frames of the stream it is sent ---- */

#define MAX_FRAMES 4096

static struct {
	struct MHD_Daemon *d;
	unsigned port;
	pthread_mutex_t mu;
	char *frames[MAX_FRAMES];
	size_t lens[MAX_FRAMES];
	size_t n;
} fake = {.mu = PTHREAD_MUTEX_INITIALIZER};

static int on_frame(void *ctx, const char *p, size_t len)
{
	(void)ctx;
	pthread_mutex_lock(&fake.mu);
	if (fake.n < MAX_FRAMES) {
		fake.frames[fake.n] = malloc(len);
		assert_non_null(fake.frames[fake.n]);
		memcpy(fake.frames[fake.n], p, len);
		fake.lens[fake.n++] = len;
	}
	pthread_mutex_unlock(&fake.mu);
	return 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
				  const char *url, const char *method,
				  const char *version, const char *data,
				  size_t *size, void **con_cls)
{
	struct peer_frames *f = *con_cls;
	(void)cls;
	(void)url;
	(void)method;
	(void)version;
	if (!f) {
		*con_cls = calloc(1, sizeof(*f));
		return *con_cls ? MHD_YES : MHD_NO;
	}
	if (*size > 0) {
		int rc = peer_frames_feed(f, data, *size, PEER_MAX_BODY,
					  on_frame, NULL, NULL, 0);
		*size = 0;
		return rc == 0 ? MHD_YES : MHD_NO;
	}
	struct MHD_Response *resp = MHD_create_response_from_buffer(
	    0, (void *)"", MHD_RESPMEM_PERSISTENT);
	enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_NO_CONTENT, resp);
	MHD_destroy_response(resp);
	return ret;
}

static void on_done(void *cls, struct MHD_Connection *c, void **con_cls,
		    enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)c;
	(void)toe;
	if (*con_cls) {
		peer_frames_free(*con_cls);
		free(*con_cls);
		*con_cls = NULL;
	}
}

/* The node's answer to our PROPOSE ctx, waiting up to 10 s for it. */
static struct raft_message answer_to(uint64_t ctx)
{
	for (int t = 0; t < 1000; t++) {
		pthread_mutex_lock(&fake.mu);
		for (size_t i = 0; i < fake.n; i++) {
			struct raft_message *m = NULL;
			size_t n = 0;
			if (peer_msgs_decode(fake.frames[i], fake.lens[i],
					     node_cluster_id(node), NULL, &m,
					     &n, NULL, 0) != 0)
				continue;
			for (size_t j = 0; j < n; j++) {
				if (m[j].type != RAFT_MSG_PROPOSE_RESP ||
				    m[j].ctx != ctx)
					continue;
				struct raft_message out = m[j];
				pthread_mutex_unlock(&fake.mu);
				peer_msgs_free(m, n);
				return out; /* it has no entries */
			}
			peer_msgs_free(m, n);
		}
		pthread_mutex_unlock(&fake.mu);
		nanosleep(&(struct timespec){0, 10000000}, NULL);
	}
	fail_msg("no answer to propose %llu", (unsigned long long)ctx);
	return (struct raft_message){0};
}

/* ---- talking to the node ---- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct kv_buf *b = arg;
	kv_buf_put(b, data, size * nmemb);
	return size * nmemb;
}

/* A request to the node; its status, and its body in *body if not
 * NULL (the caller frees). */
static long request(const char *method, const char *path, struct curl_slist *h,
		    const char *text, size_t len, char **body)
{
	char url[256];
	snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", port, path);
	struct kv_buf b;
	kv_buf_init(&b);
	CURL *c = curl_easy_init();
	assert_non_null(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	if (text) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, text);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)len);
	}
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	assert_int_equal(curl_easy_perform(c), CURLE_OK);
	long status = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	kv_buf_put(&b, "", 1);
	assert_int_equal(b.err, 0);
	if (body)
		*body = b.p;
	else
		kv_buf_free(&b);
	return status;
}

/* Send msgs to the node as node 2 does. */
static void send_as_node2(struct raft_message *msgs, size_t n)
{
	char *text, hc[PEER_ID_MAX + 32], ht[PEER_ID_MAX + 32];
	size_t len;
	assert_int_equal(
	    peer_msgs_encode(node_cluster_id(node), 2, msgs, n, &text, &len),
	    0);
	snprintf(hc, sizeof(hc), PEER_HDR_CLUSTER ": %s",
		 node_cluster_id(node));
	snprintf(ht, sizeof(ht), PEER_HDR_TOKEN ": %s", node_token(node));
	struct curl_slist *h = curl_slist_append(NULL, hc);
	h = curl_slist_append(h, ht);
	h = curl_slist_append(h, "Content-Type: application/json");
	h = curl_slist_append(h, "Expect:");
	assert_int_equal(request("POST", PEER_PATH, h, text, len, NULL), 204);
	curl_slist_free_all(h);
	free(text);
}

/* A put of key=val as a follower encodes it. */
static struct raft_entry put_entry(const char *key, const char *val)
{
	struct kv_cmd cmd = {.op = KV_OP_PUT,
			     .key = (char *)key,
			     .klen = strlen(key),
			     .val = (unsigned char *)val,
			     .vlen = strlen(val),
			     .mtime_ns = 1,
			     .mode = 0644};
	char *out;
	size_t len;
	assert_int_equal(kv_cmd_encode(&cmd, &out, &len), 0);
	return (struct raft_entry){
	    .type = RAFT_ENTRY_NORMAL, .data = out, .len = len};
}

static struct raft_message propose_msg(uint64_t ctx, struct raft_entry *e,
				       size_t n)
{
	return (struct raft_message){.type = RAFT_MSG_PROPOSE,
				     .from = 2,
				     .to = 1,
				     .ctx = ctx,
				     .entries = e,
				     .n_entries = n};
}

/* The value of key read on the node (local read), or NULL if it has
 * none (the caller frees). */
static char *get(const char *key)
{
	char path[128], *body;
	snprintf(path, sizeof(path), "/kv/%s?consistency=local", key);
	long s = request("GET", path, NULL, NULL, 0, &body);
	if (s == 404) {
		free(body);
		return NULL;
	}
	assert_int_equal(s, 200);
	return body;
}

/* ---- the tests ---- */

static void test_a_batch_is_appended_in_order_and_answered(void **state)
{
	(void)state;
	struct raft_entry e[3] = {put_entry("fwd-a", "1"),
				  put_entry("fwd-b", "2"),
				  put_entry("fwd-a", "3")};
	struct raft_message m = propose_msg(1001, e, 3);
	send_as_node2(&m, 1);
	struct raft_message r = answer_to(1001);
	assert_false(r.reject);
	assert_int_equal(r.from, 1);
	assert_int_equal(r.to, 2);
	assert_int_equal(r.hint_index, 3);
	assert_true(r.index >= 1);
	assert_true(r.log_term >= 1);
	/* applied in the order sent: the later put of fwd-a wins */
	char *v = NULL;
	for (int t = 0; t < 500 && !(v && strcmp(v, "3") == 0); t++) {
		free(v);
		nanosleep(&(struct timespec){0, 10000000}, NULL);
		v = get("fwd-a");
	}
	assert_non_null(v);
	assert_string_equal(v, "3");
	free(v);
	v = get("fwd-b");
	assert_non_null(v);
	assert_string_equal(v, "2");
	free(v);

	/* the next batch goes right after it */
	struct raft_entry e2 = put_entry("fwd-c", "4");
	m = propose_msg(1002, &e2, 1);
	send_as_node2(&m, 1);
	struct raft_message r2 = answer_to(1002);
	assert_false(r2.reject);
	assert_int_equal(r2.hint_index, 1);
	assert_true(r2.index >= r.index + 3);
	for (int i = 0; i < 3; i++)
		free(e[i].data);
	free(e2.data);
}

static void test_a_batch_with_a_bad_command_is_refused_whole(void **state)
{
	(void)state;
	static const char bad[] = "{\"v\":1,\"op\":\"put\",\"key\":\"\"}";
	struct raft_entry e[2] = {put_entry("bad-batch", "x"),
				  {.type = RAFT_ENTRY_NORMAL,
				   .data = strdup(bad),
				   .len = strlen(bad)}};
	assert_non_null(e[1].data);
	struct raft_message m = propose_msg(2001, e, 2);
	send_as_node2(&m, 1);
	struct raft_message r = answer_to(2001);
	assert_true(r.reject);
	assert_int_equal(r.hint_term, EINVAL);
	assert_int_equal(r.hint_index, 0);

	/* a good batch after it is applied, the refused one never is */
	struct raft_entry g = put_entry("after-bad", "y");
	m = propose_msg(2002, &g, 1);
	send_as_node2(&m, 1);
	assert_false(answer_to(2002).reject);
	char *v = NULL;
	for (int t = 0; t < 500 && !v; t++) {
		nanosleep(&(struct timespec){0, 10000000}, NULL);
		v = get("after-bad");
	}
	assert_non_null(v);
	free(v);
	assert_null(get("bad-batch"));
	free(e[0].data);
	free(e[1].data);
	free(g.data);
}

static void test_a_senders_reject_and_hint_are_not_taken_as_ours(void **state)
{
	(void)state;
	/* the leader marks a PROPOSE it will not take in these fields; what
	 * a peer sent in them must not pass for that mark */
	struct raft_entry e = put_entry("fwd-marked", "z");
	struct raft_message m = propose_msg(3001, &e, 1);
	m.reject = true;
	m.hint_term = ENOSPC;
	send_as_node2(&m, 1);
	struct raft_message r = answer_to(3001);
	assert_false(r.reject);
	assert_int_equal(r.hint_index, 1);
	free(e.data);
}

/* ---- the node under test ---- */

static int setup(void **state)
{
	struct node_options opt = {.id = 1, .listen = "127.0.0.1:0"};
	char addr[64];
	(void)state;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	fake.d = MHD_start_daemon(
	    MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, 0,
	    NULL, NULL, on_request, NULL, MHD_OPTION_SOCK_ADDR, &sa,
	    MHD_OPTION_NOTIFY_COMPLETED, on_done, NULL, MHD_OPTION_END);
	if (!fake.d)
		return -1;
	fake.port =
	    MHD_get_daemon_info(fake.d, MHD_DAEMON_INFO_BIND_PORT)->port;
	if (!mkdtemp(datadir))
		return -1;
	opt.data_dir = datadir;
	if (tnode_start(&opt, &tn) != 0)
		return -1;
	node = tn.node;
	port = tn.port;
	/* a one-node cluster elects itself: wait for it, with a deadline */
	if (tnode_wait_leader(node, 20000) != 1)
		return -1;
	/* the fake joins as a learner: the node streams to it (a change
	 * waits until the new leader committed an entry of its term) */
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", fake.port);
	int ret = -1;
	for (int i = 0; i < 1000 && ret != 0; i++) {
		ret = node_change_member(node, NODE_MEMBER_ADD, 2, addr);
		if (ret != 0)
			nanosleep(&(struct timespec){0, 10000000}, NULL);
	}
	if (ret != 0)
		fprintf(stderr, "adding the fake learner: %s\n",
			kv_strerror(ret));
	return ret == 0 ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	tnode_close(&tn);
	MHD_stop_daemon(fake.d);
	for (size_t i = 0; i < fake.n; i++)
		free(fake.frames[i]);
	rmtree(datadir);
	curl_global_cleanup();
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_a_batch_is_appended_in_order_and_answered),
	    cmocka_unit_test(test_a_batch_with_a_bad_command_is_refused_whole),
	    cmocka_unit_test(
		test_a_senders_reject_and_hint_are_not_taken_as_ours),
	};
	return cmocka_run_group_tests_name("forwarded", tests, setup, teardown);
}
