/* tcp.c - the byte protocol's listener: one thread, one poll loop.
 *
 * Every connection is a buffer in and a buffer out on a non-blocking
 * socket; the thread parses a connection's next request (tcp_proto.c)
 * once the previous one is answered, so a connection has at most one call
 * to the node at a time and its replies come in the order of its
 * requests. Writes are node_propose_async calls, reads node_read_now or
 * node_read_barrier_async; their answers come on the node thread, which
 * only queues them here and wakes the loop (an eventfd), so the node never
 * waits for a client. Hostile clients are bounded: a size over the
 * store's limits is refused before its bytes are read, a request must
 * arrive within frame_ms of its first byte, a connection idle for idle_ms
 * or not reading its reply for stall_ms is closed, at most
 * max_connections are served (the next is told busy), and the requests
 * held in memory at once are bounded by budget. docs/byte-protocol.md. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tcp_conn.h"

/* ---- connections ---- */

static void release(struct conn *c)
{
	c->s->held -= c->reserved;
	c->reserved = 0;
}

static void conn_free(struct conn *c)
{
	release(c);
	free(c->in);
	free(c->out);
	free(c);
}

/* Close c's socket; free it unless a call is still to answer. */
static void conn_close(struct tcp_server *s, size_t i)
{
	struct conn *c = s->conns[i];
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	if (c->busy)
		return; /* freed when its answer comes (drain_done) */
	s->conns[i] = s->conns[--s->nconns];
	conn_free(c);
}

/* Drop the request of n bytes c has served; a large request's buffer
 * goes with it, so an idle connection holds no more than a chunk. */
static void in_consume(struct conn *c, size_t n)
{
	memmove(c->in, c->in + n, c->in_len - n);
	c->in_len -= n;
	release(c);
	if (c->in_cap > 2 * IN_CHUNK && c->in_len <= IN_CHUNK) {
		unsigned char *p = realloc(c->in, IN_CHUNK);
		if (p) {
			c->in = p;
			c->in_cap = IN_CHUNK;
		}
	}
}

/* Parse and serve what c holds, as long as it is not waiting. */
static void process(struct tcp_server *s, struct conn *c, uint64_t now)
{
	while (!c->busy && !c->closing && c->out_off == c->out_len) {
		size_t skip = 0, need;
		while (skip < c->in_len &&
		       (c->in[skip] == ' ' || c->in[skip] == '\t' ||
			c->in[skip] == '\r' || c->in[skip] == '\n'))
			skip++;
		if (skip) {
			memmove(c->in, c->in + skip, c->in_len - skip);
			c->in_len -= skip;
		}
		if (c->in_len == 0) {
			c->frame_start_ms = 0;
			return;
		}
		long r = tcp_parse(c->in, c->in_len, &c->fr, &need);
		if (r == TCP_MORE) {
			if (!c->frame_start_ms)
				c->frame_start_ms = now;
			if (need > c->reserved) {
				if (s->held + (need - c->reserved) >
				    s->opt.budget) {
					conn_reply_err(
					    c, "busy",
					    "too many large requests at "
					    "once: retry later");
					c->closing = true;
					return;
				}
				s->held += need - c->reserved;
				c->reserved = need;
			}
			return;
		}
		if (r < 0) {
			if (r == TCP_EBAD)
				conn_reply_err(
				    c, "bad_request",
				    "not the protocol: SET, GET, DEL or "
				    "ALL, each size 4 bytes "
				    "little-endian followed by a space");
			else
				conn_reply_err(
				    c, "too_large",
				    r == TCP_EKEYBIG
					? "KEY_SIZE is over 4096 bytes"
					: "VAL_SIZE is over 16 MiB");
			c->closing = true;
			return;
		}
		c->fr_len = r;
		c->frame_start_ms = 0;
		conn_serve(c, now);
		if (c->busy)
			return; /* the frame stays until its answer */
		in_consume(c, (size_t)r);
	}
}

/* The answered call of c: reply, drop its request, go on. */
static void answered(struct tcp_server *s, struct conn *c, uint64_t now)
{
	c->busy = false;
	if (c->fd < 0) {
		for (size_t i = 0; i < s->nconns; i++)
			if (s->conns[i] == c) {
				s->conns[i] = s->conns[--s->nconns];
				break;
			}
		conn_free(c);
		return;
	}
	conn_finish(c, c->ret, &c->res);
	in_consume(c, (size_t)c->fr_len);
	c->last_ms = now;
	process(s, c, now);
}

