/* http_metrics.c - GET /metrics in the Prometheus text format, and what
 * the listener counts for it: requests by endpoint class and status
 * code, and their latency.
 *
 * A scrape renders three kinds of figure: the registry of counters and
 * histograms every module bumps lock-free (store/kv/metrics.h); the
 * node's states, read from the same snapshot /status renders (term, role,
 * indexes, sizes, each peer's connection and lag); and the listener's
 * gate counters. Names follow Prometheus's conventions: a kvfs_ prefix,
 * base units (seconds, bytes), _total on counters. docs/http-api.md
 * lists them. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_gate.h"
#include "http_int.h"
#include "metrics.h"
#include "peer.h"

enum {
	HC_KV_READ,
	HC_KV_WRITE,
	HC_STATUS,
	HC_CLUSTER,
	HC_PEER,
	HC_MMAPD,
	HC_OTHER,
	HC_N
};
static const char *const class_names[HC_N] = {
    "kv_read", "kv_write", "status", "cluster", "peer", "mmapd", "other"};
/* The codes the API answers with; anything else counts as "other". */
static const unsigned codes[] = {200, 201, 204, 304, 400, 401, 403,
				 404, 405, 409, 410, 412, 413, 414,
				 431, 500, 501, 503, 507};
#define NCODES (sizeof codes / sizeof codes[0] + 1)

static char req_label_buf[HC_N * NCODES][48];
static const char *req_labels[HC_N * NCODES];
static _Atomic uint64_t req_values[HC_N * NCODES];
static struct kv_metric m_requests = {
    .name = "kvfs_http_requests_total",
    .help = "HTTP requests answered, by endpoint class and status code.",
    .type = KV_METRIC_COUNTER,
    .n = HC_N * NCODES,
    .labels = req_labels,
    .values = req_values};

static char lat_label_buf[HC_N][24];
static const char *lat_labels[HC_N];
static struct kv_hist lat_hists[HC_N];
static struct kv_metric m_latency = {
    .name = "kvfs_http_request_seconds",
    .help = "From a request's headers to its completion, by endpoint "
	    "class (peer streams, which last, are left out).",
    .type = KV_METRIC_HIST,
    .n = HC_N,
    .labels = lat_labels,
    .hists = lat_hists};

static void labels_init(void)
{
	for (unsigned c = 0; c < HC_N; c++) {
		snprintf(lat_label_buf[c], sizeof lat_label_buf[c],
			 "class=\"%s\"", class_names[c]);
		lat_labels[c] = lat_label_buf[c];
		for (unsigned k = 0; k < NCODES; k++) {
			char code[8] = "other";
			if (k + 1 < NCODES)
				snprintf(code, sizeof code, "%u", codes[k]);
			char *b = req_label_buf[c * NCODES + k];
			snprintf(b, sizeof req_label_buf[0],
				 "class=\"%s\",code=\"%s\"", class_names[c],
				 code);
			req_labels[c * NCODES + k] = b;
		}
	}
}

void http_metrics_register(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, labels_init);
	kv_metric_register(&m_requests);
	kv_metric_register(&m_latency);
}

static unsigned class_of(const struct http_req *r)
{
	if (!r->route)
		return HC_OTHER;
	const char *p = r->route->prefix;
	if (strcmp(p, "/kv/") == 0)
		return r->method & (HTTP_GET | HTTP_HEAD) ? HC_KV_READ
							  : HC_KV_WRITE;
	if (strncmp(p, "/raft/", 6) == 0)
		return HC_PEER;
	if (strncmp(p, "/cluster/", 9) == 0)
		return HC_CLUSTER;
	if (strcmp(p, "/set/") == 0 || strcmp(p, "/get/") == 0)
		return HC_MMAPD;
	return HC_STATUS;
}

void http_metrics_done(const struct http_req *r)
{
	if (!r->answered)
		return; /* the connection went before an answer */
	unsigned c = class_of(r), k = NCODES - 1;
	for (unsigned i = 0; i + 1 < NCODES; i++)
		if (codes[i] == r->reply_status)
			k = i;
	kv_metric_add(&m_requests, c * NCODES + k, 1);
	if (c != HC_PEER && r->t0_ns)
		kv_hist_observe_ns(&lat_hists[c], kv_mono_ns() - r->t0_ns);
}

