/* test_sim.c - the Raft core in a simulated cluster (sim.c): scenarios,
 * then a randomized run over many seeds.
 *
 * Every step of every test checks election safety, log matching, leader
 * completeness, state machine safety and read linearizability (sim.c);
 * the tests add liveness: once healed, every acknowledged proposal is
 * applied on every live member. The randomized runs also change the
 * membership (add a learner, promote it, remove a voter or the leader)
 * in the middle of the faults. Seeds: KV_SIM_SEEDS=n runs n seeds
 * (default 10000, 4000 in sanitizer builds), KV_SIM_SEED=s replays one and
 * prints its trace summary; a failing seed prints the line to replay it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "sim.h"

#if defined(__SANITIZE_ADDRESS__)
#define SIM_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SIM_SANITIZED 1
#endif
#endif
#ifndef SIM_SANITIZED
#define SIM_SANITIZED 0
#endif

static const char *argv0 = "raft_sim";

static void ok(struct sim *s, bool cond, const char *what)
{
	if (!cond || sim_error(s)) {
		print_error("%s: %s\n", what,
			    sim_error(s) ? sim_error(s) : "condition false");
		fail();
	}
}

static bool converged(struct sim *s)
{
	return sim_converged(s);
}

static unsigned elect(struct sim *s)
{
	ok(s, sim_run_until(s, 5000, sim_has_leader), "a leader is elected");
	return (unsigned)sim_leader(s);
}

static void propose_n(struct sim *s, unsigned n)
{
	for (unsigned k = 0; k < n; k++) {
		int l = sim_leader(s);
		if (l >= 0)
			sim_propose(s, (unsigned)l);
		ok(s, sim_run(s, 3), "run");
	}
}

static void test_cluster_elects_one_leader_and_applies_everywhere(void **st)
{
	(void)st;
	struct sim *s = sim_new(3, 1, NULL);
	elect(s);
	propose_n(s, 50);
	ok(s, sim_run_until(s, 5000, converged), "converged");
	assert_true(sim_acked(s) >= 45);
	for (unsigned i = 0; i < 3; i++)
		assert_true(sim_applied(s, i) >= 51);
	sim_free(s);
}

/* mmapd's bug: a former leader restarted with a stale log must neither
 * disturb the current leader nor refuse the entries it missed. */
static void
test_restarted_stale_former_leader_rejoins_quietly_and_catches_up(void **st)
{
	(void)st;
	struct sim *s = sim_new(3, 7, NULL);
	unsigned old = elect(s);
	propose_n(s, 10);
	ok(s, sim_run_until(s, 3000, converged), "converged");
	sim_crash(s, old);
	unsigned l = elect(s);
	assert_int_not_equal(l, old);
	uint64_t term = raft_term(sim_raft(s, l));
	propose_n(s, 40);
	sim_restart(s, old);
	ok(s, sim_run_until(s, 5000, converged), "old leader catches up");
	ok(s, sim_run(s, 3000), "quiet period");
	assert_int_equal(sim_leader(s), (int)l);
	assert_int_equal(raft_term(sim_raft(s, l)), term);
	assert_int_equal(raft_term(sim_raft(s, old)), term);
	assert_int_equal(sim_applied(s, old), sim_applied(s, l));
	sim_free(s);
}

/* Pre-Vote: a follower cut off for many election timeouts does not bump
 * the term and depose the leader when it comes back. */
static void test_partitioned_follower_rejoins_without_changing_term(void **st)
{
	(void)st;
	struct sim *s = sim_new(3, 11, NULL);
	unsigned l = elect(s);
	uint64_t term = raft_term(sim_raft(s, l));
	unsigned f = (l + 1) % 3;
	sim_isolate(s, f);
	propose_n(s, 20);
	ok(s, sim_run(s, 5000), "isolated");
	assert_int_equal(raft_term(sim_raft(s, f)), term);
	sim_heal(s);
	ok(s, sim_run_until(s, 5000, converged), "rejoined");
	assert_int_equal(sim_leader(s), (int)l);
	assert_int_equal(raft_term(sim_raft(s, l)), term);
	sim_free(s);
}

/* Check-quorum: a leader cut off from everyone steps down, the others
 * elect a new one and go on. */
