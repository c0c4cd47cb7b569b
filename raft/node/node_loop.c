/* node_loop.c - the node thread: the one thread that drives the Raft core.
 *
 * Each turn it takes everything other threads left in the inbox (peer
 * messages, proposals, durability reports from the store, a finished db),
 * feeds it to the core, ticks the clock every NODE_TICK_MS, and carries
 * out each update in raft.h's caller's order: hard state synced, messages
 * to the peer senders, entries to the store (group commit; the leader
 * sends before its own sync), committed entries applied through the store
 * on this thread (store_apply needs no hand-off). The store reports back
 * through node_store_ops: persisted from its sync thread, applied from
 * this one; they complete proposals and wake readers. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node_int.h"

/* ---- the store's reports ---- */

static void on_persisted(void *ctx, uint64_t index, uint64_t term)
{
	struct kv_node *n = ctx;
	pthread_mutex_lock(&n->mu);
	n->persisted_index = index;
	n->persisted_term = term;
	n->persisted_new = true;
	pthread_cond_signal(&n->cond);
	pthread_mutex_unlock(&n->mu);
}

/* Settle p (n->mu held) and put it on *wake, to be posted once n->mu is
 * released (props_wake). */
static void prop_finish(struct prop *p, int ret, struct prop **wake)
{
	p->ret = ret;
	p->state = PROP_DONE;
	p->wake_next = *wake;
	*wake = p;
}

/* Post the settled props of a list (n->mu not held); each may be gone as
 * soon as it is posted. */
static void props_wake(struct prop *list)
{
	while (list) {
		struct prop *p = list;
		list = p->wake_next;
		if (p->settle)
			p->settle(p);
		else
			sem_post(&p->sem);
	}
}

static bool passed(const struct timespec *deadline, const struct timespec *now)
{
	return now->tv_sec > deadline->tv_sec ||
	       (now->tv_sec == deadline->tv_sec &&
		now->tv_nsec >= deadline->tv_nsec);
}

/* Settle, with ret, the asynchronous calls of a list of props whose
 * deadline passed by now. n->mu held. */
static void props_expire(struct prop **head, struct prop **tail,
			 const struct timespec *now, int ret,
			 struct prop **wake)
{
	struct prop *prev = NULL;
	for (struct prop *p = *head, *next; p; p = next) {
		next = p->next;
		if (!p->until || !passed(p->until, now)) {
			prev = p;
			continue;
		}
		if (prev)
			prev->next = next;
		else
			*head = next;
		if (*tail == p)
			*tail = prev;
		prop_finish(p, ret, wake);
	}
}

/* The same for a list of waiters. n->mu held. */
static void waiters_expire(struct node_waiter **head, struct node_waiter **tail,
			   const struct timespec *now, int ret,
			   struct node_waiter **wake)
{
	struct node_waiter *prev = NULL;
	for (struct node_waiter *w = *head, *next; w; w = next) {
		next = w->next;
		if (!w->until || !passed(w->until, now)) {
			prev = w;
			continue;
		}
		if (prev)
			prev->next = next;
		else
			*head = next;
		if (tail && *tail == w)
			*tail = prev;
		w->listed = false;
		w->ret = ret;
		w->wake_next = *wake;
		*wake = w;
	}
}

/* Asynchronous calls past their deadline fail as the blocking ones do:
 * KV_ENOQUORUM (a queued write surely was not applied, but that is what
 * a blocking write answers once its time is up too), KV_EFAILED once the
 * store failed. Blocking callers watch their own deadlines. n->mu held;
 * the settled go on *done and *woken. */
static void expire_async(struct kv_node *n, struct prop **done,
			 struct node_waiter **woken)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	int ret = n->fatal ? KV_EFAILED : KV_ENOQUORUM;
	props_expire(&n->props, &n->props_tail, &now, ret, done);
	props_expire(&n->waiting, &n->waiting_tail, &now, ret, done);
	props_expire(&n->forwarded, &n->forwarded_tail, &now, ret, done);
	waiters_expire(&n->readers, &n->readers_tail, &now, ret, woken);
	waiters_expire(&n->appliers, NULL, &now, ret, woken);
}

/* Take the waiters of *head with at <= upto (all if upto is UINT64_MAX)
 * off the list, settled with ret (and index), onto *wake. The list is
 * ordered by at. n->mu held. */
static void waiters_take(struct node_waiter **head, struct node_waiter **tail,
			 uint64_t upto, uint64_t index, int ret,
			 struct node_waiter **wake)
{
	while (*head && (*head)->at <= upto) {
		struct node_waiter *w = *head;
		*head = w->next;
		w->listed = false;
		w->index = index;
		w->ret = ret;
		w->wake_next = *wake;
		*wake = w;
	}
	if (tail && !*head)
		*tail = NULL;
}

