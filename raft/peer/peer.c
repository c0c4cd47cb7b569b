/* peer.c - the peer senders: one stream, one thread and one bounded queue
 * per peer.
 *
 * Each peer gets one long POST to its PEER_STREAM_PATH (a stream), spoken
 * by hand over a plain socket: HTTP/1.1, a chunked body, each chunk one
 * frame (a batch encoded by msg.c). peers_send, on the caller's thread
 * (the node thread), encodes the messages for a peer and writes the frame
 * straight into the socket when the stream is open and nothing waits
 * before it: no copy, no queue, no other thread to wake, on the common
 * path. Otherwise it copies the messages into the peer's bounded queue and
 * the peer's thread sends them. That thread opens the stream (connect, the
 * request, and "100 Continue" before any frame, so that a peer refusing the
 * stream answers before any frame is lost), writes what a full socket did
 * not take, watches for the peer's answer (which only comes when the
 * stream ends or fails), ends an idle stream and backs off after
 * failures. Raft tolerates loss, so a full queue drops old messages and a
 * frame lost with a failed stream is not retried (the core resends
 * appends). Receiving is in peer_recv.c and http*.c; the protocol is in
 * docs/peer-protocol.md. */
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "kv.h"
#include "peer.h"

#define DEF_MAX_QUEUE	    1024
#define DEF_MAX_QUEUE_BYTES (64u * 1024u * 1024u)
#define DEF_BATCH_BYTES	    (4u * 1024u * 1024u)
#define DEF_CONNECT_MS	    1000
#define DEF_TIMEOUT_MS	    10000
#define DEF_BACKOFF_MIN_MS  10
#define DEF_BACKOFF_MAX_MS  1000
/* Bytes of an error response kept for last_err. */
#define RESP_KEEP 120
/* Bytes of a peer's answer read at most (its head and the start of its
 * body). */
#define ANSWER_MAX 2048

/* An idle stream is ended after this long (and opened again by the next
 * message), so no connection waits for nothing. */
#define DEF_IDLE_MS 5000
/* A sender with an open stream looks at its timers this often. */
#define STREAM_TICK_MS 100

/* One queued message, a deep copy. */
struct qmsg {
	struct qmsg *next;
	size_t bytes; /* entry data it holds */
	struct raft_message m;
};

/* A piece of the stream's body on its way into the socket: one frame as
 * one HTTP chunk (its size line and the frame's length line in head, the
 * payload, the chunk's closing CRLF), or the body's end (head alone). */
struct chunk {
	bool active;	    /* something is waiting to go */
	char head[48];	    /* "<hex>\r\n" and the frame header */
	size_t hlen;	    /* bytes of head */
	char *body;	    /* the encoded batch; NULL for the body's end */
	size_t blen;	    /* its length */
	size_t off;	    /* bytes of head, body and CRLF the socket took */
	size_t msgs;	    /* messages in the frame */
	uint64_t *proposes; /* the ctx of each propose message in it */
	size_t n_proposes;
	uint64_t moved_ms; /* the socket last took bytes, or the chunk came */
};

/* Where a peer's stream is. Frames are written only while STREAM_OPEN. */
enum stream_state {
	STREAM_DOWN,	/* no connection */
	STREAM_OPENING, /* connecting, or waiting for "100 Continue" */
	STREAM_OPEN,	/* frames go */
	STREAM_ENDING,	/* its end is written, or the peer answered */
};

struct peer {
	struct peer_set *set;
	uint64_t id;
	char addr[RAFT_ADDR_MAX];
	pthread_t thread;
	int wake_fd; /* an eventfd that wakes the sender from poll */
	atomic_bool stop;

	pthread_mutex_t mu; /* guards everything below */
	pthread_cond_t cv;  /* a message arrived, or stop */
	enum stream_state state;
	/* the stream's socket: set and closed by the sender thread, with mu
	 * held; written by others (mu held) only while STREAM_OPEN */
	int fd;
	bool sleeping; /* the sender polls its open stream */
	bool busy;     /* the sender encodes a batch it took from the queue */
	int sock_err;  /* a write to the stream failed with this errno */
	struct chunk out;	/* what the socket has not taken yet */
	uint64_t last_frame_ms; /* a frame last went whole (monotonic) */
	struct qmsg *head, *tail;
	size_t queued, qbytes;
	struct peer_info info;
};

struct peer_set {
	char *cluster_id;
	char *token;
	uint64_t self;
	struct peer_options opt;

	pthread_mutex_t mu; /* guards the array; held while sending */
	struct peer **peers;
	size_t n, cap;
};

static uint64_t now_ms(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* "host:port", "[v6]:port": no characters that could bend the request. */
static bool addr_valid(const char *a)
{
	size_t n = strlen(a);

	if (n == 0 || n >= RAFT_ADDR_MAX || strchr(a, ':') == NULL)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((a[i] >= 'a' && a[i] <= 'z') ||
		      (a[i] >= 'A' && a[i] <= 'Z') ||
		      (a[i] >= '0' && a[i] <= '9') || strchr(".-:[]_", a[i])))
			return false;
	return true;
}

static void wake(struct peer *p)
{
	uint64_t one = 1;
	ssize_t r = write(p->wake_fd, &one, sizeof(one));
	(void)r; /* a full counter wakes the sender as well */
}

/* Take the wake-ups the sender has seen (the sender thread). */
static void drain_wake(struct peer *p)
{
	uint64_t v;
	ssize_t r = read(p->wake_fd, &v, sizeof(v));
	(void)r; /* nothing to take is fine */
}

