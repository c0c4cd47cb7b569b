/* transfer.c - leadership transfer (§3.10 diss.) on the leader's side.
 *
 * "The prior leader ... stops accepting new client requests" (raft_propose
 * says RAFT_EBUSY while r->transferee is set), "fully updates the target
 * server's log to match its own" (lead_send_append, then every answer of
 * the target is looked at here), "sends it a TimeoutNow request". The
 * target's side (an election at once, votes that pass the leases) is
 * election.c's; the entry points are core.c's. The transfer is abandoned
 * after an election timeout ("the prior leader aborts the transfer ... and
 * resumes accepting client requests"); a leader that may not be a
 * candidate (raft_set_candidacy, e.g. its disk cannot be written) keeps
 * handing over, and steps down when a transfer is abandoned, so that the
 * others elect a leader without it. */
#include <assert.h>

#include "convert.h"
#include "leader.h"
#include "membership.h"
#include "output.h"
#include "raft_impl.h"
#include "transfer.h"

/* Heard from within two heartbeat intervals: it answers now (a follower
 * that just restarted, whose leader has no connection to it yet, does
 * not, and a TimeoutNow would be lost). */
static bool responsive(const struct raft *r, const struct raft_progress *p)
{
	return p->quiet <= 2 * r->opt.heartbeat_ticks;
}

/* Is p a better target than best: answering now, then the longer log,
 * then heard from more recently, then the lower id. */
static bool better(const struct raft *r, const struct raft_progress *p,
		   const struct raft_progress *best)
{
	if (!best)
		return true;
	if (responsive(r, p) != responsive(r, best))
		return responsive(r, p);
	if (p->match != best->match)
		return p->match > best->match;
	if (p->quiet != best->quiet)
		return p->quiet < best->quiet;
	return p->id < best->id;
}

uint64_t xfer_pick(struct raft *r)
{
	assert(r->role == RAFT_LEADER);
	const struct raft_progress *best = NULL;
	for (size_t i = 0; i < r->n_prs; i++) {
		const struct raft_progress *p = &r->prs[i];
		if (p->id != r->id && memb_is_voter(r, p->id) &&
		    better(r, p, best))
			best = p;
	}
	return best ? best->id : RAFT_NONE;
}

static void send_timeout_now(struct raft *r, uint64_t id)
{
	out_msg(r, RAFT_MSG_TIMEOUT_NOW, id);
}

void xfer_start(struct raft *r, uint64_t id)
{
	assert(r->role == RAFT_LEADER && r->transferee == RAFT_NONE);
	assert(id != r->id && memb_is_voter(r, id));
	struct raft_progress *p = memb_progress(r, id);
	assert(p);
	r->transferee = id;
	r->transfer_elapsed = 0;
	if (p->match == mlog_last_index(&r->log))
		send_timeout_now(r, id);
	else
		lead_send_append(r, p, true);
}

void xfer_on_progress(struct raft *r, const struct raft_progress *p)
{
	assert(r->role == RAFT_LEADER);
	if (r->transferee == p->id && p->match == mlog_last_index(&r->log))
		send_timeout_now(r, p->id);
}

void xfer_tick(struct raft *r)
{
	assert(r->role == RAFT_LEADER);
	if (r->transferee != RAFT_NONE &&
	    ++r->transfer_elapsed >= r->opt.election_ticks) {
		r->transferee = RAFT_NONE;
		if (r->no_candidacy) {
			/* the others elect one of their own once their
			 * leases run out; we cannot stand again */
			conv_become_follower(r, r->term, RAFT_NONE);
			return;
		}
	}
	if (r->no_candidacy && r->transferee == RAFT_NONE) {
		uint64_t id = xfer_pick(r);
		if (id != RAFT_NONE)
			xfer_start(r, id);
	}
}
