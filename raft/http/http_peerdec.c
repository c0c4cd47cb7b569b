/* http_peerdec.c - peer batches into the node: decoded at once, or big
 * frames on a decoder thread of their own, off the listener's.
 *
 * The listener is one thread for every connection. A stream's frame of
 * 16 MiB of entries took it 100 ms and more to decode (and node_deliver
 * then decodes the commands in it, decoded.c), during which no other
 * frame was read: the heartbeats behind it on the same stream, the other
 * peer's answers, the clients. So a frame past PEER_DIRECT_BYTES is copied
 * to this decoder's queue and decoded on its own thread, in arrival order;
 * smaller frames are still decoded at once on the listener's thread and
 * may so reach the node before a big one that came earlier, which Raft
 * allows (any network reorders). The queue is bounded by bytes: past it
 * the listener decodes the frame itself, which slows the stream down to
 * what this node takes (a dropped frame would only be resent). The
 * endpoints are http_peer.c's. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_int.h"
#include "peer.h"

/* ---- a batch into the node, on any thread ---- */

int http_peer_take_batch(struct kv_node *node, const char *p, size_t len,
			 char *why, size_t why_len)
{
	struct raft_message *msgs = NULL;
	size_t n = 0;
	int err = peer_handle_body(p, len, node_cluster_id(node), node_id(node),
				   &msgs, &n, why, why_len);
	if (err != 0) {
		kv_log(KV_LOG_WARN, "refused a peer batch%s: %s",
		       err == KV_EVERSION ? " in another format version" : "",
		       why[0] ? why : kv_strerror(err));
		return err;
	}
	if (n > 0 && node_deliver(node, msgs, n, len) != 0)
		return -EBUSY;
	return 0;
}

/* ---- the decoder ---- */

struct peerdec_item {
	struct peerdec_item *next;
	size_t len;
	char p[]; /* the frame's bytes */
};

static void *peerdec_main(void *arg)
{
	pthread_setname_np(pthread_self(), "kvfs-peerdec");
	struct http_server *h = arg;
	struct http_peerdec *d = &h->dec;
	pthread_mutex_lock(&d->mu);
	for (;;) {
		while (!d->head && !d->stop)
			pthread_cond_wait(&d->cond, &d->mu);
		if (d->stop)
			break;
		struct peerdec_item *it = d->head;
		d->head = it->next;
		if (!d->head)
			d->tail = NULL;
		pthread_mutex_unlock(&d->mu);
		char why[160] = "";
		(void)http_peer_take_batch(h->node, it->p, it->len, why,
					   sizeof(why));
		pthread_mutex_lock(&d->mu);
		d->bytes -= it->len;
		free(it);
	}
	pthread_mutex_unlock(&d->mu);
	return NULL;
}

int http_peerdec_start(struct http_server *h)
{
	struct http_peerdec *d = &h->dec;
	pthread_mutex_init(&d->mu, NULL);
	pthread_cond_init(&d->cond, NULL);
	int ret = -pthread_create(&d->thread, NULL, peerdec_main, h);
	if (ret != 0) {
		pthread_cond_destroy(&d->cond);
		pthread_mutex_destroy(&d->mu);
		return ret;
	}
	d->started = true;
	return 0;
}

void http_peerdec_stop(struct http_server *h)
{
	struct http_peerdec *d = &h->dec;
	if (!d->started)
		return;
	pthread_mutex_lock(&d->mu);
	d->stop = true;
	pthread_cond_signal(&d->cond);
	pthread_mutex_unlock(&d->mu);
	pthread_join(d->thread, NULL);
	while (d->head) {
		struct peerdec_item *next = d->head->next;
		free(d->head);
		d->head = next;
	}
	d->tail = NULL;
	d->bytes = 0;
	d->started = false;
	pthread_cond_destroy(&d->cond);
	pthread_mutex_destroy(&d->mu);
}

bool http_peerdec_take(struct http_server *h, const char *p, size_t len)
{
	struct http_peerdec *d = &h->dec;
	if (!d->started || len <= PEER_DIRECT_BYTES)
		return false;
	struct peerdec_item *it = malloc(sizeof(*it) + len);
	if (!it)
		return false; /* decoded here, then */
	it->next = NULL;
	it->len = len;
	memcpy(it->p, p, len);
	pthread_mutex_lock(&d->mu);
	if (d->stop || d->bytes + len > HTTP_PEERDEC_MAX_BYTES) {
		/* behind: the listener decodes it itself, and so reads the
		 * stream no faster than this node takes it (a dropped frame
		 * would only come back, resent) */
		pthread_mutex_unlock(&d->mu);
		free(it);
		return false;
	}
	if (d->tail)
		d->tail->next = it;
	else
		d->head = it;
	d->tail = it;
	d->bytes += len;
	pthread_cond_signal(&d->cond);
	pthread_mutex_unlock(&d->mu);
	return true;
}
