/* peer_set.c - the set of peer senders, and sending on the caller's
 * thread.
 *
 * Each peer gets one long POST to its PEER_STREAM_PATH (a stream), one
 * thread and one bounded queue. peers_send, on the caller's thread (the
 * node thread), encodes a peer's messages and writes the frame straight
 * into the socket when the stream is open and nothing waits before it: no
 * copy, no queue, no other thread to wake, on the common path. Otherwise
 * it copies them into the peer's queue (peer_queue.c) and the peer's
 * thread (peer_stream.c) sends them. Raft tolerates loss, so a full queue
 * drops old messages and a frame lost with a failed stream is not retried
 * (the core resends appends). peers_send_take, the node's, moves
 * entries instead of copying them, leaves a frame of big entries to the
 * sender thread to encode, and sends the messages without entries
 * (heartbeats, answers, votes) on a second stream of their own, as
 * etcd's "message" stream beside its "msgapp" one: a 16 MiB append being
 * encoded or written holds up no heartbeat. Receiving is peer_recv.c's and the
 * HTTP module's; the shared state and its locks are in peer_int.h; the protocol
 * is in docs/peer-protocol.md. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "join.h"
#include "peer_int.h"

#define DEF_MAX_QUEUE	    1024
#define DEF_MAX_QUEUE_BYTES (64u * 1024u * 1024u)
#define DEF_BATCH_BYTES	    (4u * 1024u * 1024u)
#define DEF_CONNECT_MS	    1000
#define DEF_TIMEOUT_MS	    10000
#define DEF_BACKOFF_MIN_MS  10
#define DEF_BACKOFF_MAX_MS  1000
/* An idle stream is ended after this long (and opened again by the next
 * message), so no connection waits for nothing. */
#define DEF_IDLE_MS 5000

/* ---- Sending ---- */

/* May peers_send write to p's stream itself? Only when the stream is
 * open and nothing is waiting to go before it. mu held. */
static bool can_write(const struct peer *p)
{
	return p->state == STREAM_OPEN && !p->out.active && !p->busy &&
	       p->head == NULL && p->sock_err == 0;
}

/* The peer sends nothing on a stream before its end: is its socket still
 * quiet? A frame holding a propose goes only then, since one written
 * after the peer closed (a process killed, a node restarted) would be on
 * its way to nobody, its writes of unknown fate; queued instead, it is
 * reported unsent when the sender finds the stream ended. (A frame handed
 * over whole before a reset is not: the peer may have read all of it and
 * left only the bytes of the chunked encoding after it unread.) */
static bool sock_quiet(int fd)
{
	char c;
	ssize_t r = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	return r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

/* Entry bytes of msgs[0..n). */
static size_t entry_bytes(const struct raft_message *msgs, size_t n)
{
	size_t bytes = 0;
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < msgs[i].n_entries; k++)
			bytes += msgs[i].entries[k].len;
	return bytes;
}

/* A queued message made of *m: its entries taken (orig, the caller's
 * message, loses them) or copied. NULL without memory. */
static struct qmsg *qmsg_of(struct raft_message *m, struct raft_message *orig)
{
	if (orig == NULL)
		return peer_qmsg_copy(m);
	struct qmsg *q = calloc(1, sizeof(*q));
	if (q == NULL)
		return NULL;
	q->m = *m;
	q->bytes = entry_bytes(m, 1);
	orig->entries = NULL;
	orig->n_entries = 0;
	return q;
}

/* Hand msgs[0..n), all for p, to p: written to its stream at once while
 * it can take them (can_write) and they are small (direct_max entry
 * bytes a frame), the rest queued for the sender: copied, or with orig
 * (the caller's messages, orig[i] the one msgs[i] copies) their entries
 * taken. The number queued or written, or -ENOMEM. s->mu held. */
static int peer_take(struct peer *p, struct raft_message *msgs,
		     struct raft_message **orig, size_t n, size_t direct_max)
{
	size_t i = 0;
	int err = 0;

