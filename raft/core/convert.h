/* convert.h - role changes (convert.c): the only code that sets r->role.
 *
 * The rule files decide when to change role and call these; each change
 * resets what the new role must not inherit and restarts the randomized
 * election timer. Below them: readindex.c (a leader's pending reads fail
 * when it steps down) and leader.c (a new leader's first append). */
#ifndef KV_RAFT_CONVERT_H
#define KV_RAFT_CONVERT_H

#include <stdint.h>

struct raft;

/* §5.2: restart the election timer with a fresh timeout drawn from
 * [election_ticks, 2 * election_ticks) by the core's seeded PRNG. */
void conv_reset_timeout(struct raft *r);
/* §5.1: "If RPC request or response contains term T > currentTerm: set
 * currentTerm = T, convert to follower" (the vote is cleared with a new
 * term); also to step down in the same term (check-quorum, a lost
 * election, a removed leader). leader: the known leader or RAFT_NONE.
 * Requires term >= r->term. A leader's pending reads fail. */
void conv_become_follower(struct raft *r, uint64_t term, uint64_t leader);
/* §9.6 diss. Pre-Vote: ask for term+1 without changing term or vote; an
 * empty tally, no leader. Requires not leader. */
void conv_become_pre_candidate(struct raft *r);
/* §5.2: "increment currentTerm, vote for self, reset election timer"; an
 * empty tally, no leader. Requires not leader. Sends nothing: the
 * requests are election.c's. */
void conv_become_candidate(struct raft *r);
/* §5.2 "Upon election: send initial empty AppendEntries RPCs", after
 * appending a no-op of the new term (§5.4.2, §8: only entries of its own
 * term are committed by counting replicas). Every progress restarts from
 * our last index. Requires candidate, having voted for itself, and no
 * pending reads. Out of memory for the no-op: back to follower. */
void conv_become_leader(struct raft *r);

#endif
