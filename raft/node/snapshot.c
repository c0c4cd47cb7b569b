/* snapshot.c - snapshots between nodes: the leader's senders, and the
 * file a follower receives.
 *
 * A leader whose follower needs entries it no longer has sends its db
 * file on a thread of its own (snapxfer.h), one per follower, and the
 * snapshot message (the meta) only once the file is in; the core waits
 * for the outcome (raft_snapshot_done). A follower takes the file in
 * chunks from the listener's threads (node_snapshot_chunk) and keeps the
 * latest verified one until the meta arrives and the node thread installs
 * it (update.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node_int.h"

static void *send_main(void *arg)
{
	pthread_setname_np(pthread_self(), "kvfs-snapsend");
	struct snap_send *ss = arg;
	struct kv_node *n = ss->n;
	char path[4096], why[200] = "";
	snprintf(path, sizeof(path), "%s/db.jsonl", n->data_dir);
	struct snapxfer_send_stats st;
	struct snapxfer_send_options so = {.tls = n->tls};
	char token[PEER_ID_MAX + 1];
	node_token_copy(n, token);
	uint64_t t0 = kv_mono_ms();
	int ret =
	    snapxfer_send(path, ss->index, ss->term, ss->addr, n->cluster_id,
			  token, &so, &ss->cancel, &st, why, sizeof(why));
	explicit_bzero(token, sizeof(token));
	double secs = (double)(kv_mono_ms() - t0) / 1e3;
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
	ss->ret = ret;
	atomic_store(&ss->finished, true); /* ret is the reaper's now */
	pthread_mutex_lock(&n->in.mu);
	n->in.sends_finished = true;
	pthread_cond_signal(&n->in.cond);
	pthread_mutex_unlock(&n->in.mu);
	return NULL;
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
	atomic_init(&ss->finished, false);
	if (pthread_create(&ss->thread, NULL, send_main, ss) != 0) {
		free(ss);
		raft_snapshot_done(n->raft, m->to, false);
		return;
	}
	ss->next = n->mb.sends;
	n->mb.sends = ss;
}

void snapshot_send_reap(struct kv_node *n, bool cancel_all)
{
	struct snap_send **pp = &n->mb.sends;
	while (*pp) {
		struct snap_send *ss = *pp;
		if (cancel_all)
			atomic_store(&ss->cancel, true);
		else if (!atomic_load(&ss->finished)) {
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

int node_snapshot_chunk(struct kv_node *n, const struct snapxfer_chunk *c,
			uint64_t *next, char *why, size_t why_len)
{
	struct snapxfer_ready ready;
	int err =
	    snapxfer_recv_chunk(n->snap.recv, c, next, &ready, why, why_len);
	if (err == 1) {
		pthread_mutex_lock(&n->snap.mu);
		n->snap.ready = ready;
		n->snap.has_ready = true;
		pthread_mutex_unlock(&n->snap.mu);
	}
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
