/* replication.c - log replication (§5.3), commitment (§5.4.2), heartbeats,
 * check-quorum and snapshots on the wire (§7).
 *
 * The leader keeps a progress per follower (progress.c) and sends appends
 * from its in-memory log, batched and bounded in flight; rejections carry a
 * conflict hint so the leader skips a whole term per round trip. Followers
 * acknowledge an index only once it is both durable here (raft_persisted)
 * and known to match the current leader's log, so acknowledgements can be
 * generated asynchronously after the write. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "raft_impl.h"

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

void leader_tick(struct raft *r)
{
	r->heartbeat_elapsed++;
	r->election_elapsed++;
	if (r->election_elapsed >= r->opt.election_ticks) {
		r->election_elapsed = 0;
		if (!r->opt.disable_check_quorum) {
			/* Check-quorum (§6.2 diss.): a leader that did not
			 * hear from a quorum in an election timeout steps
			 * down, so clients of a partitioned leader fail
			 * fast and the lease of the others stays sound. */
			uint64_t active = 0;
			for (size_t i = 0; i < r->n_prs; i++) {
				struct raft_progress *p = &r->prs[i];
				if (raft_is_voter(r, p->id) &&
				    (p->id == r->id || p->recent_active))
					active++;
				if (p->id != r->id)
					p->recent_active = false;
			}
			if (active < raft_quorum(r)) {
				become_follower(r, r->term, RAFT_NONE);
				return;
			}
		}
		r->transferee = RAFT_NONE; /* a transfer that took too long */
	}
	if (r->heartbeat_elapsed >= r->opt.heartbeat_ticks) {
		r->heartbeat_elapsed = 0;
		bcast_heartbeat(r);
	}
}

/* §5.3/§5.4.2 Figure 2 Leaders: "If there exists an N such that N >
 * commitIndex, a majority of matchIndex[i] >= N, and log[N].term ==
 * currentTerm: set commitIndex = N". The leader's own match counts only
 * once its entries are durable (raft_persisted). */
bool maybe_commit(struct raft *r)
{
	uint64_t m[RAFT_MAX_SERVERS];
	unsigned n = 0;
	for (size_t i = 0; i < r->n_prs; i++)
		if (raft_is_voter(r, r->prs[i].id))
			m[n++] = r->prs[i].match;
	if (n == 0)
		return false;
	/* Sort descending (n <= 16). */
	for (unsigned i = 1; i < n; i++)
		for (unsigned j = i; j > 0 && m[j] > m[j - 1]; j--) {
			uint64_t t = m[j];
			m[j] = m[j - 1];
			m[j - 1] = t;
		}
	uint64_t q = raft_quorum(r);
	uint64_t idx = m[q - 1];
	if (idx <= r->commit || mlog_term(&r->log, idx) != r->term)
		return false;
	r->commit = idx;
	readindex_on_commit(r);
	/* §4.2.2 diss.: a leader removed from the configuration steps down
	 * once the change is committed. */
	if (!raft_is_voter(r, r->id) && r->commit >= r->conf_index) {
		bcast_append_commit(r);
		become_follower(r, r->term, RAFT_NONE);
		return false;
	}
	return true;
}

void follower_ack(struct raft *r)
{
	if (r->role != RAFT_FOLLOWER || r->leader == RAFT_NONE)
		return;
	struct raft_message *m =
	    raft_msg_new(r, RAFT_MSG_APPEND_RESP, r->leader);
	if (m)
		m->index = min_u64(r->persisted, r->verified);
}

