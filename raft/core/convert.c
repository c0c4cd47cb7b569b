/* convert.c - role changes: follower, pre-candidate, candidate, leader.
 *
 * Every change of role happens here, so the rules that decide on one
 * (election.c, replication.c) call down into this file and never into each
 * other. Each change resets what the new role must not inherit (timers, a
 * leader transfer, the vote tally) and restarts the randomized election
 * timer (§5.2). Deciding *when* to change is the caller's job. */
#include <assert.h>

#include "convert.h"
#include "leader.h"
#include "membership.h"
#include "raft_impl.h"
#include "readindex.h"

/* splitmix64: tiny, good enough to spread election timeouts. */
static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

void conv_reset_timeout(struct raft *r)
{
	unsigned e = r->opt.election_ticks;
	assert(e > 0);
	r->election_elapsed = 0;
	r->timeout = e + (unsigned)(rng_next(&r->rng) % e);
}

void conv_become_follower(struct raft *r, uint64_t term, uint64_t leader)
{
	assert(term >= r->term);
	if (term != r->term) {
		r->term = term;
		r->vote = RAFT_NONE;
		r->hs_dirty = true;
		r->verified = 0; /* what matched the old leader may not match */
	}
	/* The refusals carry the new term: the asker learns it. */
	if (r->role == RAFT_LEADER)
		ri_fail_all(r);
	r->role = RAFT_FOLLOWER;
	r->leader = leader;
	r->heartbeat_elapsed = 0;
	r->transferee = RAFT_NONE;
	r->transfer_elapsed = 0;
	conv_reset_timeout(r);
}

/* Start an election round: no leader, no transfer, an empty tally. */
static void start_round(struct raft *r)
{
	r->leader = RAFT_NONE;
	r->transferee = RAFT_NONE;
	conv_reset_timeout(r);
	r->n_granted = r->n_rejected = 0;
}

void conv_become_pre_candidate(struct raft *r)
{
	assert(r->role != RAFT_LEADER);
	r->role = RAFT_PRE_CANDIDATE;
	start_round(r);
}

void conv_become_candidate(struct raft *r)
{
	assert(r->role != RAFT_LEADER);
	r->role = RAFT_CANDIDATE;
	r->term++;
	r->vote = r->id;
	r->hs_dirty = true;
	r->verified = 0;
	start_round(r);
}

void conv_become_leader(struct raft *r)
{
	assert(r->role == RAFT_CANDIDATE && r->vote == r->id);
	assert(r->n_reads == 0); /* reads wait only on a leader */
	r->role = RAFT_LEADER;
	r->leader = r->id;
	r->heartbeat_elapsed = 0;
	r->election_elapsed = 0;
	r->transferee = RAFT_NONE;
	uint64_t last = mlog_last_index(&r->log);
	for (size_t i = 0; i < r->n_prs; i++) {
		progress_reset(&r->prs[i], r->prs[i].id, last + 1);
		r->prs[i].recent_active = true;
	}
	/* Our own entries count once durable (raft_persisted). */
	struct raft_progress *self = memb_progress(r, r->id);
	if (self)
		progress_update(self, u64_min(r->persisted, last));
	if (lead_append(r, RAFT_ENTRY_NOOP, NULL, 0) != 0) {
		/* Out of memory: the no-op is needed for commitment. */
		conv_become_follower(r, r->term, RAFT_NONE);
		return;
	}
	lead_bcast_append(r);
}
