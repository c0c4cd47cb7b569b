/* peer.c - the peer senders: one thread and one bounded queue per peer.
 *
 * peers_send copies messages into the destination's queue and returns at
 * once; the peer's thread keeps one long POST open to the peer (a stream)
 * and writes everything queued (up to a batch size) into its body as one
 * frame, encoded by msg.c, as soon as the previous frame is on its way: no
 * request to build and no answer to wait for per batch. The stream runs in
 * a curl multi handle that peers_send wakes for a new message and
 * peers_remove/peers_free wake to stop, so stopping never waits for a
 * network timeout; an idle stream is ended and the next message opens
 * another on the same connection. Raft tolerates loss, so a full queue
 * drops old messages and a frame lost with a failed stream is not retried
 * (the core resends appends); failures back off exponentially. Receiving
 * is in peer_recv.c and http*.c; the protocol is in
 * docs/peer-protocol.md. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "store.h"
#include "transport.h"

#define DEF_MAX_QUEUE	    1024
#define DEF_MAX_QUEUE_BYTES (64u * 1024u * 1024u)
#define DEF_BATCH_BYTES	    (4u * 1024u * 1024u)
#define DEF_CONNECT_MS	    1000
#define DEF_TIMEOUT_MS	    10000
#define DEF_BACKOFF_MIN_MS  10
#define DEF_BACKOFF_MAX_MS  1000
/* Bytes of an error response kept for last_err. */
#define RESP_KEEP 120

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

struct peer {
	struct peer_set *set;
	uint64_t id;
	char addr[RAFT_ADDR_MAX];
	char url[RAFT_ADDR_MAX + 32];
	pthread_t thread;
	CURLM *multi; /* outlives the thread, so a stopper may wake it */
	/* the socket of the sender's one connection (open_sock), or
	 * CURL_SOCKET_BAD; the sender thread's alone */
	curl_socket_t fd;
	atomic_bool stop;

	/* the frame being written to the open stream: the sender
	 * thread's alone (curl calls on_read on it) */
	struct stream_out {
		char hdr[PEER_FRAME_HDR_MAX]; /* the length line */
		char *body;		      /* the payload */
		size_t hlen;		      /* bytes of hdr */
		size_t len, off;   /* the frame's bytes, those curl took */
		size_t msgs;	   /* messages in the frame */
		uint64_t moved_ms; /* curl last took bytes, or the frame came */
		bool paused;	   /* curl waits for the next frame */
		bool closing;	   /* idle: end the body */
		size_t done_msgs;  /* handed to curl, not yet counted */
		size_t done_frames; /* ditto, frames */
		/* the ctx of each propose message in the frame */
		uint64_t *proposes;
		size_t n_proposes, cap_proposes;
	} out;

	pthread_mutex_t mu; /* guards everything below */
	pthread_cond_t cv;  /* a message arrived, or stop */
	bool sleeping;	    /* the sender polls its open stream */
	struct qmsg *head, *tail;
	size_t queued, qbytes;
	struct peer_info info;
};

struct peer_set {
	char *cluster_id;
	char *token;
	uint64_t self;
	struct peer_options opt;

