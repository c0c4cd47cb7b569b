/* test_paper.c - the Raft paper's rules, one test each, on a single core
 * fed by hand.
 *
 * Each test builds a core from a restore (term, log), steps messages into
 * it and reads the update, like a transcript: "follower at term 2 with log
 * [1 1 2] gets AppendEntries(prev 3/3) -> rejects, hint 2/1". The names are
 * the rules of Figure 2 and §5-§8; the simulated cluster (test_sim.c)
 * covers the same rules under faults. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "raft.h"

static struct raft_config conf3(void)
{
	struct raft_config c = {.n = 3};
	for (unsigned i = 0; i < 3; i++) {
		c.servers[i].id = i + 1;
		c.servers[i].role = RAFT_VOTER;
	}
	return c;
}

/* A core with id, term and a log whose entry i has term terms[i], whose
 * store dropped a damaged entry at abstain_until (0: none). */
static struct raft *mk_abstaining(uint64_t id, uint64_t term,
				  const uint64_t *terms, size_t n,
				  uint64_t abstain_until)
{
	struct raft_entry *e = calloc(n ? n : 1, sizeof(*e));
	for (size_t i = 0; i < n; i++) {
		e[i].index = i + 1;
		e[i].term = terms[i];
		e[i].type = RAFT_ENTRY_NORMAL;
	}
	struct raft_restore rs = {.term = term,
				  .entries = e,
				  .n_entries = n,
				  .abstain_until = abstain_until};
	rs.snapshot.conf = conf3();
	struct raft_options o = {.id = id, .seed = 42};
	struct raft *r;
	assert_int_equal(raft_new(&o, &rs, &r), 0);
	free(e);
	return r;
}

static struct raft *mk(uint64_t id, uint64_t term, const uint64_t *terms,
		       size_t n)
{
	return mk_abstaining(id, term, terms, n, 0);
}

static struct raft_update U;

static void take(struct raft *r)
{
	raft_update_free(&U);
	assert_int_equal(raft_update_get(r, &U), 0);
}

static const struct raft_message *sent(enum raft_msg_type t, uint64_t to)
{
	for (size_t i = 0; i < U.n_msgs; i++)
		if (U.msgs[i].type == t && (to == 0 || U.msgs[i].to == to))
			return &U.msgs[i];
	return NULL;
}

static void step(struct raft *r, struct raft_message m)
{
	m.to = raft_id(r);
	assert_int_equal(raft_step(r, &m), 0);
}

/* Drive r (id 1) to leadership of term+1 with votes from 2. */
static void elect(struct raft *r)
{
	for (int i = 0; i < 40 && raft_role(r) == RAFT_FOLLOWER; i++)
		raft_tick(r);
	assert_int_equal(raft_role(r), RAFT_PRE_CANDIDATE);
	step(r, (struct raft_message){.type = RAFT_MSG_PREVOTE_RESP,
				      .from = 2,
				      .term = raft_term(r) + 1});
	assert_int_equal(raft_role(r), RAFT_CANDIDATE);
	step(r, (struct raft_message){.type = RAFT_MSG_VOTE_RESP,
				      .from = 2,
				      .term = raft_term(r)});
	assert_int_equal(raft_role(r), RAFT_LEADER);
	take(r);
}

static struct raft_message vote(uint64_t from, uint64_t term, uint64_t last,
				uint64_t last_term)
{
	return (struct raft_message){.type = RAFT_MSG_VOTE,
				     .from = from,
				     .term = term,
				     .index = last,
				     .log_term = last_term};
}

/* AppendEntries from leader `from`: n entries after prev (of prev_term). */
static struct raft_message append(uint64_t from, uint64_t term, uint64_t prev,
				  uint64_t prev_term, struct raft_entry *e,
				  size_t n)
{
	return (struct raft_message){.type = RAFT_MSG_APPEND,
				     .from = from,
				     .term = term,
				     .index = prev,
				     .log_term = prev_term,
				     .entries = e,
				     .n_entries = n};
}

static int teardown(void **st)
{
	(void)st;
	raft_update_free(&U);
	return 0;
}

/* §5.4.1: "If the logs have last entries with different terms, then the
 * log with the later term is more up-to-date." */
static void test_voter_rejects_candidate_whose_last_term_is_older(void **st)
{
	(void)st;
	uint64_t t[] = {1, 2};
	struct raft *r = mk(1, 2, t, 2);
	step(r, vote(2, 3, 5, 1)); /* longer log, older last term */
	take(r);
	const struct raft_message *m = sent(RAFT_MSG_VOTE_RESP, 2);
	assert_non_null(m);
	assert_true(m->reject);
	assert_int_equal(raft_term(r), 3);
	raft_free(r);
}

/* §5.4.1: "If the logs end with the same term, then whichever log is
 * longer is more up-to-date." */
static void
test_voter_rejects_candidate_with_shorter_log_of_same_term(void **st)
{
	(void)st;
	uint64_t t[] = {1, 2, 2};
	struct raft *r = mk(1, 2, t, 3);
	step(r, vote(2, 3, 2, 2));
	take(r);
	assert_true(sent(RAFT_MSG_VOTE_RESP, 2)->reject);
	step(r, vote(3, 3, 3, 2));
	take(r);
	assert_false(sent(RAFT_MSG_VOTE_RESP, 3)->reject);
	raft_free(r);
}

/* §5.2: "Each server will vote for at most one candidate in a given term",
 * and the vote is on stable storage before the answer leaves (§5.1). */
static void test_voter_grants_one_vote_per_term_and_persists_it_first(void **st)
{
	(void)st;
	struct raft *r = mk(1, 1, NULL, 0);
	step(r, vote(2, 2, 0, 0));
	take(r);
	assert_false(sent(RAFT_MSG_VOTE_RESP, 2)->reject);
	assert_true(U.hard_state_changed);
	assert_int_equal(U.term, 2);
	assert_int_equal(U.vote, 2);
	step(r, vote(3, 2, 0, 0));
	take(r);
	assert_true(sent(RAFT_MSG_VOTE_RESP, 3)->reject);
	step(r, vote(2, 2, 0, 0)); /* a retry from the same candidate */
	take(r);
	assert_false(sent(RAFT_MSG_VOTE_RESP, 2)->reject);
	raft_free(r);
}

/* §5.1: "If a server receives a request with a stale term number, it
 * rejects the request" - and answers with its term so the sender steps
 * down. */
static void
test_server_rejects_append_with_stale_term_and_tells_its_term(void **st)
{
	(void)st;
	struct raft *r = mk(1, 5, NULL, 0);
	step(r, (struct raft_message){
		    .type = RAFT_MSG_APPEND, .from = 2, .term = 4});
	take(r);
	const struct raft_message *m = sent(RAFT_MSG_APPEND_RESP, 2);
	assert_non_null(m);
	assert_int_equal(m->term, 5);
	assert_int_equal(raft_leader(r), RAFT_NONE);
	raft_free(r);
}

/* §5.1: "If RPC request or response contains term T > currentTerm: set
 * currentTerm = T, convert to follower". */
static void test_leader_seeing_higher_term_becomes_follower(void **st)
{
	(void)st;
	struct raft *r = mk(1, 1, NULL, 0);
	elect(r);
	step(r, (struct raft_message){
		    .type = RAFT_MSG_APPEND_RESP, .from = 3, .term = 9});
	take(r);
	assert_int_equal(raft_role(r), RAFT_FOLLOWER);
	assert_int_equal(raft_term(r), 9);
	assert_true(U.hard_state_changed);
	assert_int_equal(U.vote, RAFT_NONE);
	raft_free(r);
}

