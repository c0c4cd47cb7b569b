/* read.c - read barriers: may this node serve a read from its map now?
 *
 * A linearizable read waits for a ReadIndex round (raft.h, §6.4 of the
 * dissertation) that was issued after it arrived, then for the round's
 * index to be applied here. Readers that arrive together share a round:
 * a reader is listed for the next round to be issued, the node thread
 * issues one when readers want it (up to NODE_READ_PIPELINE at once) and
 * an answer serves every reader listed for that round or an earlier one.
 * Readers are listed from any thread under rd.mu; everything after (the
 * rounds' answers, waiting for the apply, deadlines) is the node thread's,
 * except an answer whose index is applied already: the thread that
 * delivers it serves its readers (reads_answer_direct). On a follower the
 * round itself is asked by the reader, or by the thread that served the
 * last one, when the node thread published a leader to ask
 * (read_fast.c).
 * One round flies at a time (NODE_READ_PIPELINE): readers who arrive
 * during it share the next. With four, each of 4 threads reading files
 * through a follower had a round of its own (1.2 barriers a round,
 * against 2.1 with one) and a read cost 15-20% more CPU; linearizable
 * GETs at 16 and 64 HTTP clients were the same either way
 * (docs/mount.md). The call itself is in call.c. */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>

#include "node_int.h"

/* ---- the callers' side ---- */

bool node_read_now(struct kv_node *n)
{
	/* read after the reader arrived: if set, at that moment this node
	 * was the leader and only voter, and every write acknowledged
	 * anywhere had an index at most this one (it is published before
	 * any message or answer of the turn that committed further) */
	uint64_t solo = atomic_load(&n->rd.solo_index);
	if (solo == 0 || store_applied(n->store) < solo ||
	    atomic_load(&n->st.fatal) || atomic_load(&n->stopping))
		return false;
	kv_metric_add(&node_m_read_barriers, 0, 1);
	kv_metric_add(&node_m_read_local, 0, 1);
	return true;
}

/* List c as a reader of the next ReadIndex round: 0, or KV_ESHUTDOWN
 * (c is not taken, its done is never called). */
static int read_start(struct kv_node *n, struct node_call *c)
{
	kv_metric_add(&node_m_read_barriers, 0, 1);
	struct node_reads *rd = &n->rd;
	pthread_mutex_lock(&rd->mu);
	if (atomic_load(&n->stopping)) {
		pthread_mutex_unlock(&rd->mu);
		return KV_ESHUTDOWN;
	}
	uint64_t need = rd->issued + 1;
	/* wake the node thread only for the first reader of a round, and
	 * only if it may issue one now: once a round in flight is answered,
	 * it looks at need again by itself. A follower's reader that may ask
	 * the leader itself does (read_fast.c). */
	bool wake = false;
	struct raft_message ask;
	uint64_t asked = 0;
	if (need > rd->need) {
		rd->need = need;
		asked = reads_ask_locked(n, &ask);
		wake = !asked && rd->inflight < NODE_READ_PIPELINE;
	}
	/* rounds only grow, so the list stays in round order */
	c->round = need;
	c->stage = CALL_READER;
	calls_push(&rd->readers, c);
	pthread_mutex_unlock(&rd->mu);
	if (asked)
		reads_ask_send(n, &ask);
	if (wake)
		inbox_wake_reads(n);
	return 0;
}

int node_read_barrier_async(struct kv_node *n, node_done_fn done, void *ctx)
{
	struct node_call *c = malloc(sizeof(*c));
	if (!c)
		return -ENOMEM;
	call_init(n, c, CALL_READ, done, ctx);
	c->heap = true;
	int ret = read_start(n, c);
	if (ret != 0)
		free(c);
	return ret;
}

int node_read_barrier(struct kv_node *n, bool linearizable)
{
	if (!linearizable || node_read_now(n))
		return 0;
	struct node_call c;
	struct call_sync s;
	call_sync_init(n, &c, CALL_READ, &s);
	int ret = read_start(n, &c);
	if (ret == 0)
		return call_wait(n, &c, &s, NULL);
	sem_destroy(&s.sem);
	return ret;
}