/* ---- The queue (peer->mu held) ---- */

static void qmsg_free(struct qmsg *q)
{
	for (size_t i = 0; i < q->m.n_entries; i++)
		free(q->m.entries[i].data);
	free(q->m.entries);
	free(q);
}

static struct qmsg *qmsg_copy(const struct raft_message *m)
{
	struct qmsg *q = calloc(1, sizeof(*q));

	if (q == NULL)
		return NULL;
	q->m = *m;
	q->m.entries = NULL;
	q->m.n_entries = 0;
	if (m->n_entries == 0)
		return q;
	q->m.entries = calloc(m->n_entries, sizeof(*m->entries));
	if (q->m.entries == NULL)
		goto err_free;
	for (size_t i = 0; i < m->n_entries; i++) {
		const struct raft_entry *e = &m->entries[i];
		struct raft_entry *c = &q->m.entries[i];

		*c = *e;
		c->data = NULL;
		q->m.n_entries = i + 1;
		if (e->len > 0) {
			c->data = malloc(e->len);
			if (c->data == NULL)
				goto err_free;
			memcpy(c->data, e->data, e->len);
			q->bytes += e->len;
		}
	}
	return q;

err_free:
	qmsg_free(q);
	return NULL;
}

/* Appends and heartbeats (and their answers) are superseded by the next
 * ones or resent by the core; votes, reads, snapshots and TimeoutNow are
 * rarer and worth keeping longer. */
static bool droppable(enum raft_msg_type t)
{
	return t == RAFT_MSG_APPEND || t == RAFT_MSG_HEARTBEAT ||
	       t == RAFT_MSG_APPEND_RESP || t == RAFT_MSG_HEARTBEAT_RESP;
}

/* Drop the oldest droppable message, else the oldest. */
static void queue_drop_one(struct peer *p)
{
	struct qmsg *prev = NULL, *q = p->head;

	while (q != NULL && !droppable(q->m.type)) {
		prev = q;
		q = q->next;
	}
	if (q == NULL) {
		prev = NULL;
		q = p->head;
	}
	if (prev == NULL)
		p->head = q->next;
	else
		prev->next = q->next;
	if (p->tail == q)
		p->tail = prev;
	p->queued--;
	p->qbytes -= q->bytes;
	p->info.dropped++;
	qmsg_free(q);
}

static void queue_push(struct peer *p, struct qmsg *q)
{
	const struct peer_options *o = &p->set->opt;

	while (p->queued > 0 && (p->queued >= o->max_queue ||
				 p->qbytes + q->bytes > o->max_queue_bytes))
		queue_drop_one(p);
	if (p->tail != NULL)
		p->tail->next = q;
	else
		p->head = q;
	p->tail = q;
	p->queued++;
	p->qbytes += q->bytes;
}

static void queue_clear(struct peer *p)
{
	while (p->head != NULL) {
		struct qmsg *q = p->head;
		p->head = q->next;
		qmsg_free(q);
	}
	p->tail = NULL;
	p->queued = 0;
	p->qbytes = 0;
}

/* A rough upper bound of m's encoded size. */
static size_t wire_size(const struct raft_message *m)
{
	size_t bytes = 0;

	for (size_t i = 0; i < m->n_entries; i++)
		bytes += m->entries[i].len;
	return 256 + m->n_entries * 96 + bytes / 3 * 4 + 4;
}

/* ---- Batches ---- */

/* Take the front of the queue, up to the batch size (at least one). */
static struct qmsg *batch_take(struct peer *p, size_t *count)
{
	struct qmsg *first = p->head, *last = NULL, *q;
	size_t size = 0, n = 0;

	for (q = p->head; q != NULL; q = q->next) {
		size_t w = wire_size(&q->m);
		if (n > 0 && (size + w > p->set->opt.batch_bytes ||
			      n == PEER_BATCH_MSGS))
			break;
		size += w;
		n++;
		last = q;
		p->queued--;
		p->qbytes -= q->bytes;
	}
	p->head = q;
	if (q == NULL)
		p->tail = NULL;
	if (last != NULL)
		last->next = NULL;
	*count = n;
	return first;
}

/* Wait up to ms, or until stopped. mu held. */
static void backoff_wait(struct peer *p, unsigned ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	while (!atomic_load(&p->stop))
		if (pthread_cond_timedwait(&p->cv, &p->mu, &ts) == ETIMEDOUT)
			break;
}

/* ---- Chunks: frames on their way into the socket ---- */

/* Make c the frame of payload body[0..blen) (taken, with proposes), or
 * the body's end when body is NULL. */
static void chunk_set(struct chunk *c, char *body, size_t blen, size_t msgs,
		      uint64_t *proposes, size_t n_proposes)
{
	*c = (struct chunk){.active = true,
			    .body = body,
			    .blen = blen,
			    .msgs = msgs,
			    .proposes = proposes,
			    .n_proposes = n_proposes,
			    .moved_ms = now_ms(CLOCK_MONOTONIC)};
	if (body == NULL) {
		memcpy(c->head, "0\r\n\r\n", 5);
		c->hlen = 5;
		return;
	}
	char fh[PEER_FRAME_HDR_MAX];
	size_t fl = peer_frame_header(blen, fh);
	c->hlen =
	    (size_t)snprintf(c->head, sizeof(c->head), "%zx\r\n", fl + blen);
	memcpy(c->head + c->hlen, fh, fl);
	c->hlen += fl;
}

