/* leases.h - the lease table (internal to the store module).
 *
 * Part of the state machine beside the map, as the lock table is (struct
 * map holds one): lease_grant, lease_keepalive, lease_revoke and a put's
 * ttl change it, every node applies them in log order, so every node has
 * the same table. A lease is its id (the index of the entry that granted
 * it), its TTL in seconds and its rev (the index of its grant or latest
 * keepalive). Which keys are on a lease is the records' (kv_rec.lease);
 * each lease keeps a set of its keys' map nodes (lease_keys.c), which
 * map.c updates as records join and leave it, so a revoke finds them
 * without a walk, a key that goes (deleted, overwritten off its lease,
 * renamed over) leaves its lease by itself, and a key on no lease costs
 * nothing.
 * Expiry is no rule here: the leader decides it on its clock and commits
 * a conditional revoke (raft/node/lease.c). The table goes into the db
 * (db.c) and the state hash. */
#ifndef KV_STORE_LEASES_H
#define KV_STORE_LEASES_H

#include "store.h"

struct map_node;

struct lease {
	uint64_t id, ttl, rev;
	/* Not state: when this node applied rev (kv_mono_ms), or loaded
	 * the lease; what the remaining TTL is counted from. Neither hashed
	 * nor written. */
	uint64_t local_ms;
	/* How many keys are on it, and the set of their nodes
	 * (lease_keys.c): cap slots (0 or a power of two), used of them;
	 * lost once a growth found no memory (the set is then partial
	 * until nkeys is 0 again). */
	uint64_t nkeys;
	struct map_node **keys;
	size_t cap, used;
	bool lost;
};

/* Sorted by id (grants come in index order). */
struct leases {
	struct lease *v;
	size_t n, cap;
	uint64_t nkeys; /* keys on any lease */
};

void leases_init(struct leases *l);
void leases_clear(struct leases *l);
/* dst (initialized; cleared first) a copy of src's leases without their
 * key lists, for a db written off the map's lock (snapshot.c). 0 or
 * -ENOMEM. */
int leases_copy(struct leases *dst, const struct leases *src);

struct lease *leases_find(const struct leases *l, uint64_t id);
/* Room for one more lease, so that adding it cannot fail. 0 or -ENOMEM. */
int leases_reserve(struct leases *l);
/* Add lease id (after every other; room reserved): ttl seconds, rev.
 * -EINVAL if id is not past the last id, or ttl out of bounds. */
int leases_add(struct leases *l, uint64_t id, uint64_t ttl, uint64_t rev);
/* Remove lease e (its keys must be gone). */
void leases_remove(struct leases *l, struct lease *e);

/* The nodes of the keys on lease id, in key order (the order a revoke
 * deletes them in): *out malloc'd (NULL when none), the caller frees.
 * 0 or -ENOMEM. apply_lease.c. */
struct map;
int leases_nodes(const struct map *m, uint64_t id, struct map_node ***out,
		 size_t *n);

/* ---- lease_keys.c: the set of a lease's keys ---- */

/* Node n's record went on lease l. Cannot fail (see lost). */
void lease_keys_add(struct lease *l, struct map_node *n);
/* Node n's record leaves lease l: false if n was never on it. */
bool lease_keys_del(struct lease *l, struct map_node *n);
/* True if the set misses keys: find them by their records' lease. */
bool lease_keys_lost(const struct lease *l);
/* The nodes in the set into out (room for l->nkeys); how many. */
size_t lease_keys_get(const struct lease *l, struct map_node **out);
/* Drop the set (the lease is going, or has no keys). */
void lease_keys_free(struct lease *l);

/* 0 if ttl is a TTL a lease may have (1 .. KV_LEASE_TTL_MAX). */
int leases_ttl_check(uint64_t ttl);

/* A hash of the table (ids, TTLs, revs), independent of local_ms; 0
 * when empty. */
uint64_t leases_hash(const struct leases *l);

#endif