/* Figure 2 AppendEntries 2: "Reply false if log doesn't contain an entry
 * at prevLogIndex whose term matches prevLogTerm", with the §5.3 hint. */
static void test_follower_rejects_append_with_mismatched_prev_term(void **st)
{
	(void)st;
	uint64_t t[] = {1, 1, 2, 2};
	struct raft *r = mk(1, 3, t, 4);
	step(r, (struct raft_message){.type = RAFT_MSG_APPEND,
				      .from = 2,
				      .term = 3,
				      .index = 4,
				      .log_term = 3});
	take(r);
	const struct raft_message *m = sent(RAFT_MSG_APPEND_RESP, 2);
	assert_true(m->reject);
	assert_int_equal(m->index, 4);
	/* Our last entry of a term <= 3 at or before 4: index 4, term 2. */
	assert_int_equal(m->hint_index, 4);
	assert_int_equal(m->hint_term, 2);
	assert_int_equal(raft_last_index(r), 4);
	/* prev beyond our log: hint is our last index. */
	step(r, (struct raft_message){.type = RAFT_MSG_APPEND,
				      .from = 2,
				      .term = 3,
				      .index = 9,
				      .log_term = 3});
	take(r);
	m = sent(RAFT_MSG_APPEND_RESP, 2);
	assert_true(m->reject);
	assert_int_equal(m->hint_index, 4);
	raft_free(r);
}

/* Bad input never asserts (a leader never sends these): entries whose
 * terms go backwards or run past the leader's term, and a snapshot with
 * more servers than a configuration holds, are dropped. */
static void test_follower_drops_malformed_appends_and_snapshots(void **st)
{
	(void)st;
	uint64_t t[] = {1, 1};
	struct raft *r = mk(1, 3, t, 2);
	struct raft_entry back[2] = {
	    {.term = 2, .index = 3, .type = RAFT_ENTRY_NORMAL},
	    {.term = 1, .index = 4, .type = RAFT_ENTRY_NORMAL},
	};
	step(r, append(2, 3, 2, 1, back, 2));
	assert_int_equal(raft_last_index(r), 3);
	assert_int_equal(raft_term_at(r, 3), 2);
	struct raft_entry ahead = {
	    .term = 4, .index = 4, .type = RAFT_ENTRY_NORMAL};
	step(r, append(2, 3, 3, 2, &ahead, 1));
	assert_int_equal(raft_last_index(r), 3);
	struct raft_message snap = {
	    .type = RAFT_MSG_SNAPSHOT, .from = 2, .term = 3};
	snap.snapshot.index = 9;
	snap.snapshot.term = 3;
	snap.snapshot.conf.n = RAFT_MAX_SERVERS + 1;
	step(r, snap);
	take(r);
	assert_false(U.has_snapshot);
	assert_int_equal(raft_snapshot_index(r), 0);
	assert_int_equal(raft_config(r)->n, 3);
	raft_free(r);
}

/* Figure 2 AppendEntries 3-4: "If an existing entry conflicts with a new
 * one, delete the existing entry and all that follow it. Append any new
 * entries not already in the log." The caller is told to cut its log. */
static void test_follower_truncates_conflicting_suffix_and_appends(void **st)
{
	(void)st;
	uint64_t t[] = {1, 1, 2, 2};
	struct raft *r = mk(1, 3, t, 4);
	struct raft_entry e[2] = {
	    {.term = 3, .index = 3, .type = RAFT_ENTRY_NORMAL},
	    {.term = 3, .index = 4, .type = RAFT_ENTRY_NORMAL},
	};
	step(r, (struct raft_message){.type = RAFT_MSG_APPEND,
				      .from = 2,
				      .term = 3,
				      .index = 2,
				      .log_term = 1,
				      .entries = e,
				      .n_entries = 1});
	take(r);
	assert_int_equal(raft_last_index(r), 3);
	assert_int_equal(raft_term_at(r, 3), 3);
	assert_int_equal(U.n_entries, 1);
	assert_int_equal(U.entries[0].index, 3);
	/* A duplicate of an older, shorter append must not truncate. */
	step(r, (struct raft_message){.type = RAFT_MSG_APPEND,
				      .from = 2,
				      .term = 3,
				      .index = 2,
				      .log_term = 1,
				      .entries = e,
				      .n_entries = 2});
	step(r, (struct raft_message){.type = RAFT_MSG_APPEND,
				      .from = 2,
				      .term = 3,
				      .index = 2,
				      .log_term = 1,
				      .entries = e,
				      .n_entries = 1});
	assert_int_equal(raft_last_index(r), 4);
	raft_free(r);
}

/* §5.1 stable storage: a follower acknowledges entries only once the
 * caller reports them durable (raft_persisted). */
static void
test_follower_acknowledges_entries_only_after_they_are_persisted(void **st)
{
	(void)st;
	struct raft *r = mk(1, 1, NULL, 0);
	struct raft_entry e = {
	    .term = 1, .index = 1, .type = RAFT_ENTRY_NORMAL};
	step(r, (struct raft_message){.type = RAFT_MSG_APPEND,
				      .from = 2,
				      .term = 1,
				      .entries = &e,
				      .n_entries = 1,
				      .commit = 1});
	take(r);
	assert_null(sent(RAFT_MSG_APPEND_RESP, 2));
	assert_int_equal(U.n_committed, 0); /* not applied before durable */
	raft_persisted(r, 1, 1);
	take(r);
	const struct raft_message *m = sent(RAFT_MSG_APPEND_RESP, 2);
	assert_non_null(m);
	assert_false(m->reject);
	assert_int_equal(m->index, 1);
	assert_int_equal(U.n_committed, 1);
	raft_free(r);
}

/* Figure 2 AppendEntries 5: "If leaderCommit > commitIndex, set
 * commitIndex = min(leaderCommit, index of last new entry)". */
static void
test_follower_commit_is_min_of_leader_commit_and_last_new_entry(void **st)
{
	(void)st;
	uint64_t t[] = {1, 1, 1, 1, 1};
	struct raft *r = mk(1, 2, t, 5);
	step(r, (struct raft_message){.type = RAFT_MSG_APPEND,
				      .from = 2,
				      .term = 2,
				      .index = 2,
				      .log_term = 1,
				      .commit = 9});
	assert_int_equal(raft_commit_index(r), 2);
	raft_free(r);
}

/* §5.2/§8: a new leader appends a no-op entry of its own term. */
static void test_new_leader_appends_a_noop_of_its_term(void **st)
{
	(void)st;
	uint64_t t[] = {1, 1};
	struct raft *r = mk(1, 1, t, 2);
	elect(r);
	assert_int_equal(raft_last_index(r), 3);
	assert_int_equal(raft_term_at(r, 3), raft_term(r));
	assert_int_equal(U.n_entries, 1);
	assert_int_equal(U.entries[0].type, RAFT_ENTRY_NOOP);
	assert_non_null(sent(RAFT_MSG_APPEND, 2));
	raft_free(r);
}

/* §5.4.2 (Figure 8): "Raft never commits log entries from previous terms
 * by counting replicas. Only log entries from the leader's current term
 * are committed by counting replicas." */
static void
test_leader_never_commits_an_earlier_term_entry_by_counting_replicas(void **st)
{
	(void)st;
	uint64_t t[] = {1, 2};
	struct raft *r = mk(1, 2, t, 2);
	elect(r); /* term 3, no-op at 3 */
	raft_persisted(r, 3, 3);
	/* Follower 2 has entry 2 (term 2) but not yet the no-op. */
	step(r, (struct raft_message){.type = RAFT_MSG_APPEND_RESP,
				      .from = 2,
				      .term = 3,
				      .index = 2});
	assert_int_equal(raft_commit_index(r), 0);
	step(r, (struct raft_message){.type = RAFT_MSG_APPEND_RESP,
				      .from = 2,
				      .term = 3,
				      .index = 3});
	assert_int_equal(raft_commit_index(r), 3);
	raft_free(r);
}

