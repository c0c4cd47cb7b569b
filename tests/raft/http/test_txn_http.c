/* test_txn_http.c - POST /txn against a real node (raft/http/http_txn.c):
 * every malformed body is 400 with a message naming the item and nothing
 * is written; a good txn answers its branch, revision and results
 * (binary values as value_base64); a failing op is 409 naming it; other
 * methods are 405, unknown parameters 400. The body's reading
 * (http_txn_parse) is checked on its own first, message by message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_int.h"
#include "rmtree.h"
#include "tcurl.h"
#include "tnode.h"

static struct tnode tn;
static unsigned port;
static char datadir[] = "/tmp/kvfs-test-txn-XXXXXX";

static void req(const char *method, const char *path, const char *body,
		struct tresp *r)
{
	tcurl_req(port, method, path, body, body ? strlen(body) : 0, NULL,
		  false, r);
}

/* status and code as wanted, the message containing needle. */
static void assert_fails(const struct tresp *r, long status, const char *code,
			 const char *needle)
{
	if (r->status != status)
		fail_msg("status %ld, want %ld; body %s", r->status, status,
			 r->body ? r->body : "");
	cJSON *j = cJSON_Parse(r->body);
	assert_non_null(j);
	cJSON *e = cJSON_GetObjectItem(j, "error"),
	      *c = cJSON_GetObjectItem(j, "code");
	assert_true(cJSON_IsString(e) && cJSON_IsString(c));
	assert_string_equal(c->valuestring, code);
	if (!strstr(e->valuestring, needle))
		fail_msg("message \"%s\" does not name \"%s\"", e->valuestring,
			 needle);
	cJSON_Delete(j);
}

/* ---- the body alone ---- */