static void chunk_clear(struct chunk *c)
{
	free(c->body);
	free(c->proposes);
	*c = (struct chunk){.active = false};
}

/* Count a frame the socket took whole at mono_ms. mu held. */
static void count_sent(struct peer *p, size_t msgs, uint64_t mono_ms)
{
	p->info.sent += msgs;
	p->info.batches++;
	p->info.last_ok_ms = now_ms(CLOCK_REALTIME);
	p->info.reachable = true;
	p->info.failures = 0;
	p->info.backoff_ms = 0;
	p->last_frame_ms = mono_ms;
}

/* Write what the socket takes now of p->out; once all of it went, count
 * its frame and forget it. 1: all went; 0: the rest waits for room;
 * -errno: the stream broke. mu held, p->fd open. */
static int out_push(struct peer *p)
{
	static const char crlf[2] = {'\r', '\n'};
	struct chunk *c = &p->out;

	for (;;) {
		const char *seg[3] = {c->head, c->body, crlf};
		size_t len[3] = {c->hlen, c->blen, c->body ? 2 : 0};
		size_t skip = c->off;
		struct iovec iov[3];
		int k = 0;

		for (int i = 0; i < 3; i++) {
			if (skip >= len[i]) {
				skip -= len[i];
				continue;
			}
			iov[k].iov_base = (void *)(seg[i] + skip);
			iov[k++].iov_len = len[i] - skip;
			skip = 0;
		}
		if (k == 0)
			break;
		struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)k};
		ssize_t r = sendmsg(p->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return -errno;
		}
		c->off += (size_t)r;
		c->moved_ms = now_ms(CLOCK_MONOTONIC);
	}
	if (c->body != NULL)
		count_sent(p, c->msgs, c->moved_ms);
	chunk_clear(c);
	return 1;
}

/* Tell the owner about propose messages that surely never reached the
 * peer. The sender thread, no lock held. */
static void report_unsent(struct peer *p, const uint64_t *ctx, size_t n)
{
	const struct peer_options *opt = &p->set->opt;
	for (size_t i = 0; opt->unsent != NULL && i < n; i++)
		opt->unsent(opt->unsent_arg, p->id, ctx[i]);
}

/* Encode msgs[0..n) into a frame for c (empty), noting its propose
 * messages. 0, -ENOMEM, or the encoder's error. */
static int frame_build(struct peer *p, const struct raft_message *msgs,
		       size_t n, struct chunk *c)
{
	size_t np = 0;
	uint64_t *proposes = NULL;
	char *body = NULL;
	size_t len = 0;

	for (size_t i = 0; i < n; i++)
		np += msgs[i].type == RAFT_MSG_PROPOSE;
	if (np > 0 && (proposes = malloc(np * sizeof(*proposes))) == NULL)
		return -ENOMEM;
	np = 0;
	for (size_t i = 0; i < n; i++)
		if (msgs[i].type == RAFT_MSG_PROPOSE)
			proposes[np++] = msgs[i].ctx;
	int err = peer_msgs_encode(p->set->cluster_id, p->set->self, msgs, n,
				   &body, &len);
	if (err < 0) {
		free(proposes);
		return err;
	}
	chunk_set(c, body, len, n, proposes, np);
	return 0;
}

/* A batch taken from the queue as the frame of p->out (the sender
 * thread, mu not held). On failure the batch is lost, counted and its
 * propose messages reported. The batch is freed. */
static void batch_to_out(struct peer *p, struct qmsg *batch, size_t n)
{
	struct raft_message *msgs = malloc(n * sizeof(*msgs));
	struct chunk c = {.active = false};
	size_t i = 0;
	int err = -ENOMEM;

	if (msgs != NULL) {
		for (struct qmsg *q = batch; q != NULL; q = q->next)
			msgs[i++] = q->m; /* shallow: the qmsgs own the data */
		err = frame_build(p, msgs, n, &c);
	}
	pthread_mutex_lock(&p->mu);
	p->busy = false;
	if (err == 0) {
		p->out = c;
	} else {
		p->info.dropped += n;
		p->info.last_err_ms = now_ms(CLOCK_REALTIME);
		snprintf(p->info.last_err, sizeof(p->info.last_err),
			 "encoding a batch: %s", strerror(-err));
	}
	pthread_mutex_unlock(&p->mu);
	for (struct qmsg *q = batch; q != NULL;) {
		struct qmsg *next = q->next;
		if (err != 0 && q->m.type == RAFT_MSG_PROPOSE)
			report_unsent(p, &q->m.ctx, 1);
		qmsg_free(q);
		q = next;
	}
	free(msgs);
}

/* ---- The peer's answer ---- */

/* What the peer sent back on the stream's connection. */
struct answer {
	char buf[ANSWER_MAX + 1];
	size_t len;
	bool eof;
};

/* Read what the socket holds into a. 0, or -errno. */
static int answer_read(int fd, struct answer *a)
{
	if (a->len == ANSWER_MAX) {
		a->eof = true; /* enough to judge it */
		return 0;
	}
	ssize_t r =
	    recv(fd, a->buf + a->len, ANSWER_MAX - a->len, MSG_DONTWAIT);
	if (r > 0)
		a->len += (size_t)r;
	else if (r == 0)
		a->eof = true;
	else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
		return -errno;
	return 0;
}

/* The value of header name (lower case, with its ':') in head[0..n), or
 * NULL. */
