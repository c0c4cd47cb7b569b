/* transfer.c - leadership transfer as the node offers it: POST
 * /cluster/leader, and the hand-over of a leader that stops.
 *
 * node_transfer_leader is a blocking call like a membership change: the
 * node thread asks the core (raft_transfer_leadership, §3.10 of Ongaro's
 * dissertation: the leader stops taking writes, brings the target's log
 * up to its own, sends TimeoutNow) and keeps the call on props.transfers
 * until the end of a turn finds another member leading (success), the
 * core abandoned the transfer (an election timeout without a new leader)
 * or the call's deadline passed. Writes that arrive meanwhile are parked
 * and proposed again to the new leader (propose.c), so a transfer costs a
 * pause, not failed writes. node_handover is the stop's: bounded, and it
 * never fails the stop. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "node_int.h"

/* The node thread takes c (a CALL_TRANSFER): answered now, or listed on
 * props.transfers. */
void transfer_begin(struct kv_node *n, struct node_call *c)
{
	struct raft *r = n->raft;
	uint64_t id = c->conf_id;
	if (raft_role(r) != RAFT_LEADER) {
		call_finish(c, KV_ENOTLEADER);
		return;
	}
	if (id == n->id) {
		/* it leads already: nothing to do */
		const struct raft_server *s =
		    raft_config_get(raft_config(r), id);
		snprintf(c->conf_addr, sizeof(c->conf_addr), "%s",
			 s ? s->addr : "");
		c->index = n->id;
		call_finish(c, raft_transferee(r) ? -EBUSY : 0);
		return;
	}
	if (id != 0) {
		const struct raft_server *s =
		    raft_config_get(raft_config(r), id);
		if (!s) {
			call_finish(c, -ENOENT);
			return;
		}
		if (s->role != RAFT_VOTER) {
			call_finish(c, -EINVAL);
			return;
		}
	}
	int ret = raft_transfer_leadership(r, id ? id : RAFT_NONE);
	if (ret != 0) {
		/* RAFT_NONE and no other voter: a cluster of one */
		call_finish(c, ret == RAFT_EBUSY ? -EBUSY : -EINVAL);
		return;
	}
	c->conf_id = raft_transferee(r);
	c->t0_ns = kv_mono_ns();
	kv_log(KV_LOG_INFO,
	       "leadership transfer to node %llu: writes wait until it leads",
	       (unsigned long long)c->conf_id);
	c->stage = CALL_TRANSFERRING;
	calls_push(&n->props.transfers, c);
}

void transfer_check(struct kv_node *n)
{
	struct raft *r = n->raft;
	struct call_list *l = &n->props.transfers;
	struct node_call *prev = NULL;
	for (struct node_call *c = l->head, *next; c; c = next) {
		next = c->next;
		uint64_t leader = raft_leader(r);
		unsigned long long ms = (kv_mono_ns() - c->t0_ns) / 1000000;
		int ret = 1; /* still waiting */
		if (raft_role(r) == RAFT_LEADER &&
		    raft_transferee(r) == RAFT_NONE) {
			kv_log(KV_LOG_WARN,
			       "leadership transfer to node %llu abandoned "
			       "after %llu ms: it did not take over within an "
			       "election timeout; this node leads on",
			       (unsigned long long)c->conf_id, ms);
			ret = -ETIMEDOUT;
		} else if (raft_role(r) != RAFT_LEADER && leader != RAFT_NONE &&
			   leader != n->id) {
			kv_log(KV_LOG_INFO,
			       "leadership handed to node %llu in %llu ms",
			       (unsigned long long)leader, ms);
			const struct raft_server *s =
			    raft_config_get(raft_config(r), leader);
			snprintf(c->conf_addr, sizeof(c->conf_addr), "%s",
				 s ? s->addr : "");
			c->index = leader;
			ret = 0;
		}
		if (ret == 1) {
			prev = c;
			continue;
		}
		calls_unlink(l, prev, c);
		call_finish(c, ret);
	}
}

int node_transfer_leader(struct kv_node *n, uint64_t id, int timeout_ms,
			 uint64_t *leader, char *addr, size_t cap)
{
	if (id > PEER_INT_MAX)
		return -ENOENT;
	struct node_call c;
	struct call_sync s;
	call_sync_init(n, &c, CALL_TRANSFER, &s);
	if (timeout_ms > 0)
		c.deadline = kv_deadline(timeout_ms);
	c.conf_id = id;
	int ret =
	    atomic_load(&n->st.fatal) ? KV_EFAILED : inbox_add_call(n, &c);
	if (ret == 0)
		ret = call_wait(n, &c, &s, NULL);
	else
		sem_destroy(&s.sem);
	if (ret == 0 && leader)
		*leader = c.index;
	if (ret == 0 && addr && cap)
		snprintf(addr, cap, "%s", c.conf_addr);
	return ret;
}

/* How long node_handover tries: two of the longest election timeouts. */
#define HANDOVER_MS (2 * 2 * NODE_ELECTION * NODE_TICK_MS)

void node_handover(struct kv_node *n)
{
	pthread_mutex_lock(&n->st.mu);
	bool leader = n->st.soft.role == RAFT_LEADER;
	pthread_mutex_unlock(&n->st.mu);
	unsigned others = 0;
	pthread_mutex_lock(&n->mb.mu);
	for (unsigned i = 0; i < n->mb.n; i++)
		others += n->mb.list[i].id != n->id &&
			  n->mb.list[i].role == RAFT_VOTER;
	pthread_mutex_unlock(&n->mb.mu);
	if (!leader || !others || atomic_load(&n->st.fatal))
		return; /* a member alone: nobody to hand over to */
	uint64_t t0 = kv_mono_ms(), to = 0;
	int ret = -ETIMEDOUT;
	kv_log(KV_LOG_INFO,
	       "stopping: handing leadership over first (at most "
	       "%d ms)",
	       HANDOVER_MS);
	while (ret == -ETIMEDOUT || ret == -EBUSY || ret == KV_ENOQUORUM) {
		int left = HANDOVER_MS - (int)(kv_mono_ms() - t0);
		if (left <= 0)
			break;
		ret = node_transfer_leader(n, 0, left, &to, NULL, 0);
		if (ret == -EBUSY) {
			struct timespec pause = {0, 20 * 1000000};
			nanosleep(&pause, NULL);
		}
	}
	if (ret == 0) {
		/* Followers that still forward to this node are answered
		 * "not the leader" (and retry at the new one) while it runs:
		 * a moment for what is in flight, then the stop. */
		struct timespec linger = {0, NODE_HEARTBEAT * NODE_TICK_MS * 2 *
						 1000000};
		nanosleep(&linger, NULL);
		return;
	}
	if (ret == KV_ENOTLEADER)
		return; /* it lost the lead meanwhile: nothing to hand over */
	kv_log(KV_LOG_WARN,
	       "stopping without handing leadership over (%s, after %llu "
	       "ms): the others elect a leader once this node is gone",
	       ret == -EINVAL	     ? "no other voter"
	       : ret == -ETIMEDOUT   ? "no voter took over in time"
	       : ret == KV_ENOQUORUM ? "no new leader was known in time"
				     : kv_strerror(ret),
	       (unsigned long long)(kv_mono_ms() - t0));
}