static void on_applied(void *ctx, uint64_t index, uint64_t term,
		       const struct kv_result *res)
{
	struct kv_node *n = ctx;
	struct prop *done = NULL;
	struct node_waiter *woken = NULL;
	pthread_mutex_lock(&n->mu);
	n->applied = index;
	/* waiting is in index order: everything up to index is settled */
	while (n->waiting && n->waiting->index <= index) {
		struct prop *p = n->waiting;
		n->waiting = p->next;
		if (!n->waiting)
			n->waiting_tail = NULL;
		if (p->index == index && p->term == term) {
			if (res)
				p->res = *res;
			prop_finish(p, 0, &done);
		} else {
			/* lost to another leader */
			prop_finish(p, NODE_RETRY, &done);
		}
	}
	waiters_take(&n->appliers, NULL, index, 0, 0, &woken);
	pthread_mutex_unlock(&n->mu);
	props_wake(done);
	node_wake_all(woken);
}

static void on_snapshotted(void *ctx, uint64_t index)
{
	struct kv_node *n = ctx;
	pthread_mutex_lock(&n->mu);
	n->snapshotted = index;
	pthread_cond_signal(&n->cond);
	pthread_mutex_unlock(&n->mu);
}

const struct store_raft_ops node_store_ops = {
    .persisted = on_persisted,
    .applied = on_applied,
    .snapshotted = on_snapshotted,
};

/* ---- the node thread ---- */

static void to_store(const struct raft_entry *e, size_t n,
		     struct store_entry *out)
{
	for (size_t i = 0; i < n; i++)
		out[i] = (struct store_entry){.index = e[i].index,
					      .term = e[i].term,
					      .type = (int)e[i].type,
					      .data = e[i].data,
					      .len = e[i].len};
}

/* Hand entries to the store to append, or apply them, in chunks on the
 * stack. */
static int store_entries(struct kv_node *n, const struct raft_entry *e,
			 size_t count, bool apply)
{
	struct store_entry buf[64];
	for (size_t i = 0; i < count; i += 64) {
		size_t k = count - i < 64 ? count - i : 64;
		to_store(e + i, k, buf);
		int ret = apply ? store_apply(n->store, buf, k)
				: store_append(n->store, buf, k);
		if (ret != 0)
			return ret;
	}
	return 0;
}

/* Hand the turn's messages to the peers, in the order they were added,
 * and free them. Node thread. */
static void outbox_flush(struct kv_node *n)
{
	if (n->n_outbox == 0)
		return;
	peers_send(n->peers, n->outbox, n->n_outbox);
	for (size_t i = 0; i < n->n_outbox; i++)
		raft_message_clear(&n->outbox[i]);
	n->n_outbox = 0;
}

/* Move *m, and the entries it owns, into the outbox; *m is zeroed. Out
 * of memory, the outbox and m go at once instead. Node thread. */
static void outbox_add(struct kv_node *n, struct raft_message *m)
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

/* Keep the peer senders in step with the configuration. */
static void sync_peers(struct kv_node *n, const struct raft_config *c)
{
	for (unsigned i = 0; i < c->n; i++) {
		const struct raft_server *s = &c->servers[i];
		if (s->id == n->id)
			continue;
		struct peer_info info;
		if (peers_info(n->peers, s->id, &info) == 0) {
			if (strcmp(info.addr, s->addr) == 0)
				continue;
			peers_remove(n->peers, s->id);
		}
		int ret = peers_add(n->peers, s->id, s->addr);
		if (ret != 0)
			fprintf(stderr,
				"kvfs: cannot add peer %llu at %s: %s\n",
				(unsigned long long)s->id, s->addr,
				kv_strerror(ret));
	}
	/* Members that left: their senders stop. Not a leader that removed
	 * itself, though: it needs our answers to commit its removal (then
	 * it steps down); its sender stops once another node leads. */
	for (unsigned i = 0; i < n->n_members; i++) {
		uint64_t id = n->members[i].id;
		if (id == n->id || raft_config_get(c, id))
			continue;
		if (id == raft_leader(n->raft))
			n->linger = id;
		else
			peers_remove(n->peers, id);
	}
}

/* Publish the soft state for other threads; n->mu held. */
static void publish(struct kv_node *n)
{
	struct raft *r = n->raft;
	uint64_t leader = raft_leader(r);
	bool changed = leader != n->leader || raft_term(r) != n->term;
	n->role = raft_role(r);
	n->leader = leader;
	n->term = raft_term(r);
	n->commit = raft_commit_index(r);
	n->last_index = raft_last_index(r);
	const struct raft_config *c = raft_config(r);
	const struct raft_server *ls = raft_config_get(c, leader);
	snprintf(n->leader_addr, sizeof(n->leader_addr), "%s",
		 ls ? ls->addr : "");
	n->n_members = c->n;
	for (unsigned i = 0; i < c->n; i++) {
		struct node_member *m = &n->members[i];
		m->id = c->servers[i].id;
		m->role = c->servers[i].role;
		memcpy(m->addr, c->servers[i].addr, sizeof(m->addr));
		m->has_progress = n->role == RAFT_LEADER && m->id != n->id &&
				  raft_progress(r, m->id, &m->prog) == 0;
	}
	if (changed && n->state_waiters)
		pthread_cond_broadcast(&n->state_cond);
}

