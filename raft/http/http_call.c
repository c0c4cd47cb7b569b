/* http_call.c - what a handler does with its request: read a header or
 * the query, suspend it while the node works and resume it with the
 * node's answer, or run a blocking handler on a thread of its own.
 *
 * These are the helpers every endpoint (http_kv.c, http_peer.c,
 * http_cluster.c) and the router (http_request.c) call; they sit below
 * both, so that the router, which knows the endpoints, is called by the
 * listener (http.c) and calls down only. The server's counters of held
 * requests and running workers, which the listener waits for when it
 * stops, are described in http_int.h. */
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "http_int.h"

int http_unescape_to(const char *src, size_t len, char *dst, size_t *outlen)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		if (src[i] != '%') {
			dst[n++] = src[i];
			continue;
		}
		if (i + 2 >= len)
			return -EINVAL;
		int hi = kv_hex_val(src[i + 1]), lo = kv_hex_val(src[i + 2]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		dst[n++] = (char)(hi << 4 | lo);
		i += 2;
	}
	dst[n] = '\0';
	*outlen = n;
	return 0;
}

int http_unescape(const char *src, size_t len, char **out, size_t *outlen)
{
	char *dst = malloc(len + 1);

	if (!dst)
		return -ENOMEM;
	int rc = http_unescape_to(src, len, dst, outlen);
	if (rc < 0) {
		free(dst);
		return rc;
	}
	*out = dst;
	return 0;
}

/* name's place in the request's table of arguments (the first, as
 * libmicrohttpd's lookup finds), -1 if absent; -2: no table, ask
 * libmicrohttpd. */
static int query_slot(const struct http_req *r, const char *name)
{
	if (!r->q_kept)
		return -2;
	for (unsigned i = 0; i < r->nq; i++)
		if (strcmp(r->qkey[i], name) == 0)
			return (int)i;
	return -1;
}

/* The argument's value as it came (percent escapes left), NULL if absent
 * or without a value. */
static const char *query_raw(struct http_req *r, const char *name)
{
	int i = query_slot(r, name);
	if (i == -2)
		return MHD_lookup_connection_value(r->conn,
						   MHD_GET_ARGUMENT_KIND, name);
	return i >= 0 ? r->qval[i] : NULL;
}

char *http_query(struct http_req *r, const char *name, size_t *len, bool *bad)
{
	const char *raw = query_raw(r, name);
	char *out = NULL;
	size_t n = 0;

	*bad = false;
	if (!raw)
		return NULL;
	/* MHD turned '+' into ' ' already; our unescape callback left the
	 * percent escapes for this. */
	if (http_unescape(raw, strlen(raw), &out, &n) < 0) {
		*bad = true;
		return NULL;
	}
	if (len)
		*len = n;
	return out;
}

struct has_arg {
	const char *name;
	bool found;
};

static enum MHD_Result arg_seen(void *cls, enum MHD_ValueKind kind,
				const char *key, const char *value)
{
	struct has_arg *h = cls;
	(void)kind;
	(void)value;
	if (strcmp(key, h->name) == 0)
		h->found = true;
	return h->found ? MHD_NO : MHD_YES;
}

bool http_query_has(struct http_req *r, const char *name)
{
	int i = query_slot(r, name);
	if (i != -2)
		return i >= 0;
	struct has_arg h = {.name = name};
	MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, arg_seen, &h);
	return h.found;
}

