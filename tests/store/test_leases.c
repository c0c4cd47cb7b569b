/* test_leases.c - the lease table's rules (store/leases.c,
 * store/apply_lease.c) through the state machine (map_apply), each
 * command encoded and decoded as the log carries it: a grant's id and TTL
 * bounds, keys put on a lease, kept alive, revoked (deleting exactly its
 * keys, in key order, in one entry), a revoke on condition (the leader's
 * expiry: a keepalive committed first wins), a key leaving its lease when
 * deleted, overwritten off it or renamed over, a put's own lease (?ttl),
 * a grant that puts an existing file on the lease (the mount's setfattr);
 * the table in the db snapshot and the state hash; and the set of a
 * lease's keys (lease_keys.c), also when it lost keys for want of
 * memory. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "db.h"
#include "leases.h"
#include "map_impl.h"
#include "mapfix.h"
#include "store_int.h"

static int apply(struct fixture *f, const struct kv_cmd *c)
{
	return apply_to(f, f->m, ++f->index, c, NULL);
}

/* A new lease of ttl seconds; its id (the entry's index). */
static uint64_t grant(struct fixture *f, uint32_t ttl)
{
	struct kv_cmd c = {.op = KV_OP_LEASE_GRANT, .ttl = ttl};
	struct kv_result res;
	assert_int_equal(apply_to(f, f->m, ++f->index, &c, &res), 0);
	assert_int_equal(res.count, ttl);
	return f->index;
}

/* key = key, on lease (set_lease: 0 takes it off) or keeping its own. */
static int put(struct fixture *f, const char *key, bool set_lease,
	       uint64_t lease)
{
	struct kv_cmd c = {.op = KV_OP_PUT,
			   .key = (char *)key,
			   .klen = strlen(key),
			   .val = (unsigned char *)key,
			   .vlen = strlen(key),
			   .mtime_ns = 5,
			   .set_lease = set_lease,
			   .lease = lease};
	return apply(f, &c);
}

static int keepalive(struct fixture *f, uint64_t id)
{
	struct kv_cmd c = {.op = KV_OP_LEASE_KEEPALIVE, .lease = id};
	return apply(f, &c);
}

static int do_revoke(struct fixture *f, uint64_t id, uint64_t if_rev)
{
	struct kv_cmd c = {
	    .op = KV_OP_LEASE_REVOKE, .lease = id, .if_rev = if_rev};
	return apply(f, &c);
}

static bool has(struct fixture *f, const char *key)
{
	return map_get(f->m, key, strlen(key)) != NULL;
}

static uint64_t lease_of(struct fixture *f, const char *key)
{
	const struct kv_rec *r = map_get(f->m, key, strlen(key));
	assert_non_null(r);
	return kv_rec_lease(r);
}

static uint64_t nkeys(struct fixture *f, uint64_t id)
{
	const struct lease *l = leases_find(map_leases_c(f->m), id);
	assert_non_null(l);
	return l->nkeys;
}

static void test_a_grant_is_its_index_and_its_ttl_is_bounded(void **state)
{
	struct fixture *f = *state;
	uint64_t a = grant(f, 2), b = grant(f, KV_LEASE_TTL_MAX);
	assert_int_equal(a, 1);
	assert_int_equal(b, 2);
	const struct lease *l = leases_find(map_leases_c(f->m), a);
	assert_non_null(l);
	assert_int_equal(l->ttl, 2);
	assert_int_equal(l->rev, 1);
	/* a TTL of 0 or past the bound: refused by the codec and by the
	 * rules (a command built by hand) */
	for (uint32_t ttl = 0; ttl < 2; ttl++) {
		struct kv_cmd c = {.op = KV_OP_LEASE_GRANT,
				   .ttl = ttl ? KV_LEASE_TTL_MAX + 1 : 0};
		char *json;
		size_t len;
		struct kv_cmd d;
		struct kv_result res;
		assert_int_equal(kv_cmd_encode(&c, &json, &len), 0);
		assert_int_equal(kv_cmd_decode(json, len, &d), -EINVAL);
		free(json);
		assert_int_equal(map_apply(f->m, 3, &c, &res, NULL, NULL), 0);
		assert_int_equal(res.err, -EINVAL);
	}
	assert_int_equal(map_leases_c(f->m)->n, 2);
}