/* Step 1 of the caller's order: the leader sent the meta of a snapshot
 * at index X once its db file (at index Y >= X: the leader keeps a trail
 * of entries after its db) arrived whole and verified. The store installs
 * the file (its map, its log starting after Y) and skips entries up to Y
 * when the core hands them again. 0, or an error: the core dropped its
 * log for the snapshot, so the node cannot go on (restart recovers). */
static int install_snapshot(struct kv_node *n, const struct raft_update *u)
{
	char path[sizeof(n->ready.path)];
	uint64_t index = 0;
	pthread_mutex_lock(&n->mu);
	if (n->has_ready) {
		memcpy(path, n->ready.path, sizeof(path));
		index = n->ready.index;
	}
	pthread_mutex_unlock(&n->mu);
	if (index < u->snapshot.index) {
		fprintf(stderr,
			"kvfs: a snapshot at %llu was announced but the file "
			"received is at %llu\n",
			(unsigned long long)u->snapshot.index,
			(unsigned long long)index);
		return -ESTALE;
	}
	int ret = store_install(n->store, path);
	if (ret != 0) {
		fprintf(stderr, "kvfs: cannot install the snapshot %s: %s\n",
			path, kv_strerror(ret));
		return ret;
	}
	pthread_mutex_lock(&n->mu);
	n->has_ready = false;
	pthread_mutex_unlock(&n->mu);
	fprintf(stderr, "kvfs: node %llu installed a snapshot at index %llu\n",
		(unsigned long long)n->id, (unsigned long long)index);
	raft_persisted(n->raft, u->snapshot.index, u->snapshot.term);
	return 0;
}

/* ---- snapshot senders (leader) ---- */

static void *send_main(void *arg)
{
	pthread_setname_np(pthread_self(), "kvfs-snapsend");
	struct snap_send *ss = arg;
	struct kv_node *n = ss->n;
	char path[4096], why[200] = "";
	snprintf(path, sizeof(path), "%s/db.jsonl", n->data_dir);
	struct snapxfer_send_stats st;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int ret =
	    snapxfer_send(path, ss->index, ss->term, ss->addr, n->cluster_id,
			  n->token, NULL, &ss->cancel, &st, why, sizeof(why));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) +
		      (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	if (ret == 0)
		fprintf(stderr,
			"kvfs: snapshot at %llu sent to node %llu: %llu "
			"bytes in %.2f s (resumed at %llu)\n",
			(unsigned long long)ss->index,
			(unsigned long long)ss->id, (unsigned long long)st.size,
			secs, (unsigned long long)st.resumed_at);
	else if (ret != -ECANCELED)
		fprintf(stderr,
			"kvfs: snapshot at %llu to node %llu failed: %s%s%s\n",
			(unsigned long long)ss->index,
			(unsigned long long)ss->id, kv_strerror(ret),
			why[0] ? ": " : "", why);
	pthread_mutex_lock(&n->mu);
	ss->ret = ret;
	ss->finished = true;
	n->sends_finished = true;
	pthread_cond_signal(&n->cond);
	pthread_mutex_unlock(&n->mu);
	return NULL;
}

/* The core wants a snapshot sent to m->to: start a sender unless one is
 * running. The message itself (the meta) goes once the data is there. */
static void start_send(struct kv_node *n, struct raft_message *m)
{
	for (struct snap_send *ss = n->sends; ss; ss = ss->next)
		if (ss->id == m->to)
			return; /* one at a time; the core waits for it */
	const struct raft_server *srv =
	    raft_config_get(raft_config(n->raft), m->to);
	struct store_status st;
	struct snap_send *ss = calloc(1, sizeof(*ss));
	if (!srv || !ss || store_status(n->store, &st) != 0 ||
	    st.snapshot_index < m->snapshot.index) {
		free(ss);
		raft_snapshot_done(n->raft, m->to, false);
		return;
	}
	ss->n = n;
	ss->id = m->to;
	memcpy(ss->addr, srv->addr, sizeof(ss->addr));
	ss->index = st.snapshot_index;
	ss->term = st.snapshot_term;
	ss->msg = *m; /* a snapshot message owns no entries */
	atomic_init(&ss->cancel, false);
	if (pthread_create(&ss->thread, NULL, send_main, ss) != 0) {
		free(ss);
		raft_snapshot_done(n->raft, m->to, false);
		return;
	}
	ss->next = n->sends;
	n->sends = ss;
}

/* Reap finished senders: on success the meta goes out, then the core
 * learns the outcome. cancel_all stops and reaps every one (shutdown). */