/* ---- the scrape ---- */

struct out {
	char *buf;
	size_t len, cap;
	int err;
};

static void put(struct out *o, const char *name, const char *type,
		const char *help, const char *labels, double v)
{
	if (o->err)
		return;
	if (help)
		o->err = kv_metrics_printf(&o->buf, &o->len, &o->cap,
					   "# HELP %s %s\n# TYPE %s %s\n", name,
					   help, name, type);
	if (!o->err)
		o->err = kv_metrics_printf(
		    &o->buf, &o->len, &o->cap, "%s%s%s%s %.17g\n", name,
		    labels ? "{" : "", labels ? labels : "", labels ? "}" : "",
		    v);
}

static double num(const cJSON *j, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, name);
	return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static void node_states(struct out *o, const cJSON *st)
{
	static const struct {
		const char *field, *name, *type, *help;
	} g[] = {
	    {"term", "kvfs_raft_term", "gauge", "The current Raft term."},
	    {"leader", "kvfs_raft_leader_id", "gauge",
	     "The id of the leader this node knows (0: none)."},
	    {"commit_index", "kvfs_raft_commit_index", "gauge",
	     "The highest log index known committed."},
	    {"applied_index", "kvfs_raft_applied_index", "gauge",
	     "The highest log index applied to the store here."},
	    {"first_index", "kvfs_log_first_index", "gauge",
	     "The first index still in the log (after compaction)."},
	    {"last_index", "kvfs_log_last_index", "gauge",
	     "The last index in the log."},
	    {"snapshot_index", "kvfs_snapshot_index", "gauge",
	     "The index of the last snapshot."},
	    {"log_bytes", "kvfs_log_bytes", "gauge", "Bytes of log on disk."},
	    {"keys", "kvfs_store_keys", "gauge", "Keys in the store."},
	    {"bytes", "kvfs_store_value_bytes", "gauge",
	     "Bytes of values in the store."},
	    {"uptime_s", "kvfs_uptime_seconds", "gauge",
	     "Seconds since this process started."},
	};
	for (size_t i = 0; i < sizeof g / sizeof g[0]; i++)
		put(o, g[i].name, g[i].type, g[i].help, NULL,
		    num(st, g[i].field));
	const cJSON *role = cJSON_GetObjectItemCaseSensitive(st, "role");
	static const char *const roles[] = {"leader", "follower", "candidate",
					    "pre-candidate"};
	for (size_t i = 0; i < 4; i++) {
		char lab[32];
		snprintf(lab, sizeof lab, "role=\"%s\"", roles[i]);
		bool is = cJSON_IsString(role) &&
			  strcmp(role->valuestring, roles[i]) == 0;
		put(o, "kvfs_raft_role", "gauge",
		    i == 0 ? "1 for the Raft role this node has now." : NULL,
		    lab, is);
	}
}