static void drain_done(struct tcp_server *s, uint64_t now)
{
	uint64_t v;
	ssize_t r = read(s->wake_fd, &v, sizeof(v));
	(void)r;
	pthread_mutex_lock(&s->mu);
	struct conn *d = s->done;
	s->done = NULL;
	pthread_mutex_unlock(&s->mu);
	while (d) {
		struct conn *next = d->next_done;
		d->answered = false;
		answered(s, d, now);
		d = next;
	}
}

static void accept_all(struct tcp_server *s, uint64_t now)
{
	for (;;) {
		int fd = accept4(s->listen_fd, NULL, NULL,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return; /* EAGAIN, or out of descriptors: next turn */
		if (s->nconns >= s->opt.max_connections) {
			unsigned char buf[128];
			size_t n = tcp_reply_err(buf, sizeof(buf), "busy",
						 "too many connections: retry "
						 "later");
			ssize_t w = send(fd, buf, n, MSG_NOSIGNAL);
			(void)w;
			close(fd);
			continue;
		}
		struct conn *c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c->s = s;
		c->fd = fd;
		c->last_ms = now;
		s->conns[s->nconns++] = c;
	}
}

/* Read what the socket has, within what the request being received
 * needs (a connection never holds more than one request and a chunk). */
static void conn_read(struct tcp_server *s, size_t i, uint64_t now)
{
	struct conn *c = s->conns[i];
	for (;;) {
		size_t want = c->reserved > c->in_len + IN_CHUNK
				  ? c->reserved
				  : c->in_len + IN_CHUNK;
		if (want > c->in_cap) {
			unsigned char *p = realloc(c->in, want);
			if (!p) {
				conn_close(s, i);
				return;
			}
			c->in = p;
			c->in_cap = want;
		}
		ssize_t n =
		    recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
		if (n > 0) {
			c->in_len += (size_t)n;
			c->last_ms = now;
			process(s, c, now);
			if (c->busy || c->closing || c->out_off < c->out_len)
				return;
			continue;
		}
		if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
			/* the client is gone, or closed its side: a request
			 * cut short is answered before the close */
			if (c->in_len > 0 && !c->busy) {
				conn_reply_err(c, "bad_request",
					       "the connection ended inside a "
					       "request");
				c->closing = true;
				ssize_t w =
				    send(c->fd, c->out + c->out_off,
					 c->out_len - c->out_off, MSG_NOSIGNAL);
				(void)w;
			}
			conn_close(s, i);
			return;
		}
		return;
	}
}

/* Write what c has to send. false if the connection is to be closed. */
static bool conn_write(struct conn *c, uint64_t now)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off,
				 c->out_len - c->out_off, MSG_NOSIGNAL);
		if (n > 0) {
			c->out_off += (size_t)n;
			c->last_ms = now;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return true;
		return false;
	}
	c->out_off = c->out_len = 0;
	if (c->out_cap > IN_CHUNK) { /* a big reply's buffer goes */
		free(c->out);
		c->out = NULL;
		c->out_cap = 0;
	}
	return !c->closing;
}

/* The deadline of c (CLOCK_MONOTONIC ms), 0 if none; whether it passed
 * with *why. */
static uint64_t deadline_of(const struct tcp_server *s, const struct conn *c,
			    const char **why)
{
	if (c->busy || c->fd < 0)
		return 0; /* the node's write timeout bounds the call */
	if (c->out_off < c->out_len) {
		*why = NULL; /* it does not read: no use telling it */
		return c->last_ms + s->opt.stall_ms;
	}
	if (c->frame_start_ms) {
		*why = "the request did not arrive in time";
		return c->frame_start_ms + s->opt.frame_ms;
	}
	*why = NULL;
	return c->last_ms + s->opt.idle_ms;
}

/* The poll set of a turn: the wake fd, the listener, then every open
 * connection (who[k] for pf[k]); *next the nearest deadline (0: none). */
