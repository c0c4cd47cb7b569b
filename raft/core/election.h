/* election.h - leader election (election.c): §5.2, the election
 * restriction §5.4.1, Pre-Vote and the leader lease (§9.6 diss.), and
 * abstaining after a damaged entry (raft.h, raft_restore.abstain_until).
 *
 * Each function applies one rule and leaves the role change to
 * convert.c. Messages arrive here already sorted by term (core.c): a
 * request's term is never below ours. */
#ifndef KV_RAFT_ELECTION_H
#define KV_RAFT_ELECTION_H

#include "raft.h"

struct raft;

/* The lease (§4.2.3, §9.6 diss.): true while we heard from a leader within
 * the minimum election timeout (with check-quorum on); then vote requests
 * of a higher term are ignored unless a leader transfer sent them. */
bool elect_in_lease(const struct raft *r);
/* Stand for election (§5.2) or, with pre_vote, for pre-votes (§9.6 diss.)
 * if this node may (a voter, or see election.c; never while abstaining):
 * ask every other voter, or win at once when our own
 * vote is a quorum. transfer: sent by TimeoutNow (§3.10 diss.), past the
 * others' leases. Requires not leader. */
void elect_campaign(struct raft *r, bool pre_vote, bool transfer);
/* A non-leader's tick: campaign when the election timeout elapses (§5.2
 * "If election timeout elapses without receiving AppendEntries RPC from
 * current leader or granting vote to candidate: convert to candidate"). */
void elect_tick(struct raft *r);
/* Figure 2 RequestVote receiver (§5.2, §5.4.1), and the same for a
 * pre-vote without recording anything; every request is refused while
 * abstaining. Requires m->term >= r->term. */
void elect_step_vote(struct raft *r, const struct raft_message *m);
/* Count a (pre-)vote answer: §5.2 "If votes received from majority of
 * servers: become leader"; a majority of refusals ends the round. Answers
 * to other rounds are ignored. */
void elect_step_vote_resp(struct raft *r, const struct raft_message *m);

#endif
