/* snapshot.c - snapshots between nodes: the leader's senders, and the
 * file a follower receives.
 *
 * A leader whose follower needs entries it no longer has in memory
 * sends its db file on a thread of its own (snapxfer.h), one per
 * follower, and the snapshot message (the meta) only once the file is
 * in. The db must be at the core's compaction point or later: when the
 * one in place is older (the core keeps a trail bounded by itself,
 * trail.c), the sender waits, without a thread, for a db the store is
 * asked to write at once (store_snapshot_soon); the core waits
 * for the outcome (raft_snapshot_done). A follower takes the file in
 * chunks from the listener's threads (node_snapshot_chunk) and keeps the
 * latest verified one until the meta arrives and the node thread installs
 * it (update.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "node_int.h"

/* ---- progress: a line a second in the log, and /status ---- */

#define XFER_LOG_MS 1000

static double mib(uint64_t b)
{
	return (double)b / (1024.0 * 1024.0);
}

static double rate(const struct node_xfer *x, uint64_t now)
{
	return now > x->t0_ms ? mib(x->have) * 1000.0 / (double)(now - x->t0_ms)
			      : 0.0;
}

/* Note that x now has `have` bytes; log once a second. snap.mu held. */
static void xfer_note(struct node_xfer *x, uint64_t have, uint64_t size)
{
	uint64_t now = kv_mono_ms();
	x->have = have;
	x->size = size;
	x->last_ms = now;
	if (now - x->logged_ms < XFER_LOG_MS)
		return;
	x->logged_ms = now;
	if (x->peer && size)
		kv_log(KV_LOG_INFO,
		       "snapshot at %llu to node %llu: %.1f of %.1f MiB "
		       "(%.1f MiB/s)",
		       (unsigned long long)x->index,
		       (unsigned long long)x->peer, mib(have), mib(size),
		       rate(x, now));
	else
		kv_log(KV_LOG_INFO,
		       "receiving the snapshot at %llu: %.1f MiB (%.1f MiB/s)",
		       (unsigned long long)x->index, mib(have), rate(x, now));
}

static void send_progress(void *ctx, uint64_t have, uint64_t size)
{
	struct snap_send *ss = ctx;
	struct kv_node *n = ss->n;
	pthread_mutex_lock(&n->snap.mu);
	for (unsigned i = 0; i < RAFT_MAX_SERVERS; i++) {
		struct node_xfer *x = &n->snap.sending[i];
		if (x->peer == ss->id && x->index == ss->index) {
			xfer_note(x, have, size);
			break;
		}
	}
	pthread_mutex_unlock(&n->snap.mu);
}

/* A slot in sending for ss (sending true) or its release. */
static void send_slot(struct snap_send *ss, bool sending)
{
	struct kv_node *n = ss->n;
	pthread_mutex_lock(&n->snap.mu);
	for (unsigned i = 0; i < RAFT_MAX_SERVERS; i++) {
		struct node_xfer *x = &n->snap.sending[i];
		if (sending && x->index == 0) {
			uint64_t now = kv_mono_ms();
			*x = (struct node_xfer){.peer = ss->id,
						.index = ss->index,
						.t0_ms = now,
						.last_ms = now,
						.logged_ms = now};
			break;
		}
		if (!sending && x->peer == ss->id && x->index == ss->index) {
			*x = (struct node_xfer){0};
			break;
		}
	}
	pthread_mutex_unlock(&n->snap.mu);
}

static void xfer_json(cJSON *arr, const struct node_xfer *x, uint64_t now)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return;
	cJSON_AddItemToArray(arr, o);
	cJSON_AddStringToObject(o, "direction", x->peer ? "send" : "receive");
	if (x->peer)
		cJSON_AddNumberToObject(o, "peer", (double)x->peer);
	cJSON_AddNumberToObject(o, "index", (double)x->index);
	cJSON_AddNumberToObject(o, "bytes", (double)x->have);
	if (x->size)
		cJSON_AddNumberToObject(o, "total", (double)x->size);
	cJSON_AddNumberToObject(o, "bytes_per_s",
				rate(x, now) * 1024.0 * 1024.0);
	cJSON_AddNumberToObject(o, "seconds", (double)(now - x->t0_ms) / 1e3);
}