static size_t poll_set(struct tcp_server *s, struct pollfd *pf,
		       struct conn **who, uint64_t *next)
{
	size_t n = 0;
	*next = 0;
	pf[n++] = (struct pollfd){.fd = s->wake_fd, .events = POLLIN};
	pf[n++] = (struct pollfd){.fd = s->listen_fd, .events = POLLIN};
	for (size_t i = 0; i < s->nconns; i++) {
		struct conn *c = s->conns[i];
		const char *why;
		if (c->fd < 0)
			continue;
		short ev = 0;
		if (c->out_off < c->out_len)
			ev |= POLLOUT;
		else if (!c->busy && !c->closing)
			ev |= POLLIN;
		who[n] = c;
		pf[n++] = (struct pollfd){.fd = c->fd, .events = ev};
		uint64_t d = deadline_of(s, c, &why);
		if (d && (!*next || d < *next))
			*next = d;
	}
	return n;
}

/* The connections poll found ready: write, read, or close. */
static void serve_ready(struct tcp_server *s, const struct pollfd *pf,
			struct conn *const *who, size_t n, uint64_t now)
{
	for (size_t k = 2; k < n; k++) {
		if (!pf[k].revents)
			continue;
		size_t i;
		for (i = 0; i < s->nconns && s->conns[i] != who[k]; i++)
			;
		if (i == s->nconns || who[k]->fd < 0)
			continue; /* closed meanwhile */
		struct conn *c = who[k];
		if (pf[k].revents & POLLOUT) {
			if (!conn_write(c, now)) {
				conn_close(s, i);
				continue;
			}
			process(s, c, now);
			if (c->out_off < c->out_len)
				conn_write(c, now);
		} else if (pf[k].revents & (POLLIN | POLLHUP | POLLERR)) {
			if (c->busy) {
				/* gone while its call runs */
				if (pf[k].revents & (POLLHUP | POLLERR))
					conn_close(s, i);
				continue;
			}
			conn_read(s, i, now);
		}
	}
}

/* Replies made while reading go out at once; deadlines. */
static void flush_and_expire(struct tcp_server *s, uint64_t now)
{
	for (size_t i = 0; i < s->nconns;) {
		struct conn *c = s->conns[i];
		const char *why = NULL;
		if (c->fd < 0) {
			i++;
			continue;
		}
		/* write what is ready, then serve what the buffer holds next
		 * (pipelined requests), as long as the socket takes the
		 * replies */
		bool gone = false;
		while (c->out_off < c->out_len) {
			size_t before = c->out_len;
			if (!conn_write(c, now)) {
				gone = true;
				break;
			}
			if (c->out_off < c->out_len)
				break; /* the socket is full */
			process(s, c, now);
			if (c->out_len == 0 || c->out_len == before)
				break;
		}
		if (gone || (c->closing && c->out_off == c->out_len)) {
			conn_close(s, i);
			continue;
		}
		uint64_t d = deadline_of(s, c, &why);
		if (d && d <= now) {
			if (why) {
				conn_reply_err(c, "timeout", why);
				c->closing = true;
				ssize_t w =
				    send(c->fd, c->out + c->out_off,
					 c->out_len - c->out_off, MSG_NOSIGNAL);
				(void)w;
			}
			conn_close(s, i);
			continue;
		}
		i++;
	}
}

static void *loop_main(void *arg)
{
	struct tcp_server *s = arg;
	size_t cap = (size_t)s->opt.max_connections + 2;
	struct pollfd *pf = calloc(cap, sizeof(*pf));
	struct conn **who = calloc(cap, sizeof(*who));

	if (!pf || !who) {
		kv_log(KV_LOG_ERROR, "tcp: out of memory, not serving");
		free(pf);
		free(who);
		return NULL;
	}
	for (;;) {
		pthread_mutex_lock(&s->mu);
		bool stop = s->stop;
		pthread_mutex_unlock(&s->mu);
		if (stop)
			break;
		uint64_t now = kv_mono_ms(), next;
		size_t n = poll_set(s, pf, who, &next);
		int timeout = -1;
		if (next)
			timeout = next > now ? (int)(next - now) : 0;
		if (poll(pf, n, timeout) < 0 && errno != EINTR) {
			kv_log(KV_LOG_ERROR, "tcp: poll: %s", strerror(errno));
			break;
		}
		now = kv_mono_ms();
		if (pf[0].revents)
			drain_done(s, now);
		if (pf[1].revents)
			accept_all(s, now);
		serve_ready(s, pf, who, n, now);
		flush_and_expire(s, now);
	}
	free(pf);
	free(who);
	return NULL;
}

/* ---- start and stop ---- */

