/* peer_out.c - a frame on its way into a stream's socket.
 *
 * A batch is encoded once (msg_encode.c) into the payload of one HTTP
 * chunk (peer_http.c) and written without blocking (peer_conn.c: one
 * sendmsg of its head, payload and CRLF, or one corked TLS flush); what a
 * full socket does not take stays in
 * p->out for the sender thread to finish, so a frame is never split by
 * another. A frame counts as sent when the socket took its last byte.
 * Propose messages are remembered per frame: if the stream fails before
 * the frame went whole, the peer surely ignored it, and the owner is told
 * (opt.unsent). Who calls what, and with which lock, is in peer_int.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv.h"
#include "peer_int.h"

/* Count a frame the socket took whole at mono_ms. mu held. */
static void count_sent(struct peer *p, size_t msgs, size_t bytes,
		       uint64_t mono_ms)
{
	p->info.sent += msgs;
	p->info.batches++;
	p->info.bytes_sent += bytes;
	p->info.last_ok_ms = peer_wall_ms();
	if (!p->info.reachable)
		kv_log(KV_LOG_INFO, "peer %llu (%s) up",
		       (unsigned long long)p->id, p->info.addr);
	p->info.reachable = true;
	p->info.failures = 0;
	p->info.backoff_ms = 0;
	p->last_frame_ms = mono_ms;
}

int peer_out_push(struct peer *p)
{
	struct chunk *c = &p->out;
	int r = peer_conn_push(p, c);

	if (r <= 0)
		return r;
	if (c->body != NULL)
		count_sent(p, c->msgs, c->hlen + c->blen, c->moved_ms);
	peer_chunk_clear(c);
	return 1;
}

void peer_report_unsent(struct peer *p, const uint64_t *ctx, size_t n)
{
	const struct peer_options *opt = &p->set->opt;
	for (size_t i = 0; opt->unsent != NULL && i < n; i++)
		opt->unsent(opt->unsent_arg, p->id, ctx[i]);
}

int peer_frame_build(struct peer *p, const struct raft_message *msgs, size_t n,
		     struct chunk *c)
{
	size_t np = 0;
	uint64_t *proposes = NULL;
	char *body = NULL;
	size_t len = 0;

	for (size_t i = 0; i < n; i++)
		np += msgs[i].type == RAFT_MSG_PROPOSE;
	if (np > 0 && (proposes = malloc(np * sizeof(*proposes))) == NULL)
		return -ENOMEM;
	np = 0;
	for (size_t i = 0; i < n; i++)
		if (msgs[i].type == RAFT_MSG_PROPOSE)
			proposes[np++] = msgs[i].ctx;
	int err = peer_msgs_encode(p->set->cluster_id, p->set->self, msgs, n,
				   &body, &len);
	if (err < 0) {
		free(proposes);
		return err;
	}
	peer_chunk_set(c, body, len, n, proposes, np);
	return 0;
}

void peer_out_from_batch(struct peer *p, struct qmsg *batch, size_t n)
{
	/* calloc: gcc -O3 cannot see that the list holds n messages */
	struct raft_message *msgs = calloc(n ? n : 1, sizeof(*msgs));
	struct chunk c = {.active = false};
	size_t i = 0;
	int err = -ENOMEM;

	if (msgs != NULL) {
		for (struct qmsg *q = batch; q != NULL; q = q->next)
			msgs[i++] = q->m; /* shallow: the qmsgs own the data */
		err = peer_frame_build(p, msgs, n, &c);
	}
	pthread_mutex_lock(&p->mu);
	p->busy = false;
	if (err == 0) {
		p->out = c;
	} else {
		p->info.dropped += n;
		p->info.last_err_ms = peer_wall_ms();
		snprintf(p->info.last_err, sizeof(p->info.last_err),
			 "encoding a batch: %s", strerror(-err));
	}
	pthread_mutex_unlock(&p->mu);
	for (struct qmsg *q = batch; q != NULL;) {
		struct qmsg *next = q->next;
		if (err != 0 && q->m.type == RAFT_MSG_PROPOSE)
			peer_report_unsent(p, &q->m.ctx, 1);
		peer_qmsg_free(q);
		q = next;
	}
	free(msgs);
}
