/* update.c - carrying out one update of the Raft core, in raft.h's order.
 *
 * Install a snapshot the leader sent, sync the hard state, hand the
 * messages to the peer senders (the leader sends before its own sync),
 * append the entries (group commit: the store reports them durable
 * later), apply the committed ones on this thread (store_apply needs no
 * hand-off), then answer what the update settled: writes whose entry was
 * applied, readers whose round was answered or whose index is now here.
 * The store reports back through node_store_ops: persisted from its sync
 * thread, snapshotted from its owner (both into the inbox), applied from
 * the applying thread. The node thread itself is loop.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node_int.h"

/* ---- the store's reports ---- */

static void on_persisted(void *ctx, uint64_t index, uint64_t term)
{
	struct kv_node *n = ctx;
	pthread_mutex_lock(&n->in.mu);
	n->in.persisted_index = index;
	n->in.persisted_term = term;
	n->in.persisted_new = true;
	n->in.lazy = false; /* the calls held for this report */
	pthread_mutex_unlock(&n->in.mu);
	pthread_cond_signal(&n->in.cond); /* after: see inbox_add_call */
}

/* The node thread, in store_apply; or the store's owner reporting a
 * snapshot installed, while the node thread waits in store_install:
 * never both at once, so the proposals are the node thread's still. */
static void on_applied(void *ctx, uint64_t index, uint64_t term,
		       const struct kv_result *res)
{
	props_on_applied(ctx, index, term, res);
}

static void on_snapshotted(void *ctx, uint64_t index)
{
	struct kv_node *n = ctx;
	pthread_mutex_lock(&n->in.mu);
	n->in.snapshotted = index;
	pthread_mutex_unlock(&n->in.mu);
	pthread_cond_signal(&n->in.cond);
}

const struct store_raft_ops node_store_ops = {
    .persisted = on_persisted,
    .applied = on_applied,
    .snapshotted = on_snapshotted,
};

/* ---- the update ---- */

static void to_store(const struct raft_entry *e, size_t n,
		     struct store_entry *out)
{
	for (size_t i = 0; i < n; i++) {
		out[i] = (struct store_entry){.index = e[i].index,
					      .term = e[i].term,
					      .type = (int)e[i].type,
					      .data = e[i].data,
					      .len = e[i].len};
		/* a big one was checked where it arrived (decoded_note) */
		out[i].data_checked = decoded_checked(&e[i], &out[i].data_crc);
	}
}

static uint64_t entries_bytes(const struct raft_entry *e, size_t n)
{
	uint64_t b = 0;
	for (size_t i = 0; i < n; i++)
		b += e[i].len;
	return b;
}

/* Hand entries to the store to append, or apply them, in chunks on the
 * stack; a big command to apply goes with its decoded form when another
 * thread decoded it already (decoded.c). */
static int store_entries(struct kv_node *n, const struct raft_entry *e,
			 size_t count, bool apply)
{
	struct store_entry buf[64];
	struct kv_cmd cmds[64];
	for (size_t i = 0; i < count; i += 64) {
		size_t k = count - i < 64 ? count - i : 64;
		to_store(e + i, k, buf);
		for (size_t j = 0; apply && j < k; j++)
			if (e[i + j].type == RAFT_ENTRY_NORMAL &&
			    e[i + j].len >= NODE_PREDECODE_BYTES &&
			    decoded_take(n, e[i + j].index, e[i + j].term,
					 &cmds[j]))
				buf[j].cmd = &cmds[j];
		int ret = apply ? store_apply(n->store, buf, k)
				: store_append(n->store, buf, k);
		for (size_t j = 0; apply && j < k; j++)
			if (buf[j].cmd)
				kv_cmd_clear(&cmds[j]);
		if (ret != 0)
			return ret;
	}
	return 0;
}

/* Whether calls may wait in the inbox without waking the node thread
 * (in.lazy, call.c) after this update appended entries up to last (0:
 * none). Only on the only voter: nothing of a write can happen before
 * its own log's sync, whose report wakes the node and takes every call
 * queued meanwhile into the next sync, the group commit it would have
 * made had each call woken it. Not when a report is not sure to come
 * (the store stalled or failed, nothing appended, or everything reported
 * already): in.lazy is then false and every call wakes the node. A store
 * that fails after this leaves calls to the next tick (NODE_TICK_MS),
 * whose turn finds the error. */