static void test_keys_on_a_lease_are_kept_alive_and_revoked(void **state)
{
	struct fixture *f = *state;
	uint64_t a = grant(f, 10), b = grant(f, 10);
	assert_int_equal(put(f, "d/z", true, a), 0);
	assert_int_equal(put(f, "d/y", true, a), 0);
	assert_int_equal(put(f, "other", true, b), 0);
	assert_int_equal(put(f, "plain", true, 0), 0);
	assert_int_equal(put(f, "x", true, 99), -ENOENT); /* no such lease */
	assert_false(has(f, "x"));
	assert_int_equal(nkeys(f, a), 2);
	assert_int_equal(lease_of(f, "d/z"), a);

	assert_int_equal(keepalive(f, a), 0);
	assert_int_equal(leases_find(map_leases_c(f->m), a)->rev, f->index);
	assert_int_equal(keepalive(f, 99), -ENOENT);

	f->changes[0] = '\0';
	assert_int_equal(do_revoke(f, a, 0), 0);
	/* its keys, in key order, and nothing else */
	assert_string_equal(f->changes, "d/y d/z");
	assert_false(has(f, "d/y"));
	assert_false(has(f, "d/z"));
	assert_true(has(f, "other"));
	assert_true(has(f, "plain"));
	assert_null(leases_find(map_leases_c(f->m), a));
	assert_int_equal(map_leases_c(f->m)->nkeys, 1);
	assert_int_equal(do_revoke(f, a, 0), -ENOENT);
	assert_int_equal(keepalive(f, a), -ENOENT);
	assert_int_equal(put(f, "x", true, a), -ENOENT);
}

static void test_an_expiry_fails_if_a_keepalive_came_first(void **state)
{
	struct fixture *f = *state;
	uint64_t a = grant(f, 2);
	assert_int_equal(put(f, "k", true, a), 0);
	uint64_t seen = leases_find(map_leases_c(f->m), a)->rev;
	/* the keepalive commits before the leader's expiry */
	assert_int_equal(keepalive(f, a), 0);
	assert_int_equal(do_revoke(f, a, seen), KV_EPRECOND);
	assert_true(has(f, "k"));
	assert_non_null(leases_find(map_leases_c(f->m), a));
	/* decided on the latest rev, it goes */
	assert_int_equal(
	    do_revoke(f, a, leases_find(map_leases_c(f->m), a)->rev), 0);
	assert_false(has(f, "k"));
}

