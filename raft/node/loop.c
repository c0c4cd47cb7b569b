/* loop.c - the node thread: the one thread that drives the Raft core.
 *
 * Each turn it takes everything other threads left in the inbox (calls,
 * peer messages, durability reports from the store, a finished db or
 * snapshot sender, batches that never left), feeds it to the core, ticks
 * the clock every NODE_TICK_MS, settles the calls whose deadline passed,
 * and carries out each update (update.c). It holds the inbox lock only to
 * take the inbox and to sleep: what it took, the core and the calls it
 * carries are its own. Each turn is measured (turn.c): heartbeats go out
 * between turns. node_stop ends it and answers what it held. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node_int.h"

/* propose_turn: a transfer, for transfer_begin. */
#define NODE_TRANSFER 3

/* What one turn took from the inbox. */
struct turn {
	struct node_call *calls;
	struct inmsg *msgs;
	bool persisted;
	uint64_t p_index, p_term;
	uint64_t snapshotted;
	bool sends;
	bool expire;
	uint64_t unsent[NODE_MAX_UNSENT];
	size_t n_unsent;
};

/* Did other threads leave work? in.mu held. */
static bool inbox_has_work(const struct kv_node *n)
{
	const struct node_inbox *in = &n->in;
	return in->calls.head || in->msgs || in->persisted_new ||
	       in->sends_finished || in->snapshotted > n->compacted ||
	       in->n_unsent || in->reads || in->expire;
}

/* Take the inbox into t. in.mu held. */
static void inbox_take(struct kv_node *n, struct turn *t)
{
	struct node_inbox *in = &n->in;
	t->calls = in->calls.head;
	in->calls.head = in->calls.tail = NULL;
	t->msgs = in->msgs;
	in->msgs = in->msgs_tail = NULL;
	in->n_msgs = 0;
	t->persisted = in->persisted_new;
	t->p_index = in->persisted_index;
	t->p_term = in->persisted_term;
	in->persisted_new = false;
	t->snapshotted = in->snapshotted;
	t->sends = in->sends_finished;
	in->sends_finished = false;
	t->expire = in->expire;
	in->expire = false;
	in->reads = false;
	t->n_unsent = in->n_unsent;
	memcpy(t->unsent, in->unsent, in->n_unsent * sizeof(in->unsent[0]));
	in->n_unsent = 0;
}

static void msgs_free(struct kv_node *n, struct inmsg *m)
{
	while (m) {
		struct inmsg *next = m->next;
		/* a forwarded write's decoded command not proposed after all */
		for (size_t i = 0; i < m->n; i++)
			for (size_t k = 0;
			     m->msgs[i].type == RAFT_MSG_PROPOSE &&
			     k < m->msgs[i].n_entries;
			     k++)
				if (m->msgs[i].entries[k].len >=
				    NODE_PREDECODE_BYTES)
					decoded_forget(
					    n, m->msgs[i].entries[k].data);
		peer_msgs_free(m->msgs, m->n);
		free(m);
		m = next;
	}
}

/* ---- a turn ---- */

/* A peer's message: forwarded writes are the node layer's, the rest the
 * core's. */
static void step(struct kv_node *n, const struct raft_message *m)
{
	if (m->type == RAFT_MSG_PROPOSE) {
		struct raft_message resp;
		forward_take(n, m, &resp);
		outbox_add(n, &resp);
	} else if (m->type == RAFT_MSG_PROPOSE_RESP) {
		forward_answer(n, m);
	} else {
		raft_step(n->raft, m);
	}
}

/* The store wrote a db at index: the senders waiting for one start.
 * The core's log is not compacted for it (trail.c does, every turn). */
static void db_written(struct kv_node *n, uint64_t index)
{
	n->compacted = index;
	snapshot_send_resume(n, index);
}

/* A failed store: the node stops taking part, and every write fails at
 * once. */