static void calls_lazy_update(struct kv_node *n, uint64_t last)
{
	bool lazy = last && raft_read_is_local(n->raft) &&
		    store_write_error(n->store, NULL) == 0;
	pthread_mutex_lock(&n->in.mu);
	n->in.lazy = lazy && n->in.persisted_index < last;
	pthread_mutex_unlock(&n->in.mu);
}

/* Step 1 of the caller's order: the leader sent the meta of a snapshot
 * at index X once its db file (at index Y >= X: the leader keeps a trail
 * of entries after its db) arrived whole and verified. The store installs
 * the file (its map, its log starting after Y) and skips entries up to Y
 * when the core hands them again. 0, or an error: the core dropped its
 * log for the snapshot, so the node cannot go on (restart recovers). */
static int install_snapshot(struct kv_node *n, const struct raft_update *u)
{
	char path[sizeof(n->snap.ready.path)];
	uint64_t index = 0;
	if (!snapshot_ready_take(n, path, sizeof(path), &index))
		index = 0;
	if (index < u->snapshot.index) {
		kv_log(KV_LOG_WARN,
		       "a snapshot at %llu was announced but the file "
		       "received is at %llu",
		       (unsigned long long)u->snapshot.index,
		       (unsigned long long)index);
		return -ESTALE;
	}
	int ret = store_install(n->store, path);
	if (ret != 0) {
		kv_log(KV_LOG_ERROR, "cannot install the snapshot %s: %s", path,
		       kv_strerror(ret));
		return ret;
	}
	snapshot_ready_clear(n);
	kv_log(KV_LOG_INFO, "node %llu installed a snapshot at index %llu",
	       (unsigned long long)n->id, (unsigned long long)index);
	raft_persisted(n->raft, u->snapshot.index, u->snapshot.term);
	return 0;
}

void update_process(struct kv_node *n, struct raft_update *u)
{
	turn_mark(n, TURN_CORE, 0, 0); /* raft_update_get, just before */
	/* before any message, apply or answer of this update: a reader
	 * that sees the index saw it before anyone learned of a later one */
	reads_solo_publish(n);
	if (u->has_snapshot) {
		int ret = install_snapshot(n, u);
		turn_mark(n, TURN_INSTALL, 1, 0);
		if (ret != 0) {
			status_set_fatal(n, KV_ECORRUPT);
			return;
		}
	}
	if (u->hard_state_changed) {
		int ret = store_save_hardstate(n->store, u->term, u->vote);
		if (ret != 0) {
			/* a vote or term that is not durable must not be
			 * acted on: send nothing, and stop */
			kv_log(KV_LOG_ERROR,
			       "cannot save the raft hard state: %s; "
			       "this node stops taking part",
			       kv_strerror(ret));
			status_set_fatal(n, ret);
			return;
		}
		turn_mark(n, TURN_HARDSTATE, 1, 0);
	}
	/* a snapshot's data goes first, on a thread of its own; the rest
	 * go now, with what the turn added before them, while the store
	 * takes the entries */
	for (size_t i = 0; i < u->n_msgs; i++) {
		if (u->msgs[i].type == RAFT_MSG_SNAPSHOT) {
			snapshot_send_start(n, &u->msgs[i]);
			u->msgs[i].type = RAFT_MSG_NONE;
		} else {
			outbox_add(n, &u->msgs[i]);
		}
	}
	outbox_flush(n);
	int ret = store_entries(n, u->entries, u->n_entries, false);
	calls_lazy_update(n, ret == 0 && u->n_entries
				 ? u->entries[u->n_entries - 1].index
				 : 0);
	turn_mark(n, TURN_APPEND, u->n_entries,
		  entries_bytes(u->entries, u->n_entries));
	if (ret == 0)
		ret = store_entries(n, u->committed, u->n_committed, true);
	if (ret != 0 && ret != KV_ESHUTDOWN) {
		kv_log(KV_LOG_ERROR, "cannot hand entries to the store: %s",
		       kv_strerror(ret));
		status_set_fatal(n, ret);
	}
	/* the writes applied (or lost to another leader's entries), the
	 * readers whose index is now here, then the rounds answered */
	props_settle_applied(n);
	reads_settle_applied(n);
	if (u->n_reads)
		reads_answered(n, u->reads, u->n_reads);
	turn_mark(n, TURN_APPLY, u->n_committed,
		  entries_bytes(u->committed, u->n_committed));
}
