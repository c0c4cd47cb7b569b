/* http_page.c - the status page: GET / serves one self-contained HTML
 * page (raft/http/page/status.html, built into the binary; no external
 * resource), and GET /status/cluster the JSON it polls every second.
 *
 * /status/cluster is this node's member list, each member with its own
 * /status asked by this node (with the cluster token and, over TLS, the
 * node's certificate; 800 ms each, one after another) or the reason it
 * gave none. The page compares what they say: roles, indexes, lag, and
 * whether the state hashes of members at the same applied index agree.
 * Both need what /status needs. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_int.h"
#include "join.h"
#include "peer.h"

#define MEMBER_TIMEOUT_MS 800

extern const unsigned char http_status_page[];
extern const size_t http_status_page_len;

enum MHD_Result http_page_handle(struct http_req *r)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(
	    http_status_page_len, (void *)http_status_page,
	    MHD_RESPMEM_PERSISTENT);
	if (!resp)
		return http_fail_err(r, -ENOMEM, NULL);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				"text/html; charset=utf-8");
	/* the page runs its own script only and loads nothing else */
	MHD_add_response_header(resp, "Content-Security-Policy",
				"default-src 'none'; script-src "
				"'unsafe-inline'; style-src 'unsafe-inline'; "
				"connect-src 'self'; img-src 'self'");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL,
				"no-store");
	return http_queue(r, MHD_HTTP_OK, resp);
}

/* m's /status, asked of its address, into m as "status" (or "error"). */
static void ask_member(struct http_req *r, cJSON *m, const char *token)
{
	const cJSON *addr = cJSON_GetObjectItemCaseSensitive(m, "address");
	if (!cJSON_IsString(addr))
		return;
	struct cluster_auth auth = {.tls = r->http->tls, .token = token};
	long status = 0;
	char *resp = NULL, *err = NULL;
	int rc =
	    cluster_http(addr->valuestring, &auth, "GET", "/status", NULL, 0,
			 MEMBER_TIMEOUT_MS, &status, &resp, NULL, NULL, &err);
	cJSON *st = rc == 0 && status == 200 ? cJSON_Parse(resp) : NULL;
	if (st) {
		cJSON_AddItemToObject(m, "status", st);
	} else {
		char why[200];
		if (rc != 0)
			snprintf(why, sizeof why, "%s",
				 err ? err : kv_strerror(rc));
		else
			snprintf(why, sizeof why, "HTTP %ld", status);
		cJSON_AddStringToObject(m, "error", why);
	}
	free(resp);
	free(err);
}

enum MHD_Result http_status_cluster(struct http_req *r)
{
	char *json = NULL;
	int rc = node_members_json(r->node, &json);
	if (rc < 0)
		return http_fail_err(r, rc, NULL);
	cJSON *doc = cJSON_Parse(json);
	free(json);
	cJSON *members = cJSON_GetObjectItemCaseSensitive(doc, "members");
	if (!cJSON_IsArray(members)) {
		cJSON_Delete(doc);
		return http_fail_err(r, -ENOMEM, NULL);
	}
	char token[PEER_ID_MAX + 1];
	node_token_copy(r->node, token);
	cJSON *m;
	cJSON_ArrayForEach(m, members) ask_member(r, m, token);
	explicit_bzero(token, sizeof token);
	cJSON_AddNumberToObject(doc, "self", (double)node_id(r->node));
	char *out = cJSON_PrintUnformatted(doc);
	cJSON_Delete(doc);
	if (!out)
		return http_fail_err(r, -ENOMEM, NULL);
	enum MHD_Result ret = http_reply_json(r, MHD_HTTP_OK, out, strlen(out));
	free(out);
	return ret;
}