static void test_leader_that_lost_its_quorum_steps_down(void **st)
{
	(void)st;
	struct sim *s = sim_new(5, 13, NULL);
	unsigned l = elect(s);
	sim_isolate(s, l);
	ok(s, sim_run(s, 3000), "isolated");
	assert_int_not_equal(raft_role(sim_raft(s, l)), RAFT_LEADER);
	int nl = sim_leader(s);
	assert_true(nl >= 0 && (unsigned)nl != l);
	assert_int_equal(
	    raft_propose(sim_raft(s, l), RAFT_ENTRY_NORMAL, "x", 1, NULL, NULL),
	    RAFT_ENOTLEADER);
	sim_heal(s);
	propose_n(s, 10);
	ok(s, sim_run_until(s, 5000, converged), "healed");
	sim_free(s);
}

static void test_follower_behind_compaction_catches_up_by_snapshot(void **st)
{
	(void)st;
	struct sim *s = sim_new(3, 17, NULL);
	sim_set_compact_every(s, 10);
	unsigned l = elect(s);
	unsigned f = (l + 2) % 3;
	sim_crash(s, f);
	propose_n(s, 60);
	ok(s, sim_run(s, 200), "run");
	l = (unsigned)sim_leader(s);
	assert_true(raft_snapshot_index(sim_raft(s, l)) > 20);
	sim_restart(s, f);
	ok(s, sim_run_until(s, 5000, converged), "caught up by snapshot");
	assert_true(raft_snapshot_index(sim_raft(s, f)) > 20);
	sim_free(s);
}

static void test_leader_transfer_hands_leadership_to_the_target(void **st)
{
	(void)st;
	struct sim *s = sim_new(3, 19, NULL);
	unsigned l = elect(s);
	propose_n(s, 10);
	unsigned t = (l + 1) % 3;
	assert_int_equal(raft_transfer_leadership(sim_raft(s, l), t + 1), 0);
	assert_int_equal(
	    raft_propose(sim_raft(s, l), RAFT_ENTRY_NORMAL, "x", 1, NULL, NULL),
	    RAFT_EBUSY);
	/* within a few round trips: well before any election timeout (100
	 * to 200 ms) could have elected it the ordinary way */
	ok(s, sim_run(s, 50), "transfer");
	assert_int_equal(sim_leader(s), (int)t);
	propose_n(s, 5);
	ok(s, sim_run_until(s, 3000, converged), "converged");
	sim_free(s);
}

/* Transfers under a lossy network: the target leads within 80 ms (less
 * than an election timeout) in most rounds, nothing is lost, and
 * proposals go on through it. */
static void test_leader_transfer_under_drops_and_delays(void **st)
{
	(void)st;
	struct sim *s = sim_new(5, 29, NULL);
	struct sim_faults f = {.drop_pct = 5,
			       .dup_pct = 3,
			       .min_delay = 1,
			       .max_delay = 15,
			       .sync_pct = 40};
	sim_set_faults(s, &f);
	unsigned moved = 0;
	for (unsigned round = 0; round < 10; round++) {
		unsigned l = elect(s);
		propose_n(s, 20);
		unsigned t = (l + 1 + round) % 5;
		if (raft_transfer_leadership(sim_raft(s, l), t + 1) != 0)
			continue;
		ok(s, sim_run(s, 80), "transfer"); /* < an election timeout */
		moved += sim_leader(s) == (int)t;
		ok(s, sim_run(s, 300), "settle");
	}
	/* a TimeoutNow or a vote can be lost: most transfers succeed */
	assert_true(moved >= 6);
	sim_set_faults(s, &(struct sim_faults){0, 0, 1, 5, 50});
	ok(s, sim_run_until(s, 5000, converged), "converged");
	sim_free(s);
}

/* A leader whose log cannot be written (sim_set_stuck): it hands over to
 * a voter that can, proposals go on there, it never leads again while
 * stuck, and once it can write again it catches up. */
static void test_leader_that_cannot_write_hands_over_and_rejoins(void **st)
{
	(void)st;
	struct sim *s = sim_new(3, 31, NULL);
	unsigned l = elect(s);
	propose_n(s, 20);
	sim_set_stuck(s, l, true);
	for (unsigned k = 0; k < 200; k++) {
		ok(s, sim_run(s, 10), "stuck");
		if (k > 30)
			assert_int_not_equal(sim_leader(s), (int)l);
	}
	unsigned acked = sim_acked(s);
	propose_n(s, 30);
	ok(s, sim_run(s, 500), "writes through the others");
	assert_true(sim_acked(s) >= acked + 25);
	assert_int_not_equal(sim_leader(s), (int)l);
	sim_set_stuck(s, l, false);
	ok(s, sim_run_until(s, 5000, converged), "rejoined");
	sim_free(s);
}