const char *http_header(struct http_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

void http_remote(struct http_req *r, char *buf, size_t cap)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(
	    r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	char host[64] = "?", port[8] = "?";

	if (ci && ci->client_addr) {
		socklen_t len = ci->client_addr->sa_family == AF_INET6
				    ? sizeof(struct sockaddr_in6)
				    : sizeof(struct sockaddr_in);
		if (getnameinfo(ci->client_addr, len, host, sizeof(host), port,
				sizeof(port),
				NI_NUMERICHOST | NI_NUMERICSERV) != 0)
			snprintf(host, sizeof(host), "?");
	}
	snprintf(buf, cap, strchr(host, ':') ? "[%s]:%s" : "%s:%s", host, port);
}

const char *http_method_name(unsigned method)
{
	switch (method) {
	case HTTP_GET:
		return "GET";
	case HTTP_HEAD:
		return "HEAD";
	case HTTP_PUT:
		return "PUT";
	case HTTP_POST:
		return "POST";
	case HTTP_DELETE:
		return "DELETE";
	default:
		return "?";
	}
}

bool http_suspend(struct http_req *r)
{
	pthread_mutex_lock(&r->http->mu);
	bool closing = r->http->closing;
	if (!closing)
		r->http->held++;
	pthread_mutex_unlock(&r->http->mu);
	if (closing)
		return false;
	r->held = true;
	MHD_suspend_connection(r->conn);
	return true;
}

void http_done(void *ctx, int ret, const struct kv_result *res)
{
	struct http_req *r = ctx;
	r->async_ret = ret;
	if (res)
		r->async_res = *res;
	r->async_done = true;
	/* MHD's lock orders these writes before the listener's reads */
	MHD_resume_connection(r->conn);
}

void http_started(struct http_req *r, int rc)
{
	if (rc != 0)
		http_done(r, rc, NULL);
}

struct propose_job {
	struct http_req *r;
	struct kv_cmd cmd;
};

static void *propose_main(void *arg)
{
	struct propose_job *j = arg;
	struct http_server *h = j->r->http;
	/* r is not touched once the node took the call: http_done may
	 * complete it at any time from then on */
	http_started(j->r,
		     node_propose_async(j->r->node, &j->cmd, http_done, j->r));
	free(j);
	pthread_mutex_lock(&h->mu);
	if (--h->workers == 0)
		pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

void http_propose(struct http_req *r, const struct kv_cmd *cmd)
{
	struct http_server *h = r->http;
	struct propose_job *j = NULL;
	if (cmd->vlen >= HTTP_PROPOSE_THREAD_BYTES &&
	    (j = malloc(sizeof(*j))) != NULL) {
		j->r = r;
		j->cmd = *cmd;
		pthread_mutex_lock(&h->mu);
		h->workers++;
		pthread_mutex_unlock(&h->mu);
		pthread_attr_t attr;
		pthread_t t;
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		int err = pthread_create(&t, &attr, propose_main, j);
		pthread_attr_destroy(&attr);
		if (err == 0)
			return;
		free(j);
		pthread_mutex_lock(&h->mu);
		h->workers--;
		pthread_mutex_unlock(&h->mu);
	}
	struct kv_cmd c = *cmd; /* stamped and encoded by the node */
	http_started(r, node_propose_async(r->node, &c, http_done, r));
}

/* A suspended request is taken up again (or ends): it no longer holds
 * the listener open. The listener's thread. */
void http_release_hold(struct http_req *r)
{
	if (!r->held)
		return;
	r->held = false;
	pthread_mutex_lock(&r->http->mu);
	if (--r->http->held == 0)
		pthread_cond_broadcast(&r->http->cond);
	pthread_mutex_unlock(&r->http->mu);
}

static void *offload_main(void *arg)
{
	struct http_req *r = arg;
	struct http_server *h = r->http;
	if (r->route->handle(r) != MHD_YES && !r->reply)
		r->drop = true;
	r->offloaded = false;
	MHD_resume_connection(r->conn); /* r may be gone from here on */
	pthread_mutex_lock(&h->mu);
	if (--h->workers == 0)
		pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

/* Run the route's handler on a thread of its own, the request
 * suspended meanwhile. */
enum MHD_Result http_offload(struct http_req *r)
{
	struct http_server *h = r->http;
	pthread_attr_t attr;
	pthread_t t;

	if (!http_suspend(r))
		return http_fail_err(r, KV_ESHUTDOWN, NULL);
	pthread_mutex_lock(&h->mu);
	h->workers++;
	pthread_mutex_unlock(&h->mu);
	r->offloaded = true;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	int err = pthread_create(&t, &attr, offload_main, r);
	pthread_attr_destroy(&attr);
	if (err == 0)
		return MHD_YES;
	pthread_mutex_lock(&h->mu);
	h->workers--;
	pthread_mutex_unlock(&h->mu);
	/* a reply kept for when it is taken up again, as a worker's */
	if (http_fail(r, MHD_HTTP_SERVICE_UNAVAILABLE, "not_ready",
		      "no thread for this request; retry") != MHD_YES)
		r->drop = true;
	r->offloaded = false;
	MHD_resume_connection(r->conn);
	return MHD_YES;
}

/* Keys are percent-decoded by the handlers, so that %00 and %2F are seen
 * as what they are; MHD must leave the URL alone. */

/* Suspend r until the node's read barrier passes (or fails). */
static enum http_barrier barrier_wait(struct http_req *r)
{
	if (!http_suspend(r)) {
		http_fail_err(r, KV_ESHUTDOWN, NULL);
		return HTTP_BARRIER_FAILED;
	}
	http_started(r, node_read_barrier_async(r->node, http_done, r));
	return HTTP_BARRIER_WAIT;
}

/* ?consistency=local|linearizable, then the node's read barrier: a
 * linearizable read suspends the request until the node may serve it,
 * and passes here on the handler's second run. */
enum http_barrier http_read_barrier(struct http_req *r)
{
	bool bad;
	char *c;

	if (r->async_done) {
		if (r->async_ret == 0)
			return HTTP_BARRIER_PASSED;
		http_fail_err(r, r->async_ret, NULL);
		return HTTP_BARRIER_FAILED;
	}
	/* without escapes (always, from kvfs's clients) it is read as it
	 * came, not copied */
	const char *raw = query_raw(r, "consistency");
	if (!raw || !strchr(raw, '%')) {
		if (raw && strcmp(raw, "local") != 0 &&
		    strcmp(raw, "linearizable") != 0) {
			http_fail(r, MHD_HTTP_BAD_REQUEST, "bad_request",
				  "consistency is local or linearizable");
			return HTTP_BARRIER_FAILED;
		}
		if ((raw && strcmp(raw, "local") == 0) ||
		    node_read_now(r->node))
			return HTTP_BARRIER_PASSED;
		return barrier_wait(r);
	}
	c = http_query(r, "consistency", NULL, &bad);
	if (bad ||
	    (c && strcmp(c, "local") != 0 && strcmp(c, "linearizable") != 0)) {
		free(c);
		http_fail(r, MHD_HTTP_BAD_REQUEST, "bad_request",
			  "consistency is local or linearizable");
		return HTTP_BARRIER_FAILED;
	}
	bool local = c && strcmp(c, "local") == 0;
	free(c);
	if (local || node_read_now(r->node))
		return HTTP_BARRIER_PASSED;
	return barrier_wait(r);
}

/* What a handler returns when read_barrier did not pass. */
enum MHD_Result http_barrier_held(struct http_req *r, enum http_barrier b)
{
	return b == HTTP_BARRIER_WAIT || r->answered ? MHD_YES : MHD_NO;
}
