/* peer.h - how Raft messages travel between nodes (the node layer uses
 * it; snapshot transfer and joining have their own headers, snapxfer.h
 * and join.h).
 *
 * Three pieces: the codec (msg_encode.c, msg_decode.c) turns a batch of
 * struct raft_message into one versioned JSON document and back, strictly;
 * the peer senders (peer_set.c and the other peer_*.c, sharing
 * peer_int.h) write batches as frames of one long POST to
 * http://ADDR/raft/stream per peer, straight from the caller's thread when
 * they can and else through one thread per peer with a bounded queue; the
 * receiving side's checks and frames (peer_recv.c) serve the HTTP
 * listener (raft/http/), which calls peer_token_equal and
 * peer_handle_body. The wire format, headers, queue bounds and backoff
 * are in docs/peer-protocol.md. */
#ifndef KV_RAFT_PEER_H
#define KV_RAFT_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raft.h"

struct peer_tls; /* peer_tls.h */

/* The wire format's version ("version" in every batch). */
#define PEER_PROTOCOL_VERSION 2
/* A sender streams its batches to PEER_STREAM_PATH, one long POST whose
 * body is a sequence of frames (peer_frames_feed); PEER_PATH takes one
 * batch per POST (the form before streams, still served). Both carry the
 * cluster id and token headers; a stream also names its version in
 * PEER_HDR_PROTOCOL, checked before its body is read. */
#define PEER_PATH	  "/raft/message"
#define PEER_STREAM_PATH  "/raft/stream"
#define PEER_HDR_CLUSTER  "X-Kvfs-Cluster"
#define PEER_HDR_TOKEN	  "X-Kvfs-Token"
#define PEER_HDR_PROTOCOL "X-Kvfs-Protocol"
/* The largest batch body a sender builds (one message may exceed the
 * batch target alone: a 16 MiB value in base64) and the receiver must
 * accept. */
#define PEER_MAX_BODY (64u * 1024u * 1024u)
/* Messages in one batch: a sender puts at most PEER_BATCH_MSGS in one, a
 * receiver refuses more than PEER_MAX_MSGS (each decoded message takes
 * about 1.3 KiB, whatever its size on the wire). */
#define PEER_BATCH_MSGS 4096
#define PEER_MAX_MSGS	16384
/* Cluster ids and tokens: 1..PEER_ID_MAX bytes of printable ASCII
 * (0x21..0x7e), so they go into a header unchanged. */
#define PEER_ID_MAX 256

/* True if s is a valid cluster id or token (safe in an HTTP header). */
bool peer_id_valid(const char *s);

/* ---- The cluster token (peer_token.c) ---- */

/* A new token is PEER_TOKEN_BYTES random bytes in hex; a token read from
 * a file must have at least PEER_TOKEN_MIN_LEN characters; a token file
 * holds at most PEER_TOKENS (the first presented, all accepted). */
#define PEER_TOKEN_BYTES   32
#define PEER_TOKEN_MIN_LEN 32
#define PEER_TOKENS	   2
/* Write a new token, from getrandom, into out (2 * PEER_TOKEN_BYTES + 1
 * bytes). 0 or -errno. Any thread. */
int peer_token_new(char *out);
/* Read a token file: one token a line (blank lines skipped), 1 to
 * PEER_TOKENS of them, each peer_id_valid and at least PEER_TOKEN_MIN_LEN
 * long, into tokens[0..*n). 0, or -EINVAL / -errno with *errmsg (malloc'd)
 * naming the file and the line, never a token. Any thread. */
int peer_tokens_read(const char *path, char tokens[][PEER_ID_MAX + 1],
		     size_t *n, char **errmsg);
/* Every number on the wire is a JSON integer in [0, 2^53 - 1]: a double,
 * and so cJSON, holds those exactly, and a larger text cannot round down
 * into the range. Terms, indexes and read contexts stay far below; the
 * encoder refuses larger ones with -ERANGE. */
#define PEER_INT_MAX 9007199254740991ull

/* ---- The codec (msg_encode.c, msg_decode.c); pure, any thread ---- */

/* Encode msgs[0..n) (every field; entries with their data) from node
 * `from` of cluster cluster_id as one JSON document. On success *out is
 * malloc'd (NUL-terminated, the caller frees) and *len its length.
 * Messages must all have m.from == from and a known type other than
 * RAFT_MSG_NONE. Errors: -EINVAL (bad type, from mismatch, bad cluster id,
 * a config address that is not UTF-8), -ERANGE (a number above
 * PEER_INT_MAX), -ENOMEM. */
int peer_msgs_encode(const char *cluster_id, uint64_t from,
		     const struct raft_message *msgs, size_t n, char **out,
		     size_t *len);

