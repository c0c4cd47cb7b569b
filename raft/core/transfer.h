/* transfer.h - leadership transfer (transfer.c), §3.10 of Ongaro's
 * dissertation, and a member that may not stand for election.
 *
 * The leader picks or is given a voter, stops taking proposals, brings
 * the voter's log up to its own and sends it TimeoutNow; the voter then
 * campaigns at once, its votes flagged so that the others' leases let
 * them through (election.c). A transfer that has not ended within an
 * election timeout is abandoned. A leader told that it may not be a
 * candidate (raft_set_candidacy) hands over the same way, and steps down
 * when its transfer is abandoned. */
#ifndef KV_RAFT_TRANSFER_H
#define KV_RAFT_TRANSFER_H

#include "raft.h"

struct raft;
struct raft_progress;

/* The voter other than us to hand over to: among those heard from within
 * two heartbeat intervals (else among all), the one with the longest log
 * as the leader knows it (the highest match), then the one heard from
 * last, then the lowest id; RAFT_NONE if there is none. Requires leader. */
uint64_t xfer_pick(struct raft *r);
/* Start a transfer to voter id (not us): catch it up or, if its log is
 * already ours, send TimeoutNow. Requires leader and no transfer running. */
void xfer_start(struct raft *r, uint64_t id);
/* p answered: if it is the target of the transfer and its log now ends
 * where ours does, send it TimeoutNow (again, if the first was lost).
 * Requires leader. */
void xfer_on_progress(struct raft *r, const struct raft_progress *p);
/* The leader's tick: abandon a transfer older than an election timeout
 * (and step down if this member may not be a candidate); a leader that may
 * not be a candidate starts one when none runs. Requires leader. */
void xfer_tick(struct raft *r);

#endif
