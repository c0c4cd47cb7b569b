/* sim.h - a simulated cluster of raft cores for the tests.
 *
 * N cores over a fake network (delay, drop, duplicate, reorder, partition)
 * and fake disks (writes become durable only when synced; a crash loses
 * the rest), in virtual time (one step = 1 ms, a tick every 10 ms).
 * sim_check() verifies the Raft safety properties after every step and
 * the scenario code checks liveness. Everything is driven by one seed. */
#ifndef KV_TEST_SIM_H
#define KV_TEST_SIM_H

#include <stdbool.h>
#include <stdint.h>

#include "raft.h"

#define SIM_MAX 7

struct sim_faults {
	unsigned drop_pct;	       /* chance a message is lost */
	unsigned dup_pct;	       /* chance it is delivered twice */
	unsigned min_delay, max_delay; /* ms; reordering comes from spread */
	unsigned sync_pct; /* chance a node syncs its disk in a step */
};

struct sim;

struct sim *sim_new(unsigned n, uint64_t seed, const struct raft_options *o);
void sim_free(struct sim *s);
void sim_set_faults(struct sim *s, const struct sim_faults *f);
/* Run ms steps, checking invariants after each. false on a violation
 * (sim_error() says which). */
bool sim_run(struct sim *s, unsigned ms);
/* Run until pred holds or ms pass; false on timeout or violation. */
bool sim_run_until(struct sim *s, unsigned ms, bool (*pred)(struct sim *));
const char *sim_error(const struct sim *s);

void sim_crash(struct sim *s, unsigned i);
void sim_restart(struct sim *s, unsigned i);
bool sim_up(const struct sim *s, unsigned i);
/* Cut (or heal) the link between i and j, both ways. */
void sim_cut(struct sim *s, unsigned i, unsigned j, bool cut);
/* Isolate i from everyone, or heal every link. */
void sim_isolate(struct sim *s, unsigned i);
void sim_heal(struct sim *s);

/* Node i (down) lost its last durable entry, as a store drops a damaged
 * last log line; with abstain, it boots from now on with
 * raft_restore.abstain_until = that entry's index. Returns the index, or 0
 * if its disk holds no entry after its snapshot. */
uint64_t sim_damage_last(struct sim *s, unsigned i, bool abstain);
/* Node i's log cannot be written (a full disk): its queued writes stay
 * unsynced (a crash loses them) and, as kvfs's node does, it tells its
 * core it may not be a candidate (raft_set_candidacy); the hard state is
 * still saved. false undoes both. Kept across restarts. */
void sim_set_stuck(struct sim *s, unsigned i, bool stuck);
/* The last index durable on node i's disk. */
uint64_t sim_durable_index(const struct sim *s, unsigned i);

struct raft *sim_raft(struct sim *s, unsigned i); /* NULL if down */
/* The index of the node that is leader of the highest term, or -1. */
int sim_leader(struct sim *s);
bool sim_has_leader(struct sim *s);
/* Propose a fresh command on node i; true if accepted by a leader. */
bool sim_propose(struct sim *s, unsigned i);
/* Issue a ReadIndex read on node i. */
void sim_read(struct sim *s, unsigned i);
/* Every acknowledged proposal applied on every live node, all at the
 * same applied index. */
bool sim_converged(struct sim *s);
unsigned sim_acked(const struct sim *s);
unsigned sim_reads_done(const struct sim *s);
uint64_t sim_applied(const struct sim *s, unsigned i);
uint64_t sim_terms_seen(const struct sim *s);
/* Snapshot and compact when a node applied this many entries past its
 * snapshot (0: never). */
void sim_set_compact_every(struct sim *s, unsigned n);
/* Random helpers from the sim's PRNG. */
uint64_t sim_rand(struct sim *s, uint64_t n);
unsigned sim_size(const struct sim *s);
uint64_t sim_now(const struct sim *s);
/* Membership through the leader; returns the raft error. */
int sim_change(struct sim *s, enum raft_conf_op op, uint64_t id);
/* Start a sim with n slots of which only the first `voters` are in the
 * initial configuration (the others boot empty, waiting to be added). */
struct sim *sim_new_partial(unsigned n, unsigned voters, uint64_t seed,
			    const struct raft_options *o);

#endif