static void peer_states(struct out *o, const cJSON *st)
{
	static const struct {
		const char *field, *name, *type, *help;
	} g[] = {
	    {"reachable", "kvfs_peer_reachable", "gauge",
	     "1 if the last attempt to send to the peer succeeded."},
	    {"sent", "kvfs_peer_messages_sent_total", "counter",
	     "Raft messages the peer accepted from this node."},
	    {"frames", "kvfs_peer_frames_sent_total", "counter",
	     "Frames (batches of messages) the peer accepted."},
	    {"bytes_sent", "kvfs_peer_sent_bytes_total", "counter",
	     "Bytes of the frames the peer accepted (HTTP chunk heads "
	     "included)."},
	    {"frames_received", "kvfs_peer_frames_received_total", "counter",
	     "Frames (batches of messages) received from the peer and "
	     "decoded."},
	    {"bytes_received", "kvfs_peer_received_bytes_total", "counter",
	     "Bytes of the frames received from the peer (their bodies)."},
	    {"dropped", "kvfs_peer_messages_dropped_total", "counter",
	     "Messages to the peer dropped (queue full, failed batch)."},
	    {"match_index", "kvfs_peer_match_index", "gauge",
	     "Leader only: the peer's highest index known replicated."},
	    {"lag", "kvfs_peer_replication_lag_entries", "gauge",
	     "Leader only: entries of this node's log the peer lacks."},
	};
	const cJSON *peers = cJSON_GetObjectItemCaseSensitive(st, "peers");
	double last = num(st, "last_index");
	for (size_t f = 0; f < sizeof g / sizeof g[0]; f++) {
		bool first = true;
		const cJSON *p;
		cJSON_ArrayForEach(p, peers)
		{
			bool lag = strcmp(g[f].field, "lag") == 0;
			const cJSON *v = cJSON_GetObjectItemCaseSensitive(
			    p, lag ? "match_index" : g[f].field);
			if (!v || cJSON_IsNull(v))
				continue;
			double x =
			    cJSON_IsBool(v) ? cJSON_IsTrue(v) : v->valuedouble;
			if (lag)
				x = last > x ? last - x : 0;
			char lab[32];
			snprintf(lab, sizeof lab, "peer=\"%.0f\"",
				 num(p, "id"));
			put(o, g[f].name, g[f].type, first ? g[f].help : NULL,
			    lab, x);
			first = false;
		}
	}
}

static void listener_states(struct out *o, struct http_server *h)
{
	struct http_stats s;
	http_gate_stats(h->gate, &s);
	put(o, "kvfs_http_connections", "gauge", "Open connections by kind.",
	    "kind=\"client\"", s.clients);
	put(o, "kvfs_http_connections", "gauge", NULL, "kind=\"peer\"",
	    s.peers);
	put(o, "kvfs_http_connections_accepted_total", "counter",
	    "Connections the listener accepted.", NULL, (double)s.accepted);
	static const char *const why[] = {"header_deadline", "idle",
					  "slow_body", "evicted"};
	uint64_t closed[] = {s.closed_header, s.closed_idle, s.closed_body,
			     s.evicted};
	for (int i = 0; i < 4; i++) {
		char lab[40];
		snprintf(lab, sizeof lab, "reason=\"%s\"", why[i]);
		put(o, "kvfs_http_connections_closed_total", "counter",
		    i == 0 ? "Connections the listener closed, by reason."
			   : NULL,
		    lab, (double)closed[i]);
	}
	static const char *const ref[] = {"per_address", "full", "reserve"};
	uint64_t refused[] = {s.refused_address, s.refused_full,
			      s.refused_reserve};
	for (int i = 0; i < 3; i++) {
		char lab[40];
		snprintf(lab, sizeof lab, "reason=\"%s\"", ref[i]);
		put(o, "kvfs_http_connections_refused_total", "counter",
		    i == 0 ? "Connections or requests refused, by reason."
			   : NULL,
		    lab, (double)refused[i]);
	}
}

enum MHD_Result http_metrics_handle(struct http_req *r)
{
	char *json = NULL;
	int rc = node_status_json(r->node, &json);
	if (rc < 0)
		return http_fail_err(r, rc, NULL);
	cJSON *st = cJSON_Parse(json);
	free(json);
	if (!st)
		return http_fail_err(r, -ENOMEM, NULL);
	struct out o = {0};
	node_states(&o, st);
	peer_states(&o, st);
	cJSON_Delete(st);
	listener_states(&o, r->http);
	if (!o.err)
		o.err = kv_metrics_render(&o.buf, &o.len, &o.cap);
	if (o.err) {
		free(o.buf);
		return http_fail_err(r, o.err, NULL);
	}
	struct MHD_Response *resp = MHD_create_response_from_buffer(
	    o.len, o.buf, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(o.buf);
		return http_fail_err(r, -ENOMEM, NULL);
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				"text/plain; version=0.0.4; charset=utf-8");
	return http_queue(r, MHD_HTTP_OK, resp);
}
