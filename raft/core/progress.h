/* progress.h - the leader's view of one follower's log (progress.c).
 *
 * §5.3 nextIndex and matchIndex, plus flow control as in etcd: PROBE sends
 * one append at a time until the follower accepts one, REPLICATE pipelines
 * appends with at most max_inflight outstanding, SNAPSHOT waits while a
 * snapshot is installed. These functions only keep the numbers consistent
 * (next > match always); the decisions are leader.c's and
 * replication.c's. */
#ifndef KV_RAFT_PROGRESS_H
#define KV_RAFT_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

#define RAFT_MAX_INFLIGHT 256

enum progress_state {
	PROGRESS_PROBE = 0, /* one append at a time until a match is found */
	PROGRESS_REPLICATE, /* optimistic pipelining, bounded in flight */
	PROGRESS_SNAPSHOT,  /* waiting for a snapshot to be installed */
};

struct raft_progress {
	uint64_t id;
	uint64_t match, next;
	enum progress_state state;
	bool probe_sent;    /* PROBE: an append is out, wait */
	bool recent_active; /* heard from since the last check-quorum */
	unsigned quiet;	    /* leader ticks since it was last heard from */
	uint64_t pending_snapshot;
	uint64_t read_ack;  /* highest ReadIndex round acknowledged */
	unsigned stall;	    /* heartbeats answered without progress */
	size_t probe_bytes; /* PROBE: entry bytes of the append that is out */
	uint64_t inflight[RAFT_MAX_INFLIGHT]; /* last index of each append */
	unsigned in_head, in_count;
};

/* A fresh PROBE progress for member id: match 0, next as given (§5.3
 * "initialized to leader last log index + 1"). */
void progress_reset(struct raft_progress *p, uint64_t id, uint64_t next);
/* Back to PROBE from match (or from a pending snapshot's index), nothing
 * in flight. */
void progress_become_probe(struct raft_progress *p);
/* To REPLICATE from match + 1, nothing in flight. */
void progress_become_replicate(struct raft_progress *p);
/* To SNAPSHOT: a snapshot up to index is on its way (§7). */
void progress_become_snapshot(struct raft_progress *p, uint64_t index);
/* True if max appends are in flight (REPLICATE flow control). */
bool progress_inflight_full(const struct raft_progress *p, unsigned max);
/* An append ending at last went out. Requires REPLICATE and room. */
void progress_inflight_add(struct raft_progress *p, uint64_t last);
/* Appends ending at or before index were answered: free their slots. */
void progress_inflight_free_to(struct raft_progress *p, uint64_t index);
/* A success ack for index (§5.3 "update nextIndex and matchIndex"); true
 * if match moved. */
bool progress_update(struct raft_progress *p, uint64_t index);
/* The follower rejected the append after `rejected` and hints that its log
 * could match at probe_hint (§5.3 "decrement nextIndex and retry"); false
 * if the rejection is stale and changes nothing. */
bool progress_decr(struct raft_progress *p, uint64_t rejected,
		   uint64_t probe_hint);

#endif
