/* output.c - what the core hands out: the messages and read answers that
 * events leave behind, and the struct raft_update that carries them away.
 *
 * Events append to growable arrays in struct raft (out_msgs, out_reads);
 * raft_update_get moves those arrays, the entries past `unsaved` and the
 * committed entries past `applied` to the caller in one piece, so an event
 * never waits for the caller. A message that cannot be allocated is
 * dropped, as the network may drop it. */
#include <stdlib.h>
#include <string.h>

#include "output.h"
#include "raft_impl.h"

struct raft_message *out_msg(struct raft *r, enum raft_msg_type t, uint64_t to)
{
	if (r->n_out_msgs == r->cap_out_msgs) {
		size_t cap = r->cap_out_msgs ? r->cap_out_msgs * 2 : 16;
		struct raft_message *p = realloc(r->out_msgs, cap * sizeof(*p));
		if (!p)
			return NULL; /* dropped, as a network may */
		r->out_msgs = p;
		r->cap_out_msgs = cap;
	}
	struct raft_message *m = &r->out_msgs[r->n_out_msgs++];
	memset(m, 0, sizeof(*m));
	m->type = t;
	m->from = r->id;
	m->to = to;
	m->term = r->term;
	return m;
}

int out_read(struct raft *r, uint64_t ctx, uint64_t index, int err)
{
	if (r->n_out_reads == r->cap_out_reads) {
		size_t cap = r->cap_out_reads ? r->cap_out_reads * 2 : 16;
		struct raft_read *p = realloc(r->out_reads, cap * sizeof(*p));
		if (!p)
			return RAFT_ENOMEM;
		r->out_reads = p;
		r->cap_out_reads = cap;
	}
	r->out_reads[r->n_out_reads++] =
	    (struct raft_read){.ctx = ctx, .index = index, .err = err};
	return 0;
}

void out_close(struct raft *r)
{
	for (size_t i = 0; i < r->n_out_msgs; i++)
		raft_message_clear(&r->out_msgs[i]);
	free(r->out_msgs);
	free(r->out_reads);
	r->out_msgs = NULL;
	r->out_reads = NULL;
	r->n_out_msgs = r->cap_out_msgs = 0;
	r->n_out_reads = r->cap_out_reads = 0;
}

/* Committed entries are applied only once durable here too (raft.h step
 * 5): a follower may learn a commit index ahead of its own sync. */
static uint64_t apply_limit(const struct raft *r)
{
	return u64_min(r->commit, r->persisted);
}

bool raft_has_update(const struct raft *r)
{
	return r->hs_dirty || r->out_has_snapshot || r->n_out_msgs ||
	       r->n_out_reads || r->unsaved <= mlog_last_index(&r->log) ||
	       r->applied < apply_limit(r);
}

/* The entries lo..hi of the log for an update: copies, or (the option
 * borrow_entries) the log's own data. */
static int update_entries(const struct raft *r, uint64_t lo, uint64_t hi,
			  struct raft_entry **out)
{
	return r->opt.borrow_entries ? mlog_view(&r->log, lo, hi, out)
				     : mlog_copy(&r->log, lo, hi, out);
}

static void update_entries_free(struct raft_update *u, struct raft_entry *e,
				size_t n)
{
	if (u->borrowed)
		free(e);
	else
		mlog_entries_free(e, n);
}

int raft_update_get(struct raft *r, struct raft_update *u)
{
	memset(u, 0, sizeof(*u));
	u->borrowed = r->opt.borrow_entries;
	uint64_t last = mlog_last_index(&r->log);
	uint64_t hi = apply_limit(r);
	if (r->unsaved <= last) {
		if (update_entries(r, r->unsaved, last, &u->entries))
			return RAFT_ENOMEM;
		u->n_entries = last - r->unsaved + 1;
	}
	if (r->applied < hi) {
		if (update_entries(r, r->applied + 1, hi, &u->committed)) {
			update_entries_free(u, u->entries, u->n_entries);
			memset(u, 0, sizeof(*u));
			return RAFT_ENOMEM;
		}
		u->n_committed = hi - r->applied;
		r->applied = hi;
	}
	r->unsaved = last + 1;
	u->role = r->role;
	u->leader = r->leader;
	u->commit = r->commit;
	u->hard_state_changed = r->hs_dirty;
	u->term = r->term;
	u->vote = r->vote;
	r->hs_dirty = false;
	u->has_snapshot = r->out_has_snapshot;
	u->snapshot = r->out_snapshot;
	r->out_has_snapshot = false;
	u->msgs = r->out_msgs;
	u->n_msgs = r->n_out_msgs;
	r->out_msgs = NULL;
	r->n_out_msgs = r->cap_out_msgs = 0;
	u->reads = r->out_reads;
	u->n_reads = r->n_out_reads;
	r->out_reads = NULL;
	r->n_out_reads = r->cap_out_reads = 0;
	return 0;
}

void raft_message_clear(struct raft_message *m)
{
	mlog_entries_free(m->entries, m->n_entries);
	memset(m, 0, sizeof(*m));
}

void raft_update_free(struct raft_update *u)
{
	update_entries_free(u, u->entries, u->n_entries);
	update_entries_free(u, u->committed, u->n_committed);
	for (size_t i = 0; i < u->n_msgs; i++)
		raft_message_clear(&u->msgs[i]);
	free(u->msgs);
	free(u->reads);
	memset(u, 0, sizeof(*u));
}

const char *raft_msg_type_name(enum raft_msg_type t)
{
	static const char *const names[] = {
	    "none",	      "append",	    "append_resp",     "vote",
	    "vote_resp",      "prevote",    "prevote_resp",    "heartbeat",
	    "heartbeat_resp", "read_index", "read_index_resp", "snapshot",
	    "timeout_now",    "propose",    "propose_resp",
	};
	if ((unsigned)t >= sizeof(names) / sizeof(names[0]))
		return "unknown";
	return names[t];
}