static void
test_a_key_leaves_its_lease_when_it_goes_or_is_rewritten(void **state)
{
	struct fixture *f = *state;
	uint64_t a = grant(f, 10), b = grant(f, 10);
	const char *keys[] = {"del",  "off",	"keep", "moved",
			      "over", "target", "other"};
	for (size_t i = 0; i < 7; i++)
		assert_int_equal(put(f, keys[i], true, a), 0);
	assert_int_equal(nkeys(f, a), 7);
	struct kv_cmd del = {.op = KV_OP_DEL, .key = "del", .klen = 3};
	assert_int_equal(apply(f, &del), 0);
	/* a put without a lease (etcd's PUT) takes it off; one that does
	 * not say (the mount's, the byte protocol's) keeps it */
	assert_int_equal(put(f, "off", true, 0), 0);
	assert_int_equal(lease_of(f, "off"), 0);
	assert_int_equal(put(f, "keep", false, 0), 0);
	assert_int_equal(lease_of(f, "keep"), a);
	assert_int_equal(put(f, "other", true, b), 0);
	/* a renamed key keeps its lease; one renamed over leaves it */
	struct kv_cmd mv = {.op = KV_OP_RENAME,
			    .key = "moved",
			    .klen = 5,
			    .key2 = "new",
			    .k2len = 3};
	assert_int_equal(apply(f, &mv), 0);
	assert_int_equal(lease_of(f, "new"), a);
	assert_int_equal(put(f, "src", true, 0), 0);
	struct kv_cmd over = {.op = KV_OP_RENAME,
			      .key = "src",
			      .klen = 3,
			      .key2 = "over",
			      .k2len = 4};
	assert_int_equal(apply(f, &over), 0);
	assert_int_equal(lease_of(f, "over"), 0);
	assert_int_equal(nkeys(f, a), 3); /* keep, new, target */
	assert_int_equal(nkeys(f, b), 1);

	f->changes[0] = '\0';
	assert_int_equal(do_revoke(f, a, 0), 0);
	assert_string_equal(f->changes, "keep new target");
	assert_true(has(f, "off"));
	assert_true(has(f, "over"));
	assert_true(has(f, "other"));
	assert_int_equal(map_leases_c(f->m)->nkeys, 1);
	/* a key that came back after its delete is not on the lease */
	assert_false(has(f, "del"));
}

static void test_a_put_with_a_ttl_grants_a_lease_of_its_own(void **state)
{
	struct fixture *f = *state;
	struct kv_cmd c = {.op = KV_OP_PUT,
			   .key = "t",
			   .klen = 1,
			   .val = (unsigned char *)"v",
			   .vlen = 1,
			   .mtime_ns = 5,
			   .ttl = 3};
	assert_int_equal(apply(f, &c), 0);
	uint64_t id = f->index;
	assert_int_equal(lease_of(f, "t"), id);
	assert_int_equal(leases_find(map_leases_c(f->m), id)->ttl, 3);
	assert_int_equal(nkeys(f, id), 1);
	/* a put that is refused grants nothing */
	struct kv_cmd bad = c;
	bad.key = "t/under";
	bad.klen = 7;
	assert_int_equal(apply(f, &bad), -ENOTDIR);
	assert_null(leases_find(map_leases_c(f->m), f->index));
	/* the same key with a new TTL: a new lease, the old one empty */
	assert_int_equal(apply(f, &c), 0);
	assert_int_equal(lease_of(f, "t"), f->index);
	assert_int_equal(nkeys(f, id), 0);
}

static void test_a_grant_with_a_key_puts_the_file_on_it(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(put(f, "dir/file", true, 0), 0);
	uint64_t rev = map_get(f->m, "dir/file", 8)->mod_rev;
	struct kv_cmd c = {
	    .op = KV_OP_LEASE_GRANT, .ttl = 30, .key = "dir/file", .klen = 8};
	f->changes[0] = '\0';
	assert_int_equal(apply(f, &c), 0);
	assert_string_equal(f->changes, "dir/file");
	assert_int_equal(lease_of(f, "dir/file"), f->index);
	/* not a change of its value: its revisions stay */
	assert_int_equal(map_get(f->m, "dir/file", 8)->mod_rev, rev);
	c.key = "dir";
	c.klen = 3;
	assert_int_equal(apply(f, &c), -EISDIR);
	c.key = "none";
	c.klen = 4;
	assert_int_equal(apply(f, &c), -ENOENT);
	assert_int_equal(map_leases_c(f->m)->n, 1);
}

static void write_db(struct fixture *f, const char *dir, bool with_leases)
{
	struct kv_rec **recs;
	size_t n;
	struct db_meta meta = {.index = f->index, .term = 1};
	assert_int_equal(map_collect(f->m, &recs, &n), 0);
	assert_int_equal(
	    db_write_tables(dir, &meta, recs, n, NULL,
			    with_leases ? map_leases_c(f->m) : NULL),
	    0);
	map_collect_free(recs, n);
}

