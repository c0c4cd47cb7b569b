/* db_int.h - what the db's writer (db_write.c) and loader (db.c) share
 * (internal to the store module). */
#ifndef KV_STORE_DB_INT_H
#define KV_STORE_DB_INT_H

#define DB_VERSION 4 /* 1 to 3 still load */
#define DB_NAME	   "db.jsonl"
#define DB_TMP	   "db.jsonl.tmp"

/* dir/name, malloc'd (NULL: no memory). */
char *db_join(const char *dir, const char *name);

/* ---- loading (db.c, db_stream.c) ---- */

#include <stddef.h>
#include <stdint.h>

#include "kv.h"

/* Where a load stands: the offset of the next line, the checksum of the
 * lines before it, the records read, and how far the mapping's pages
 * behind were given back. */
struct db_cursor {
	size_t off;
	uint32_t crc;
	uint64_t seen;
	size_t released;
};

/* The mapping base[0..) behind off given back once past each 16 MiB
 * (not read again, otherwise resident until the load's end).
 * db_stream.c, for both readers. */
void db_release_behind(const char *base, size_t off, size_t *released);

/* Put rec, read at off, in the map (takes rec, also on failure): 0,
 * damage or -ENOMEM. */
typedef int (*db_add_fn)(void *ctx, struct kv_rec *rec, size_t off);

/* From cur on, the record lines db_read.c takes (in place), read on a
 * second thread and given to add in file order on this one, up to the
 * first line it does not take; cur then stands at that line. 0, add's
 * error or -ENOMEM (cur unchanged on error); 1 if no thread could be
 * started (nothing done). db_stream.c. */
int db_stream(const char *base, size_t size, uint64_t version,
	      struct db_cursor *cur, db_add_fn add, void *ctx);

#endif