static void test_parse_messages_name_the_item(void **state)
{
	(void)state;
	static const struct {
		const char *body, *needle;
	} bad[] = {
	    {"", "JSON object"},
	    {"[1]", "JSON object"},
	    {"{\"compare\":{}}", "compare: a list"},
	    {"{\"x\":[]}", "unknown field \"x\""},
	    {"{\"compare\":[1]}", "compare[0] is not an object"},
	    {"{\"compare\":[{\"key\":\"a\",\"target\":\"mod_rev\",\"op\":\"=="
	     "\","
	     "\"rev\":1,\"extra\":1}]}",
	     "compare[0]: unknown field \"extra\""},
	    {"{\"compare\":[{\"target\":\"mod_rev\",\"op\":\"==\",\"rev\":1}]}",
	     "compare[0].key"},
	    {"{\"compare\":[{\"key\":\"a\",\"target\":\"size\",\"op\":\"==\","
	     "\"rev\":1}]}",
	     "compare[0].target"},
	    {"{\"compare\":[{\"key\":\"a\",\"target\":\"version\",\"op\":\"=="
	     "\","
	     "\"rev\":1}]}",
	     "no version"},
	    {"{\"compare\":[{\"key\":\"a\",\"target\":\"mod_rev\",\"op\":\"=>"
	     "\","
	     "\"rev\":1}]}",
	     "compare[0].op"},
	    {"{\"compare\":[{\"key\":\"a\",\"target\":\"mod_rev\",\"op\":\"=="
	     "\","
	     "\"rev\":1.5}]}",
	     "compare[0]: a revision"},
	    {"{\"compare\":[{\"key\":\"a\",\"target\":\"mod_rev\",\"op\":\"=="
	     "\","
	     "\"value\":\"1\"}]}",
	     "compare[0]: a revision"},
	    {"{\"compare\":[{\"key\":\"a\",\"target\":\"value\",\"op\":\"==\","
	     "\"rev\":1}]}",
	     "compare[0]: a value compare"},
	    {"{\"compare\":[{\"key\":\"a\",\"target\":\"value\",\"op\":\"==\"}]"
	     "}",
	     "compare[0]: value"},
	    {"{\"compare\":[{\"key\":\"a\",\"target\":\"exists\",\"op\":\"==\","
	     "\"value\":\"yes\"}]}",
	     "compare[0]: an exists"},
	    {"{\"compare\":[{\"key\":\"a\",\"target\":\"exists\",\"op\":\">\","
	     "\"value\":true}]}",
	     "compare[0]: exists"},
	    {"{\"compare\":[{\"key\":\"/"
	     "a\",\"target\":\"exists\",\"op\":\"==\","
	     "\"value\":true}]}",
	     "compare[0]: the key breaks the key rules"},
	    {"{\"success\":[{\"op\":\"move\",\"key\":\"a\"}]}",
	     "success[0].op"},
	    {"{\"failure\":[{\"op\":\"get\"}]}", "failure[0].key"},
	    {"{\"success\":[{\"op\":\"put\",\"key\":\"a\"}]}",
	     "success[0]: a put takes"},
	    {"{\"success\":[{\"op\":\"put\",\"key\":\"a\",\"value\":1}]}",
	     "success[0]: a put takes"},
	    {"{\"success\":[{\"op\":\"put\",\"key\":\"a\",\"value_base64\":"
	     "\"***\"}]}",
	     "success[0]: a put takes"},
	    {"{\"success\":[{\"op\":\"put\",\"key\":\"a\",\"value\":\"x\","
	     "\"value_base64\":\"AA==\"}]}",
	     "success[0]: a put takes"},
	    {"{\"success\":[{\"op\":\"delete\",\"key\":\"a\",\"value\":\"x\"}]"
	     "}",
	     "success[0]: only a put"},
	    {"{\"success\":[{\"op\":\"put\",\"key\":\"a\",\"value\":\"1\"},"
	     "{\"op\":\"delete\",\"key\":\"a\"}]}",
	     "success[1]: two writes"},
	    {"{\"failure\":[{\"op\":\"delete_range\",\"key\":\"a\"},"
	     "{\"op\":\"get\",\"key\":\"a/b\"},"
	     "{\"op\":\"put\",\"key\":\"a/b\",\"value\":\"1\"}]}",
	     "failure[2]: two writes"},
	    {"{\"success\":[{\"op\":\"put\",\"key\":\"a\",\"value\":"
	     "\"\\u0000\"}"
	     "]}",
	     "value_base64"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct kv_txn *t = (void *)1;
		char msg[256] = "";
		int err =
		    http_txn_parse((const unsigned char *)bad[i].body,
				   strlen(bad[i].body), &t, msg, sizeof(msg));
		if (err != -EINVAL || t != NULL)
			fail_msg("accepted (%d): %s", err, bad[i].body);
		if (!strstr(msg, bad[i].needle))
			fail_msg("%s: message \"%s\" does not name \"%s\"",
				 bad[i].body, msg, bad[i].needle);
	}
	/* the most items, and one more */
	char body[16384];
	size_t n = (size_t)snprintf(body, sizeof(body), "{\"success\":[");
	for (int i = 0; i < 129; i++)
		n += (size_t)snprintf(body + n, sizeof(body) - n,
				      "%s{\"op\":\"get\",\"key\":\"k%d\"}",
				      i ? "," : "", i);
	snprintf(body + n, sizeof(body) - n, "]}");
	struct kv_txn *t;
	char msg[256];
	assert_int_equal(http_txn_parse((unsigned char *)body, strlen(body), &t,
					msg, sizeof(msg)),
			 -EINVAL);
	assert_non_null(strstr(msg, "128"));
	const char *good = "{\"compare\":[{\"key\":\"a\",\"target\":\"exists\","
			   "\"op\":\"!=\",\"value\":false},{\"key\":\"a\","
			   "\"target\":\"value\",\"op\":\"<\",\"value_base64\":"
			   "\"AP8=\"}],\"success\":[{\"op\":\"put\",\"key\":"
			   "\"a\",\"value_base64\":\"AP8=\"}],\"failure\":[]}";
	assert_int_equal(http_txn_parse((const unsigned char *)good,
					strlen(good), &t, msg, sizeof(msg)),
			 0);
	assert_int_equal(t->ncmp, 2);
	assert_int_equal(t->cmp[0].n, 0); /* != false */
	assert_int_equal(t->cmp[0].op, KV_TXN_NE);
	assert_int_equal(t->cmp[1].vlen, 2);
	assert_memory_equal(t->br[0][0].val, "\0\xff", 2);
	assert_int_equal(t->nop[1], 0);
	kv_txn_free(t);
}

/* ---- a real node ---- */

static void test_node_answers_400_409_405_and_results(void **state)
{
	(void)state;
	struct tresp r;

	req("POST", "/txn",
	    "{\"success\":[{\"op\":\"put\",\"key\":\"a\","
	    "\"value\":\"1\"},{\"op\":\"put\",\"key\":\"a/b\","
	    "\"value\":\"2\"}]}",
	    &r);
	assert_fails(&r, 400, "bad_request", "success[1]: two writes");
	tresp_clear(&r);
	req("POST", "/txn", "{\"success\":[{\"op\":\"get\",\"key\":\"a//b\"}]}",
	    &r);
	assert_fails(&r, 400, "bad_key", "success[0]");
	tresp_clear(&r);
	req("POST", "/txn?dry=1", "{}", &r);
	assert_fails(&r, 400, "bad_request", "unknown query parameter: dry");
	tresp_clear(&r);
	req("GET", "/txn", NULL, &r);
	assert_int_equal(r.status, 405);
	tresp_clear(&r);
	req("PUT", "/kv/a", "1", &r);
	assert_true(r.status == 201);
	tresp_clear(&r);
	/* a put below a key: 409 naming the op, nothing written */
	req("POST", "/txn",
	    "{\"success\":[{\"op\":\"put\",\"key\":\"c\","
	    "\"value\":\"1\"},{\"op\":\"put\",\"key\":\"a/x\","
	    "\"value\":\"2\"}]}",
	    &r);
	assert_fails(&r, 409, "conflict", "success[1]");
	tresp_clear(&r);
	req("GET", "/kv/c", NULL, &r);
	assert_int_equal(r.status, 404);
	tresp_clear(&r);
	/* the failure branch with its gets; then the success branch */
	req("POST", "/txn",
	    "{\"compare\":[{\"key\":\"a\",\"target\":\"value\","
	    "\"op\":\"==\",\"value\":\"0\"}],\"failure\":[{"
	    "\"op\":\"get\",\"key\":\"a\"},{\"op\":\"get\","
	    "\"key\":\"none\"}]}",
	    &r);
	assert_int_equal(r.status, 200);
	cJSON *j = cJSON_Parse(r.body);
	assert_non_null(j);
	assert_true(cJSON_IsFalse(cJSON_GetObjectItem(j, "succeeded")));
	cJSON *res = cJSON_GetObjectItem(j, "results");
	assert_int_equal(cJSON_GetArraySize(res), 2);
	cJSON *g = cJSON_GetArrayItem(res, 0);
	assert_string_equal(cJSON_GetObjectItem(g, "value")->valuestring, "1");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(g, "found")));
	assert_true(cJSON_IsFalse(
	    cJSON_GetObjectItem(cJSON_GetArrayItem(res, 1), "found")));
	cJSON_Delete(j);
	tresp_clear(&r);
	req("POST", "/txn",
	    "{\"compare\":[{\"key\":\"a\",\"target\":\"exists\","
	    "\"op\":\"==\",\"value\":true}],\"success\":[{"
	    "\"op\":\"put\",\"key\":\"b\",\"value_base64\":"
	    "\"AP8=\"},{\"op\":\"get\",\"key\":\"b\"},{\"op\":"
	    "\"delete\",\"key\":\"a\"}]}",
	    &r);
	assert_int_equal(r.status, 200);
	j = cJSON_Parse(r.body);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "succeeded")));
	double rev = cJSON_GetObjectItem(j, "rev")->valuedouble;
	res = cJSON_GetObjectItem(j, "results");
	g = cJSON_GetArrayItem(res, 1);
	assert_string_equal(cJSON_GetObjectItem(g, "value_base64")->valuestring,
			    "AP8=");
	assert_true(cJSON_GetObjectItem(g, "mod_rev")->valuedouble == rev);
	assert_true(cJSON_GetObjectItem(cJSON_GetArrayItem(res, 2), "deleted")
			->valuedouble == 1);
	cJSON_Delete(j);
	tresp_clear(&r);
	req("GET", "/kv/a", NULL, &r);
	assert_int_equal(r.status, 404);
	tresp_clear(&r);
}

static int setup(void **state)
{
	(void)state;
	if (tcurl_node_start(datadir, &tn) != 0)
		return -1;
	port = tn.port;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	tcurl_node_stop(datadir, &tn);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_messages_name_the_item),
	    cmocka_unit_test(test_node_answers_400_409_405_and_results),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
