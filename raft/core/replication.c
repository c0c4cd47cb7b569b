/* replication.c - the rules of log replication (§5.3), commitment
 * (§5.4.2), heartbeats, check-quorum and snapshots (§7), on both sides.
 *
 * The leader keeps a progress per follower (progress.c) and sends from its
 * in-memory log (leader.c); rejections carry a conflict hint so the leader
 * skips a whole term per round trip. Followers acknowledge an index only
 * once it is both durable here (raft_persisted) and known to match the
 * current leader's log, so acknowledgements can be generated
 * asynchronously after the write. */
#include <assert.h>

#include "convert.h"
#include "leader.h"
#include "membership.h"
#include "output.h"
#include "raft_impl.h"
#include "readindex.h"
#include "replication.h"
#include "transfer.h"

/* Check-quorum (§6.2 diss.): did a quorum of voters answer us in the last
 * election timeout? Starts the next period. */
static bool heard_from_quorum(struct raft *r)
{
	uint64_t active = 0;
	for (size_t i = 0; i < r->n_prs; i++) {
		struct raft_progress *p = &r->prs[i];
		if (memb_is_voter(r, p->id) &&
		    (p->id == r->id || p->recent_active))
			active++;
		if (p->id != r->id)
			p->recent_active = false;
	}
	return active >= memb_quorum(r);
}

void repl_tick(struct raft *r)
{
	assert(r->role == RAFT_LEADER);
	r->heartbeat_elapsed++;
	r->election_elapsed++;
	for (size_t i = 0; i < r->n_prs; i++)
		if (r->prs[i].quiet != (unsigned)-1)
			r->prs[i].quiet++;
	if (r->election_elapsed >= r->opt.election_ticks) {
		r->election_elapsed = 0;
		/* A leader that did not hear from a quorum steps down, so
		 * clients of a partitioned leader fail fast and the lease of
		 * the others stays sound. */
		if (!r->opt.disable_check_quorum && !heard_from_quorum(r)) {
			conv_become_follower(r, r->term, RAFT_NONE);
			return;
		}
	}
	xfer_tick(r);
	if (r->role != RAFT_LEADER)
		return;
	if (r->heartbeat_elapsed >= r->opt.heartbeat_ticks) {
		r->heartbeat_elapsed = 0;
		lead_bcast_heartbeat(r);
	}
}

/* matchIndex[i]; the leader's own match counts only once its entries are
 * durable (raft_persisted). */
static uint64_t match_of(const struct raft *r, const struct raft_progress *p)
{
	(void)r;
	return p->match;
}

bool repl_maybe_commit(struct raft *r)
{
	assert(r->role == RAFT_LEADER);
	uint64_t idx = memb_quorum_value(r, match_of);
	if (idx <= r->commit || mlog_term(&r->log, idx) != r->term)
		return false;
	r->commit = idx;
	ri_advance(r);
	/* §4.2.2 diss.: a leader removed from the configuration steps down
	 * once the change is committed. */
	if (!memb_is_voter(r, r->id) && r->commit >= r->conf_index) {
		lead_bcast_commit(r);
		conv_become_follower(r, r->term, RAFT_NONE);
		return false;
	}
	return true;
}

void repl_ack(struct raft *r)
{
	if (r->role != RAFT_FOLLOWER || r->leader == RAFT_NONE)
		return;
	struct raft_message *m = out_msg(r, RAFT_MSG_APPEND_RESP, r->leader);
	if (m)
		m->index = u64_min(r->persisted, r->verified);
}

static void reject_append(struct raft *r, const struct raft_message *m)
{
	/* §5.3 optimization: tell the leader where our log could match: the
	 * last index at or before prev whose term is <= the leader's term at
	 * prev, so it skips a whole conflicting term at once. */
	uint64_t hint = u64_min(m->index, mlog_last_index(&r->log));
	hint = mlog_find_conflict_by_term(&r->log, hint, m->log_term);
	struct raft_message *resp = out_msg(r, RAFT_MSG_APPEND_RESP, m->from);
	if (!resp)
		return;
	resp->reject = true;
	resp->index = m->index;
	resp->hint_index = hint;
	resp->hint_term = mlog_term(&r->log, hint);
}

/* Figure 2 AppendEntries receiver (m->term == r->term, sender is leader):
 * "2. Reply false if log doesn't contain an entry at prevLogIndex whose term
 * matches prevLogTerm. 3. If an existing entry conflicts with a new one
 * (same index but different terms), delete the existing entry and all that
 * follow it. 4. Append any new entries not already in the log. 5. If
 * leaderCommit > commitIndex, set commitIndex = min(leaderCommit, index of
 * last new entry)". */
