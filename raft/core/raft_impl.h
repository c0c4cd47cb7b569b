/* raft_impl.h - struct raft: the core's whole state, in one place.
 *
 * Every core file includes this; the functions each file offers the
 * others are in its own header, with their contracts: log_mem.h,
 * progress.h (the bottom), output.h, membership.h, leader.h, readindex.h,
 * convert.h, transfer.h, election.h, replication.h; core.c, on top, holds the
 * entry points of raft.h. A file calls only files below it (tests/raft/core
 * check_layers.py enforces it). The node layer sees raft.h only. */
#ifndef KV_RAFT_IMPL_H
#define KV_RAFT_IMPL_H

#include "log_mem.h"
#include "progress.h"
#include "raft.h"

/* A read waiting on the leader (readindex.c). */
struct read_req {
	uint64_t ctx;
	uint64_t from; /* requesting node (self for local reads) */
	uint64_t index;
	uint64_t seq; /* heartbeat round that confirms it; 0: not started */
};

struct raft {
	struct raft_options opt;
	uint64_t id;

	/* Persistent state on all servers (§5, Figure 2). */
	uint64_t term, vote;
	bool hs_dirty;

	enum raft_role role; /* changed only in convert.c */
	uint64_t leader;
	struct raft_log log;
	uint64_t commit;    /* highest index known committed */
	uint64_t applied;   /* handed out for applying */
	uint64_t persisted; /* durable on this node (raft_persisted) */
	uint64_t unsaved;   /* first log index not yet handed out to persist */
	/* Follower: highest index known to match the current term's leader
	 * log (only acknowledged once also persisted). */
	uint64_t verified;
	/* raft_restore.abstain_until: no votes, no campaigns while the log
	 * ends before it (election.c). */
	uint64_t abstain_until;

	struct raft_config conf; /* in effect: the last in the log (§4.1) */
	uint64_t conf_index;	 /* index of its entry, snapshot index if 0 */
	struct raft_config snap_conf; /* conf at log.snap_index */

	/* Leader: progress per member of conf (same order). */
	struct raft_progress prs[RAFT_MAX_SERVERS];
	size_t n_prs;

	/* Elections. */
	uint64_t granted[RAFT_MAX_SERVERS], rejected[RAFT_MAX_SERVERS];
	unsigned n_granted, n_rejected;
	unsigned election_elapsed, heartbeat_elapsed, timeout;
	uint64_t rng;

	/* Leader transfer (transfer.c, §3.10 diss.): the target, and the
	 * leader's ticks since it began. */
	uint64_t transferee;
	unsigned transfer_elapsed;
	/* raft_set_candidacy(false): never campaign; a leader hands over. */
	bool no_candidacy;

	/* ReadIndex (readindex.c); reads only on a leader. */
	struct read_req *reads;
	size_t n_reads, cap_reads;
	uint64_t read_seq; /* last round started */

	/* Output being built (output.c). */
	struct raft_message *out_msgs;
	size_t n_out_msgs, cap_out_msgs;
	struct raft_read *out_reads;
	size_t n_out_reads, cap_out_reads;
	bool out_has_snapshot;
	struct raft_snapshot_meta out_snapshot;
};

static inline uint64_t u64_min(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static inline uint64_t u64_max(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

#endif
