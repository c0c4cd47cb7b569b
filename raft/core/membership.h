/* membership.h - the configuration in effect, voters and quorum, and the
 * progress of each member (membership.c).
 *
 * §4.1 diss.: "a server always uses the latest configuration in its log,
 * regardless of whether the entry is committed"; changes are single-server
 * (one voter added or removed at a time), so any two majorities of
 * successive configurations overlap. The leader's progress array follows
 * r->conf member for member. */
#ifndef KV_RAFT_MEMBERSHIP_H
#define KV_RAFT_MEMBERSHIP_H

#include "raft.h"

struct raft;
struct raft_progress;

/* True if id is a voter of the configuration in effect (learners and
 * strangers are not, §4.2.1 diss.). */
bool memb_is_voter(const struct raft *r, uint64_t id);
/* The number of votes that is a majority of the voters in effect (§5.2). */
uint64_t memb_quorum(const struct raft *r);
/* The highest value a quorum of voters has reached, where value(p) is the
 * voter's number (its match for commitment §5.4.2, its acknowledged read
 * round for ReadIndex §6.4); 0 without voters. */
uint64_t memb_quorum_value(const struct raft *r,
			   uint64_t (*value)(const struct raft *r,
					     const struct raft_progress *p));
/* The progress of member id, or NULL if id is not a member. */
struct raft_progress *memb_progress(struct raft *r, uint64_t id);
/* Install c (its entry at index, or the snapshot's index) as the
 * configuration in effect; members that stay keep their progress, new
 * ones start probing after the last entry. */
void memb_set_conf(struct raft *r, const struct raft_config *c, uint64_t index);
/* The log changed (appended, truncated, reset): put its latest
 * configuration, or the snapshot's, in effect (§4.1 diss.). */
void memb_conf_refresh(struct raft *r);
/* The configuration in effect at index (the latest config entry at or
 * before it, else the snapshot's) into *out; returns its entry's index,
 * or the snapshot index. Requires snap_index <= index <= last. */
uint64_t memb_conf_at(const struct raft *r, uint64_t index,
		      struct raft_config *out);
/* *out = cur changed by one single-server step (§4.1 diss.): op on id
 * (addr for a new learner, may be NULL). 0, or RAFT_EINVAL if the change
 * makes no sense (raft.h raft_change_membership). */
int memb_conf_change(const struct raft_config *cur, enum raft_conf_op op,
		     uint64_t id, const char *addr, struct raft_config *out);

#endif
