/* test_locks.c - the lock table's rules (store/locks.c) through the state
 * machine (map_apply), each command encoded and decoded as the log
 * carries it: sessions, conflicts between owners, shared and exclusive
 * locks, flock and POSIX lock spaces, POSIX ranges split and merged, the
 * release of an owner's locks, a session's end (on condition, as the
 * leader's expiry proposes it) releasing everything it held, a put
 * fenced by a session; and the table in the db snapshot and the state
 * hash. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "db.h"
#include "locks.h"
#include "map_impl.h"
#include "mapfix.h"

static int apply(struct fixture *f, const struct kv_cmd *c)
{
	return apply_to(f, f->m, ++f->index, c, NULL);
}

/* A new session; its id (the entry's index). */
static uint64_t open_session(struct fixture *f, uint64_t node)
{
	struct kv_cmd c = {.op = KV_OP_SESS_OPEN, .node = node};
	assert_int_equal(apply(f, &c), 0);
	return f->index;
}

static int lock(struct fixture *f, uint64_t sid, uint64_t owner,
		enum kv_lock_kind kind, enum kv_lock_type type, uint64_t start,
		uint64_t end)
{
	struct kv_cmd c = {.op = KV_OP_LOCK,
			   .key = "f",
			   .klen = 1,
			   .sid = sid,
			   .lock_owner = owner,
			   .lock_pid = 42,
			   .lock_type = type,
			   .lock_kind = kind,
			   .lock_start = start,
			   .lock_end = end};
	return apply(f, &c);
}

static int posix(struct fixture *f, uint64_t sid, uint64_t owner,
		 enum kv_lock_type type, uint64_t start, uint64_t end)
{
	return lock(f, sid, owner, KV_LOCK_POSIX, type, start, end);
}

static int flock_(struct fixture *f, uint64_t sid, uint64_t owner,
		  enum kv_lock_type type)
{
	return lock(f, sid, owner, KV_LOCK_FLOCK, type, 0, KV_LOCK_EOF);
}

static const struct locks *table(struct fixture *f)
{
	return map_locks_c(f->m);
}

/* The table's POSIX locks on "f" of (sid, owner) as "T[s,e] ..." in
 * start order, for comparing with what the rules should leave. */
static const char *ranges(struct fixture *f, uint64_t sid, uint64_t owner)
{
	static char out[512];
	const struct locks *l = table(f);
	uint64_t from = 0;
	size_t n = 0;

	out[0] = '\0';
	for (;;) {
		const struct lock_ent *best = NULL;
		for (size_t i = 0; i < l->n; i++) {
			const struct lock_ent *e = &l->v[i];
			if (e->sid == sid && e->owner == owner &&
			    e->kind == KV_LOCK_POSIX && e->start >= from &&
			    (best == NULL || e->start < best->start))
				best = e;
		}
		if (best == NULL)
			return out;
		char end[24] = "eof";
		if (best->end != KV_LOCK_EOF)
			snprintf(end, sizeof(end), "%llu",
				 (unsigned long long)best->end);
		n += (size_t)snprintf(out + n, sizeof(out) - n, "%s%c[%llu,%s]",
				      n ? " " : "",
				      best->type == KV_LOCK_WR ? 'W' : 'R',
				      (unsigned long long)best->start, end);
		if (best->end == KV_LOCK_EOF)
			return out;
		from = best->end + 1;
	}
}

static void test_a_lock_needs_a_live_session(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(posix(f, 99, 1, KV_LOCK_WR, 0, 9), -ENOENT);
	assert_int_equal(table(f)->n, 0);
}

static void
test_an_exclusive_lock_conflicts_with_every_other_owner(void **state)
{
	struct fixture *f = *state;
	uint64_t a = open_session(f, 1), b = open_session(f, 2);

	assert_int_equal(flock_(f, a, 7, KV_LOCK_WR), 0);
	assert_int_equal(flock_(f, b, 8, KV_LOCK_WR), -EAGAIN);
	assert_int_equal(flock_(f, b, 8, KV_LOCK_RD), -EAGAIN);
	/* the same owner number in another session is another owner */
	assert_int_equal(flock_(f, b, 7, KV_LOCK_RD), -EAGAIN);
	/* another owner of the same session (another open file) too */
	assert_int_equal(flock_(f, a, 9, KV_LOCK_RD), -EAGAIN);
	/* the holder converts its own lock */
	assert_int_equal(flock_(f, a, 7, KV_LOCK_RD), 0);
	assert_int_equal(table(f)->n, 1);
	assert_int_equal(table(f)->v[0].type, KV_LOCK_RD);
	assert_int_equal(flock_(f, b, 8, KV_LOCK_RD), 0);
}

