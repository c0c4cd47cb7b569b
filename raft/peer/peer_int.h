/* peer_int.h - what the files of the peer senders share (private to
 * raft/peer/; the public API is peer.h).
 *
 * The senders are split by concept: peer_set.c (the set, and peers_send's
 * direct write on the caller's thread), peer_queue.c (a peer's bounded
 * queue and how messages are cut into batches), peer_out.c (a frame on its
 * way into the socket: encoding a batch, writing it, counting it),
 * peer_http.c (the HTTP/1.1 of a stream: its request, its body's chunks,
 * the peer's answer), peer_conn.c (the bytes on the socket, plain or
 * TLS) and peer_stream.c (one stream's connection, from connect to its
 * end, and the sender thread); peer_tls.c loads the TLS identity. The protocol
 * is in docs/peer-protocol.md.
 *
 * Threads and locks. Three kinds of thread touch a peer: the caller of
 * peers_send (the node thread), the peer's own sender thread, and any
 * thread calling peers_add/remove/info/free. Lock order: a set's mu, then
 * a peer's mu; a sender thread never takes its set's mu. Who owns what is
 * written beside each field below. */
#ifndef KV_RAFT_PEER_INT_H
#define KV_RAFT_PEER_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <gnutls/gnutls.h>

#include "kv.h"
#include "peer.h"
#include "peer_tls.h"

/* One queued message, a deep copy (the queue owns its entries' data). */
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
	bool corked;	    /* TLS: all of it is in the session, to flush */
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
	/* Set by peers_add before the sender starts, then read-only. */
	struct peer_set *set;
	/* The same member's control stream (messages without entries, sent
	 * by peers_send_take), a peer of its own with its own thread, owned
	 * by this one (the data stream); NULL on a control stream itself. */
	struct peer *ctl;
	uint64_t id;
	char addr[RAFT_ADDR_MAX];
	pthread_t thread;
	int wake_fd; /* an eventfd that wakes the sender from poll */
	/* Set once by a stopper (peers_remove, peers_free); read anywhere. */
	atomic_bool stop;

	pthread_mutex_t mu; /* guards everything below */
	pthread_cond_t cv;  /* a message arrived, or stop (CLOCK_MONOTONIC) */
	/* Changed by the sender; peers_send writes frames only while OPEN. */
	enum stream_state state;
	/* The stream's socket: set and closed by the sender thread with mu
	 * held (so the sender may read it without mu); written to by
	 * peers_send (mu held) only while STREAM_OPEN. */
	int fd;
	/* The stream's TLS session (NULL: plain), set and cleared with fd
	 * by the sender; used by whoever may use fd (peer_conn.c). */
	gnutls_session_t tls;
	bool sleeping; /* the sender polls its open stream */
	bool retoken;  /* the token changed: end the stream (peers_set_token) */
	bool busy;     /* the sender encodes a batch it took from the queue */
	int sock_err;  /* a write to the stream failed with this errno */
	struct chunk out;	/* what the socket has not taken yet */
	uint64_t last_frame_ms; /* a frame last went whole (monotonic) */
	struct qmsg *head, *tail;
	size_t queued, qbytes;
	struct peer_info info;
};

struct peer_set {
	/* Set by peers_new, then read-only: any thread reads them. */
	char *cluster_id;
	uint64_t self;
	struct peer_options opt; /* defaults filled in */

	/* The token presented when a stream opens (peers_set_token). */
	pthread_mutex_t token_mu;
	char token[PEER_ID_MAX + 1];
	pthread_mutex_t mu; /* guards the array; held while sending */
	struct peer **peers;
	size_t n, cap;
};

/* The wall clock in milliseconds since 1970, as peer_info shows times. */
static inline uint64_t peer_wall_ms(void)
{
	return (uint64_t)(kv_wall_ns() / 1000000);
}

/* ---- peer_set.c ---- */

/* Wake p's sender from its poll (any thread). */
void peer_wake(struct peer *p);
/* Take the wake-ups the sender has seen (the sender thread). */
void peer_drain_wake(struct peer *p);

/* ---- peer_queue.c: the queue (p->mu held) and batches ---- */

/* A deep copy of m (entries and their data), or NULL (no memory). */
struct qmsg *peer_qmsg_copy(const struct raft_message *m);
/* Free a copy and what it holds. */
void peer_qmsg_free(struct qmsg *q);
/* Append q (taken) to p's queue, first dropping what the bounds of
 * p->set->opt do not leave room for: the oldest append or heartbeat (or
 * response to one), else the oldest message; drops are counted. */
void peer_queue_push(struct peer *p, struct qmsg *q);
/* Drop everything queued (not counted: the peer is going away). */
void peer_queue_clear(struct peer *p);
/* Take the front of the queue, up to one batch (at least one message;
 * the queue must not be empty): a list of *count qmsgs, the caller's. */
