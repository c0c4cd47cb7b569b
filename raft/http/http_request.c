/* http_request.c - the life of one request: routing, then the handler.
 *
 * A request is routed by the table below as soon as its headers are in,
 * so bad keys, unknown paths and oversized bodies are refused before any
 * body is read, and so is a request its sender may not make
 * (http_auth.c); its body is then taken in (http_body.c) and the route's
 * handler runs once the request is complete, on the listener's thread or,
 * for the few that block, on a thread of its own (http_call.c); a stream (a
 * peer's /raft/stream) is handed over piece by piece instead. New
 * endpoints are one more line in the table and a handler (http_int.h).
 * Responses and the error mapping are in http_reply.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "http_int.h"
#include "peer.h"
#include "snapxfer.h"

static const struct http_route routes[] = {
    {"/kv/", false, HTTP_GET | HTTP_HEAD | HTTP_PUT | HTTP_POST | HTTP_DELETE,
     HTTP_PUT | HTTP_POST, HTTP_BODY_RAW, KV_MAX_VALUE, http_kv_check,
     http_kv_handle, NULL, false, HTTP_ACCESS_CLIENT,
     "consistency after limit recursive watch since values wait add lease "
     "ttl"},
    /* leases (http_lease.c) */
    {"/lease", true, HTTP_GET | HTTP_HEAD | HTTP_POST, HTTP_POST, HTTP_BODY_RAW,
     256, NULL, http_lease_handle, NULL, false, HTTP_ACCESS_CLIENT,
     "consistency"},
    {"/lease/", false, HTTP_GET | HTTP_HEAD | HTTP_POST | HTTP_DELETE, 0,
     HTTP_BODY_NONE, 0, http_lease_check, http_lease_handle, NULL, false,
     HTTP_ACCESS_CLIENT, "consistency"},
    /* offloaded: it asks the store's owner thread, which may be busy */
    {"/status", true, HTTP_GET | HTTP_HEAD, 0, HTTP_BODY_NONE, 0, NULL,
     http_status_handle, NULL, true, HTTP_ACCESS_STATUS, "pretty"},
    /* for service managers and load balancers (http_health.c) */
    {"/health", true, HTTP_GET | HTTP_HEAD, 0, HTTP_BODY_NONE, 0, NULL,
     http_health_handle, NULL, false, HTTP_ACCESS_STATUS, ""},
    {"/readyz", true, HTTP_GET | HTTP_HEAD, 0, HTTP_BODY_NONE, 0, NULL,
     http_readyz_handle, NULL, false, HTTP_ACCESS_STATUS, ""},
    /* the status page and what it polls (http_page.c); the second
     * asks every member, so it is offloaded */
    {"/", true, HTTP_GET | HTTP_HEAD, 0, HTTP_BODY_NONE, 0, NULL,
     http_page_handle, NULL, false, HTTP_ACCESS_STATUS, ""},
    {"/status/cluster", true, HTTP_GET | HTTP_HEAD, 0, HTTP_BODY_NONE, 0, NULL,
     http_status_cluster, NULL, true, HTTP_ACCESS_STATUS, ""},
    /* a backup (http_backup.c): waits for the store, so offloaded */
    {"/snapshot", true, HTTP_GET | HTTP_HEAD, 0, HTTP_BODY_NONE, 0, NULL,
     http_snapshot_handle, NULL, true, HTTP_ACCESS_ADMIN, ""},
    /* Prometheus (http_metrics.c); offloaded as /status is */
    {"/metrics", true, HTTP_GET | HTTP_HEAD, 0, HTTP_BODY_NONE, 0, NULL,
     http_metrics_handle, NULL, true, HTTP_ACCESS_STATUS, ""},
    /* the listener's own counters (http_gate.c) */
    {"/status/http", true, HTTP_GET | HTTP_HEAD, 0, HTTP_BODY_NONE, 0, NULL,
     http_gate_status, NULL, false, HTTP_ACCESS_STATUS, ""},
    /* mmapd's endpoints, kept for its users. */
    {"/set/", false, HTTP_POST | HTTP_PUT, HTTP_POST | HTTP_PUT, HTTP_BODY_FORM,
     KV_MAX_VALUE, http_mmapd_check, http_mmapd_set, NULL, false,
     HTTP_ACCESS_CLIENT, NULL},
    {"/get/", false, HTTP_GET | HTTP_HEAD, 0, HTTP_BODY_NONE, 0,
     http_mmapd_check, http_mmapd_get, NULL, false, HTTP_ACCESS_CLIENT, NULL},
    /* mem-db's word counter (http_words.c), with its spelling and the
     * right one */
    {"/words/register", true, HTTP_POST | HTTP_PUT, HTTP_POST | HTTP_PUT,
     HTTP_BODY_RAW, HTTP_WORDS_BODY, http_words_check, http_words_register,
     NULL, false, HTTP_ACCESS_CLIENT, ""},
    {"/words/occurences", true, HTTP_GET | HTTP_HEAD, 0, HTTP_BODY_NONE, 0,
     http_words_check, http_words_occurences, NULL, false, HTTP_ACCESS_CLIENT,
     "terms consistency"},
    {"/words/occurrences", true, HTTP_GET | HTTP_HEAD, 0, HTTP_BODY_NONE, 0,
     http_words_check, http_words_occurences, NULL, false, HTTP_ACCESS_CLIENT,
     "terms consistency"},
    /* transactions (http_txn.c): the body is JSON, values base64 or
     * escaped, so up to 3 x 16 MiB */
    {"/txn", true, HTTP_POST, HTTP_POST, HTTP_BODY_RAW, HTTP_TXN_BODY, NULL,
     http_txn_handle, NULL, false, HTTP_ACCESS_CLIENT, ""},
    /* peers (http_peer.c); max_body of a stream is one frame's payload */
    {PEER_STREAM_PATH, true, HTTP_POST, HTTP_POST, HTTP_BODY_STREAM,
     PEER_MAX_BODY, http_peer_stream_check, http_peer_stream_end,
     http_peer_stream_data, false, HTTP_ACCESS_PEER, NULL},
    {PEER_PATH, true, HTTP_POST, HTTP_POST, HTTP_BODY_RAW, PEER_MAX_BODY,
     http_peer_check, http_peer_message, NULL, false, HTTP_ACCESS_PEER, NULL},
    {"/raft/snapshot", true, HTTP_POST, HTTP_POST, HTTP_BODY_RAW,
     SNAPXFER_MAX_CHUNK, http_peer_check, http_peer_snapshot, NULL, true,
     HTTP_ACCESS_PEER, NULL},
    /* membership (http_cluster.c) */
    {"/cluster/members", true, HTTP_GET | HTTP_POST, HTTP_POST, HTTP_BODY_RAW,
     1024, NULL, http_cluster_members, NULL, true, HTTP_ACCESS_MEMBERS, ""},
    {"/cluster/members/", false, HTTP_DELETE, 0, HTTP_BODY_NONE, 0, NULL,
     http_cluster_member, NULL, true, HTTP_ACCESS_MEMBERS, ""},
    /* leadership transfer (http_leader.c): waits for the new leader */
    {"/cluster/leader", true, HTTP_POST, HTTP_POST, HTTP_BODY_RAW, 256, NULL,
     http_cluster_leader, NULL, true, HTTP_ACCESS_ADMIN, "id"},
};