static const char *header_value(const char *head, size_t n, const char *name)
{
	size_t nl = strlen(name);

	for (const char *l = head; l < head + n;) {
		const char *e = memchr(l, '\n', (size_t)(head + n - l));
		if (e == NULL)
			break;
		if ((size_t)(e - l) > nl && strncasecmp(l, name, nl) == 0) {
			l += nl;
			while (*l == ' ' || *l == '\t')
				l++;
			return l;
		}
		l = e + 1;
	}
	return NULL;
}

/* Is a whole answer in a (its head and the start of its body)? 1: yes,
 * with *status and text (the body's first RESP_KEEP bytes, printable)
 * set; an interim 1xx answer is also taken off a. 0: more is needed.
 * -1: not HTTP. */
static int answer_parse(struct answer *a, int *status, char *text, size_t cap)
{
	a->buf[a->len] = '\0';
	const char *end = memmem(a->buf, a->len, "\r\n\r\n", 4);
	if (end == NULL)
		return a->eof ? -1 : 0;
	size_t hlen = (size_t)(end - a->buf) + 4;
	const char *s = a->buf;
	if (strncmp(s, "HTTP/1.", 7) != 0 || s[8] != ' ' || s[9] < '1' ||
	    s[9] > '5' || s[10] < '0' || s[10] > '9' || s[11] < '0' ||
	    s[11] > '9')
		return -1;
	*status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
	text[0] = '\0';
	if (*status < 200) {
		memmove(a->buf, a->buf + hlen, a->len - hlen);
		a->len -= hlen;
		return 1;
	}
	const char *body = a->buf + hlen;
	size_t have = a->len - hlen, want = RESP_KEEP;
	const char *cl = header_value(a->buf, hlen, "content-length:");
	const char *te = header_value(a->buf, hlen, "transfer-encoding:");
	if (*status == 204 || *status == 304) {
		want = 0;
	} else if (cl != NULL) {
		unsigned long long v = strtoull(cl, NULL, 10);
		want = v < RESP_KEEP ? (size_t)v : RESP_KEEP;
	} else if (te != NULL && strncasecmp(te, "chunked", 7) == 0) {
		const char *nl = memchr(body, '\n', have);
		if (nl == NULL)
			return a->eof ? -1 : 0;
		unsigned long long v = strtoull(body, NULL, 16);
		want = v < RESP_KEEP ? (size_t)v : RESP_KEEP;
		have -= (size_t)(nl + 1 - body);
		body = nl + 1;
	}
	if (have < want && !a->eof && a->len < ANSWER_MAX)
		return 0;
	size_t n = have < want ? have : want;
	if (n >= cap)
		n = cap - 1;
	for (size_t i = 0; i < n; i++)
		text[i] = body[i] < 0x20 || body[i] > 0x7e ? ' ' : body[i];
	while (n > 0 && text[n - 1] == ' ')
		n--;
	text[n] = '\0';
	return 1;
}

/* ---- The stream ---- */

/* Wait until fd is ready for events, end_ms (monotonic) passes or the
 * sender is stopped: 1, 0 or KV_ESHUTDOWN. */
static int wait_fd(struct peer *p, int fd, short events, uint64_t end_ms)
{
	for (;;) {
		if (atomic_load(&p->stop))
			return KV_ESHUTDOWN;
		uint64_t now = now_ms(CLOCK_MONOTONIC);
		if (now >= end_ms)
			return 0;
		struct pollfd pf[2] = {{.fd = fd, .events = events},
				       {.fd = p->wake_fd, .events = POLLIN}};
		uint64_t left = end_ms - now;
		int r = poll(pf, 2, left > 1000000 ? 1000000 : (int)left);
		if (r < 0 && errno != EINTR)
			return 0;
		if (r > 0 && pf[1].revents)
			drain_wake(p);
		if (r > 0 && pf[0].revents)
			return 1;
	}
}

/* Connect to the peer and send the stream's request; p->fd is the
 * socket once connected. 0, -EIO with why, or KV_ESHUTDOWN. */
