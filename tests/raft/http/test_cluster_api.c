/* test_cluster_api.c - the membership endpoints (raft/http_cluster.c) and
 * the joining client (raft/join.c).
 *
 * The parsers and the error mapping are pure and called directly. The
 * handlers run for real inside tiny libmicrohttpd servers on 127.0.0.1,
 * each with a fake node (struct kv_node is defined here, and so are the
 * node_* functions the handlers call), scripted to lead, follow, be busy
 * or refuse. cluster_join is then driven against those servers: a follower
 * that sends it to the leader, a busy leader, a restarted joiner, a dead
 * member. Real clusters are covered by tests/e2e/test_kvfsctl.py. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <microhttpd.h>

#include "http_int.h"
#include "join.h"

/* ---- the fake node ---- */

#define SCRIPT_MAX 16

struct kv_node {
	pthread_mutex_t mu;
	uint64_t leader;
	char leader_addr[64];
	char members[512]; /* node_members_json's answer */
	char cluster_id[64];
	int script[SCRIPT_MAX]; /* node_change_member's answers in turn */
	int n_script, next;	/* past the end: 0 */
	int calls;
	enum node_member_op last_op;
	uint64_t last_id;
	char last_addr[64];
	/* If set, every request gets this status and raw body instead. */
	unsigned raw_status;
	const char *raw_body;
};

int node_members_json(struct kv_node *n, char **out)
{
	pthread_mutex_lock(&n->mu);
	*out = strdup(n->members);
	pthread_mutex_unlock(&n->mu);
	return *out ? 0 : -ENOMEM;
}

int node_change_member(struct kv_node *n, enum node_member_op op, uint64_t id,
		       const char *addr)
{
	int rc;

	pthread_mutex_lock(&n->mu);
	n->calls++;
	n->last_op = op;
	n->last_id = id;
	snprintf(n->last_addr, sizeof(n->last_addr), "%s", addr ? addr : "");
	rc = n->next < n->n_script ? n->script[n->next++] : 0;
	pthread_mutex_unlock(&n->mu);
	return rc;
}

uint64_t node_leader(struct kv_node *n, char *addr, size_t cap)
{
	uint64_t id;

	pthread_mutex_lock(&n->mu);
	snprintf(addr, cap, "%s", n->leader_addr);
	id = n->leader;
	pthread_mutex_unlock(&n->mu);
	return id;
}

const char *node_cluster_id(const struct kv_node *n)
{
	return n->cluster_id;
}

static void script(struct kv_node *n, int count, ...)
{
	va_list ap;

	pthread_mutex_lock(&n->mu);
	va_start(ap, count);
	for (int i = 0; i < count; i++)
		n->script[i] = va_arg(ap, int);
	va_end(ap);
	n->n_script = count;
	n->next = 0;
	n->calls = 0;
	pthread_mutex_unlock(&n->mu);
}

static int calls(struct kv_node *n)
{
	pthread_mutex_lock(&n->mu);
	int c = n->calls;
	pthread_mutex_unlock(&n->mu);
	return c;
}

/* ---- a server running the real handlers over a fake node ---- */

struct server {
	struct MHD_Daemon *d;
	unsigned port;
	char addr[32];
	struct kv_node node;
};

