/* test_propose.c - the leader's side of forwarded writes: POST
 * /raft/propose on a real one-node cluster (it leads), in the single form
 * (a JSON object, as followers before batches send) and the batch form (a
 * JSON array), through libcurl. The follower's side is
 * tests/transport/test_forward.c; writes on real followers are e2e. */
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <curl/curl.h>

#include "node.h"
#include "store.h"
#include "transport.h"

static char datadir[] = "/tmp/kvfs-test-propose-XXXXXX";
static struct kv_node *node;
static unsigned port;

struct body {
	char *p;
	size_t len;
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct body *b = arg;
	size_t add = size * nmemb;
	char *p = realloc(b->p, b->len + add + 1);
	if (!p)
		return 0;
	memcpy(p + b->len, data, add);
	b->len += add;
	p[b->len] = '\0';
	b->p = p;
	return add;
}

/* POST text to /raft/propose with this cluster's headers; the status,
 * and the answer in *out (caller frees). */
static long propose(const char *text, size_t len, char **out)
{
	char url[64], hc[PEER_ID_MAX + 32], ht[PEER_ID_MAX + 32];
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/raft/propose", port);
	snprintf(hc, sizeof(hc), PEER_HDR_CLUSTER ": %s",
		 node_cluster_id(node));
	snprintf(ht, sizeof(ht), PEER_HDR_TOKEN ": %s", node_token(node));
	struct curl_slist *h = curl_slist_append(NULL, hc);
	h = curl_slist_append(h, ht);
	h = curl_slist_append(h, "Expect:");
	struct body b = {0};
	CURL *c = curl_easy_init();
	assert_non_null(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, text);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	assert_int_equal(curl_easy_perform(c), CURLE_OK);
	long status = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	curl_slist_free_all(h);
	*out = b.p ? b.p : strdup("");
	return status;
}

/* A put of key=val as kv_cmd_encode writes it (caller frees). */
static char *put_cmd(const char *key, const char *val)
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
	return out;
}

static double num(const cJSON *o, const char *name)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, name);
	assert_true(cJSON_IsNumber(it));
	return it->valuedouble;
}

static void test_single_command_is_answered_as_before_batches(void **state)
{
	(void)state;
	char *cmd = put_cmd("single", "v");
	char *ans;
	assert_int_equal(propose(cmd, strlen(cmd), &ans), 200);
	cJSON *j = cJSON_Parse(ans);
	assert_true(cJSON_IsObject(j));
	assert_true(num(j, "index") >= 1);
	assert_int_equal(num(j, "err"), 0);
	assert_true(num(j, "rev") >= 1);
	cJSON_Delete(j);
	free(ans);
	free(cmd);
}

static void
test_batch_answers_each_command_and_a_bad_one_fails_alone(void **state)
{
	(void)state;
	char *a = put_cmd("batch/a", "1"), *b = put_cmd("batch/b", "2");
	size_t cap = strlen(a) + strlen(b) + 256;
	char *text = malloc(cap);
	assert_non_null(text);
	/* a bad key, a malformed command, then a good one */
	int len = snprintf(text, cap,
			   "[%s, {\"v\":1,\"op\":\"put\",\"key\":\"\"},"
			   "{\"nonsense\":true},\n%s]",
			   a, b);
	char *ans;
	assert_int_equal(propose(text, (size_t)len, &ans), 200);
	cJSON *j = cJSON_Parse(ans);
	const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "results");
	assert_int_equal(cJSON_GetArraySize(r), 4);
	const cJSON *r0 = cJSON_GetArrayItem(r, 0),
		    *r3 = cJSON_GetArrayItem(r, 3);
	assert_true(num(r0, "index") >= 1);
	assert_true(num(r3, "index") > num(r0, "index"));
	assert_int_equal(num(r0, "err"), 0);
	assert_int_equal(num(cJSON_GetArrayItem(r, 1), "status"), 400);
	assert_int_equal(num(cJSON_GetArrayItem(r, 2), "status"), 400);
	cJSON_Delete(j);
	free(ans);
	free(text);
	free(a);
	free(b);
}

static void test_malformed_batch_is_refused_whole(void **state)
{
	(void)state;
	char *ans;
	assert_int_equal(propose("[{}", 3, &ans), 400);
	free(ans);
	assert_int_equal(propose("[]", 2, &ans), 400);
	free(ans);
}

/* ---- the node under test ---- */

static int rm_entry(const char *path, const struct stat *sb, int flag,
		    struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int setup(void **state)
{
	struct node_options opt = {.id = 1, .listen = "127.0.0.1:0"};
	char *err = NULL;
	(void)state;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (!mkdtemp(datadir))
		return -1;
	opt.data_dir = datadir;
	if (node_open(&opt, &node, &err) != 0) {
		fprintf(stderr, "node_open: %s\n", err ? err : "?");
		free(err);
		return -1;
	}
	port = node_port(node);
	/* a one-node cluster elects itself: wait for it, with a deadline */
	for (int i = 0; i < 2000 && node_leader(node, NULL, 0) != 1; i++)
		nanosleep(&(struct timespec){0, 10000000}, NULL);
	return port && node_leader(node, NULL, 0) == 1 ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	node_close(node);
	nftw(datadir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	curl_global_cleanup();
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_single_command_is_answered_as_before_batches),
	    cmocka_unit_test(
		test_batch_answers_each_command_and_a_bad_one_fails_alone),
	    cmocka_unit_test(test_malformed_batch_is_refused_whole),
	};
	return cmocka_run_group_tests_name("propose", tests, setup, teardown);
}
