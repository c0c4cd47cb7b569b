/* trail.c - how much of the log the core keeps in memory.
 *
 * The core's log need not hold what is applied and durable here: the
 * map has it, and the store's log segments too until the next db. So
 * the node thread compacts the core after every turn to a trail of at
 * most NODE_TRAIL_ENTRIES applied entries and NODE_TRAIL_BYTES of entry
 * data, whenever the last db was written. A follower that needs an entry
 * older than the trail gets a snapshot at the core's compaction point or
 * later (snapshot.c: a db is written for it first if the one in place is
 * older; an older db would leave it needing entries nobody has in
 * memory). While a snapshot is being prepared or sent to a follower, and
 * until that follower has answered it (at most NODE_TRAIL_HOLD_MS), the
 * trail is not compacted past the snapshot's index: otherwise a busy
 * leader could move past it during the transfer and send the follower
 * snapshot after snapshot.
 *
 * On a leader the trail also keeps what a live follower still lacks:
 * a follower that answered within NODE_TRAIL_LIVE_MS (2 s) and is
 * only some entries behind (a slow disk, a sanitized build, values of
 * megabytes, where 32 MiB is two to thirty entries) is sent entries, not
 * a db of the whole map, as long as the lag fits NODE_TRAIL_LAG_ENTRIES
 * and NODE_TRAIL_LAG_BYTES. A follower behind that, or silent, no
 * longer holds the trail, and gets a snapshot when it asks. */
#include <malloc.h>
#include <string.h>

#include "node_int.h"

void trail_hold(struct kv_node *n, uint64_t id, uint64_t index)
{
	struct node_trail_hold *slot = NULL;
	for (unsigned i = 0; i < RAFT_MAX_SERVERS; i++) {
		struct node_trail_hold *h = &n->holds[i];
		if (h->id == id) {
			slot = h;
			break;
		}
		if (!h->id && !slot)
			slot = h;
	}
	if (slot)
		*slot = (struct node_trail_hold){
		    .id = id,
		    .index = index,
		    .until_ms = kv_mono_ms() + NODE_TRAIL_HOLD_MS};
}

/* The lowest index a snapshot under way or just sent still needs in
 * memory, UINT64_MAX if none; holds that are done are dropped. */
static uint64_t trail_floor(struct kv_node *n)
{
	uint64_t floor = UINT64_MAX, now = kv_mono_ms();
	for (struct snap_send *ss = n->mb.sends; ss; ss = ss->next)
		if (ss->msg.snapshot.index < floor)
			floor = ss->msg.snapshot.index;
	for (unsigned i = 0; i < RAFT_MAX_SERVERS; i++) {
		struct node_trail_hold *h = &n->holds[i];
		if (!h->id)
			continue;
		struct raft_progress_info p;
		if (now >= h->until_ms ||
		    raft_progress(n->raft, h->id, &p) != 0 ||
		    p.match >= h->index) {
			*h = (struct node_trail_hold){0};
			continue;
		}
		if (h->index < floor)
			floor = h->index;
	}
	return floor;
}

/* Whether follower id answered within NODE_TRAIL_LIVE_MS. The core's
 * recent_active is cleared at every check-quorum and set again at the
 * follower's next answer, so it alone would let the trail go just after
 * each check; the node remembers when it last saw it set. */
static bool trail_live(struct kv_node *n, uint64_t id, bool active,
		       uint64_t now)
{
	struct node_trail_seen *slot = NULL;
	for (unsigned i = 0; i < RAFT_MAX_SERVERS; i++) {
		struct node_trail_seen *s = &n->seen[i];
		if (s->id == id) {
			slot = s;
			break;
		}
		if (!slot &&
		    (!s->id || !raft_config_get(raft_config(n->raft), s->id)))
			slot = s;
	}
	if (!slot)
		return active;
	if (slot->id != id)
		*slot = (struct node_trail_seen){.id = id};
	if (active)
		slot->ms = now;
	return slot->ms && now - slot->ms < NODE_TRAIL_LIVE_MS;
}

/* The lowest match of a leader's live followers, UINT64_MAX if none
 * (or not the leader). */
static uint64_t trail_lag_floor(struct kv_node *n)
{
	uint64_t floor = UINT64_MAX, now = kv_mono_ms();
	if (raft_role(n->raft) != RAFT_LEADER)
		return floor;
	const struct raft_config *c = raft_config(n->raft);
	for (unsigned i = 0; i < c->n; i++) {
		struct raft_progress_info p;
		uint64_t id = c->servers[i].id;
		if (id == n->id || raft_progress(n->raft, id, &p) != 0 ||
		    !trail_live(n, id, p.recent_active, now) || p.snapshot)
			continue;
		if (p.match < floor)
			floor = p.match;
	}
	return floor;
}

/* A restart's entries share the store's block of them (node.c): once
 * they are applied, what the trail keeps of them gets bytes of its own
 * (a trail's worth, copied) and the block can go. */
static void own_restored(struct kv_node *n)
{
	if (!n->restored || store_applied(n->store) < n->restored_last)
		return;
	if (raft_log_own(n->raft, n->restored) != 0)
		return; /* out of memory: a later turn */
	raft_buf_unref(n->restored);
	n->restored = NULL;
}

static void compact(struct kv_node *n)
{
	uint64_t base = raft_snapshot_index(n->raft);
	uint64_t drop = 0;
	uint64_t cut = raft_trail_cut(n->raft, NODE_TRAIL_ENTRIES,
				      NODE_TRAIL_BYTES, &drop);
	/* a step of entries or of bytes at a time: the core moves its array
	 * down at every compaction */
	if (cut <= base ||
	    (cut - base < NODE_TRAIL_STEP && drop < NODE_TRAIL_STEP_BYTES))
		return;
	uint64_t lag = trail_lag_floor(n);
	if (cut > lag) {
		uint64_t lag_drop;
		uint64_t hard = raft_trail_cut(n->raft, NODE_TRAIL_LAG_ENTRIES,
					       NODE_TRAIL_LAG_BYTES, &lag_drop);
		cut = lag > hard ? lag : hard;
		if (cut <= base)
			return;
	}
	uint64_t floor = trail_floor(n);
	if (cut > floor)
		cut = floor;
	if (cut <= base)
		return;
	uint64_t before = raft_log_bytes(n->raft);
	uint64_t last = raft_last_index(n->raft);
	/* far more than a trail: a restart's replay, a follower that
	 * applied a long log at once */
	if (last - base > 2 * NODE_TRAIL_ENTRIES)
		n->trail_burst = true;
	if (raft_compact(n->raft, cut) != 0) {
		kv_log(KV_LOG_WARN, "raft compaction at %llu refused",
		       (unsigned long long)cut);
		return;
	}
	/* give back what was dropped: every 64 MiB, and once a burst is
	 * down to a trail again (else a replay's heap stays resident) */
	n->trail_freed += before - raft_log_bytes(n->raft);
	bool back = n->trail_burst &&
		    last - cut <= NODE_TRAIL_ENTRIES + NODE_TRAIL_STEP;
	if (n->trail_freed >= NODE_TRAIL_TRIM_BYTES || back) {
		n->trail_freed = 0;
		n->trail_burst = false;
		malloc_trim(0);
	}
}

void trail_compact(struct kv_node *n)
{
	compact(n);
	own_restored(n);
}