void snapshot_status(struct kv_node *n, cJSON *j)
{
	cJSON *arr = cJSON_AddArrayToObject(j, "snapshot_transfers");
	if (!arr)
		return;
	uint64_t now = kv_mono_ms();
	pthread_mutex_lock(&n->snap.mu);
	for (unsigned i = 0; i < RAFT_MAX_SERVERS; i++)
		if (n->snap.sending[i].index)
			xfer_json(arr, &n->snap.sending[i], now);
	/* a receipt is in progress while chunks keep coming */
	const struct node_xfer *r = &n->snap.receiving;
	if (r->index && now - r->last_ms < 10000)
		xfer_json(arr, r, now);
	pthread_mutex_unlock(&n->snap.mu);
}

static void *send_main(void *arg)
{
	pthread_setname_np(pthread_self(), "kvfs-snapsend");
	kv_thread_background();
	struct snap_send *ss = arg;
	struct kv_node *n = ss->n;
	char path[4096], why[200] = "";
	snprintf(path, sizeof(path), "%s/db.jsonl", n->data_dir);
	struct snapxfer_send_stats st;
	struct snapxfer_send_options so = {
	    .tls = n->tls, .progress = send_progress, .progress_ctx = ss};
	send_slot(ss, true);
	char token[PEER_ID_MAX + 1];
	node_token_copy(n, token);
	uint64_t t0 = kv_mono_ms();
	int ret =
	    snapxfer_send(path, ss->index, ss->term, ss->addr, n->cluster_id,
			  token, &so, &ss->cancel, &st, why, sizeof(why));
	explicit_bzero(token, sizeof(token));
	send_slot(ss, false);
	double secs = (double)(kv_mono_ms() - t0) / 1e3;
	if (ret == 0)
		kv_log(KV_LOG_INFO,
		       "snapshot at %llu sent to node %llu: %llu "
		       "bytes in %.2f s (resumed at %llu)",
		       (unsigned long long)ss->index,
		       (unsigned long long)ss->id, (unsigned long long)st.size,
		       secs, (unsigned long long)st.resumed_at);
	else if (ret != -ECANCELED)
		kv_log(
		    KV_LOG_WARN, "snapshot at %llu to node %llu failed: %s%s%s",
		    (unsigned long long)ss->index, (unsigned long long)ss->id,
		    kv_strerror(ret), why[0] ? ": " : "", why);
	ss->ret = ret;
	atomic_store(&ss->finished, true); /* ret is the reaper's now */
	pthread_mutex_lock(&n->in.mu);
	n->in.sends_finished = true;
	pthread_cond_signal(&n->in.cond);
	pthread_mutex_unlock(&n->in.mu);
	return NULL;
}

/* Start ss's thread with the db in place (at ss->msg.snapshot.index or
 * later). false if it cannot start: the core hears of the failure. */
static bool send_thread(struct kv_node *n, struct snap_send *ss)
{
	struct store_status st;
	if (!raft_config_get(raft_config(n->raft), ss->id) ||
	    store_status(n->store, &st) != 0 ||
	    st.snapshot_index < ss->msg.snapshot.index) {
		raft_snapshot_done(n->raft, ss->id, false);
		return false;
	}
	ss->index = st.snapshot_index;
	ss->term = st.snapshot_term;
	ss->waiting = false;
	/* announce the db's own index when the core can describe it: the
	 * follower then starts after it, not at the core's compaction
	 * point with the entries up to the db sent again */
	struct raft_snapshot_meta meta;
	if (ss->index > ss->msg.snapshot.index &&
	    raft_snapshot_meta(n->raft, ss->index, &meta) == 0 &&
	    meta.term == ss->term)
		ss->msg.snapshot = meta;
	if (pthread_create(&ss->thread, NULL, send_main, ss) != 0) {
		raft_snapshot_done(n->raft, ss->id, false);
		return false;
	}
	return true;
}