static void turn_failed(struct kv_node *n, struct turn *t)
{
	msgs_free(n, t->msgs);
	n->compacted = t->snapshotted;
	forward_unsent(n, t->unsent, t->n_unsent); /* parked, then failed */
	for (struct node_call *c = t->calls, *next; c; c = next) {
		next = c->next;
		call_finish(c, KV_EFAILED);
	}
	props_fail_parked(n, KV_EFAILED);
}

/* Propose the calls of a turn: through the core on the leader, to the
 * leader (forward.c) on a follower that knows one; the rest are parked for
 * a retry or answered (props_settle). */
static void propose_turn(struct kv_node *n, struct node_call *list)
{
	uint64_t leader = raft_leader(n->raft);
	bool forward = raft_role(n->raft) != RAFT_LEADER && leader != RAFT_NONE;
	size_t nfwd = 0;
	for (struct node_call *c = list; c; c = c->next) {
		if (kv_past(&c->deadline)) {
			/* surely not applied, but its time is up */
			c->ret = call_expired(n);
		} else if (c->kind == CALL_CONF) {
			c->ret = members_change(n, c);
		} else if (c->kind == CALL_TRANSFER) {
			c->ret = NODE_TRANSFER;
		} else if (forward) {
			c->ret = NODE_FORWARD;
			nfwd++;
		} else {
			struct raft_entry e = call_entry(c);
			c->ret = raft_propose_entry(n->raft, &e, &c->index,
						    &c->term);
			if (c->ret == 0) {
				kv_metric_add(&node_m_proposals, 0, 1);
				propose_hand_dec(n, c);
			}
			if (c->ret == RAFT_ENOTLEADER || c->ret == RAFT_EBUSY)
				c->ret = NODE_RETRY;
		}
	}
	if (nfwd)
		forward_calls(n, list, nfwd, leader);
	while (list) {
		struct node_call *c = list;
		list = c->next;
		c->next = NULL;
		if (c->ret == NODE_TRANSFER) {
			transfer_begin(n, c);
		} else if (c->ret == 0) {
			c->stage = CALL_WAITING;
			calls_insert_by_index(&n->props.waiting, c);
		} else if (c->ret == NODE_FORWARD) {
			c->stage = CALL_FORWARDED;
			calls_push(&n->props.forwarded, c);
		} else {
			props_settle(n, c, c->ret);
		}
	}
}

static void turn_run(struct kv_node *n, struct turn *t, bool tick)
{
	if (t->expire || tick) {
		props_expire(n);
		reads_expire(n);
	}
	if (atomic_load(&n->st.fatal)) {
		turn_failed(n, t);
		return;
	}
	uint64_t nmsgs = 0, mbytes = 0;
	for (struct inmsg *m = t->msgs; m; m = m->next)
		for (size_t i = 0; i < m->n; i++) {
			for (size_t k = 0; k < m->msgs[i].n_entries; k++)
				mbytes += m->msgs[i].entries[k].len;
			step(n, &m->msgs[i]);
			nmsgs++;
		}
	msgs_free(n, t->msgs);
	if (t->persisted) {
		raft_persisted(n->raft, t->p_index, t->p_term);
		node_abstain_check(n, t->p_index);
	}
	if (t->n_unsent)
		forward_unsent(n, t->unsent, t->n_unsent);
	turn_mark(n, TURN_MSGS, nmsgs, mbytes);
	if (t->snapshotted > n->compacted)
		db_written(n, t->snapshotted);
	if (t->sends)
		snapshot_send_reap(n, false);
	turn_mark(n, TURN_OTHER, 0, 0);
	/* writes parked for a leader go first: they are older */
	struct node_call *list = props_take_due(n);
	if (list) {
		struct node_call *last = list;
		while (last->next)
			last = last->next;
		last->next = t->calls;
	} else {
		list = t->calls;
	}
	uint64_t ncalls = 0, cbytes = 0;
	for (struct node_call *c = list; c; c = c->next) {
		ncalls++;
		cbytes += c->len;
	}
	if (list)
		propose_turn(n, list);
	turn_mark(n, TURN_PROPOSE, ncalls, cbytes);
	if (tick) {
		writable_check(n);
		raft_tick(n->raft);
		if (raft_role(n->raft) == RAFT_LEADER)
			members_promote(n);
		node_leases_tick(n);
	}
	uint64_t round = reads_round_next(n);
	bool round_failed = round && raft_read_index(n->raft, round) != 0;
	if (round && !round_failed)
		kv_metric_add(&node_m_read_rounds, 0, 1);
	turn_mark(n, TURN_TICK, 0, 0);
	while (raft_has_update(n->raft)) {
		struct raft_update u;
		if (raft_update_get(n->raft, &u) != 0)
			break; /* out of memory: next turn */
		update_process(n, &u);
		raft_update_free(&u);
	}
	outbox_flush(n); /* a turn without an update */
	trail_compact(n);
	if (n->props.transfers.head)
		transfer_check(n);
	if (round_failed)
		reads_round_failed(n, round);
	members_sync(n);
	reads_solo_publish(
	    n); /* a turn without an update, or a refused change */
	if (status_publish(n))
		n->props.epoch++;
	members_publish(n);
}

