/* map_impl.h - the tree of map.c as the state-machine rules in apply.c and
 * the listing in map_list.c see it (internal to the store module).
 *
 * map.c owns the red-black tree, the counters, the sub-directory counts,
 * the root's record and the state hash; apply.c decides what a command
 * does and changes the tree only through the functions here, so every
 * change keeps the counters and the hash right. map_hash.c holds the two
 * hashes. Only the thread that may change the map calls the changing
 * functions; the others are reads. */
#ifndef KV_STORE_MAP_IMPL_H
#define KV_STORE_MAP_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "map.h"

/* One file or explicit directory. Fields are read-only outside map.c. */
struct map_node;

/* What a path is: nothing, a file, an explicit directory (a record), an
 * implicit directory (keys below it, no record) or the root "". */
enum map_kind { MAP_NONE, MAP_FILE, MAP_DIR, MAP_IMPLICIT, MAP_ROOT };

/* What path p is. For MAP_FILE and MAP_DIR *np is its node; for
 * MAP_IMPLICIT the first node below it; otherwise NULL. */
enum map_kind map_lookup(const struct map *m, const char *p, size_t plen,
			 struct map_node **np);
bool map_kind_is_dir(enum map_kind k);
/* True if directory p (kind k, node n from map_lookup) has anything below
 * it. */
bool map_has_children(const struct map *m, const char *p, size_t plen,
		      enum map_kind k, struct map_node *n);
/* -ENOTDIR if a proper ancestor of key is a file, else 0. */
int map_check_ancestors(const struct map *m, const char *key, size_t klen);

/* The node of key with tail (0 a file, '/' an explicit directory), or
 * NULL: an exact lookup through the hash index. */
struct map_node *map_find(const struct map *m, const char *key, size_t klen,
			  char tail);
/* The first node whose effective key (key plus tail) is >= key + tail. A
 * tail of '0' (the byte after '/') seeks past the subtree of key. */
struct map_node *map_lower_bound(const struct map *m, const char *key,
				 size_t klen, char tail);
/* The first node of the subtree of directory p (its explicit record, or
 * the first node below it), or NULL if nothing is there. */
struct map_node *map_subtree_first(const struct map *m, const char *p,
				   size_t plen);
/* The node after n in map order, or NULL. */
struct map_node *map_next(const struct map *m, struct map_node *n);
/* True for an explicit directory's node. */
bool map_node_is_dir(const struct map_node *n);
/* True if n is in the subtree of directory p: its explicit record or
 * anything below it. Everything is below the root (plen 0). */
bool map_in_subtree(const struct map_node *n, const char *p, size_t plen);
/* The record of n (borrowed). */
struct kv_rec *map_node_rec(const struct map_node *n);
/* stat of path p (kind k, node n from map_lookup) into st. */
void map_stat_of(const struct map *m, enum map_kind k, const struct map_node *n,
		 const char *p, size_t plen, struct kv_stat *st);
/* The link count of directory p: 2 + its sub-directories (1 if the
 * counts were lost for want of memory). */
uint32_t map_nlink(const struct map *m, const char *p, size_t plen);

/* The root's record (borrowed), or NULL while it has the defaults (mode
 * 0755, no owner, zero times). */
const struct kv_rec *map_root(const struct map *m);
/* Give the root rec (key "", a directory; takes the reference). */
void map_set_root(struct map *m, struct kv_rec *rec);

/* Replace n's record by rec (takes the reference; drops n's). Cannot fail.
 * rec must have n's key and kind (file or directory). */
void map_replace(struct map *m, struct map_node *n, struct kv_rec *rec);
/* Remove n from the tree and free it, dropping its record. */
void map_remove_node(struct map *m, struct map_node *n);
/* Take n out of the tree; its record stays with it (still referenced by
 * n) until map_attach gives it a new one. For moving a subtree: detach
 * every node first, then attach each under its new key. */
void map_detach(struct map *m, struct map_node *n);
/* Put detached node n back under rec's key (takes the reference of rec;
 * n's old record is NOT released: the caller took it over, see
 * map_node_rec before detaching). The key must be free (asserted). */
void map_attach(struct map *m, struct map_node *n, struct kv_rec *rec);

/* The stash of the cut being read (map_stash.h), or NULL. */
struct map_stash;
const struct map_stash *map_stash_of(const struct map *m);

/* ---- map_hash.c ---- */

/* A hash of everything rec holds (a term of the state hash). */
uint64_t map_rec_hash(const struct kv_rec *rec);
/* map_rec_hash in two steps (map_hash.c): of the key and value, then of
 * the rest of rec from that state. */
uint64_t map_rec_hash_kv(const char *key, size_t klen, const void *val,
			 size_t vlen);
uint64_t map_rec_hash_rest(uint64_t h, const struct kv_rec *rec);
/* A hash of key and tail, for lookup tables. */
uint64_t map_key_hash(const char *key, size_t klen, char tail);

#endif