	pthread_mutex_t mu; /* guards the array; held while enqueueing */
	struct peer **peers;
	size_t n, cap;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static uint64_t now_ms(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* "host:port", "[v6]:port": no characters that could bend the URL. */
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

/* A rough upper bound of q's encoded size. */
static size_t qmsg_wire_size(const struct qmsg *q)
{
	return 256 + q->m.n_entries * 96 + q->bytes / 3 * 4 + 4;
}

/* ---- Batches ---- */

/* Take the front of the queue, up to the batch size (at least one). */
static struct qmsg *batch_take(struct peer *p, size_t *count)
{
	struct qmsg *first = p->head, *last = NULL, *q;
	size_t size = 0, n = 0;

	for (q = p->head; q != NULL; q = q->next) {
		size_t w = qmsg_wire_size(q);
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

static int batch_encode(struct peer *p, struct qmsg *batch, size_t n,
			char **body, size_t *len)
{
	struct raft_message *msgs = malloc(n * sizeof(*msgs));
	size_t i = 0;
	int err;

	if (msgs == NULL)
		return -ENOMEM;
	for (struct qmsg *q = batch; q != NULL; q = q->next)
		msgs[i++] = q->m; /* shallow: the qmsgs keep ownership */
	err = peer_msgs_encode(p->set->cluster_id, p->set->self, msgs, n, body,
			       len);
	free(msgs);
	return err;
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

/* ---- The stream ---- */

struct resp {
	char text[RESP_KEEP + 1];
	size_t len;
};

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct resp *r = arg;
	size_t n = size * nmemb, room, take;

	if (r == NULL)
		return n;
	room = RESP_KEEP - r->len;
	take = n < room ? n : room;

	memcpy(r->text + r->len, ptr, take);
	r->len += take;
	r->text[r->len] = '\0';
	return n;
}

/* curl asks for body bytes: the rest of the frame in p->out, the end of
 * the body once the stream is closing, else a pause until the next frame
 * (the sender thread unpauses). Sender thread only. */
static size_t on_read(char *dst, size_t size, size_t nitems, void *arg)
{
	struct peer *p = arg;
	struct stream_out *o = &p->out;
	size_t room = size * nitems, n = 0;

	if (o->off == o->len) {
		if (o->closing)
			return 0;
		o->paused = true;
		return CURL_READFUNC_PAUSE;
	}
	while (n < room && o->off < o->len) {
		bool in_hdr = o->off < o->hlen;
		const char *src =
		    in_hdr ? o->hdr + o->off : o->body + (o->off - o->hlen);
		size_t avail = (in_hdr ? o->hlen : o->len) - o->off;
		size_t k = avail < room - n ? avail : room - n;
		memcpy(dst + n, src, k);
		n += k;
		o->off += k;
	}
	o->moved_ms = now_ms(CLOCK_MONOTONIC);
	if (o->off == o->len) { /* the frame is curl's now */
		free(o->body);
		o->body = NULL;
		o->len = o->off = 0;
		o->done_msgs += o->msgs;
		o->done_frames++;
		o->msgs = 0;
		o->n_proposes = 0; /* they may have arrived */
	}
	return n;
}

/* Note the propose messages of batch[0..n), the next frame's. False if
 * out of memory. */
static bool note_proposes(struct stream_out *o, const struct qmsg *batch,
			  size_t n)
{
	o->n_proposes = 0;
	for (const struct qmsg *q = batch; q != NULL && n > 0;
	     q = q->next, n--) {
		if (q->m.type != RAFT_MSG_PROPOSE)
			continue;
		if (o->n_proposes == o->cap_proposes) {
			size_t cap = o->cap_proposes ? o->cap_proposes * 2 : 16;
			uint64_t *p =
			    realloc(o->proposes, cap * sizeof(*o->proposes));
			if (p == NULL)
				return false;
			o->proposes = p;
			o->cap_proposes = cap;
		}
		o->proposes[o->n_proposes++] = q->m.ctx;
	}
	return true;
}

/* Tell the owner about the propose messages of a frame that never went
 * whole, and forget them. Sender thread, p->mu not held. */
static void report_unsent(struct peer *p)
{
	const struct peer_options *opt = &p->set->opt;
	for (size_t i = 0; opt->unsent != NULL && i < p->out.n_proposes; i++)
		opt->unsent(opt->unsent_arg, p->id, p->out.proposes[i]);
	p->out.n_proposes = 0;
}

/* Encode batch[0..n) as the next frame of p->out (empty). 0, or an error
 * with why filled (the batch is then lost; report_unsent tells of its
 * propose messages). */
static int frame_put(struct peer *p, struct qmsg *batch, size_t n, char *why,
		     size_t why_len)
{
	struct stream_out *o = &p->out;
	size_t len = 0;

	if (!note_proposes(o, batch, n)) {
		snprintf(why, why_len, "no memory to note a batch");
		return -ENOMEM;
	}
	int err = batch_encode(p, batch, n, &o->body, &len);
	if (err < 0) {
		snprintf(why, why_len, "encoding a batch: %s", strerror(-err));
		return err;
	}
	o->hlen = peer_frame_header(len, o->hdr);
	o->len = o->hlen + len;
	o->off = 0;
	o->msgs = n;
	o->moved_ms = now_ms(CLOCK_MONOTONIC);
	return 0;
}

/* True if the stream's connection is known to be gone. The peer sends
 * nothing before the end of the stream, so an end of file or a reset on
 * the socket means it closed (a process killed, a node restarted); a
 * paused upload's curl would notice only when it next writes, and by then
 * the next frame would be in the kernel's buffer, on its way to nobody,
 * its propose messages of unknown fate. Noticed first, that frame is
 * never handed over, and is reported unsent. (A frame handed over whole
 * before a reset is not: the peer may have read all of it and left only
 * the bytes of the chunked encoding after it unread.) */
static bool conn_gone(const struct peer *p)
{
	char c;
	if (p->fd == CURL_SOCKET_BAD)
		return false; /* not connected yet */
	ssize_t r = recv(p->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	if (r >= 0)
		return r == 0;
	/* anything else (not connected yet, refused) is curl's to see */
	return errno == ECONNRESET || errno == EPIPE;
}

/* Count what the stream handed to curl since last asked. mu held. */
static void account(struct peer *p)
{
	if (p->out.done_msgs == 0)
		return;
	p->info.sent += p->out.done_msgs;
	p->info.batches += p->out.done_frames;
	p->info.last_ok_ms = now_ms(CLOCK_REALTIME);
	p->info.reachable = true;
	p->info.failures = 0;
	p->info.backoff_ms = 0;
	p->out.done_msgs = p->out.done_frames = 0;
}

/* How the stream ended (the transfer is over). 0 if it ended because we
 * closed it and the peer answered 2xx; else -EIO with why. */
static int stream_result(struct peer *p, CURL *easy, const struct resp *resp,
			 const char *errbuf, char *why, size_t why_len)
{
	CURLcode rc = CURLE_OK;
	CURLMsg *msg;
	long status = 0;
	int left;

	while ((msg = curl_multi_info_read(p->multi, &left)) != NULL)
		if (msg->msg == CURLMSG_DONE && msg->easy_handle == easy)
			rc = msg->data.result;
	if (rc != CURLE_OK) {
		snprintf(why, why_len, "%s",
			 errbuf[0] ? errbuf : curl_easy_strerror(rc));
		return -EIO;
	}
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
	if (status < 200 || status > 299) {
		char text[RESP_KEEP + 1];
		size_t n = resp->len;
		memcpy(text, resp->text, n + 1);
		for (size_t i = 0; i < n; i++)
			if (text[i] < 0x20 || text[i] > 0x7e)
				text[i] = ' ';
		while (n > 0 && text[n - 1] == ' ')
			text[--n] = '\0';
		snprintf(why, why_len, "HTTP %ld: %s", status, text);
		return -EIO;
	}
	if (!p->out.closing) {
		snprintf(why, why_len, "the peer ended the stream");
		return -EIO;
	}
	return 0;
}

/* Run one stream to the peer: open it, write every batch queued as a frame
 * as it comes, and end it once idle for idle_ms. 0 once so ended and
 * answered; -EIO with why filled when it failed (refused, broken, no byte
 * taken for timeout_ms while a frame waits, or its end not answered in
 * timeout_ms); KV_ESHUTDOWN if stopped. */
static int stream_run(struct peer *p, CURL *easy, char *why, size_t why_len)
{
	const struct peer_options *opt = &p->set->opt;
	struct stream_out *o = &p->out;
	char errbuf[CURL_ERROR_SIZE] = "";
	struct resp resp = {.len = 0};
	uint64_t last_frame = now_ms(CLOCK_MONOTONIC), closing_at = 0;
	int running = 1, err = 0;

	resp.text[0] = '\0';
	o->len = o->off = o->msgs = 0;
	o->paused = o->closing = false;
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, &resp);
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, errbuf);
	if (curl_multi_add_handle(p->multi, easy) != CURLM_OK) {
		snprintf(why, why_len, "curl_multi_add_handle failed");
		return -EIO;
	}
	for (;;) {
		struct qmsg *batch = NULL;
		size_t n = 0;

		pthread_mutex_lock(&p->mu);
		account(p);
		if (!o->closing && o->len == 0 && p->head != NULL)
			batch = batch_take(p, &n);
		p->info.queued = p->queued;
		pthread_mutex_unlock(&p->mu);
		if (atomic_load(&p->stop)) {
			err = KV_ESHUTDOWN;
			break;
		}
		if (batch != NULL) {
			char ewhy[160] = "";
			if (frame_put(p, batch, n, ewhy, sizeof(ewhy)) != 0) {
				pthread_mutex_lock(&p->mu);
				p->info.dropped += n;
				p->info.last_err_ms = now_ms(CLOCK_REALTIME);
				snprintf(p->info.last_err,
					 sizeof(p->info.last_err), "%s", ewhy);
				pthread_mutex_unlock(&p->mu);
				report_unsent(p);
			}
			while (batch != NULL) {
				struct qmsg *q = batch;
				batch = q->next;
				qmsg_free(q);
			}
			last_frame = now_ms(CLOCK_MONOTONIC);
		}
		if (o->paused && (o->len > 0 || o->closing)) {
			o->paused = false;
			curl_easy_pause(easy, CURLPAUSE_CONT);
		}
		CURLMcode mc = curl_multi_perform(p->multi, &running);
		if (mc != CURLM_OK) {
			snprintf(why, why_len, "curl: %s",
				 curl_multi_strerror(mc));
			err = -EIO;
			break;
		}
		if (!running) {
			err =
			    stream_result(p, easy, &resp, errbuf, why, why_len);
			break;
		}
		if (!o->closing && conn_gone(p)) {
			snprintf(why, why_len, "the peer closed the stream");
			err = -EIO;
			break;
		}
		uint64_t now = now_ms(CLOCK_MONOTONIC);
		if (o->len > 0 && now - o->moved_ms > opt->timeout_ms) {
			snprintf(why, why_len,
				 "the peer took nothing for %u ms",
				 opt->timeout_ms);
			err = -EIO;
			break;
		}
		if (o->closing && now - closing_at > opt->timeout_ms) {
			snprintf(why, why_len,
				 "the peer did not answer the end of a stream "
				 "in %u ms",
				 opt->timeout_ms);
			err = -EIO;
			break;
		}
		if (!o->closing && o->len == 0 &&
		    now - last_frame >= opt->idle_ms) {
			o->closing = true; /* the next round ends the body */
			closing_at = now;
			continue;
		}
		/* sleep until the socket, a new message (peers_send wakes
		 * us) or the next timer; not while a frame waits for room */
		pthread_mutex_lock(&p->mu);
		account(p);
		bool more = o->len == 0 && !o->closing && p->head != NULL;
		p->sleeping = !more;
		pthread_mutex_unlock(&p->mu);
		if (!more)
			curl_multi_poll(p->multi, NULL, 0, STREAM_TICK_MS,
					NULL);
		pthread_mutex_lock(&p->mu);
		p->sleeping = false;
		pthread_mutex_unlock(&p->mu);
	}
	curl_multi_remove_handle(p->multi, easy);
	/* Both point into this frame; curl must not keep them. */
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, NULL);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, NULL);
	pthread_mutex_lock(&p->mu);
	account(p);
	p->info.dropped += o->msgs; /* a frame cut short is lost */
	pthread_mutex_unlock(&p->mu);
	if (o->len > 0)
		report_unsent(p); /* never whole: the peer ignored it */
	free(o->body);
	o->body = NULL;
	o->len = o->off = o->msgs = 0;
	return err;
}

/* curl opens and closes the connection's socket through these, so that
 * conn_gone can look at it (CURLINFO_ACTIVESOCKET names none while a
 * transfer runs). One connection per sender at a time. */
static curl_socket_t open_sock(void *arg, curlsocktype purpose,
			       struct curl_sockaddr *a)
{
	struct peer *p = arg;
	(void)purpose;
	curl_socket_t fd =
	    socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
	if (fd != CURL_SOCKET_BAD)
		p->fd = fd;
	return fd;
}

static int close_sock(void *arg, curl_socket_t fd)
{
	struct peer *p = arg;
	if (p->fd == fd)
		p->fd = CURL_SOCKET_BAD;
	return close(fd);
}

static CURL *easy_new(struct peer *p, struct curl_slist **hdrs)
{
	const struct peer_set *s = p->set;
	struct curl_slist *h = NULL, *t;
	char line[PEER_ID_MAX + 32];
	CURL *easy = curl_easy_init();

	if (easy == NULL)
		return NULL;
	snprintf(line, sizeof(line), "%s: %s", PEER_HDR_CLUSTER, s->cluster_id);
	if ((t = curl_slist_append(h, "Content-Type: "
				      "application/x-kvfs-raft-stream")) ==
	    NULL)
		goto err_easy;
	h = t;
	/* the body's length is not known: it is written as frames come */
	if ((t = curl_slist_append(h, "Transfer-Encoding: chunked")) == NULL)
		goto err_easy;
	h = t;
	/* One round trip when a stream opens: a peer that refuses it
	 * (token, cluster, version) answers before any frame is sent, so its
	 * reason arrives whole and no frame is lost to it. */
	if ((t = curl_slist_append(h, "Expect: 100-continue")) == NULL)
		goto err_easy;
	h = t;
	if ((t = curl_slist_append(h, line)) == NULL)
		goto err_easy;
	h = t;
	snprintf(line, sizeof(line), "%s: %s", PEER_HDR_TOKEN, s->token);
	if ((t = curl_slist_append(h, line)) == NULL)
		goto err_easy;
	h = t;
	snprintf(line, sizeof(line), "%s: %d", PEER_HDR_PROTOCOL,
		 PEER_PROTOCOL_VERSION);
	if ((t = curl_slist_append(h, line)) == NULL)
		goto err_easy;
	h = t;
	curl_easy_setopt(easy, CURLOPT_URL, p->url);
	curl_easy_setopt(easy, CURLOPT_POST, 1L);
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(easy, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(easy, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
			 (long)s->opt.connect_timeout_ms);
	/* no limit on the whole transfer: a stream lasts; stream_run
	 * gives up on a peer that takes nothing for timeout_ms */
	curl_easy_setopt(easy, CURLOPT_READFUNCTION, on_read);
	curl_easy_setopt(easy, CURLOPT_READDATA, p);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, open_sock);
	curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, p);
	curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, close_sock);
	curl_easy_setopt(easy, CURLOPT_CLOSESOCKETDATA, p);
	*hdrs = h;
	return easy;