static void *loop_main(void *arg)
{
	pthread_setname_np(pthread_self(), "kvfs-node");
	kv_thread_urgent(); /* its turns send the heartbeats */
	struct kv_node *n = arg;
	struct node_inbox *in = &n->in;
	/* the first turn ticks: a member alone leads at once (not a tick
	 * later), and a restart's replay, which waits for that, starts */
	uint64_t next_tick = kv_mono_ms();
	pthread_mutex_lock(&in->mu);
	while (!atomic_load(&n->stopping)) {
		uint64_t now = kv_mono_ms();
		uint64_t wake = next_tick, due = props_next_due(n);
		if (due && due < wake)
			wake = due;
		bool reads = n->rd.want && now >= n->rd.retry_ms;
		if (!inbox_has_work(n) && !reads && now < wake) {
			struct timespec until = kv_deadline((int)(wake - now));
			pthread_cond_timedwait(&in->cond, &in->mu, &until);
			continue;
		}
		struct turn t;
		turn_begin(n);
		inbox_take(n, &t);
		pthread_mutex_unlock(&in->mu);
		turn_mark(n, TURN_INBOX, 0, 0);
		bool tick = now >= next_tick;
		if (tick)
			next_tick = now + NODE_TICK_MS;
		turn_run(n, &t, tick);
		turn_end(n);
		pthread_mutex_lock(&in->mu);
	}
	pthread_mutex_unlock(&in->mu);
	free(n->outbox);
	n->outbox = NULL;
	n->cap_outbox = 0;
	return NULL;
}

int node_loop_start(struct kv_node *n)
{
	members_sync(n);
	status_publish(n);
	members_publish(n);
	int ret = -pthread_create(&n->thread, NULL, loop_main, n);
	if (ret == 0)
		n->thread_started = true;
	return ret;
}

void node_loop_stop(struct kv_node *n)
{
	if (!n->thread_started)
		return;
	atomic_store(&n->stopping, true);
	pthread_mutex_lock(&n->in.mu);
	pthread_cond_broadcast(&n->in.cond);
	pthread_mutex_unlock(&n->in.mu);
	pthread_join(n->thread, NULL);
	n->thread_started = false;
	snapshot_send_reap(n, true);
	/* What the node held will not be answered by the core any more.
	 * Nothing is listed from now on: every start sees stopping. */
	pthread_mutex_lock(&n->in.mu);
	struct node_call *calls = n->in.calls.head;
	n->in.calls.head = n->in.calls.tail = NULL;
	struct inmsg *msgs = n->in.msgs;
	n->in.msgs = n->in.msgs_tail = NULL;
	n->in.n_msgs = 0;
	pthread_mutex_unlock(&n->in.mu);
	msgs_free(n, msgs);
	for (struct node_call *c = calls, *next; c; c = next) {
		next = c->next;
		call_finish(c, KV_ESHUTDOWN);
	}
	props_drain(n, KV_ESHUTDOWN);
	reads_drain(n, KV_ESHUTDOWN);
}
