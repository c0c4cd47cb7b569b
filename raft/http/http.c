/* http.c - the node's HTTP listener and its life.
 *
 * libmicrohttpd runs every connection on one thread (epoll). A handler
 * never blocks there: one that waits for a commit or a read barrier
 * suspends its request and starts an asynchronous call of the node
 * (node.h); the call's answer resumes it and the handler runs again to
 * reply. A thread per connection cost two thread switches per request
 * (docs/benchmarks.md). The few handlers that do block (/status asks the
 * store's owner thread, membership changes, snapshot chunks) are
 * offloaded to a thread of their own. The gate (http_gate.h) admits
 * connections and closes those past their deadlines, and a small
 * per-connection memory pool bounds each, so that slow or hostile clients
 * cannot starve the others; the listener stops only once every suspended
 * request was taken up again. Routing and the request's life
 * are in http_request.c, what a handler does with its request (headers,
 * the query, suspending, offloading) in http_call.c, bodies in
 * http_body.c, responses in http_reply.c, the endpoints in http_kv.c,
 * http_peer.c, http_cluster.c. */
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

#include "http_gate.h"
#include "http_int.h"

/* Connections the kernel queues until the listener accepts them: the gate
 * (http_gate.c) answers each at once, so this only absorbs bursts. */
#define HTTP_LISTEN_BACKLOG 1024
/* Per-connection pool: request line and headers must fit (MHD answers 414
 * or 431 itself beyond it); body bytes are passed through in pieces. MHD
 * zeroes the whole pool between two requests of a connection: at 64 KiB
 * that memset was 2.6% of a 3-node cluster's CPU under 64-client PUTs.
 * 16 KiB holds the longest key percent-encoded (3 KiB) with room for
 * ordinary headers. */
#define HTTP_CONN_MEMORY	   (16u * 1024u)
#define HTTP_CONN_MEMORY_INCREMENT (4u * 1024u)

static size_t no_unescape(void *cls, struct MHD_Connection *c, char *s)
{
	(void)cls;
	(void)c;
	return strlen(s);
}

static void on_log(void *cls, const char *fmt, va_list ap)
{
	struct http_server *h = cls;
	char buf[512];

	if (!http_gate_log_ok(h->gate))
		return;
	vsnprintf(buf, sizeof buf, fmt, ap);
	/* libmicrohttpd's chatter (clients that hang up, ...) is for
	 * --log-level=debug; what it says of TLS is worth a warning */
	bool tls = strstr(buf, "TLS") || strstr(buf, "andshake") ||
		   strstr(buf, "ertificate");
	kv_log(tls ? KV_LOG_WARN : KV_LOG_DEBUG, "http: %s", buf);
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
		    listen(fd, HTTP_LISTEN_BACKLOG) == 0)
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
	struct http_options o = {.listen = listen};
	return http_start_with(n, &o, out, errmsg);
}

/* The gate's test for a peer: one of the cluster's tokens. */
static bool gate_is_peer(void *ctx, const char *tok)
{
	return node_token_check(ctx, tok);
}

int http_start_with(struct kv_node *n, const struct http_options *o,
		    struct http_server **out, char **errmsg)
{
	const char *listen = o->listen;
	struct http_server *h;
	struct http_limits lim;
	int rc;

