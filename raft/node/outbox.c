/* outbox.c - the node thread's outgoing messages of one turn.
 *
 * Messages of a turn (the core's, answers to forwarded writes, forwarded
 * writes, a snapshot's meta) are collected and handed to the peers
 * together: one frame per peer and turn, not one per call, since every
 * frame wakes the listener on the other side. Their entries are moved to
 * the peers' queues, not copied, and a frame of big entries is encoded by
 * the peer's sender thread, not this one (peers_send_take). Node thread
 * only. */
#include <stdlib.h>
#include <string.h>

#include "node_int.h"

/* ---- the outbox ---- */

void outbox_flush(struct kv_node *n)
{
	if (n->n_outbox == 0)
		return;
	uint64_t bytes = 0;
	for (size_t i = 0; i < n->n_outbox; i++)
		for (size_t k = 0; k < n->outbox[i].n_entries; k++)
			bytes += n->outbox[i].entries[k].len;
	turn_mark(n, TURN_OTHER, 0, 0);
	peers_send_take(n->peers, n->outbox, n->n_outbox);
	for (size_t i = 0; i < n->n_outbox; i++)
		raft_message_clear(&n->outbox[i]);
	turn_mark(n, TURN_SEND, n->n_outbox, bytes);
	n->n_outbox = 0;
}

/* Out of memory, the outbox and m go at once instead. */
void outbox_add(struct kv_node *n, struct raft_message *m)
{
	if (n->n_outbox == n->cap_outbox) {
		size_t cap = n->cap_outbox ? n->cap_outbox * 2 : 16;
		struct raft_message *a = realloc(n->outbox, cap * sizeof(*a));
		if (a == NULL) {
			outbox_flush(n);
			peers_send(n->peers, m, 1);
			raft_message_clear(m);
			return;
		}
		n->outbox = a;
		n->cap_outbox = cap;
	}
	n->outbox[n->n_outbox++] = *m;
	memset(m, 0, sizeof(*m));
}