/* core.c hands a follower only its leader's messages of its term. */
static void assert_from_leader(const struct raft *r,
			       const struct raft_message *m)
{
	assert(r->role == RAFT_FOLLOWER && r->leader == m->from);
	assert(m->term == r->term);
	(void)r;
	(void)m;
}

void repl_step_append(struct raft *r, const struct raft_message *m)
{
	assert_from_leader(r, m);
	uint64_t prev = m->index;
	uint64_t prev_term = m->log_term;
	const struct raft_entry *ents = m->entries;
	size_t n = m->n_entries;
	if (prev < r->commit) {
		/* Committed entries are in every later leader's log (§5.4.3
		 * leader completeness): skip them; this also keeps us off
		 * compacted indexes. */
		uint64_t skip = r->commit - prev;
		if (skip >= n) {
			r->verified = u64_max(r->verified, r->commit);
			repl_ack(r);
			return;
		}
		prev_term = ents[skip - 1].term;
		ents += skip;
		n -= skip;
		prev = r->commit;
	}
	if (prev > mlog_last_index(&r->log) ||
	    mlog_term(&r->log, prev) != prev_term) {
		reject_append(r, m);
		return;
	}
	bool conf_changed = false;
	uint64_t last_new = prev;
	for (size_t i = 0; i < n; i++) {
		uint64_t idx = prev + 1 + i;
		uint64_t before = i ? ents[i - 1].term : prev_term;
		/* Malformed (no leader sends it): the rest is dropped. */
		if (ents[i].index != idx || ents[i].term < before ||
		    ents[i].term > m->term)
			break;
		if (idx <= mlog_last_index(&r->log)) {
			if (mlog_term(&r->log, idx) == ents[i].term) {
				last_new = idx;
				continue;
			}
			if (idx <= r->commit)
				break; /* never drop a committed entry */
			if (r->conf_index >= idx)
				conf_changed = true;
			mlog_truncate(&r->log, idx);
			if (r->unsaved > idx)
				r->unsaved = idx;
			if (r->persisted >= idx)
				r->persisted = idx - 1;
		}
		if (mlog_append(&r->log, &ents[i]) != 0)
			break;
		if (ents[i].type == RAFT_ENTRY_CONFIG)
			conf_changed = true;
		last_new = idx;
	}
	if (conf_changed)
		memb_conf_refresh(r);
	r->verified = u64_max(r->verified, last_new);
	uint64_t c = u64_min(m->commit, last_new);
	if (c > r->commit)
		r->commit = c;
	/* Acknowledge now if all of it is durable already, else when
	 * raft_persisted says so. */
	if (u64_min(r->persisted, r->verified) >= last_new)
		repl_ack(r);
}

void repl_step_heartbeat(struct raft *r, const struct raft_message *m)
{
	assert_from_leader(r, m);
	uint64_t c = u64_min(m->commit, mlog_last_index(&r->log));
	if (c > r->commit)
		r->commit = c;
	struct raft_message *resp =
	    out_msg(r, RAFT_MSG_HEARTBEAT_RESP, m->from);
	if (resp) {
		resp->ctx = m->ctx;
		/* where our log ends: a leader that believes we hold more
		 * learns that we lost it (repl_step_heartbeat_resp) */
		resp->index = mlog_last_index(&r->log);
	}
}

/* §7 InstallSnapshot receiver: "If existing log entry has same index and
 * term as snapshot's last included entry, retain log entries following it
 * and reply. Discard the entire log. Reset state machine using snapshot
 * contents". The reply waits until the caller installed it
 * (raft_persisted(snapshot.index, snapshot.term)). */
void repl_step_snapshot(struct raft *r, const struct raft_message *m)
{
	assert_from_leader(r, m);
	const struct raft_snapshot_meta *s = &m->snapshot;
	if (s->conf.n > RAFT_MAX_SERVERS)
		return; /* malformed: dropped */
	if (s->index <= r->commit) {
		r->verified = u64_max(r->verified, r->commit);
		repl_ack(r);
		return;
	}
	if (mlog_term(&r->log, s->index) == s->term) {
		r->commit = s->index;
		r->verified = u64_max(r->verified, s->index);
		if (r->persisted >= s->index)
			repl_ack(r);
		return;
	}
	r->persisted = u64_min(r->persisted, r->commit);
	mlog_reset(&r->log, s->index, s->term);
	r->snap_conf = s->conf;
	memb_conf_refresh(r);
	r->commit = r->applied = s->index;
	r->verified = s->index;
	r->unsaved = s->index + 1;
	r->out_has_snapshot = true;
	r->out_snapshot = *s;
}

