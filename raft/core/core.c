/* core.c - the core's entry points: lifetime, the event functions, message
 * dispatch by term (§5.1), and inspection.
 *
 * Every event runs to completion and leaves its effects in the pending
 * output (output.c: messages, reads, snapshot) or in the log (entries past
 * `unsaved`, committed entries past `applied`); raft_update_get moves all
 * of it to the caller at once. This file sits on top of the others: the
 * rules live in election.c, replication.c, transfer.c and readindex.c,
 * the role changes in convert.c, membership in membership.c. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "convert.h"
#include "election.h"
#include "leader.h"
#include "membership.h"
#include "output.h"
#include "raft_impl.h"
#include "readindex.h"
#include "replication.h"
#include "transfer.h"

int raft_new(const struct raft_options *opt, const struct raft_restore *rs,
	     struct raft **out)
{
	static const struct raft_restore empty;
	if (!rs)
		rs = &empty;
	*out = NULL;
	if (opt->id == RAFT_NONE)
		return RAFT_EINVAL;
	struct raft *r = calloc(1, sizeof(*r));
	if (!r)
		return RAFT_ENOMEM;
	r->opt = *opt;
	if (!r->opt.election_ticks)
		r->opt.election_ticks = 10;
	if (!r->opt.heartbeat_ticks)
		r->opt.heartbeat_ticks = 1;
	if (!r->opt.max_inflight)
		r->opt.max_inflight = 32;
	if (r->opt.max_inflight > RAFT_MAX_INFLIGHT)
		r->opt.max_inflight = RAFT_MAX_INFLIGHT;
	if (!r->opt.max_batch_entries)
		r->opt.max_batch_entries = 256;
	if (!r->opt.max_batch_bytes)
		r->opt.max_batch_bytes = 1u << 20;
	if (!r->opt.resend_bytes_per_heartbeat)
		r->opt.resend_bytes_per_heartbeat = 4u << 20;
	int rc = RAFT_EINVAL;
	if (r->opt.heartbeat_ticks >= r->opt.election_ticks ||
	    rs->snapshot.conf.n > RAFT_MAX_SERVERS)
		goto err_free;
	r->id = opt->id;
	r->rng = opt->seed ^ (opt->id * 0x9e3779b97f4a7c15ull);
	r->term = rs->term;
	r->vote = rs->vote;
	r->abstain_until = rs->abstain_until;
	mlog_init(&r->log, rs->snapshot.index, rs->snapshot.term);
	for (size_t i = 0; i < rs->n_entries; i++) {
		const struct raft_entry *e = &rs->entries[i];
		rc = RAFT_EINVAL;
		if (e->index != mlog_last_index(&r->log) + 1 ||
		    e->term < mlog_last_term(&r->log) || e->term > r->term)
			goto err_log;
		rc = mlog_append(&r->log, e);
		if (rc)
			goto err_log;
	}
	rc = RAFT_EINVAL;
	uint64_t applied =
	    rs->applied > rs->snapshot.index ? rs->applied : rs->snapshot.index;
	if (applied > mlog_last_index(&r->log))
		goto err_log;
	r->snap_conf = rs->snapshot.conf;
	r->conf_index = UINT64_MAX; /* force memb_set_conf */
	memb_conf_refresh(r);
	r->commit = r->applied = applied;
	r->persisted = mlog_last_index(&r->log);
	r->unsaved = r->persisted + 1;
	conv_become_follower(r, r->term, RAFT_NONE);
	*out = r;
	return 0;
err_log:
	mlog_close(&r->log);
err_free:
	free(r);
	return rc;
}

void raft_free(struct raft *r)
{
	if (!r)
		return;
	mlog_close(&r->log);
	free(r->reads);
	out_close(r);
	free(r);
}

void raft_tick(struct raft *r)
{
	if (r->role == RAFT_LEADER)
		repl_tick(r);
	else
		elect_tick(r);
}

static bool from_leader(enum raft_msg_type t)
{
	return t == RAFT_MSG_APPEND || t == RAFT_MSG_HEARTBEAT ||
	       t == RAFT_MSG_SNAPSHOT;
}