	pthread_mutex_lock(&p->mu);
	while (i < n && can_write(p)) {
		size_t k = peer_frame_span(&p->set->opt, msgs + i, n - i);
		bool propose = false;
		for (size_t j = i; j < i + k; j++)
			propose |= msgs[j].type == RAFT_MSG_PROPOSE;
		if (propose && !sock_quiet(p->fd))
			break;
		if (entry_bytes(msgs + i, k) > direct_max)
			break; /* encoded on the sender's thread */
		if (peer_frame_build(p, msgs + i, k, &p->out) != 0)
			break; /* the sender tries, and reports a failure */
		i += k;
		int r = peer_out_push(p);
		if (r < 0)
			p->sock_err = -r; /* the sender ends the stream */
		if (r <= 0 && p->sleeping) {
			p->sleeping = false;
			peer_wake(
			    p); /* to write the rest, or see the failure */
		}
	}
	size_t queued = 0;
	for (; i < n; i++) {
		struct qmsg *q = qmsg_of(&msgs[i], orig ? orig[i] : NULL);
		if (q == NULL) {
			err = -ENOMEM;
			break;
		}
		peer_queue_push(p, q);
		queued++;
	}
	if (queued > 0) {
		p->info.queued = p->queued;
		pthread_cond_signal(&p->cv);
		if (p->sleeping) {
			p->sleeping = false;
			peer_wake(p);
		}
	}
	pthread_mutex_unlock(&p->mu);
	return err < 0 ? err : (int)i;
}

/* Does m go on the control stream? Messages without entries do, but the
 * leader's answer to forwarded writes: it must not overtake the append
 * that carries them (the follower would apply its own writes before it
 * knew their index, and answer them "outcome unknown"), so it keeps the
 * data stream's order. */
static bool on_control(const struct raft_message *m)
{
	return m->n_entries == 0 && m->type != RAFT_MSG_PROPOSE_RESP;
}

/* peers_send (take false: msgs are only read) and peers_send_take. */
static int send_msgs(struct peer_set *s, struct raft_message *msgs, size_t n,
		     bool take)
{
	struct raft_message *mine = NULL, **orig = NULL;
	int sent = 0;

	pthread_mutex_lock(&s->mu);
	for (size_t k = 0; k < s->n * 2 && sent >= 0; k++) {
		/* each member's control stream (take: the node's messages
		 * without entries), then its data stream; in this order, since
		 * the data stream's take empties the messages it moves */
		bool ctl = k % 2 == 0;
		struct peer *p = ctl ? s->peers[k / 2]->ctl : s->peers[k / 2];
		size_t c = 0;

		if (ctl && !take)
			continue;
		for (size_t i = 0; i < n; i++) {
			struct raft_message *m = &msgs[i];
			if (m->type == RAFT_MSG_NONE || m->from != s->self ||
			    m->to != p->id || (take && ctl != on_control(m)))
				continue;
			if (mine == NULL &&
			    ((mine = malloc(n * sizeof(*mine))) == NULL ||
			     (take &&
			      (orig = malloc(n * sizeof(*orig))) == NULL))) {
				sent = -ENOMEM;
				break;
			}
			if (take)
				orig[c] = m;
			mine[c++] = *m; /* shallow: encoded or queued below */
		}
		if (c > 0 && sent >= 0) {
			int r = peer_take(p, mine, orig, c,
					  take ? PEER_DIRECT_BYTES : SIZE_MAX);
			sent = r < 0 ? r : sent + r;
		}
	}
	pthread_mutex_unlock(&s->mu);
	free(mine);
	free(orig);
	return sent;
}

int peers_send(struct peer_set *s, const struct raft_message *msgs, size_t n)
{
	/* only read: send_msgs writes to msgs when it takes them */
	return send_msgs(s, (struct raft_message *)msgs, n, false);
}

int peers_send_take(struct peer_set *s, struct raft_message *msgs, size_t n)
{
	return send_msgs(s, msgs, n, true);
}

/* ---- The set ---- */

