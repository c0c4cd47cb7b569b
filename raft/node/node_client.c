/* node_client.c - what other threads ask of the node: writes, read
 * barriers, peer messages. Writes and read barriers come blocking (FUSE's
 * threads) and asynchronous (the HTTP listener), on the same lists.
 *
 * A write goes into the node thread's inbox and waits for its entry to be
 * applied here, on the leader and on a follower alike: a follower's node
 * thread sends the writes to the leader in PROPOSE messages, the leader
 * answers where it appended them, and the follower's write then waits
 * for that entry as the leader's own would (node_loop.c,
 * docs/peer-protocol.md), so it answers its client only once it applied
 * the write itself (read-your-writes on every node). A write is retried
 * only when it surely was not applied (no leader, not the leader, lost to
 * another leader's entry); once a forwarded write may have reached the
 * leader, a missing answer is reported as KV_ENOQUORUM with the outcome
 * unknown, never retried (a retry could apply it twice). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "node_int.h"

/* ---- time ---- */

struct timespec node_deadline(int ms)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	t.tv_sec += ms / 1000;
	t.tv_nsec += (long)(ms % 1000) * 1000000;
	if (t.tv_nsec >= 1000000000) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000;
	}
	return t;
}

bool node_past(const struct timespec *d)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > d->tv_sec ||
	       (now.tv_sec == d->tv_sec && now.tv_nsec >= d->tv_nsec);
}

static long ms_left(const struct timespec *d)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	long ms = (d->tv_sec - now.tv_sec) * 1000 +
		  (d->tv_nsec - now.tv_nsec) / 1000000;
	return ms > 0 ? ms : 0;
}

int node_cond_init(pthread_cond_t *c)
{
	pthread_condattr_t a;
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	int ret = -pthread_cond_init(c, &a);
	pthread_condattr_destroy(&a);
	return ret;
}

/* Wait on state_cond until woken or the deadline; n->mu held. False once
 * the deadline passed or the node is stopping. */
static bool state_wait(struct kv_node *n, const struct timespec *deadline)
{
	if (n->stopping || node_past(deadline))
		return false;
	n->state_waiters++;
	pthread_cond_timedwait(&n->state_cond, &n->mu, deadline);
	n->state_waiters--;
	return !n->stopping;
}

int node_sem_wait(sem_t *sem, const struct timespec *deadline)
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

void node_wake_all(struct node_waiter *list)
{
	while (list) {
		struct node_waiter *w = list;
		list = w->wake_next;
		/* w may be gone from here on */
		if (w->settle)
			w->settle(w);
		else
			sem_post(&w->sem);
	}
}

/* Sleep on w (listed by the caller) until it is settled or the deadline;
 * n->mu held, released meanwhile. 0 if settled (w->ret, w->index hold
 * the answer); else w is taken off its list and the result is
 * KV_ESHUTDOWN, KV_EFAILED or KV_ENOQUORUM. */
static int waiter_sleep(struct kv_node *n, struct node_waiter *w,
			struct node_waiter **head, struct node_waiter **tail,
			const struct timespec *deadline)
{
	pthread_mutex_unlock(&n->mu);
	int r = node_sem_wait(&w->sem, deadline);
	pthread_mutex_lock(&n->mu);
	if (r == 0)
		return 0;
	if (!w->listed) {
		/* settled just now: its post is on the way */
		pthread_mutex_unlock(&n->mu);
		node_sem_wait(&w->sem, NULL);
		pthread_mutex_lock(&n->mu);
		return 0;
	}
	struct node_waiter *prev = NULL;
	for (struct node_waiter *q = *head; q != w; prev = q, q = q->next)
		;
	if (prev)
		prev->next = w->next;
	else
		*head = w->next;
	if (tail && *tail == w)
		*tail = prev;
	w->listed = false;
	return n->stopping ? KV_ESHUTDOWN
	       : n->fatal  ? KV_EFAILED
			   : KV_ENOQUORUM;
}

/* List w (w->at set) as waiting for its index to be applied here, in
 * index order. n->mu held. */
static void applier_add(struct kv_node *n, struct node_waiter *w)
{
	struct node_waiter **pp = &n->appliers;
	while (*pp && (*pp)->at <= w->at)
		pp = &(*pp)->next;
	w->listed = true;
	w->next = *pp;
	*pp = w;
}