struct upload {
	char *data;
	size_t len;
};

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
				  const char *url, const char *method,
				  const char *version, const char *data,
				  size_t *size, void **con_cls)
{
	struct server *s = cls;
	struct upload *u = *con_cls;
	struct http_req r = {0};
	static const char prefix[] = "/cluster/members/";

	(void)version;
	if (!u) {
		u = calloc(1, sizeof(*u));
		if (!u)
			return MHD_NO;
		*con_cls = u;
		return MHD_YES;
	}
	if (*size > 0) {
		char *d = realloc(u->data, u->len + *size + 1);
		if (!d)
			return MHD_NO;
		memcpy(d + u->len, data, *size);
		u->len += *size;
		d[u->len] = '\0';
		u->data = d;
		*size = 0;
		return MHD_YES;
	}
	r.node = &s->node;
	r.conn = conn;
	r.path = url;
	r.body = (unsigned char *)u->data;
	r.len = u->len;
	r.method = strcmp(method, "POST") == 0	   ? HTTP_POST
		   : strcmp(method, "DELETE") == 0 ? HTTP_DELETE
						   : HTTP_GET;
	if (s->node.raw_status) {
		struct MHD_Response *resp = MHD_create_response_from_buffer(
		    strlen(s->node.raw_body), (void *)s->node.raw_body,
		    MHD_RESPMEM_PERSISTENT);
		enum MHD_Result ret =
		    MHD_queue_response(conn, s->node.raw_status, resp);
		MHD_destroy_response(resp);
		return ret;
	}
	if (strcmp(url, "/cluster/members") == 0) {
		r.rest = "";
		return http_cluster_members(&r);
	}
	if (strncmp(url, prefix, sizeof(prefix) - 1) == 0 &&
	    r.method == HTTP_DELETE) {
		r.rest = url + sizeof(prefix) - 1;
		return http_cluster_member(&r);
	}
	return http_fail(&r, 404, "not_found", "no such route");
}

static void on_done(void *cls, struct MHD_Connection *conn, void **con_cls,
		    enum MHD_RequestTerminationCode toe)
{
	struct upload *u = *con_cls;

	(void)cls;
	(void)conn;
	(void)toe;
	if (u) {
		free(u->data);
		free(u);
	}
}

static struct server *server_start(void)
{
	struct server *s = calloc(1, sizeof(*s));
	const union MHD_DaemonInfo *info;

	assert_non_null(s);
	pthread_mutex_init(&s->node.mu, NULL);
	strcpy(s->node.cluster_id, "c-test");
	s->d = MHD_start_daemon(
	    MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
		MHD_USE_ERROR_LOG,
	    0, NULL, NULL, on_request, s, MHD_OPTION_NOTIFY_COMPLETED, on_done,
	    s, MHD_OPTION_SOCK_ADDR, NULL, MHD_OPTION_END);
	assert_non_null(s->d);
	info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
	assert_non_null(info);
	s->port = info->port;
	snprintf(s->addr, sizeof(s->addr), "127.0.0.1:%u", s->port);
	return s;
}

static void server_stop(struct server *s)
{
	MHD_stop_daemon(s->d);
	pthread_mutex_destroy(&s->node.mu);
	free(s);
}

/* One request to s; the parsed JSON answer (the caller deletes it). */
static cJSON *call(struct server *s, const char *method, const char *path,
		   const char *body, long *status, unsigned *retry_after)
{
	char *resp = NULL, *err = NULL;
	int rc = cluster_http(s->addr, NULL, method, path, body,
			      body ? strlen(body) : 0, 10000, status, &resp,
			      NULL, retry_after, &err);
	cJSON *o;

	if (rc != 0)
		fail_msg("request failed: %s", err ? err : "?");
	o = cJSON_Parse(resp);
	if (!o)
		fail_msg("not JSON: %s", resp);
	free(resp);
	return o;
}