int peers_new(const char *cluster_id, const char *token, uint64_t self_id,
	      const struct peer_options *opt, struct peer_set **out)
{
	struct peer_set *s;

	if (!peer_id_valid(cluster_id) || !peer_id_valid(token) ||
	    self_id == RAFT_NONE)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return -ENOMEM;
	s->cluster_id = strdup(cluster_id);
	if (s->cluster_id == NULL)
		goto err_free;
	snprintf(s->token, sizeof(s->token), "%s", token);
	s->self = self_id;
	if (opt != NULL)
		s->opt = *opt;
#define DEF(f, v) (s->opt.f = s->opt.f ? s->opt.f : (v))
	DEF(max_queue, DEF_MAX_QUEUE);
	DEF(max_queue_bytes, DEF_MAX_QUEUE_BYTES);
	DEF(batch_bytes, DEF_BATCH_BYTES);
	DEF(connect_timeout_ms, DEF_CONNECT_MS);
	DEF(timeout_ms, DEF_TIMEOUT_MS);
	DEF(backoff_min_ms, DEF_BACKOFF_MIN_MS);
	DEF(backoff_max_ms, DEF_BACKOFF_MAX_MS);
	DEF(idle_ms, DEF_IDLE_MS);
#undef DEF
	if (s->opt.backoff_max_ms < s->opt.backoff_min_ms)
		s->opt.backoff_max_ms = s->opt.backoff_min_ms;
	pthread_mutex_init(&s->mu, NULL);
	pthread_mutex_init(&s->token_mu, NULL);
	*out = s;
	return 0;

err_free:
	free(s->cluster_id);
	free(s);
	return -ENOMEM;
}

int peers_set_token(struct peer_set *s, const char *token)
{
	if (!peer_id_valid(token))
		return -EINVAL;
	pthread_mutex_lock(&s->token_mu);
	bool same = strcmp(s->token, token) == 0;
	snprintf(s->token, sizeof(s->token), "%s", token);
	pthread_mutex_unlock(&s->token_mu);
	if (same)
		return 0;
	pthread_mutex_lock(&s->mu);
	for (size_t i = 0; i < s->n; i++) {
		for (struct peer *p = s->peers[i]; p; p = p->ctl) {
			pthread_mutex_lock(&p->mu);
			p->retoken = true; /* the sender ends its stream */
			pthread_mutex_unlock(&p->mu);
			peer_wake(p);
		}
	}
	pthread_mutex_unlock(&s->mu);
	return 0;
}

/* Index of peer id in s->peers, or -1. s->mu held. */
static ssize_t peer_find(struct peer_set *s, uint64_t id)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->peers[i]->id == id)
			return (ssize_t)i;
	return -1;
}

static void peer_free(struct peer *p)
{
	if (p->ctl)
		peer_free(p->ctl);
	peer_queue_clear(p);
	peer_chunk_clear(&p->out);
	if (p->wake_fd >= 0)
		close(p->wake_fd);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

static void peer_signal_stop(struct peer *p)
{
	for (; p; p = p->ctl) {
		pthread_mutex_lock(&p->mu);
		atomic_store(&p->stop, true);
		pthread_cond_broadcast(&p->cv);
		pthread_mutex_unlock(&p->mu);
		peer_wake(p);
	}
}

/* Wait for p's threads (both streams') to end. */
static void peer_join(struct peer *p)
{
	pthread_join(p->thread, NULL);
	if (p->ctl)
		pthread_join(p->ctl->thread, NULL);
}

/* A new peer id at addr, its thread not started. 0, -errno. */
static int peer_create(struct peer_set *s, uint64_t id, const char *addr,
		       struct peer **out)
{
	struct peer *p = calloc(1, sizeof(*p));
	int err;

	if (p == NULL)
		return -ENOMEM;
	p->fd = -1;
	p->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (p->wake_fd < 0) {
		err = -errno;
		free(p);
		return err;
	}
	if ((err = kv_cond_init(&p->cv)) != 0) {
		close(p->wake_fd);
		free(p);
		return err;
	}
	p->set = s;
	p->id = id;
	snprintf(p->addr, sizeof(p->addr), "%s", addr);
	snprintf(p->info.addr, sizeof(p->info.addr), "%s", addr);
	atomic_init(&p->stop, false);
	pthread_mutex_init(&p->mu, NULL);
	*out = p;
	return 0;
}

int peers_add(struct peer_set *s, uint64_t id, const char *addr)
{
	struct peer *p = NULL;
	int err;

	if (id == RAFT_NONE || id == s->self || !cluster_addr_valid(addr))
		return -EINVAL;
	if ((err = peer_create(s, id, addr, &p)) != 0)
		return err;
	if ((err = peer_create(s, id, addr, &p->ctl)) != 0) {
		p->ctl = NULL;
		peer_free(p);
		return err;
	}
	pthread_mutex_lock(&s->mu);
	if (peer_find(s, id) >= 0) {
		err = -EEXIST;
		goto err_unlock;
	}
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 8;
		struct peer **a = realloc(s->peers, cap * sizeof(*a));
		if (a == NULL) {
			err = -ENOMEM;
			goto err_unlock;
		}
		s->peers = a;
		s->cap = cap;
	}
	err = -pthread_create(&p->ctl->thread, NULL, peer_sender_main, p->ctl);
	if (err < 0)
		goto err_unlock;
	err = -pthread_create(&p->thread, NULL, peer_sender_main, p);
	if (err < 0) {
		struct peer *ctl = p->ctl;
		peer_signal_stop(ctl);
		pthread_join(ctl->thread, NULL);
		goto err_unlock;
	}
	s->peers[s->n++] = p;
	pthread_mutex_unlock(&s->mu);
	return 0;

err_unlock:
	pthread_mutex_unlock(&s->mu);
	peer_free(p);
	return err;
}