/* Wait until this node applied index; n->mu held. The waiter sleeps on
 * its own semaphore, posted by the store's applied callback once index is
 * applied (n->appliers is kept in index order). */
static int wait_applied(struct kv_node *n, uint64_t index,
			const struct timespec *deadline)
{
	if (n->applied >= index)
		return 0;
	if (n->fatal)
		return KV_EFAILED;
	if (n->stopping)
		return KV_ESHUTDOWN;
	struct node_waiter w = {.at = index};
	sem_init(&w.sem, 0, 0);
	applier_add(n, &w);
	int ret = waiter_sleep(n, &w, &n->appliers, NULL, deadline);
	if (ret == 0)
		ret = w.ret;
	sem_destroy(&w.sem);
	return ret;
}

/* ---- local proposals (this node leads) ---- */

static void unlink_prop(struct prop **head, struct prop **tail, struct prop *p)
{
	struct prop *prev = NULL;
	for (struct prop *q = *head; q; prev = q, q = q->next) {
		if (q != p)
			continue;
		if (prev)
			prev->next = p->next;
		else
			*head = p->next;
		if (*tail == p)
			*tail = prev;
		return;
	}
}

/* Wait until p is settled; n->mu held (released while asleep). 0 (p->res,
 * p->index set), NODE_RETRY (still queued at the deadline, or lost to
 * another leader), KV_ENOQUORUM (deadline: outcome unknown once the core
 * took it), KV_ESHUTDOWN, KV_EFAILED. Whoever settles p posts p->sem once,
 * after releasing n->mu; nothing else posts it. */
static int prop_wait(struct kv_node *n, struct prop *p,
		     const struct timespec *deadline)
{
	while (p->state != PROP_DONE) {
		bool late = n->stopping || node_past(deadline);
		if (late && p->state == PROP_QUEUED) {
			unlink_prop(&n->props, &n->props_tail, p);
			return n->stopping ? KV_ESHUTDOWN : NODE_RETRY;
		}
		if (late && p->state == PROP_WAITING) {
			unlink_prop(&n->waiting, &n->waiting_tail, p);
			return n->stopping ? KV_ESHUTDOWN : KV_ENOQUORUM;
		}
		if (late && p->state == PROP_FORWARDED) {
			unlink_prop(&n->forwarded, &n->forwarded_tail, p);
			return n->stopping ? KV_ESHUTDOWN : KV_ENOQUORUM;
		}
		pthread_mutex_unlock(&n->mu);
		if (late) {
			/* PROP_TAKEN: the node thread holds it for a moment */
			struct timespec ms = {0, 1000000};
			nanosleep(&ms, NULL);
			pthread_mutex_lock(&n->mu);
			continue;
		}
		int r = node_sem_wait(&p->sem, deadline);
		pthread_mutex_lock(&n->mu);
		if (r == 0)
			return p->ret; /* the one post: settled */
	}
	/* settled while we were not asleep: consume its post */
	pthread_mutex_unlock(&n->mu);
	node_sem_wait(&p->sem, NULL);
	pthread_mutex_lock(&n->mu);
	return p->ret;
}

/* Propose ps[0..count) through the local core with one hand-off to the
 * node thread (it proposes everything in its inbox in one turn) and wait
 * until each is applied here or the deadline; each ps[i].ret is then as
 * prop_wait says. ps stays the caller's. n->mu held. */
static void propose_props(struct kv_node *n, struct prop *ps, size_t count,
			  const struct timespec *deadline)
{
	if (count == 0)
		return;
	for (size_t i = 0; i < count; i++) {
		ps[i].state = PROP_QUEUED;
		ps[i].next = i + 1 < count ? &ps[i + 1] : NULL;
		sem_init(&ps[i].sem, 0, 0);
	}
	if (n->props_tail)
		n->props_tail->next = &ps[0];
	else
		n->props = &ps[0];
	n->props_tail = &ps[count - 1];
	pthread_cond_signal(&n->cond);
	for (size_t i = 0; i < count; i++) {
		ps[i].ret = prop_wait(n, &ps[i], deadline);
		sem_destroy(&ps[i].sem);
	}
}

