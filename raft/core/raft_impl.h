/* raft_impl.h - the core's private state, shared by its files.
 *
 * struct raft and the helpers each concept file exports to the others
 * (log_mem.c, config.c, progress.c, election.c, replication.c,
 * readindex.c, core.c). Nothing here is visible to the node layer, which
 * only sees raft.h. */
#ifndef KV_RAFT_IMPL_H
#define KV_RAFT_IMPL_H

#include "raft.h"

#define RAFT_MAX_INFLIGHT 256

/* The in-memory log (log_mem.c): entries snap_index+1 .. snap_index+n. */
struct raft_log {
	struct raft_entry *ents;
	size_t n, cap;
	uint64_t snap_index, snap_term;
};

void mlog_init(struct raft_log *l, uint64_t snap_index, uint64_t snap_term);
void mlog_close(struct raft_log *l);
uint64_t mlog_last_index(const struct raft_log *l);
uint64_t mlog_last_term(const struct raft_log *l);
/* Term at index; snap_term at snap_index; 0 if compacted or past the end. */
uint64_t mlog_term(const struct raft_log *l, uint64_t index);
const struct raft_entry *mlog_get(const struct raft_log *l, uint64_t index);
/* Append a copy of e at last+1 (e->index must be last+1). 0 or -ENOMEM. */
int mlog_append(struct raft_log *l, const struct raft_entry *e);
/* Drop entries >= index (index > snap_index). */
void mlog_truncate(struct raft_log *l, uint64_t index);
/* Drop entries <= index (snap_index < index <= last). */
void mlog_compact(struct raft_log *l, uint64_t index);
/* Drop everything, the log now starts after (index, term). */
void mlog_reset(struct raft_log *l, uint64_t index, uint64_t term);
/* Copy entries [lo, hi] into a new array (data copied). 0 or -ENOMEM. */
int mlog_copy(const struct raft_log *l, uint64_t lo, uint64_t hi,
	      struct raft_entry **out);
void entries_free(struct raft_entry *ents, size_t n);
/* §5.3 fast backtracking: the largest index <= index whose term is <=
 * term (stops at the snapshot). */
uint64_t mlog_find_conflict_by_term(const struct raft_log *l, uint64_t index,
				    uint64_t term);

/* Per-follower replication state (progress.c), as in etcd's Progress. */
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
	uint64_t pending_snapshot;
	uint64_t read_ack; /* highest ReadIndex round acknowledged */
	unsigned stall;	   /* heartbeats answered without progress */
	uint64_t inflight[RAFT_MAX_INFLIGHT]; /* last index of each append */
	unsigned in_head, in_count;
};

void progress_reset(struct raft_progress *p, uint64_t id, uint64_t next);
void progress_become_probe(struct raft_progress *p);
void progress_become_replicate(struct raft_progress *p);
void progress_become_snapshot(struct raft_progress *p, uint64_t index);
bool progress_inflight_full(const struct raft_progress *p, unsigned max);
void progress_inflight_add(struct raft_progress *p, uint64_t last);
void progress_inflight_free_to(struct raft_progress *p, uint64_t index);
/* Success ack for index; true if match moved. */
bool progress_update(struct raft_progress *p, uint64_t index);
/* A rejection of prev index `rejected` with probe hint; false if stale. */
bool progress_decr(struct raft_progress *p, uint64_t rejected,
		   uint64_t probe_hint);

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

	enum raft_role role;
	uint64_t leader;
	struct raft_log log;
	uint64_t commit;    /* highest index known committed */
	uint64_t applied;   /* handed out for applying */
	uint64_t persisted; /* durable on this node (raft_persisted) */
	uint64_t unsaved;   /* first log index not yet handed out to persist */
	/* Follower: highest index known to match the current term's leader
	 * log (only acknowledged once also persisted). */
	uint64_t verified;

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

	uint64_t transferee;
	unsigned transfer_elapsed;

	/* ReadIndex (readindex.c). */
	struct read_req *reads;
	size_t n_reads, cap_reads;
	uint64_t read_seq; /* last round started */

	/* Output being built. */
	struct raft_message *out_msgs;
	size_t n_out_msgs, cap_out_msgs;
	struct raft_read *out_reads;
	size_t n_out_reads, cap_out_reads;
	bool out_has_snapshot;
	struct raft_snapshot_meta out_snapshot;
	int oom; /* sticky -ENOMEM while building output */
};

/* output.c */
struct raft_message *raft_msg_new(struct raft *r, enum raft_msg_type t,
				  uint64_t to);
int raft_push_read(struct raft *r, uint64_t ctx, uint64_t index, int err);

/* membership.c */
uint64_t raft_quorum(const struct raft *r);
bool raft_is_voter(const struct raft *r, uint64_t id);
struct raft_progress *raft_pr(struct raft *r, uint64_t id);
void raft_set_conf(struct raft *r, const struct raft_config *c, uint64_t index);
void raft_conf_refresh(struct raft *r);

/* leader.c */
bool committed_in_term(const struct raft *r);
int leader_append(struct raft *r, enum raft_entry_type type, const void *data,
		  size_t len);
void send_append(struct raft *r, struct raft_progress *p, bool send_empty);
void bcast_append(struct raft *r);
void bcast_append_commit(struct raft *r);
void bcast_heartbeat(struct raft *r);

/* convert.c */
void election_reset_timeout(struct raft *r);
void become_follower(struct raft *r, uint64_t term, uint64_t leader);
void become_pre_candidate(struct raft *r);
void become_candidate(struct raft *r);
void become_leader(struct raft *r);

/* election.c */
void campaign(struct raft *r, bool pre_vote, bool transfer);
void election_tick(struct raft *r);
void election_step_vote(struct raft *r, const struct raft_message *m);
void election_step_vote_resp(struct raft *r, const struct raft_message *m);
bool in_lease(const struct raft *r);

/* replication.c */
void leader_tick(struct raft *r);
void follower_step_append(struct raft *r, const struct raft_message *m);
void follower_step_heartbeat(struct raft *r, const struct raft_message *m);
void follower_step_snapshot(struct raft *r, const struct raft_message *m);
void follower_ack(struct raft *r);
void leader_step_append_resp(struct raft *r, const struct raft_message *m);
void leader_step_heartbeat_resp(struct raft *r, const struct raft_message *m);
bool maybe_commit(struct raft *r);

/* readindex.c */
void readindex_request(struct raft *r, uint64_t ctx, uint64_t from);
void readindex_on_ack(struct raft *r);
void readindex_on_commit(struct raft *r);
void readindex_fail_all(struct raft *r);
void readindex_step_resp(struct raft *r, const struct raft_message *m);

#endif
