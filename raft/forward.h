/* forward.h - a follower's writes, sent to the leader in batches.
 *
 * One forwarder per node (raft/forward.c): a thread that takes every
 * command queued for the leader and sends them as one POST /raft/propose
 * (the batch form of docs/peer-protocol.md) over kept-alive libcurl
 * connections, a few batches in flight at once: whatever arrives while
 * one batch waits for its commit goes in the next (group commit). The
 * core is callback based so that a non-blocking caller can use it;
 * fwd_propose is the blocking wrapper node_client.c uses. The leader's
 * side of the batch is node_propose_forwarded_batch (node_client.c) and
 * http_peer.c; the pure codec functions below are shared by both. */
#ifndef KV_RAFT_FORWARD_H
#define KV_RAFT_FORWARD_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "store.h"

/* A batch a follower builds: at most this many commands and, past the
 * first, this many bytes of them (one command alone may be larger). */
#define FWD_BATCH_CMDS	1024
#define FWD_BATCH_BYTES (4u * 1024u * 1024u)
/* The leader refuses a batch of more commands than this (413). */
#define FWD_MAX_CMDS 4096
/* Batches in flight at once, each on a connection of its own. */
#define FWD_INFLIGHT 3

struct fwd;

/* The outcome of one command, called exactly once from the forwarder's
 * thread: ret 0 (index is the leader's entry, res its outcome there),
 * NODE_RETRY (surely not applied: the leader refused it with 421, the
 * connection was refused, or its deadline passed before it was sent),
 * KV_ENOQUORUM (sent, outcome unknown: never retry), -ENOSPC (507),
 * -EINVAL (400/413), KV_ESHUTDOWN (the forwarder stopped). res is NULL
 * unless ret is 0 and is valid only during the call. */
typedef void (*fwd_done_fn)(void *ctx, int ret, uint64_t index,
			    const struct kv_result *res);

/* Start a forwarder speaking for this cluster id and token (copied).
 * 0 with *out, -ENOMEM, or -EAGAIN (no thread). Any thread. */
int fwd_new(const char *cluster_id, const char *token, struct fwd **out);
/* Stop the thread at once (a POST in flight is abandoned, not waited
 * for) and answer every command not answered yet with KV_ENOQUORUM if it
 * was sent or KV_ESHUTDOWN if not; later fwd_submit calls return
 * KV_ESHUTDOWN. NULL is fine. Not from the forwarder's thread (a done
 * callback), nor from two threads at once. */
void fwd_stop(struct fwd *f);
/* fwd_stop if not done yet, then free. NULL is fine. */
void fwd_free(struct fwd *f);

/* Queue the command json[0..len) (kv_cmd_encode text; copied) for the
 * leader at addr ("host:port"), to be answered by its deadline
 * (CLOCK_MONOTONIC). Returns 0 and done is called later, exactly once,
 * from the forwarder's thread; or returns -ENOMEM, -EINVAL (addr too
 * long) or KV_ESHUTDOWN (stopping) and done is never called. Any thread,
 * also a done callback. */
int fwd_submit(struct fwd *f, const char *addr, const char *json, size_t len,
	       const struct timespec *deadline, fwd_done_fn done, void *ctx);

/* fwd_submit and wait for its answer: the same outcomes (ret 0 sets
 * *index and *res). Blocks until the deadline at most (a little more
 * if the forwarder is slow to notice it). Any thread except the
 * forwarder's. */
int fwd_propose(struct fwd *f, const char *addr, const char *json, size_t len,
		const struct timespec *deadline, struct kv_result *res,
		uint64_t *index);

/* ---- the batch codec (pure, any thread) ---- */

/* One command's bytes inside a batch body. */
struct fwd_span {
	const char *p;
	size_t len;
};

/* Split a batch body, a JSON array of JSON objects, into its elements
 * without decoding them (each is a command for kv_cmd_decode). 0 with
 * spans[0..*n), -EINVAL if the body is not such an array or is empty,
 * -E2BIG if it has more than max elements. */
int fwd_batch_split(const char *body, size_t len, struct fwd_span *spans,
		    size_t max, size_t *n);

/* What a /raft/propose status means for a command, as forward() always
 * did: 421 NODE_RETRY, 507 -ENOSPC, 400 and 413 -EINVAL, anything else
 * (503, 500, ...) KV_ENOQUORUM. Not for 200. */
int fwd_status_ret(long status);

/* Decode the leader's 200 answer to a batch of n commands:
 * {"results":[R, ...]} with n elements, each {"index":I,"err":E,"rev":R}
 * (rets[i] 0, index[i] and res[i] set) or {"status":S} (rets[i] =
 * fwd_status_ret(S)). 0, or -EINVAL for anything else (the caller then
 * treats every command as KV_ENOQUORUM). */
int fwd_answer_decode(const char *body, size_t len, size_t n, int *rets,
		      uint64_t *index, struct kv_result *res);

#endif