/* Propose one command or change and wait until applied here: as
 * propose_props. n->mu held. */
static int propose_prop(struct kv_node *n, struct prop *pp,
			const struct timespec *deadline, struct kv_result *res,
			uint64_t *index)
{
	struct prop p = *pp;
	propose_props(n, &p, 1, deadline);
	if (p.ret == 0) {
		*res = p.res;
		*index = p.index;
	}
	return p.ret;
}

static int propose_local(struct kv_node *n, const char *json, size_t len,
			 const struct timespec *deadline, struct kv_result *res,
			 uint64_t *index)
{
	struct prop p = {.json = json, .len = len};
	return propose_prop(n, &p, deadline, res, index);
}

int node_change_member(struct kv_node *n, enum node_member_op op, uint64_t id,
		       const char *addr)
{
	if (id == 0 || id > PEER_INT_MAX)
		return -EINVAL;
	if (op == NODE_MEMBER_ADD &&
	    (!addr || !*addr || strlen(addr) >= RAFT_ADDR_MAX ||
	     !strchr(addr, ':') || strpbrk(addr, " \t\r\n")))
		return -EINVAL;
	struct prop p = {.conf_op = op == NODE_MEMBER_ADD
					? RAFT_CONF_ADD_LEARNER
					: RAFT_CONF_REMOVE,
			 .conf_id = id,
			 .conf_addr = op == NODE_MEMBER_ADD ? addr : ""};
	struct timespec deadline = node_deadline(n->write_timeout_ms);
	struct kv_result res;
	uint64_t index;
	pthread_mutex_lock(&n->mu);
	int ret = n->role == RAFT_LEADER
		      ? propose_prop(n, &p, &deadline, &res, &index)
		      : KV_ENOTLEADER;
	pthread_mutex_unlock(&n->mu);
	/* not taken: no longer the leader, or still queued at the deadline
	 * (then a 503 to retry, not a 421 that may name this very node) */
	if (ret == NODE_RETRY)
		ret = node_past(&deadline) ? KV_ENOQUORUM : KV_ENOTLEADER;
	if (ret == RAFT_EINVAL)
		ret = -EINVAL;
	return ret;
}

/* ---- the calls ---- */

static int check_cmd(struct kv_cmd *cmd)
{
	int ret;
	if (cmd->op != KV_OP_NOOP) {
		ret = kv_key_check(cmd->key, cmd->klen);
		if (ret != 0)
			return ret;
	}
	if (cmd->op == KV_OP_RENAME) {
		ret = kv_key_check(cmd->key2, cmd->k2len);
		if (ret != 0)
			return ret;
	}
	if (cmd->op == KV_OP_PUT && cmd->vlen > KV_MAX_VALUE)
		return -EFBIG;
	return 0;
}

/* Room for an entry of len bytes (with its line's framing) in the log. */
static bool room_for(struct kv_node *n, size_t len)
{
	return store_room(n->store) >= (uint64_t)len + 256;
}

/* Propose json here or at the leader until applied on this node, a
 * definite failure, or the deadline. */
static int propose_json(struct kv_node *n, const char *json, size_t len,
			const struct timespec *until, struct kv_result *res)
{
	struct timespec deadline = *until;
	if (!room_for(n, len))
		return -ENOSPC;
	pthread_mutex_lock(&n->mu);
	int ret;
	for (;;) {
		uint64_t index = 0;
		if (n->fatal) {
			ret = KV_EFAILED;
			break;
		}
		if (n->stopping) {
			ret = KV_ESHUTDOWN;
			break;
		}
		if (n->role == RAFT_LEADER || n->leader != RAFT_NONE) {
			/* the node thread forwards it if need be */
			ret =
			    propose_local(n, json, len, &deadline, res, &index);
		} else {
			ret = NODE_RETRY;
		}
		if (ret != NODE_RETRY)
			break;
		/* surely not applied: wait for a leader (or a moment), and
		 * try again within the deadline */
		struct timespec pause = node_deadline(20);
		if (node_past(&deadline)) {
			ret = KV_ENOQUORUM;
			break;
		}
		state_wait(n, ms_left(&deadline) < 20 ? &deadline : &pause);
	}
	pthread_mutex_unlock(&n->mu);
	return ret;
}