static void test_the_table_survives_a_db_snapshot_and_is_hashed(void **state)
{
	struct fixture *f = *state;
	char dir[] = "/tmp/kvfs-leases-test.XXXXXX";
	assert_int_equal(put(f, "a", true, 0), 0);
	uint64_t without = map_state_hash(f->m);
	uint64_t a = grant(f, 7);
	uint64_t with_lease = map_state_hash(f->m);
	assert_int_not_equal(with_lease, without);
	assert_int_equal(put(f, "a", true, a), 0);
	assert_int_equal(put(f, "b", true, a), 0);
	uint64_t b = grant(f, 9);
	assert_int_equal(keepalive(f, b), 0);
	uint64_t with = map_state_hash(f->m);

	assert_non_null(mkdtemp(dir));
	write_db(f, dir, true);
	struct map *back = map_new();
	struct db_meta got;
	char *msg = NULL;
	assert_int_equal(db_load(dir, back, &got, &msg), 0);
	free(got.conf);
	assert_int_equal(map_state_hash(back), with);
	const struct leases *l = map_leases_c(back);
	assert_int_equal(l->n, 2);
	assert_int_equal(l->nkeys, 2);
	assert_int_equal(leases_find(l, b)->rev, f->index);
	/* the loaded table goes on under the same rules */
	struct kv_cmd rv = {.op = KV_OP_LEASE_REVOKE, .lease = a};
	assert_int_equal(apply_to(f, back, f->index + 1, &rv, NULL), 0);
	assert_int_equal(apply(f, &rv), 0);
	assert_int_equal(map_state_hash(back), map_state_hash(f->m));
	assert_null(map_get(back, "a", 1));
	map_free(back);

	/* a key on a lease the db does not have: damaged */
	uint64_t c = grant(f, 5);
	assert_int_equal(put(f, "c", true, c), 0);
	write_db(f, dir, false);
	back = map_new();
	assert_int_equal(db_load(dir, back, &got, &msg), KV_ECORRUPT);
	assert_non_null(strstr(msg, "no lease"));
	free(msg);
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
	for (uint64_t i = 0; i < 60; i++) {
		char key[8];
		snprintf(key, sizeof(key), "k%llu",
			 (unsigned long long)(i % 9));
		struct kv_cmd c = {0};
		switch (i % 4) {
		case 0:
			c = (struct kv_cmd){.op = KV_OP_LEASE_GRANT,
					    .ttl = (uint32_t)(i % 5 + 1)};
			break;
		case 1:
			c = (struct kv_cmd){.op = KV_OP_PUT,
					    .key = key,
					    .klen = strlen(key),
					    .val = (unsigned char *)"v",
					    .vlen = 1,
					    .mtime_ns = 1,
					    .set_lease = true,
					    .lease = i - 1};
			break;
		case 2:
			c = (struct kv_cmd){.op = KV_OP_LEASE_KEEPALIVE,
					    .lease = i > 2 ? i - 2 : 1};
			break;
		default:
			c = (struct kv_cmd){.op = KV_OP_LEASE_REVOKE,
					    .lease = i > 11 ? i - 11 : 1};
		}
		int r1 = apply(f, &c);
		assert_int_equal(apply_to(f, twin, f->index, &c, NULL), r1);
	}
	assert_int_equal(map_state_hash(twin), map_state_hash(f->m));
	assert_int_equal(map_leases_c(twin)->nkeys, map_leases_c(f->m)->nkeys);
	map_free(twin);
}