static void
test_shared_locks_coexist_and_keep_an_exclusive_one_out(void **state)
{
	struct fixture *f = *state;
	uint64_t a = open_session(f, 1), b = open_session(f, 2);

	assert_int_equal(posix(f, a, 1, KV_LOCK_RD, 0, KV_LOCK_EOF), 0);
	assert_int_equal(posix(f, b, 1, KV_LOCK_RD, 0, KV_LOCK_EOF), 0);
	assert_int_equal(posix(f, b, 2, KV_LOCK_RD, 5, 5), 0);
	assert_int_equal(posix(f, a, 1, KV_LOCK_WR, 0, 0), -EAGAIN);
	assert_int_equal(posix(f, b, 1, KV_LOCK_UN, 0, KV_LOCK_EOF), 0);
	assert_int_equal(posix(f, b, 2, KV_LOCK_UN, 0, KV_LOCK_EOF), 0);
	assert_int_equal(posix(f, a, 1, KV_LOCK_WR, 0, 0), 0);
	assert_string_equal(ranges(f, a, 1), "W[0,0] R[1,eof]");
}

static void test_flock_and_posix_locks_are_separate_lock_spaces(void **state)
{
	struct fixture *f = *state;
	uint64_t a = open_session(f, 1), b = open_session(f, 2);

	assert_int_equal(flock_(f, a, 1, KV_LOCK_WR), 0);
	assert_int_equal(posix(f, b, 1, KV_LOCK_WR, 0, KV_LOCK_EOF), 0);
	/* a flock lock is the whole file, whatever range it names */
	assert_int_equal(lock(f, b, 2, KV_LOCK_FLOCK, KV_LOCK_RD, 500, 600),
			 -EAGAIN);
}

static void test_locks_on_other_keys_do_not_conflict(void **state)
{
	struct fixture *f = *state;
	uint64_t a = open_session(f, 1), b = open_session(f, 2);
	struct kv_cmd c = {.op = KV_OP_LOCK,
			   .key = "g",
			   .klen = 1,
			   .sid = b,
			   .lock_owner = 1,
			   .lock_type = KV_LOCK_WR,
			   .lock_kind = KV_LOCK_FLOCK,
			   .lock_end = KV_LOCK_EOF};

	assert_int_equal(flock_(f, a, 1, KV_LOCK_WR), 0);
	assert_int_equal(apply(f, &c), 0);
}

static void test_posix_ranges_conflict_only_where_they_overlap(void **state)
{
	struct fixture *f = *state;
	uint64_t a = open_session(f, 1), b = open_session(f, 2);

	assert_int_equal(posix(f, a, 1, KV_LOCK_WR, 10, 19), 0);
	assert_int_equal(posix(f, b, 1, KV_LOCK_WR, 0, 9), 0);
	assert_int_equal(posix(f, b, 1, KV_LOCK_WR, 20, KV_LOCK_EOF), 0);
	assert_int_equal(posix(f, b, 1, KV_LOCK_RD, 19, 19), -EAGAIN);
	assert_int_equal(posix(f, b, 1, KV_LOCK_RD, 9, 10), -EAGAIN);
	/* and a refused lock changes nothing */
	assert_string_equal(ranges(f, b, 1), "W[0,9] W[20,eof]");
}

static void test_unlocking_the_middle_of_a_range_splits_it(void **state)
{
	struct fixture *f = *state;
	uint64_t a = open_session(f, 1), b = open_session(f, 2);

	assert_int_equal(posix(f, a, 1, KV_LOCK_WR, 0, 99), 0);
	assert_int_equal(posix(f, a, 1, KV_LOCK_UN, 40, 59), 0);
	assert_string_equal(ranges(f, a, 1), "W[0,39] W[60,99]");
	assert_int_equal(posix(f, b, 1, KV_LOCK_WR, 40, 59), 0);
	assert_int_equal(posix(f, b, 1, KV_LOCK_WR, 39, 39), -EAGAIN);
	assert_int_equal(posix(f, b, 1, KV_LOCK_WR, 60, 60), -EAGAIN);
	/* unlocking over the edges trims both pieces */
	assert_int_equal(posix(f, a, 1, KV_LOCK_UN, 30, 69), 0);
	assert_string_equal(ranges(f, a, 1), "W[0,29] W[70,99]");
}