static void reap_sends(struct kv_node *n, bool cancel_all)
{
	struct snap_send **pp = &n->sends;
	while (*pp) {
		struct snap_send *ss = *pp;
		if (cancel_all)
			atomic_store(&ss->cancel, true);
		pthread_mutex_lock(&n->mu);
		bool done = ss->finished;
		pthread_mutex_unlock(&n->mu);
		if (!done && !cancel_all) {
			pp = &ss->next;
			continue;
		}
		pthread_join(ss->thread, NULL);
		*pp = ss->next;
		if (!cancel_all) {
			if (ss->ret == 0)
				outbox_add(n, &ss->msg);
			raft_snapshot_done(n->raft, ss->id, ss->ret == 0);
		}
		free(ss);
	}
}

/* Promote learners that caught up (one change at a time; the core says
 * EBUSY while one is under way). Leader only, once a tick. */
static void promote_learners(struct kv_node *n)
{
	const struct raft_config *c = raft_config(n->raft);
	uint64_t commit = raft_commit_index(n->raft);
	for (unsigned i = 0; i < c->n; i++) {
		const struct raft_server *s = &c->servers[i];
		struct raft_progress_info pi;
		if (s->role != RAFT_LEARNER ||
		    raft_progress(n->raft, s->id, &pi) != 0 ||
		    !pi.recent_active || pi.match < commit)
			continue;
		uint64_t index;
		if (raft_change_membership(n->raft, RAFT_CONF_PROMOTE, s->id,
					   s->addr, &index) == 0)
			fprintf(stderr,
				"kvfs: node %llu caught up (index %llu): "
				"promoting it to voter\n",
				(unsigned long long)s->id,
				(unsigned long long)pi.match);
		return;
	}
}

/* Carry out one update (raft.h's order). Called without n->mu. */
static void process(struct kv_node *n, struct raft_update *u)
{
	if (u->has_snapshot && install_snapshot(n, u) != 0) {
		pthread_mutex_lock(&n->mu);
		n->fatal = KV_ECORRUPT;
		pthread_mutex_unlock(&n->mu);
		return;
	}
	if (u->hard_state_changed) {
		int ret = store_save_hardstate(n->store, u->term, u->vote);
		if (ret != 0) {
			/* a vote or term that is not durable must not be
			 * acted on: send nothing, and stop */
			fprintf(stderr,
				"kvfs: cannot save the raft hard state: %s; "
				"this node stops taking part\n",
				kv_strerror(ret));
			pthread_mutex_lock(&n->mu);
			n->fatal = ret;
			pthread_mutex_unlock(&n->mu);
			return;
		}
	}
	/* a snapshot's data goes first, on a thread of its own; the rest
	 * go now, with what the turn added before them, while the store
	 * takes the entries */
	for (size_t i = 0; i < u->n_msgs; i++) {
		if (u->msgs[i].type == RAFT_MSG_SNAPSHOT) {
			start_send(n, &u->msgs[i]);
			u->msgs[i].type = RAFT_MSG_NONE;
		} else {
			outbox_add(n, &u->msgs[i]);
		}
	}
	outbox_flush(n);
	int ret = store_entries(n, u->entries, u->n_entries, false);
	if (ret == 0)
		ret = store_entries(n, u->committed, u->n_committed, true);
	if (ret != 0 && ret != KV_ESHUTDOWN) {
		fprintf(stderr, "kvfs: cannot hand entries to the store: %s\n",
			kv_strerror(ret));
		pthread_mutex_lock(&n->mu);
		n->fatal = ret;
		pthread_mutex_unlock(&n->mu);
	}
	if (u->n_reads) {
		struct node_waiter *woken = NULL;
		pthread_mutex_lock(&n->mu);
		for (size_t i = 0; i < u->n_reads; i++) {
			const struct raft_read *rd = &u->reads[i];
			/* only rounds of this process not yet superseded:
			 * an answer to an older round, or to a round of an
			 * earlier process, must not count for readers who
			 * arrived after it was issued */
			if (rd->ctx <= n->read_answered ||
			    rd->ctx > n->read_issued)
				continue;
			if (rd->err != 0) {
				/* leadership lost: the rounds out there fail
				 * too; the next turn asks again */
				n->read_inflight = 0;
				continue;
			}
			n->read_answered = rd->ctx;
			n->read_index = rd->index;
			/* an answer settles every earlier round too */
			n->read_inflight =
			    (unsigned)(n->read_issued - n->read_answered);
		}
		waiters_take(&n->readers, &n->readers_tail, n->read_answered,
			     n->read_index, 0, &woken);
		pthread_mutex_unlock(&n->mu);
		node_wake_all(woken);
	}
}

/* A membership change through the core: 0 with p->index/term, or the
 * error node_change_member documents. */
static int conf_change(struct kv_node *n, struct prop *p)
{
	const struct raft_config *c = raft_config(n->raft);
	const struct raft_server *s = raft_config_get(c, p->conf_id);
	if (p->conf_op == RAFT_CONF_ADD_LEARNER && s)
		return -EEXIST;
	if (p->conf_op == RAFT_CONF_REMOVE && !s)
		return -ENOENT;
	int ret = raft_change_membership(n->raft, p->conf_op, p->conf_id,
					 p->conf_addr, &p->index);
	if (ret == 0)
		p->term = raft_term(n->raft);
	else if (ret == RAFT_ENOTLEADER)
		ret = NODE_RETRY;
	return ret;
}