/* §5.1: terms order everything. Adopt a higher term (stepping down), or
 * answer a stale one so its sender learns ours. True if m is still to be
 * handled in our (possibly new) term. */
static bool step_term(struct raft *r, const struct raft_message *m)
{
	if (m->term > r->term) {
		bool vote =
		    m->type == RAFT_MSG_VOTE || m->type == RAFT_MSG_PREVOTE;
		/* The lease (§9.6 diss., §4.2.3): while we hear from a leader,
		 * a disruptive server cannot make us change term. */
		if (vote && !m->transfer && elect_in_lease(r))
			return false;
		if (m->type == RAFT_MSG_PREVOTE ||
		    (m->type == RAFT_MSG_PREVOTE_RESP && !m->reject)) {
			/* Pre-vote never changes anyone's term. */
		} else {
			conv_become_follower(r, m->term,
					     from_leader(m->type) ? m->from
								  : RAFT_NONE);
		}
	} else if (m->term < r->term) {
		/* §5.1: "If a server receives a request with a stale term
		 * number, it rejects the request." A stale leader learns our
		 * term from the answer and steps down. */
		if (from_leader(m->type) || m->type == RAFT_MSG_PREVOTE) {
			struct raft_message *resp = out_msg(
			    r,
			    m->type == RAFT_MSG_PREVOTE ? RAFT_MSG_PREVOTE_RESP
							: RAFT_MSG_APPEND_RESP,
			    m->from);
			if (resp)
				resp->reject = m->type == RAFT_MSG_PREVOTE;
		}
		return false;
	}
	return true;
}

/* A message from the leader of our term: there is one leader per term, so
 * a leader drops it; anyone else follows the sender. */
static void step_from_leader(struct raft *r, const struct raft_message *m)
{
	if (r->role == RAFT_LEADER)
		return;
	if (r->role != RAFT_FOLLOWER)
		conv_become_follower(r, m->term, m->from);
	/* §5.2 "If election timeout elapses without receiving AppendEntries
	 * RPC from current leader": reset it. */
	r->leader = m->from;
	r->election_elapsed = 0;
	if (m->type == RAFT_MSG_APPEND)
		repl_step_append(r, m);
	else if (m->type == RAFT_MSG_HEARTBEAT)
		repl_step_heartbeat(r, m);
	else
		repl_step_snapshot(r, m);
}

int raft_step(struct raft *r, const struct raft_message *m)
{
	if (m->to != r->id || m->from == RAFT_NONE || m->from == r->id)
		return 0;
	if (m->type == RAFT_MSG_PROPOSE || m->type == RAFT_MSG_PROPOSE_RESP)
		return 0; /* the node layer's (raft.h) */
	if (!step_term(r, m))
		return 0;
	switch (m->type) {
	case RAFT_MSG_VOTE:
	case RAFT_MSG_PREVOTE:
		elect_step_vote(r, m);
		break;
	case RAFT_MSG_VOTE_RESP:
	case RAFT_MSG_PREVOTE_RESP:
		elect_step_vote_resp(r, m);
		break;
	case RAFT_MSG_APPEND:
	case RAFT_MSG_HEARTBEAT:
	case RAFT_MSG_SNAPSHOT:
		step_from_leader(r, m);
		break;
	case RAFT_MSG_APPEND_RESP:
		if (r->role == RAFT_LEADER)
			repl_step_append_resp(r, m);
		break;
	case RAFT_MSG_HEARTBEAT_RESP:
		if (r->role == RAFT_LEADER)
			repl_step_heartbeat_resp(r, m);
		break;
	case RAFT_MSG_READ_INDEX:
		ri_request(r, m->ctx, m->from);
		break;
	case RAFT_MSG_READ_INDEX_RESP:
		ri_step_resp(r, m);
		break;
	case RAFT_MSG_TIMEOUT_NOW:
		/* §3.10 diss.: start an election at once, skipping the
		 * pre-vote, with the transfer flag to get past leases. */
		if (r->role != RAFT_LEADER)
			elect_campaign(r, false, true);
		break;
	default:
		break;
	}
	return 0;
}

int raft_propose(struct raft *r, enum raft_entry_type type, const void *data,
		 size_t len, uint64_t *index, uint64_t *term)
{
	struct raft_entry e = {.type = type, .data = (void *)data, .len = len};
	return raft_propose_entry(r, &e, index, term);
}