/* The leader counts itself only once its own entries are durable. */
static void
test_leader_counts_its_own_entry_only_after_it_is_persisted(void **st)
{
	(void)st;
	struct raft *r = mk(1, 1, NULL, 0);
	elect(r);
	step(r, (struct raft_message){.type = RAFT_MSG_APPEND_RESP,
				      .from = 2,
				      .term = 2,
				      .index = 1});
	/* 2 of 3 have it: leader (not persisted) + 2 is not yet a quorum. */
	assert_int_equal(raft_commit_index(r), 0);
	step(r, (struct raft_message){.type = RAFT_MSG_APPEND_RESP,
				      .from = 3,
				      .term = 2,
				      .index = 1});
	assert_int_equal(raft_commit_index(r), 1);
	raft_free(r);
}

/* How many messages of type t the update sends to `to`. */
static size_t count_sent(enum raft_msg_type t, uint64_t to)
{
	size_t n = 0;
	for (size_t i = 0; i < U.n_msgs; i++)
		n += U.msgs[i].type == t && U.msgs[i].to == to;
	return n;
}

/* Appends that follow each other in one update go to a follower as one
 * message: a commit index learned from an ack and entries proposed after
 * it reach follower 2 together, and two proposals reach follower 3 in one
 * append, in order. */
static void test_leader_sends_one_append_per_follower_per_update(void **st)
{
	(void)st;
	struct raft *r = mk(1, 1, NULL, 0);
	elect(r); /* term 2, no-op at 1, probes sent */
	raft_persisted(r, 1, 2);
	step(r, (struct raft_message){.type = RAFT_MSG_APPEND_RESP,
				      .from = 3,
				      .term = 2,
				      .index = 1});
	take(r);
	assert_int_equal(raft_commit_index(r), 1);
	step(r, (struct raft_message){.type = RAFT_MSG_APPEND_RESP,
				      .from = 2,
				      .term = 2,
				      .index = 1});
	assert_int_equal(raft_propose(r, RAFT_ENTRY_NORMAL, "a", 1, NULL, NULL),
			 0);
	assert_int_equal(raft_propose(r, RAFT_ENTRY_NORMAL, "b", 1, NULL, NULL),
			 0);
	take(r);
	for (uint64_t to = 2; to <= 3; to++) {
		assert_int_equal(count_sent(RAFT_MSG_APPEND, to), 1);
		const struct raft_message *m = sent(RAFT_MSG_APPEND, to);
		assert_int_equal(m->index, 1);
		assert_int_equal(m->log_term, 2);
		assert_int_equal(m->commit, 1);
		assert_int_equal(m->n_entries, 2);
		assert_int_equal(m->entries[0].index, 2);
		assert_memory_equal(m->entries[0].data, "a", 1);
		assert_int_equal(m->entries[1].index, 3);
		assert_memory_equal(m->entries[1].data, "b", 1);
	}
	raft_free(r);
}

/* Pre-Vote (§9.6 diss.): asking for votes does not change the term. */
static void test_pre_candidate_does_not_change_its_term(void **st)
{
	(void)st;
	struct raft *r = mk(1, 4, NULL, 0);
	for (int i = 0; i < 40 && raft_role(r) == RAFT_FOLLOWER; i++)
		raft_tick(r);
	take(r);
	assert_int_equal(raft_role(r), RAFT_PRE_CANDIDATE);
	assert_int_equal(raft_term(r), 4);
	const struct raft_message *m = sent(RAFT_MSG_PREVOTE, 2);
	assert_non_null(m);
	assert_int_equal(m->term, 5);
	assert_false(U.hard_state_changed);
	raft_free(r);
}

/* The lease: a follower that hears from its leader ignores a vote request
 * of a higher term (a restarted or partitioned node cannot depose it). */
static void test_follower_in_lease_ignores_vote_of_higher_term(void **st)
{
	(void)st;
	struct raft *r = mk(1, 2, NULL, 0);
	step(r, (struct raft_message){
		    .type = RAFT_MSG_HEARTBEAT, .from = 2, .term = 2});
	take(r);
	step(r, vote(3, 7, 10, 7));
	take(r);
	assert_null(sent(RAFT_MSG_VOTE_RESP, 3));
	assert_int_equal(raft_term(r), 2);
	assert_int_equal(raft_leader(r), 2);
	raft_free(r);
}

static struct raft_message prevote(uint64_t from, uint64_t term, uint64_t last,
				   uint64_t last_term)
{
	struct raft_message m = vote(from, term, last, last_term);
	m.type = RAFT_MSG_PREVOTE;
	return m;
}

/* Tick n times; true if no (pre-)vote request went out and r stayed a
 * follower. */
static bool ticks_without_campaign(struct raft *r, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		raft_tick(r);
		take(r);
		if (raft_role(r) != RAFT_FOLLOWER ||
		    sent(RAFT_MSG_PREVOTE, 0) || sent(RAFT_MSG_VOTE, 0))
			return false;
	}
	return true;
}

/* Issue 20: the store dropped a damaged entry 4 this node may have
 * acknowledged (raft_restore.abstain_until = 4). Requests a node with the
 * same log grants are refused, election timeouts pass, TimeoutNow is
 * ignored; the node still follows a leader and appends, and stays out of
 * elections while its log ends before 4. */
static void
test_abstaining_node_refuses_votes_and_prevotes_and_never_campaigns(void **st)
{
	(void)st;
	uint64_t t[] = {1, 2};
	struct raft *same = mk(1, 2, t, 2);
	step(same, prevote(2, 3, 3, 2));
	step(same, vote(2, 3, 3, 2));
	take(same);
	assert_false(sent(RAFT_MSG_PREVOTE_RESP, 2)->reject);
	assert_false(sent(RAFT_MSG_VOTE_RESP, 2)->reject);
	raft_free(same);

	struct raft *r = mk_abstaining(1, 2, t, 2, 4);
	step(r, prevote(2, 3, 3, 2));
	step(r, vote(2, 3, 3, 2));
	take(r);
	assert_true(sent(RAFT_MSG_PREVOTE_RESP, 2)->reject);
	assert_true(sent(RAFT_MSG_VOTE_RESP, 2)->reject);
	assert_int_equal(raft_term(r), 3); /* terms still order everything */
	assert_int_equal(U.vote, RAFT_NONE);
	assert_true(ticks_without_campaign(r, 100));
	step(r, (struct raft_message){
		    .type = RAFT_MSG_TIMEOUT_NOW, .from = 2, .term = 3});
	take(r);
	assert_null(sent(RAFT_MSG_VOTE, 0));
	assert_int_equal(raft_role(r), RAFT_FOLLOWER);
	assert_int_equal(raft_term(r), 3);

	struct raft_entry e3 = {.term = 3, .index = 3, .type = RAFT_ENTRY_NOOP};
	step(r, append(2, 3, 2, 2, &e3, 1));
	raft_persisted(r, 3, 3);
	take(r);
	const struct raft_message *ack = sent(RAFT_MSG_APPEND_RESP, 2);
	assert_non_null(ack);
	assert_false(ack->reject);
	assert_int_equal(ack->index, 3);
	assert_true(ticks_without_campaign(r, 100));
	struct raft_message v = vote(3, 4, 3, 3);
	v.transfer = true; /* past the lease of leader 2 */
	step(r, v);
	take(r);
	assert_true(sent(RAFT_MSG_VOTE_RESP, 3)->reject);
	raft_free(r);
}