static unsigned method_bit(const char *m)
{
	static const struct {
		const char *name;
		unsigned bit;
	} methods[] = {
	    {"GET", HTTP_GET},	 {"HEAD", HTTP_HEAD},	  {"PUT", HTTP_PUT},
	    {"POST", HTTP_POST}, {"DELETE", HTTP_DELETE},
	};
	for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
		if (strcmp(m, methods[i].name) == 0)
			return methods[i].bit;
	return HTTP_OTHER;
}

static const struct http_route *route_find(const char *path)
{
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
		const struct http_route *rt = &routes[i];
		size_t n = strlen(rt->prefix);
		if (rt->exact ? strcmp(path, rt->prefix) == 0
			      : strncmp(path, rt->prefix, n) == 0)
			return rt;
	}
	return NULL;
}

/* The first query parameter the route does not take, if any. */
struct param_scan {
	struct http_req *r; /* its table of the arguments */
	const char *allowed;
	char bad[64];
};

static enum MHD_Result param_seen(void *cls, enum MHD_ValueKind kind,
				  const char *key, const char *value)
{
	struct param_scan *ps = cls;
	struct http_req *r = ps->r;
	(void)kind;
	size_t n = strlen(key);
	for (const char *a = ps->allowed; *a;) {
		size_t m = strcspn(a, " ");
		if (m == n && strncmp(a, key, n) == 0) {
			if (r->nq < HTTP_QUERY_KEPT) {
				r->qkey[r->nq] = key;
				r->qval[r->nq] = value;
			}
			r->nq++;
			return MHD_YES;
		}
		a += m;
		a += strspn(a, " ");
	}
	snprintf(ps->bad, sizeof ps->bad, "%s", key);
	return MHD_NO;
}