/* ---- writes forwarded from followers to the leader ----
 *
 * A follower's node thread sends the writes in its inbox to the leader as
 * PROPOSE messages on the peer stream (raft.h), each a batch numbered by
 * ctx, and keeps them on n->forwarded. The leader's node thread appends
 * them and answers at once with where they went (PROPOSE_RESP); the
 * follower then waits, like the leader's own writes, for the entry at
 * that index and term to be applied here, and takes the outcome from its
 * own apply. A batch whose answer never comes fails at its deadline with
 * the outcome unknown (it may have been appended): it is never sent
 * again, since a second copy could be applied twice. */

/* Entries of one PROPOSE message, at most (so its answer comes soon). */
#define FWD_MSG_ENTRIES 512
#define FWD_MSG_BYTES	(1u << 20)

/* p->ret of a prop the node thread forwards (not a result). */
#define PROP_FORWARD 2

/* List p as waiting for its entry, in index order. n->mu held. */
static void waiting_add(struct kv_node *n, struct prop *p)
{
	p->state = PROP_WAITING;
	if (!n->waiting_tail || n->waiting_tail->index <= p->index) {
		p->next = NULL;
		if (n->waiting_tail)
			n->waiting_tail->next = p;
		else
			n->waiting = p;
		n->waiting_tail = p;
		return;
	}
	struct prop **pp = &n->waiting;
	while ((*pp)->index <= p->index)
		pp = &(*pp)->next;
	p->next = *pp;
	*pp = p;
}

/* A copy of e[0..n) that a message can own (raft_message_clear), or
 * NULL. */
static struct raft_entry *entries_dup(const struct raft_entry *e, size_t n)
{
	struct raft_entry *c = calloc(n, sizeof(*c));
	for (size_t i = 0; c && i < n; i++) {
		c[i] = e[i];
		c[i].data = malloc(e[i].len ? e[i].len : 1);
		if (c[i].data == NULL) {
			while (i-- > 0)
				free(c[i].data);
			free(c);
			return NULL;
		}
		memcpy(c[i].data, e[i].data, e[i].len);
	}
	return c;
}

/* Put the props of list marked PROP_FORWARD in the outbox for leader, in
 * PROPOSE messages, each numbered (p->ctx). Copied: once listed as
 * forwarded and n->mu released, a prop may be settled (its deadline) and
 * gone before the turn's messages go. Node thread, n->mu held. */
static void forward_props(struct kv_node *n, struct prop *list, size_t count,
			  uint64_t leader)
{
	struct raft_entry *e = calloc(count, sizeof(*e));
	struct raft_message *msgs = calloc(count, sizeof(*msgs));
	size_t k = 0, m = 0, bytes = 0;
	for (struct prop *p = list; e && msgs && p; p = p->next) {
		if (p->ret != PROP_FORWARD)
			continue;
		struct raft_message *msg = m ? &msgs[m - 1] : NULL;
		if (!msg || msg->n_entries == FWD_MSG_ENTRIES ||
		    bytes + p->len > FWD_MSG_BYTES) {
			msg = &msgs[m++];
			*msg = (struct raft_message){.type = RAFT_MSG_PROPOSE,
						     .from = n->id,
						     .to = leader,
						     .ctx = ++n->fwd_seq,
						     .entries = &e[k]};
			bytes = 0;
		}
		e[k++] = (struct raft_entry){.type = RAFT_ENTRY_NORMAL,
					     .data = (void *)p->json,
					     .len = p->len};
		msg->n_entries++;
		bytes += p->len;
		p->ctx = msg->ctx;
	}
	size_t owned = 0;
	for (; owned < m; owned++) {
		struct raft_entry *c =
		    entries_dup(msgs[owned].entries, msgs[owned].n_entries);
		if (c == NULL)
			break;
		msgs[owned].entries = c;
	}
	if (e == NULL || msgs == NULL || owned < m) {
		for (size_t i = 0; i < owned; i++)
			raft_message_clear(&msgs[i]);
		for (struct prop *p = list; p; p = p->next)
			if (p->ret == PROP_FORWARD)
				p->ret = -ENOMEM; /* surely not applied */
	} else {
		for (size_t i = 0; i < m; i++)
			outbox_add(n, &msgs[i]);
	}
	free(e);
	free(msgs);
}

void node_unsent(void *arg, uint64_t to, uint64_t ctx)
{
	struct kv_node *n = arg;
	(void)to;
	pthread_mutex_lock(&n->unsent_mu);
	/* more at once: those wait for their deadline */
	if (n->n_unsent < sizeof(n->unsent) / sizeof(n->unsent[0]))
		n->unsent[n->n_unsent++] = ctx;
	pthread_mutex_unlock(&n->unsent_mu);
	/* without n->mu: at worst the node thread sees it a tick later */
	pthread_cond_signal(&n->cond);
}