/* ... and once a leader's appends bring its log to index 4, it campaigns
 * and votes again. */
static void
test_abstaining_node_votes_again_once_a_leader_brings_its_log_there(void **st)
{
	(void)st;
	uint64_t t[] = {1, 2};
	struct raft *r = mk_abstaining(1, 2, t, 2, 4);
	struct raft_entry e3 = {.term = 3, .index = 3, .type = RAFT_ENTRY_NOOP};
	struct raft_entry e4 = {
	    .term = 3, .index = 4, .type = RAFT_ENTRY_NORMAL};
	step(r, append(2, 3, 2, 2, &e3, 1));
	step(r, append(2, 3, 3, 3, &e4, 1));
	take(r);
	assert_int_equal(raft_last_index(r), 4);
	for (int i = 0; i < 40 && raft_role(r) == RAFT_FOLLOWER; i++)
		raft_tick(r);
	assert_int_equal(raft_role(r), RAFT_PRE_CANDIDATE);
	take(r);
	assert_non_null(sent(RAFT_MSG_PREVOTE, 2));
	step(r, vote(3, 4, 4, 3));
	take(r);
	const struct raft_message *m = sent(RAFT_MSG_VOTE_RESP, 3);
	assert_non_null(m);
	assert_false(m->reject);
	assert_true(U.hard_state_changed);
	assert_int_equal(U.vote, 3);
	raft_free(r);
}

/* ---- Leadership transfer (§3.10 diss.) ---- */

static struct raft_message ack(uint64_t from, uint64_t term, uint64_t index)
{
	return (struct raft_message){.type = RAFT_MSG_APPEND_RESP,
				     .from = from,
				     .term = term,
				     .index = index};
}

static struct raft_message hb_resp(uint64_t from, uint64_t term)
{
	return (struct raft_message){
	    .type = RAFT_MSG_HEARTBEAT_RESP, .from = from, .term = term};
}

/* Node 1 leader of term 2 with the no-op at 1, durable; follower 2 has
 * it, follower 3 has nothing acknowledged. */
static struct raft *leader_with_2_caught_up(void)
{
	struct raft *r = mk(1, 1, NULL, 0);
	elect(r);
	raft_persisted(r, 1, 2);
	step(r, ack(2, 2, 1));
	take(r);
	assert_int_equal(raft_commit_index(r), 1);
	return r;
}

/* §3.10: "the prior leader ... sends it a TimeoutNow request" once the
 * target's log matches its own: at once when it already does. */
static void
test_transfer_to_a_caught_up_voter_sends_timeout_now_at_once(void **st)
{
	(void)st;
	struct raft *r = leader_with_2_caught_up();
	assert_int_equal(raft_transfer_leadership(r, 2), 0);
	assert_int_equal(raft_transferee(r), 2);
	take(r);
	const struct raft_message *m = sent(RAFT_MSG_TIMEOUT_NOW, 2);
	assert_non_null(m);
	assert_int_equal(m->term, 2);
	assert_null(sent(RAFT_MSG_TIMEOUT_NOW, 3));
	raft_free(r);
}

/* §3.10: "the prior leader ... fully updates the target server's log to
 * match its own" before the TimeoutNow. */
static void
test_transfer_brings_the_target_up_to_date_before_timeout_now(void **st)
{
	(void)st;
	struct raft *r = leader_with_2_caught_up();
	assert_int_equal(raft_transfer_leadership(r, 3), 0);
	take(r);
	assert_null(sent(RAFT_MSG_TIMEOUT_NOW, 3)); /* its append is out */
	step(r, ack(3, 2, 0));
	take(r);
	assert_null(sent(RAFT_MSG_TIMEOUT_NOW, 3));
	step(r, ack(3, 2, 1));
	take(r);
	assert_non_null(sent(RAFT_MSG_TIMEOUT_NOW, 3));
	raft_free(r);
}

/* §3.10: "the prior leader stops accepting new client requests" during the
 * transfer; membership changes wait too, and a second transfer elsewhere
 * is refused (the same one again is not an error). */
static void
test_leader_refuses_proposals_and_changes_during_a_transfer(void **st)
{
	(void)st;
	struct raft *r = leader_with_2_caught_up();
	assert_int_equal(raft_transfer_leadership(r, 3), 0);
	assert_int_equal(raft_propose(r, RAFT_ENTRY_NORMAL, "x", 1, NULL, NULL),
			 RAFT_EBUSY);
	assert_int_equal(
	    raft_change_membership(r, RAFT_CONF_REMOVE, 2, NULL, NULL),
	    RAFT_EBUSY);
	assert_int_equal(raft_transfer_leadership(r, 2), RAFT_EBUSY);
	assert_int_equal(raft_transfer_leadership(r, 3), 0);
	assert_int_equal(raft_transfer_leadership(r, RAFT_NONE), 0);
	assert_int_equal(raft_transferee(r), 3);
	raft_free(r);
}

/* §3.10: "If the transfer does not complete within an election timeout,
 * the prior leader aborts the transfer and resumes accepting client
 * requests." */
static void test_transfer_is_abandoned_after_an_election_timeout(void **st)
{
	(void)st;
	struct raft *r = leader_with_2_caught_up();
	assert_int_equal(raft_transfer_leadership(r, 3), 0); /* 3 is silent */
	for (int i = 0; i < 9; i++) {
		step(r, hb_resp(2, 2));
		raft_tick(r);
		take(r);
		assert_int_equal(raft_transferee(r), 3);
	}
	step(r, hb_resp(2, 2));
	raft_tick(r); /* the 10th tick: one election timeout */
	take(r);
	assert_int_equal(raft_role(r), RAFT_LEADER);
	assert_int_equal(raft_transferee(r), RAFT_NONE);
	assert_int_equal(raft_propose(r, RAFT_ENTRY_NORMAL, "x", 1, NULL, NULL),
			 0);
	raft_free(r);
}

/* §3.10: "Upon receiving TimeoutNow, the target server ... begins a new
 * election" at once: no pre-vote, and its requests say it is a transfer. */
static void
test_timeout_now_starts_an_election_at_once_without_pre_vote(void **st)
{
	(void)st;
	struct raft *r = mk(2, 2, NULL, 0);
	step(r, (struct raft_message){
		    .type = RAFT_MSG_HEARTBEAT, .from = 1, .term = 2});
	take(r);
	step(r, (struct raft_message){
		    .type = RAFT_MSG_TIMEOUT_NOW, .from = 1, .term = 2});
	take(r);
	assert_int_equal(raft_role(r), RAFT_CANDIDATE);
	assert_int_equal(raft_term(r), 3);
	assert_null(sent(RAFT_MSG_PREVOTE, 0));
	for (uint64_t to = 1; to <= 3; to += 2) {
		const struct raft_message *m = sent(RAFT_MSG_VOTE, to);
		assert_non_null(m);
		assert_int_equal(m->term, 3);
		assert_true(m->transfer);
	}
	raft_free(r);
}

/* The lease (§4.2.3 diss.) lets a transfer's vote through: a follower
 * that hears from its leader, and the leader itself, grant it, where
 * the same request without the flag is ignored. */
