/* http.c - the node's HTTP listener and the life of one request.
 *
 * libmicrohttpd runs every connection on one thread (epoll). A handler
 * never blocks there: one that waits for a commit or a read barrier
 * suspends its request and starts an asynchronous call of the node
 * (node.h); the call's answer resumes it and the handler runs again to
 * reply. A thread per connection cost two thread switches per request
 * (docs/benchmarks.md). The few handlers that do block (/status asks the
 * store's owner thread, membership changes, snapshot chunks) are
 * offloaded to a thread of their own. A connection limit, an idle timeout
 * and a small per-connection memory pool keep slow or hostile clients
 * from starving the others. A request is routed by the table below as
 * soon as its headers are in, so bad keys, unknown paths and oversized
 * bodies are refused before any body is read; bodies are then taken in up
 * to the route's limit and the route's handler runs once the request is
 * complete; a stream (a peer's /raft/stream) is handed over piece by piece
 * instead. Responses and the error mapping are in http_reply.c, the
 * client endpoints in http_kv.c, the peers' in http_peer.c. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "codec.h"
#include "http_int.h"
#include "peer.h"
#include "snapxfer.h"

/* Connections at once. */
#define HTTP_MAX_CONNECTIONS 512
/* Seconds a connection may stay idle (a slow client) before it is closed. */
#define HTTP_IDLE_TIMEOUT_S 30
/* Per-connection pool: request line and headers must fit (MHD answers 414
 * or 431 itself beyond it); body bytes are passed through in pieces. MHD
 * zeroes the whole pool between two requests of a connection: at 64 KiB
 * that memset was 2.6% of a 3-node cluster's CPU under 64-client PUTs.
 * 16 KiB holds the longest key percent-encoded (3 KiB) with room for
 * ordinary headers. */
#define HTTP_CONN_MEMORY	   (16u * 1024u)
#define HTTP_CONN_MEMORY_INCREMENT (4u * 1024u)
/* A form body may percent-encode every byte of the largest value. */
#define HTTP_FORM_MAX_BODY (3u * (size_t)KV_MAX_VALUE + 64u * 1024u)
/* Past this many body bytes a request that is refused anyway is cut off
 * instead of read to its end. */
#define HTTP_DRAIN_MAX (4u * (uint64_t)KV_MAX_VALUE)