static int stream_connect(struct peer *p, char *why, size_t why_len)
{
	const struct peer_set *s = p->set;
	char host[RAFT_ADDR_MAX], port[16];
	const char *colon = strrchr(p->addr, ':');
	size_t hl = (size_t)(colon - p->addr);

	if (p->addr[0] == '[' && hl >= 2 && p->addr[hl - 1] == ']')
		snprintf(host, sizeof(host), "%.*s", (int)(hl - 2),
			 p->addr + 1);
	else
		snprintf(host, sizeof(host), "%.*s", (int)hl, p->addr);
	snprintf(port, sizeof(port), "%s", colon + 1);

	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_NUMERICSERV},
			*res = NULL;
	int rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0) {
		snprintf(why, why_len, "resolving %s: %s", p->addr,
			 gai_strerror(rc));
		return -EIO;
	}
	uint64_t end = now_ms(CLOCK_MONOTONIC) + s->opt.connect_timeout_ms;
	int fd = -1, err = ECONNREFUSED;
	for (struct addrinfo *ai = res; ai != NULL && fd < 0;
	     ai = ai->ai_next) {
		fd = socket(ai->ai_family,
			    ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			    ai->ai_protocol);
		if (fd < 0) {
			err = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		err = errno;
		if (err == EINPROGRESS) {
			int w = wait_fd(p, fd, POLLOUT, end);
			socklen_t sl = sizeof(err);
			if (w == KV_ESHUTDOWN) {
				close(fd);
				freeaddrinfo(res);
				return KV_ESHUTDOWN;
			}
			if (w == 0)
				err = ETIMEDOUT;
			else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err,
					    &sl) != 0)
				err = errno;
		}
		if (err != 0) {
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(res);
	if (fd < 0) {
		if (err == ETIMEDOUT)
			snprintf(why, why_len,
				 "connecting to %s: no answer in %u ms",
				 p->addr, s->opt.connect_timeout_ms);
		else
			snprintf(why, why_len, "connecting to %s: %s", p->addr,
				 strerror(err));
		return -EIO;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	pthread_mutex_lock(&p->mu);
	p->fd = fd;
	pthread_mutex_unlock(&p->mu);

	/* The body's length is not known: it is written as frames come.
	 * "Expect: 100-continue" costs one round trip when a stream opens:
	 * a peer that refuses it (token, cluster, version) answers before
	 * any frame is sent, so its reason arrives whole and no frame is
	 * lost to it. */
	char req[2 * PEER_ID_MAX + RAFT_ADDR_MAX + 512];
	int rl = snprintf(req, sizeof(req),
			  "POST %s HTTP/1.1\r\n"
			  "Host: %s\r\n"
			  "Content-Type: application/x-kvfs-raft-stream\r\n"
			  "Transfer-Encoding: chunked\r\n"
			  "Expect: 100-continue\r\n"
			  "%s: %s\r\n%s: %s\r\n%s: %d\r\n\r\n",
			  PEER_STREAM_PATH, p->addr, PEER_HDR_CLUSTER,
			  s->cluster_id, PEER_HDR_TOKEN, s->token,
			  PEER_HDR_PROTOCOL, PEER_PROTOCOL_VERSION);
	size_t off = 0;
	end = now_ms(CLOCK_MONOTONIC) + s->opt.timeout_ms;
	while (off < (size_t)rl) {
		ssize_t r = send(fd, req + off, (size_t)rl - off,
				 MSG_DONTWAIT | MSG_NOSIGNAL);
		if (r > 0) {
			off += (size_t)r;
			continue;
		}
		if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
		    errno != EINTR) {
			snprintf(why, why_len, "writing to %s: %s", p->addr,
				 strerror(errno));
			return -EIO;
		}
		int w = wait_fd(p, fd, POLLOUT, end);
		if (w == KV_ESHUTDOWN)
			return w;
		if (w == 0) {
			snprintf(why, why_len,
				 "the peer took nothing for %u ms",
				 s->opt.timeout_ms);
			return -EIO;
		}
	}
	return 0;
}

/* Wait for the peer's "100 Continue" to the stream's request. 0, -EIO
 * with why (its refusal, or none in timeout_ms), or KV_ESHUTDOWN. */
static int stream_accepted(struct peer *p, struct answer *a, char *why,
			   size_t why_len)
{
	uint64_t end = now_ms(CLOCK_MONOTONIC) + p->set->opt.timeout_ms;
	char text[RESP_KEEP + 1];
	int status;

	for (;;) {
		int r = answer_parse(a, &status, text, sizeof(text));
		if (r == 1 && status == 100)
			return 0;
		if (r == 1 && status >= 200) {
			snprintf(why, why_len, "HTTP %d: %s", status, text);
			return -EIO;
		}
		if (r < 0) {
			snprintf(why, why_len,
				 "the peer answered the stream's request with "
				 "something other than HTTP");
			return -EIO;
		}
		if (r == 1)
			continue; /* another interim answer */
		if (a->eof) {
			snprintf(why, why_len,
				 "the peer closed the connection without "
				 "answering");
			return -EIO;
		}
		int w = wait_fd(p, p->fd, POLLIN, end);
		if (w == KV_ESHUTDOWN)
			return w;
		if (w == 0) {
			snprintf(why, why_len,
				 "the peer did not answer the stream's request "
				 "in %u ms",
				 p->set->opt.timeout_ms);
			return -EIO;
		}
		if ((r = answer_read(p->fd, a)) < 0) {
			snprintf(why, why_len, "reading from %s: %s", p->addr,
				 strerror(-r));
			return -EIO;
		}
	}
}

/* The peer answered on an open stream (it only does so at the end): 0 if
 * the stream ended because we closed it and the answer is 2xx, 1 if more
 * of the answer is needed, else -EIO with why. */
static int stream_answered(struct peer *p, struct answer *a, bool closing,
			   char *why, size_t why_len)
{
	char text[RESP_KEEP + 1];
	int status = 0;
	int r = answer_read(p->fd, a);

	if (r == -ECONNRESET || r == -EPIPE || (r == 0 && a->eof && !a->len)) {
		snprintf(why, why_len, "the peer closed the stream");
		return -EIO;
	}
	if (r < 0) {
		snprintf(why, why_len, "reading from %s: %s", p->addr,
			 strerror(-r));
		return -EIO;
	}
	r = answer_parse(a, &status, text, sizeof(text));
	if (r == 0 || (r == 1 && status < 200))
		return 1; /* more to come (after an interim answer, the final)
			   */
	if (r < 0)
		snprintf(why, why_len,
			 "the peer answered something other than HTTP");
	else if (status >= 200 && status <= 299 && closing)
		return 0;
	else if (status >= 200 && status <= 299)
		snprintf(why, why_len, "the peer ended the stream");
	else
		snprintf(why, why_len, "HTTP %d: %s", status, text);
	return -EIO;
}