static void
test_transfer_vote_gets_past_the_lease_of_follower_and_leader(void **st)
{
	(void)st;
	struct raft *f = mk(1, 2, NULL, 0);
	step(f, (struct raft_message){
		    .type = RAFT_MSG_HEARTBEAT, .from = 2, .term = 2});
	struct raft_message v = vote(3, 3, 0, 0);
	v.transfer = true;
	step(f, v);
	take(f);
	assert_non_null(sent(RAFT_MSG_VOTE_RESP, 3));
	assert_false(sent(RAFT_MSG_VOTE_RESP, 3)->reject);
	assert_int_equal(raft_term(f), 3);
	assert_int_equal(U.vote, 3);
	raft_free(f);

	struct raft *l = leader_with_2_caught_up();
	step(l, vote(2, 3, 1, 2)); /* no flag: ignored, the lease holds */
	take(l);
	assert_null(sent(RAFT_MSG_VOTE_RESP, 2));
	assert_int_equal(raft_role(l), RAFT_LEADER);
	v = vote(2, 3, 1, 2);
	v.transfer = true;
	step(l, v);
	take(l);
	assert_int_equal(raft_role(l), RAFT_FOLLOWER);
	assert_int_equal(raft_term(l), 3);
	assert_false(sent(RAFT_MSG_VOTE_RESP, 2)->reject);
	raft_free(l);
}

/* Only a voter can take over: a learner (§4.2.1 diss.) or a stranger is
 * refused, and only the leader transfers. */
static void test_transfer_to_a_learner_or_a_stranger_is_refused(void **st)
{
	(void)st;
	struct raft_restore rs = {.term = 1};
	rs.snapshot.conf = conf3();
	rs.snapshot.conf.servers[2].role = RAFT_LEARNER;
	struct raft_options o = {.id = 1, .seed = 42};
	struct raft *r;
	assert_int_equal(raft_new(&o, &rs, &r), 0);
	assert_int_equal(raft_transfer_leadership(r, 2), RAFT_ENOTLEADER);
	elect(r);
	assert_int_equal(raft_transfer_leadership(r, 3), RAFT_EINVAL);
	assert_int_equal(raft_transfer_leadership(r, 9), RAFT_EINVAL);
	assert_int_equal(raft_transferee(r), RAFT_NONE);
	assert_int_equal(raft_transfer_leadership(r, 1), 0); /* itself: done */
	assert_int_equal(raft_transferee(r), RAFT_NONE);
	raft_free(r);
}

/* raft_transfer_leadership(RAFT_NONE): the voter with the longest log. */
static void
test_transfer_to_no_one_in_particular_picks_the_longest_log(void **st)
{
	(void)st;
	struct raft *r = leader_with_2_caught_up();
	assert_int_equal(raft_propose(r, RAFT_ENTRY_NORMAL, "x", 1, NULL, NULL),
			 0);
	raft_persisted(r, 2, 2);
	step(r, ack(3, 2, 2)); /* 3 has 2 entries, 2 only one */
	take(r);
	assert_int_equal(raft_transfer_leadership(r, RAFT_NONE), 0);
	assert_int_equal(raft_transferee(r), 3);
	take(r);
	assert_non_null(sent(RAFT_MSG_TIMEOUT_NOW, 3));
	raft_free(r);
}

/* ... but among those that answer now: a voter silent for more than two
 * heartbeat intervals (a follower that just restarted, which its leader
 * cannot reach yet) would lose the TimeoutNow. */
static void
test_transfer_to_no_one_in_particular_skips_a_silent_voter(void **st)
{
	(void)st;
	struct raft *r = leader_with_2_caught_up();
	assert_int_equal(raft_propose(r, RAFT_ENTRY_NORMAL, "x", 1, NULL, NULL),
			 0);
	raft_persisted(r, 2, 2);
	step(r, ack(3, 2, 2)); /* 3 has the longer log, then falls silent */
	for (int i = 0; i < 5; i++) {
		step(r, hb_resp(2, 2));
		raft_tick(r);
		take(r);
	}
	assert_int_equal(raft_transfer_leadership(r, RAFT_NONE), 0);
	assert_int_equal(raft_transferee(r), 2);
	raft_free(r);
}

/* raft_set_candidacy(false) (a member that cannot write its log): no
 * campaign, TimeoutNow ignored; it still votes; yes again and it stands. */
static void test_member_that_may_not_be_candidate_never_campaigns(void **st)
{
	(void)st;
	struct raft *r = mk(1, 2, NULL, 0);
	raft_set_candidacy(r, false);
	assert_false(raft_candidacy(r));
	assert_true(ticks_without_campaign(r, 100));
	step(r, (struct raft_message){
		    .type = RAFT_MSG_TIMEOUT_NOW, .from = 2, .term = 2});
	take(r);
	assert_null(sent(RAFT_MSG_VOTE, 0));
	assert_int_equal(raft_role(r), RAFT_FOLLOWER);
	step(r, vote(3, 3, 0, 0));
	take(r);
	assert_false(sent(RAFT_MSG_VOTE_RESP, 3)->reject);
	raft_set_candidacy(r, true);
	for (int i = 0; i < 40 && raft_role(r) == RAFT_FOLLOWER; i++)
		raft_tick(r);
	assert_int_equal(raft_role(r), RAFT_PRE_CANDIDATE);
	raft_free(r);
}

/* A leader that may not be a candidate hands over to the most caught-up
 * voter at its next tick; when that transfer is abandoned it steps down
 * (and stays out of elections), so the others elect one of their own. */
static void
test_leader_that_may_not_be_candidate_hands_over_or_steps_down(void **st)
{
	(void)st;
	struct raft *r = leader_with_2_caught_up();
	raft_set_candidacy(r, false);
	raft_tick(r);
	take(r);
	assert_int_equal(raft_transferee(r), 2);
	assert_non_null(sent(RAFT_MSG_TIMEOUT_NOW, 2));
	assert_int_equal(raft_propose(r, RAFT_ENTRY_NORMAL, "x", 1, NULL, NULL),
			 RAFT_EBUSY);
	for (int i = 0; i < 20 && raft_role(r) == RAFT_LEADER; i++) {
		step(r, hb_resp(2, 2)); /* 2 answers, never takes over */
		step(r, hb_resp(3, 2));
		raft_tick(r);
		take(r);
	}
	assert_int_equal(raft_role(r), RAFT_FOLLOWER);
	assert_int_equal(raft_term(r), 2);
	assert_true(ticks_without_campaign(r, 100));
	raft_free(r);
}

/* A proposal on a follower: "not leader, the leader is X". */
static void test_proposal_on_follower_names_the_leader(void **st)
{
	(void)st;
	struct raft *r = mk(1, 2, NULL, 0);
	step(r, (struct raft_message){
		    .type = RAFT_MSG_HEARTBEAT, .from = 3, .term = 2});
	assert_int_equal(raft_propose(r, RAFT_ENTRY_NORMAL, "x", 1, NULL, NULL),
			 RAFT_ENOTLEADER);
	assert_int_equal(raft_leader(r), 3);
	raft_free(r);
}

/* §7: a follower whose next entry was compacted gets a snapshot. */
static void
test_leader_sends_snapshot_when_follower_needs_compacted_entries(void **st)
{
	(void)st;
	uint64_t t[] = {1, 1, 1, 1};
	struct raft *r = mk(1, 1, t, 4);
	elect(r);
	raft_persisted(r, 5, 2);
	step(r, (struct raft_message){.type = RAFT_MSG_APPEND_RESP,
				      .from = 2,
				      .term = 2,
				      .index = 5});
	take(r);
	assert_int_equal(raft_commit_index(r), 5);
	assert_int_equal(raft_compact(r, 4), 0);
	/* Follower 3 says its log is empty. */
	step(r, (struct raft_message){.type = RAFT_MSG_APPEND_RESP,
				      .from = 3,
				      .term = 2,
				      .reject = true,
				      .index = 4,
				      .hint_index = 0});
	take(r);
	const struct raft_message *m = sent(RAFT_MSG_SNAPSHOT, 3);
	assert_non_null(m);
	assert_int_equal(m->snapshot.index, 4);
	assert_int_equal(m->snapshot.term, 1);
	assert_int_equal(m->snapshot.conf.n, 3);
	raft_free(r);
}

