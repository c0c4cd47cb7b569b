/* replication.h - the rules of log replication (replication.c): the
 * follower's side of AppendEntries, heartbeats and InstallSnapshot (§5.3,
 * §7), the leader's handling of their answers, commitment (§5.4.2) and the
 * leader's tick (heartbeats, check-quorum).
 *
 * Messages arrive sorted by term (core.c): a follower's handlers get only
 * the current term's leader's messages, a leader's only answers of its
 * term. Building what the leader sends is leader.c's. */
#ifndef KV_RAFT_REPLICATION_H
#define KV_RAFT_REPLICATION_H

#include "raft.h"

struct raft;

/* The leader's tick: heartbeats every heartbeat_ticks (§5.2); each
 * election timeout, check-quorum (§6.2 diss.: step down unless a quorum
 * was heard from) and the end of a leader transfer that took too long.
 * Requires leader. */
void repl_tick(struct raft *r);
/* Figure 2 Leaders: "If there exists an N such that N > commitIndex, a
 * majority of matchIndex[i] >= N, and log[N].term == currentTerm: set
 * commitIndex = N" (§5.3, §5.4.2). True if the commit index moved and we
 * are still leader (a leader the new configuration removed steps down,
 * §4.2.2 diss.). Requires leader. */
bool repl_maybe_commit(struct raft *r);
/* Acknowledge to the leader what is both durable here and known to match
 * its log (min(persisted, verified)); nothing unless a follower with a
 * known leader. */
void repl_ack(struct raft *r);
/* Figure 2 AppendEntries receiver, steps 1-5, with a conflict hint on
 * rejection (§5.3). Requires follower of m's sender in m's term. */
void repl_step_append(struct raft *r, const struct raft_message *m);
/* A heartbeat: learn the commit index (never past our log) and answer
 * with where our log ends and the leader's read round (§6.4). Requires
 * follower of m's sender in m's term. */
void repl_step_heartbeat(struct raft *r, const struct raft_message *m);
/* §7 InstallSnapshot receiver: keep a log that already has the snapshot's
 * last entry, else discard it and hand the snapshot out to install; the
 * answer waits for raft_persisted. Requires follower of m's sender in m's
 * term. */
void repl_step_snapshot(struct raft *r, const struct raft_message *m);
/* The leader's side of an append's answer (§5.3): advance or back off the
 * follower's progress, commit, send more; finish a leader transfer once
 * the target is caught up (§3.10 diss.). Requires leader, m of our term. */
void repl_step_append_resp(struct raft *r, const struct raft_message *m);
/* A heartbeat's answer: the follower is alive (check-quorum), may need
 * entries, may have lost its log, and acknowledged a read round (§6.4).
 * Requires leader, m of our term. */
void repl_step_heartbeat_resp(struct raft *r, const struct raft_message *m);

#endif
