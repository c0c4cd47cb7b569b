/* http_cluster.c - the membership endpoints: /cluster/members.
 *
 * GET lists the members as this node knows them; POST {"id":N,
 * "address":"H:P"} adds a learner and DELETE /cluster/members/N removes a
 * member, both through the log on the leader (node_change_member). The
 * body is parsed strictly, so a typo is a 400 rather than a half-read
 * request. A follower answers a change 421 naming the leader and its
 * address, so clients (join.c, kvfsctl) retry there; the membership errors
 * map to statuses in http_cluster_status, everything else through
 * http_reply.c's one mapping. Routing is in http.c. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_int.h"
#include "join.h"

#define CLUSTER_ID_LIMIT 9007199254740991.0 /* 2^53 - 1 */

int http_cluster_parse_member(const char *body, size_t len, uint64_t *id,
			      char *addr, size_t cap, const char **why)
{
	cJSON *o = NULL, *it;
	const cJSON *jid = NULL, *jaddr = NULL;
	const char *end = NULL;
	int err = -EINVAL;

	*why = "the body must be a JSON object {\"id\":N,\"address\":"
	       "\"HOST:PORT\"}";
	if (!body || len == 0)
		return -EINVAL;
	o = cJSON_ParseWithLengthOpts(body, len, &end, false);
	if (!o) {
		*why = "the body is not valid JSON";
		return -EINVAL;
	}
	/* Only whitespace may follow the object. */
	while (end && (size_t)(end - body) < len &&
	       (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n'))
		end++;
	if (!end || (size_t)(end - body) != len) {
		*why = "trailing bytes after the JSON object";
		goto out_free;
	}
	if (!cJSON_IsObject(o))
		goto out_free;
	cJSON_ArrayForEach(it, o)
	{
		const cJSON **slot;
		if (strcmp(it->string, "id") == 0)
			slot = &jid;
		else if (strcmp(it->string, "address") == 0)
			slot = &jaddr;
		else {
			*why = "unknown field (only \"id\" and \"address\")";
			goto out_free;
		}
		if (*slot) {
			*why = "duplicate field";
			goto out_free;
		}
		*slot = it;
	}
	if (!jid || !cJSON_IsNumber(jid) || jid->valuedouble < 1.0 ||
	    jid->valuedouble > CLUSTER_ID_LIMIT ||
	    jid->valuedouble != (double)(uint64_t)jid->valuedouble) {
		*why = "\"id\" must be an integer from 1 to 9007199254740991";
		goto out_free;
	}
	if (!jaddr || !cJSON_IsString(jaddr) ||
	    !cluster_addr_valid(jaddr->valuestring) ||
	    strlen(jaddr->valuestring) >= cap) {
		*why = "\"address\" must be HOST:PORT (port 1-65535), shorter "
		       "than 64 bytes, letters, digits and .-_ or [IPv6]";
		goto out_free;
	}
	*id = (uint64_t)jid->valuedouble;
	memcpy(addr, jaddr->valuestring, strlen(jaddr->valuestring) + 1);
	*why = NULL;
	err = 0;
out_free:
	cJSON_Delete(o);
	return err;
}

int http_cluster_parse_id(const char *s, uint64_t *id)
{
	uint64_t v = 0;

	if (!s || !*s || strlen(s) > 16)
		return -EINVAL;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (v == 0 || v > 9007199254740991ull)
		return -EINVAL;
	*id = v;
	return 0;
}

void http_cluster_status(int err, unsigned *status, const char **code)
{
	switch (err) {
	case KV_ENOTLEADER:
		*status = 421; /* Misdirected Request: ask the leader */
		*code = "not_leader";
		return;
	case -EBUSY:
		*status = MHD_HTTP_SERVICE_UNAVAILABLE;
		*code = "busy";
		return;
	default:
		http_error_status(err, status, code);
		return;
	}
}

static const char *change_message(int err)
{
	switch (err) {
	case KV_ENOTLEADER:
		return "this node is not the leader";
	case -EBUSY:
		return "another membership change is under way; retry";
	case -EEXIST:
		return "the id is already a member";
	case -ENOENT:
		return "the id is not a member";
	case -EINVAL:
		return "bad id or address, or the last voter cannot be removed";
	case KV_ENOQUORUM:
		return "the change was not applied within the write timeout; "
		       "its outcome is unknown";
	default:
		return kv_strerror(err);
	}
}

/* Send a built object (consumed) with status. */
static enum MHD_Result reply_object(struct http_req *r, unsigned status,
				    cJSON *o)
{
	char *text = o ? cJSON_PrintUnformatted(o) : NULL;
	enum MHD_Result ret = MHD_NO;

	if (text)
		ret = http_reply_json(r, status, text, strlen(text));
	free(text);
	cJSON_Delete(o);
	return ret;
}

/* What a joiner needs: the cluster's id. Never the token: the joiner
 * proved it holds it. */
static bool add_join_info(struct http_req *r, cJSON *o)
{
	return cJSON_AddStringToObject(o, "cluster_id",
				       node_cluster_id(r->node)) != NULL;
}

/* The address id has in node_members_json, into addr (cap bytes); false
 * if it is not listed. */
static bool member_address(struct http_req *r, uint64_t id, char *addr,
			   size_t cap)
{
	char *text = NULL;
	cJSON *o, *m;
	bool found = false;

	if (node_members_json(r->node, &text) != 0)
		return false;
	o = cJSON_Parse(text);
	free(text);
	cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(o, "members"))
	{
		const cJSON *mid = cJSON_GetObjectItemCaseSensitive(m, "id");
		const cJSON *ma =
		    cJSON_GetObjectItemCaseSensitive(m, "address");
		if (cJSON_IsNumber(mid) && (uint64_t)mid->valuedouble == id &&
		    cJSON_IsString(ma) && strlen(ma->valuestring) < cap) {
			memcpy(addr, ma->valuestring,
			       strlen(ma->valuestring) + 1);
			found = true;
			break;
		}
	}
	cJSON_Delete(o);
	return found;
}

/* Answer a failed change: 421 with the leader, 503 when no leader is
 * known, 409 with the member's address (and, when it is the address the
 * request named, what a joiner needs: joins are idempotent), else the
 * mapped status. */
static enum MHD_Result change_failed(struct http_req *r, int err, uint64_t id,
				     const char *addr)
{
	char laddr[JOIN_ADDR_MAX + 1] = "";
	uint64_t leader = 0;
	unsigned status;
	const char *code;
	cJSON *o;

	if (err == KV_ENOTLEADER) {
		leader = node_leader(r->node, laddr, sizeof(laddr));
		if (leader == 0 || !laddr[0])
			return http_fail(r, MHD_HTTP_SERVICE_UNAVAILABLE,
					 "no_leader",
					 "no leader is known yet; retry");
	}
	http_cluster_status(err, &status, &code);
	o = cJSON_CreateObject();
	if (!o || !cJSON_AddStringToObject(o, "error", change_message(err)) ||
	    !cJSON_AddStringToObject(o, "code", code))
		goto err_object;
	if (err == KV_ENOTLEADER &&
	    (!cJSON_AddNumberToObject(o, "leader", (double)leader) ||
	     !cJSON_AddStringToObject(o, "leader_address", laddr)))
		goto err_object;
	if (err == -EEXIST) {
		char have[JOIN_ADDR_MAX + 1];
		if (!cJSON_AddNumberToObject(o, "id", (double)id))
			goto err_object;
		if (member_address(r, id, have, sizeof(have))) {
			if (!cJSON_AddStringToObject(o, "address", have))
				goto err_object;
			if (addr && strcmp(have, addr) == 0 &&
			    !add_join_info(r, o))
				goto err_object;
		}
	}
	return reply_object(r, status, o);
err_object:
	cJSON_Delete(o);
	return MHD_NO;
}

static enum MHD_Result members_get(struct http_req *r)
{
	char *text = NULL;
	int err = node_members_json(r->node, &text);
	enum MHD_Result ret;

	if (err != 0)
		return http_fail_err(r, err, NULL);
	ret = http_reply_json(r, MHD_HTTP_OK, text, strlen(text));
	free(text);
	return ret;
}

static enum MHD_Result members_add(struct http_req *r)
{
	char addr[JOIN_ADDR_MAX + 1];
	const char *why = NULL;
	uint64_t id = 0;
	cJSON *o;
	int err;

	if (http_cluster_parse_member((const char *)r->body, r->len, &id, addr,
				      sizeof(addr), &why) != 0)
		return http_fail(r, MHD_HTTP_BAD_REQUEST, "bad_request", why);
	err = node_change_member(r->node, NODE_MEMBER_ADD, id, addr);
	if (err != 0)
		return change_failed(r, err, id, addr);
	o = cJSON_CreateObject();
	if (!o || !cJSON_AddNumberToObject(o, "id", (double)id) ||
	    !cJSON_AddStringToObject(o, "address", addr) ||
	    !add_join_info(r, o)) {
		cJSON_Delete(o);
		return MHD_NO;
	}
	return reply_object(r, MHD_HTTP_CREATED, o);
}

enum MHD_Result http_cluster_members(struct http_req *r)
{
	if (r->method == HTTP_POST)
		return members_add(r);
	return members_get(r);
}

enum MHD_Result http_cluster_member(struct http_req *r)
{
	uint64_t id = 0;
	char body[96];
	int err, len;

	if (http_cluster_parse_id(r->rest, &id) != 0)
		return http_fail(r, MHD_HTTP_BAD_REQUEST, "bad_request",
				 "the path must be /cluster/members/ID, ID an "
				 "integer from 1 to 9007199254740991");
	err = node_change_member(r->node, NODE_MEMBER_REMOVE, id, NULL);
	if (err != 0)
		return change_failed(r, err, id, NULL);
	len = snprintf(body, sizeof(body),
		       "{\"id\":%" PRIu64 ",\"removed\":true}", id);
	return http_reply_json(r, MHD_HTTP_OK, body, (size_t)len);
}
