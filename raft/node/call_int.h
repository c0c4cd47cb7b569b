/* call_int.h - the node's calls (internal to raft/node, included by
 * node_int.h): what another thread asks of the node thread (a write, a
 * membership change, a read barrier, a transfer), its lists and how a
 * blocking caller waits for one (call.c). */
#ifndef KV_NODE_CALL_INT_H
#define KV_NODE_CALL_INT_H

#include <semaphore.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "node.h"
#include "raft.h"

struct kv_node;

/* ---- Calls ---- */

enum call_kind {
	CALL_WRITE,    /* a command (node_propose) */
	CALL_CONF,     /* a membership change (node_change_member) */
	CALL_READ,     /* a read barrier (node_read_barrier) */
	CALL_TRANSFER, /* a leadership transfer (node_transfer_leader) */
};

/* Where a call is; each place is one list, linked by next. */
enum call_stage {
	CALL_QUEUED,	/* in the inbox (in.calls), not yet seen */
	CALL_PARKED,	/* surely not applied, waiting for a leader (retry) */
	CALL_FORWARDED, /* sent to the leader in batch fwd: props.forwarded */
	CALL_WAITING,	/* in the core's log at (index, term): props.waiting */
	CALL_APPLIED,	/* its entry applied: on props.applied until settled */
	CALL_READER,	/* waiting for ReadIndex round `round`: rd.readers */
	CALL_APPLIER,	/* waiting for index to be applied: rd.appliers */
	CALL_TRANSFERRING, /* a transfer under way: props.transfers */
	CALL_DONE,
};

/* One call of another thread into the node. An asynchronous call's is
 * malloc'd (heap, freed once its done callback returned); a blocking
 * call's is on the caller's stack and done posts the caller's semaphore,
 * after which the call is never touched again. Fields other than next and
 * stage are set before the call is listed and then belong to whoever
 * holds it. */
struct node_call {
	struct node_call *next;
	enum call_kind kind;
	enum call_stage stage;
	node_done_fn done;
	void *ctx;
	bool heap;
	struct timespec deadline; /* CLOCK_MONOTONIC */
	/* CALL_WRITE: the encoded command (heap: owned), shared with the
	 * core's log and the appends once jbuf is set (call_share_json), so
	 * the node thread never copies it; freed with call_free_json */
	const char *json;
	size_t len;
	struct raft_buf *jbuf;
	/* CALL_WRITE of a big command: json decoded by the caller's thread
	 * (owned; handed to decoded.c once proposed), or NULL */
	struct kv_cmd *dec;
	/* CALL_CONF; CALL_TRANSFER: conf_id is the target (0: any voter),
	 * the one chosen once under way, and index the new leader */
	enum raft_conf_op conf_op;
	uint64_t conf_id;
	char conf_addr[RAFT_ADDR_MAX];
	/* the entry (writes, changes) or the index to be applied (reads) */
	uint64_t index, term;
	uint64_t fwd;	/* CALL_FORWARDED: the batch it went in */
	size_t fwd_pos; /* and its entry's place in that batch */
	uint64_t round; /* CALL_READER: the round it waits for */
	/* CALL_PARKED: not retried before retry_ms (CLOCK_MONOTONIC)
	 * unless the leader or term changed since epoch */
	uint64_t retry_ms, epoch;
	int ret; /* the outcome once settled */
	struct kv_result res;
	uint64_t t0_ns; /* CALL_WRITE: when it was made (kv_mono_ns) */
	struct node_call *wake_next; /* settled under a lock, woken after */
};

/* A list of calls, in order. */
struct call_list {
	struct node_call *head, *tail;
};

/* call.c */
void calls_push(struct call_list *l, struct node_call *c);
/* Insert c by increasing c->index (after those with an equal index). */
void calls_insert_by_index(struct call_list *l, struct node_call *c);
/* Take c off l; prev is the call before it (NULL: c is the head). */
void calls_unlink(struct call_list *l, struct node_call *prev,
		  struct node_call *c);
/* Finish, with ret, the calls of l (a list no other thread touches)
 * whose deadline passed (expired), or all of them. */
void calls_settle(struct call_list *l, bool expired, int ret);
/* Free c's decoded command (c->dec), if it still has one. Whoever holds
 * c. */
void call_free_dec(struct node_call *c);
/* Make c's json shared (raft.h, struct raft_entry) on the thread that made
 * it; out of memory, it stays plain (the core then copies it). */
void call_share_json(struct node_call *c);
/* c's command as an entry to propose or forward (borrowed from c). */
struct raft_entry call_entry(const struct node_call *c);
/* Drop c's json (its reference, if shared). Whoever owns it. */
void call_free_json(struct node_call *c);
/* Answer c with ret: its done callback, then (heap) free it. No lock
 * held. Any thread that holds c (off every list). */
void call_finish(struct node_call *c, int ret);
/* Finish every call of a list linked by wake_next, in order. */
void calls_finish_woken(struct node_call *list);
/* What a call whose deadline passed gets: KV_EFAILED once the store
 * failed, else KV_ENOQUORUM. */
int call_expired(struct kv_node *n);
/* Fill the fields every call has; the deadline is the write timeout
 * from now. */
void call_init(struct kv_node *n, struct node_call *c, enum call_kind kind,
	       node_done_fn done, void *ctx);
/* A blocking call: c gets a done that posts s; call_wait waits for that
 * one post. At c's deadline it asks the node thread to settle what
 * expired (inbox_expire), then goes on waiting: whoever holds c answers
 * it, so the post is always consumed before s and c go away. Returns the
 * call's ret; *res (may be NULL) gets a write's result. */
struct call_sync {
	sem_t sem;
	int ret;
	struct kv_result res;
};
void call_sync_init(struct kv_node *n, struct node_call *c, enum call_kind kind,
		    struct call_sync *s);
int call_wait(struct kv_node *n, struct node_call *c, struct call_sync *s,
	      struct kv_result *res);

#endif