int peers_remove(struct peer_set *s, uint64_t id)
{
	struct peer *p;
	ssize_t i;

	pthread_mutex_lock(&s->mu);
	i = peer_find(s, id);
	if (i < 0) {
		pthread_mutex_unlock(&s->mu);
		return -ENOENT;
	}
	p = s->peers[i];
	s->peers[i] = s->peers[--s->n];
	pthread_mutex_unlock(&s->mu);

	peer_signal_stop(p);
	peer_join(p);
	peer_free(p);
	return 0;
}

void peers_note_received(struct peer_set *s, uint64_t id, size_t len)
{
	pthread_mutex_lock(&s->mu);
	ssize_t i = peer_find(s, id);
	if (i >= 0) {
		struct peer *p = s->peers[i];
		pthread_mutex_lock(&p->mu);
		p->info.frames_received++;
		p->info.bytes_received += len;
		pthread_mutex_unlock(&p->mu);
	}
	pthread_mutex_unlock(&s->mu);
}

int peers_info(struct peer_set *s, uint64_t id, struct peer_info *out)
{
	ssize_t i;

	pthread_mutex_lock(&s->mu);
	i = peer_find(s, id);
	if (i >= 0) {
		struct peer *p = s->peers[i];
		pthread_mutex_lock(&p->mu);
		*out = p->info;
		out->queued = p->queued;
		pthread_mutex_unlock(&p->mu);
		struct peer_info c;
		pthread_mutex_lock(&p->ctl->mu);
		c = p->ctl->info;
		c.queued = p->ctl->queued;
		pthread_mutex_unlock(&p->ctl->mu);
		/* one member: the counts of both streams; the state of the
		 * one that last did something */
		out->queued += c.queued;
		out->sent += c.sent;
		out->dropped += c.dropped;
		out->batches += c.batches;
		uint64_t last = out->last_ok_ms > out->last_err_ms
				    ? out->last_ok_ms
				    : out->last_err_ms;
		uint64_t clast =
		    c.last_ok_ms > c.last_err_ms ? c.last_ok_ms : c.last_err_ms;
		if (clast > last) {
			out->reachable = c.reachable;
			out->backoff_ms = c.backoff_ms;
			out->failures = c.failures;
		}
		if (c.last_ok_ms > out->last_ok_ms)
			out->last_ok_ms = c.last_ok_ms;
		if (c.last_err_ms > out->last_err_ms) {
			out->last_err_ms = c.last_err_ms;
			memcpy(out->last_err, c.last_err,
			       sizeof(out->last_err));
		}
	}
	pthread_mutex_unlock(&s->mu);
	return i < 0 ? -ENOENT : 0;
}

void peers_free(struct peer_set *s)
{
	if (s == NULL)
		return;
	/* Stop them all first, then wait: one slow stop does not add up. */
	for (size_t i = 0; i < s->n; i++)
		peer_signal_stop(s->peers[i]);
	for (size_t i = 0; i < s->n; i++) {
		peer_join(s->peers[i]);
		peer_free(s->peers[i]);
	}
	free(s->peers);
	pthread_mutex_destroy(&s->mu);
	pthread_mutex_destroy(&s->token_mu);
	free(s->cluster_id);
	explicit_bzero(s->token, sizeof(s->token));
	free(s);
}
