/* map_impl.h - the tree of map.c as the state-machine rules in apply.c see
 * it (internal to the store module).
 *
 * map.c owns the red-black tree, the counters and the state hash; apply.c
 * decides what a command does and changes the tree only through the
 * functions here, so every change keeps the counters and the hash right.
 * Only the store-owner thread calls any of this. */
#ifndef KV_STORE_MAP_IMPL_H
#define KV_STORE_MAP_IMPL_H

#include <stdbool.h>

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

/* The node after n in map order, or NULL. */
struct map_node *map_next(const struct map *m, struct map_node *n);
/* True if n is in the subtree of directory p: its explicit record or
 * anything below it. Everything is below the root (plen 0). */
bool map_in_subtree(const struct map_node *n, const char *p, size_t plen);
/* The record of n (borrowed). */
struct kv_rec *map_node_rec(const struct map_node *n);

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

#endif
