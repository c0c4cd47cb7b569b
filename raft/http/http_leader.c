/* http_leader.c - POST /cluster/leader: hand leadership to another member.
 *
 * The target is named by ?id=N or a body {"id":N}; neither (or {}) means the
 * voter with the longest log. The leader does it (node_transfer_leader: writes
 * wait meanwhile, §3.10 of Ongaro's dissertation) and answers once the new
 * leader is known; a follower answers 421 naming the leader, as the
 * membership endpoints do (kvfsctl follows it), and every refusal has a
 * code of its own (docs/http-api.md). Offloaded: the call blocks for up to
 * an election timeout, or the write timeout while no leader is known. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_int.h"

/* The target from the query or the body: 0 with *id (0: any voter), or
 * -EINVAL with *why. */
static int leader_target(struct http_req *r, uint64_t *id, const char **why)
{
	size_t len = 0;
	bool bad = false;
	char *q = http_query(r, "id", &len, &bad);
	int err = -EINVAL;

	*id = 0;
	*why = "the target must be ?id=N or a body {\"id\":N}, N an integer "
	       "from 1 to 9007199254740991 (or neither: the most caught-up "
	       "voter)";
	if (bad)
		goto out;
	if (q) {
		if (r->len != 0) {
			*why =
			    "name the target once: ?id=N or a body, not both";
			goto out;
		}
		err = http_cluster_parse_id(q, id);
		goto out;
	}
	if (r->len == 0)
		return 0;
	cJSON *o = cJSON_ParseWithLength((const char *)r->body, r->len);
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, "id");
	if (cJSON_IsObject(o) && cJSON_GetArraySize(o) == 0) {
		err = 0; /* {}: any voter */
	} else if (cJSON_IsObject(o) && cJSON_GetArraySize(o) == 1 &&
		   cJSON_IsNumber(j) && j->valuedouble >= 1.0 &&
		   j->valuedouble <= 9007199254740991.0 &&
		   j->valuedouble == (double)(uint64_t)j->valuedouble) {
		*id = (uint64_t)j->valuedouble;
		err = 0;
	}
	cJSON_Delete(o);
out:
	free(q);
	return err;
}

/* A refusal: 421 with the leader (503 when none is known), else the
 * status and code of err. */
static enum MHD_Result leader_failed(struct http_req *r, int err, uint64_t id)
{
	char msg[200], laddr[KV_ADDR_MAX + 1] = "";
	uint64_t leader;

	switch (err) {
	case KV_ENOTLEADER:
		leader = node_leader(r->node, laddr, sizeof(laddr));
		if (leader == 0 || !laddr[0])
			return http_fail(r, MHD_HTTP_SERVICE_UNAVAILABLE,
					 "no_leader",
					 "no leader is known: there is no "
					 "quorum, or an election is under "
					 "way; retry");
		cJSON *o = cJSON_CreateObject();
		snprintf(msg, sizeof(msg),
			 "this node is not the leader: node %" PRIu64 " is",
			 leader);
		if (!o || !cJSON_AddStringToObject(o, "error", msg) ||
		    !cJSON_AddStringToObject(o, "code", "not_leader") ||
		    !cJSON_AddNumberToObject(o, "leader", (double)leader) ||
		    !cJSON_AddStringToObject(o, "leader_address", laddr)) {
			cJSON_Delete(o);
			return MHD_NO;
		}
		char *text = cJSON_PrintUnformatted(o);
		cJSON_Delete(o);
		if (!text)
			return MHD_NO;
		enum MHD_Result ret =
		    http_reply_json(r, 421, text, strlen(text));
		free(text);
		return ret;
	case -ENOENT:
		snprintf(msg, sizeof(msg),
			 "node %" PRIu64 " is not a member of the cluster", id);
		return http_fail(r, MHD_HTTP_NOT_FOUND, "unknown_member", msg);
	case -EINVAL:
		if (id)
			snprintf(msg, sizeof(msg),
				 "node %" PRIu64 " is a learner: only a voter "
				 "can lead",
				 id);
		else
			snprintf(msg, sizeof(msg),
				 "there is no other voter to hand leadership "
				 "to");
		return http_fail(r, MHD_HTTP_CONFLICT, "not_voter", msg);
	case -EBUSY:
		return http_fail(r, MHD_HTTP_SERVICE_UNAVAILABLE, "busy",
				 "a leadership transfer is under way; retry");
	case -ETIMEDOUT:
		snprintf(msg, sizeof(msg),
			 "the target did not take over within an election "
			 "timeout (is it up and reachable?); this node still "
			 "leads");
		return http_fail(r, MHD_HTTP_SERVICE_UNAVAILABLE,
				 "transfer_timeout", msg);
	case KV_ENOQUORUM:
		return http_fail(r, MHD_HTTP_SERVICE_UNAVAILABLE, "no_quorum",
				 "leadership left this node, but no new leader "
				 "was known within the write timeout");
	default:
		return http_fail_err(r, err, NULL);
	}
}

enum MHD_Result http_cluster_leader(struct http_req *r)
{
	const char *why = NULL;
	uint64_t id = 0, leader = 0, t0 = kv_mono_ms();
	char body[256], laddr[KV_ADDR_MAX + 1] = "";

	if (leader_target(r, &id, &why) != 0)
		return http_fail(r, MHD_HTTP_BAD_REQUEST, "bad_request", why);
	int err =
	    node_transfer_leader(r->node, id, 0, &leader, laddr, sizeof(laddr));
	if (err != 0)
		return leader_failed(r, err, id);
	int len =
	    snprintf(body, sizeof(body),
		     "{\"leader\":%" PRIu64 ",\"previous\":%" PRIu64
		     ",\"leader_address\":\"%s\",\"took_ms\":%" PRIu64 "}",
		     leader, node_id(r->node), laddr, kv_mono_ms() - t0);
	return http_reply_json(r, MHD_HTTP_OK, body, (size_t)len);
}
