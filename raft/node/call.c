/* call.c - a call another thread makes of the node, from start to answer.
 *
 * Writes, membership changes and read barriers are each a struct
 * node_call: started without blocking, carried by the node thread from
 * list to list, and answered exactly once through their done callback. An
 * asynchronous call is malloc'd and freed once answered; a blocking call
 * is the same call on the caller's stack with a done that posts a
 * semaphore (call_sync), so there is one path, not two. The node thread's
 * side of writes is in propose.c, of reads in read.c. */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "node_int.h"

void calls_push(struct call_list *l, struct node_call *c)
{
	c->next = NULL;
	if (l->tail)
		l->tail->next = c;
	else
		l->head = c;
	l->tail = c;
}

void calls_insert_by_index(struct call_list *l, struct node_call *c)
{
	if (!l->tail || l->tail->index <= c->index) {
		calls_push(l, c);
		return;
	}
	struct node_call **pp = &l->head;
	while ((*pp)->index <= c->index)
		pp = &(*pp)->next;
	c->next = *pp;
	*pp = c;
}

void calls_unlink(struct call_list *l, struct node_call *prev,
		  struct node_call *c)
{
	if (prev)
		prev->next = c->next;
	else
		l->head = c->next;
	if (l->tail == c)
		l->tail = prev;
	c->next = NULL;
}

void calls_settle(struct call_list *l, bool expired, int ret)
{
	struct node_call *prev = NULL;
	for (struct node_call *c = l->head, *next; c; c = next) {
		next = c->next;
		if (expired && !kv_past(&c->deadline)) {
			prev = c;
			continue;
		}
		calls_unlink(l, prev, c);
		call_finish(c, ret);
	}
}

void call_free_dec(struct node_call *c)
{
	if (c->dec) {
		kv_cmd_clear(c->dec);
		free(c->dec);
		c->dec = NULL;
	}
}

void call_share_json(struct node_call *c)
{
	struct raft_entry e = call_entry(c);
	if (raft_entry_share(&e) == 0) {
		decoded_note(&e); /* a big one's CRC, on this thread */
		c->jbuf = e.buf;
	}
}

struct raft_entry call_entry(const struct node_call *c)
{
	return (struct raft_entry){.type = RAFT_ENTRY_NORMAL,
				   .data = (void *)c->json,
				   .len = c->len,
				   .buf = c->jbuf};
}

void call_free_json(struct node_call *c)
{
	struct raft_entry e = call_entry(c);
	raft_entry_release(&e);
	c->json = NULL;
	c->jbuf = NULL;
}

void call_finish(struct node_call *c, int ret)
{
	assert(c->stage != CALL_DONE); /* answered exactly once */
	node_done_fn done = c->done;
	void *ctx = c->ctx;
	c->stage = CALL_DONE;
	c->ret = ret;
	if (c->kind == CALL_WRITE && c->t0_ns)
		kv_hist_observe_ns(node_m_write_seconds.hists,
				   kv_mono_ns() - c->t0_ns);
	const struct kv_result *res =
	    ret == 0 && c->kind == CALL_WRITE ? &c->res : NULL;
	/* a txn's results: done takes a reference to keep them */
	struct kv_txn_res *txn = c->kind == CALL_WRITE ? c->res.txn : NULL;
	if (!c->heap) {
		done(ctx, ret, res); /* c may be gone from here on */
		kv_txn_res_unref(txn);
		return;
	}
	done(ctx, ret, res);
	kv_txn_res_unref(txn);
	call_free_dec(c);
	call_free_json(c);
	free(c);
}

void calls_finish_woken(struct node_call *list)
{
	while (list) {
		struct node_call *c = list;
		list = c->wake_next;
		call_finish(c, c->ret);
	}
}

int call_expired(struct kv_node *n)
{
	return atomic_load(&n->st.fatal) ? KV_EFAILED : KV_ENOQUORUM;
}

void call_init(struct kv_node *n, struct node_call *c, enum call_kind kind,
	       node_done_fn done, void *ctx)
{
	memset(c, 0, sizeof(*c));
	c->kind = kind;
	c->done = done;
	c->ctx = ctx;
	c->deadline = kv_deadline(n->write_timeout_ms);
}

static void sync_done(void *ctx, int ret, const struct kv_result *res)
{
	struct call_sync *s = ctx;
	s->ret = ret;
	if (res)
		s->res = *res;
	sem_post(&s->sem); /* s may be gone from here on */
}

void call_sync_init(struct kv_node *n, struct node_call *c, enum call_kind kind,
		    struct call_sync *s)
{
	memset(s, 0, sizeof(*s));
	sem_init(&s->sem, 0, 0);
	call_init(n, c, kind, sync_done, s);
}

/* Wait for sem until the CLOCK_MONOTONIC deadline (NULL: no limit),
 * through signals: 0, or ETIMEDOUT. */
static int sem_wait_until(sem_t *sem, const struct timespec *deadline)
{
	for (;;) {
		int r = deadline ? sem_clockwait(sem, CLOCK_MONOTONIC, deadline)
				 : sem_wait(sem);
		if (r == 0)
			return 0;
		if (errno != EINTR)
			return errno;
	}
}

int call_wait(struct kv_node *n, struct node_call *c, struct call_sync *s,
	      struct kv_result *res)
{
	/* c's deadline is only read here, never written by its holder */
	if (sem_wait_until(&s->sem, &c->deadline) != 0) {
		/* Its time is up: whoever holds it answers it, the node
		 * thread at once when asked (or node_stop). If it was
		 * settled just now, its post is on the way: either way
		 * there is exactly one post to wait for. */
		inbox_expire(n);
		sem_wait_until(&s->sem, NULL);
	}
	sem_destroy(&s->sem);
	if (res && s->ret == 0)
		*res = s->res;
	return s->ret;
}

/* ---- handing a call to the node thread ---- */

int inbox_add_call(struct kv_node *n, struct node_call *c)
{
	struct node_inbox *in = &n->in;
	pthread_mutex_lock(&in->mu);
	if (atomic_load(&n->stopping)) {
		pthread_mutex_unlock(&in->mu);
		return KV_ESHUTDOWN;
	}
	c->stage = CALL_QUEUED;
	calls_push(&in->calls, c);
	bool lazy = in->lazy; /* the sync's report takes it up */
	pthread_mutex_unlock(&in->mu);
	/* After the unlock: a node thread woken while in.mu is still held
	 * would block on it at once (two more futex calls and a context
	 * switch a write). The node thread reads the inbox under in.mu
	 * before it waits, and in.cond lives as long as the node. */
	if (!lazy)
		pthread_cond_signal(&in->cond);
	return 0;
}

void inbox_expire(struct kv_node *n)
{
	pthread_mutex_lock(&n->in.mu);
	n->in.expire = true;
	pthread_mutex_unlock(&n->in.mu);
	pthread_cond_signal(&n->in.cond);
}

void inbox_wake_reads(struct kv_node *n)
{
	pthread_mutex_lock(&n->in.mu);
	n->in.reads = true;
	pthread_mutex_unlock(&n->in.mu);
	pthread_cond_signal(&n->in.cond);
}
