/* peer_queue.c - a peer's bounded queue, and how messages are cut into
 * batches.
 *
 * The queue holds its own copies (references to shared entry data), so
 * the caller of peers_send keeps its messages. It is bounded by count and by
 * entry bytes; Raft tolerates loss, so a full queue drops old messages (appends
 * and heartbeats first, which the core supersedes or resends) rather than
 * refuse a new one. A batch is what goes in one frame: about batch_bytes when
 * encoded, at most PEER_BATCH_MSGS messages; small messages queued behind a big
 * one go first (queue_small_first). The sender sleeps on an eventfd the queue's
 * writers poke (peer_wake) and it drains (peer_drain_wake). The shared
 * state is described in peer_int.h. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "peer_int.h"

void peer_wake(struct peer *p)
{
	uint64_t one = 1;
	ssize_t r = write(p->wake_fd, &one, sizeof(one));
	(void)r; /* a full counter wakes the sender as well */
}

void peer_drain_wake(struct peer *p)
{
	uint64_t v;
	ssize_t r = read(p->wake_fd, &v, sizeof(v));
	(void)r; /* nothing to take is fine */
}

void peer_qmsg_free(struct qmsg *q)
{
	for (size_t i = 0; i < q->m.n_entries; i++)
		raft_entry_release(&q->m.entries[i]);
	free(q->m.entries);
	free(q);
}

struct qmsg *peer_qmsg_copy(const struct raft_message *m)
{
	struct qmsg *q = calloc(1, sizeof(*q));

	if (q == NULL)
		return NULL;
	q->m = *m;
	q->m.entries = NULL;
	q->m.n_entries = 0;
	if (m->n_entries == 0)
		return q;
	q->m.entries = calloc(m->n_entries, sizeof(*m->entries));
	if (q->m.entries == NULL)
		goto err_free;
	for (size_t i = 0; i < m->n_entries; i++) {
		const struct raft_entry *e = &m->entries[i];
		struct raft_entry *c = &q->m.entries[i];

		/* shared data (the core's appends): a reference */
		if (raft_entry_dup(c, e) != 0)
			goto err_free;
		q->m.n_entries = i + 1;
		q->bytes += e->len;
	}
	return q;

err_free:
	peer_qmsg_free(q);
	return NULL;
}

/* Appends and heartbeats (and their answers) are superseded by the next
 * ones or resent by the core; votes, reads, snapshots and TimeoutNow are
 * rarer and worth keeping longer. */
static bool droppable(enum raft_msg_type t)
{
	return t == RAFT_MSG_APPEND || t == RAFT_MSG_HEARTBEAT ||
	       t == RAFT_MSG_APPEND_RESP || t == RAFT_MSG_HEARTBEAT_RESP;
}

/* Drop the oldest droppable message, else the oldest. */
static void queue_drop_one(struct peer *p)
{
	struct qmsg *prev = NULL, *q = p->head;

	while (q != NULL && !droppable(q->m.type)) {
		prev = q;
		q = q->next;
	}
	if (q == NULL) {
		prev = NULL;
		q = p->head;
	}
	if (prev == NULL)
		p->head = q->next;
	else
		prev->next = q->next;
	if (p->tail == q)
		p->tail = prev;
	p->queued--;
	p->qbytes -= q->bytes;
	p->info.dropped++;
	peer_qmsg_free(q);
}

void peer_queue_push(struct peer *p, struct qmsg *q)
{
	const struct peer_options *o = &p->set->opt;

	while (p->queued > 0 && (p->queued >= o->max_queue ||
				 p->qbytes + q->bytes > o->max_queue_bytes))
		queue_drop_one(p);
	if (p->tail != NULL)
		p->tail->next = q;
	else
		p->head = q;
	p->tail = q;
	p->queued++;
	p->qbytes += q->bytes;
}

void peer_queue_clear(struct peer *p)
{
	while (p->head != NULL) {
		struct qmsg *q = p->head;
		p->head = q->next;
		peer_qmsg_free(q);
	}
	p->tail = NULL;
	p->queued = 0;
	p->qbytes = 0;
}

/* A rough upper bound of m's encoded size. */
static size_t wire_size(const struct raft_message *m)
{
	size_t bytes = 0;

	for (size_t i = 0; i < m->n_entries; i++)
		bytes += m->entries[i].len;
	return 256 + m->n_entries * 96 + bytes / 3 * 4 + 4;
}

/* Does a message of encoded size w still fit a batch of n messages and
 * size bytes? The first always does. */
static bool batch_fits(const struct peer_options *opt, size_t n, size_t size,
		       size_t w)
{
	return n == 0 || (size + w <= opt->batch_bytes && n < PEER_BATCH_MSGS);
}

/* Behind a big message at the front (entries of more than
 * PEER_DIRECT_BYTES: its encoding and its transfer take a while), the
 * messages without entries (heartbeats, answers, votes) move ahead of
 * it, in their order: a follower hears its leader, and a leader its
 * follower, without waiting for 16 MiB to go first. Raft allows any
 * order (a heartbeat's commit index never passes what the follower
 * acknowledged); messages with entries keep theirs. */
static void queue_small_first(struct peer *p)
{
	if (p->head == NULL || p->head->bytes <= PEER_DIRECT_BYTES)
		return;
	struct qmsg *small = NULL, *small_tail = NULL;
	struct qmsg *rest = NULL, *rest_tail = NULL;
	for (struct qmsg *q = p->head, *next; q != NULL; q = next) {
		next = q->next;
		q->next = NULL;
		struct qmsg **head = q->m.n_entries ? &rest : &small;
		struct qmsg **tail = q->m.n_entries ? &rest_tail : &small_tail;
		if (*tail)
			(*tail)->next = q;
		else
			*head = q;
		*tail = q;
	}
	if (small == NULL) {
		p->head = rest;
		p->tail = rest_tail;
		return;
	}
	small_tail->next = rest;
	p->head = small;
	p->tail = rest ? rest_tail : small_tail;
}

struct qmsg *peer_queue_take(struct peer *p, size_t *count)
{
	queue_small_first(p);
	struct qmsg *first = p->head, *last = NULL, *q;
	size_t size = 0, n = 0;

	for (q = p->head; q != NULL; q = q->next) {
		size_t w = wire_size(&q->m);
		if (!batch_fits(&p->set->opt, n, size, w))
			break;
		size += w;
		n++;
		last = q;
		p->queued--;
		p->qbytes -= q->bytes;
	}
	p->head = q;
	if (q == NULL)
		p->tail = NULL;
	if (last != NULL)
		last->next = NULL;
	*count = n;
	return first;
}

size_t peer_frame_span(const struct peer_options *opt,
		       const struct raft_message *msgs, size_t n)
{
	size_t size = 0, k = 0;

	for (; k < n; k++) {
		size_t w = wire_size(&msgs[k]);
		if (!batch_fits(opt, k, size, w))
			break;
		size += w;
	}
	return k;
}
