/* writable.c - a member that cannot write its log (issue 20): it stands
 * for no election, a leader hands leadership over, and /status and the log
 * say so until it can write again.
 *
 * The node thread looks once a tick at what the store says (a stall on a
 * full disk, a failed write or sync: store_write_error) and at the room
 * the log has left (a leader refuses writes by store_room before anything
 * stalls, so that is where its full disk shows). While either holds, the
 * core is told this member may not be a candidate (raft_set_candidacy): a
 * leader hands leadership to the voter with the longest log, or steps
 * down when that fails, so the others go on taking writes while a
 * majority of them can; a follower keeps following and catches up once
 * its stalled appends go through. The first sign and its time are kept
 * and published (node_status_json's "error"). */
#include <stdio.h>
#include <string.h>

#include "node_int.h"

/* Less room than this in the log (and no room on the file system for a
 * new segment) is a full disk: one more write may not fit. */
#define NODE_LOW_ROOM (256u << 10)

static const char *what_of(int err)
{
	return err == -ENOSPC ? "the disk is full" : kv_strerror(err);
}

int node_write_error(struct kv_node *n, uint64_t *since_ms)
{
	uint64_t since = 0;
	int err = store_write_error(n->store, &since);
	if (err == 0 && store_room(n->store) < NODE_LOW_ROOM)
		err = -ENOSPC;
	if (since_ms)
		*since_ms = since;
	return err;
}

void writable_check(struct kv_node *n)
{
	uint64_t since = 0, now = kv_mono_ms();
	int err = node_write_error(n, &since);
	if (err == n->wr.err)
		return;
	if (err != 0) {
		/* the first sign counts: ENOSPC, then EIO is one trouble */
		if (n->wr.err == 0)
			n->wr.since_ms = since && since <= now ? since : now;
		bool lead = raft_role(n->raft) == RAFT_LEADER;
		kv_log(KV_LOG_WARN,
		       "cannot write the log: %s; this node stands for no "
		       "election while it lasts%s",
		       what_of(err),
		       lead ? " and hands leadership to a voter that can" : "");
		raft_set_candidacy(n->raft, false);
	} else {
		kv_log(
		    KV_LOG_INFO,
		    "the log can be written again (after %llu ms): this node "
		    "may stand for election again",
		    (unsigned long long)(now - n->wr.since_ms));
		raft_set_candidacy(n->raft, true);
		n->wr.since_ms = 0;
	}
	n->wr.err = err;
	int64_t wall_ms = kv_wall_ns() / 1000000;
	pthread_mutex_lock(&n->st.mu);
	n->st.write_err = err;
	n->st.write_err_mono_ms = n->wr.since_ms;
	n->st.write_err_wall_ms =
	    err ? wall_ms - (int64_t)(now - n->wr.since_ms) : 0;
	pthread_mutex_unlock(&n->st.mu);
}

bool writable_handing_over(struct kv_node *n)
{
	if (n->wr.err == 0)
		return false;
	const struct raft_config *c = raft_config(n->raft);
	for (unsigned i = 0; i < c->n; i++)
		if (c->servers[i].id != n->id &&
		    c->servers[i].role == RAFT_VOTER)
			return true;
	return false;
}
