/* peer_stream.c - one peer's sender thread and the life of its stream.
 *
 * The thread waits for a message, then opens a stream: a non-blocking
 * connect, the request (peer_http.c), and "100 Continue" before any frame,
 * so that a peer refusing the stream answers before a frame is lost. While
 * the stream is open, peers_send writes frames into it from the caller's
 * thread (peer_set.c); this thread writes what the queue holds and what a
 * full socket did not take, watches for the peer's answer (which only
 * comes when the stream ends or fails), ends the stream once idle, and
 * backs off after a failure. Every wait also polls the peer's eventfd, so
 * a stop is quick even while a peer hangs. State and locks: peer_int.h. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kv.h"
#include "peer_int.h"

/* A sender with an open stream looks at its timers this often. */
#define STREAM_TICK_MS 100

/* Try one address of the peer's: a connected socket, or -1 with *err
 * (an errno) set, or KV_ESHUTDOWN. */
static int try_connect(struct peer *p, const struct addrinfo *ai, uint64_t end,
		       int *err)
{
	int fd = socket(ai->ai_family,
			ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			ai->ai_protocol);
	if (fd < 0) {
		*err = errno;
		return -1;
	}
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
		return fd;
	*err = errno;
	if (*err == EINPROGRESS) {
		int w = peer_wait_fd(p, fd, POLLOUT, end);
		socklen_t sl = sizeof(*err);
		if (w == KV_ESHUTDOWN) {
			close(fd);
			return KV_ESHUTDOWN;
		}
		if (w == 0)
			*err = ETIMEDOUT;
		else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, err, &sl) != 0)
			*err = errno;
	}
	if (*err != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Resolve the peer's address and connect to it within
 * connect_timeout_ms: the socket, -EIO with why, or KV_ESHUTDOWN. */
static int sock_connect(struct peer *p, char *why, size_t why_len)
{
	const struct peer_options *o = &p->set->opt;
	char host[RAFT_ADDR_MAX], port[8];
	const char *bad = NULL;
	unsigned pn = 0;

	if (kv_addr_parse(p->addr, false, host, sizeof(host), &pn, &bad) != 0) {
		snprintf(why, why_len, "%s: %s", p->addr, bad);
		return -EIO;
	}
	snprintf(port, sizeof(port), "%u", pn);
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_NUMERICSERV},
			*res = NULL;
	int rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0) {
		snprintf(why, why_len, "resolving %s: %s", p->addr,
			 gai_strerror(rc));
		return -EIO;
	}
	uint64_t end = kv_mono_ms() + o->connect_timeout_ms;
	int fd = -1, err = ECONNREFUSED;
	for (struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next)
		if ((fd = try_connect(p, ai, end, &err)) == KV_ESHUTDOWN)
			break;
	freeaddrinfo(res);
	if (fd == KV_ESHUTDOWN)
		return fd;
	if (fd < 0 && err == ETIMEDOUT)
		snprintf(why, why_len, "connecting to %s: no answer in %u ms",
			 p->addr, o->connect_timeout_ms);
	else if (fd < 0)
		snprintf(why, why_len, "connecting to %s: %s", p->addr,
			 strerror(err));
	return fd < 0 ? -EIO : fd;
}

/* Write the stream's request within timeout_ms. 0, -EIO with why, or
 * KV_ESHUTDOWN. */
static int request_write(struct peer *p, char *why, size_t why_len)
{
	char req[2 * PEER_ID_MAX + RAFT_ADDR_MAX + 512];
	int rl = peer_http_request(p, req, sizeof(req));

	if (rl < 0) {
		snprintf(why, why_len, "the stream's request does not fit");
		return -EIO;
	}
	int r = peer_conn_send(p, req, (size_t)rl, why, why_len);
	explicit_bzero(req, sizeof(req)); /* it holds the token */
	return r;
}

/* Connect to the peer and send the stream's request; p->fd is the
 * socket once connected. 0, -EIO with why, or KV_ESHUTDOWN. */
static int stream_connect(struct peer *p, char *why, size_t why_len)
{
	int fd = sock_connect(p, why, why_len);
	int one = 1;

	if (fd < 0)
		return fd;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	pthread_mutex_lock(&p->mu);
	p->fd = fd;
	pthread_mutex_unlock(&p->mu);
	int err = peer_conn_handshake(p, fd, why, why_len);
	if (err != 0)
		return err;
	/* The body's length is not known: it is written as frames come.
	 * "Expect: 100-continue" costs one round trip when a stream opens:
	 * a peer that refuses it (token, cluster, version) answers before
	 * any frame is sent, so its reason arrives whole and no frame is
	 * lost to it. */
	return request_write(p, why, why_len);
}

/* Wait for the peer's "100 Continue" to the stream's request. 0, -EIO
 * with why (its refusal, or none in timeout_ms), or KV_ESHUTDOWN. */