static void reject_append(struct raft *r, const struct raft_message *m)
{
	/* §5.3 optimization: tell the leader where our log could match: the
	 * last index at or before prev whose term is <= the leader's term at
	 * prev, so it skips a whole conflicting term at once. */
	uint64_t hint = min_u64(m->index, mlog_last_index(&r->log));
	hint = mlog_find_conflict_by_term(&r->log, hint, m->log_term);
	struct raft_message *resp =
	    raft_msg_new(r, RAFT_MSG_APPEND_RESP, m->from);
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
void follower_step_append(struct raft *r, const struct raft_message *m)
{
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
			r->verified = max_u64(r->verified, r->commit);
			follower_ack(r);
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
		if (ents[i].index != idx)
			break; /* malformed */
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
		raft_conf_refresh(r);
	r->verified = max_u64(r->verified, last_new);
	uint64_t c = min_u64(m->commit, last_new);
	if (c > r->commit)
		r->commit = c;
	/* Acknowledge now if all of it is durable already, else when
	 * raft_persisted says so. */
	if (min_u64(r->persisted, r->verified) >= last_new)
		follower_ack(r);
}

void follower_step_heartbeat(struct raft *r, const struct raft_message *m)
{
	uint64_t c = min_u64(m->commit, mlog_last_index(&r->log));
	if (c > r->commit)
		r->commit = c;
	struct raft_message *resp =
	    raft_msg_new(r, RAFT_MSG_HEARTBEAT_RESP, m->from);
	if (resp) {
		resp->ctx = m->ctx;
		/* where our log ends: a leader that believes we hold more
		 * learns that we lost it (leader_step_heartbeat_resp) */
		resp->index = mlog_last_index(&r->log);
	}
}

/* §7 InstallSnapshot receiver: "If existing log entry has same index and
 * term as snapshot's last included entry, retain log entries following it
 * and reply. Discard the entire log. Reset state machine using snapshot
 * contents". The reply waits until the caller installed it
 * (raft_persisted(snapshot.index, snapshot.term)). */
void follower_step_snapshot(struct raft *r, const struct raft_message *m)
{
	const struct raft_snapshot_meta *s = &m->snapshot;
	if (s->index <= r->commit) {
		r->verified = max_u64(r->verified, r->commit);
		follower_ack(r);
		return;
	}
	if (mlog_term(&r->log, s->index) == s->term) {
		r->commit = s->index;
		r->verified = max_u64(r->verified, s->index);
		if (r->persisted >= s->index)
			follower_ack(r);
		return;
	}
	r->persisted = min_u64(r->persisted, r->commit);
	mlog_reset(&r->log, s->index, s->term);
	r->snap_conf = s->conf;
	raft_conf_refresh(r);
	r->commit = r->applied = s->index;
	r->verified = s->index;
	r->unsaved = s->index + 1;
	r->out_has_snapshot = true;
	r->out_snapshot = *s;
}

void leader_step_append_resp(struct raft *r, const struct raft_message *m)
{
	struct raft_progress *p = raft_pr(r, m->from);
	if (!p || p->id == r->id)
		return;
	p->recent_active = true;
	if (m->reject) {
		uint64_t hint = m->hint_index;
		if (m->hint_term > 0)
			hint = mlog_find_conflict_by_term(&r->log, hint,
							  m->hint_term);
		if (progress_decr(p, m->index, hint)) {
			if (p->state == PROGRESS_REPLICATE)
				progress_become_probe(p);
			send_append(r, p, true);
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
		if (maybe_commit(r))
			bcast_append_commit(r);
		else if (r->role == RAFT_LEADER)
			send_append(r, p, false);
		if (r->role == RAFT_LEADER && r->transferee == p->id &&
		    p->match == mlog_last_index(&r->log))
			raft_msg_new(r, RAFT_MSG_TIMEOUT_NOW, p->id);
	} else if (p->state == PROGRESS_PROBE) {
		p->probe_sent = false;
		send_append(r, p, false);
	}
}

void leader_step_heartbeat_resp(struct raft *r, const struct raft_message *m)
{
	struct raft_progress *p = raft_pr(r, m->from);
	if (!p || p->id == r->id)
		return;
	p->recent_active = true;
	p->probe_sent = false;
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
		if (p->state == PROGRESS_REPLICATE && ++p->stall >= 3) {
			p->stall = 0;
			progress_become_probe(p);
		}
		send_append(r, p, false);
	} else {
		p->stall = 0;
	}
	if (m->ctx > p->read_ack) {
		p->read_ack = m->ctx;
		readindex_on_ack(r);
	}
}