int raft_propose_entry(struct raft *r, const struct raft_entry *e,
		       uint64_t *index, uint64_t *term)
{
	if (r->role != RAFT_LEADER)
		return RAFT_ENOTLEADER;
	if (e->type != RAFT_ENTRY_NORMAL && e->type != RAFT_ENTRY_NOOP)
		return RAFT_EINVAL;
	if (e->len && !e->data)
		return RAFT_EINVAL;
	if (r->transferee != RAFT_NONE)
		return RAFT_EBUSY;
	int rc = lead_append_entry(r, e);
	if (rc)
		return rc;
	if (index)
		*index = mlog_last_index(&r->log);
	if (term)
		*term = r->term;
	lead_bcast_append(r);
	/* Alone: durable is committed, once persisted. */
	return 0;
}

void raft_persisted(struct raft *r, uint64_t index, uint64_t term)
{
	if (index <= r->persisted || index > mlog_last_index(&r->log) ||
	    index < r->log.snap_index || mlog_term(&r->log, index) != term)
		return;
	r->persisted = index;
	if (r->role == RAFT_LEADER) {
		struct raft_progress *self = memb_progress(r, r->id);
		if (self)
			progress_update(self, index);
		if (repl_maybe_commit(r))
			lead_bcast_commit(r);
	} else if (r->verified > 0) {
		repl_ack(r);
	}
}

int raft_read_index(struct raft *r, uint64_t ctx)
{
	if (r->role == RAFT_LEADER) {
		ri_request(r, ctx, r->id);
		return 0;
	}
	if (r->leader == RAFT_NONE)
		return RAFT_ENOTLEADER;
	struct raft_message *m = out_msg(r, RAFT_MSG_READ_INDEX, r->leader);
	if (!m)
		return RAFT_ENOMEM;
	m->ctx = ctx;
	return 0;
}

bool raft_read_is_local(const struct raft *r)
{
	return r->role == RAFT_LEADER && r->conf_index <= r->commit &&
	       memb_quorum(r) == 1 && memb_is_voter(r, r->id) &&
	       lead_committed_in_term(r);
}

bool raft_read_by_asker(const struct raft *r)
{
	return r->role == RAFT_LEADER && r->conf_index <= r->commit &&
	       memb_quorum(r) == 2 && memb_is_voter(r, r->id) &&
	       lead_committed_in_term(r);
}

int raft_transfer_leadership(struct raft *r, uint64_t id)
{
	if (r->role != RAFT_LEADER)
		return RAFT_ENOTLEADER;
	if (id == RAFT_NONE) {
		if (r->transferee != RAFT_NONE)
			return 0; /* one is under way: that is the one */
		id = xfer_pick(r);
		if (id == RAFT_NONE)
			return RAFT_EINVAL;
	}
	if (id == r->id)
		return r->transferee == RAFT_NONE ? 0 : RAFT_EBUSY;
	if (!memb_is_voter(r, id))
		return RAFT_EINVAL;
	if (r->transferee == id)
		return 0;
	if (r->transferee != RAFT_NONE)
		return RAFT_EBUSY;
	xfer_start(r, id);
	return 0;
}

uint64_t raft_transferee(const struct raft *r)
{
	return r->role == RAFT_LEADER ? r->transferee : RAFT_NONE;
}

void raft_set_candidacy(struct raft *r, bool may)
{
	r->no_candidacy = !may;
	/* a round under way ends here; a leader starts handing over at its
	 * next tick (transfer.c) */
	if (!may &&
	    (r->role == RAFT_CANDIDATE || r->role == RAFT_PRE_CANDIDATE))
		conv_become_follower(r, r->term, RAFT_NONE);
}

bool raft_candidacy(const struct raft *r)
{
	return !r->no_candidacy;
}