void snapshot_send_start(struct kv_node *n, struct raft_message *m)
{
	for (struct snap_send *ss = n->mb.sends; ss; ss = ss->next)
		if (ss->id == m->to)
			return; /* one at a time; the core waits for it */
	const struct raft_server *srv =
	    raft_config_get(raft_config(n->raft), m->to);
	struct store_status st;
	struct snap_send *ss = calloc(1, sizeof(*ss));
	if (!srv || !ss || store_status(n->store, &st) != 0) {
		free(ss);
		raft_snapshot_done(n->raft, m->to, false);
		return;
	}
	ss->n = n;
	ss->id = m->to;
	memcpy(ss->addr, srv->addr, sizeof(ss->addr));
	ss->msg = *m; /* a snapshot message owns no entries */
	atomic_init(&ss->cancel, false);
	atomic_init(&ss->finished, false);
	if (st.snapshot_index < m->snapshot.index) {
		/* the core keeps less than the db's log: the follower needs
		 * a db at its compaction point or later, never this one */
		ss->waiting = true;
		kv_log(KV_LOG_INFO,
		       "node %llu needs entries before %llu, older than this "
		       "node keeps in memory; writing a db for it (the last "
		       "is at %llu)",
		       (unsigned long long)m->to,
		       (unsigned long long)m->snapshot.index,
		       (unsigned long long)st.snapshot_index);
		store_snapshot_soon(n->store, m->snapshot.index);
	} else if (!send_thread(n, ss)) {
		free(ss);
		return;
	}
	ss->next = n->mb.sends;
	n->mb.sends = ss;
}

void snapshot_send_resume(struct kv_node *n, uint64_t index)
{
	struct snap_send **pp = &n->mb.sends;
	while (*pp) {
		struct snap_send *ss = *pp;
		if (!ss->waiting || index < ss->msg.snapshot.index ||
		    send_thread(n, ss)) {
			pp = &ss->next;
			continue;
		}
		*pp = ss->next;
		free(ss);
	}
}

void snapshot_send_reap(struct kv_node *n, bool cancel_all)
{
	struct snap_send **pp = &n->mb.sends;
	while (*pp) {
		struct snap_send *ss = *pp;
		if (ss->waiting && !cancel_all) {
			pp = &ss->next;
			continue;
		}
		if (cancel_all)
			atomic_store(&ss->cancel, true);
		else if (!atomic_load(&ss->finished)) {
			pp = &ss->next;
			continue;
		}
		if (!ss->waiting)
			pthread_join(ss->thread, NULL);
		*pp = ss->next;
		if (!cancel_all) {
			if (ss->ret == 0) {
				outbox_add(n, &ss->msg);
				trail_hold(n, ss->id, ss->msg.snapshot.index);
			}
			raft_snapshot_done(n->raft, ss->id, ss->ret == 0);
		}
		free(ss);
	}
}

int node_snapshot_chunk(struct kv_node *n, const struct snapxfer_chunk *c,
			uint64_t *next, char *why, size_t why_len)
{
	struct snapxfer_ready ready;
	int err =
	    snapxfer_recv_chunk(n->snap.recv, c, next, &ready, why, why_len);
	pthread_mutex_lock(&n->snap.mu);
	struct node_xfer *x = &n->snap.receiving;
	if (err >= 0 && c->len) {
		if (x->index != c->index) {
			uint64_t now = kv_mono_ms();
			*x = (struct node_xfer){
			    .index = c->index, .t0_ms = now, .logged_ms = now};
			kv_log(KV_LOG_INFO,
			       "receiving the snapshot at %llu (from byte "
			       "%llu)",
			       (unsigned long long)c->index,
			       (unsigned long long)c->offset);
		}
		xfer_note(x, c->offset + c->len, 0);
	}
	if (err == 1) {
		n->snap.ready = ready;
		n->snap.has_ready = true;
		uint64_t now = kv_mono_ms();
		kv_log(KV_LOG_INFO,
		       "received the snapshot at %llu: %.1f MiB in %.2f s",
		       (unsigned long long)c->index, mib(ready.size),
		       (double)(now - (x->t0_ms ? x->t0_ms : now)) / 1e3);
		*x = (struct node_xfer){0};
	}
	pthread_mutex_unlock(&n->snap.mu);
	return err;
}

bool snapshot_ready_take(struct kv_node *n, char *path, size_t cap,
			 uint64_t *index)
{
	pthread_mutex_lock(&n->snap.mu);
	bool has = n->snap.has_ready;
	if (has) {
		snprintf(path, cap, "%s", n->snap.ready.path);
		*index = n->snap.ready.index;
	}
	pthread_mutex_unlock(&n->snap.mu);
	return has;
}

void snapshot_ready_clear(struct kv_node *n)
{
	pthread_mutex_lock(&n->snap.mu);
	n->snap.has_ready = false;
	pthread_mutex_unlock(&n->snap.mu);
}
