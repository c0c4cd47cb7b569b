/* lease.c - the leader's expiry of leases, and the remaining TTL a node
 * reports.
 *
 * Leases live in the replicated state (store/leases.c); a lease's end is
 * the leader's decision, committed as an ordinary entry: on every tick,
 * on the node thread, a leader proposes a lease_revoke for each lease
 * whose TTL has run out on its own clock, on condition that its rev is
 * still the one it saw (if_rev), so a keepalive that reaches the log
 * first wins and every replica deletes the keys at the same revision. A
 * lease's TTL runs from when this node applied its grant or its latest
 * keepalive, and on a leader never from before the moment it took office
 * plus NODE_LEASE_EXTEND_MS (an election timeout): a new leader does not
 * know when its predecessor last heard of a lease, and its clients need
 * the time of the election to reach it, so no lease ends early because
 * of a failover. Proposed straight to the core, on the thread and in the
 * turn where the core says this node leads: a member that lost the lead
 * proposes nothing. One revoke per lease and rev is in flight at a time
 * (retried after NODE_LEASE_RETRY_MS if it did not commit). The bounds
 * users see are docs/http-api.md's ("Leases"). */
#include <inttypes.h>
#include <stdlib.h>

#include "node_int.h"

/* How many expiries one tick proposes at most (the rest: the next). */
#define LEASE_BATCH 64

static bool pending(const struct node_leases *nl, uint64_t id, uint64_t rev,
		    uint64_t now)
{
	for (size_t i = 0; i < nl->npending; i++)
		if (nl->pending[i].id == id && nl->pending[i].rev == rev &&
		    now - nl->pending[i].at_ms < NODE_LEASE_RETRY_MS)
			return true;
	return false;
}

static void note_pending(struct node_leases *nl, uint64_t id, uint64_t rev,
			 uint64_t now)
{
	size_t slot = nl->npending;
	for (size_t i = 0; i < nl->npending; i++)
		if (nl->pending[i].id == id ||
		    now - nl->pending[i].at_ms >= NODE_LEASE_RETRY_MS) {
			slot = i;
			break;
		}
	if (slot == NODE_LEASE_PENDING)
		slot = (size_t)(id % NODE_LEASE_PENDING); /* forget one */
	else if (slot == nl->npending)
		nl->npending++;
	nl->pending[slot].id = id;
	nl->pending[slot].rev = rev;
	nl->pending[slot].at_ms = now;
}

/* Propose the conditional end of lease l. */
static void expire(struct kv_node *n, const struct store_lease *l)
{
	struct kv_cmd cmd = {.op = KV_OP_LEASE_REVOKE,
			     .lease = l->id,
			     .if_rev = l->rev,
			     .time_ns = kv_wall_ns()};
	char *json;
	size_t len;
	uint64_t index, term;

	if (kv_cmd_encode(&cmd, &json, &len) != 0)
		return;
	int ret =
	    raft_propose(n->raft, RAFT_ENTRY_NORMAL, json, len, &index, &term);
	free(json);
	if (ret != 0)
		return; /* a transfer under way: the next tick */
	note_pending(&n->leases, l->id, l->rev, kv_mono_ms());
	kv_log(KV_LOG_INFO,
	       "lease %" PRIu64 " (ttl %" PRIu64 " s, %" PRIu64
	       " keys) expired: revoking it at %" PRIu64,
	       l->id, l->ttl, l->nkeys, index);
}

void node_leases_tick(struct kv_node *n)
{
	struct node_leases *nl = &n->leases;
	uint64_t now = kv_mono_ms();

	if (raft_role(n->raft) != RAFT_LEADER) {
		nl->term = 0;
		nl->npending = 0;
		atomic_store(&nl->floor_ms, 0);
		return;
	}
	if (nl->term != raft_term(n->raft)) {
		/* took office: every lease runs again from now, and an
		 * election timeout more */
		nl->term = raft_term(n->raft);
		nl->npending = 0;
		atomic_store(&nl->floor_ms, now + NODE_LEASE_EXTEND_MS);
	}
	if (n->wr.err != 0)
		return; /* it cannot write: it stands aside (writable.c) */
	struct store_lease due[LEASE_BATCH];
	size_t k = store_leases_due(n->store, now, atomic_load(&nl->floor_ms),
				    due, LEASE_BATCH);
	for (size_t i = 0; i < k; i++)
		if (!pending(nl, due[i].id, due[i].rev, now))
			expire(n, &due[i]);
}

int64_t node_lease_remaining_ms(struct kv_node *n, const struct store_lease *l)
{
	uint64_t from = l->local_ms, floor = atomic_load(&n->leases.floor_ms);
	if (floor > from)
		from = floor;
	int64_t left = (int64_t)(from + l->ttl * 1000) - (int64_t)kv_mono_ms();
	return left > 0 ? left : 0;
}