/* The same when its transfer cannot succeed (the target is cut off from
 * it after the TimeoutNow could not arrive): it steps down and the two
 * others elect a leader. */
static void
test_leader_that_cannot_write_steps_down_when_it_cannot_hand_over(void **st)
{
	(void)st;
	struct sim *s = sim_new(3, 37, NULL);
	unsigned l = elect(s);
	propose_n(s, 20);
	ok(s, sim_run_until(s, 3000, converged), "converged");
	/* every TimeoutNow is lost: the leader cannot reach one voter and
	 * the other is stuck too, so neither can take over through it */
	unsigned a = (l + 1) % 3, b = (l + 2) % 3;
	sim_cut(s, l, a, true);
	sim_set_stuck(s, b, true);
	sim_set_stuck(s, l, true);
	ok(s, sim_run(s, 1500), "stuck");
	assert_int_not_equal(raft_role(sim_raft(s, l)), RAFT_LEADER);
	sim_set_stuck(s, b, false);
	ok(s, sim_run_until(s, 5000, sim_has_leader), "a leader");
	assert_int_not_equal(sim_leader(s), (int)l);
	sim_heal(s);
	sim_set_stuck(s, l, false);
	propose_n(s, 10);
	ok(s, sim_run_until(s, 5000, converged), "converged");
	sim_free(s);
}

static void test_learner_catches_up_is_promoted_and_votes(void **st)
{
	(void)st;
	struct sim *s = sim_new_partial(4, 3, 23, NULL);
	elect(s);
	propose_n(s, 20);
	ok(s, sim_run_until(s, 3000, converged), "converged");
	assert_int_equal(sim_change(s, RAFT_CONF_ADD_LEARNER, 4), 0);
	ok(s, sim_run_until(s, 3000, converged), "learner caught up");
	assert_int_equal(sim_applied(s, 3),
			 sim_applied(s, (unsigned)sim_leader(s)));
	assert_int_equal(sim_change(s, RAFT_CONF_PROMOTE, 4), 0);
	ok(s, sim_run_until(s, 3000, converged), "promoted");
	/* Four voters: two down is no quorum, one down is fine. */
	unsigned l = (unsigned)sim_leader(s);
	sim_crash(s, (l + 1) % 4);
	propose_n(s, 10);
	ok(s, sim_run_until(s, 5000, converged), "one down");
	sim_free(s);
}

static void test_removed_leader_steps_down_after_the_change_commits(void **st)
{
	(void)st;
	struct sim *s = sim_new(3, 29, NULL);
	unsigned l = elect(s);
	propose_n(s, 5);
	ok(s, sim_run_until(s, 3000, converged), "converged");
	assert_int_equal(sim_change(s, RAFT_CONF_REMOVE, l + 1), 0);
	ok(s, sim_run(s, 2000), "run");
	int nl = sim_leader(s);
	assert_true(nl >= 0 && (unsigned)nl != l);
	propose_n(s, 5);
	ok(s, sim_run_until(s, 3000, converged), "two members go on");
	assert_int_equal(raft_config(sim_raft(s, (unsigned)nl))->n, 2);
	sim_free(s);
}

/* §4.2.2 diss.: a leader of two removes itself, and crashes with the only
 * copy of that change. The other voter, still on the old configuration,
 * needs its vote and is refused (its log is shorter): the removed node
 * must stand for election under the new configuration itself, commit the
 * change, and step down. */
static void
test_leader_that_removed_itself_and_crashed_does_not_block_the_rest(void **st)
{
	(void)st;
	struct sim *s = sim_new(2, 37, NULL);
	unsigned l = elect(s), f = 1 - l;
	propose_n(s, 5);
	ok(s, sim_run_until(s, 3000, converged), "converged");
	sim_isolate(s, l);
	assert_int_equal(sim_change(s, RAFT_CONF_REMOVE, l + 1), 0);
	ok(s, sim_run(s, 100), "the change is only on the old leader");
	assert_int_equal(raft_config(sim_raft(s, f))->n, 2);
	assert_int_equal(raft_config(sim_raft(s, l))->n, 1);
	sim_crash(s, l);
	sim_heal(s);
	sim_restart(s, l);
	ok(s, sim_run_until(s, 10000, converged), "the change commits");
	assert_int_equal(sim_leader(s), (int)f);
	assert_int_equal(raft_config(sim_raft(s, f))->n, 1);
	propose_n(s, 5);
	ok(s, sim_run_until(s, 3000, converged), "the one voter goes on");
	sim_free(s);
}