struct qmsg *peer_queue_take(struct peer *p, size_t *count);
/* How many of msgs[0..n) (n >= 1) go in one frame: at least one, at most
 * PEER_BATCH_MSGS, about opt->batch_bytes when encoded. Pure. */
size_t peer_frame_span(const struct peer_options *opt,
		       const struct raft_message *msgs, size_t n);

/* ---- peer_out.c: frames on their way into the socket ---- */

/* Encode msgs[0..n) from the set's node into a frame for c (empty),
 * noting its propose messages. 0, -ENOMEM, or the encoder's error. Any
 * thread; touches nothing of p but its set's read-only fields. */
int peer_frame_build(struct peer *p, const struct raft_message *msgs, size_t n,
		     struct chunk *c);
/* Write what the socket takes now of p->out (non-blocking); once all of
 * it went, count its frame sent and clear it. 1: all went; 0: the rest
 * waits for room; -errno: the stream broke. p->mu held, p->fd open. */
int peer_out_push(struct peer *p);
/* Make a batch taken from the queue the frame of p->out (the sender
 * thread, p->mu not held; p->busy set while it encodes). On failure the
 * batch is lost, counted and its propose messages reported. The batch
 * is freed. */
void peer_out_from_batch(struct peer *p, struct qmsg *batch, size_t n);
/* Tell the set's owner (opt.unsent) about propose messages that surely
 * never reached the peer. The sender thread, no lock held. */
void peer_report_unsent(struct peer *p, const uint64_t *ctx, size_t n);

/* ---- peer_http.c: the HTTP/1.1 of a stream; pure, any thread ---- */

/* Bytes of a peer's answer read at most (its head and the start of its
 * body), and of an error answer's body kept for last_err. */
#define PEER_ANSWER_MAX 2048
#define PEER_RESP_KEEP	120

/* What the peer sent back on the stream's connection. */
struct answer {
	char buf[PEER_ANSWER_MAX + 1];
	size_t len;
	bool eof;
};

/* The stream's request head for p (POST PEER_STREAM_PATH, chunked,
 * "Expect: 100-continue", the cluster's headers) into buf[0..cap): its
 * length, or -ENOSPC if it does not fit. */
int peer_http_request(struct peer *p, char *buf, size_t cap);
/* Make c the frame of payload body[0..blen) (taken, with proposes) as
 * one HTTP chunk, or the body's end (the last chunk) when body is NULL. */
void peer_chunk_set(struct chunk *c, char *body, size_t blen, size_t msgs,
		    uint64_t *proposes, size_t n_proposes);
/* Free what c holds and mark it empty. */
void peer_chunk_clear(struct chunk *c);
/* Read what p's connection holds now into a (non-blocking). 0, or
 * -errno. The sender thread. */
int peer_answer_read(struct peer *p, struct answer *a);
/* Is a whole answer in a (its head and the start of its body)? 1: yes,
 * with *status and text (the body's first PEER_RESP_KEEP bytes, made
 * printable) set; an interim 1xx answer is also taken off a. 0: more is
 * needed. -1: not HTTP. */
int peer_answer_parse(struct answer *a, int *status, char *text, size_t cap);

/* ---- peer_conn.c: the stream's socket, plain or TLS ---- */

/* Wait until fd is ready for events, end_ms (monotonic) passes or the
 * sender is stopped: 1, 0 or KV_ESHUTDOWN. The sender thread. */
int peer_wait_fd(struct peer *p, int fd, short events, uint64_t end_ms);
/* With a TLS identity, run the handshake on the connected socket fd
 * within timeout_ms (the peer's certificate checked against the CA) and
 * set p->tls; without one, nothing. 0, -EIO with why, KV_ESHUTDOWN. The
 * sender thread, p->fd already set. */
int peer_conn_handshake(struct peer *p, int fd, char *why, size_t why_len);
/* Write buf[0..len) whole within timeout_ms (the stream's request). 0,
 * -EIO with why, KV_ESHUTDOWN. The sender thread. */
int peer_conn_send(struct peer *p, const char *buf, size_t len, char *why,
		   size_t why_len);
/* Write what the socket takes now of c (non-blocking): 1 all of it went,
 * 0 the rest waits for room, -errno. p->mu held. */
int peer_conn_push(struct peer *p, struct chunk *c);
/* Read what is there now into buf[0..cap): *got bytes; 0, 1 at the end
 * of the stream, or -errno. The sender thread. */
int peer_conn_recv(struct peer *p, char *buf, size_t cap, size_t *got);
/* End the session (clean: say so to the peer first) and close the
 * socket. p->mu held. */
void peer_conn_close(struct peer *p, bool clean);
/* peer_tls.c: the identity's GnuTLS credentials. */
gnutls_certificate_credentials_t peer_tls_cred(const struct peer_tls *t);

/* ---- peer_stream.c ---- */

/* The sender thread's body (arg: its struct peer). */
void *peer_sender_main(void *arg);

#endif