/* Check cmd, stamp its mtime and encode it (*json is the caller's). */
static int cmd_prepare(struct kv_cmd *cmd, char **json, size_t *len)
{
	int ret = check_cmd(cmd);
	if (ret != 0)
		return ret;
	if (cmd->mtime_ns == 0 &&
	    (cmd->op == KV_OP_PUT || cmd->op == KV_OP_MKDIR ||
	     cmd->op == KV_OP_RENAME || cmd->op == KV_OP_SETATTR)) {
		struct timespec now;
		clock_gettime(CLOCK_REALTIME, &now);
		cmd->mtime_ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
	}
	return kv_cmd_encode(cmd, json, len);
}

int node_propose(struct kv_node *n, struct kv_cmd *cmd, struct kv_result *res)
{
	char *json;
	size_t len;
	int ret = cmd_prepare(cmd, &json, &len);
	if (ret != 0)
		return ret;
	res->err = 0;
	res->rev = 0;
	struct timespec deadline = node_deadline(n->write_timeout_ms);
	ret = propose_json(n, json, len, &deadline, res);
	free(json);
	return ret;
}

/* ---- asynchronous calls ----
 *
 * The same paths as the blocking calls, for the HTTP listener's one
 * thread, with the waiting done by whoever settles: a write is a heap
 * prop that the node thread or the store owner settles (aop_prop); a read
 * waits on n->readers, then maybe
 * n->appliers (aop_waiter). Deadlines are the node thread's job
 * (expire_async in node_loop.c, every tick). A write that needs a retry
 * (no leader yet, or it lost to another leader's entry) is rare and takes
 * the blocking path on a thread of its own. */

/* Where an asynchronous call waits. */
enum aop_stage {
	AOP_PROPOSE, /* on n->props, n->forwarded or n->waiting (p) */
	AOP_READ,    /* on n->readers (w) */
	AOP_APPLY,   /* on n->appliers (w) */
};

struct aop {
	struct kv_node *n;
	node_done_fn done;
	void *ctx;
	struct timespec deadline;
	char *json; /* a write's command, owned */
	size_t len;
	enum aop_stage stage;
	struct prop p;
	struct node_waiter w;
	struct kv_result res;
};

static void aop_finish(struct aop *a, int ret)
{
	a->done(a->ctx, ret, ret == 0 ? &a->res : NULL);
	free(a->json);
	free(a);
}

static void *retry_main(void *arg)
{
	struct aop *a = arg;
	struct kv_node *n = a->n;
	pthread_setname_np(pthread_self(), "kvfs-retry");
	int ret = propose_json(n, a->json, a->len, &a->deadline, &a->res);
	aop_finish(a, ret);
	pthread_mutex_lock(&n->mu);
	if (--n->retrying == 0)
		pthread_cond_broadcast(&n->retry_cond);
	pthread_mutex_unlock(&n->mu);
	return NULL;
}

/* The write surely was not applied: try again, the blocking way, on a
 * thread of its own. n->mu not held. */
static void aop_retry(struct aop *a)
{
	struct kv_node *n = a->n;
	pthread_mutex_lock(&n->mu);
	int ret = n->stopping		    ? KV_ESHUTDOWN
		  : node_past(&a->deadline) ? KV_ENOQUORUM
					    : 0;
	if (ret == 0)
		n->retrying++;
	pthread_mutex_unlock(&n->mu);
	if (ret != 0) {
		aop_finish(a, ret);
		return;
	}
	pthread_t t;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	int err = pthread_create(&t, &attr, retry_main, a);
	pthread_attr_destroy(&attr);
	if (err == 0)
		return;
	pthread_mutex_lock(&n->mu);
	if (--n->retrying == 0)
		pthread_cond_broadcast(&n->retry_cond);
	pthread_mutex_unlock(&n->mu);
	aop_finish(a, -ENOMEM); /* surely not applied */
}

void node_retry_wait(struct kv_node *n)
{
	pthread_mutex_lock(&n->mu);
	while (n->retrying)
		pthread_cond_wait(&n->retry_cond, &n->mu);
	pthread_mutex_unlock(&n->mu);
}