static void
test_reads_on_leader_and_followers_see_acknowledged_writes(void **st)
{
	(void)st;
	struct sim *s = sim_new(3, 31, NULL);
	elect(s);
	for (unsigned k = 0; k < 30; k++) {
		int l = sim_leader(s);
		if (l >= 0)
			sim_propose(s, (unsigned)l);
		sim_read(s, k % 3);
		ok(s, sim_run(s, 7), "run");
	}
	ok(s, sim_run(s, 500), "run");
	assert_true(sim_reads_done(s) >= 25);
	sim_free(s);
}

/* Issue 20's damaged last log line: A leads, B is down, and entry X is
 * committed by A and C alone. Then A and C stop, C's store finds its last
 * line (X) damaged and drops it, and C and B come back without A. Neither
 * holds X: whichever of them led would lack a committed entry (the sim's
 * leader completeness check). abstain: C boots with abstain_until = X.
 * Returns the sim after 5 s with A still down; *a is A's slot, *x is X. */
static struct sim *damaged_entry_scenario(bool abstain, unsigned *a,
					  uint64_t *x)
{
	struct sim *s = sim_new(3, 43, NULL);
	unsigned l = elect(s), b = (l + 1) % 3, c = (l + 2) % 3;
	propose_n(s, 5);
	ok(s, sim_run_until(s, 3000, converged), "converged");
	sim_crash(s, b);
	ok(s, sim_propose(s, l), "X proposed");
	*a = l;
	*x = raft_last_index(sim_raft(s, l));
	for (unsigned t = 0; t < 3000 && raft_commit_index(sim_raft(s, l)) < *x;
	     t++)
		ok(s, sim_run(s, 1), "run");
	assert_true(raft_commit_index(sim_raft(s, l)) >= *x);
	/* C acknowledged X, so X is durable there and its last entry. */
	assert_int_equal(sim_durable_index(s, c), *x);
	sim_crash(s, l);
	sim_crash(s, c);
	ok(s, sim_run(s, 50), "A's last messages are lost");
	assert_int_equal(sim_damage_last(s, c, abstain), *x);
	sim_restart(s, c);
	sim_restart(s, b);
	sim_run(s, 5000);
	return s;
}

static void
test_node_that_dropped_a_committed_entry_helps_elect_no_leader_without_it(
    void **st)
{
	(void)st;
	unsigned a;
	uint64_t x;
	struct sim *s = damaged_entry_scenario(true, &a, &x);
	ok(s, !sim_has_leader(s), "no leader without A");
	sim_restart(s, a);
	ok(s, sim_run_until(s, 5000, converged), "A returns, C gets X back");
	for (unsigned i = 0; i < 3; i++)
		assert_true(raft_last_index(sim_raft(s, i)) >= x);
	/* C votes again: without A, B and C elect a leader, which has X. */
	sim_crash(s, a);
	unsigned l = elect(s);
	assert_int_not_equal(l, a);
	propose_n(s, 5);
	ok(s, sim_run_until(s, 5000, converged), "B and C go on");
	sim_free(s);
}

/* The same without abstain_until: B or C is elected and the committed
 * entry is lost, which the check above would catch. */
static void test_without_abstaining_the_same_scenario_loses_the_entry(void **st)
{
	(void)st;
	unsigned a;
	uint64_t x;
	struct sim *s = damaged_entry_scenario(false, &a, &x);
	assert_non_null(sim_error(s));
	assert_non_null(strstr(sim_error(s), "leader completeness"));
	sim_free(s);
}