static void test_lease_fields_need_version_4(void **state)
{
	(void)state;
	struct kv_cmd d;
	const char *v3 = "{\"v\":3,\"op\":\"put\",\"k\":\"a\",\"val\":\"x\","
			 "\"mt\":\"1\",\"lease\":5}";
	const char *v3op = "{\"v\":3,\"op\":\"lease_grant\",\"ttl\":5}";
	const char *both = "{\"v\":4,\"op\":\"put\",\"k\":\"a\",\"val\":\"x\","
			   "\"mt\":\"1\",\"lease\":5,\"ttl\":5}";
	assert_int_equal(kv_cmd_decode(v3, strlen(v3), &d), -EINVAL);
	assert_int_equal(kv_cmd_decode(v3op, strlen(v3op), &d), -EINVAL);
	assert_int_equal(kv_cmd_decode(both, strlen(both), &d), -EINVAL);
	struct kv_cmd put = {.op = KV_OP_PUT,
			     .key = "a",
			     .klen = 1,
			     .val = (unsigned char *)"x",
			     .vlen = 1,
			     .mtime_ns = 1};
	char *json;
	size_t len;
	assert_int_equal(kv_cmd_encode(&put, &json, &len), 0);
	assert_non_null(strstr(json, "\"v\":2")); /* no lease: as before */
	free(json);
	put.set_lease = true;
	assert_int_equal(kv_cmd_encode(&put, &json, &len), 0);
	assert_non_null(strstr(json, "\"v\":4"));
	assert_int_equal(kv_cmd_decode(json, len, &d), 0);
	assert_true(d.set_lease);
	assert_int_equal(d.lease, 0);
	kv_cmd_clear(&d);
	free(json);
}

/* The set of a lease's keys alone (lease_keys.c): 2000 distinct nodes in,
 * taken out in a scrambled order (every removal shifts back the runs of
 * its table), and after each step exactly the rest is there: grows and
 * shrinks keep every node findable. */
static void test_a_lease_set_keeps_exactly_its_nodes(void **state)
{
	enum { N = 2000 };
	static char nodes[N]; /* their addresses stand for map nodes */
	static bool in[N];
	struct map_node *got[N];
	struct lease l = {.id = 1};

	(void)state;
	for (size_t i = 0; i < N; i++) {
		lease_keys_add(&l, (struct map_node *)&nodes[i]);
		in[i] = true;
	}
	assert_int_equal(l.nkeys, N);
	assert_false(lease_keys_lost(&l));
	assert_true(l.cap >= 2 * N);
	/* a node never added is not removed */
	static char stranger;
	assert_false(lease_keys_del(&l, (struct map_node *)&stranger));
	for (size_t step = 0; step < N; step++) {
		size_t i = (step * 7919) % N; /* 7919 is prime: each once */
		assert_true(lease_keys_del(&l, (struct map_node *)&nodes[i]));
		in[i] = false;
		assert_int_equal(l.nkeys, N - step - 1);
		if (step % 97 != 0 && step != N - 1)
			continue;
		size_t n = lease_keys_get(&l, got), want = 0;
		assert_int_equal(n, N - step - 1);
		for (size_t k = 0; k < n; k++) {
			size_t at = (size_t)((char *)got[k] - nodes);
			assert_true(at < N && in[at]);
		}
		for (size_t k = 0; k < N; k++)
			want += in[k];
		assert_int_equal(n, want);
		/* the table shrinks as it empties */
		assert_true(l.cap <= 16 || l.used * 8 >= l.cap);
	}
	assert_null(l.keys); /* the last key gone, the set is dropped */
	assert_int_equal(l.cap, 0);
}

/* Many keys on a lease through the state machine: the ones deleted and
 * taken off leave its set, a revoke deletes exactly the rest; and with
 * the set partial (what a growth without memory leaves: lost), a revoke
 * still finds every key by a walk of the map. */