/* Decode body[0..len) strictly: unknown or duplicate fields, wrong types,
 * non-integers or numbers out of range, missing required fields, bad
 * base64, trailing bytes, more than PEER_MAX_MSGS messages: -EINVAL. Another
 * "version": KV_EVERSION. A "cluster" other than cluster_id: -EPERM. -ENOMEM.
 * On success *msgs is a malloc'd array of *n messages (free it with
 * peer_msgs_free; *msgs is NULL when *n is 0), every m.from set to the batch's
 * sender, which is also put in *from (may be NULL). why (may be NULL) receives
 * a one-line reason on failure, for a log line or a response body. */
int peer_msgs_decode(const char *body, size_t len, const char *cluster_id,
		     uint64_t *from, struct raft_message **msgs, size_t *n,
		     char *why, size_t why_len);

/* Free what peer_msgs_decode returned (entries, their data, the array).
 * NULL is fine. */
void peer_msgs_free(struct raft_message *msgs, size_t n);

/* The wire name of a message type ("append", ...; "none" if unknown). */
const char *peer_msg_type_name(enum raft_msg_type t);

/* ---- The receiving side (peer_recv.c); for the HTTP handler, any
 * thread ---- */

/* Decode a POST /raft/message body (peer_msgs_decode) and check that it
 * makes sense for node self_id: sent by another node (from >= 1, != self),
 * every message addressed to self_id, terms >= 1 where Raft needs them,
 * and an append's entries numbered index+1, index+2, ... with terms that
 * never decrease nor exceed the message's term. Same errors, same
 * ownership as peer_msgs_decode. */
int peer_handle_body(const char *body, size_t len, const char *cluster_id,
		     uint64_t self_id, struct raft_message **msgs, size_t *n,
		     char *why, size_t why_len);

/* True if the token a request carried (got, NULL when the header is
 * missing) equals the cluster's token. The time taken depends only on the
 * length of want, never on where the strings differ. */
bool peer_token_equal(const char *got, const char *want);
/* True if got equals one of want[0..n) (NULL entries skipped); every one
 * is compared, so the time does not say which matched. */
bool peer_token_any(const char *got, const char *const *want, size_t n);

/* The HTTP status for a result of peer_handle_body or the token check:
 * 0 -> 204, -EINVAL -> 400, -EACCES (missing or wrong token) -> 401,
 * -EPERM (other cluster) -> 403, KV_EVERSION -> 409, -ENOMEM -> 503,
 * else 500. */
int peer_http_status(int err);

/* ---- Frames of a stream (peer_recv.c); pure, any thread ---- */

/* A frame is its payload's length in lowercase hex (at most 16 digits), a
 * '\n', then the payload: one batch document as POST /raft/message
 * takes it. peer_frame_header writes the header of a payload of len bytes
 * into buf (at least PEER_FRAME_HDR_MAX bytes) and returns its length. */
#define PEER_FRAME_HDR_MAX 18
size_t peer_frame_header(size_t len, char *buf);

/* A receiver's state between pieces of a stream. Zero it to start;
 * peer_frames_free releases it. */
struct peer_frames {
	char *buf; /* a frame that is not complete yet */
	size_t len, cap;
	size_t need; /* payload bytes of the current frame */
	bool in_payload;
	char line[PEER_FRAME_HDR_MAX];
	size_t line_len;
};

/* Called with each complete payload (not NUL-terminated; valid during the
 * call only). Nonzero stops the stream and is returned by the feed. */
typedef int (*peer_frame_fn)(void *ctx, const char *payload, size_t len);

/* Take data[0..n) of a stream in whatever pieces it arrives, calling fn
 * with each frame completed; payloads longer than max are refused. 0,
 * -EINVAL (a malformed length line; why filled), -EFBIG (a payload over
 * max), -ENOMEM, or what fn returned. After an error the stream is
 * over. */
int peer_frames_feed(struct peer_frames *f, const char *data, size_t n,
		     size_t max, peer_frame_fn fn, void *ctx, char *why,
		     size_t why_len);
void peer_frames_free(struct peer_frames *f);

/* ---- The peer senders (peer_set.c, peer_*.c) ---- */

struct peer_set;

/* What /status shows about one peer. Times are wall-clock milliseconds
 * since 1970 (0: never). */
struct peer_info {
	char addr[RAFT_ADDR_MAX];
	uint64_t last_ok_ms;  /* last batch the peer accepted */
	uint64_t last_err_ms; /* last failure */
	char last_err[160];   /* its reason; "" if none yet */
	bool reachable;	      /* the last attempt succeeded */
	unsigned backoff_ms;  /* current wait after a failure; 0 when ok */
	uint64_t failures;    /* consecutive failed attempts */
	size_t queued;	      /* messages waiting now */
	uint64_t sent;	      /* messages the peer accepted */
	uint64_t dropped;     /* messages dropped (queue full, failed batch) */
	uint64_t batches;     /* POSTs that succeeded */
	uint64_t bytes_sent;  /* of the frames the peer accepted */
	/* what came from the peer (peers_note_received) */
	uint64_t frames_received, bytes_received;
};