err_easy:
	curl_slist_free_all(h);
	curl_easy_cleanup(easy);
	return NULL;
}

/* ---- The sender thread ---- */

static void *sender_main(void *arg)
{
	pthread_setname_np(pthread_self(), "kvfs-peer");
	struct peer *p = arg;
	const struct peer_options *o = &p->set->opt;
	struct curl_slist *hdrs = NULL;
	CURL *easy = easy_new(p, &hdrs);

	pthread_mutex_lock(&p->mu);
	for (;;) {
		char why[sizeof(p->info.last_err)] = "";
		int err;

		while (!atomic_load(&p->stop) && p->head == NULL)
			pthread_cond_wait(&p->cv, &p->mu);
		if (atomic_load(&p->stop))
			break;
		pthread_mutex_unlock(&p->mu);
		if (easy != NULL) {
			err = stream_run(p, easy, why, sizeof(why));
		} else {
			err = -ENOMEM;
			snprintf(why, sizeof(why), "no curl handle");
		}
		pthread_mutex_lock(&p->mu);
		if (err == KV_ESHUTDOWN)
			break;
		if (err == 0)
			continue;   /* closed while idle */
		if (easy == NULL) { /* nothing will ever go: drop the queue */
			p->info.dropped += p->queued;
			queue_clear(p);
		}
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
	if (easy != NULL)
		curl_easy_cleanup(easy);
	curl_slist_free_all(hdrs);
	return NULL;
}

/* ---- The set ---- */

int peers_new(const char *cluster_id, const char *token, uint64_t self_id,
	      const struct peer_options *opt, struct peer_set **out)
{
	struct peer_set *s;

	if (!peer_id_valid(cluster_id) || !peer_id_valid(token) ||
	    self_id == RAFT_NONE)
		return -EINVAL;
	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != CURLE_OK)
		return -ENOMEM;
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
	free(p->out.proposes);
	curl_multi_cleanup(p->multi);
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
	curl_multi_wakeup(p->multi);
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
	if (p != NULL)
		p->fd = CURL_SOCKET_BAD;
	if (p == NULL)
		return -ENOMEM;
	p->set = s;
	p->id = id;
	snprintf(p->addr, sizeof(p->addr), "%s", addr);
	snprintf(p->url, sizeof(p->url), "http://%s%s", addr, PEER_STREAM_PATH);
	snprintf(p->info.addr, sizeof(p->info.addr), "%s", addr);
	atomic_init(&p->stop, false);
	p->multi = curl_multi_init();
	if (p->multi == NULL) {
		free(p);
		return -ENOMEM;
	}
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

int peers_send(struct peer_set *s, const struct raft_message *msgs, size_t n)
{
	int queued = 0;

	pthread_mutex_lock(&s->mu);
	for (size_t i = 0; i < n; i++) {
		const struct raft_message *m = &msgs[i];
		struct qmsg *q;
		struct peer *p;
		ssize_t k;

		if (m->type == RAFT_MSG_NONE || m->from != s->self ||
		    (k = peer_find(s, m->to)) < 0)
			continue;
		p = s->peers[k];
		q = qmsg_copy(m);
		if (q == NULL) {
			pthread_mutex_unlock(&s->mu);
			return -ENOMEM;
		}
		pthread_mutex_lock(&p->mu);
		queue_push(p, q);
		p->info.queued = p->queued;
		pthread_cond_signal(&p->cv);
		if (p->sleeping) { /* in curl_multi_poll on its stream */
			p->sleeping = false;
			curl_multi_wakeup(p->multi);
		}
		pthread_mutex_unlock(&p->mu);
		queued++;
	}
	pthread_mutex_unlock(&s->mu);
	return queued;
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
