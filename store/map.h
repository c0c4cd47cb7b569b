/* map.h - the ordered map and the state machine over it (internal).
 *
 * Keys in byte order in a red-black tree (libbsd's sys/tree.h, map.c), so a
 * directory listing is a range scan from its prefix. Applying a command
 * (map_apply, apply.c) is deterministic: every node that applies the same
 * log gets the same map, and the same map_state_hash. Only the store-owner
 * thread touches a map. */
#ifndef KV_STORE_MAP_H
#define KV_STORE_MAP_H

#include "store.h"

struct map;

struct map *map_new(void);
void map_free(struct map *m);

uint64_t map_count(const struct map *m); /* keys (files) */
uint64_t map_bytes(const struct map *m); /* sum of value sizes */
/* A 64-bit hash of the whole content: the sum (mod 2^64) over every record
 * (files, explicit directories and the root's, when it has one) of a hash
 * of everything the record holds: key, value, mode, owner, revisions,
 * times and extended attributes. Independent of how the map was built
 * (applied commands, map_insert, map_append in any order), kept up to date
 * by every change in O(1) beyond hashing the changed records; 0 for an
 * empty map. For spotting divergence between nodes, not cryptographic. */
uint64_t map_state_hash(const struct map *m);
/* The lock table (locks.h) is part of the map's state: applied by
 * map_apply, hashed by map_state_hash (its term is computed on each call:
 * the table is small), written to and loaded from the db. */
struct locks;
struct locks *map_locks(struct map *m);
const struct locks *map_locks_c(const struct map *m);
/* The lease table (leases.h), the same way; map.c keeps each lease's
 * list of keys as records join and leave it. */
struct leases;
struct leases *map_leases(struct map *m);
const struct leases *map_leases_c(const struct map *m);

/* Warm the index for lookups of file key coming soon, in two steps: the
 * first starts loading the key's bucket and returns its hash, the second
 * (after the other keys' first steps: their loads overlap) reads the
 * bucket and starts loading the first node of its chain. Only a hint:
 * nothing changes, and a key that is not there is fine. A batch of
 * applies does this for all its keys before applying them (applier.c),
 * so the misses of 64 lookups wait on memory together, not in turn. */
uint32_t map_prefetch_key(const struct map *m, const char *key, size_t klen);
void map_prefetch_chain(const struct map *m, uint32_t kh);
/* Make the index ready for this many keys and directories without
 * growing on the way (a db's load, which knows its count): it grows to
 * the same size it would have doubled to. Only a hint: without memory it
 * stays as it is. */
void map_reserve(struct map *m, uint64_t nodes);
/* Borrowed record for key, or NULL. */
struct kv_rec *map_get(const struct map *m, const char *key, size_t klen);
/* Insert or replace (takes ownership of rec; unrefs the one replaced);
 * a record with the empty key is the root's (a directory). Used by
 * snapshot loading; no rules checked. 0 or -ENOMEM. */
int map_insert(struct map *m, struct kv_rec *rec);
/* Insert rec, which must sort after every record in m (loading a snapshot
 * written in map order; the root's record, key "", only first): takes
 * ownership on success; -EINVAL if it does not sort last (out of order or a
 * duplicate: the file is damaged), -ENOMEM. */
int map_append(struct map *m, struct kv_rec *rec);

/* Apply cmd carried by the entry at index. The outcome goes in res (errors
 * of the command itself, like -ENOENT or KV_EPRECOND, are results, not
 * failures); the return value is 0 or -ENOMEM. For each key whose
 * content or attributes changed, on_change(ctx, key, klen) is called
 * (may be NULL). */
int map_apply(struct map *m, uint64_t index, const struct kv_cmd *cmd,
	      struct kv_result *res,
	      void (*on_change)(void *ctx, const char *key, size_t klen),
	      void *ctx);

/* stat of a file, an explicit or implicit directory, or "" (the root):
 * 0 or -ENOENT. An implicit directory shows mode 0755, no owner and the
 * revisions of the first key below it, whose mtime is all its times. A
 * directory's nlink is 2 plus its sub-directories. */
int map_stat(const struct map *m, const char *path, size_t plen,
	     struct kv_stat *out);
/* The children of dir as store_list describes, in map order: byte order
 * of names where a directory sorts as its name plus '/', and dir's own
 * record (out->self, referenced). `after` is the last name of the
 * previous page. 0, -ENOENT, -ENOTDIR, -ENOMEM; *out is
 * released with kv_list_clear. Cost: O((children + 1) log n). */
int map_list(const struct map *m, const char *dir, size_t dlen,
	     const char *after, size_t limit, struct kv_list *out);

/* Every key below dir (not directories), at any depth, in key order,
 * names relative to dir ("sub/key"); after and limit page as for
 * map_list (after: the last name of the previous page). 0, -ENOENT,
 * -ENOTDIR, -ENOMEM. Cost: O((keys listed + 1) log n). */
int map_list_all(const struct map *m, const char *dir, size_t dlen,
		 const char *after, size_t limit, struct kv_list *out);

/* Every record in key order (the root's first, if it has one), each with a
 * reference taken, for a snapshot written on another thread. *out
 * malloc'd; release with map_collect_free. (map_cut.c) */
int map_collect(const struct map *m, struct kv_rec ***out, size_t *n);
void map_collect_free(struct kv_rec **recs, size_t n);

/* The map as it was at one moment, read a piece at a time while it goes
 * on changing (map_cut.c): how the db writer collects a db without holding
 * the map's lock for more than a step.
 * map_cut_begin marks the cut (the map's lock held, a read lock is
 * enough: only the holder of the write lock changes the map); from then
 * on each key's first change keeps the record the key had at the cut.
 * map_cut_step, under the read lock, appends to the reader the next
 * records of the cut (at most max keys looked at), in the order of
 * map_collect, each referenced; done once all are there. map_cut_end,
 * under the write lock, drops what the cut kept (a begun cut must be
 * ended). 0 or -ENOMEM (a step: the cut lost a record for want of memory,
 * or the reader could not grow; end the cut, try again later). */
struct map_cut_reader {
	struct kv_rec **recs;
	size_t n, cap;
	uint64_t hash; /* the sum of map_rec_hash over recs: map_cut_hash */
	bool done;
	/* where the next step starts: after last + last_tail */
	bool started;
	char *last;
	size_t last_len;
	char last_tail;
};
int map_cut_begin(struct map *m);
int map_cut_step(const struct map *m, struct map_cut_reader *r, size_t max);
void map_cut_end(struct map *m);
/* r->hash from r's records, without the map's lock (they are r's
 * references), once the steps are done: hashing reads every value. */
void map_cut_hash(struct map_cut_reader *r);
/* Drops the reader's references and memory. */
void map_cut_reader_free(struct map_cut_reader *r);

#endif
