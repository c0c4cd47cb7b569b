/* forward.c - writes a follower forwards to the leader.
 *
 * A follower's node thread sends the writes of a turn to the leader as
 * PROPOSE messages on the peer stream (raft.h), each a batch numbered by
 * ctx, and keeps them on props.forwarded. The leader's node thread
 * appends them and answers at once with where they went (PROPOSE_RESP);
 * the follower then waits, like the leader's own writes, for the entry at
 * that index and term to be applied here, and takes the outcome from its
 * own apply. A batch whose answer never comes fails at its deadline with
 * the outcome unknown (it may have been appended): it is never sent
 * again, since a second copy could be applied twice. Only a batch the peer
 * sender knows never left (node_unsent) or the leader says it did not
 * append is proposed again. Protocol: docs/peer-protocol.md. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "node_int.h"

/* Entries of one PROPOSE message, at most (so its answer comes soon). */
#define FWD_MSG_ENTRIES 512
#define FWD_MSG_BYTES	(1u << 20)

/* Entries of e[0..n) that a message can own (raft_message_clear): new
 * references to shared data, copies of plain data; or NULL. */
static struct raft_entry *entries_dup(const struct raft_entry *e, size_t n)
{
	struct raft_entry *c = calloc(n, sizeof(*c));
	for (size_t i = 0; c && i < n; i++) {
		if (raft_entry_dup(&c[i], &e[i]) != 0) {
			while (i-- > 0)
				raft_entry_release(&c[i]);
			free(c);
			return NULL;
		}
	}
	return c;
}

/* The messages hold their own references to the commands (copies, if not
 * shared): the outbox's messages own their entries (raft_message_clear),
 * and a call's command goes with the call, which nothing ties to the
 * message once it is listed as forwarded. */
void forward_calls(struct kv_node *n, struct node_call *list, size_t count,
		   uint64_t leader)
{
	struct raft_entry *e = calloc(count, sizeof(*e));
	struct raft_message *msgs = calloc(count, sizeof(*msgs));
	size_t k = 0, m = 0, bytes = 0;
	for (struct node_call *c = list; e && msgs && c; c = c->next) {
		if (c->ret != NODE_FORWARD)
			continue;
		struct raft_message *msg = m ? &msgs[m - 1] : NULL;
		if (!msg || msg->n_entries == FWD_MSG_ENTRIES ||
		    bytes + c->len > FWD_MSG_BYTES) {
			msg = &msgs[m++];
			*msg = (struct raft_message){.type = RAFT_MSG_PROPOSE,
						     .from = n->id,
						     .to = leader,
						     .ctx = ++n->props.fwd_seq,
						     .entries = &e[k]};
			bytes = 0;
		}
		e[k++] = call_entry(c);
		c->fwd_pos = msg->n_entries++;
		bytes += c->len;
		c->fwd = msg->ctx;
	}
	size_t owned = 0;
	for (; owned < m; owned++) {
		struct raft_entry *dup =
		    entries_dup(msgs[owned].entries, msgs[owned].n_entries);
		if (dup == NULL)
			break;
		msgs[owned].entries = dup;
	}
	if (e == NULL || msgs == NULL || owned < m) {
		for (size_t i = 0; i < owned; i++)
			raft_message_clear(&msgs[i]);
		for (struct node_call *c = list; c; c = c->next)
			if (c->ret == NODE_FORWARD)
				c->ret = -ENOMEM; /* surely not applied */
	} else {
		for (size_t i = 0; i < m; i++)
			outbox_add(n, &msgs[i]);
	}
	free(e);
	free(msgs);
}

void forward_unsent(struct kv_node *n, const uint64_t *batch, size_t count)
{
	struct call_list *l = &n->props.forwarded;
	for (size_t i = 0; i < count; i++) {
		struct node_call *prev = NULL;
		for (struct node_call *c = l->head, *next; c; c = next) {
			next = c->next;
			if (c->fwd != batch[i]) {
				prev = c;
				continue;
			}
			calls_unlink(l, prev, c);
			props_settle(n, c, NODE_RETRY);
		}
	}
}

/* A follower's PROPOSE (the leader): node_deliver checked each command and
 * marked a message it did not take with reject, and why in hint_term
 * (EINVAL: refused; 0: out of memory, to be sent again). */