/* Serve an open stream: write the queued batches and what the socket did
 * not take, end it once idle for idle_ms. 0 once so ended and answered;
 * -EIO with why when it failed (broken, a refusal, nothing taken for
 * timeout_ms while a frame waits, or its end not answered in
 * timeout_ms); KV_ESHUTDOWN if stopped. */
static int stream_serve(struct peer *p, struct answer *a, char *why,
			size_t why_len)
{
	const struct peer_options *o = &p->set->opt;
	uint64_t closing_at = 0, answered_at = 0;
	bool closing = false;

	for (;;) {
		struct qmsg *batch = NULL;
		size_t n = 0;
		int err = 0;

		if (atomic_load(&p->stop))
			return KV_ESHUTDOWN;
		pthread_mutex_lock(&p->mu);
		if (p->sock_err == 0 && p->out.active &&
		    (err = out_push(p)) < 0)
			p->sock_err = -err;
		if (p->sock_err != 0) {
			snprintf(why, why_len, "writing to %s: %s", p->addr,
				 strerror(p->sock_err));
			pthread_mutex_unlock(&p->mu);
			return -EIO;
		}
		if (!p->out.active && !closing && p->head != NULL) {
			batch = batch_take(p, &n);
			p->busy = true; /* p->out is being made */
		}
		p->info.queued = p->queued;
		pthread_mutex_unlock(&p->mu);
		if (batch != NULL) {
			batch_to_out(p, batch, n);
			continue;
		}

		uint64_t now = now_ms(CLOCK_MONOTONIC);
		pthread_mutex_lock(&p->mu);
		bool waiting = p->out.active;
		if (waiting && now - p->out.moved_ms > o->timeout_ms) {
			pthread_mutex_unlock(&p->mu);
			snprintf(why, why_len,
				 "the peer took nothing for %u ms",
				 o->timeout_ms);
			return -EIO;
		}
		if (answered_at && now - answered_at > o->timeout_ms) {
			pthread_mutex_unlock(&p->mu);
			snprintf(why, why_len,
				 "the peer's answer did not come whole in %u "
				 "ms",
				 o->timeout_ms);
			return -EIO;
		}
		if (closing && !waiting && now - closing_at > o->timeout_ms) {
			pthread_mutex_unlock(&p->mu);
			snprintf(why, why_len,
				 "the peer did not answer the end of a stream "
				 "in %u ms",
				 o->timeout_ms);
			return -EIO;
		}
		if (!closing && !waiting && p->head == NULL &&
		    now - p->last_frame_ms >= o->idle_ms) {
			closing = true;
			closing_at = now;
			p->state = STREAM_ENDING; /* what comes is queued */
			chunk_set(&p->out, NULL, 0, 0, NULL, 0);
			pthread_mutex_unlock(&p->mu);
			continue;
		}
		/* sleep until the socket (its answer, or room for what
		 * waits), a new message (peers_send wakes us) or the next
		 * timer */
		p->sleeping = true;
		pthread_mutex_unlock(&p->mu);
		struct pollfd pf[2] = {
		    {.fd = p->fd, .events = POLLIN | (waiting ? POLLOUT : 0)},
		    {.fd = p->wake_fd, .events = POLLIN}};
		int r = poll(pf, 2, STREAM_TICK_MS);
		pthread_mutex_lock(&p->mu);
		p->sleeping = false;
		if (r > 0 && (pf[0].revents & (POLLIN | POLLERR | POLLHUP)))
			p->state = STREAM_ENDING; /* no frame goes now */
		pthread_mutex_unlock(&p->mu);
		if (r > 0 && pf[1].revents)
			drain_wake(p);
		if (r > 0 && (pf[0].revents & (POLLIN | POLLERR | POLLHUP))) {
			int end = stream_answered(p, a, closing, why, why_len);
			if (end <= 0)
				return end;
			if (answered_at == 0) /* more of it to come */
				answered_at = now_ms(CLOCK_MONOTONIC);
		}
	}
}

/* Run one stream to the peer: open it, write every batch queued as a frame
 * as it comes (peers_send writes straight into it when it can), and end it
 * once idle. 0 once so ended; -EIO with why filled when it failed;
 * KV_ESHUTDOWN if stopped. The frame being written when it fails is lost,
 * and its propose messages reported. */
static int stream_run(struct peer *p, char *why, size_t why_len)
{
	struct answer a = {.len = 0, .eof = false};
	struct qmsg *batch = NULL;
	size_t n = 0;

	/* The first frame is taken now: if the stream does not open, it is
	 * lost as a frame of a broken stream would be, and a propose in it
	 * is reported at once rather than waiting in the queue of a dead
	 * peer. */
	pthread_mutex_lock(&p->mu);
	p->state = STREAM_OPENING;
	if (p->head != NULL) {
		batch = batch_take(p, &n);
		p->busy = true;
	}
	pthread_mutex_unlock(&p->mu);
	if (batch != NULL)
		batch_to_out(p, batch, n);

	int err = stream_connect(p, why, why_len);
	if (err == 0)
		err = stream_accepted(p, &a, why, why_len);
	if (err == 0) {
		pthread_mutex_lock(&p->mu);
		p->state = STREAM_OPEN;
		p->last_frame_ms = now_ms(CLOCK_MONOTONIC);
		pthread_mutex_unlock(&p->mu);
		err = stream_serve(p, &a, why, why_len);
	}

	pthread_mutex_lock(&p->mu);
	p->state = STREAM_DOWN;
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
	p->sock_err = 0;
	struct chunk lost = p->out;
	p->out = (struct chunk){.active = false};
	if (lost.active && lost.body != NULL)
		p->info.dropped += lost.msgs; /* a frame cut short is lost */
	pthread_mutex_unlock(&p->mu);
	if (lost.active) /* never whole: the peer ignored it */
		report_unsent(p, lost.proposes, lost.n_proposes);
	chunk_clear(&lost);
	return err;
}

