/* readindex.h - linearizable reads without log writes (readindex.c,
 * §6.4 diss. ReadIndex).
 *
 * The leader queues reads with the commit index they must wait for and
 * confirms its leadership with a heartbeat round acknowledged by a quorum;
 * a read is only ever answered by the leader of the term it arrived in,
 * or failed with RAFT_ENOTLEADER when that leadership ends. Pending reads
 * exist only on a leader. */
#ifndef KV_RAFT_READINDEX_H
#define KV_RAFT_READINDEX_H

#include "raft.h"

struct raft;

/* A read with ctx from node `from` (ourselves for a local read): queued on
 * the leader, refused with RAFT_ENOTLEADER elsewhere. A read that cannot
 * be queued (out of memory) is dropped; the asker times out. */
void ri_request(struct raft *r, uint64_t ctx, uint64_t from);
/* A quorum may have acknowledged a round, or the commit index moved:
 * answer the confirmed reads, start the next round if reads wait for one.
 * Does nothing unless leader with an entry of its term committed (§8). */
void ri_advance(struct raft *r);
/* Leadership is ending: fail every pending read with RAFT_ENOTLEADER.
 * Requires leader. */
void ri_fail_all(struct raft *r);
/* The leader's answer to a read we forwarded: hand it out as it is. */
void ri_step_resp(struct raft *r, const struct raft_message *m);

#endif
