/* map_int.h - the map's node and struct map, for the files that make up
 * map.c's part of the store: map.c (the tree, the changes, the root) and
 * map_index.c (the hash index). Everything else sees them through
 * map.h and map_impl.h. */
#ifndef KV_STORE_MAP_INT_H
#define KV_STORE_MAP_INT_H

/* sys/tree.h marks its static functions __unused, a BSD spelling. */
#ifndef __unused
#define __unused __attribute__((unused))
#endif
#include <bsd/sys/tree.h>

#include "dircount.h"
#include "leases.h"
#include "locks.h"
#include "map_impl.h"

/* 56 bytes (a 64-byte allocation): the key, its length and the record's
 * hash are the record's (rec->hash, set by node_set); the key's hash, 32
 * bits of it, fits in what would be padding. A key on a lease is in its
 * lease's set (lease_keys.c): nothing here. */
struct map_node {
	RB_ENTRY(map_node) link;
	/* The key is rec's; a search node's rec holds only a key. */
	struct kv_rec *rec;
	struct map_node *hnext; /* next node in its index bucket */
	/* Appended to the key when sorting: '/' for a directory, 0 for a
	 * file; '0' (the byte after '/') in a search node seeks past a
	 * subtree. */
	char tail;
	/* map_key_hash(key, tail), its low 32 bits, set by map_index_add:
	 * the bucket (at most 2^32 of them), and a compare that does not
	 * read the record. */
	uint32_t kh;
};

#define NKEY(n)	 (kv_rec_key((n)->rec))
#define NKLEN(n) ((size_t)(n)->rec->klen)

RB_HEAD(map_tree, map_node);

struct map {
	struct map_tree tree;
	uint64_t nodes; /* files and explicit directories */
	uint64_t count; /* files */
	uint64_t bytes; /* sum of file value sizes */
	/* sum of rec_hash over every node and the root's record, mod 2^64 */
	uint64_t hash;
	/* The hash index (map_index.c): nbuckets (a power of two, or 0
	 * without a table) chains of nodes linked by hnext. */
	struct map_node **index;
	size_t nbuckets;
	/* Changes whenever a node leaves the tree, unique across maps: a
	 * thread's insertion hint (map.c) holds only while it is the same. */
	uint64_t gen;
	/* The greatest node, while map_append's are the only insertions
	 * (a db's load); NULL after any other insertion or a removal. */
	struct map_node *last;
	struct kv_rec *root; /* the root's attributes, or NULL: defaults */
	uint64_t root_hash;  /* map_rec_hash(root), a term of hash */
	/* Sub-directory counts (derived, not hashed): the root's, and the
	 * table of every other directory that has some. Without memory for
	 * an entry the counts are dropped (dirs.lost) and every directory
	 * shows one link, which find(1) reads as "unknown". */
	uint32_t root_subdirs;
	struct dircounts dirs;
	/* The lock table (locks.c): part of the state and of its hash. */
	struct locks locks;
	/* The lease table (leases.c): the same; each lease has the set of
	 * its keys' nodes (lease_keys.c, kept by map.c's lease_link). */
	struct leases leases;
	/* While a db is collected (map_cut.c): the first record each key
	 * changed since had at the cut; NULL otherwise. */
	struct map_stash *stash;
};

/* ---- map_index.c ---- */

/* Buckets of a new map's index; it doubles when the nodes outnumber the
 * buckets. */
#define MAP_INDEX_MIN 64

/* n has a new key (inserted or attached; m->nodes counts it already): it
 * goes in the index, which may grow. A replace keeps key and bucket. */
void map_index_add(struct map *m, struct map_node *n);
/* n leaves the index. */
void map_index_del(struct map *m, struct map_node *n);
/* The node of key and tail, or NULL (m has a table: nbuckets != 0). */
struct map_node *map_index_find(const struct map *m, const char *key,
				size_t klen, char tail);

#endif
