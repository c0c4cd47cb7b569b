/* leader.h - the leader's sending side (leader.c): its own appends, and
 * the AppendEntries, InstallSnapshot and heartbeat messages it builds.
 *
 * Everything here requires r->role == RAFT_LEADER (asserted). A follower
 * gets entries only through lead_send_append, which obeys its progress
 * state (progress.h) and the batch limits; the answers are handled in
 * replication.c. */
#ifndef KV_RAFT_LEADER_H
#define KV_RAFT_LEADER_H

#include "raft.h"

struct raft;
struct raft_progress;

/* True once the commit index reaches an entry of the current term: before
 * that a new leader may not know what is committed (§5.4.2, §8), so reads
 * and membership changes wait. */
bool lead_committed_in_term(const struct raft *r);
/* Append an entry (data copied) of the current term after the last one
 * (§5.3 "the leader appends the command to its log"); a CONFIG entry takes
 * effect at once (§4.1 diss.). Sends nothing. 0 or RAFT_ENOMEM. */
int lead_append(struct raft *r, enum raft_entry_type type, const void *data,
		size_t len);
/* The same for src's type and data (shared data: a new reference). */
int lead_append_entry(struct raft *r, const struct raft_entry *src);
/* Figure 2 AppendEntries, sender side: send p what it lacks, as far as its
 * progress state and the batch limits allow, merged into this update's
 * pending append to it when one ends where this one starts; a snapshot if
 * the entries it needs are compacted away (§7). send_empty: send even
 * with no entries (a probe, or to carry a new commit index). Nothing for
 * ourselves. */
void lead_send_append(struct raft *r, struct raft_progress *p, bool send_empty);
/* lead_send_append(send_empty false) to every member: new entries. */
void lead_bcast_append(struct raft *r);
/* lead_send_append(send_empty true) to every member: a new commit index. */
void lead_bcast_commit(struct raft *r);
/* A heartbeat to every other member (§5.2), carrying the commit index the
 * follower is known to hold and the latest ReadIndex round (§6.4). */
void lead_bcast_heartbeat(struct raft *r);

#endif