/* §6.4 ReadIndex: the read index is released only after a quorum answers
 * a heartbeat round started after the read arrived. */
static void test_read_index_waits_for_a_quorum_heartbeat_round(void **st)
{
	(void)st;
	struct raft *r = mk(1, 1, NULL, 0);
	elect(r);
	raft_persisted(r, 1, 2);
	step(r, (struct raft_message){.type = RAFT_MSG_APPEND_RESP,
				      .from = 2,
				      .term = 2,
				      .index = 1});
	take(r);
	assert_int_equal(raft_read_index(r, 77), 0);
	take(r);
	assert_int_equal(U.n_reads, 0);
	const struct raft_message *hb = sent(RAFT_MSG_HEARTBEAT, 3);
	assert_non_null(hb);
	uint64_t round = hb->ctx;
	step(r, (struct raft_message){.type = RAFT_MSG_HEARTBEAT_RESP,
				      .from = 3,
				      .term = 2,
				      .ctx = round - 1});
	take(r);
	assert_int_equal(U.n_reads, 0);
	step(r, (struct raft_message){.type = RAFT_MSG_HEARTBEAT_RESP,
				      .from = 3,
				      .term = 2,
				      .ctx = round});
	take(r);
	assert_int_equal(U.n_reads, 1);
	assert_int_equal(U.reads[0].ctx, 77);
	assert_int_equal(U.reads[0].index, 1);
	assert_int_equal(U.reads[0].err, 0);
	raft_free(r);
}

/* A read needs no round only on the leader that is the only voter of a
 * committed configuration and has committed in its term: a learner does
 * not count, a configuration change turns it off from its append. And a
 * voter's READ_INDEX completes a quorum with the leader
 * (raft_read_by_asker, which lets the node answer it on its receiving
 * thread) only with two or three voters, committed, after the leader's
 * first commit in its term. */
static void test_read_is_local_only_for_a_sole_voter_leader(void **st)
{
	(void)st;
	struct raft_restore rs = {.term = 1};
	rs.snapshot.conf = (struct raft_config){.n = 1};
	rs.snapshot.conf.servers[0].id = 1;
	rs.snapshot.conf.servers[0].role = RAFT_VOTER;
	struct raft_options o = {.id = 1, .seed = 42};
	struct raft *r;
	assert_int_equal(raft_new(&o, &rs, &r), 0);
	for (int i = 0; i < 40 && raft_role(r) != RAFT_LEADER; i++)
		raft_tick(r);
	assert_int_equal(raft_role(r), RAFT_LEADER);
	take(r);
	/* its no-op not yet durable, so not committed */
	assert_false(raft_read_is_local(r));
	raft_persisted(r, raft_last_index(r), raft_term(r));
	take(r);
	assert_true(raft_read_is_local(r));
	assert_false(raft_read_by_asker(r)); /* no other voter to ask */
	uint64_t idx;
	assert_int_equal(raft_change_membership(r, RAFT_CONF_ADD_LEARNER, 2,
						"127.0.0.1:2", &idx),
			 0);
	assert_false(raft_read_is_local(r)); /* in effect, not committed */
	take(r);
	raft_persisted(r, raft_last_index(r), raft_term(r));
	take(r);
	assert_true(raft_read_is_local(r)); /* a learner does not vote */
	assert_int_equal(raft_change_membership(r, RAFT_CONF_PROMOTE, 2,
						"127.0.0.1:2", &idx),
			 0);
	assert_false(raft_read_is_local(r));
	assert_false(raft_read_by_asker(r)); /* in effect, not committed */
	take(r);
	raft_persisted(r, raft_last_index(r), raft_term(r));
	step(r, (struct raft_message){.type = RAFT_MSG_APPEND_RESP,
				      .from = 2,
				      .term = raft_term(r),
				      .index = idx});
	take(r);
	assert_int_equal(raft_commit_index(r), idx);
	assert_false(raft_read_is_local(r)); /* two voters */
	assert_true(raft_read_by_asker(r));  /* the asker and we: both */
	raft_free(r);

	/* a leader of three, committed in its term */
	r = mk(1, 1, NULL, 0);
	elect(r);
	assert_false(raft_read_by_asker(r)); /* nothing of its term yet */
	raft_persisted(r, 1, 2);
	step(r, (struct raft_message){.type = RAFT_MSG_APPEND_RESP,
				      .from = 2,
				      .term = 2,
				      .index = 1});
	take(r);
	assert_int_equal(raft_commit_index(r), 1);
	assert_false(raft_read_is_local(r));
	assert_true(raft_read_by_asker(r)); /* any one voter and we */
	raft_free(r);
}

/* The only voter of its configuration is a majority by itself: it leads
 * at its first tick, on a fresh start and on a restart, instead of an
 * election timeout later; it still bumps the term and votes for itself in
 * the update that carries its no-op (the hard state is made durable
 * first, raft.h), and counts the no-op only once it is persisted. With a
 * second voter or while abstaining, the first tick campaigns for no one. */
static void test_sole_voter_leads_at_its_first_tick(void **st)
{
	(void)st;
	struct raft_restore rs = {.term = 0};
	rs.snapshot.conf = (struct raft_config){.n = 2};
	rs.snapshot.conf.servers[0] =
	    (struct raft_server){.id = 1, .role = RAFT_VOTER};
	rs.snapshot.conf.servers[1] =
	    (struct raft_server){.id = 2, .role = RAFT_LEARNER};
	struct raft_options o = {.id = 1, .seed = 42};
	struct raft *r;
	assert_int_equal(raft_new(&o, &rs, &r), 0);
	take(r);
	assert_int_equal(raft_role(r), RAFT_FOLLOWER);
	raft_tick(r);
	assert_int_equal(raft_role(r), RAFT_LEADER);
	take(r);
	assert_true(U.hard_state_changed);
	assert_int_equal(U.term, 1);
	assert_int_equal(U.vote, 1);
	assert_int_equal(U.n_entries, 1);
	assert_int_equal(U.entries[0].type, RAFT_ENTRY_NOOP);
	assert_int_equal(U.entries[0].term, 1);
	assert_int_equal(raft_commit_index(r), 0);
	raft_persisted(r, 1, 1);
	take(r);
	assert_int_equal(raft_commit_index(r), 1);
	raft_free(r);

	/* restarted at term 3 (voted for itself) with its log: term 4 */
	struct raft_entry e[2] = {{.index = 1, .term = 1},
				  {.index = 2, .term = 3}};
	rs.term = 3;
	rs.vote = 1;
	rs.entries = e;
	rs.n_entries = 2;
	rs.applied = 1;
	assert_int_equal(raft_new(&o, &rs, &r), 0);
	raft_tick(r);
	assert_int_equal(raft_role(r), RAFT_LEADER);
	take(r);
	assert_true(U.hard_state_changed);
	assert_int_equal(U.term, 4);
	assert_int_equal(U.vote, 1);
	assert_int_equal(raft_last_index(r), 3);
	assert_int_equal(raft_term_at(r, 3), 4);
	raft_free(r);

	/* abstaining (a damaged last entry): it does not campaign */
	rs.abstain_until = 3;
	assert_int_equal(raft_new(&o, &rs, &r), 0);
	for (int i = 0; i < 40; i++)
		raft_tick(r);
	assert_int_equal(raft_role(r), RAFT_FOLLOWER);
	raft_free(r);

	/* one of two voters: the first tick waits for the timeout */
	rs.abstain_until = 0;
	rs.snapshot.conf.servers[1].role = RAFT_VOTER;
	assert_int_equal(raft_new(&o, &rs, &r), 0);
	raft_tick(r);
	assert_int_equal(raft_role(r), RAFT_FOLLOWER);
	take(r);
	assert_null(sent(RAFT_MSG_PREVOTE, 2));
	raft_free(r);
}