static int stream_accepted(struct peer *p, struct answer *a, char *why,
			   size_t why_len)
{
	uint64_t end = kv_mono_ms() + p->set->opt.timeout_ms;
	char text[PEER_RESP_KEEP + 1];
	int status;

	for (;;) {
		int r = peer_answer_parse(a, &status, text, sizeof(text));
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
		int w = peer_wait_fd(p, p->fd, POLLIN, end);
		if (w == KV_ESHUTDOWN)
			return w;
		if (w == 0) {
			snprintf(why, why_len,
				 "the peer did not answer the stream's request "
				 "in %u ms",
				 p->set->opt.timeout_ms);
			return -EIO;
		}
		if ((r = peer_answer_read(p, a)) < 0) {
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
	char text[PEER_RESP_KEEP + 1];
	int status = 0;
	int r = peer_answer_read(p, a);

	if (r == -ECONNRESET || r == -EPIPE || (r == 0 && a->eof && !a->len)) {
		snprintf(why, why_len, "the peer closed the stream");
		return -EIO;
	}
	if (r < 0) {
		snprintf(why, why_len, "reading from %s: %s", p->addr,
			 strerror(-r));
		return -EIO;
	}
	r = peer_answer_parse(a, &status, text, sizeof(text));
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

/* Where the serving of an open stream stands (the sender thread's). */
struct serve {
	struct answer *a;
	bool closing;	      /* its end is written or on its way */
	uint64_t closing_at;  /* when its end was set to go */
	uint64_t answered_at; /* when the start of an answer came; 0: none */
};

/* Push what waits for the socket, then make the next queued batch the
 * frame to go. 1: a batch was taken (go round again); 0: nothing more to
 * write now; -EIO with why: the stream broke. */
static int serve_write(struct peer *p, struct serve *sv, char *why,
		       size_t why_len)
{
	struct qmsg *batch = NULL;
	size_t n = 0;
	int err = 0;

	pthread_mutex_lock(&p->mu);
	if (p->sock_err == 0 && p->out.active && (err = peer_out_push(p)) < 0)
		p->sock_err = -err;
	if (p->sock_err != 0) {
		snprintf(why, why_len, "writing to %s: %s", p->addr,
			 strerror(p->sock_err));
		pthread_mutex_unlock(&p->mu);
		return -EIO;
	}
	if (!p->out.active && !sv->closing && p->head != NULL) {
		batch = peer_queue_take(p, &n);
		p->busy = true; /* p->out is being made */
	}
	p->info.queued = p->queued;
	pthread_mutex_unlock(&p->mu);
	if (batch == NULL)
		return 0;
	peer_out_from_batch(p, batch, n);
	return 1;
}

/* Under one hold of p->mu, so that no message slips in unseen: look at
 * the stream's timers at now and, if the sender has nothing to do, mark
 * it sleeping (peers_send then wakes it). -EIO with why: a timer ran out
 * (nothing taken for timeout_ms while a frame waits, an answer begun and
 * not whole, the end not answered). 1: the idle stream's end was set to
 * go (go round again). 0: sleep; *waiting says a frame waits for room. */
static int serve_timers(struct peer *p, struct serve *sv, uint64_t now,
			bool *waiting, char *why, size_t why_len)
{
	const struct peer_options *o = &p->set->opt;
	int r = 0;

	pthread_mutex_lock(&p->mu);
	*waiting = p->out.active;
	if (*waiting && now - p->out.moved_ms > o->timeout_ms) {
		snprintf(why, why_len, "the peer took nothing for %u ms",
			 o->timeout_ms);
		r = -EIO;
	} else if (sv->answered_at && now - sv->answered_at > o->timeout_ms) {
		snprintf(why, why_len,
			 "the peer's answer did not come whole in %u ms",
			 o->timeout_ms);
		r = -EIO;
	} else if (sv->closing && !*waiting &&
		   now - sv->closing_at > o->timeout_ms) {
		snprintf(why, why_len,
			 "the peer did not answer the end of a stream in %u "
			 "ms",
			 o->timeout_ms);
		r = -EIO;
	} else if (!sv->closing && !*waiting &&
		   (p->retoken || (p->head == NULL &&
				   now - p->last_frame_ms >= o->idle_ms))) {
		/* idle, or to open again with a new token */
		p->retoken = false;
		sv->closing = true;
		sv->closing_at = now;
		p->state = STREAM_ENDING; /* what comes is queued */
		peer_chunk_set(&p->out, NULL, 0, 0, NULL, 0);
		r = 1;
	} else {
		p->sleeping = true;
	}
	pthread_mutex_unlock(&p->mu);
	return r;
}

/* Sleep until the socket (its answer, or room for what waits), a new
 * message (peers_send wakes us) or the next tick. (A TLS session holds
 * nothing decrypted that poll cannot see: the peer sends nothing before
 * its answer, which is read whole when it comes.) 1: go on; 0: the
 * stream ended well; -EIO with why. */
static int serve_sleep(struct peer *p, struct serve *sv, bool waiting,
		       char *why, size_t why_len)
{
	struct pollfd pf[2] = {
	    {.fd = p->fd, .events = POLLIN | (waiting ? POLLOUT : 0)},
	    {.fd = p->wake_fd, .events = POLLIN}};
	int r = poll(pf, 2, STREAM_TICK_MS);
	bool answer = r > 0 && (pf[0].revents & (POLLIN | POLLERR | POLLHUP));

	pthread_mutex_lock(&p->mu);
	p->sleeping = false;
	if (answer)
		p->state = STREAM_ENDING; /* no frame goes now */
	pthread_mutex_unlock(&p->mu);
	if (r > 0 && pf[1].revents)
		peer_drain_wake(p);
	if (answer) {
		int end = stream_answered(p, sv->a, sv->closing, why, why_len);
		if (end <= 0)
			return end;
		if (sv->answered_at == 0) /* more of it to come */
			sv->answered_at = kv_mono_ms();
	}
	return 1;
}

/* Serve an open stream: write the queued batches and what the socket did
 * not take, end it once idle for idle_ms. 0 once so ended and answered;
 * -EIO with why when it failed (broken, a refusal, or a timer of
 * serve_timers); KV_ESHUTDOWN if stopped. */
static int stream_serve(struct peer *p, struct answer *a, char *why,
			size_t why_len)
{
	struct serve sv = {.a = a};

	for (;;) {
		bool waiting;
		int r;

		if (atomic_load(&p->stop))
			return KV_ESHUTDOWN;
		if ((r = serve_write(p, &sv, why, why_len)) != 0) {
			if (r < 0)
				return r;
			continue;
		}
		r = serve_timers(p, &sv, kv_mono_ms(), &waiting, why, why_len);
		if (r < 0)
			return r;
		if (r > 0)
			continue;
		if ((r = serve_sleep(p, &sv, waiting, why, why_len)) <= 0)
			return r;
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
		batch = peer_queue_take(p, &n);
		p->busy = true;
	}
	pthread_mutex_unlock(&p->mu);
	if (batch != NULL)
		peer_out_from_batch(p, batch, n);

	int err = stream_connect(p, why, why_len);
	if (err == 0)
		err = stream_accepted(p, &a, why, why_len);
	if (err == 0) {
		pthread_mutex_lock(&p->mu);
		p->state = STREAM_OPEN;
		p->last_frame_ms = kv_mono_ms();
		pthread_mutex_unlock(&p->mu);
		err = stream_serve(p, &a, why, why_len);
	}

	pthread_mutex_lock(&p->mu);
	p->state = STREAM_DOWN;
	peer_conn_close(p, err == 0);
	p->sock_err = 0;
	struct chunk lost = p->out;
	p->out = (struct chunk){.active = false};
	if (lost.active && lost.body != NULL)
		p->info.dropped += lost.msgs; /* a frame cut short is lost */
	pthread_mutex_unlock(&p->mu);
	if (lost.active) /* never whole: the peer ignored it */
		peer_report_unsent(p, lost.proposes, lost.n_proposes);
	peer_chunk_clear(&lost);
	return err;
}

/* Wait up to ms, or until stopped. mu held. */
static void backoff_wait(struct peer *p, unsigned ms)
{
	struct timespec end = kv_deadline((int)ms);

	while (!atomic_load(&p->stop))
		if (pthread_cond_timedwait(&p->cv, &p->mu, &end) == ETIMEDOUT)
			break;
}

/* Note a failed stream and lengthen the backoff: 10 ms doubling to the
 * cap. mu held. */
static void note_failure(struct peer *p, const char *why)
{
	const struct peer_options *o = &p->set->opt;

	p->info.last_err_ms = peer_wall_ms();
	snprintf(p->info.last_err, sizeof(p->info.last_err), "%s", why);
	/* once when it goes, not at every retry */
	if (p->info.reachable || p->info.failures == 0)
		kv_log(KV_LOG_WARN, "peer %llu (%s) down: %s",
		       (unsigned long long)p->id, p->info.addr, why);
	p->info.reachable = false;
	p->info.failures++;
	if (p->info.backoff_ms == 0)
		p->info.backoff_ms = o->backoff_min_ms;
	else if (p->info.backoff_ms < o->backoff_max_ms / 2)
		p->info.backoff_ms *= 2;
	else
		p->info.backoff_ms = o->backoff_max_ms;
}

void *peer_sender_main(void *arg)
{
	pthread_setname_np(pthread_self(), "kvfs-peer");
	struct peer *p = arg;

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
		note_failure(p, why);
		backoff_wait(p, p->info.backoff_ms);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}