/* Every node's view, for a failing seed replayed with KV_SIM_SEED. */
static void dump(struct sim *s)
{
	for (unsigned i = 0; i < sim_size(s); i++) {
		struct raft *r = sim_raft(s, i);
		const struct raft_config *c;

		if (r == NULL) {
			printf("  node %u: down\n", i + 1);
			continue;
		}
		c = raft_config(r);
		printf("  node %u: role=%d term=%llu leader=%llu commit=%llu "
		       "last=%llu snap=%llu applied=%llu conf=",
		       i + 1, (int)raft_role(r),
		       (unsigned long long)raft_term(r),
		       (unsigned long long)raft_leader(r),
		       (unsigned long long)raft_commit_index(r),
		       (unsigned long long)raft_last_index(r),
		       (unsigned long long)raft_snapshot_index(r),
		       (unsigned long long)sim_applied(s, i));
		for (unsigned k = 0; k < c->n; k++)
			printf("%s%llu%s", k ? "," : "",
			       (unsigned long long)c->servers[k].id,
			       c->servers[k].role == RAFT_LEARNER ? "L" : "");
		printf("\n");
	}
}

/* One membership change through the leader, on a random slot: a slot
 * outside the configuration is added as a learner, a learner promoted, a
 * voter (the leader too) removed. Refusals (a change in flight, the last
 * voter) are part of the game. Counts the changes the leader accepted. */
static void random_change(struct sim *s, unsigned slots, unsigned *changes)
{
	int l = sim_leader(s);
	uint64_t id = 1 + sim_rand(s, slots);
	const struct raft_server *sv;
	enum raft_conf_op op;

	if (l < 0)
		return;
	sv = raft_config_get(raft_config(sim_raft(s, (unsigned)l)), id);
	if (sv == NULL)
		op = RAFT_CONF_ADD_LEARNER;
	else if (sv->role == RAFT_LEARNER)
		op = sim_rand(s, 4) ? RAFT_CONF_PROMOTE : RAFT_CONF_REMOVE;
	else
		op = RAFT_CONF_REMOVE;
	if (sim_change(s, op, id) == 0)
		(*changes)++;
}

/* One randomized run: faults, crashes, partitions, transfers and, in half
 * the seeds, membership changes with one or two spare nodes, then heal
 * and demand convergence. Returns NULL or the failure. */
static const char *random_run(uint64_t seed, bool verbose)
{
	static char why[600];
	struct sim *probe = sim_new(1, seed, NULL);
	unsigned n = (sim_rand(probe, 0) >> 40) % 2 ? 5 : 3;
	struct sim_faults f = {
	    .drop_pct = (unsigned)sim_rand(probe, 12),
	    .dup_pct = (unsigned)sim_rand(probe, 6),
	    .min_delay = 1,
	    .max_delay = 1 + (unsigned)sim_rand(probe, 30),
	    .sync_pct = 10 + (unsigned)sim_rand(probe, 80),
	};
	unsigned compact =
	    sim_rand(probe, 2) ? 0 : 5 + (unsigned)sim_rand(probe, 40);
	unsigned spares =
	    sim_rand(probe, 2) ? 0 : 1 + (unsigned)sim_rand(probe, 2);
	unsigned slots = n + spares, changes = 0;
	sim_free(probe);
	struct sim *s = sim_new_partial(slots, n, seed, NULL);
	sim_set_faults(s, &f);
	sim_set_compact_every(s, compact);
	const char *res = NULL;
	for (unsigned t = 0; t < 3000 && !sim_error(s); t++) {
		uint64_t x = sim_rand(s, 10000);
		unsigned i = (unsigned)sim_rand(s, slots);
		if (x < 500) {
			sim_propose(s, i);
		} else if (x < 700) {
			sim_read(s, i);
		} else if (x < 710) {
			sim_crash(s, i);
		} else if (x < 740) {
			sim_restart(s, i);
		} else if (x < 750) {
			sim_cut(s, i, (unsigned)sim_rand(s, slots), true);
		} else if (x < 760) {
			sim_heal(s);
		} else if (x < 763) {
			int l = sim_leader(s);
			if (l >= 0)
				sim_isolate(s, (unsigned)l);
		} else if (x < 765) {
			int l = sim_leader(s);
			if (l >= 0)
				raft_transfer_leadership(
				    sim_raft(s, (unsigned)l), i + 1);
		} else if (x < 780 && spares > 0) {
			random_change(s, slots, &changes);
		} else if (x >= 9990) {
			/* a disk that fills and frees: at most one at once */
			for (unsigned k = 0; k < slots; k++)
				sim_set_stuck(s, k, false);
			if (x >= 9995)
				sim_set_stuck(s, i, true);
		}
		sim_run(s, 1);
	}
	/* Heal: every node up, no faults; everything acknowledged must end
	 * up applied everywhere. */
	sim_heal(s);
	for (unsigned i = 0; i < slots; i++)
		sim_set_stuck(s, i, false);
	struct sim_faults calm = f;
	calm.drop_pct = calm.dup_pct = 0;
	sim_set_faults(s, &calm);
	for (unsigned i = 0; i < slots; i++)
		sim_restart(s, i);
	if (!sim_error(s) && !sim_run_until(s, 20000, sim_converged) &&
	    !sim_error(s))
		snprintf(why, sizeof(why),
			 "liveness: no convergence 20 s "
			 "after healing");
	else if (sim_error(s))
		snprintf(why, sizeof(why), "%s", sim_error(s));
	else
		why[0] = '\0';
	if (why[0])
		res = why;
	if (verbose)
		printf(
		    "seed %llu: n=%u drop=%u%% dup=%u%% delay<=%ums sync=%u%% "
		    "compact=%u spares=%u changes=%u acked=%u reads=%u "
		    "term=%llu -> %s\n",
		    (unsigned long long)seed, n, f.drop_pct, f.dup_pct,
		    f.max_delay, f.sync_pct, compact, spares, changes,
		    sim_acked(s), sim_reads_done(s),
		    (unsigned long long)sim_terms_seen(s), res ? res : "ok");
	if (verbose && res)
		dump(s);
	sim_free(s);
	return res;
}

