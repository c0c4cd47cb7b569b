/* deliver.c - what the peer layer hands the node.
 *
 * Batches of messages come from the listener's thread (a peer's stream
 * frames, POST /raft/message) and go into the node thread's inbox; a
 * follower's forwarded writes are checked and re-encoded here, on the
 * delivering thread, so the node thread only appends them (forward.c),
 * and big commands are decoded here for the node thread's apply
 * (decoded.c).
 * Each batch notes when its sender was last heard from, for /status. The
 * peer senders report the propose batches they know never left
 * (node_unsent), which the node thread then proposes again. */
#include <errno.h>
#include <stdlib.h>

#include "node_int.h"

/* Note that peer id was heard from now. */
static void heard(struct kv_node *n, uint64_t id)
{
	uint64_t now = kv_mono_ms();
	struct node_members *mb = &n->mb;
	pthread_mutex_lock(&mb->mu);
	size_t free_slot = RAFT_MAX_SERVERS, oldest = 0, i;
	for (i = 0; i < RAFT_MAX_SERVERS; i++) {
		if (mb->heard[i].id == id)
			break;
		if (mb->heard[i].id == 0 && free_slot == RAFT_MAX_SERVERS)
			free_slot = i;
		if (mb->heard[i].ms < mb->heard[oldest].ms)
			oldest = i;
	}
	/* a removed member's slot is the oldest once the table is full */
	if (i == RAFT_MAX_SERVERS)
		i = free_slot < RAFT_MAX_SERVERS ? free_slot : oldest;
	mb->heard[i].id = id;
	mb->heard[i].ms = now;
	pthread_mutex_unlock(&mb->mu);
}

/* Decode the big commands of m here rather than on the node thread when
 * they are applied (decoded.c): a leader's entries under their index, a
 * follower's forwarded writes under their data until proposed. */
static void predecode(struct kv_node *n, const struct raft_message *m)
{
	bool append = m->type == RAFT_MSG_APPEND;
	if (!append && (m->type != RAFT_MSG_PROPOSE || m->reject))
		return;
	for (size_t k = 0; k < m->n_entries; k++) {
		const struct raft_entry *e = &m->entries[k];
		if (e->type == RAFT_ENTRY_NORMAL)
			decoded_put(n, append ? e->index : 0,
				    append ? e->term : 0, e->data, e->len);
	}
}

/* Make m's entries shared (raft.h, struct raft_entry), here rather than
 * on the node thread: the core then keeps a leader's entries, and
 * proposes a follower's forwarded writes, by reference instead of copying
 * them (a 16 MiB copy was tens of milliseconds of a turn), with a big
 * one's bytes checked and checksummed for the log line. Out of memory,
 * an entry stays plain and is copied. */
static void share(struct raft_message *m)
{
	for (size_t k = 0; k < m->n_entries; k++)
		if (raft_entry_share(&m->entries[k]) == 0)
			decoded_note(&m->entries[k]); /* its CRC, here */
}

int node_deliver(struct kv_node *n, struct raft_message *msgs, size_t count,
		 size_t bytes)
{
	size_t kept = 0, n_resp = 0;
	uint64_t from = count ? msgs[0].from : 0;
	struct raft_message resp[16];
	for (size_t i = 0; i < count; i++) {
		if (msgs[i].type == RAFT_MSG_PROPOSE)
			forward_check(&msgs[i]);
		predecode(n, &msgs[i]);
		share(&msgs[i]);
		/* answers to our read rounds serve their readers here, and
		 * a leader answers a voter's round here when it may
		 * (read_fast.c) */
		if (n_resp < 16 &&
		    reads_lead_answer(n, &msgs[i], &resp[n_resp]))
			n_resp++;
		else if (!reads_answer_direct(n, &msgs[i]))
			msgs[kept++] = msgs[i];
	}
	if (n_resp) { /* on the control stream, as the core's answers */
		(void)peers_send_take(n->peers, resp, n_resp);
		for (size_t i = 0; i < n_resp; i++)
			raft_message_clear(&resp[i]);
	}
	if (kept == 0) {
		peer_msgs_free(msgs, 0);
		if (from) {
			peers_note_received(n->peers, from, bytes);
			heard(n, from);
		}
		return 0;
	}
	count = kept;
	struct inmsg *m = malloc(sizeof(*m));
	if (!m) {
		peer_msgs_free(msgs, count);
		return -ENOMEM;
	}
	if (from)
		peers_note_received(n->peers, from, bytes);
	*m = (struct inmsg){.msgs = msgs, .n = count};
	struct node_inbox *in = &n->in;
	pthread_mutex_lock(&in->mu);
	if (atomic_load(&n->stopping) ||
	    in->n_msgs + count > NODE_MAX_INBOX_MSGS) {
		/* the node thread is behind: drop, as a network would */
		pthread_mutex_unlock(&in->mu);
		peer_msgs_free(msgs, count);
		free(m);
		return -EBUSY;
	}
	if (in->msgs_tail)
		in->msgs_tail->next = m;
	else
		in->msgs = m;
	in->msgs_tail = m;
	in->n_msgs += count;
	pthread_cond_signal(&in->cond);
	pthread_mutex_unlock(&in->mu);
	if (from)
		heard(n, from);
	return 0;
}

void node_unsent(void *arg, uint64_t to, uint64_t ctx)
{
	struct kv_node *n = arg;
	(void)to;
	pthread_mutex_lock(&n->in.mu);
	/* more at once: those wait for their deadline */
	if (n->in.n_unsent < NODE_MAX_UNSENT)
		n->in.unsent[n->in.n_unsent++] = ctx;
	pthread_cond_signal(&n->in.cond);
	pthread_mutex_unlock(&n->in.mu);
}
