/* map_stash.h - the records a changing map had at a cut (internal to the
 * store module).
 *
 * While the db writer reads the map as it was at one applied index (the
 * cut, map_cut.c), the applier goes on changing it. Before its first
 * change to a key after the cut, the map (map.c) stashes the record the
 * key had then (referenced), or that it had none; later changes to the
 * same key stash nothing. The cut is then: every key of the map not in
 * the stash, with its current record, and every stashed key with its
 * stashed record. The stash is sorted in the map's order (map_eff_cmp),
 * so the reader merges the two in one walk. Changed under the map's write
 * lock, read under its read lock. */
#ifndef KV_STORE_MAP_STASH_H
#define KV_STORE_MAP_STASH_H

#include <stdbool.h>
#include <stddef.h>

#include "kv.h"

/* One stashed key: its record at the cut, NULL if it had none. */
struct stash_ent;
struct map_stash;

/* The order of the map: key a plus tail at against key b plus tail bt,
 * bytes unsigned ('/' tails a directory, 0 a file, '0' seeks past a
 * subtree; map.c). */
int map_eff_cmp(const char *a, size_t alen, char at, const char *b, size_t blen,
		char bt);

/* An empty stash, with the root's record at the cut (referenced; NULL:
 * the defaults). NULL without memory. */
struct map_stash *stash_new(struct kv_rec *root);
void stash_free(struct map_stash *s); /* drops every reference */
/* Before the first change of key + tail after the cut: its record then
 * (referenced here; NULL: none). Keys already stashed keep their first
 * record. Without memory the stash is marked failed (stash_failed): the
 * cut is then unusable, the map is not affected. */
void stash_note(struct map_stash *s, const char *key, size_t klen, char tail,
		struct kv_rec *rec);
bool stash_failed(const struct map_stash *s);
struct kv_rec *stash_root(const struct map_stash *s); /* borrowed */

/* The first entry at or after key + tail (NULL: none), and the next. */
struct stash_ent *stash_seek(const struct map_stash *s, const char *key,
			     size_t klen, char tail);
struct stash_ent *stash_first(const struct map_stash *s);
struct stash_ent *stash_next(const struct map_stash *s, struct stash_ent *e);
/* An entry's key, its tail, its record at the cut (borrowed, or NULL). */
const char *stash_key(const struct stash_ent *e, size_t *klen, char *tail);
struct kv_rec *stash_rec(const struct stash_ent *e);
size_t stash_count(const struct map_stash *s);

#endif