void repl_step_append_resp(struct raft *r, const struct raft_message *m)
{
	assert(r->role == RAFT_LEADER && m->term == r->term);
	struct raft_progress *p = memb_progress(r, m->from);
	if (!p || p->id == r->id)
		return;
	p->recent_active = true;
	p->quiet = 0;
	if (m->reject) {
		uint64_t hint = m->hint_index;
		if (m->hint_term > 0)
			hint = mlog_find_conflict_by_term(&r->log, hint,
							  m->hint_term);
		if (progress_decr(p, m->index, hint)) {
			if (p->state == PROGRESS_REPLICATE)
				progress_become_probe(p);
			lead_send_append(r, p, true);
		}
		return;
	}
	if (progress_update(p, m->index)) {
		p->stall = 0;
		if (p->state == PROGRESS_PROBE)
			progress_become_replicate(p);
		else if (p->state == PROGRESS_SNAPSHOT &&
			 p->match >= p->pending_snapshot)
			progress_become_replicate(p);
		else
			progress_inflight_free_to(p, p->match);
		if (repl_maybe_commit(r))
			lead_bcast_commit(r);
		else if (r->role == RAFT_LEADER)
			lead_send_append(r, p, false);
		if (r->role == RAFT_LEADER)
			xfer_on_progress(r, p);
	} else if (p->state == PROGRESS_PROBE) {
		/* Accepted, but not durable there yet (a follower whose disk
		 * is full acknowledges only what it persisted): it answers
		 * again when it is. Sending again now would ping-pong at
		 * network speed; the next heartbeat's answer resends. */
		p->probe_sent = false;
	}
}

/* Heartbeats more to wait for an append of bytes entry bytes before it
 * counts as lost: the time the follower needs to take it
 * (opt.resend_bytes_per_heartbeat), so that a big entry still on its way
 * is not resent behind itself (each resend costs as much again on both
 * sides). */
static unsigned patience(const struct raft *r, size_t bytes)
{
	size_t extra = bytes / r->opt.resend_bytes_per_heartbeat;
	return extra > 1000 ? 1000 : (unsigned)extra;
}

/* Entry bytes sent to p and not acknowledged: (match, next). Summed up to
 * a bound past which patience is at its cap anyway. */
static size_t unacked_bytes(const struct raft *r, const struct raft_progress *p)
{
	size_t bytes = 0, cap = 1000 * r->opt.resend_bytes_per_heartbeat;
	for (uint64_t i = p->match + 1; i < p->next && bytes < cap; i++) {
		const struct raft_entry *e = mlog_get(&r->log, i);
		if (!e)
			break;
		bytes += e->len;
	}
	return bytes;
}

void repl_step_heartbeat_resp(struct raft *r, const struct raft_message *m)
{
	assert(r->role == RAFT_LEADER && m->term == r->term);
	struct raft_progress *p = memb_progress(r, m->from);
	if (!p || p->id == r->id)
		return;
	p->recent_active = true;
	p->quiet = 0;
	/* PROBE: the append out is given up, and sent again below, at this
	 * answer for a small one, after as many more as its size needs for
	 * a big one */
	if (p->state == PROGRESS_PROBE && p->probe_sent &&
	    ++p->stall > patience(r, p->probe_bytes)) {
		p->probe_sent = false;
		p->stall = 0;
	} else if (p->state != PROGRESS_PROBE) {
		p->probe_sent = false;
	}
	if (m->index < p->match) {
		/* The follower's log ends before what it acknowledged: it
		 * lost its log (a wiped data directory, restarted with the
		 * same id) and nothing else will tell us when no entries are
		 * flowing. Start over from what it has: this lowers no commit
		 * index, it only resends. */
		p->match = m->index;
		progress_become_probe(p);
	}
	if (p->match < mlog_last_index(&r->log)) {
		/* Appends lost in REPLICATE leave next past the follower's
		 * log with nothing acknowledged: after a few heartbeats with
		 * no progress, probe again from match. */
		if (p->state == PROGRESS_REPLICATE &&
		    ++p->stall >= 3 + patience(r, unacked_bytes(r, p))) {
			p->stall = 0;
			progress_become_probe(p);
		}
		lead_send_append(r, p, false);
	} else if (p->state != PROGRESS_PROBE) {
		p->stall = 0;
		xfer_on_progress(r, p); /* the TimeoutNow may have been lost */
	}
	if (m->ctx > p->read_ack) {
		p->read_ack = m->ctx;
		ri_advance(r);
	}
}