/* ---- the node thread's side ---- */

void reads_solo_publish(struct kv_node *n)
{
	struct raft *r = n->raft;
	atomic_store(&n->rd.solo_index,
		     raft_read_is_local(r) ? raft_commit_index(r) : 0);
	reads_fast_publish(n);
}

void reads_solo_off(struct kv_node *n)
{
	atomic_store(&n->rd.solo_index, 0);
	reads_fast_off(n);
}

/* Readers wait for a round not issued yet, and one may be issued. rd.mu
 * held. */
static bool want_round(const struct node_reads *rd)
{
	return rd->need > rd->issued && rd->inflight < NODE_READ_PIPELINE;
}

uint64_t reads_round_next(struct kv_node *n)
{
	struct node_reads *rd = &n->rd;
	uint64_t now = kv_mono_ms();
	if (now < rd->retry_ms)
		return 0;
	uint64_t round = 0;
	pthread_mutex_lock(&rd->mu);
	/* a round for readers that arrived since the last one was issued,
	 * or again if it went unanswered */
	bool lost = rd->need > rd->answered &&
		    now - rd->issued_ms >= NODE_READ_RETRY_MS;
	if (want_round(rd) || lost) {
		/* numbered before it is asked, so that a reader who arrives
		 * after this point waits for a later round; numbers are
		 * never reused. Up to NODE_READ_PIPELINE rounds fly at once
		 * (one: the readers who arrive during a round share the
		 * next). */
		round = ++rd->issued;
		rd->issued_ms = now;
		rd->inflight++;
	}
	rd->want = want_round(rd);
	pthread_mutex_unlock(&rd->mu);
	return round;
}

void reads_round_failed(struct kv_node *n, uint64_t round)
{
	struct node_reads *rd = &n->rd;
	pthread_mutex_lock(&rd->mu);
	/* only the node thread issues rounds: round is the latest one */
	if (rd->issued == round && rd->inflight)
		rd->inflight--;
	rd->want = want_round(rd);
	pthread_mutex_unlock(&rd->mu);
	/* no leader known: ask again a tick later */
	rd->retry_ms = kv_mono_ms() + NODE_TICK_MS;
}

/* A reader's round was answered (c->ret 0, c->index the read index) or
 * failed: it waits for its index to be applied here, or is answered. */
static void reader_settled(struct kv_node *n, struct node_call *c)
{
	if (c->ret == 0 && store_applied(n->store) < c->index) {
		if (atomic_load(&n->st.fatal)) {
			c->ret = KV_EFAILED;
		} else {
			c->stage = CALL_APPLIER;
			calls_insert_by_index(&n->rd.appliers, c);
			return;
		}
	}
	call_finish(c, c->ret);
}

/* Take the readers with round <= upto (all if UINT64_MAX) off the list,
 * settled with ret (and index), onto *wake. rd.mu held. */
static void readers_take(struct node_reads *rd, uint64_t upto, uint64_t index,
			 int ret, struct node_call **wake)
{
	struct node_call **tail = wake;
	while (*tail)
		tail = &(*tail)->wake_next;
	while (rd->readers.head && rd->readers.head->round <= upto) {
		struct node_call *c = rd->readers.head;
		assert(c->stage == CALL_READER);
		calls_unlink(&rd->readers, NULL, c);
		c->index = index;
		c->ret = ret;
		c->wake_next = NULL;
		*tail = c;
		tail = &c->wake_next;
	}
}

/* Post the woken readers (rd.mu released): each goes on to wait for its
 * index, or is answered. */
static void readers_wake(struct kv_node *n, struct node_call *list)
{
	while (list) {
		struct node_call *c = list;
		list = c->wake_next;
		reader_settled(n, c);
	}
}

