/* db.h - the db snapshot file (internal to the store module).
 *
 * A JSON snapshot of the map at an applied index: written to a new file,
 * synced, renamed into place, directory synced. db_write touches only the
 * records handed to it, so it runs on a background thread while the owner
 * goes on. */
#ifndef KV_STORE_DB_H
#define KV_STORE_DB_H

#include "map.h"

struct db_meta {
	uint64_t index; /* last applied index covered */
	uint64_t term;	/* its term */
	char *conf;	/* raft configuration JSON or NULL (owned by caller) */
};

/* Write recs (key order) and the lock table locks (may be NULL: none) as
 * the snapshot at meta. 0 or -errno (-ENOSPC: the old snapshot stays in
 * place). */
struct locks;
int db_write(const char *dir, const struct db_meta *meta,
	     struct kv_rec *const *recs, size_t n, const struct locks *locks);
/* The same with the lease table too (may be NULL: none); the records'
 * leases must be in it. */
struct leases;
int db_write_tables(const char *dir, const struct db_meta *meta,
		    struct kv_rec *const *recs, size_t n,
		    const struct locks *locks, const struct leases *leases);
/* Load the snapshot in dir into m (empty), its lock and lease tables
 * included. No file:
 * meta->index = 0 and 0 returned. Damage: KV_ECORRUPT with *errmsg naming file
 * and offset; unknown version: KV_EVERSION. meta->conf is malloc'd (or NULL).
 */
int db_load(const char *dir, struct map *m, struct db_meta *meta,
	    char **errmsg);
/* The size in bytes of the snapshot in dir; 0 if there is none (or it
 * cannot be read). */
uint64_t db_size(const char *dir);
/* The same for the file at path (a snapshot received from a leader). */
int db_load_file(const char *path, struct map *m, struct db_meta *meta,
		 char **errmsg);

#endif