static void test_a_revoke_finds_every_key_even_with_a_lost_set(void **state)
{
	struct fixture *f = *state;
	uint64_t a = grant(f, 10), b = grant(f, 10);
	char key[16];

	for (int i = 0; i < 300; i++) {
		snprintf(key, sizeof(key), "k%03d", i);
		assert_int_equal(put(f, key, true, i % 3 == 0 ? b : a), 0);
	}
	for (int i = 0; i < 300; i += 5) { /* every fifth off its lease */
		snprintf(key, sizeof(key), "k%03d", i);
		if (i % 2 == 0)
			assert_int_equal(put(f, key, true, 0), 0);
		else
			assert_int_equal(
			    apply(f, &(struct kv_cmd){.op = KV_OP_DEL,
						      .key = key,
						      .klen = strlen(key)}),
			    0);
	}
	uint64_t na = 0, nb = 0;
	for (int i = 0; i < 300; i++)
		if (i % 5 != 0)
			i % 3 == 0 ? nb++ : na++;
	assert_int_equal(nkeys(f, a), na);
	assert_int_equal(nkeys(f, b), nb);
	/* b's set goes partial, as without memory: the revoke walks */
	struct lease *lb = leases_find(map_leases(f->m), b);
	lease_keys_free(lb); /* every node gone from the set ... */
	lb->lost = true;     /* ... as a lost set may miss them */
	assert_int_equal(nkeys(f, b), nb);
	assert_int_equal(do_revoke(f, b, 0), 0);
	assert_int_equal(do_revoke(f, a, 0), 0);
	for (int i = 0; i < 300; i++) {
		snprintf(key, sizeof(key), "k%03d", i);
		assert_int_equal(has(f, key), i % 10 == 0);
	}
	assert_int_equal(map_leases_c(f->m)->nkeys, 0);
	assert_int_equal(map_count(f->m), 30);
}

/* A decoded put of key = val (its value malloc'd, as the log's are),
 * with the record built ahead (prepare: store_prepare_rec, any size, or
 * store_cmd_prepare, a big value only), applied. */
static void put_prepared(struct fixture *f, const char *key, size_t vlen,
			 bool big_path)
{
	unsigned char *val = malloc(vlen);
	assert_non_null(val);
	memset(val, 'v', vlen);
	struct kv_cmd c = {.op = KV_OP_PUT,
			   .key = (char *)key,
			   .klen = strlen(key),
			   .val = val,
			   .vlen = vlen,
			   .mtime_ns = 5};
	char *json;
	size_t len;
	struct kv_cmd d;
	struct kv_result res;
	assert_int_equal(kv_cmd_encode(&c, &json, &len), 0);
	free(val);
	assert_int_equal(kv_cmd_decode(json, len, &d), 0);
	free(json);
	assert_int_equal(
	    big_path ? store_cmd_prepare(&d) : store_prepare_rec(&d), 0);
	assert_non_null(d.prep);
	/* a big value's record has room for a lease; a small one's not */
	assert_int_equal(!!(d.prep->flags & KV_REC_LEASE_SLOT), big_path);
	struct kv_rec *prep = d.prep;
	assert_int_equal(map_apply(f->m, ++f->index, &d, &res, NULL, NULL), 0);
	assert_int_equal(res.err, 0);
	/* the big one is used as built: the apply copied nothing */
	if (big_path)
		assert_ptr_equal(map_get(f->m, key, strlen(key)), prep);
	kv_cmd_clear(&d);
}

/* A record is immutable: every change of a key makes a new one, and a
 * key's lease id lives in the record only where it has room for it (72
 * bytes of header without, docs/map-and-db.md). Every kind of rebuild of
 * a leased key keeps the lease; a key on no lease has no room for one. */