/* Writes of batches that never reached the leader: surely not applied,
 * so they are proposed again. n->mu held; the settled go on *done. */
static void retry_unsent(struct kv_node *n, struct prop **done)
{
	uint64_t ctx[sizeof(n->unsent) / sizeof(n->unsent[0])];
	pthread_mutex_lock(&n->unsent_mu);
	size_t count = n->n_unsent;
	memcpy(ctx, n->unsent, count * sizeof(ctx[0]));
	n->n_unsent = 0;
	pthread_mutex_unlock(&n->unsent_mu);
	for (size_t i = 0; i < count; i++) {
		struct prop **pp = &n->forwarded, *prev = NULL;
		while (*pp) {
			struct prop *p = *pp;
			if (p->ctx != ctx[i]) {
				prev = p;
				pp = &p->next;
				continue;
			}
			*pp = p->next;
			if (n->forwarded_tail == p)
				n->forwarded_tail = prev;
			prop_finish(p, NODE_RETRY, done);
		}
	}
}

/* A follower's PROPOSE (node thread, the leader): append its entries
 * and say where, in *resp. node_deliver checked each command and marked
 * a message it did not take with reject, and why in hint_term (EINVAL:
 * refused; 0: out of memory, to be sent again). */
static void take_forwarded(struct kv_node *n, const struct raft_message *m,
			   struct raft_message *resp)
{
	*resp = (struct raft_message){.type = RAFT_MSG_PROPOSE_RESP,
				      .from = n->id,
				      .to = m->from,
				      .ctx = m->ctx,
				      .reject = true};
	uint64_t need = 0;
	for (size_t i = 0; i < m->n_entries; i++)
		need += (uint64_t)m->entries[i].len + 256; /* as room_for */
	if (m->reject) {
		resp->hint_term = m->hint_term;
		return;
	}
	if (raft_role(n->raft) != RAFT_LEADER)
		return;
	if (store_room(n->store) < need) {
		resp->hint_term = ENOSPC;
		return;
	}
	size_t count = 0;
	for (; count < m->n_entries; count++) {
		const struct raft_entry *e = &m->entries[count];
		uint64_t index, term;
		if (raft_propose(n->raft, RAFT_ENTRY_NORMAL, e->data, e->len,
				 &index, &term) != 0)
			break; /* busy (transfer) or out of memory */
		if (count == 0) {
			resp->index = index;
			resp->log_term = term;
		}
	}
	resp->hint_index = count;
	resp->reject = count == 0;
}

/* The leader's answer to a PROPOSE of ours (node thread): its props wait
 * for their entries, or fail. n->mu held; the settled go on *done. */
static void forwarded_answer(struct kv_node *n, const struct raft_message *m,
			     struct prop **done)
{
	struct prop **pp = &n->forwarded, *prev = NULL;
	while (*pp && (*pp)->ctx != m->ctx) {
		prev = *pp;
		pp = &(*pp)->next;
	}
	int fail = !m->reject		    ? 0
		   : m->hint_term == ENOSPC ? -ENOSPC
		   : m->hint_term == EINVAL ? -EINVAL
					    : NODE_RETRY;
	for (uint64_t i = 0; *pp && (*pp)->ctx == m->ctx; i++) {
		struct prop *p = *pp;
		*pp = p->next;
		if (n->forwarded_tail == p)
			n->forwarded_tail = prev;
		if (fail || i >= m->hint_index) {
			/* not appended: safe to try again */
			prop_finish(p, fail ? fail : NODE_RETRY, done);
		} else if (m->index + i <= n->applied) {
			/* the answer came after the entry was applied here
			 * (messages reordered): its result is gone */
			prop_finish(p, KV_ENOQUORUM, done);
		} else {
			p->index = m->index + i;
			p->term = m->log_term;
			waiting_add(n, p);
		}
	}
}

/* Propose what the inbox holds; called without n->mu, props TAKEN. A
 * follower that knows the leader forwards the writes to it. */
static void propose_all(struct kv_node *n, struct prop *list)
{
	struct prop *done = NULL;
	uint64_t leader = raft_leader(n->raft);
	bool forward = raft_role(n->raft) != RAFT_LEADER && leader != RAFT_NONE;
	size_t nfwd = 0;
	for (struct prop *p = list; p; p = p->next) {
		if (p->conf_op) {
			p->ret = conf_change(n, p);
		} else if (forward) {
			p->ret = PROP_FORWARD;
			nfwd++;
		} else {
			p->ret =
			    raft_propose(n->raft, RAFT_ENTRY_NORMAL, p->json,
					 p->len, &p->index, &p->term);
		}
	}
	pthread_mutex_lock(&n->mu);
	if (nfwd)
		forward_props(n, list, nfwd, leader);
	while (list) {
		struct prop *p = list;
		list = p->next;
		p->next = NULL;
		if (p->ret == 0) {
			waiting_add(n, p);
		} else if (p->ret == PROP_FORWARD) {
			p->state = PROP_FORWARDED;
			if (n->forwarded_tail)
				n->forwarded_tail->next = p;
			else
				n->forwarded = p;
			n->forwarded_tail = p;
		} else {
			bool retry = p->ret == RAFT_ENOTLEADER ||
				     (p->ret == RAFT_EBUSY && !p->conf_op);
			prop_finish(p, retry ? NODE_RETRY : p->ret, &done);
		}
	}
	pthread_mutex_unlock(&n->mu);
	props_wake(done);
}