static void test_random_seeds_keep_every_invariant(void **st)
{
	(void)st;
	const char *one = getenv("KV_SIM_SEED");
	if (one) {
		uint64_t seed = strtoull(one, NULL, 10);
		const char *why = random_run(seed, true);
		if (why) {
			print_error("seed %llu failed: %s\n",
				    (unsigned long long)seed, why);
			fail();
		}
		return;
	}
	const char *env = getenv("KV_SIM_SEEDS");
	unsigned long n =
	    env ? strtoul(env, NULL, 10) : (SIM_SANITIZED ? 4000 : 10000);
	uint64_t base = 1;
	const char *b = getenv("KV_SIM_BASE");
	if (b)
		base = strtoull(b, NULL, 10);
	clock_t t0 = clock();
	unsigned failures = 0;
	unsigned long k;
	for (k = 0; k < n && failures < 3; k++) {
		uint64_t seed = base + k;
		const char *why = random_run(seed, false);
		if (why) {
			failures++;
			print_error("seed %llu failed: %s\n"
				    "replay: KV_SIM_SEED=%llu %s\n",
				    (unsigned long long)seed, why,
				    (unsigned long long)seed, argv0);
		}
	}
	printf("sim: %lu seeds from %llu in %.1f s cpu, %u failed\n", k,
	       (unsigned long long)base,
	       (double)(clock() - t0) / CLOCKS_PER_SEC, failures);
	assert_int_equal(failures, 0);
}

int main(int argc, char **argv)
{
	(void)argc;
	argv0 = argv[0];
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
		test_cluster_elects_one_leader_and_applies_everywhere),
	    cmocka_unit_test(
		test_restarted_stale_former_leader_rejoins_quietly_and_catches_up),
	    cmocka_unit_test(
		test_partitioned_follower_rejoins_without_changing_term),
	    cmocka_unit_test(test_leader_that_lost_its_quorum_steps_down),
	    cmocka_unit_test(
		test_follower_behind_compaction_catches_up_by_snapshot),
	    cmocka_unit_test(
		test_leader_transfer_hands_leadership_to_the_target),
	    cmocka_unit_test(test_leader_transfer_under_drops_and_delays),
	    cmocka_unit_test(
		test_leader_that_cannot_write_hands_over_and_rejoins),
	    cmocka_unit_test(
		test_leader_that_cannot_write_steps_down_when_it_cannot_hand_over),
	    cmocka_unit_test(test_learner_catches_up_is_promoted_and_votes),
	    cmocka_unit_test(
		test_removed_leader_steps_down_after_the_change_commits),
	    cmocka_unit_test(
		test_leader_that_removed_itself_and_crashed_does_not_block_the_rest),
	    cmocka_unit_test(
		test_reads_on_leader_and_followers_see_acknowledged_writes),
	    cmocka_unit_test(
		test_node_that_dropped_a_committed_entry_helps_elect_no_leader_without_it),
	    cmocka_unit_test(
		test_without_abstaining_the_same_scenario_loses_the_entry),
	    cmocka_unit_test(test_random_seeds_keep_every_invariant),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