/* §6.4 with the asker's request as its acknowledgement: a follower of
 * the leader's term asked after its reads arrived, so the leader and it
 * are a quorum of three then, and the read is answered at once, with no
 * heartbeat round; a stranger's request is not an acknowledgement. */
static void test_follower_read_index_counts_as_its_ack(void **st)
{
	(void)st;
	struct raft *r = mk(1, 1, NULL, 0);
	elect(r);
	raft_persisted(r, 1, 2);
	step(r, (struct raft_message){.type = RAFT_MSG_APPEND_RESP,
				      .from = 2,
				      .term = 2,
				      .index = 1});
	take(r);
	step(r,
	     (struct raft_message){
		 .type = RAFT_MSG_READ_INDEX, .from = 3, .term = 2, .ctx = 9});
	take(r);
	const struct raft_message *m = sent(RAFT_MSG_READ_INDEX_RESP, 3);
	assert_non_null(m);
	assert_int_equal(m->ctx, 9);
	assert_int_equal(m->index, 1);
	assert_false(m->reject);
	assert_null(sent(RAFT_MSG_HEARTBEAT, 0));
	/* from a non-member: it waits for a round of the voters */
	step(r,
	     (struct raft_message){
		 .type = RAFT_MSG_READ_INDEX, .from = 7, .term = 2, .ctx = 10});
	take(r);
	assert_null(sent(RAFT_MSG_READ_INDEX_RESP, 7));
	const struct raft_message *hb = sent(RAFT_MSG_HEARTBEAT, 2);
	assert_non_null(hb);
	step(r, (struct raft_message){.type = RAFT_MSG_HEARTBEAT_RESP,
				      .from = 2,
				      .term = 2,
				      .ctx = hb->ctx});
	take(r);
	assert_non_null(sent(RAFT_MSG_READ_INDEX_RESP, 7));
	raft_free(r);
}

/* Heartbeat answers from follower 2 (log up to 1, so no progress) until
 * the leader sends entry 2 again; how many it took (at most 20). */
static int heartbeats_until_resent(struct raft *r)
{
	for (int k = 1; k <= 20; k++) {
		step(r, (struct raft_message){.type = RAFT_MSG_HEARTBEAT_RESP,
					      .from = 2,
					      .term = raft_term(r),
					      .index = 1});
		take(r);
		const struct raft_message *m = sent(RAFT_MSG_APPEND, 2);
		if (m && m->n_entries && m->entries[0].index == 2)
			return k;
	}
	return 0;
}

/* A leader that hears heartbeat answers but no ack gives its appends up
 * as lost and resends them (etcd's probe after a stall); for an entry
 * that takes time to travel, not before that time (resend_bytes_per_
 * heartbeat): a 16 MiB entry resent every few heartbeats would follow
 * itself down the stream again and again. */
static void
test_leader_resends_a_big_append_only_after_its_size_allows(void **st)
{
	(void)st;
	size_t sizes[] = {1, 12u << 20};
	int want_replicate[] = {3, 6}, want_probe[] = {1, 4};
	for (int i = 0; i < 2; i++) {
		struct raft *r = mk(1, 1, NULL, 0);
		elect(r);
		raft_persisted(r, 1, 2);
		step(r, (struct raft_message){.type = RAFT_MSG_APPEND_RESP,
					      .from = 2,
					      .term = 2,
					      .index = 1});
		take(r);
		char *data = calloc(1, sizes[i]);
		assert_int_equal(raft_propose(r, RAFT_ENTRY_NORMAL, data,
					      sizes[i], NULL, NULL),
				 0);
		free(data);
		take(r);
		assert_non_null(sent(RAFT_MSG_APPEND, 2));
		/* REPLICATE: three answers without progress, and one more
		 * for each 4 MiB */
		assert_int_equal(heartbeats_until_resent(r), want_replicate[i]);
		/* then PROBE: again at the next answer, or after 3 more */
		assert_int_equal(heartbeats_until_resent(r), want_probe[i]);
		raft_free(r);
	}
}

/* borrow_entries: the update's entries and committed are the log's own
 * data, and freeing the update leaves them (ASan would see a double
 * free or a read after free). */
static void test_borrowed_update_entries_are_the_logs_own(void **st)
{
	(void)st;
	struct raft_restore rs = {.term = 1};
	rs.snapshot.conf = conf3();
	struct raft_options o = {.id = 1, .seed = 42, .borrow_entries = true};
	struct raft *r;
	assert_int_equal(raft_new(&o, &rs, &r), 0);
	elect(r);
	assert_true(U.borrowed);
	assert_int_equal(
	    raft_propose(r, RAFT_ENTRY_NORMAL, "abc", 3, NULL, NULL), 0);
	take(r);
	assert_true(U.borrowed);
	assert_int_equal(U.n_entries, 1);
	const void *data = U.entries[0].data;
	assert_memory_equal(data, "abc", 3);
	raft_persisted(r, 2, 2);
	step(r, (struct raft_message){.type = RAFT_MSG_APPEND_RESP,
				      .from = 2,
				      .term = 2,
				      .index = 2});
	take(r);
	assert_int_equal(U.n_committed, 2);
	assert_ptr_equal(U.committed[1].data, data);
	assert_memory_equal(U.committed[1].data, "abc", 3);
	raft_update_free(&U);
	memset(&U, 0, sizeof(U));
	raft_free(r);
}

/* Shared entry data (raft.h, struct raft_entry) is kept and sent by
 * reference: a proposal given shared is the very buffer of the leader's
 * log and of its appends to both followers (each holding a reference
 * that outlives the proposer's and the core's), and a follower keeps a
 * shared entry of an append without copying it. ASan sees a reference
 * dropped too often (use after free) or never (a leak). */
static void test_shared_entry_data_is_kept_and_sent_without_a_copy(void **st)
{
	(void)st;
	struct raft_restore rs = {.term = 1};
	rs.snapshot.conf = conf3();
	struct raft_options o = {.id = 1, .seed = 42, .borrow_entries = true};
	struct raft *r;
	assert_int_equal(raft_new(&o, &rs, &r), 0);
	elect(r);
	take(r);
	raft_persisted(r, 1, 2); /* the new leader's no-op, answered */
	for (uint64_t id = 2; id <= 3; id++)
		step(r, (struct raft_message){.type = RAFT_MSG_APPEND_RESP,
					      .from = id,
					      .term = 2,
					      .index = 1});
	take(r);
	struct raft_entry e = {
	    .type = RAFT_ENTRY_NORMAL, .data = strdup("shared"), .len = 6};
	assert_int_equal(raft_entry_share(&e), 0);
	assert_non_null(e.buf);
	const void *data = e.data;
	assert_int_equal(raft_propose_entry(r, &e, NULL, NULL), 0);
	raft_entry_release(&e); /* the proposer's reference */
	take(r);
	assert_ptr_equal(U.entries[0].data, data);
	const struct raft_message *m2 = sent(RAFT_MSG_APPEND, 2);
	const struct raft_message *m3 = sent(RAFT_MSG_APPEND, 3);
	assert_non_null(m2);
	assert_non_null(m3);
	assert_ptr_equal(m2->entries[m2->n_entries - 1].data, data);
	assert_ptr_equal(m3->entries[m3->n_entries - 1].data, data);
	/* keep one append beyond the update and the core */
	struct raft_message kept = *m2;
	U.msgs[m2 - U.msgs].type = RAFT_MSG_NONE;
	U.msgs[m2 - U.msgs].entries = NULL;
	U.msgs[m2 - U.msgs].n_entries = 0;
	raft_update_free(&U);
	memset(&U, 0, sizeof(U));
	raft_free(r);
	assert_memory_equal(kept.entries[kept.n_entries - 1].data, "shared", 6);
	/* a follower given the append keeps the same buffer */
	assert_int_equal(kept.index, 1);
	assert_int_equal(kept.n_entries, 1);
	struct raft_entry noop = {
	    .term = 2, .index = 1, .type = RAFT_ENTRY_NOOP};
	struct raft_restore frs = {.term = 2, .entries = &noop, .n_entries = 1};
	frs.snapshot.conf = conf3();
	struct raft_options fo = {.id = 2, .seed = 7, .borrow_entries = true};
	struct raft *f;
	assert_int_equal(raft_new(&fo, &frs, &f), 0);
	assert_int_equal(raft_step(f, &kept), 0);
	raft_message_clear(&kept);
	take(f);
	assert_int_equal(U.n_entries, 1);
	assert_ptr_equal(U.entries[0].data, data);
	assert_memory_equal(U.entries[0].data, "shared", 6);
	raft_update_free(&U);
	memset(&U, 0, sizeof(U));
	raft_free(f);
}

