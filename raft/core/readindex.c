/* readindex.c - linearizable reads without writing to the log (§6.4 diss.,
 * ReadIndex).
 *
 * A read records the leader's commit index, then waits for a heartbeat
 * round started after it to be acknowledged by a quorum: that proves no
 * other leader had been elected when the read arrived. Rounds are numbered
 * (read_seq, carried as ctx in heartbeats); one round serves every read
 * that arrived before it started, so concurrent reads are batched. Reads
 * that arrive while a round is in flight start the next round at once
 * rather than after it: rounds overlap, a read waits for one round, not
 * the rest of the current one and then its own (at most one new round
 * per request; a quorum's ack of round N confirms every round up to N).
 * A new leader first commits its no-op (§8), since before that its commit
 * index may lag. Followers ask the leader; the asking counts as the
 * follower's acknowledgement (asker_confirms). */
#include <assert.h>
#include <stdlib.h>

#include "leader.h"
#include "membership.h"
#include "output.h"
#include "raft_impl.h"
#include "readindex.h"

/* The round a voter acknowledged; ours is the latest we started. */
static uint64_t read_round(const struct raft *r, const struct raft_progress *p)
{
	return p->id == r->id ? r->read_seq : p->read_ack;
}

static void answer(struct raft *r, const struct read_req *q, int err)
{
	if (q->from == r->id) {
		out_read(r, q->ctx, err ? 0 : q->index, err);
		return;
	}
	struct raft_message *m = out_msg(r, RAFT_MSG_READ_INDEX_RESP, q->from);
	if (!m)
		return;
	m->ctx = q->ctx;
	m->index = q->index;
	m->reject = err != 0;
}

/* A follower's request is its own acknowledgement: it was in our term
 * when it asked, after its reads arrived, so it had voted in no later
 * term by then. With us and the voters that acknowledged a round issued
 * after the request arrived, is that a quorum? In a cluster of three a
 * follower's read is then answered at once, without a heartbeat round:
 * one round trip to the leader, not two. */
static bool asker_confirms(const struct raft *r, const struct read_req *q)
{
	if (q->from == r->id || !memb_is_voter(r, q->from))
		return false;
	uint64_t n = 0;
	for (size_t i = 0; i < r->n_prs; i++) {
		const struct raft_progress *p = &r->prs[i];
		if (memb_is_voter(r, p->id) &&
		    (p->id == r->id || p->id == q->from ||
		     p->read_ack >= q->seq))
			n++;
	}
	return n >= memb_quorum(r);
}

/* Assign, release, and start a round when one is needed. */
void ri_advance(struct raft *r)
{
	if (r->role != RAFT_LEADER || !lead_committed_in_term(r))
		return;
	for (size_t i = 0; i < r->n_reads; i++)
		if (r->reads[i].seq == 0) {
			r->reads[i].index = r->commit;
			r->reads[i].seq = r->read_seq + 1;
		}
	uint64_t acked = memb_quorum_value(r, read_round);
	size_t keep = 0;
	bool waiting = false;
	for (size_t i = 0; i < r->n_reads; i++) {
		if (r->reads[i].seq <= acked ||
		    asker_confirms(r, &r->reads[i])) {
			answer(r, &r->reads[i], 0);
			continue;
		}
		if (r->reads[i].seq > r->read_seq)
			waiting = true;
		r->reads[keep++] = r->reads[i];
	}
	r->n_reads = keep;
	if (waiting) {
		r->read_seq++;
		lead_bcast_heartbeat(r);
		if (memb_quorum_value(r, read_round) == r->read_seq)
			ri_advance(r); /* alone: confirmed at once */
	}
}

void ri_request(struct raft *r, uint64_t ctx, uint64_t from)
{
	if (r->role != RAFT_LEADER) {
		struct read_req q = {.ctx = ctx, .from = from};
		answer(r, &q, RAFT_ENOTLEADER);
		return;
	}
	if (r->n_reads == r->cap_reads) {
		size_t cap = r->cap_reads ? r->cap_reads * 2 : 16;
		struct read_req *p = realloc(r->reads, cap * sizeof(*p));
		if (!p)
			return; /* dropped: the caller times out */
		r->reads = p;
		r->cap_reads = cap;
	}
	r->reads[r->n_reads++] = (struct read_req){.ctx = ctx, .from = from};
	ri_advance(r);
}

void ri_fail_all(struct raft *r)
{
	assert(r->role == RAFT_LEADER);
	for (size_t i = 0; i < r->n_reads; i++)
		answer(r, &r->reads[i], RAFT_ENOTLEADER);
	r->n_reads = 0;
}

void ri_step_resp(struct raft *r, const struct raft_message *m)
{
	out_read(r, m->ctx, m->reject ? 0 : m->index,
		 m->reject ? RAFT_ENOTLEADER : 0);
}
