/* fakepeer.c - hand-made peers for the tests (see fakepeer.h).
 *
 * The recording peer is a libmicrohttpd server that cuts every stream
 * into frames with the receiver's own peer_frames_feed and keeps each with
 * its request's method, path, headers and client port, so a test can
 * check both what a sender wrote and how. The socket helpers stand for
 * peers that are down, not up yet, or hung. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "fakepeer.h"
#include "kv.h"

void fakepeer_nap(void)
{
	struct timespec ts = {0, 2 * 1000 * 1000};
	nanosleep(&ts, NULL);
}

/* ---- Ports and sockets ---- */

/* A TCP socket bound to a free port of 127.0.0.1. */
static int bound_socket(unsigned *port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	*port = ntohs(sa.sin_port);
	return fd;
}

int fakepeer_reserved_port(unsigned *port)
{
	return bound_socket(port);
}

unsigned fakepeer_dead_port(void)
{
	unsigned port;

	close(bound_socket(&port));
	return port;
}

int fakepeer_hung_listener(unsigned *port)
{
	int fd = bound_socket(port);

	assert_int_equal(listen(fd, 16), 0);
	return fd;
}

int fakepeer_accept_request(int fd)
{
	uint64_t end = kv_mono_ms() + FAKEPEER_DEADLINE_MS;
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	char buf[4096];
	size_t have = 0;
	int c;

	assert_int_equal(poll(&pfd, 1, FAKEPEER_DEADLINE_MS), 1);
	c = accept(fd, NULL, NULL);
	assert_true(c >= 0);
	while (kv_mono_ms() < end) {
		ssize_t r;
		pfd.fd = c;
		if (poll(&pfd, 1, 100) != 1)
			continue;
		r = read(c, buf + have, sizeof(buf) - 1 - have);
		assert_true(r > 0);
		have += (size_t)r;
		buf[have] = '\0';
		if (strstr(buf, "\r\n\r\n") != NULL)
			return c;
	}
	fail_msg("no request arrived");
	return -1;
}

int fakepeer_accept_stream(int fd)
{
	static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
	int c = fakepeer_accept_request(fd);

	assert_int_equal(write(c, cont, sizeof(cont) - 1),
			 (ssize_t)(sizeof(cont) - 1));
	return c;
}

struct MHD_Daemon *fakepeer_mhd_start(int fd, MHD_AccessHandlerCallback on_req,
				      MHD_RequestCompletedCallback on_done,
				      void *cls, unsigned *port)
{
	const unsigned flags = MHD_USE_THREAD_PER_CONNECTION |
			       MHD_USE_INTERNAL_POLLING_THREAD |
			       MHD_USE_ERROR_LOG;
	struct sockaddr_in sa = {.sin_family = AF_INET};
	const union MHD_DaemonInfo *di;
	struct MHD_Daemon *d;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0) {
		assert_int_equal(listen(fd, 16), 0);
		d = MHD_start_daemon(flags, 0, NULL, NULL, on_req, cls,
				     MHD_OPTION_LISTEN_SOCKET, fd,
				     MHD_OPTION_NOTIFY_COMPLETED, on_done, cls,
				     MHD_OPTION_END);
	} else {
		d = MHD_start_daemon(flags, 0, NULL, NULL, on_req, cls,
				     MHD_OPTION_SOCK_ADDR, &sa,
				     MHD_OPTION_NOTIFY_COMPLETED, on_done, cls,
				     MHD_OPTION_END);
	}
	assert_non_null(d);
	di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	assert_non_null(di);
	*port = di->port;
	assert_true(*port > 0);
	return d;
}

/* ---- The recording peer ---- */

/* A stream being received: its request's fields and its frames so far. */
struct upload {
	struct fakepeer *fp;
	struct fakepeer_frame head; /* every field but body and len */
	struct peer_frames f;
};

static void copy_header(struct MHD_Connection *c, const char *name, char *out,
			size_t cap)
{
	const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
	snprintf(out, cap, "%s", v ? v : "");
}

static int on_frame(void *ctx, const char *p, size_t len)
{
	struct upload *up = ctx;
	struct fakepeer *fp = up->fp;
	char *body = malloc(len + 1);

	if (body == NULL)
		return -1; /* the stream fails; the test sees frames missing */
	memcpy(body, p, len);
	body[len] = '\0';
	pthread_mutex_lock(&fp->mu);
	if (fp->n < FAKEPEER_MAX_FRAMES) {
		struct fakepeer_frame *r = &fp->frames[fp->n++];
		*r = up->head;
		r->body = body;
		r->len = len;
		body = NULL;
	}
	pthread_mutex_unlock(&fp->mu);
	free(body);
	return 0;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status,
			     const char *text)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(
	    text ? strlen(text) : 0, (void *)(text ? text : ""),
	    MHD_RESPMEM_PERSISTENT);
	enum MHD_Result ret = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* The first call of a stream: count it, refuse it or note its request. */