void reads_answered(struct kv_node *n, const struct raft_read *reads,
		    size_t count)
{
	struct node_reads *rd = &n->rd;
	struct node_call *woken = NULL;
	pthread_mutex_lock(&rd->mu);
	for (size_t i = 0; i < count; i++) {
		const struct raft_read *r = &reads[i];
		/* only rounds of this process not yet superseded: an answer
		 * to an older round, or to a round of an earlier process,
		 * must not count for readers who arrived after it was
		 * issued */
		if (r->ctx <= rd->answered || r->ctx > rd->issued)
			continue;
		if (r->err != 0) {
			/* leadership lost: the rounds out there fail too;
			 * the next turn asks again */
			rd->inflight = 0;
			continue;
		}
		rd->answered = r->ctx;
		rd->index = r->index;
		/* an answer settles every earlier round too */
		rd->inflight = (unsigned)(rd->issued - rd->answered);
	}
	readers_take(rd, rd->answered, rd->index, 0, &woken);
	rd->want = want_round(rd);
	pthread_mutex_unlock(&rd->mu);
	readers_wake(n, woken);
}

bool reads_answer_direct(struct kv_node *n, const struct raft_message *m)
{
	/* The answer is good whatever our term now: the leader confirmed,
	 * after the round was asked, that it led (raft/core/readindex.c).
	 * A refusal, or an index not applied yet, goes the node thread's
	 * way (the appliers are its own). */
	if (m->type != RAFT_MSG_READ_INDEX_RESP || m->reject ||
	    store_applied(n->store) < m->index || atomic_load(&n->st.fatal))
		return false;
	struct node_reads *rd = &n->rd;
	struct node_call *woken = NULL;
	pthread_mutex_lock(&rd->mu);
	if (m->ctx <= rd->answered || m->ctx > rd->issued) {
		/* superseded, or of an earlier process: as reads_answered */
		pthread_mutex_unlock(&rd->mu);
		return true;
	}
	rd->answered = m->ctx;
	rd->index = m->index;
	rd->inflight = (unsigned)(rd->issued - rd->answered);
	readers_take(rd, rd->answered, rd->index, 0, &woken);
	/* readers who came during the round: the next one, asked from here
	 * if it may be (read_fast.c), else by the node thread */
	struct raft_message ask;
	uint64_t asked = reads_ask_locked(n, &ask);
	rd->want = want_round(rd);
	bool more = rd->want;
	pthread_mutex_unlock(&rd->mu);
	if (asked)
		reads_ask_send(n, &ask);
	/* applied: every reader is answered here (reader_settled's check
	 * holds for the index taken) */
	calls_finish_woken(woken);
	if (more)
		inbox_wake_reads(n);
	return true;
}

void reads_settle_applied(struct kv_node *n)
{
	struct call_list *l = &n->rd.appliers;
	if (!l->head)
		return;
	uint64_t applied = store_applied(n->store);
	while (l->head && l->head->index <= applied) {
		struct node_call *c = l->head;
		calls_unlink(l, NULL, c);
		call_finish(c, 0);
	}
}

void reads_expire(struct kv_node *n)
{
	struct node_reads *rd = &n->rd;
	int ret = call_expired(n);
	struct node_call *woken = NULL, **tail = &woken, *prev = NULL;
	pthread_mutex_lock(&rd->mu);
	for (struct node_call *c = rd->readers.head, *next; c; c = next) {
		next = c->next;
		if (!kv_past(&c->deadline)) {
			prev = c;
			continue;
		}
		calls_unlink(&rd->readers, prev, c);
		c->ret = ret;
		c->wake_next = NULL;
		*tail = c;
		tail = &c->wake_next;
	}
	pthread_mutex_unlock(&rd->mu);
	calls_finish_woken(woken);
	calls_settle(&rd->appliers, true, ret);
}

void reads_drain(struct kv_node *n, int ret)
{
	struct node_call *woken = NULL;
	pthread_mutex_lock(&n->rd.mu);
	readers_take(&n->rd, UINT64_MAX, 0, ret, &woken);
	pthread_mutex_unlock(&n->rd.mu);
	calls_finish_woken(woken);
	calls_settle(&n->rd.appliers, false, ret);
}