/* ---- The sender thread ---- */

static void *sender_main(void *arg)
{
	pthread_setname_np(pthread_self(), "kvfs-peer");
	struct peer *p = arg;
	const struct peer_options *o = &p->set->opt;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		char why[sizeof(p->info.last_err)] = "";

		while (!atomic_load(&p->stop) && p->head == NULL)
			pthread_cond_wait(&p->cv, &p->mu);
		if (atomic_load(&p->stop))
			break;
		pthread_mutex_unlock(&p->mu);
		int err = stream_run(p, why, sizeof(why));
		pthread_mutex_lock(&p->mu);
		if (err == KV_ESHUTDOWN)
			break;
		if (err == 0)
			continue; /* closed while idle */
		p->info.last_err_ms = now_ms(CLOCK_REALTIME);
		snprintf(p->info.last_err, sizeof(p->info.last_err), "%s", why);
		p->info.reachable = false;
		p->info.failures++;
		if (p->info.backoff_ms == 0)
			p->info.backoff_ms = o->backoff_min_ms;
		else if (p->info.backoff_ms < o->backoff_max_ms / 2)
			p->info.backoff_ms *= 2;
		else
			p->info.backoff_ms = o->backoff_max_ms;
		backoff_wait(p, p->info.backoff_ms);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* ---- Sending ---- */

/* May peers_send write to p's stream itself? Only when the stream is
 * open and nothing is waiting to go before it. mu held. */
static bool can_write(const struct peer *p)
{
	return p->state == STREAM_OPEN && !p->out.active && !p->busy &&
	       p->head == NULL && p->sock_err == 0;
}

/* The peer sends nothing on a stream before its end: is its socket still
 * quiet? A frame holding a propose goes only then, since one written
 * after the peer closed (a process killed, a node restarted) would be on
 * its way to nobody, its writes of unknown fate; queued instead, it is
 * reported unsent when the sender finds the stream ended. (A frame handed
 * over whole before a reset is not: the peer may have read all of it and
 * left only the bytes of the chunked encoding after it unread.) */
static bool sock_quiet(int fd)
{
	char c;
	ssize_t r = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	return r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

/* How many of msgs[0..n) (at least one) go in one frame. */
static size_t frame_span(const struct peer *p, const struct raft_message *msgs,
			 size_t n)
{
	size_t size = 0, k = 0;

	for (; k < n && k < PEER_BATCH_MSGS; k++) {
		size_t w = wire_size(&msgs[k]);
		if (k > 0 && size + w > p->set->opt.batch_bytes)
			break;
		size += w;
	}
	return k;
}

/* Hand msgs[0..n), all for p, to p: written to its stream at once while
 * it can take them (can_write), the rest queued for the sender. The
 * number queued or written, or -ENOMEM. s->mu held. */
static int peer_take(struct peer *p, const struct raft_message *msgs, size_t n)
{
	size_t i = 0;
	int err = 0;

	pthread_mutex_lock(&p->mu);
	while (i < n && can_write(p)) {
		size_t k = frame_span(p, msgs + i, n - i);
		bool propose = false;
		for (size_t j = i; j < i + k; j++)
			propose |= msgs[j].type == RAFT_MSG_PROPOSE;
		if (propose && !sock_quiet(p->fd))
			break;
		if (frame_build(p, msgs + i, k, &p->out) != 0)
			break; /* the sender tries, and reports a failure */
		i += k;
		int r = out_push(p);
		if (r < 0)
			p->sock_err = -r; /* the sender ends the stream */
		if (r <= 0 && p->sleeping) {
			p->sleeping = false;
			wake(p); /* to write the rest, or see the failure */
		}
	}
	size_t queued = 0;
	for (; i < n; i++) {
		struct qmsg *q = qmsg_copy(&msgs[i]);
		if (q == NULL) {
			err = -ENOMEM;
			break;
		}
		queue_push(p, q);
		queued++;
	}
	if (queued > 0) {
		p->info.queued = p->queued;
		pthread_cond_signal(&p->cv);
		if (p->sleeping) {
			p->sleeping = false;
			wake(p);
		}
	}
	pthread_mutex_unlock(&p->mu);
	return err < 0 ? err : (int)i;
}

int peers_send(struct peer_set *s, const struct raft_message *msgs, size_t n)
{
	struct raft_message *mine = NULL;
	int sent = 0;

	pthread_mutex_lock(&s->mu);
	for (size_t k = 0; k < s->n && sent >= 0; k++) {
		struct peer *p = s->peers[k];
		size_t c = 0;

		for (size_t i = 0; i < n; i++) {
			const struct raft_message *m = &msgs[i];
			if (m->type == RAFT_MSG_NONE || m->from != s->self ||
			    m->to != p->id)
				continue;
			if (mine == NULL &&
			    (mine = malloc(n * sizeof(*mine))) == NULL) {
				sent = -ENOMEM;
				break;
			}
			mine[c++] = *m; /* shallow: encoded or copied below */
		}
		if (c > 0 && sent >= 0) {
			int r = peer_take(p, mine, c);
			sent = r < 0 ? r : sent + r;
		}
	}
	pthread_mutex_unlock(&s->mu);
	free(mine);
	return sent;
}

/* ---- The set ---- */

int peers_new(const char *cluster_id, const char *token, uint64_t self_id,
	      const struct peer_options *opt, struct peer_set **out)
{
	struct peer_set *s;

	if (!peer_id_valid(cluster_id) || !peer_id_valid(token) ||
	    self_id == RAFT_NONE)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return -ENOMEM;
	s->cluster_id = strdup(cluster_id);
	s->token = strdup(token);
	if (s->cluster_id == NULL || s->token == NULL)
		goto err_free;
	s->self = self_id;
	if (opt != NULL)
		s->opt = *opt;
#define DEF(f, v) (s->opt.f = s->opt.f ? s->opt.f : (v))
	DEF(max_queue, DEF_MAX_QUEUE);
	DEF(max_queue_bytes, DEF_MAX_QUEUE_BYTES);
	DEF(batch_bytes, DEF_BATCH_BYTES);
	DEF(connect_timeout_ms, DEF_CONNECT_MS);
	DEF(timeout_ms, DEF_TIMEOUT_MS);
	DEF(backoff_min_ms, DEF_BACKOFF_MIN_MS);
	DEF(backoff_max_ms, DEF_BACKOFF_MAX_MS);
	DEF(idle_ms, DEF_IDLE_MS);
#undef DEF
	if (s->opt.backoff_max_ms < s->opt.backoff_min_ms)
		s->opt.backoff_max_ms = s->opt.backoff_min_ms;
	pthread_mutex_init(&s->mu, NULL);
	*out = s;
	return 0;

err_free:
	free(s->cluster_id);
	free(s->token);
	free(s);
	return -ENOMEM;
}

/* Index of peer id in s->peers, or -1. s->mu held. */
static ssize_t peer_find(struct peer_set *s, uint64_t id)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->peers[i]->id == id)
			return (ssize_t)i;
	return -1;
}