int raft_change_membership(struct raft *r, enum raft_conf_op op, uint64_t id,
			   const char *addr, uint64_t *index)
{
	if (r->role != RAFT_LEADER)
		return RAFT_ENOTLEADER;
	/* §4.1 diss.: one change at a time, and (the fix of the single-server
	 * bug) only once an entry of this term is committed. */
	if (r->transferee != RAFT_NONE || r->conf_index > r->commit ||
	    !lead_committed_in_term(r))
		return RAFT_EBUSY;
	struct raft_config c;
	int rc = memb_conf_change(&r->conf, op, id, addr, &c);
	if (rc)
		return rc;
	char buf[RAFT_MAX_SERVERS * (RAFT_ADDR_MAX + 32) + 16];
	int len = raft_config_encode(&c, buf, sizeof(buf));
	if (len < 0 || (size_t)len >= sizeof(buf))
		return RAFT_EINVAL;
	rc = lead_append(r, RAFT_ENTRY_CONFIG, buf, (size_t)len);
	if (rc)
		return rc;
	if (index)
		*index = mlog_last_index(&r->log);
	lead_bcast_append(r);
	return 0;
}

int raft_compact(struct raft *r, uint64_t index)
{
	if (index <= r->log.snap_index || index > r->applied)
		return RAFT_EINVAL;
	struct raft_config c;
	memb_conf_at(r, index, &c);
	mlog_compact(&r->log, index);
	r->snap_conf = c;
	return 0;
}

int raft_log_own(struct raft *r, const struct raft_buf *b)
{
	return mlog_own(&r->log, b) ? RAFT_ENOMEM : 0;
}

uint64_t raft_trail_cut(const struct raft *r, uint64_t keep_entries,
			uint64_t keep_bytes, uint64_t *drop_bytes)
{
	return mlog_trail_cut(&r->log, r->applied, keep_entries, keep_bytes,
			      drop_bytes);
}

int raft_snapshot_meta(const struct raft *r, uint64_t index,
		       struct raft_snapshot_meta *out)
{
	if (index < r->log.snap_index || index > r->applied)
		return RAFT_EINVAL;
	out->index = index;
	out->term = mlog_term(&r->log, index);
	memb_conf_at(r, index, &out->conf);
	return 0;
}

uint64_t raft_log_bytes(const struct raft *r)
{
	return r->log.bytes;
}

void raft_snapshot_done(struct raft *r, uint64_t id, bool ok)
{
	if (r->role != RAFT_LEADER)
		return;
	struct raft_progress *p = memb_progress(r, id);
	if (!p || p->state != PROGRESS_SNAPSHOT)
		return;
	if (ok) {
		progress_become_probe(p); /* next = snapshot + 1 */
		p->probe_sent = true;	  /* wait for its answer */
	} else {
		/* Retry only once the follower answers a heartbeat (etcd does
		 * the same): a dead follower gets no snapshot storm. */
		p->pending_snapshot = 0;
		progress_become_probe(p);
		p->probe_sent = true;
	}
}

enum raft_role raft_role(const struct raft *r)
{
	return r->role;
}

uint64_t raft_id(const struct raft *r)
{
	return r->id;
}

uint64_t raft_term(const struct raft *r)
{
	return r->term;
}

uint64_t raft_leader(const struct raft *r)
{
	return r->leader;
}

uint64_t raft_commit_index(const struct raft *r)
{
	return r->commit;
}

uint64_t raft_last_index(const struct raft *r)
{
	return mlog_last_index(&r->log);
}

uint64_t raft_snapshot_index(const struct raft *r)
{
	return r->log.snap_index;
}

uint64_t raft_term_at(const struct raft *r, uint64_t index)
{
	return index > r->log.snap_index ? mlog_term(&r->log, index) : 0;
}

const struct raft_config *raft_config(const struct raft *r)
{
	return &r->conf;
}

int raft_progress(const struct raft *r, uint64_t id,
		  struct raft_progress_info *out)
{
	if (r->role != RAFT_LEADER)
		return RAFT_ENOTLEADER;
	for (size_t i = 0; i < r->n_prs; i++) {
		const struct raft_progress *p = &r->prs[i];
		if (p->id != id)
			continue;
		out->match = p->match;
		out->next = p->next;
		out->inflight = p->in_count;
		out->recent_active = p->recent_active;
		out->snapshot = p->state == PROGRESS_SNAPSHOT;
		return 0;
	}
	return RAFT_EINVAL;
}
