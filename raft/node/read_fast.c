/* read_fast.c - a ReadIndex round's messages without the node thread.
 *
 * Through a follower a round was five hand-offs: the reader woke the
 * follower's node thread to ask, the leader's receiving thread woke its
 * node thread, whose core answered, and the follower's receiving thread
 * served the readers (read.c, reads_answer_direct). Two are gone here:
 * - a follower's reader sends the READ_INDEX itself (reads_ask_locked,
 *   from read_start, and from the thread that served the previous round
 *   when readers wait for the next), in the term and to the leader the
 *   node thread published;
 * - a leader answers a voter's READ_INDEX on the thread that receives it
 *   (reads_lead_answer, from node_deliver), with the commit index the node
 *   thread published, when the core would answer it at once: the asker's
 *   request is its own acknowledgement and, with the leader, a quorum
 *   (raft_read_by_asker: two or three voters).
 * Why that is still linearizable (docs/mount.md, "Reads through a
 * follower"): both rest on what the node thread publishes here, under
 * rd.mu, at the start of every update, before any of its messages,
 * applies or answers leave (update.c), and after a turn without one.
 * - A follower's published term T and leader L: cleared (or changed)
 *   before the follower sends a vote in a later term, so a reader that
 *   read (T, L) after it arrived knows the follower had voted in no term
 *   after T at a moment after the read arrived, as the core's own
 *   READ_INDEX (sent in the follower's current term) says.
 * - A leader's published (T, C): C is a commit index of term T's leader
 *   that had committed an entry of its term, published before anything
 *   of the turn that committed further left (so every write acknowledged
 *   anywhere before a READ_INDEX arrived has an index at most C), and
 *   cleared before the leader sends a vote or steps down. A READ_INDEX in
 *   term T from another voter, answered while (T, C) is published: at a
 *   moment after the read arrived, neither the asker nor the leader had
 *   voted in a later term, and they are a quorum, so no later leader had
 *   been elected and acknowledged anything; C covers every write
 *   acknowledged before the read arrived.
 * The readers still wait for C to be applied on their node (read.c).
 * Anything else (another term, a learner, a cluster of four or more, no
 * leader) goes the node thread's way, as before. */
#include <string.h>

#include "node_int.h"

void reads_fast_publish(struct kv_node *n)
{
	struct raft *r = n->raft;
	uint64_t ask_term = 0, ask_leader = 0, lead_term = 0, lead_commit = 0;
	uint64_t voters[2] = {0, 0};
	bool ok = !atomic_load(&n->st.fatal) && !atomic_load(&n->stopping);
	if (ok && raft_role(r) == RAFT_FOLLOWER &&
	    raft_leader(r) != RAFT_NONE) {
		ask_term = raft_term(r);
		ask_leader = raft_leader(r);
	} else if (ok && raft_read_by_asker(r)) {
		const struct raft_config *c = raft_config(r);
		unsigned k = 0;
		for (unsigned i = 0; i < c->n; i++)
			if (c->servers[i].role == RAFT_VOTER &&
			    c->servers[i].id != n->id && k < 2)
				voters[k++] = c->servers[i].id;
		lead_term = raft_term(r);
		lead_commit = raft_commit_index(r);
	}
	struct node_reads *rd = &n->rd;
	pthread_mutex_lock(&rd->mu);
	rd->ask_term = ask_term;
	rd->ask_leader = ask_leader;
	rd->lead_term = lead_term;
	rd->lead_commit = lead_commit;
	memcpy(rd->lead_voters, voters, sizeof(voters));
	pthread_mutex_unlock(&rd->mu);
}

void reads_fast_off(struct kv_node *n)
{
	pthread_mutex_lock(&n->rd.mu);
	n->rd.lead_term = 0;
	pthread_mutex_unlock(&n->rd.mu);
}

uint64_t reads_ask_locked(struct kv_node *n, struct raft_message *m)
{
	struct node_reads *rd = &n->rd;
	if (rd->ask_leader == RAFT_NONE || n->peers == NULL ||
	    rd->need <= rd->issued || rd->inflight >= NODE_READ_PIPELINE)
		return 0;
	/* numbered as the node thread numbers its rounds (read.c,
	 * reads_round_next): a reader who arrives after this waits for a
	 * later one; unanswered, the node thread asks again */
	uint64_t round = ++rd->issued;
	rd->issued_ms = kv_mono_ms();
	rd->inflight++;
	memset(m, 0, sizeof(*m));
	m->type = RAFT_MSG_READ_INDEX;
	m->from = n->id;
	m->to = rd->ask_leader;
	m->term = rd->ask_term;
	m->ctx = round;
	return round;
}

void reads_ask_send(struct kv_node *n, const struct raft_message *m)
{
	kv_metric_add(&node_m_read_rounds, 0, 1);
	/* on the leader's control stream, as the node thread's messages
	 * without entries go (peers_send_take), so that it waits behind no
	 * big append; not sent (no memory): the round is lost, and asked
	 * again by the node thread after NODE_READ_RETRY_MS */
	struct raft_message copy = *m;
	(void)peers_send_take(n->peers, &copy, 1);
	raft_message_clear(&copy);
}

bool reads_lead_answer(struct kv_node *n, const struct raft_message *m,
		       struct raft_message *resp)
{
	if (m->type != RAFT_MSG_READ_INDEX || m->from == n->id ||
	    m->from == RAFT_NONE || atomic_load(&n->st.fatal))
		return false;
	struct node_reads *rd = &n->rd;
	pthread_mutex_lock(&rd->mu);
	bool ok =
	    rd->lead_term != 0 && m->term == rd->lead_term &&
	    (m->from == rd->lead_voters[0] || m->from == rd->lead_voters[1]);
	if (ok) {
		memset(resp, 0, sizeof(*resp));
		resp->type = RAFT_MSG_READ_INDEX_RESP;
		resp->from = n->id;
		resp->to = m->from;
		resp->term = rd->lead_term;
		resp->ctx = m->ctx;
		resp->index = rd->lead_commit;
	}
	pthread_mutex_unlock(&rd->mu);
	return ok;
}
