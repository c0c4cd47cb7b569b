/* hardstate.h - Raft's term and vote, persisted atomically (internal).
 *
 * A small JSON file with a version and checksum, replaced by write, fsync,
 * rename and a sync of the directory, so a crash leaves the old or the new
 * state, never a mix. */
#ifndef KV_STORE_HARDSTATE_H
#define KV_STORE_HARDSTATE_H

#include <stdint.h>

/* Load from dir; a missing file gives term = vote = 0 and returns 0.
 * A damaged file: KV_ECORRUPT with *errmsg; unknown version KV_EVERSION. */
int hardstate_load(const char *dir, uint64_t *term, uint64_t *vote,
		   char **errmsg);
int hardstate_save(const char *dir, uint64_t term, uint64_t vote);

#endif