static enum MHD_Result request_begin(struct http_req *r, const char *url,
				     const char *method)
{
	r->method = method_bit(method);
	r->path = url;
	r->route = route_find(url);
	if (!r->route)
		return http_fail(r, MHD_HTTP_NOT_FOUND, "not_found",
				 "no such endpoint");
	r->allow = r->route->methods;
	r->rest = url + strlen(r->route->prefix);
	if (!(r->method & r->route->methods))
		return http_fail(r, MHD_HTTP_METHOD_NOT_ALLOWED,
				 "method_not_allowed",
				 "method not allowed here");
	if (r->route->params) {
		struct param_scan ps = {.r = r, .allowed = r->route->params};
		MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND,
					  param_seen, &ps);
		r->q_kept = r->nq <= HTTP_QUERY_KEPT;
		if (ps.bad[0]) {
			char msg[128];
			snprintf(msg, sizeof msg, "unknown query parameter: %s",
				 ps.bad);
			return http_fail(r, MHD_HTTP_BAD_REQUEST, "bad_request",
					 msg);
		}
	}
	/* who may, before anything of the request is looked at */
	if (!http_auth_check(r))
		return r->answered ? MHD_YES : MHD_NO;
	if (r->route->check && !r->route->check(r))
		return r->answered ? MHD_YES : MHD_NO;
	if (!http_auth_key_check(r))
		return r->answered ? MHD_YES : MHD_NO;
	if ((r->method & r->route->body_methods) && !http_body_begin(r))
		return r->answered ? MHD_YES : MHD_NO;
	return MHD_YES;
}

enum MHD_Result http_on_request(void *cls, struct MHD_Connection *conn,
				const char *url, const char *method,
				const char *version, const char *upload_data,
				size_t *upload_data_size, void **con_cls)
{
	struct http_server *h = cls;
	struct http_req *r = *con_cls;

	(void)version;
	if (!r) {
		r = calloc(1, sizeof *r);
		if (!r)
			return MHD_NO;
		r->http = h;
		r->node = h->node;
		r->conn = conn;
		r->t0_ns = kv_mono_ns();
		*con_cls = r;
		return request_begin(r, url, method);
	}
	if (r->held) {
		/* taken up again after http_suspend */
		http_release_hold(r);
		if (r->route->offload) {
			/* its handler ran on its own thread */
			if (r->drop || !r->reply)
				return MHD_NO;
			struct MHD_Response *resp = r->reply;
			r->reply = NULL;
			enum MHD_Result ret =
			    MHD_queue_response(conn, r->reply_status, resp);
			MHD_destroy_response(resp);
			return ret;
		}
	}
	if (r->answered) {
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (*upload_data_size) {
		enum MHD_Result ret =
		    http_body_piece(r, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return ret;
	}
	/* The whole request is in. */
	enum MHD_Result refused;
	if (http_body_refused(r, &refused))
		return refused;
	http_body_done(r);
	if (r->route->offload)
		return http_offload(r);
	return r->route->handle(r);
}

void http_on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
		       enum MHD_RequestTerminationCode toe)
{
	struct http_req *r = *con_cls;

	(void)cls;
	(void)conn;
	(void)toe;
	if (!r)
		return;
	http_metrics_done(r);
	http_release_hold(r);
	if (r->reply)
		MHD_destroy_response(r->reply);
	http_body_done(r);
	if (r->ctx_free)
		r->ctx_free(r->ctx);
	http_body_drop(r);
	if (r->key != r->key_buf)
		free(r->key);
	free(r->prefix);
	free(r);
	*con_cls = NULL;
}