	*out = NULL;
	if (errmsg)
		*errmsg = NULL;
	http_metrics_register();
	h = calloc(1, sizeof *h);
	if (!h)
		return -ENOMEM;
	h->node = n;
	atomic_init(&h->body_bytes, 0);
	pthread_mutex_init(&h->mu, NULL);
	pthread_cond_init(&h->cond, NULL);
	pthread_mutex_init(&h->certs.mu, NULL);
	h->status_public = o->status_public;
	char *msg = NULL;
	if (o->auth_file &&
	    (rc = http_auth_new(o->auth_file, &h->auth, &msg))) {
		if (errmsg)
			*errmsg = msg;
		else
			free(msg);
		goto err_free;
	}
	unsigned tls =
	    http_tls_options(h, o->tls, o->tls_client_auth, h->tls_opts,
			     sizeof h->tls_opts / sizeof h->tls_opts[0]);
	rc = open_listener(listen ? listen : "127.0.0.1:7001", &h->listen_fd,
			   &h->port, &msg);
	if (rc < 0) {
		if (errmsg)
			*errmsg = msg;
		else
			free(msg);
		goto err_free;
	}
	http_gate_limits(o->limits, &lim);
	rc = http_gate_new(&lim, gate_is_peer, n, &h->gate);
	if (rc < 0)
		goto err_close;
	rc = http_watches_new(n, &h->watches);
	if (rc == 0 && (rc = http_value_cache_new(&h->values)) < 0)
		http_watches_free(h->watches);
	if (rc < 0) {
		http_gate_stop(h->gate);
		http_gate_free(h->gate);
		goto err_close;
	}
	/* The gate admits and times connections (http_gate.h): libmicrohttpd's
	 * limit is above the gate's, its timeout only for stalled replies. */
	h->daemon = MHD_start_daemon(
	    MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME |
		MHD_USE_ERROR_LOG | tls,
	    0, http_gate_accept, h->gate, http_conn_request, h,
	    /* the logger first, so MHD logs nothing on its own */
	    MHD_OPTION_EXTERNAL_LOGGER, on_log, h, MHD_OPTION_LISTEN_SOCKET,
	    h->listen_fd, MHD_OPTION_CONNECTION_LIMIT,
	    http_gate_mhd_limit(h->gate), MHD_OPTION_CONNECTION_TIMEOUT,
	    http_gate_mhd_timeout(h->gate), MHD_OPTION_NOTIFY_CONNECTION,
	    http_gate_notify, h->gate, MHD_OPTION_URI_LOG_CALLBACK,
	    http_gate_uri, h->gate, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
	    (size_t)HTTP_CONN_MEMORY, MHD_OPTION_CONNECTION_MEMORY_INCREMENT,
	    (size_t)HTTP_CONN_MEMORY_INCREMENT, MHD_OPTION_NOTIFY_COMPLETED,
	    http_conn_completed, h, MHD_OPTION_UNESCAPE_CALLBACK, no_unescape,
	    h,
	    /* TLS (http_tls.c): certificate, key, the CA, priorities */
	    MHD_OPTION_ARRAY, h->tls_opts, MHD_OPTION_END);
	if (h->daemon && (rc = http_peerdec_start(h)) != 0) {
		MHD_stop_daemon(h->daemon);
		h->daemon = NULL;
		goto err_gate;
	}
	if (!h->daemon) {
		rc = -EIO;
		if (errmsg && asprintf(errmsg,
				       "cannot start the HTTP server "
				       "on %s",
				       listen) < 0)
			*errmsg = NULL;
		goto err_gate;
	}
	*out = h;
	return 0;

err_gate:
	http_value_cache_free(h->values);
	http_watches_free(h->watches);
	http_gate_stop(h->gate);
	http_gate_free(h->gate);
err_close:
	close(h->listen_fd);
err_free:
	http_auth_free(h->auth);
	pthread_mutex_destroy(&h->certs.mu);
	pthread_cond_destroy(&h->cond);
	pthread_mutex_destroy(&h->mu);
	free(h);
	return rc;
}

int http_reload(struct http_server *h, char **errmsg)
{
	size_t count = 0;

	*errmsg = NULL;
	if (!h->auth)
		return 0;
	int rc = http_auth_reload(h->auth, &count, errmsg);
	if (rc == 0)
		kv_log(KV_LOG_INFO, "--auth reloaded: %zu tokens", count);
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
	http_watches_stop(h->watches); /* they end, and are taken up */
	pthread_mutex_lock(&h->mu);
	h->closing = true;
	while (h->held || h->workers) {
		struct timespec t;
		clock_gettime(CLOCK_REALTIME, &t);
		t.tv_sec += 5;
		if (pthread_cond_timedwait(&h->cond, &h->mu, &t) == ETIMEDOUT)
			kv_log(KV_LOG_INFO,
			       "stopping: waiting for %u "
			       "suspended requests and %u handlers",
			       h->held, h->workers);
	}
	pthread_mutex_unlock(&h->mu);
	/* MHD closes the listen socket it was given, and tells the gate of
	 * every connection it closes. */
	http_gate_stop(h->gate);
	MHD_stop_daemon(h->daemon);
	http_peerdec_stop(h);		  /* no stream feeds it any more */
	http_value_cache_free(h->values); /* no connection sends them now */
	http_watches_free(h->watches);
	http_gate_free(h->gate);
	http_auth_free(h->auth);
	pthread_mutex_destroy(&h->certs.mu);
	pthread_cond_destroy(&h->cond);
	pthread_mutex_destroy(&h->mu);
	free(h);
}

unsigned http_port(const struct http_server *h)
{
	return h ? h->port : 0;
}

void http_stats(struct http_server *h, struct http_stats *out)
{
	if (!h) {
		memset(out, 0, sizeof(*out));
		return;
	}
	http_gate_stats(h->gate, out);
}