static void test_a_new_lock_replaces_the_owners_own_over_its_range(void **state)
{
	struct fixture *f = *state;
	uint64_t a = open_session(f, 1);

	assert_int_equal(posix(f, a, 1, KV_LOCK_RD, 0, 19), 0);
	assert_int_equal(posix(f, a, 1, KV_LOCK_WR, 5, 14), 0);
	assert_string_equal(ranges(f, a, 1), "R[0,4] W[5,14] R[15,19]");
	assert_int_equal(posix(f, a, 1, KV_LOCK_RD, 0, 19), 0);
	assert_string_equal(ranges(f, a, 1), "R[0,19]");
	assert_int_equal(table(f)->n, 1);
}

static void test_adjacent_and_overlapping_ranges_of_one_type_merge(void **state)
{
	struct fixture *f = *state;
	uint64_t a = open_session(f, 1);

	assert_int_equal(posix(f, a, 1, KV_LOCK_WR, 0, 9), 0);
	assert_int_equal(posix(f, a, 1, KV_LOCK_WR, 20, 29), 0);
	assert_int_equal(posix(f, a, 1, KV_LOCK_WR, 10, 19), 0);
	assert_string_equal(ranges(f, a, 1), "W[0,29]");
	assert_int_equal(posix(f, a, 1, KV_LOCK_WR, 25, KV_LOCK_EOF), 0);
	assert_string_equal(ranges(f, a, 1), "W[0,eof]");
	assert_int_equal(table(f)->n, 1);
	/* a range of the other type beside it does not merge */
	assert_int_equal(posix(f, a, 1, KV_LOCK_RD, 100, KV_LOCK_EOF), 0);
	assert_string_equal(ranges(f, a, 1), "W[0,99] R[100,eof]");
}

static void test_an_unlock_releases_only_its_owners_locks(void **state)
{
	struct fixture *f = *state;
	uint64_t a = open_session(f, 1), b = open_session(f, 2);

	assert_int_equal(posix(f, a, 1, KV_LOCK_RD, 0, KV_LOCK_EOF), 0);
	assert_int_equal(posix(f, a, 2, KV_LOCK_RD, 0, KV_LOCK_EOF), 0);
	assert_int_equal(posix(f, a, 1, KV_LOCK_UN, 0, KV_LOCK_EOF), 0);
	assert_int_equal(locks_held(table(f), "f", 1, KV_LOCK_POSIX, a, 1), 0);
	assert_int_equal(locks_held(table(f), "f", 1, KV_LOCK_POSIX, a, 2), 1);
	assert_int_equal(posix(f, b, 1, KV_LOCK_WR, 0, 0), -EAGAIN);
	/* unlocking what is not held is no error, and changes nothing */
	assert_int_equal(posix(f, b, 1, KV_LOCK_UN, 0, KV_LOCK_EOF), 0);
	assert_int_equal(table(f)->n, 1);
}

static void test_ending_a_session_releases_every_lock_it_held(void **state)
{
	struct fixture *f = *state;
	uint64_t a = open_session(f, 1), b = open_session(f, 2);
	struct kv_cmd g = {.op = KV_OP_LOCK,
			   .key = "g",
			   .klen = 1,
			   .sid = a,
			   .lock_owner = 3,
			   .lock_type = KV_LOCK_WR,
			   .lock_kind = KV_LOCK_POSIX,
			   .lock_end = KV_LOCK_EOF};

	assert_int_equal(flock_(f, a, 1, KV_LOCK_WR), 0);
	assert_int_equal(posix(f, a, 2, KV_LOCK_WR, 0, 9), 0);
	assert_int_equal(apply(f, &g), 0);
	assert_int_equal(posix(f, b, 1, KV_LOCK_WR, 10, 19), 0);
	assert_int_equal(flock_(f, b, 1, KV_LOCK_WR), -EAGAIN);
	f->changes[0] = '\0';
	struct kv_cmd end = {.op = KV_OP_SESS_END, .sid = a};
	assert_int_equal(apply(f, &end), 0);
	assert_string_equal(f->changes, "f f g"); /* every key that lost one */
	assert_null(locks_session(table(f), a));
	assert_int_equal(locks_held(table(f), NULL, 0, 0, a, UINT64_MAX), 0);
	assert_int_equal(flock_(f, b, 1, KV_LOCK_WR), 0);
	assert_int_equal(posix(f, b, 2, KV_LOCK_WR, 0, 9), 0);
	/* b's own lock stayed */
	assert_string_equal(ranges(f, b, 1), "W[10,19]");
	/* the ended session can neither lock nor be renewed */
	assert_int_equal(flock_(f, a, 1, KV_LOCK_RD), -ENOENT);
	struct kv_cmd renew = {.op = KV_OP_SESS_RENEW, .sid = a};
	assert_int_equal(apply(f, &renew), -ENOENT);
	assert_int_equal(apply(f, &end), -ENOENT);
}