static void aop_waiter(struct node_waiter *w);

/* Wait (without blocking) until this node applied index, then finish
 * with 0. n->mu not held. */
static void aop_wait_applied(struct aop *a, uint64_t index)
{
	struct kv_node *n = a->n;
	pthread_mutex_lock(&n->mu);
	int ret = n->applied >= index ? 0
		  : n->fatal	      ? KV_EFAILED
		  : n->stopping	      ? KV_ESHUTDOWN
				      : 1;
	if (ret == 1) {
		a->stage = AOP_APPLY;
		a->w = (struct node_waiter){.at = index,
					    .settle = aop_waiter,
					    .arg = a,
					    .until = &a->deadline};
		applier_add(n, &a->w);
	}
	pthread_mutex_unlock(&n->mu);
	if (ret != 1)
		aop_finish(a, ret);
}

static void aop_prop(struct prop *p)
{
	struct aop *a = p->arg;
	if (p->ret == 0) {
		a->res = p->res;
		aop_finish(a, 0);
	} else if (p->ret == NODE_RETRY) {
		aop_retry(a);
	} else {
		aop_finish(a, p->ret);
	}
}

static void aop_waiter(struct node_waiter *w)
{
	struct aop *a = w->arg;
	if (w->ret != 0)
		aop_finish(a, w->ret);
	else if (a->stage == AOP_READ)
		aop_wait_applied(a, w->index);
	else
		aop_finish(a, 0);
}

int node_propose_async(struct kv_node *n, struct kv_cmd *cmd, node_done_fn done,
		       void *ctx)
{
	struct aop *a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	int ret = cmd_prepare(cmd, &a->json, &a->len);
	if (ret == 0 && !room_for(n, a->len))
		ret = -ENOSPC;
	if (ret != 0) {
		free(a->json);
		free(a);
		return ret;
	}
	a->n = n;
	a->done = done;
	a->ctx = ctx;
	a->deadline = node_deadline(n->write_timeout_ms);
	pthread_mutex_lock(&n->mu);
	ret = n->fatal ? KV_EFAILED : n->stopping ? KV_ESHUTDOWN : 0;
	if (ret == 0 && (n->role == RAFT_LEADER || n->leader != RAFT_NONE)) {
		a->stage = AOP_PROPOSE;
		a->p = (struct prop){.json = a->json,
				     .len = a->len,
				     .state = PROP_QUEUED,
				     .settle = aop_prop,
				     .arg = a,
				     .until = &a->deadline};
		if (n->props_tail)
			n->props_tail->next = &a->p;
		else
			n->props = &a->p;
		n->props_tail = &a->p;
		pthread_cond_signal(&n->cond);
		pthread_mutex_unlock(&n->mu);
		return 0;
	}
	pthread_mutex_unlock(&n->mu);
	if (ret == 0) {
		aop_retry(a); /* no leader yet */
		return 0;
	}
	free(a->json);
	free(a);
	return ret;
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
	ret = check_cmd(&cmd);
	if (ret == 0)
		ret = kv_cmd_encode(&cmd, canon, clen);
	kv_cmd_clear(&cmd);
	return ret;
}

/* List w as a reader of the next ReadIndex round. n->mu held. */
static void reader_add(struct kv_node *n, struct node_waiter *w)
{
	uint64_t need = n->read_issued + 1;
	/* wake the node thread only for the first reader of a round, and
	 * only if it may issue one now: once a round in flight is answered,
	 * it looks at read_need again by itself */
	if (need > n->read_need) {
		n->read_need = need;
		if (n->read_inflight < NODE_READ_PIPELINE)
			pthread_cond_signal(&n->cond);
	}
	/* rounds only grow, so the list stays in round order */
	w->at = need;
	w->listed = true;
	if (n->readers_tail)
		n->readers_tail->next = w;
	else
		n->readers = w;
	n->readers_tail = w;
}

