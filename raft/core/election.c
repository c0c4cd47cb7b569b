/* election.c - leader election (§5.2), the election restriction (§5.4.1),
 * Pre-Vote and the leader lease (§9.6 diss.).
 *
 * A follower whose election timeout runs out first asks for pre-votes for
 * term+1 without changing its term; only with a quorum of pre-votes does it
 * become a candidate, so a node that was partitioned or restarted cannot
 * bump the cluster's term and depose a healthy leader. With check-quorum,
 * servers that heard from a leader within the minimum election timeout
 * ignore vote requests (the lease) unless a leader transfer sent them.
 * The role changes themselves, and the randomized timer they restart, are
 * convert.c's. */
#include <assert.h>

#include "convert.h"
#include "election.h"
#include "membership.h"
#include "output.h"
#include "raft_impl.h"

bool elect_in_lease(const struct raft *r)
{
	return !r->opt.disable_check_quorum && r->leader != RAFT_NONE &&
	       r->election_elapsed < r->opt.election_ticks;
}

/* Count id's answer once; false if it answered this round already. */
static bool record_vote(struct raft *r, uint64_t id, bool granted)
{
	for (unsigned i = 0; i < r->n_granted; i++)
		if (r->granted[i] == id)
			return false;
	for (unsigned i = 0; i < r->n_rejected; i++)
		if (r->rejected[i] == id)
			return false;
	assert(r->n_granted + r->n_rejected < RAFT_MAX_SERVERS);
	if (granted)
		r->granted[r->n_granted++] = id;
	else
		r->rejected[r->n_rejected++] = id;
	return true;
}

/* After a damaged last entry (raft.h, raft_restore.abstain_until): our
 * log may lack an entry we acknowledged, so we must not help elect a
 * leader, ourselves included, until a leader has given it back. */
static bool abstaining(const struct raft *r)
{
	return mlog_last_index(&r->log) < r->abstain_until;
}

/* May this node stand for election? Not while abstaining, nor while the
 * caller says it may not (raft_set_candidacy). A voter may. So
 * may a node its latest configuration leaves out while that configuration
 * is not known to be committed (§4.2.2 diss.): a leader that removed
 * itself and lost leadership before the change committed may hold the
 * only copy of it, and the remaining voters, still on the old
 * configuration, cannot elect one of their own without its vote, which
 * its longer log denies. It counts only the votes of the new
 * configuration's voters. */
static bool may_campaign(const struct raft *r)
{
	if (abstaining(r) || r->no_candidacy)
		return false;
	return memb_is_voter(r, r->id) ||
	       (raft_config_get(&r->conf, r->id) == NULL &&
		r->conf_index > r->commit);
}

/* §5.2: "... send RequestVote RPCs to all other servers"; with pre_vote,
 * the same for term+1 without changing anything persistent. */
void elect_campaign(struct raft *r, bool pre_vote, bool transfer)
{
	assert(r->role != RAFT_LEADER);
	if (!may_campaign(r))
		return;
	uint64_t term;
	if (pre_vote) {
		conv_become_pre_candidate(r);
		term = r->term + 1;
	} else {
		conv_become_candidate(r);
		term = r->term;
	}
	if (memb_is_voter(r, r->id))
		record_vote(r, r->id, true);
	if (r->n_granted >= memb_quorum(r)) {
		if (pre_vote)
			elect_campaign(r, false, transfer);
		else
			conv_become_leader(r);
		return;
	}
	for (unsigned i = 0; i < r->conf.n; i++) {
		const struct raft_server *s = &r->conf.servers[i];
		if (s->id == r->id || s->role != RAFT_VOTER)
			continue;
		struct raft_message *m = out_msg(
		    r, pre_vote ? RAFT_MSG_PREVOTE : RAFT_MSG_VOTE, s->id);
		if (!m)
			continue;
		m->term = term;
		m->index = mlog_last_index(&r->log);
		m->log_term = mlog_last_term(&r->log);
		m->transfer = transfer;
	}
}

/* The only voter of its configuration: its own vote is a majority, so no
 * other server can lead and there is no one to wait for. Only the timing
 * of the campaign changes (a term bump and a vote, made durable before the
 * leader acts like any other): a one-member cluster leads at its first
 * tick, after a start or a restart, instead of an election timeout
 * later. */
static bool sole_voter(const struct raft *r)
{
	return memb_is_voter(r, r->id) && memb_quorum(r) == 1;
}

void elect_tick(struct raft *r)
{
	assert(r->role != RAFT_LEADER);
	r->election_elapsed++;
	if ((r->election_elapsed >= r->timeout || sole_voter(r)) &&
	    may_campaign(r))
		elect_campaign(r, !r->opt.disable_pre_vote, false);
	else if (r->election_elapsed >= r->timeout)
		conv_reset_timeout(r);
}

/* Figure 2 RequestVote receiver: "If votedFor is null or candidateId, and
 * candidate's log is at least as up-to-date as receiver's log (§5.4.1),
 * grant vote". A pre-vote is granted for a term above ours by the same log
 * rule, without recording anything. */
void elect_step_vote(struct raft *r, const struct raft_message *m)
{
	bool pre = m->type == RAFT_MSG_PREVOTE;
	assert(pre || m->type == RAFT_MSG_VOTE);
	/* core.c adopted a vote's higher term; a pre-vote's stays above. */
	assert(pre ? m->term >= r->term : m->term == r->term);
	uint64_t last = mlog_last_index(&r->log);
	uint64_t last_term = mlog_last_term(&r->log);
	bool up_to_date = m->log_term > last_term ||
			  (m->log_term == last_term && m->index >= last);
	bool can;
	if (pre)
		can = m->term > r->term;
	else
		can = m->term == r->term &&
		      (r->vote == m->from ||
		       (r->vote == RAFT_NONE && r->leader == RAFT_NONE));
	struct raft_message *resp = out_msg(
	    r, pre ? RAFT_MSG_PREVOTE_RESP : RAFT_MSG_VOTE_RESP, m->from);
	if (can && up_to_date && !abstaining(r)) {
		if (resp)
			resp->term = m->term;
		if (!pre) {
			r->vote = m->from;
			r->hs_dirty = true;
			/* Do not start a rival election right away. */
			r->election_elapsed = 0;
		}
	} else if (resp) {
		resp->reject = true;
	}
}

void elect_step_vote_resp(struct raft *r, const struct raft_message *m)
{
	bool pre = m->type == RAFT_MSG_PREVOTE_RESP;
	assert(pre || m->type == RAFT_MSG_VOTE_RESP);
	assert(m->term >= r->term);
	if (pre) {
		if (r->role != RAFT_PRE_CANDIDATE)
			return;
		if (!m->reject && m->term != r->term + 1)
			return; /* an answer to an older pre-vote */
	} else if (r->role != RAFT_CANDIDATE || m->term != r->term) {
		return;
	}
	if (!memb_is_voter(r, m->from) || !record_vote(r, m->from, !m->reject))
		return;
	uint64_t q = memb_quorum(r);
	if (r->n_granted >= q) {
		/* §5.2: "If votes received from majority of servers: become
		 * leader". */
		if (pre)
			elect_campaign(r, false, false);
		else
			conv_become_leader(r);
	} else if (r->n_rejected >= q) {
		conv_become_follower(r, r->term, RAFT_NONE);
	}
}