/* Tunables; zero fields take the defaults in brackets. */
struct peer_options {
	size_t max_queue;	     /* messages queued per peer [1024] */
	size_t max_queue_bytes;	     /* entry data queued per peer [64 MiB] */
	size_t batch_bytes;	     /* target body size of one POST [4 MiB] */
	unsigned connect_timeout_ms; /* [1000] */
	unsigned timeout_ms;	     /* a whole POST [10000] */
	unsigned backoff_min_ms;     /* first wait after a failure [10] */
	unsigned backoff_max_ms;     /* cap of the doubling [1000] */
	unsigned idle_ms;	     /* an idle stream is ended after [5000] */
	/* Called with the ctx of each propose message a sender drops
	 * knowing that the peer never got it: the frame that held it was
	 * not yet handed whole to the connection when its stream failed (a
	 * receiver ignores a frame cut short). From the sender's thread,
	 * holding none of the set's locks. NULL: not told. */
	void (*unsent)(void *arg, uint64_t to, uint64_t ctx);
	void *unsent_arg;
	/* The TLS identity streams use (peer_tls.h; borrowed, it must
	 * outlive the set), NULL: plain TCP. */
	const struct peer_tls *tls;
};

/* A set of senders for node self_id of cluster cluster_id, presenting
 * token (both copied; see PEER_ID_MAX for what they may hold). opt may be
 * NULL. 0, -EINVAL, -ENOMEM. Any thread. */
int peers_new(const char *cluster_id, const char *token, uint64_t self_id,
	      const struct peer_options *opt, struct peer_set **out);

/* Present token (copied) from now on: streams open with it, and the
 * open ones are ended so that they open again with it (a cluster token
 * rotation, docs/security.md). 0 or -EINVAL. Any thread. */
int peers_set_token(struct peer_set *ps, const char *token);

/* Start a sender for peer id at addr ("host:port"), copied. -EEXIST if id
 * has one, -EINVAL (id 0 or self, an addr cluster_addr_valid refuses: see
 * join.h), -ENOMEM, or a pthread error. Any thread. */
int peers_add(struct peer_set *ps, uint64_t id, const char *addr);

/* Stop peer id's sender (aborting a POST in progress), drop its queue and
 * wait for its thread: quick even if the peer is unreachable. 0 or
 * -ENOENT. Any thread but a sender's. */
int peers_remove(struct peer_set *ps, uint64_t id);

/* Send msgs to their destinations (m.to); msgs stay the caller's. A
 * destination's messages go as one frame written at once to its stream
 * when the stream is open and nothing waits before them (a non-blocking
 * write; what the socket does not take is left to the peer's thread);
 * otherwise they are copied (entries and data too) into its queue. Never
 * blocks on the network: a full queue drops its oldest append or
 * heartbeat (else its oldest message) to make room. Messages of type
 * RAFT_MSG_NONE are skipped; messages for unknown peers are dropped.
 * Returns how many were written or queued, or -ENOMEM (those before
 * were). Any thread. */
int peers_send(struct peer_set *ps, const struct raft_message *msgs, size_t n);
/* The same, but the messages' entries are taken, not copied: each
 * message handed over has entries NULL and n_entries 0 afterwards (the
 * caller still clears them). And however open its stream, a frame whose
 * entry data passes PEER_DIRECT_BYTES is never encoded on the caller's
 * thread: it goes to the peer's queue, and the peer's own thread encodes
 * and writes it, so that a big entry holds up neither the caller (the
 * node thread, which sends the heartbeats) nor anything else. Messages
 * without entries go on a second stream to the same member (its control
 * stream, a sender thread of its own), so that no heartbeat waits for an
 * append's frame; peers_info counts both. */
#define PEER_DIRECT_BYTES (64u * 1024u)
int peers_send_take(struct peer_set *ps, struct raft_message *msgs, size_t n);

/* Count a frame of len bytes received from peer id (a stream's frame or
 * a /raft/message body, accepted). Unknown ids are ignored. Any thread. */
void peers_note_received(struct peer_set *ps, uint64_t id, size_t len);

/* Fill *out for peer id. 0 or -ENOENT. Any thread. */
int peers_info(struct peer_set *ps, uint64_t id, struct peer_info *out);

/* Stop every sender (all at once, aborting POSTs in progress), wait for
 * them and free the set. NULL is fine. Any thread but a sender's. */
void peers_free(struct peer_set *ps);

#endif