static void test_an_expiry_fails_if_the_session_was_heard_of_since(void **state)
{
	struct fixture *f = *state;
	uint64_t a = open_session(f, 1);
	struct kv_cmd renew = {.op = KV_OP_SESS_RENEW, .sid = a};
	struct kv_cmd expire = {.op = KV_OP_SESS_END, .sid = a, .if_rev = a};

	assert_int_equal(flock_(f, a, 1, KV_LOCK_WR), 0);
	uint64_t seen = f->index; /* a lock command is heard of too */
	assert_int_equal(locks_session(table(f), a)->rev, seen);
	/* the leader decided on the rev of the open: stale */
	assert_int_equal(apply(f, &expire), KV_EPRECOND);
	assert_int_equal(apply(f, &renew), 0);
	expire.if_rev = seen;
	assert_int_equal(apply(f, &expire), KV_EPRECOND);
	assert_int_equal(locks_held(table(f), NULL, 0, 0, a, UINT64_MAX), 1);
	expire.if_rev = f->index - 1; /* the renew's */
	assert_int_equal(apply(f, &expire), 0);
	assert_int_equal(table(f)->n, 0);
	assert_int_equal(table(f)->ns, 0);
}

static void
test_a_refused_lock_still_counts_as_hearing_of_the_session(void **state)
{
	struct fixture *f = *state;
	uint64_t a = open_session(f, 1), b = open_session(f, 2);

	assert_int_equal(flock_(f, a, 1, KV_LOCK_WR), 0);
	assert_int_equal(flock_(f, b, 1, KV_LOCK_WR), -EAGAIN);
	assert_int_equal(locks_session(table(f), b)->rev, f->index);
}

static void
test_a_put_fenced_by_a_session_applies_only_while_it_lives(void **state)
{
	struct fixture *f = *state;
	uint64_t a = open_session(f, 1);
	struct kv_cmd put = {.op = KV_OP_PUT,
			     .key = "f",
			     .klen = 1,
			     .val = (unsigned char *)"held",
			     .vlen = 4,
			     .mtime_ns = 5,
			     .if_sid = a};
	struct kv_cmd end = {.op = KV_OP_SESS_END, .sid = a};

	assert_int_equal(flock_(f, a, 1, KV_LOCK_WR), 0);
	assert_int_equal(apply(f, &put), 0);
	assert_int_equal(apply(f, &end), 0);
	/* the next holder writes; then the old holder's late commit */
	uint64_t b = open_session(f, 2);
	assert_int_equal(flock_(f, b, 1, KV_LOCK_WR), 0);
	struct kv_cmd next = put;
	next.val = (unsigned char *)"next";
	next.if_sid = b;
	assert_int_equal(apply(f, &next), 0);
	put.val = (unsigned char *)"late";
	assert_int_equal(apply(f, &put), -ENOLCK);
	struct kv_rec *r = map_get(f->m, "f", 1);
	assert_non_null(r);
	assert_memory_equal(kv_rec_val(r), "next", 4);
	/* no fence: no condition */
	put.if_sid = 0;
	assert_int_equal(apply(f, &put), 0);
}

