/* http_lease.c - leases: POST /lease (grant), GET /lease (list),
 * GET /lease/ID, POST /lease/ID/keepalive, DELETE /lease/ID (revoke).
 *
 * Grants, keepalives and revokes are writes like a PUT: proposed with
 * node_propose_async (forwarded from a follower), answered once applied
 * on this node. Reads pass the read barrier (linearizable unless
 * ?consistency=local) and read the lease table (store_leases); the
 * remaining TTL is this node's count (node_lease_remaining_ms: the
 * leader's decides, a follower's is an estimate). A key goes on a lease
 * with PUT /kv/KEY?lease=ID or ?ttl=N (http_kv.c). What each guarantees:
 * docs/http-api.md, "Leases". */
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "http_int.h"

int http_lease_parse_id(const char *s, size_t len, uint64_t *id)
{
	uint64_t v = 0;

	if (len == 0 || len > 16 || s[0] == '0')
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > KV_JSON_INT_MAX)
		return -EINVAL;
	*id = v;
	return 0;
}

int http_lease_parse_ttl(const char *s, size_t len, uint32_t *ttl)
{
	uint64_t v = 0;

	if (len == 0 || len > 10)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v < 1 || v > KV_LEASE_TTL_MAX)
		return -EINVAL;
	*ttl = (uint32_t)v;
	return 0;
}

#define TTL_BOUNDS                                                             \
	"ttl is a whole number of seconds from 1 to 2592000 (30 days)"

/* The ID of /lease/ID[/keepalive] into *id; *keepalive says which. */
static bool parse_path(struct http_req *r, uint64_t *id, bool *keepalive)
{
	const char *slash = strchr(r->rest, '/');
	size_t n = slash ? (size_t)(slash - r->rest) : strlen(r->rest);

	*keepalive = slash != NULL;
	if (slash && strcmp(slash, "/keepalive") != 0) {
		http_fail(r, MHD_HTTP_NOT_FOUND, "not_found",
			  "no such endpoint: /lease/ID or /lease/ID/keepalive");
		return false;
	}
	if (http_lease_parse_id(r->rest, n, id) != 0) {
		http_fail(r, MHD_HTTP_BAD_REQUEST, "bad_request",
			  "a lease id is a whole number from 1 to 2^53 - 1");
		return false;
	}
	unsigned want =
	    *keepalive ? HTTP_POST : HTTP_GET | HTTP_HEAD | HTTP_DELETE;
	if (!(r->method & want)) {
		r->allow = want;
		http_fail(r, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed",
			  *keepalive ? "a keepalive is a POST"
				     : "a lease is read (GET) or revoked "
				       "(DELETE)");
		return false;
	}
	return true;
}

bool http_lease_check(struct http_req *r)
{
	uint64_t id;
	bool keepalive;
	return parse_path(r, &id, &keepalive);
}

/* The outcome of a write proposed earlier; false after answering an
 * error. */
static bool write_ok(struct http_req *r)
{
	if (r->async_ret < 0) {
		http_fail_err(r, r->async_ret, NULL);
		return false;
	}
	if (r->async_res.err < 0) {
		http_fail_err(r, r->async_res.err,
			      r->async_res.err == -ENOENT ? "no such lease"
							  : NULL);
		return false;
	}
	return true;
}

static enum MHD_Result propose(struct http_req *r, struct kv_cmd *cmd)
{
	if (!http_suspend(r))
		return http_fail_err(r, KV_ESHUTDOWN, NULL);
	http_started(r, node_propose_async(r->node, cmd, http_done, r));
	return MHD_YES;
}

/* POST /lease {"ttl":N} -> {"id":ID,"ttl":N} */
static enum MHD_Result grant(struct http_req *r)
{
	if (!r->async_done) {
		cJSON *o = kv_json_parse((const char *)r->body, r->len);
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "ttl");
		uint64_t ttl = 0;
		bool ok = cJSON_IsObject(o) && cJSON_GetArraySize(o) == 1 &&
			  kv_json_uint(t, KV_LEASE_TTL_MAX, &ttl) == 0 &&
			  ttl >= 1;
		cJSON_Delete(o);
		if (!ok)
			return http_fail(
			    r, MHD_HTTP_BAD_REQUEST, "bad_request",
			    "the body is {\"ttl\":N}: " TTL_BOUNDS);
		struct kv_cmd cmd = {.op = KV_OP_LEASE_GRANT,
				     .ttl = (uint32_t)ttl};
		return propose(r, &cmd);
	}
	if (!write_ok(r))
		return r->answered ? MHD_YES : MHD_NO;
	char body[96];
	int n = snprintf(body, sizeof body,
			 "{\"id\":%" PRIu64 ",\"ttl\":%" PRIu64 "}",
			 r->async_res.rev, r->async_res.count);
	return http_reply_json(r, MHD_HTTP_OK, body, (size_t)n);
}