/* A peer's message: forwarded writes are the node layer's, the rest the
 * core's. Node thread, n->mu not held. */
static void step(struct kv_node *n, const struct raft_message *m)
{
	if (m->type == RAFT_MSG_PROPOSE) {
		struct raft_message resp;
		take_forwarded(n, m, &resp);
		outbox_add(n, &resp);
	} else if (m->type == RAFT_MSG_PROPOSE_RESP) {
		struct prop *done = NULL;
		pthread_mutex_lock(&n->mu);
		forwarded_answer(n, m, &done);
		pthread_mutex_unlock(&n->mu);
		props_wake(done);
	} else {
		raft_step(n->raft, m);
	}
}

static long ms_between(const struct timespec *a, const struct timespec *b)
{
	return (b->tv_sec - a->tv_sec) * 1000 +
	       (b->tv_nsec - a->tv_nsec) / 1000000;
}

static void *loop_main(void *arg)
{
	pthread_setname_np(pthread_self(), "kvfs-node");
	struct kv_node *n = arg;
	struct timespec next_tick = node_deadline(NODE_TICK_MS);
	struct timespec next_expiry = next_tick;
	uint64_t compacted = 0;
	pthread_mutex_lock(&n->mu);
	while (!n->stopping) {
		if (node_past(&next_expiry)) {
			struct prop *done = NULL;
			struct node_waiter *woken = NULL;
			expire_async(n, &done, &woken);
			next_expiry = node_deadline(NODE_TICK_MS);
			pthread_mutex_unlock(&n->mu);
			props_wake(done);
			node_wake_all(woken);
			pthread_mutex_lock(&n->mu);
			continue;
		}
		pthread_mutex_lock(&n->unsent_mu);
		bool unsent = n->n_unsent > 0;
		pthread_mutex_unlock(&n->unsent_mu);
		if (unsent) {
			struct prop *done = NULL;
			retry_unsent(n, &done);
			pthread_mutex_unlock(&n->mu);
			props_wake(done);
			pthread_mutex_lock(&n->mu);
			continue;
		}
		bool work = n->props || n->msgs || n->persisted_new ||
			    n->sends_finished || n->snapshotted > compacted ||
			    (n->read_need > n->read_issued &&
			     n->read_inflight < NODE_READ_PIPELINE &&
			     node_past(&n->read_retry_at));
		if (!work && !node_past(&next_tick)) {
			pthread_cond_timedwait(&n->cond, &n->mu, &next_tick);
			continue;
		}
		/* take the inbox */
		struct prop *props = n->props;
		for (struct prop *p = props; p; p = p->next)
			p->state = PROP_TAKEN;
		n->props = n->props_tail = NULL;
		struct inmsg *msgs = n->msgs;
		n->msgs = n->msgs_tail = NULL;
		n->inbox_msgs = 0;
		bool persisted = n->persisted_new;
		uint64_t p_index = n->persisted_index;
		uint64_t p_term = n->persisted_term;
		n->persisted_new = false;
		uint64_t snap = n->snapshotted;
		bool fatal = n->fatal != 0;
		bool sends = n->sends_finished;
		n->sends_finished = false;
		/* a ReadIndex round for readers that arrived since the last
		 * one was issued, or again if it went unanswered */
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		uint64_t round = 0;
		bool lost =
		    n->read_need > n->read_answered &&
		    ms_between(&n->read_issued_at, &now) >= NODE_READ_RETRY_MS;
		if (node_past(&n->read_retry_at) &&
		    ((n->read_need > n->read_issued &&
		      n->read_inflight < NODE_READ_PIPELINE) ||
		     lost)) {
			/* numbered before it is asked, so that a reader who
			 * arrives after this point waits for a later round;
			 * numbers are never reused. Up to NODE_READ_PIPELINE
			 * rounds fly at once: a reader who arrives during a
			 * round waits for one round, not the rest of that one
			 * and another. */
			round = ++n->read_issued;
			n->read_issued_at = now;
			n->read_inflight++;
		}
		pthread_mutex_unlock(&n->mu);

		if (fatal) {
			/* a failed store: the node stops taking part, and
			 * every proposal fails at once */
			for (struct inmsg *m = msgs, *next; m; m = next) {
				next = m->next;
				peer_msgs_free(m->msgs, m->n);
				free(m);
			}
			struct prop *done = NULL;
			pthread_mutex_lock(&n->mu);
			for (struct prop *p = props, *next; p; p = next) {
				next = p->next;
				prop_finish(p, KV_EFAILED, &done);
			}
			pthread_mutex_unlock(&n->mu);
			props_wake(done);
			pthread_mutex_lock(&n->mu);
			next_tick = node_deadline(NODE_TICK_MS);
			continue;
		}
		for (struct inmsg *m = msgs, *next; m; m = next) {
			next = m->next;
			for (size_t i = 0; i < m->n; i++)
				step(n, &m->msgs[i]);
			peer_msgs_free(m->msgs, m->n);
			free(m);
		}
		if (persisted)
			raft_persisted(n->raft, p_index, p_term);
		if (snap > compacted) {
			/* keep a trail in memory so that a follower a little
			 * behind still gets entries, not a snapshot */
			if (snap > NODE_COMPACT_TRAIL &&
			    raft_compact(n->raft, snap - NODE_COMPACT_TRAIL) !=
				0)
				fprintf(
				    stderr,
				    "kvfs: raft compaction at %llu "
				    "refused\n",
				    (unsigned long long)(snap -
							 NODE_COMPACT_TRAIL));
			compacted = snap;
		}
		if (sends)
			reap_sends(n, false);
		if (props)
			propose_all(n, props);
		if (node_past(&next_tick)) {
			raft_tick(n->raft);
			if (raft_role(n->raft) == RAFT_LEADER)
				promote_learners(n);
			next_tick = node_deadline(NODE_TICK_MS);
		}
		bool round_failed =
		    round && raft_read_index(n->raft, round) != 0;
		while (raft_has_update(n->raft)) {
			struct raft_update u;
			if (raft_update_get(n->raft, &u) != 0)
				break; /* out of memory: next turn */
			process(n, &u);
			raft_update_free(&u);
		}
		outbox_flush(n); /* a turn without an update */
		pthread_mutex_lock(&n->mu);
		if (round_failed && n->read_issued == round) {
			/* no leader known: ask again a tick later */
			if (n->read_inflight)
				n->read_inflight--;
			n->read_retry_at = node_deadline(NODE_TICK_MS);
		}
		const struct raft_config *c = raft_config(n->raft);
		bool conf_changed = c->n != n->n_members;
		for (unsigned i = 0; !conf_changed && i < c->n; i++)
			conf_changed =
			    c->servers[i].id != n->members[i].id ||
			    strcmp(c->servers[i].addr, n->members[i].addr) != 0;
		if (conf_changed)
			sync_peers(n, c);
		if (n->linger && n->linger != raft_leader(n->raft) &&
		    !raft_config_get(c, n->linger)) {
			peers_remove(n->peers, n->linger);
			n->linger = 0;
		}
		publish(n);
	}
	pthread_mutex_unlock(&n->mu);
	free(n->outbox);
	n->outbox = NULL;
	n->cap_outbox = 0;
	return NULL;
}