static void test_the_table_survives_a_db_snapshot_and_is_hashed(void **state)
{
	struct fixture *f = *state;
	uint64_t a = open_session(f, 1), b = open_session(f, 2);
	char dir[] = "/tmp/kvfs-locks-test.XXXXXX";
	struct kv_cmd put = {.op = KV_OP_PUT,
			     .key = "f",
			     .klen = 1,
			     .val = (unsigned char *)"v",
			     .vlen = 1,
			     .mtime_ns = 5};

	assert_int_equal(apply(f, &put), 0);
	uint64_t without = map_state_hash(f->m);
	assert_int_equal(posix(f, a, UINT64_MAX, KV_LOCK_WR, 7, 9), 0);
	assert_int_equal(posix(f, a, UINT64_MAX, KV_LOCK_RD, 100, KV_LOCK_EOF),
			 0);
	assert_int_equal(flock_(f, b, 5, KV_LOCK_RD), 0);
	uint64_t with = map_state_hash(f->m);
	assert_int_not_equal(with, without);

	assert_non_null(mkdtemp(dir));
	struct kv_rec **recs;
	size_t n;
	struct db_meta meta = {.index = f->index, .term = 1};
	assert_int_equal(map_collect(f->m, &recs, &n), 0);
	assert_int_equal(db_write(dir, &meta, recs, n, map_locks_c(f->m)), 0);
	map_collect_free(recs, n);
	struct map *back = map_new();
	struct db_meta got;
	char *msg = NULL;
	assert_int_equal(db_load(dir, back, &got, &msg), 0);
	free(got.conf);
	assert_int_equal(map_state_hash(back), with);
	const struct locks *l = map_locks_c(back);
	assert_int_equal(l->n, 3);
	assert_int_equal(l->ns, 2);
	assert_non_null(
	    locks_conflict(l, "f", 1, KV_LOCK_POSIX, b, 1, KV_LOCK_RD, 8, 8));
	assert_null(
	    locks_conflict(l, "f", 1, KV_LOCK_POSIX, b, 1, KV_LOCK_RD, 10, 99));
	/* the loaded table goes on under the same rules */
	struct kv_cmd end = {.op = KV_OP_SESS_END, .sid = a};
	assert_int_equal(apply_to(f, back, f->index + 1, &end, NULL), 0);
	assert_int_equal(apply(f, &end), 0);
	assert_int_equal(map_state_hash(back), map_state_hash(f->m));
	map_free(back);
	char path[64];
	snprintf(path, sizeof(path), "%s/db.jsonl", dir);
	unlink(path);
	rmdir(dir);
}

static void test_the_same_commands_make_the_same_table_and_hash(void **state)
{
	struct fixture *f = *state;
	struct map *twin = map_new();
	uint64_t a = open_session(f, 1);
	struct kv_cmd open = {.op = KV_OP_SESS_OPEN, .node = 1};

	assert_int_equal(apply_to(f, twin, a, &open, NULL), 0);
	for (uint64_t i = 0; i < 40; i++) {
		uint64_t s = (i * 37) % 100, e = s + (i % 7);
		enum kv_lock_type t = (enum kv_lock_type)(i % 3);
		int r1 = posix(f, a, i % 3, t, s, e);
		assert_true(r1 == 0 || r1 == -EAGAIN);
		struct kv_cmd c = {.op = KV_OP_LOCK,
				   .key = "f",
				   .klen = 1,
				   .sid = a,
				   .lock_owner = i % 3,
				   .lock_pid = 42,
				   .lock_type = t,
				   .lock_kind = KV_LOCK_POSIX,
				   .lock_start = s,
				   .lock_end = e};
		assert_int_equal(apply_to(f, twin, f->index, &c, NULL), r1);
	}
	assert_int_equal(map_state_hash(twin), map_state_hash(f->m));
	map_free(twin);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)
	    T(test_a_lock_needs_a_live_session),
	    T(test_an_exclusive_lock_conflicts_with_every_other_owner),
	    T(test_shared_locks_coexist_and_keep_an_exclusive_one_out),
	    T(test_flock_and_posix_locks_are_separate_lock_spaces),
	    T(test_locks_on_other_keys_do_not_conflict),
	    T(test_posix_ranges_conflict_only_where_they_overlap),
	    T(test_unlocking_the_middle_of_a_range_splits_it),
	    T(test_a_new_lock_replaces_the_owners_own_over_its_range),
	    T(test_adjacent_and_overlapping_ranges_of_one_type_merge),
	    T(test_an_unlock_releases_only_its_owners_locks),
	    T(test_ending_a_session_releases_every_lock_it_held),
	    T(test_an_expiry_fails_if_the_session_was_heard_of_since),
	    T(test_a_refused_lock_still_counts_as_hearing_of_the_session),
	    T(test_a_put_fenced_by_a_session_applies_only_while_it_lives),
	    T(test_the_table_survives_a_db_snapshot_and_is_hashed),
	    T(test_the_same_commands_make_the_same_table_and_hash),
#undef T
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