static enum MHD_Result keepalive_or_revoke(struct http_req *r, uint64_t id,
					   bool keepalive)
{
	if (!r->async_done) {
		struct kv_cmd cmd = {.op = keepalive ? KV_OP_LEASE_KEEPALIVE
						     : KV_OP_LEASE_REVOKE,
				     .lease = id,
				     .time_ns = keepalive ? 0 : kv_wall_ns()};
		return propose(r, &cmd);
	}
	if (!write_ok(r))
		return r->answered ? MHD_YES : MHD_NO;
	char body[128];
	int n = keepalive ? snprintf(body, sizeof body,
				     "{\"id\":%" PRIu64 ",\"ttl\":%" PRIu64
				     ",\"rev\":%" PRIu64 "}",
				     id, r->async_res.count, r->async_res.rev)
			  : snprintf(body, sizeof body, "{\"rev\":%" PRIu64 "}",
				     r->async_res.rev);
	return http_reply_json(r, MHD_HTTP_OK, body, (size_t)n);
}

/* The read barrier of a GET: true once it passed (read now); false when
 * suspended or answered (*ret says what to return). */
static bool barrier(struct http_req *r, enum MHD_Result *ret)
{
	*ret = MHD_YES;
	if (r->async_done) {
		if (r->async_ret == 0)
			return true;
		*ret = http_fail_err(r, r->async_ret, NULL);
		return false;
	}
	bool bad;
	char *c = http_query(r, "consistency", NULL, &bad);
	bool local = c && strcmp(c, "local") == 0;
	if (bad || (c && !local && strcmp(c, "linearizable") != 0)) {
		free(c);
		*ret = http_fail(r, MHD_HTTP_BAD_REQUEST, "bad_request",
				 "consistency is local or linearizable");
		return false;
	}
	free(c);
	if (local || node_read_now(r->node))
		return true;
	if (!http_suspend(r)) {
		*ret = http_fail_err(r, KV_ESHUTDOWN, NULL);
		return false;
	}
	http_started(r, node_read_barrier_async(r->node, http_done, r));
	return false;
}

static void add_lease(struct http_req *r, cJSON *o, const struct store_lease *l)
{
	char buf[24];
	int64_t ms = node_lease_remaining_ms(r->node, l);
	snprintf(buf, sizeof buf, "%" PRIu64, l->id);
	cJSON_AddItemToObject(o, "id", cJSON_CreateRaw(buf));
	cJSON_AddNumberToObject(o, "ttl", (double)l->ttl);
	/* whole seconds, rounded up: 0 only once it has run out */
	cJSON_AddNumberToObject(o, "remaining", (double)((ms + 999) / 1000));
	cJSON_AddNumberToObject(o, "remaining_ms", (double)ms);
	snprintf(buf, sizeof buf, "%" PRIu64, l->rev);
	cJSON_AddItemToObject(o, "rev", cJSON_CreateRaw(buf));
}

static enum MHD_Result reply_tree(struct http_req *r, cJSON *o)
{
	char *text = o ? cJSON_PrintUnformatted(o) : NULL;
	cJSON_Delete(o);
	if (!text)
		return MHD_NO;
	enum MHD_Result ret =
	    http_reply_json(r, MHD_HTTP_OK, text, strlen(text));
	free(text);
	return ret;
}

/* GET /lease/ID: its TTL, what is left of it, its keys. */
static enum MHD_Result get_one(struct http_req *r, uint64_t id)
{
	enum MHD_Result ret;
	if (!barrier(r, &ret))
		return ret;
	struct store_lease l;
	struct kv_list keys;
	int rc = store_lease_get(node_store(r->node), id, &l, &keys);
	if (rc < 0)
		return http_fail_err(r, rc,
				     rc == -ENOENT ? "no such lease" : NULL);
	cJSON *o = cJSON_CreateObject(), *ks;
	if (o) {
		add_lease(r, o, &l);
		if ((ks = cJSON_AddArrayToObject(o, "keys")) != NULL)
			for (size_t i = 0; i < keys.n; i++)
				cJSON_AddItemToArray(
				    ks, cJSON_CreateString(keys.ents[i].name));
	}
	kv_list_clear(&keys);
	return reply_tree(r, o);
}

/* GET /lease: every lease, with how many keys each has. */
static enum MHD_Result list(struct http_req *r)
{
	enum MHD_Result ret;
	if (!barrier(r, &ret))
		return ret;
	struct store_lease *v;
	size_t n;
	int rc = store_leases(node_store(r->node), &v, &n);
	if (rc < 0)
		return http_fail_err(r, rc, NULL);
	cJSON *o = cJSON_CreateObject();
	cJSON *a = o ? cJSON_AddArrayToObject(o, "leases") : NULL;
	for (size_t i = 0; a && i < n; i++) {
		cJSON *e = cJSON_CreateObject();
		if (!e)
			break;
		cJSON_AddItemToArray(a, e);
		add_lease(r, e, &v[i]);
		cJSON_AddNumberToObject(e, "keys", (double)v[i].nkeys);
	}
	free(v);
	return reply_tree(r, o);
}

enum MHD_Result http_lease_handle(struct http_req *r)
{
	if (strcmp(r->route->prefix, "/lease") == 0)
		return r->method == HTTP_POST ? grant(r) : list(r);
	uint64_t id;
	bool keepalive;
	if (!parse_path(r, &id, &keepalive))
		return r->answered ? MHD_YES : MHD_NO;
	if (keepalive || r->method == HTTP_DELETE)
		return keepalive_or_revoke(r, id, keepalive);
	return get_one(r, id);
}