void forward_take(struct kv_node *n, const struct raft_message *m,
		  struct raft_message *resp)
{
	*resp = (struct raft_message){.type = RAFT_MSG_PROPOSE_RESP,
				      .from = n->id,
				      .to = m->from,
				      .ctx = m->ctx,
				      .reject = true};
	uint64_t need = 0;
	for (size_t i = 0; i < m->n_entries; i++)
		need += (uint64_t)m->entries[i].len + 256; /* as cmd_prepare */
	if (m->reject) {
		resp->hint_term = m->hint_term;
		return;
	}
	if (raft_role(n->raft) != RAFT_LEADER)
		return;
	if (store_room(n->store) < need) {
		/* handing over to a voter that can write: retry there */
		resp->hint_term = writable_handing_over(n) ? 0 : ENOSPC;
		return;
	}
	size_t count = 0;
	for (; count < m->n_entries; count++) {
		const struct raft_entry *e = &m->entries[count];
		uint64_t index, term;
		if (raft_propose_entry(n->raft, e, &index, &term) != 0)
			break; /* busy (transfer) or out of memory */
		kv_metric_add(&node_m_proposals, 0, 1);
		if (e->len >= NODE_PREDECODE_BYTES)
			decoded_rekey(n, e->data, index, term);
		if (count == 0) {
			resp->index = index;
			resp->log_term = term;
		}
	}
	resp->hint_index = count;
	resp->reject = count == 0;
}

/* The leader's answer to a PROPOSE of ours: its calls wait for their
 * entries, or fail. */
void forward_answer(struct kv_node *n, const struct raft_message *m)
{
	struct call_list *l = &n->props.forwarded;
	struct node_call *prev = NULL, *c = l->head;
	while (c && c->fwd != m->ctx) {
		prev = c;
		c = c->next;
	}
	int fail = !m->reject		    ? 0
		   : m->hint_term == ENOSPC ? -ENOSPC
		   : m->hint_term == EINVAL ? -EINVAL
					    : NODE_RETRY;
	uint64_t applied = store_applied(n->store);
	/* by each call's own place in the batch, not its place in the list:
	 * a call of the batch that expired meanwhile has left the list, and
	 * the ones after it must not take its entry's outcome */
	while (c && c->fwd == m->ctx) {
		struct node_call *next = c->next;
		uint64_t i = c->fwd_pos;
		calls_unlink(l, prev, c);
		if (fail || i >= m->hint_index) {
			/* not appended: safe to try again */
			props_settle(n, c, fail ? fail : NODE_RETRY);
		} else if (m->index + i <= applied) {
			/* the answer came after the entry was applied here
			 * (messages reordered): its result is gone */
			call_finish(c, KV_ENOQUORUM);
		} else {
			c->index = m->index + i;
			c->term = m->log_term;
			propose_hand_dec(n, c);
			c->stage = CALL_WAITING;
			calls_insert_by_index(&n->props.waiting, c);
		}
		c = next;
	}
}

/* A forwarded command, checked as a local one and re-encoded (the log
 * keeps our own encoding, never a peer's bytes): 0 with *canon (the
 * caller frees), -EINVAL, -ENAMETOOLONG, -EFBIG, -ENOMEM. */
static int forwarded_canon(const char *json, size_t len, char **canon,
			   size_t *clen)
{
	struct kv_cmd cmd;
	int ret = kv_cmd_decode(json, len, &cmd);
	if (ret != 0)
		return ret == -ENOMEM ? ret : -EINVAL;
	ret = propose_check(&cmd);
	if (ret == 0)
		ret = kv_cmd_encode(&cmd, canon, clen);
	kv_cmd_clear(&cmd);
	return ret;
}

/* A message with a command that is refused is marked reject with
 * hint_term EINVAL, one we ran out of memory for with hint_term 0 (the
 * follower may try again): the node thread answers it so, and appends
 * none of it. What the peer put in those two fields is not looked at. */
void forward_check(struct raft_message *m)
{
	m->reject = false;
	m->hint_term = 0;
	for (size_t i = 0; i < m->n_entries && !m->reject; i++) {
		struct raft_entry *e = &m->entries[i];
		char *canon = NULL;
		size_t clen = 0;
		int ret = e->type == RAFT_ENTRY_NORMAL
			      ? forwarded_canon(e->data, e->len, &canon, &clen)
			      : -EINVAL;
		if (ret == 0) {
			raft_entry_release(e);
			e->data = canon;
			e->len = clen;
			continue;
		}
		m->reject = true;
		if (ret == -ENOMEM) {
			kv_log(KV_LOG_WARN,
			       "out of memory taking writes forwarded "
			       "by node %llu; it will send them again",
			       (unsigned long long)m->from);
			continue;
		}
		m->hint_term = EINVAL;
		kv_log(KV_LOG_WARN,
		       "node %llu forwarded a write that is refused: "
		       "%s",
		       (unsigned long long)m->from, kv_strerror(ret));
	}
}