static void peer_free(struct peer *p)
{
	queue_clear(p);
	chunk_clear(&p->out);
	if (p->wake_fd >= 0)
		close(p->wake_fd);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

static void peer_signal_stop(struct peer *p)
{
	pthread_mutex_lock(&p->mu);
	atomic_store(&p->stop, true);
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	wake(p);
}

int peers_add(struct peer_set *s, uint64_t id, const char *addr)
{
	pthread_condattr_t ca;
	struct peer *p;
	int err;

	if (id == RAFT_NONE || id == s->self || addr == NULL ||
	    !addr_valid(addr))
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return -ENOMEM;
	p->fd = -1;
	p->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (p->wake_fd < 0) {
		err = -errno;
		free(p);
		return err;
	}
	p->set = s;
	p->id = id;
	snprintf(p->addr, sizeof(p->addr), "%s", addr);
	snprintf(p->info.addr, sizeof(p->info.addr), "%s", addr);
	atomic_init(&p->stop, false);
	pthread_mutex_init(&p->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->cv, &ca);
	pthread_condattr_destroy(&ca);

	pthread_mutex_lock(&s->mu);
	if (peer_find(s, id) >= 0) {
		err = -EEXIST;
		goto err_unlock;
	}
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 8;
		struct peer **a = realloc(s->peers, cap * sizeof(*a));
		if (a == NULL) {
			err = -ENOMEM;
			goto err_unlock;
		}
		s->peers = a;
		s->cap = cap;
	}
	err = -pthread_create(&p->thread, NULL, sender_main, p);
	if (err < 0)
		goto err_unlock;
	s->peers[s->n++] = p;
	pthread_mutex_unlock(&s->mu);
	return 0;

err_unlock:
	pthread_mutex_unlock(&s->mu);
	peer_free(p);
	return err;
}

int peers_remove(struct peer_set *s, uint64_t id)
{
	struct peer *p;
	ssize_t i;

	pthread_mutex_lock(&s->mu);
	i = peer_find(s, id);
	if (i < 0) {
		pthread_mutex_unlock(&s->mu);
		return -ENOENT;
	}
	p = s->peers[i];
	s->peers[i] = s->peers[--s->n];
	pthread_mutex_unlock(&s->mu);

	peer_signal_stop(p);
	pthread_join(p->thread, NULL);
	peer_free(p);
	return 0;
}

int peers_info(struct peer_set *s, uint64_t id, struct peer_info *out)
{
	ssize_t i;

	pthread_mutex_lock(&s->mu);
	i = peer_find(s, id);
	if (i >= 0) {
		struct peer *p = s->peers[i];
		pthread_mutex_lock(&p->mu);
		*out = p->info;
		out->queued = p->queued;
		pthread_mutex_unlock(&p->mu);
	}
	pthread_mutex_unlock(&s->mu);
	return i < 0 ? -ENOENT : 0;
}

void peers_free(struct peer_set *s)
{
	if (s == NULL)
		return;
	/* Stop them all first, then wait: one slow stop does not add up. */
	for (size_t i = 0; i < s->n; i++)
		peer_signal_stop(s->peers[i]);
	for (size_t i = 0; i < s->n; i++) {
		pthread_join(s->peers[i]->thread, NULL);
		peer_free(s->peers[i]);
	}
	free(s->peers);
	pthread_mutex_destroy(&s->mu);
	free(s->cluster_id);
	free(s->token);
	free(s);
}