static const char *jstr(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double jnum(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	assert_true(cJSON_IsNumber(v));
	return v->valuedouble;
}

/* ---- pure parts ---- */

static int parse(const char *body, uint64_t *id, char *addr)
{
	const char *why = NULL;
	int rc =
	    http_cluster_parse_member(body, strlen(body), id, addr, 64, &why);
	if (rc != 0)
		assert_non_null(why);
	return rc;
}

static void test_member_bodies_are_parsed_strictly(void **state)
{
	static const char *bad[] = {
	    "",
	    "not json",
	    "[1,2]",
	    "{}",
	    "{\"id\":1}",
	    "{\"address\":\"h:1\"}",
	    "{\"id\":\"1\",\"address\":\"h:1\"}",
	    "{\"id\":0,\"address\":\"h:1\"}",
	    "{\"id\":-3,\"address\":\"h:1\"}",
	    "{\"id\":1.5,\"address\":\"h:1\"}",
	    "{\"id\":9007199254740992,\"address\":\"h:1\"}",
	    "{\"id\":1,\"address\":\"h:1\",\"role\":\"voter\"}",
	    "{\"id\":1,\"id\":2,\"address\":\"h:1\"}",
	    "{\"id\":1,\"address\":\"h:1\"} x",
	    "{\"id\":1,\"address\":\"h:1\"}{}",
	    "{\"id\":1,\"address\":7001}",
	    "{\"id\":1,\"address\":\"h\"}",
	    "{\"id\":1,\"address\":\":7001\"}",
	    "{\"id\":1,\"address\":\"h:\"}",
	    "{\"id\":1,\"address\":\"h:0\"}",
	    "{\"id\":1,\"address\":\"h:65536\"}",
	    "{\"id\":1,\"address\":\"h:70a\"}",
	    "{\"id\":1,\"address\":\"my host:7001\"}",
	    "{\"id\":1,\"address\":\"h/x:7001\"}",
	    "{\"id\":1,\"address\":\"user@h:7001\"}",
	    "{\"id\":1,\"address\":\"[]:7001\"}",
	    "{\"id\":1,\"address\":\"[::1:7001\"}",
	};
	uint64_t id = 0;
	char addr[64];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (parse(bad[i], &id, addr) != -EINVAL)
			fail_msg("accepted: %s", bad[i]);

	assert_int_equal(
	    parse("{\"id\":4,\"address\":\"127.0.0.1:7004\"}", &id, addr), 0);
	assert_int_equal(id, 4);
	assert_string_equal(addr, "127.0.0.1:7004");
	assert_int_equal(parse(" { \"address\" : \"[::1]:9\" ,\n\"id\" : "
			       "9007199254740991 }\n",
			       &id, addr),
			 0);
	assert_true(id == 9007199254740991ull);
	assert_string_equal(addr, "[::1]:9");
	assert_int_equal(parse("{\"id\":2,\"address\":\"node-2.example_x:"
			       "65535\"}",
			       &id, addr),
			 0);
	/* 63 bytes is the longest address, 64 one too many. */
	for (size_t host = 58; host <= 59; host++) {
		char body[128], h[64];
		memset(h, 'a', host);
		h[host] = '\0';
		snprintf(body, sizeof(body),
			 "{\"id\":1,\"address\":\"%s:7001\"}", h);
		assert_int_equal(parse(body, &id, addr),
				 host == 58 ? 0 : -EINVAL);
	}
	assert_int_equal(strlen(addr), 63);
}

static void test_member_ids_in_paths_are_decimal_integers(void **state)
{
	uint64_t id = 0;

	(void)state;
	assert_int_equal(http_cluster_parse_id("7", &id), 0);
	assert_int_equal(id, 7);
	assert_int_equal(http_cluster_parse_id("9007199254740991", &id), 0);
	assert_int_equal(http_cluster_parse_id("9007199254740992", &id),
			 -EINVAL);
	assert_int_equal(http_cluster_parse_id("0", &id), -EINVAL);
	assert_int_equal(http_cluster_parse_id("", &id), -EINVAL);
	assert_int_equal(http_cluster_parse_id("-1", &id), -EINVAL);
	assert_int_equal(http_cluster_parse_id("1/", &id), -EINVAL);
	assert_int_equal(http_cluster_parse_id("%31", &id), -EINVAL);
	assert_int_equal(http_cluster_parse_id("99999999999999999999", &id),
			 -EINVAL);
}

static void test_membership_errors_map_to_one_status_each(void **state)
{
	static const struct {
		int err;
		unsigned status;
		const char *code;
	} want[] = {
	    {KV_ENOTLEADER, 421, "not_leader"},
	    {-EBUSY, 503, "busy"},
	    {-EEXIST, 409, "conflict"},
	    {-ENOENT, 404, "not_found"},
	    {-EINVAL, 400, "bad_request"},
	    {KV_ENOQUORUM, 503, "no_quorum"},
	    {KV_ESHUTDOWN, 503, "not_ready"},
	    {-EIO, 500, "internal"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		unsigned status = 0;
		const char *code = NULL;
		http_cluster_status(want[i].err, &status, &code);
		assert_int_equal(status, want[i].status);
		assert_string_equal(code, want[i].code);
	}
}

static void test_addresses_are_host_and_port(void **state)
{
	(void)state;
	assert_true(cluster_addr_valid("127.0.0.1:7001"));
	assert_true(cluster_addr_valid("localhost:1"));
	assert_true(cluster_addr_valid("[fe80::1]:80"));
	assert_false(cluster_addr_valid(NULL));
	assert_false(cluster_addr_valid("127.0.0.1"));
	assert_false(cluster_addr_valid("127.0.0.1:7001 "));
	assert_false(cluster_addr_valid("a:b:7001"));
	assert_false(cluster_addr_valid("h:+1"));
	assert_false(cluster_addr_valid("h:7001/x"));
}

/* ---- the handlers ---- */

static void test_get_lists_the_members_the_node_knows(void **state)
{
	struct server *s = server_start();
	long status = 0;
	cJSON *o;

	(void)state;
	strcpy(s->node.members, "{\"leader\":1,\"members\":[{\"id\":1,"
				"\"address\":\"127.0.0.1:7001\",\"role\":"
				"\"voter\"}]}");
	o = call(s, "GET", "/cluster/members", NULL, &status, NULL);
	assert_int_equal(status, 200);
	assert_int_equal((int)jnum(o, "leader"), 1);
	assert_int_equal(
	    cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(o, "members")),
	    1);
	cJSON_Delete(o);
	server_stop(s);
}

static void test_add_on_the_leader_is_201_with_what_a_joiner_needs(void **state)
{
	struct server *s = server_start();
	long status = 0;
	cJSON *o;

	(void)state;
	o = call(s, "POST", "/cluster/members",
		 "{\"id\":4,\"address\":\"127.0.0.1:7004\"}", &status, NULL);
	assert_int_equal(status, 201);
	assert_int_equal(s->node.last_op, NODE_MEMBER_ADD);
	assert_int_equal(s->node.last_id, 4);
	assert_string_equal(s->node.last_addr, "127.0.0.1:7004");
	assert_int_equal((int)jnum(o, "id"), 4);
	assert_string_equal(jstr(o, "address"), "127.0.0.1:7004");
	assert_string_equal(jstr(o, "cluster_id"), "c-test");
	/* The token is never sent: the joiner presented it. */
	assert_null(cJSON_GetObjectItemCaseSensitive(o, "token"));
	cJSON_Delete(o);
	server_stop(s);
}

static void test_bad_bodies_are_400_and_never_reach_the_node(void **state)
{
	struct server *s = server_start();
	long status = 0;
	cJSON *o;

	(void)state;
	script(&s->node, 0);
	o = call(s, "POST", "/cluster/members",
		 "{\"id\":4,\"address\":\"no port\"}", &status, NULL);
	assert_int_equal(status, 400);
	assert_string_equal(jstr(o, "code"), "bad_request");
	assert_non_null(strstr(jstr(o, "error"), "address"));
	cJSON_Delete(o);
	o = call(s, "POST", "/cluster/members", "{\"id\":4.5}", &status, NULL);
	assert_int_equal(status, 400);
	cJSON_Delete(o);
	o = call(s, "DELETE", "/cluster/members/x1", NULL, &status, NULL);
	assert_int_equal(status, 400);
	cJSON_Delete(o);
	assert_int_equal(calls(&s->node), 0);
	server_stop(s);
}

static void test_a_follower_answers_421_naming_the_leader(void **state)
{
	struct server *s = server_start();
	long status = 0;
	unsigned retry = 0;
	cJSON *o;

	(void)state;
	s->node.leader = 3;
	strcpy(s->node.leader_addr, "127.0.0.1:7003");
	script(&s->node, 2, KV_ENOTLEADER, KV_ENOTLEADER);
	o = call(s, "POST", "/cluster/members",
		 "{\"id\":4,\"address\":\"127.0.0.1:7004\"}", &status, NULL);
	assert_int_equal(status, 421);
	assert_string_equal(jstr(o, "code"), "not_leader");
	assert_int_equal((int)jnum(o, "leader"), 3);
	assert_string_equal(jstr(o, "leader_address"), "127.0.0.1:7003");
	cJSON_Delete(o);
	o = call(s, "DELETE", "/cluster/members/2", NULL, &status, NULL);
	assert_int_equal(status, 421);
	assert_int_equal(s->node.last_op, NODE_MEMBER_REMOVE);
	cJSON_Delete(o);

	/* No leader known: nothing to name, so retry later. */
	s->node.leader = 0;
	s->node.leader_addr[0] = '\0';
	script(&s->node, 1, KV_ENOTLEADER);
	o = call(s, "POST", "/cluster/members",
		 "{\"id\":4,\"address\":\"127.0.0.1:7004\"}", &status, &retry);
	assert_int_equal(status, 503);
	assert_true(retry >= 1);
	assert_string_equal(jstr(o, "code"), "no_leader");
	cJSON_Delete(o);
	server_stop(s);
}

static void test_change_errors_become_their_statuses(void **state)
{
	struct server *s = server_start();
	long status = 0;
	unsigned retry = 0;
	cJSON *o;

	(void)state;
	strcpy(s->node.members, "{\"leader\":1,\"members\":[{\"id\":1,"
				"\"address\":\"127.0.0.1:7001\",\"role\":"
				"\"voter\"},{\"id\":4,\"address\":\"127.0.0.1:"
				"7004\",\"role\":\"learner\"}]}");
	script(&s->node, 5, -EBUSY, -EEXIST, -EEXIST, -ENOENT, -EINVAL);

	o = call(s, "POST", "/cluster/members",
		 "{\"id\":4,\"address\":\"127.0.0.1:7004\"}", &status, &retry);
	assert_int_equal(status, 503);
	assert_true(retry >= 1);
	assert_string_equal(jstr(o, "code"), "busy");
	cJSON_Delete(o);

	/* 409 at the same address: the joiner learns what it needs. */
	o = call(s, "POST", "/cluster/members",
		 "{\"id\":4,\"address\":\"127.0.0.1:7004\"}", &status, NULL);
	assert_int_equal(status, 409);
	assert_string_equal(jstr(o, "address"), "127.0.0.1:7004");
	assert_string_equal(jstr(o, "cluster_id"), "c-test");
	cJSON_Delete(o);

	/* 409 at another: the address, nothing more. */
	o = call(s, "POST", "/cluster/members",
		 "{\"id\":4,\"address\":\"127.0.0.1:7999\"}", &status, NULL);
	assert_int_equal(status, 409);
	assert_string_equal(jstr(o, "address"), "127.0.0.1:7004");
	assert_null(jstr(o, "cluster_id"));
	cJSON_Delete(o);

	o = call(s, "DELETE", "/cluster/members/9", NULL, &status, NULL);
	assert_int_equal(status, 404);
	cJSON_Delete(o);
	o = call(s, "DELETE", "/cluster/members/1", NULL, &status, NULL);
	assert_int_equal(status, 400);
	assert_string_equal(jstr(o, "code"), "bad_request");
	cJSON_Delete(o);

	o = call(s, "DELETE", "/cluster/members/4", NULL, &status, NULL);
	assert_int_equal(status, 200);
	assert_int_equal(s->node.last_id, 4);
	assert_int_equal((int)jnum(o, "id"), 4);
	cJSON_Delete(o);
	server_stop(s);
}

/* ---- the joining client ---- */

static void test_join_follows_421_and_retries_a_busy_leader(void **state)
{
	struct server *leader = server_start(), *follower = server_start();
	struct join_answer a;
	char *err = NULL;

	(void)state;
	follower->node.leader = 1;
	strcpy(follower->node.leader_addr, leader->addr);
	script(&follower->node, 3, KV_ENOTLEADER, KV_ENOTLEADER, KV_ENOTLEADER);
	script(&leader->node, 2, -EBUSY, KV_ENOQUORUM);
	assert_int_equal(cluster_join(follower->addr, NULL, 7, "127.0.0.1:7007",
				      10000, &a, &err),
			 0);
	assert_null(err);
	/* Each 503 starts over at the member it was given. */
	assert_int_equal(calls(&follower->node), 3);
	assert_int_equal(calls(&leader->node), 3);
	assert_int_equal(leader->node.last_id, 7);
	assert_string_equal(leader->node.last_addr, "127.0.0.1:7007");
	assert_string_equal(a.cluster_id, "c-test");
	server_stop(follower);
	server_stop(leader);
}

static void test_leader_requests_say_whether_they_were_sent_again(void **state)
{
	struct server *leader = server_start(), *follower = server_start();
	char *resp = NULL, *err = NULL;
	long status = 0;
	bool retried = true;

	(void)state;
	follower->node.leader = 1;
	strcpy(follower->node.leader_addr, leader->addr);
	/* Following a 421 is no retry: the follower applied nothing. */
	script(&follower->node, 1, KV_ENOTLEADER);
	script(&leader->node, 1, -ENOENT);
	assert_int_equal(cluster_leader_request(follower->addr, NULL, "DELETE",
						"/cluster/members/5", NULL,
						10000, &status, &resp, &retried,
						&err),
			 0);
	assert_int_equal(status, 404);
	assert_false(retried);
	free(resp);
	resp = NULL;

	/* After a 503 whose outcome is unknown, it is. */
	script(&follower->node, 2, KV_ENOTLEADER, KV_ENOTLEADER);
	script(&leader->node, 2, KV_ENOQUORUM, -ENOENT);
	assert_int_equal(cluster_leader_request(follower->addr, NULL, "DELETE",
						"/cluster/members/5", NULL,
						10000, &status, &resp, &retried,
						&err),
			 0);
	assert_int_equal(status, 404);
	assert_true(retried);
	free(resp);
	server_stop(follower);
	server_stop(leader);
}

static void test_join_is_idempotent_for_the_same_address(void **state)
{
	struct server *s = server_start();
	struct join_answer a;
	char *err = NULL;

	(void)state;
	strcpy(s->node.members, "{\"leader\":1,\"members\":[{\"id\":7,"
				"\"address\":\"127.0.0.1:7007\",\"role\":"
				"\"learner\"}]}");
	script(&s->node, 1, -EEXIST);
	assert_int_equal(
	    cluster_join(s->addr, NULL, 7, "127.0.0.1:7007", 10000, &a, &err),
	    0);
	assert_string_equal(a.cluster_id, "c-test");

	script(&s->node, 1, -EEXIST);
	assert_int_equal(
	    cluster_join(s->addr, NULL, 7, "127.0.0.1:7008", 10000, &a, &err),
	    -EEXIST);
	assert_non_null(err);
	assert_non_null(strstr(err, "127.0.0.1:7007"));
	free(err);
	server_stop(s);
}

static void test_join_reports_refusals_with_the_servers_reason(void **state)
{
	struct server *s = server_start();
	struct join_answer a;
	char *err = NULL;

	(void)state;
	script(&s->node, 1, -EINVAL);
	assert_int_equal(
	    cluster_join(s->addr, NULL, 7, "127.0.0.1:7007", 10000, &a, &err),
	    -EINVAL);
	assert_non_null(strstr(err, "400"));
	assert_non_null(strstr(err, "bad id or address"));
	free(err);
	err = NULL;

	s->node.raw_status = 201;
	s->node.raw_body = "{\"id\":7}";
	assert_int_equal(
	    cluster_join(s->addr, NULL, 7, "127.0.0.1:7007", 10000, &a, &err),
	    -EPROTO);
	assert_non_null(strstr(err, "cluster_id"));
	free(err);
	err = NULL;

	s->node.raw_body = "garbage";
	assert_int_equal(
	    cluster_join(s->addr, NULL, 7, "127.0.0.1:7007", 10000, &a, &err),
	    -EPROTO);
	free(err);
	server_stop(s);
}

static void
test_join_gives_up_at_its_deadline_with_the_last_reason(void **state)
{
	struct server *s = server_start();
	struct join_answer a;
	char *err = NULL, dead[32];

	(void)state;
	/* A leader that stays busy. */
	s->node.raw_status = 503;
	s->node.raw_body = "{\"error\":\"still busy\",\"code\":\"busy\"}";
	assert_int_equal(
	    cluster_join(s->addr, NULL, 7, "127.0.0.1:7007", 300, &a, &err),
	    -ETIMEDOUT);
	assert_non_null(strstr(err, "still busy"));
	free(err);
	err = NULL;

	/* A member nobody listens at any more. */
	snprintf(dead, sizeof(dead), "%s", s->addr);
	server_stop(s);
	assert_int_equal(
	    cluster_join(dead, NULL, 7, "127.0.0.1:7007", 300, &a, &err),
	    -ETIMEDOUT);
	assert_non_null(strstr(err, dead));
	free(err);
}

static void test_join_refuses_bad_arguments(void **state)
{
	struct join_answer a;
	char *err = NULL;

	(void)state;
	assert_int_equal(
	    cluster_join("nohost", NULL, 7, "127.0.0.1:7007", 100, &a, &err),
	    -EINVAL);
	assert_non_null(err);
	free(err);
	err = NULL;
	assert_int_equal(cluster_join("127.0.0.1:1", NULL, 0, "127.0.0.1:7007",
				      100, &a, &err),
			 -EINVAL);
	free(err);
	err = NULL;
	assert_int_equal(
	    cluster_join("127.0.0.1:1", NULL, 7, "bad addr:1", 100, &a, &err),
	    -EINVAL);
	free(err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_member_bodies_are_parsed_strictly),
	    cmocka_unit_test(test_member_ids_in_paths_are_decimal_integers),
	    cmocka_unit_test(test_membership_errors_map_to_one_status_each),
	    cmocka_unit_test(test_addresses_are_host_and_port),
	    cmocka_unit_test(test_get_lists_the_members_the_node_knows),
	    cmocka_unit_test(
		test_add_on_the_leader_is_201_with_what_a_joiner_needs),
	    cmocka_unit_test(test_bad_bodies_are_400_and_never_reach_the_node),
	    cmocka_unit_test(test_a_follower_answers_421_naming_the_leader),
	    cmocka_unit_test(test_change_errors_become_their_statuses),
	    cmocka_unit_test(test_join_follows_421_and_retries_a_busy_leader),
	    cmocka_unit_test(
		test_leader_requests_say_whether_they_were_sent_again),
	    cmocka_unit_test(test_join_is_idempotent_for_the_same_address),
	    cmocka_unit_test(
		test_join_reports_refusals_with_the_servers_reason),
	    cmocka_unit_test(
		test_join_gives_up_at_its_deadline_with_the_last_reason),
	    cmocka_unit_test(test_join_refuses_bad_arguments),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
