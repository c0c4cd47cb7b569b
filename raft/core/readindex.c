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
 * index may lag. Followers ask the leader. */
#include <stdlib.h>

#include "raft_impl.h"

/* The highest round acknowledged by a quorum of voters. */
static uint64_t acked_round(const struct raft *r)
{
	uint64_t m[RAFT_MAX_SERVERS];
	unsigned n = 0;
	for (size_t i = 0; i < r->n_prs; i++) {
		const struct raft_progress *p = &r->prs[i];
		if (!raft_is_voter(r, p->id))
			continue;
		m[n++] = p->id == r->id ? r->read_seq : p->read_ack;
	}
	if (n == 0)
		return 0;
	for (unsigned i = 1; i < n; i++)
		for (unsigned j = i; j > 0 && m[j] > m[j - 1]; j--) {
			uint64_t t = m[j];
			m[j] = m[j - 1];
			m[j - 1] = t;
		}
	return m[raft_quorum(r) - 1];
}

static void answer(struct raft *r, const struct read_req *q, int err)
{
	if (q->from == r->id) {
		raft_push_read(r, q->ctx, err ? 0 : q->index, err);
		return;
	}
	struct raft_message *m =
	    raft_msg_new(r, RAFT_MSG_READ_INDEX_RESP, q->from);
	if (!m)
		return;
	m->ctx = q->ctx;
	m->index = q->index;
	m->reject = err != 0;
}

/* Assign, release, and start a round when one is needed. */
static void readindex_progress(struct raft *r)
{
	if (r->role != RAFT_LEADER || !committed_in_term(r))
		return;
	for (size_t i = 0; i < r->n_reads; i++)
		if (r->reads[i].seq == 0) {
			r->reads[i].index = r->commit;
			r->reads[i].seq = r->read_seq + 1;
		}
	uint64_t acked = acked_round(r);
	size_t keep = 0;
	bool waiting = false;
	for (size_t i = 0; i < r->n_reads; i++) {
		if (r->reads[i].seq <= acked) {
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
		bcast_heartbeat(r);
		if (acked_round(r) == r->read_seq)
			readindex_progress(r); /* alone: confirmed at once */
	}
}

void readindex_request(struct raft *r, uint64_t ctx, uint64_t from)
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
	readindex_progress(r);
}

void readindex_on_ack(struct raft *r)
{
	readindex_progress(r);
}

void readindex_on_commit(struct raft *r)
{
	readindex_progress(r);
}

void readindex_fail_all(struct raft *r)
{
	for (size_t i = 0; i < r->n_reads; i++)
		answer(r, &r->reads[i], RAFT_ENOTLEADER);
	r->n_reads = 0;
}

void readindex_step_resp(struct raft *r, const struct raft_message *m)
{
	raft_push_read(r, m->ctx, m->reject ? 0 : m->index,
		       m->reject ? RAFT_ENOTLEADER : 0);
}