static void test_every_rebuild_of_a_leased_key_keeps_its_lease(void **state)
{
	struct fixture *f = *state;
	uint64_t id = grant(f, 30);
	assert_int_equal(put(f, "plain", true, 0), 0);
	assert_false(map_get(f->m, "plain", 5)->flags & KV_REC_LEASE_SLOT);
	assert_int_equal(put(f, "k", true, id), 0);
	assert_int_equal(lease_of(f, "k"), id);

	/* a put that does not name a lease keeps the key's */
	assert_int_equal(put(f, "k", false, 0), 0);
	assert_int_equal(lease_of(f, "k"), id);
	/* the same with the record built ahead: small (no room: the apply
	 * builds it again) and big (room made ahead) */
	put_prepared(f, "k", 10, false);
	assert_int_equal(lease_of(f, "k"), id);
	put_prepared(f, "k", STORE_PREPARE_BYTES, true);
	assert_int_equal(lease_of(f, "k"), id);
	assert_int_equal(map_get(f->m, "k", 1)->vlen, STORE_PREPARE_BYTES);

	/* attributes: mode, an extended attribute */
	struct kv_cmd sa = {.op = KV_OP_SETATTR,
			    .key = "k",
			    .klen = 1,
			    .set_mode = true,
			    .mode = 0600};
	assert_int_equal(apply(f, &sa), 0);
	assert_int_equal(lease_of(f, "k"), id);
	assert_int_equal(map_get(f->m, "k", 1)->mode, S_IFREG | 0600);
	struct kv_cmd sx = {.op = KV_OP_SETXATTR,
			    .key = "k",
			    .klen = 1,
			    .xname = "user.a",
			    .xnlen = 6,
			    .val = (unsigned char *)"x",
			    .vlen = 1,
			    .time_ns = 7};
	assert_int_equal(apply(f, &sx), 0);
	assert_int_equal(lease_of(f, "k"), id);
	assert_non_null(kv_rec_xattr(map_get(f->m, "k", 1), "user.a", 6));
	assert_string_equal(kv_rec_key(map_get(f->m, "k", 1)), "k");

	/* a rename */
	struct kv_cmd mv = {.op = KV_OP_RENAME,
			    .key = "k",
			    .klen = 1,
			    .key2 = "moved",
			    .k2len = 5};
	assert_int_equal(apply(f, &mv), 0);
	assert_int_equal(lease_of(f, "moved"), id);
	assert_string_equal(kv_rec_key(map_get(f->m, "moved", 5)), "moved");

	/* a counter on a lease, added to */
	struct kv_cmd cn = {.op = KV_OP_PUT,
			    .key = "c/n",
			    .klen = 3,
			    .val = (unsigned char *)"5",
			    .vlen = 1,
			    .mtime_ns = 5,
			    .set_lease = true,
			    .lease = id};
	assert_int_equal(apply(f, &cn), 0);
	struct kv_add a = {.name = "n", .nlen = 1, .n = 2};
	struct kv_cmd add = {.op = KV_OP_ADD,
			     .key = "c",
			     .klen = 1,
			     .adds = &a,
			     .nadd = 1,
			     .time_ns = 9};
	assert_int_equal(apply(f, &add), 0);
	assert_int_equal(lease_of(f, "c/n"), id);
	assert_memory_equal(kv_rec_val(map_get(f->m, "c/n", 3)), "7", 1);

	/* a file given a lease by a grant with its key */
	struct kv_cmd g = {
	    .op = KV_OP_LEASE_GRANT, .ttl = 30, .key = "plain", .klen = 5};
	assert_int_equal(apply(f, &g), 0);
	assert_int_equal(lease_of(f, "plain"), f->index);
	assert_int_equal(nkeys(f, id), 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)
	    T(test_a_grant_is_its_index_and_its_ttl_is_bounded),
	    T(test_keys_on_a_lease_are_kept_alive_and_revoked),
	    T(test_an_expiry_fails_if_a_keepalive_came_first),
	    T(test_a_key_leaves_its_lease_when_it_goes_or_is_rewritten),
	    T(test_a_put_with_a_ttl_grants_a_lease_of_its_own),
	    T(test_a_grant_with_a_key_puts_the_file_on_it),
	    T(test_the_table_survives_a_db_snapshot_and_is_hashed),
	    T(test_the_same_commands_make_the_same_table_and_hash),
	    T(test_lease_fields_need_version_4),
	    T(test_a_lease_set_keeps_exactly_its_nodes),
	    T(test_a_revoke_finds_every_key_even_with_a_lost_set),
	    T(test_every_rebuild_of_a_leased_key_keeps_its_lease),
#undef T
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