int node_read_barrier_async(struct kv_node *n, node_done_fn done, void *ctx)
{
	struct aop *a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->n = n;
	a->done = done;
	a->ctx = ctx;
	a->deadline = node_deadline(n->write_timeout_ms);
	a->stage = AOP_READ;
	a->w = (struct node_waiter){
	    .settle = aop_waiter, .arg = a, .until = &a->deadline};
	pthread_mutex_lock(&n->mu);
	bool stopping = n->stopping;
	if (!stopping)
		reader_add(n, &a->w);
	pthread_mutex_unlock(&n->mu);
	if (stopping) {
		free(a);
		return KV_ESHUTDOWN;
	}
	return 0;
}

int node_read_barrier(struct kv_node *n, bool linearizable)
{
	if (!linearizable)
		return 0;
	struct timespec deadline = node_deadline(n->write_timeout_ms);
	pthread_mutex_lock(&n->mu);
	if (n->stopping) {
		pthread_mutex_unlock(&n->mu);
		return KV_ESHUTDOWN;
	}
	struct node_waiter w = {0};
	sem_init(&w.sem, 0, 0);
	reader_add(n, &w);
	int ret = waiter_sleep(n, &w, &n->readers, &n->readers_tail, &deadline);
	if (ret == 0)
		ret = w.ret;
	sem_destroy(&w.sem);
	if (ret == 0) /* usually applied already: no wait */
		ret = wait_applied(n, w.index, &deadline);
	pthread_mutex_unlock(&n->mu);
	return ret;
}

uint64_t node_mono_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

/* Note that peer id was heard from now. n->mu held. */
static void node_heard(struct kv_node *n, uint64_t id)
{
	size_t free_slot = RAFT_MAX_SERVERS, oldest = 0;
	for (size_t i = 0; i < RAFT_MAX_SERVERS; i++) {
		if (n->heard[i].id == id) {
			n->heard[i].ms = node_mono_ms();
			return;
		}
		if (n->heard[i].id == 0 && free_slot == RAFT_MAX_SERVERS)
			free_slot = i;
		if (n->heard[i].ms < n->heard[oldest].ms)
			oldest = i;
	}
	/* a removed member's slot is the oldest once the table is full */
	size_t i = free_slot < RAFT_MAX_SERVERS ? free_slot : oldest;
	n->heard[i].id = id;
	n->heard[i].ms = node_mono_ms();
}

/* Check and re-encode the commands of a follower's PROPOSE, as the
 * single form does (the log keeps our own encoding, never a peer's
 * bytes). A message with one that is refused is marked reject with
 * hint_term EINVAL, one we ran out of memory for with hint_term 0 (the
 * follower may try again): the node thread answers it so, and appends
 * none of it. What the peer put in those two fields is not looked at. */
static void forwarded_check(struct raft_message *m)
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
			free(e->data);
			e->data = canon;
			e->len = clen;
			continue;
		}
		m->reject = true;
		if (ret == -ENOMEM) {
			fprintf(stderr,
				"kvfs: out of memory taking writes forwarded "
				"by node %llu; it will send them again\n",
				(unsigned long long)m->from);
			continue;
		}
		m->hint_term = EINVAL;
		fprintf(stderr,
			"kvfs: node %llu forwarded a write that is refused: "
			"%s\n",
			(unsigned long long)m->from, kv_strerror(ret));
	}
}

int node_deliver(struct kv_node *n, struct raft_message *msgs, size_t count)
{
	for (size_t i = 0; i < count; i++)
		if (msgs[i].type == RAFT_MSG_PROPOSE)
			forwarded_check(&msgs[i]);
	struct inmsg *m = malloc(sizeof(*m));
	if (!m) {
		peer_msgs_free(msgs, count);
		return -ENOMEM;
	}
	m->next = NULL;
	m->msgs = msgs;
	m->n = count;
	pthread_mutex_lock(&n->mu);
	if (n->stopping || n->inbox_msgs + count > NODE_MAX_INBOX_MSGS) {
		/* the node thread is behind: drop, as a network would */
		pthread_mutex_unlock(&n->mu);
		peer_msgs_free(msgs, count);
		free(m);
		return -EBUSY;
	}
	if (n->msgs_tail)
		n->msgs_tail->next = m;
	else
		n->msgs = m;
	n->msgs_tail = m;
	n->inbox_msgs += count;
	node_heard(n, msgs[0].from);
	pthread_cond_signal(&n->cond);
	pthread_mutex_unlock(&n->mu);
	return 0;
}