static const struct http_route routes[] = {
    {"/kv/", false, HTTP_GET | HTTP_HEAD | HTTP_PUT | HTTP_POST | HTTP_DELETE,
     HTTP_PUT | HTTP_POST, HTTP_BODY_RAW, KV_MAX_VALUE, http_kv_check,
     http_kv_handle, NULL, false},
    /* offloaded: it asks the store's owner thread, which may be busy */
    {"/status", true, HTTP_GET | HTTP_HEAD, 0, HTTP_BODY_NONE, 0, NULL,
     http_status_handle, NULL, true},
    /* mmapd's endpoints, kept for its users. */
    {"/set/", false, HTTP_POST | HTTP_PUT, HTTP_POST | HTTP_PUT, HTTP_BODY_FORM,
     KV_MAX_VALUE, http_mmapd_check, http_mmapd_set, NULL, false},
    {"/get/", false, HTTP_GET | HTTP_HEAD, 0, HTTP_BODY_NONE, 0,
     http_mmapd_check, http_mmapd_get, NULL, false},
    /* peers (http_peer.c); max_body of a stream is one frame's payload */
    {PEER_STREAM_PATH, true, HTTP_POST, HTTP_POST, HTTP_BODY_STREAM,
     PEER_MAX_BODY, http_peer_stream_check, http_peer_stream_end,
     http_peer_stream_data, false},
    {PEER_PATH, true, HTTP_POST, HTTP_POST, HTTP_BODY_RAW, PEER_MAX_BODY,
     http_peer_check, http_peer_message, NULL, false},
    {"/raft/snapshot", true, HTTP_POST, HTTP_POST, HTTP_BODY_RAW,
     SNAPXFER_MAX_CHUNK, http_peer_check, http_peer_snapshot, NULL, true},
    /* membership (http_cluster.c) */
    {"/cluster/members", true, HTTP_GET | HTTP_POST, HTTP_POST, HTTP_BODY_RAW,
     1024, NULL, http_cluster_members, NULL, true},
    {"/cluster/members/", false, HTTP_DELETE, 0, HTTP_BODY_NONE, 0, NULL,
     http_cluster_member, NULL, true},
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

int http_unescape(const char *src, size_t len, char **out, size_t *outlen)
{
	char *dst = malloc(len + 1);
	size_t n = 0;

	if (!dst)
		return -ENOMEM;
	for (size_t i = 0; i < len; i++) {
		if (src[i] != '%') {
			dst[n++] = src[i];
			continue;
		}
		if (i + 2 >= len) {
			free(dst);
			return -EINVAL;
		}
		int hi = kv_hex_val(src[i + 1]), lo = kv_hex_val(src[i + 2]);
		if (hi < 0 || lo < 0) {
			free(dst);
			return -EINVAL;
		}
		dst[n++] = (char)(hi << 4 | lo);
		i += 2;
	}
	dst[n] = '\0';
	*out = dst;
	*outlen = n;
	return 0;
}

char *http_query(struct http_req *r, const char *name, size_t *len, bool *bad)
{
	const char *raw =
	    MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
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

const char *http_header(struct http_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
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

/* A suspended request is taken up again (or ends): it no longer holds
 * the listener open. The listener's thread. */
static void release_hold(struct http_req *r)
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
static enum MHD_Result offload(struct http_req *r)
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

/* Bodies held at once by all connections together; past it a request is
 * answered 503 (retry) rather than letting many large uploads exhaust
 * memory. */
#define HTTP_BODY_BUDGET (256u * 1024u * 1024u)

static void body_drop(struct http_req *r)
{
	free(r->body);
	r->body = NULL;
	r->len = r->cap = 0;
	atomic_fetch_sub(&r->http->body_bytes, r->reserved);
	r->reserved = 0;
}

/* Make room for cap bytes of body, within the listener's budget. 0,
 * -EBUSY or -ENOMEM. */
static int body_reserve(struct http_req *r, size_t cap)
{
	unsigned char *b;

	if (cap <= r->cap)
		return 0;
	size_t delta = cap - r->reserved;
	if (atomic_fetch_add(&r->http->body_bytes, delta) + delta >
	    HTTP_BODY_BUDGET) {
		atomic_fetch_sub(&r->http->body_bytes, delta);
		return -EBUSY;
	}
	r->reserved = cap;
	b = realloc(r->body, cap);
	if (!b)
		return -ENOMEM;
	r->body = b;
	r->cap = cap;
	return 0;
}

/* Append body bytes (or form value bytes), within the route's limit; past
 * it or the budget the body is dropped and the rest is only counted.
 * 0, -EFBIG, -EBUSY or -ENOMEM. */
static int body_append(struct http_req *r, const char *data, size_t size)
{
	size_t max = r->route->max_body;
	int rc = 0;

	if (size > max - r->len) {
		rc = -EFBIG;
	} else if (r->len + size > r->cap) {
		size_t cap = r->cap ? r->cap : 64 * 1024;
		while (cap < r->len + size)
			cap *= 2;
		rc = body_reserve(r, cap < max ? cap : max);
	}
	if (rc == -EFBIG)
		r->too_large = true;
	if (rc == -EBUSY)
		r->busy = true;
	if (rc < 0) {
		body_drop(r);
		return rc;
	}
	memcpy(r->body + r->len, data, size);
	r->len += size;
	return 0;
}

/* The post processor hands us form fields in pieces; only "value" is kept
 * (the first one), bounded by the route's limit. */
static enum MHD_Result on_form_field(void *cls, enum MHD_ValueKind kind,
				     const char *key, const char *filename,
				     const char *content_type,
				     const char *transfer_encoding,
				     const char *data, uint64_t off,
				     size_t size)
{
	struct http_req *r = cls;

	(void)kind;
	(void)filename;
	(void)content_type;
	(void)transfer_encoding;
	if (!key || strcmp(key, "value") != 0 || r->value_done)
		return MHD_YES;
	if (off == 0 && r->has_value && r->len > 0) {
		r->value_done = true; /* a second "value" field */
		return MHD_YES;
	}
	r->has_value = true;
	if (r->too_large || r->busy || size == 0)
		return MHD_YES;
	return body_append(r, data, size) == -ENOMEM ? MHD_NO : MHD_YES;
}

/* Content-Length and Transfer-Encoding decide, before the body, whether a
 * body is acceptable at all. */
static bool check_body_headers(struct http_req *r)
{
	const char *cl = http_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
	const char *te = http_header(r, MHD_HTTP_HEADER_TRANSFER_ENCODING);
	bool chunked = te && strcasestr(te, "chunked") != NULL;
	size_t max = r->route->body == HTTP_BODY_FORM ? HTTP_FORM_MAX_BODY
						      : r->route->max_body;
	unsigned long long len = 0;

	if (r->route->body == HTTP_BODY_STREAM)
		return true; /* unbounded; its frames are bounded */

	if (!cl && !chunked) {
		if (r->route->body == HTTP_BODY_RAW) {
			http_fail(r, MHD_HTTP_LENGTH_REQUIRED,
				  "length_required",
				  "a body needs Content-Length or chunked "
				  "transfer encoding");
			return false;
		}
		return true; /* a form may come in the query alone */
	}
	if (cl) {
		char *end;
		errno = 0;
		len = strtoull(cl, &end, 10);
		if (errno || end == cl || *end || cl[0] == '-') {
			http_fail(r, MHD_HTTP_BAD_REQUEST, "bad_request",
				  "bad Content-Length");
			return false;
		}
		if (len > max) {
			http_fail(r, MHD_HTTP_CONTENT_TOO_LARGE, "too_large",
				  "the body is larger than the limit");
			return false;
		}
	}
	if (r->route->body == HTTP_BODY_RAW && len > 0) {
		int rc = body_reserve(r, (size_t)len);
		if (rc == -EBUSY) {
			http_fail(r, MHD_HTTP_SERVICE_UNAVAILABLE, "not_ready",
				  "too many large uploads at once; retry");
			return false;
		}
		if (rc < 0)
			return false;
	}
	if (r->route->body == HTTP_BODY_FORM && (chunked || len > 0)) {
		r->pp = MHD_create_post_processor(r->conn, 64 * 1024,
						  on_form_field, r);
		if (!r->pp) {
			http_fail(r, MHD_HTTP_BAD_REQUEST, "bad_request",
				  "the body must be a form "
				  "(application/x-www-form-urlencoded or "
				  "multipart/form-data)");
			return false;
		}
	}
	return true;
}

/* The first call for a request: its headers are in, no body yet. Route
 * it and refuse what can be refused now. */
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
	if (r->route->check && !r->route->check(r))
		return r->answered ? MHD_YES : MHD_NO;
	if ((r->method & r->route->body_methods) && !check_body_headers(r))
		return r->answered ? MHD_YES : MHD_NO;
	return MHD_YES;
}

/* Body bytes as they arrive. */
static enum MHD_Result request_body(struct http_req *r, const char *data,
				    size_t size)
{
	r->received += size;
	if (r->route->body == HTTP_BODY_STREAM)
		return r->route->stream(r, data, size);
	if (r->received > HTTP_DRAIN_MAX)
		return MHD_NO; /* refused anyway; stop reading */
	if (!(r->method & r->route->body_methods) || r->too_large || r->busy ||
	    r->bad_form)
		return MHD_YES; /* drained */
	if (r->route->body == HTTP_BODY_FORM) {
		if (r->received > HTTP_FORM_MAX_BODY) {
			r->too_large = true;
			return MHD_YES;
		}
		if (r->pp && MHD_post_process(r->pp, data, size) != MHD_YES)
			r->bad_form = true;
		return MHD_YES;
	}
	/* chunked bodies (and ones longer than they said) are counted */
	if (body_append(r, data, size) == -ENOMEM)
		return MHD_NO;
	return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
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
		*con_cls = r;
		return request_begin(r, url, method);
	}
	if (r->held) {
		/* taken up again after http_suspend */
		release_hold(r);
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
		    request_body(r, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return ret;
	}
	/* The whole request is in. */
	if (r->too_large)
		return http_fail(r, MHD_HTTP_CONTENT_TOO_LARGE, "too_large",
				 "the value is larger than the limit");
	if (r->busy)
		return http_fail(r, MHD_HTTP_SERVICE_UNAVAILABLE, "not_ready",
				 "too many large uploads at once; retry");
	if (r->bad_form)
		return http_fail(r, MHD_HTTP_BAD_REQUEST, "bad_request",
				 "malformed form body");
	if (r->pp) {
		MHD_destroy_post_processor(r->pp);
		r->pp = NULL;
	}
	if (r->route->offload)
		return offload(r);
	return r->route->handle(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct http_req *r = *con_cls;

	(void)cls;
	(void)conn;
	(void)toe;
	if (!r)
		return;
	release_hold(r);
	if (r->reply)
		MHD_destroy_response(r->reply);
	if (r->pp)
		MHD_destroy_post_processor(r->pp);
	if (r->ctx_free)
		r->ctx_free(r->ctx);
	body_drop(r);
	free(r->key);
	free(r);
	*con_cls = NULL;
}

/* Keys are percent-decoded by the handlers, so that %00 and %2F are seen
 * as what they are; MHD must leave the URL alone. */
static size_t no_unescape(void *cls, struct MHD_Connection *c, char *s)
{
	(void)cls;
	(void)c;
	return strlen(s);
}

static void on_log(void *cls, const char *fmt, va_list ap)
{
	char buf[512];

	(void)cls;
	vsnprintf(buf, sizeof buf, fmt, ap);
	size_t n = strlen(buf);
	fprintf(stderr, "kvfs http: %s%s", buf,
		n && buf[n - 1] == '\n' ? "" : "\n");
}

static int open_listener(const char *addr, int *fd_out, unsigned *port_out,
			 char **errmsg)
{
	char host[KV_ADDR_MAX + 1], port[8];
	struct addrinfo hints = {0}, *res = NULL, *ai;
	int fd = -1, err = 0, one = 1;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	unsigned pnum;
	const char *why;

	if (kv_addr_parse(addr, true, host, sizeof host, &pnum, &why) < 0) {
		if (asprintf(errmsg, "bad listen address '%s': %s", addr, why) <
		    0)
			*errmsg = NULL;
		return -EINVAL;
	}
	snprintf(port, sizeof port, "%u", pnum);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	int gai = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
	if (gai) {
		if (asprintf(errmsg, "listen address '%s': %s", addr,
			     gai_strerror(gai)) < 0)
			*errmsg = NULL;
		return -EINVAL;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
			    ai->ai_protocol);
		if (fd < 0) {
			err = -errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
		    listen(fd, 128) == 0)
			break;
		err = -errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		if (asprintf(errmsg, "listen on %s: %s", addr, strerror(-err)) <
		    0)
			*errmsg = NULL;
		return err ? err : -EINVAL;
	}
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	if (ss.ss_family == AF_INET6)
		*port_out = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	else
		*port_out = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	*fd_out = fd;
	return 0;
}

int http_start(struct kv_node *n, const char *listen, struct http_server **out,
	       char **errmsg)
{
	struct http_server *h;
	int rc;

	*out = NULL;
	if (errmsg)
		*errmsg = NULL;
	h = calloc(1, sizeof *h);
	if (!h)
		return -ENOMEM;
	h->node = n;
	atomic_init(&h->body_bytes, 0);
	pthread_mutex_init(&h->mu, NULL);
	pthread_cond_init(&h->cond, NULL);
	char *msg = NULL;
	rc = open_listener(listen ? listen : "127.0.0.1:7001", &h->listen_fd,
			   &h->port, &msg);
	if (rc < 0) {
		if (errmsg)
			*errmsg = msg;
		else
			free(msg);
		goto err_free;
	}
	h->daemon = MHD_start_daemon(
	    MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME |
		MHD_USE_ERROR_LOG,
	    0, NULL, NULL, on_request, h,
	    /* the logger first, so MHD logs nothing on its own */
	    MHD_OPTION_EXTERNAL_LOGGER, on_log, h, MHD_OPTION_LISTEN_SOCKET,
	    h->listen_fd, MHD_OPTION_CONNECTION_LIMIT,
	    (unsigned)HTTP_MAX_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT,
	    (unsigned)HTTP_IDLE_TIMEOUT_S, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
	    (size_t)HTTP_CONN_MEMORY, MHD_OPTION_CONNECTION_MEMORY_INCREMENT,
	    (size_t)HTTP_CONN_MEMORY_INCREMENT, MHD_OPTION_NOTIFY_COMPLETED,
	    on_completed, h, MHD_OPTION_UNESCAPE_CALLBACK, no_unescape, h,
	    MHD_OPTION_END);
	if (!h->daemon) {
		rc = -EIO;
		if (errmsg && asprintf(errmsg,
				       "cannot start the HTTP server "
				       "on %s",
				       listen) < 0)
			*errmsg = NULL;
		goto err_close;
	}
	*out = h;
	return 0;

err_close:
	close(h->listen_fd);
err_free:
	pthread_cond_destroy(&h->cond);
	pthread_mutex_destroy(&h->mu);
	free(h);
	return rc;
}

void http_stop(struct http_server *h)
{
	if (!h)
		return;
	/* MHD must not stop with a request suspended: none is from now on,
	 * and we wait until every one was taken up again. The node answered
	 * every call it had (node_close stops it first), and an offloaded
	 * handler returns soon once the node stops. */
	pthread_mutex_lock(&h->mu);
	h->closing = true;
	while (h->held || h->workers) {
		struct timespec t;
		clock_gettime(CLOCK_REALTIME, &t);
		t.tv_sec += 5;
		if (pthread_cond_timedwait(&h->cond, &h->mu, &t) == ETIMEDOUT)
			fprintf(stderr,
				"kvfs http: stopping: waiting for %u "
				"suspended requests and %u handlers\n",
				h->held, h->workers);
	}
	pthread_mutex_unlock(&h->mu);
	/* MHD closes the listen socket it was given. */
	MHD_stop_daemon(h->daemon);
	pthread_cond_destroy(&h->cond);
	pthread_mutex_destroy(&h->mu);
	free(h);
}

unsigned http_port(const struct http_server *h)
{
	return h ? h->port : 0;
}