static enum MHD_Result stream_begin(struct fakepeer *fp,
				    struct MHD_Connection *c, const char *url,
				    const char *method, void **con_cls)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	struct upload *up;

	pthread_mutex_lock(&fp->mu);
	fp->streams++;
	pthread_mutex_unlock(&fp->mu);
	if (fp->status) /* refused before the body, as kvfs does */
		return reply(c, fp->status, fp->text);
	up = calloc(1, sizeof(*up));
	if (up == NULL)
		return MHD_NO;
	up->fp = fp;
	snprintf(up->head.method, sizeof(up->head.method), "%s", method);
	snprintf(up->head.url, sizeof(up->head.url), "%s", url);
	copy_header(c, "Content-Type", up->head.ctype, sizeof(up->head.ctype));
	copy_header(c, PEER_HDR_CLUSTER, up->head.cluster,
		    sizeof(up->head.cluster));
	copy_header(c, PEER_HDR_TOKEN, up->head.token, sizeof(up->head.token));
	copy_header(c, PEER_HDR_PROTOCOL, up->head.protocol,
		    sizeof(up->head.protocol));
	if (ci != NULL)
		up->head.client_port = ntohs(
		    ((const struct sockaddr_in *)ci->client_addr)->sin_port);
	*con_cls = up;
	return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
				  const char *url, const char *method,
				  const char *version, const char *data,
				  size_t *size, void **con_cls)
{
	struct upload *up = *con_cls;

	(void)version;
	if (up == NULL)
		return stream_begin(cls, c, url, method, con_cls);
	if (*size > 0) {
		while (atomic_load(&up->fp->paused))
			fakepeer_nap(); /* nothing more is read meanwhile */
		int rc = peer_frames_feed(&up->f, data, *size, PEER_MAX_BODY,
					  on_frame, up, NULL, 0);
		*size = 0;
		return rc == 0 ? MHD_YES : MHD_NO;
	}
	return reply(c, MHD_HTTP_NO_CONTENT, NULL);
}

static void on_done(void *cls, struct MHD_Connection *c, void **con_cls,
		    enum MHD_RequestTerminationCode toe)
{
	struct upload *up = *con_cls;

	(void)cls;
	(void)c;
	(void)toe;
	if (up != NULL) {
		peer_frames_free(&up->f);
		free(up);
	}
	*con_cls = NULL;
}

struct fakepeer *fakepeer_start_fd(int fd)
{
	struct fakepeer *fp = calloc(1, sizeof(*fp));

	assert_non_null(fp);
	pthread_mutex_init(&fp->mu, NULL);
	atomic_init(&fp->paused, false);
	fp->d = fakepeer_mhd_start(fd, on_request, on_done, fp, &fp->port);
	return fp;
}

struct fakepeer *fakepeer_start(void)
{
	return fakepeer_start_fd(-1);
}

void fakepeer_stop(struct fakepeer *fp)
{
	MHD_stop_daemon(fp->d);
	for (unsigned i = 0; i < fp->n; i++)
		free(fp->frames[i].body);
	pthread_mutex_destroy(&fp->mu);
	free(fp);
}

struct raft_message *fakepeer_msgs(struct fakepeer *fp, const char *cluster,
				   uint64_t self, size_t *count)
{
	struct raft_message *all = NULL;
	size_t n = 0;

	pthread_mutex_lock(&fp->mu);
	for (unsigned i = 0; i < fp->n; i++) {
		struct raft_message *m;
		size_t k;
		char why[160];
		int rc =
		    peer_handle_body(fp->frames[i].body, fp->frames[i].len,
				     cluster, self, &m, &k, why, sizeof(why));
		if (rc != 0)
			print_error("frame %u refused: %s\n", i, why);
		assert_int_equal(rc, 0);
		all = realloc(all, (n + k + 1) * sizeof(*all));
		assert_non_null(all);
		memcpy(all + n, m, k * sizeof(*m));
		free(m); /* the entries moved into all */
		n += k;
	}
	pthread_mutex_unlock(&fp->mu);
	*count = n;
	return all;
}

struct raft_message *fakepeer_wait_msgs(struct fakepeer *fp,
					const char *cluster, uint64_t self,
					size_t want, size_t *count)
{
	uint64_t end = kv_mono_ms() + FAKEPEER_DEADLINE_MS;

	for (;;) {
		struct raft_message *all =
		    fakepeer_msgs(fp, cluster, self, count);
		if (*count >= want || kv_mono_ms() >= end)
			return all;
		peer_msgs_free(all, *count);
		fakepeer_nap();
	}
}