int node_loop_start(struct kv_node *n)
{
	pthread_mutex_lock(&n->mu);
	sync_peers(n, raft_config(n->raft));
	publish(n);
	pthread_mutex_unlock(&n->mu);
	int ret = -pthread_create(&n->thread, NULL, loop_main, n);
	if (ret == 0)
		n->thread_started = true;
	return ret;
}

void node_loop_stop(struct kv_node *n)
{
	if (!n->thread_started)
		return;
	pthread_mutex_lock(&n->mu);
	n->stopping = true;
	pthread_cond_broadcast(&n->cond);
	pthread_cond_broadcast(&n->state_cond);
	pthread_mutex_unlock(&n->mu);
	pthread_join(n->thread, NULL);
	n->thread_started = false;
	reap_sends(n, true);
	/* proposals still queued or in the log will not be answered by the
	 * core any more */
	struct prop *done = NULL;
	struct node_waiter *woken = NULL;
	pthread_mutex_lock(&n->mu);
	for (struct prop *p = n->props, *next; p; p = next) {
		next = p->next;
		prop_finish(p, KV_ESHUTDOWN, &done);
	}
	n->props = n->props_tail = NULL;
	for (struct prop *p = n->waiting, *next; p; p = next) {
		next = p->next;
		prop_finish(p, KV_ESHUTDOWN, &done);
	}
	n->waiting = n->waiting_tail = NULL;
	for (struct prop *p = n->forwarded, *next; p; p = next) {
		next = p->next;
		prop_finish(p, KV_ESHUTDOWN, &done);
	}
	n->forwarded = n->forwarded_tail = NULL;
	waiters_take(&n->readers, &n->readers_tail, UINT64_MAX, 0, KV_ESHUTDOWN,
		     &woken);
	waiters_take(&n->appliers, NULL, UINT64_MAX, 0, KV_ESHUTDOWN, &woken);
	for (struct inmsg *m = n->msgs, *next; m; m = next) {
		next = m->next;
		peer_msgs_free(m->msgs, m->n);
		free(m);
	}
	n->msgs = n->msgs_tail = NULL;
	pthread_mutex_unlock(&n->mu);
	props_wake(done);
	node_wake_all(woken);
}
