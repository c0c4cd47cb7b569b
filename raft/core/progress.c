/* progress.c - the leader's view of one follower's log (§5.3 nextIndex and
 * matchIndex, plus flow control).
 *
 * As in etcd: PROBE sends one append at a time until the follower accepts
 * one, REPLICATE pipelines appends optimistically with at most max_inflight
 * outstanding (a ring of their last indexes), SNAPSHOT waits while a
 * snapshot is being installed. The leader's decisions live in leader.c
 * and replication.c; this file only keeps the numbers consistent. */
#include <assert.h>
#include <string.h>

#include "progress.h"

void progress_reset(struct raft_progress *p, uint64_t id, uint64_t next)
{
	memset(p, 0, sizeof(*p));
	p->id = id;
	p->next = next;
	p->state = PROGRESS_PROBE;
}

void progress_become_probe(struct raft_progress *p)
{
	if (p->state == PROGRESS_SNAPSHOT) {
		uint64_t s = p->pending_snapshot;
		p->next = (p->match > s ? p->match : s) + 1;
	} else {
		p->next = p->match + 1;
	}
	p->state = PROGRESS_PROBE;
	p->probe_sent = false;
	p->pending_snapshot = 0;
	p->in_head = p->in_count = 0;
}

void progress_become_replicate(struct raft_progress *p)
{
	assert(p->state != PROGRESS_REPLICATE);
	p->state = PROGRESS_REPLICATE;
	p->next = p->match + 1;
	p->probe_sent = false;
	p->in_head = p->in_count = 0;
}

void progress_become_snapshot(struct raft_progress *p, uint64_t index)
{
	assert(p->state != PROGRESS_SNAPSHOT);
	p->state = PROGRESS_SNAPSHOT;
	p->pending_snapshot = index;
	p->probe_sent = false;
	p->in_head = p->in_count = 0;
}

bool progress_inflight_full(const struct raft_progress *p, unsigned max)
{
	return p->in_count >= max;
}

void progress_inflight_add(struct raft_progress *p, uint64_t last)
{
	assert(p->state == PROGRESS_REPLICATE &&
	       p->in_count < RAFT_MAX_INFLIGHT);
	unsigned slot = (p->in_head + p->in_count) % RAFT_MAX_INFLIGHT;
	p->inflight[slot] = last;
	p->in_count++;
}

void progress_inflight_free_to(struct raft_progress *p, uint64_t index)
{
	while (p->in_count && p->inflight[p->in_head] <= index) {
		p->in_head = (p->in_head + 1) % RAFT_MAX_INFLIGHT;
		p->in_count--;
	}
}

bool progress_update(struct raft_progress *p, uint64_t index)
{
	bool moved = false;
	if (index > p->match) {
		p->match = index;
		moved = true;
		p->probe_sent = false;
	}
	if (p->next < index + 1)
		p->next = index + 1;
	return moved;
}

/* The follower refused the entry at match, which it acknowledged before,
 * and says its log ends at hint: it lost its log (a wiped data directory,
 * restarted with the same id). Start over from what it has. Lowering match
 * never lowers the commit index; it only resends entries. */
static bool lost_log(const struct raft_progress *p, uint64_t rejected,
		     uint64_t hint)
{
	return p->match > 0 && rejected == p->match && hint < p->match;
}

bool progress_decr(struct raft_progress *p, uint64_t rejected,
		   uint64_t probe_hint)
{
	if (p->state == PROGRESS_REPLICATE) {
		if (lost_log(p, rejected, probe_hint)) {
			p->match = probe_hint;
			p->next = probe_hint + 1;
			return true;
		}
		/* An old append, from before a match we already know. */
		if (rejected <= p->match)
			return false;
		p->next = p->match + 1;
		return true;
	}
	/* PROBE: only the answer to the append we are waiting for counts. */
	if (p->next - 1 != rejected)
		return false;
	if (lost_log(p, rejected, probe_hint))
		p->match = probe_hint;
	uint64_t next = probe_hint + 1 < rejected ? probe_hint + 1 : rejected;
	p->next = next > p->match + 1 ? next : p->match + 1;
	p->probe_sent = false;
	return true;
}