static void test_config_text_round_trips_and_rejects_garbage(void **st)
{
	(void)st;
	struct raft_config c = conf3(), d;
	c.servers[2].role = RAFT_LEARNER;
	strcpy(c.servers[1].addr, "127.0.0.1:7002");
	char buf[512];
	int len = raft_config_encode(&c, buf, sizeof(buf));
	assert_true(len > 0);
	assert_int_equal(raft_config_decode(buf, (size_t)len, &d), 0);
	assert_memory_equal(&c, &d, sizeof(c));
	assert_int_equal(raft_config_decode("raftconf 2\n", 11, &d),
			 RAFT_EINVAL);
	assert_int_equal(raft_config_decode("raftconf 1\n1 x -\n", 17, &d),
			 RAFT_EINVAL);
}

static int foreign_released;

static void release_block(void *ctx)
{
	foreign_released++;
	free(ctx);
}

/* A restart's entries given sharing one foreign buffer (raft_buf_foreign,
 * the store's block of them) are kept by reference, not copied; once
 * raft_log_own gives the log's entries bytes of their own, the last
 * reference goes and the block is released, once, and what the core
 * commits afterwards is its own copy (ASan: no read of the freed block,
 * no leak). */
static void test_restored_entries_share_a_foreign_block(void **st)
{
	(void)st;
	foreign_released = 0;
	char *block = malloc(9);
	memcpy(block, "aaabbbccc", 9);
	struct raft_buf *b = raft_buf_foreign(4, release_block, block);
	assert_non_null(b);
	struct raft_entry e[3];
	for (unsigned i = 0; i < 3; i++)
		e[i] = (struct raft_entry){.index = i + 1,
					   .term = 1,
					   .type = RAFT_ENTRY_NORMAL,
					   .data = block + 3 * i,
					   .len = 3,
					   .buf = b};
	struct raft_restore rs = {.term = 1, .entries = e, .n_entries = 3};
	rs.snapshot.conf = (struct raft_config){.n = 1};
	rs.snapshot.conf.servers[0] =
	    (struct raft_server){.id = 1, .role = RAFT_VOTER};
	struct raft_options o = {.id = 1, .seed = 42, .borrow_entries = true};
	struct raft *r;
	assert_int_equal(raft_new(&o, &rs, &r), 0);
	for (unsigned i = 0; i < 3; i++)
		raft_buf_unref(e[i].buf); /* the caller's, as the node does */
	assert_int_equal(foreign_released, 0); /* the core's and ours */
	/* a note is refused: one word for three entries' bytes */
	struct raft_entry probe = {.buf = b};
	raft_entry_set_note(&probe, 7);
	assert_int_equal(raft_entry_note(&probe), 0);
	assert_int_equal(raft_log_own(r, b), 0);
	assert_int_equal(foreign_released, 0); /* ours is left */
	raft_buf_unref(b);
	assert_int_equal(foreign_released, 1);
	raft_tick(r); /* a sole voter leads, and commits the three */
	assert_int_equal(raft_role(r), RAFT_LEADER);
	take(r);
	raft_persisted(r, 4, 2);
	take(r);
	assert_int_equal(U.n_committed, 4);
	assert_memory_equal(U.committed[0].data, "aaa", 3);
	assert_memory_equal(U.committed[2].data, "ccc", 3);
	raft_update_free(&U);
	memset(&U, 0, sizeof(U));
	raft_free(r);
	assert_int_equal(foreign_released, 1);
}

int main(void)
{
#define T(f) cmocka_unit_test_teardown(f, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_voter_rejects_candidate_whose_last_term_is_older),
	    T(test_voter_rejects_candidate_with_shorter_log_of_same_term),
	    T(test_voter_grants_one_vote_per_term_and_persists_it_first),
	    T(test_server_rejects_append_with_stale_term_and_tells_its_term),
	    T(test_leader_seeing_higher_term_becomes_follower),
	    T(test_follower_rejects_append_with_mismatched_prev_term),
	    T(test_follower_truncates_conflicting_suffix_and_appends),
	    T(test_follower_drops_malformed_appends_and_snapshots),
	    T(test_follower_acknowledges_entries_only_after_they_are_persisted),
	    T(test_follower_commit_is_min_of_leader_commit_and_last_new_entry),
	    T(test_new_leader_appends_a_noop_of_its_term),
	    T(test_leader_never_commits_an_earlier_term_entry_by_counting_replicas),
	    T(test_leader_counts_its_own_entry_only_after_it_is_persisted),
	    T(test_leader_sends_one_append_per_follower_per_update),
	    T(test_pre_candidate_does_not_change_its_term),
	    T(test_follower_in_lease_ignores_vote_of_higher_term),
	    T(test_abstaining_node_refuses_votes_and_prevotes_and_never_campaigns),
	    T(test_abstaining_node_votes_again_once_a_leader_brings_its_log_there),
	    T(test_transfer_to_a_caught_up_voter_sends_timeout_now_at_once),
	    T(test_transfer_brings_the_target_up_to_date_before_timeout_now),
	    T(test_leader_refuses_proposals_and_changes_during_a_transfer),
	    T(test_transfer_is_abandoned_after_an_election_timeout),
	    T(test_timeout_now_starts_an_election_at_once_without_pre_vote),
	    T(test_transfer_vote_gets_past_the_lease_of_follower_and_leader),
	    T(test_transfer_to_a_learner_or_a_stranger_is_refused),
	    T(test_transfer_to_no_one_in_particular_picks_the_longest_log),
	    T(test_transfer_to_no_one_in_particular_skips_a_silent_voter),
	    T(test_member_that_may_not_be_candidate_never_campaigns),
	    T(test_leader_that_may_not_be_candidate_hands_over_or_steps_down),
	    T(test_proposal_on_follower_names_the_leader),
	    T(test_leader_sends_snapshot_when_follower_needs_compacted_entries),
	    T(test_read_index_waits_for_a_quorum_heartbeat_round),
	    T(test_read_is_local_only_for_a_sole_voter_leader),
	    T(test_sole_voter_leads_at_its_first_tick),
	    T(test_follower_read_index_counts_as_its_ack),
	    T(test_leader_resends_a_big_append_only_after_its_size_allows),
	    T(test_borrowed_update_entries_are_the_logs_own),
	    T(test_shared_entry_data_is_kept_and_sent_without_a_copy),
	    T(test_restored_entries_share_a_foreign_block),
	    T(test_config_text_round_trips_and_rejects_garbage),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