static int fail(char **errmsg, int err, const char *fmt, const char *a,
		const char *b)
{
	if (errmsg) {
		char buf[256];
		snprintf(buf, sizeof(buf), fmt, a, b);
		*errmsg = strdup(buf);
	}
	return err;
}

static int bind_listen(struct tcp_server *s, const char *addr, char **errmsg)
{
	char host[KV_ADDR_MAX + 1], port[8];
	unsigned p;
	const char *why = NULL;
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE},
			*ai = NULL;

	if (kv_addr_parse(addr, true, host, sizeof(host), &p, &why) != 0)
		return fail(errmsg, -EINVAL, "--tcp-listen=%s: %s", addr,
			    why ? why : "not HOST:PORT");
	snprintf(port, sizeof(port), "%u", p);
	int rc = getaddrinfo(host, port, &hints, &ai);
	if (rc != 0)
		return fail(errmsg, -EINVAL, "--tcp-listen=%s: %s", addr,
			    gai_strerror(rc));
	int fd = -1, err = 0;
	for (struct addrinfo *a = ai; a; a = a->ai_next) {
		fd = socket(a->ai_family,
			    a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			err = errno;
			continue;
		}
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 &&
		    listen(fd, 128) == 0)
			break;
		err = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	if (fd < 0)
		return fail(errmsg, -err, "--tcp-listen=%s: %s", addr,
			    strerror(err));
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
		s->port = ntohs(ss.ss_family == AF_INET6
				    ? ((struct sockaddr_in6 *)&ss)->sin6_port
				    : ((struct sockaddr_in *)&ss)->sin_port);
	s->listen_fd = fd;
	return 0;
}

int tcp_start(struct kv_node *n, const struct tcp_options *opt,
	      struct tcp_server **out, char **errmsg)
{
	struct tcp_server *s = calloc(1, sizeof(*s));
	int err;

	if (errmsg)
		*errmsg = NULL;
	if (!s)
		return -ENOMEM;
	s->node = n;
	s->opt = *opt;
	if (!s->opt.max_connections)
		s->opt.max_connections = TCP_DEFAULT_MAX_CONNECTIONS;
	if (!s->opt.idle_ms)
		s->opt.idle_ms = TCP_DEFAULT_IDLE_MS;
	if (!s->opt.frame_ms)
		s->opt.frame_ms = TCP_DEFAULT_FRAME_MS;
	if (!s->opt.stall_ms)
		s->opt.stall_ms = TCP_DEFAULT_STALL_MS;
	if (!s->opt.budget)
		s->opt.budget = TCP_DEFAULT_BUDGET;
	s->listen_fd = s->wake_fd = -1;
	pthread_mutex_init(&s->mu, NULL);
	s->conns = calloc(s->opt.max_connections, sizeof(*s->conns));
	s->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (!s->conns || s->wake_fd < 0) {
		err = s->conns ? -errno : -ENOMEM;
		goto fail;
	}
	if ((err = bind_listen(s, opt->listen, errmsg)) != 0)
		goto fail;
	if ((err = -pthread_create(&s->thread, NULL, loop_main, s)) != 0)
		goto fail;
	pthread_setname_np(s->thread, "kvfs-tcp");
	s->started = true;
	kv_log(KV_LOG_INFO,
	       "tcp: serving the byte protocol on port %u (at most %u "
	       "connections)",
	       s->port, s->opt.max_connections);
	*out = s;
	return 0;
fail:
	if (s->listen_fd >= 0)
		close(s->listen_fd);
	if (s->wake_fd >= 0)
		close(s->wake_fd);
	free(s->conns);
	pthread_mutex_destroy(&s->mu);
	free(s);
	return err;
}

unsigned tcp_port(const struct tcp_server *s)
{
	return s->port;
}

void tcp_stop(struct tcp_server *s)
{
	uint64_t one = 1;

	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	s->stop = true;
	pthread_mutex_unlock(&s->mu);
	ssize_t w = write(s->wake_fd, &one, sizeof(one));
	(void)w;
	if (s->started)
		pthread_join(s->thread, NULL);
	/* after node_stop every call is answered: nothing refers to a
	 * connection any more */
	for (size_t i = 0; i < s->nconns; i++) {
		if (s->conns[i]->fd >= 0)
			close(s->conns[i]->fd);
		conn_free(s->conns[i]);
	}
	close(s->listen_fd);
	close(s->wake_fd);
	free(s->conns);
	pthread_mutex_destroy(&s->mu);
	free(s);
}
