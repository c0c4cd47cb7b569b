/* leader.c - the leader's sending side: appending entries of its term to
 * its log, and building the appends, snapshots and heartbeats that carry
 * the log to each follower (§5.3, §7).
 *
 * Appends come from the in-memory log, batched (max_batch_entries,
 * max_batch_bytes) and bounded in flight per follower (progress.c); one
 * follower gets at most one append per update where appends follow each
 * other. What the answers do is replication.c's. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "leader.h"
#include "membership.h"
#include "output.h"
#include "raft_impl.h"

bool lead_committed_in_term(const struct raft *r)
{
	assert(r->role == RAFT_LEADER);
	return mlog_term(&r->log, r->commit) == r->term;
}

int lead_append(struct raft *r, enum raft_entry_type type, const void *data,
		size_t len)
{
	struct raft_entry e = {.type = type, .data = (void *)data, .len = len};
	return lead_append_entry(r, &e);
}

int lead_append_entry(struct raft *r, const struct raft_entry *src)
{
	assert(r->role == RAFT_LEADER);
	struct raft_entry e = *src;
	e.term = r->term;
	e.index = mlog_last_index(&r->log) + 1;
	int rc = mlog_append(&r->log, &e);
	if (rc)
		return rc;
	if (e.type == RAFT_ENTRY_CONFIG)
		memb_conf_refresh(r); /* §4.1 diss.: in effect once logged */
	return 0;
}

/* §7: send the snapshot meta; the node streams the data itself. */
static void send_snapshot(struct raft *r, struct raft_progress *p)
{
	assert(p->id != r->id && p->next <= r->log.snap_index);
	struct raft_message *m = out_msg(r, RAFT_MSG_SNAPSHOT, p->id);
	if (!m)
		return;
	m->snapshot.index = r->log.snap_index;
	m->snapshot.term = r->log.snap_term;
	m->snapshot.conf = r->snap_conf;
	progress_become_snapshot(p, r->log.snap_index);
}

/* The append to `to` that this update already holds, if it is the last
 * message to `to` and ends at prev, so that one starting after prev can
 * go in it; else NULL. */
static struct raft_message *pending_append(struct raft *r, uint64_t to,
					   uint64_t prev)
{
	for (size_t i = r->n_out_msgs; i-- > 0;) {
		struct raft_message *m = &r->out_msgs[i];
		if (m->to != to)
			continue;
		if (m->type == RAFT_MSG_APPEND && m->term == r->term &&
		    m->index + m->n_entries == prev)
			return m;
		return NULL;
	}
	return NULL;
}

/* Put entries prev+1..hi into m, the pending append ending at prev, and
 * carry the current commit index in it. False if out of memory (m is
 * unchanged). */
static bool extend_append(struct raft *r, struct raft_message *m, uint64_t prev,
			  uint64_t hi)
{
	size_t n = hi - prev;
	if (n > 0) {
		struct raft_entry *add = NULL, *v;
		if (mlog_share(&r->log, prev + 1, hi, &add) != 0)
			return false;
		v = realloc(m->entries, (m->n_entries + n) * sizeof(*v));
		if (!v) {
			mlog_entries_free(add, n);
			return false;
		}
		memcpy(v + m->n_entries, add, n * sizeof(*v));
		free(add); /* the entries moved into v */
		m->entries = v;
		m->n_entries += n;
	}
	m->commit = r->commit;
	return true;
}

/* A follower being replicated to gets at most one append per update where
 * they follow each other: a commit index learned from one ack, then
 * another, then new entries proposed make one message, not three (each
 * costs an encoding, a decoding and a step on the follower). */
void lead_send_append(struct raft *r, struct raft_progress *p, bool send_empty)
{
	assert(r->role == RAFT_LEADER);
	assert(p->next > p->match);
	if (p->id == r->id)
		return;
	switch (p->state) {
	case PROGRESS_SNAPSHOT:
		return;
	case PROGRESS_PROBE:
		if (p->probe_sent)
			return;
		break;
	case PROGRESS_REPLICATE:
		if (progress_inflight_full(p, r->opt.max_inflight))
			return;
		break;
	}
	uint64_t prev = p->next - 1;
	if (prev < r->log.snap_index) {
		/* §7: the entries it needs were compacted away. */
		send_snapshot(r, p);
		return;
	}
	uint64_t last = mlog_last_index(&r->log);
	uint64_t hi = prev;
	size_t bytes = 0;
	while (hi < last && hi - prev < r->opt.max_batch_entries) {
		size_t len = mlog_get(&r->log, hi + 1)->len;
		if (hi > prev && bytes + len > r->opt.max_batch_bytes)
			break;
		bytes += len;
		hi++;
	}
	if (hi == prev && !send_empty && p->state == PROGRESS_REPLICATE)
		return;
	if (p->state == PROGRESS_REPLICATE) {
		struct raft_message *pm = pending_append(r, p->id, prev);
		if (pm &&
		    pm->n_entries + (hi - prev) <= r->opt.max_batch_entries) {
			if (extend_append(r, pm, prev, hi) && hi > prev) {
				p->next = hi + 1;
				progress_inflight_add(p, hi);
			}
			return;
		}
	}
	struct raft_message *m = out_msg(r, RAFT_MSG_APPEND, p->id);
	if (!m)
		return;
	m->index = prev;
	m->log_term = mlog_term(&r->log, prev);
	m->commit = r->commit;
	if (mlog_share(&r->log, prev + 1, hi, &m->entries) != 0) {
		m->type = RAFT_MSG_NONE; /* dropped, like the network might */
		return;
	}
	m->n_entries = hi - prev;
	if (p->state == PROGRESS_REPLICATE) {
		if (hi > prev) {
			p->next = hi + 1;
			progress_inflight_add(p, hi);
		}
	} else {
		p->probe_sent = true;
		p->probe_bytes = bytes;
		p->stall = 0;
	}
}

void lead_bcast_append(struct raft *r)
{
	assert(r->role == RAFT_LEADER);
	for (size_t i = 0; i < r->n_prs; i++)
		lead_send_append(r, &r->prs[i], false);
}

void lead_bcast_commit(struct raft *r)
{
	assert(r->role == RAFT_LEADER);
	for (size_t i = 0; i < r->n_prs; i++)
		lead_send_append(r, &r->prs[i], true);
}

void lead_bcast_heartbeat(struct raft *r)
{
	assert(r->role == RAFT_LEADER);
	for (size_t i = 0; i < r->n_prs; i++) {
		struct raft_progress *p = &r->prs[i];
		if (p->id == r->id)
			continue;
		struct raft_message *m = out_msg(r, RAFT_MSG_HEARTBEAT, p->id);
		if (!m)
			continue;
		/* Only what the follower is known to have (etcd): a follower
		 * never commits an entry it might not hold. */
		m->commit = u64_min(p->match, r->commit);
		m->ctx = r->read_seq;
	}
}
