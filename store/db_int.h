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

#include <stdbool.h>
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

/* The loader's own reading of a record line db_read.c leaves (one with
 * attributes): 1 and *rec the record db.c's loop would make of it, 0 if
 * that loop must read the line itself (not a record line, or damaged: it
 * says what is wrong), -ENOMEM. Called on the stream's threads: it must
 * not touch the map. */
typedef int (*db_slow_fn)(void *ctx, const char *line, size_t len,
			  struct kv_rec **rec);

/* A session or lock line (version 3) into the map's lock table, and a
 * lease line (version 4) into its lease table: 0, -EINVAL (damaged) or
 * -ENOMEM. db_tables.c. */
struct cJSON;
struct map;
int db_load_lock_line(const struct cJSON *o, bool sess, struct map *m);
int db_load_lease_line(const struct cJSON *o, struct map *m);

/* What db_stream does with the lines: slow (may be NULL) reads the record
 * lines db_read.c leaves, add puts each record in the map, and hint (may
 * be NULL), called with a record a few before add gets it, starts
 * loading what add will touch. All get ctx; slow runs on the stream's
 * threads, the others on the caller's. */
struct db_stream_ops {
	db_slow_fn slow;
	db_add_fn add;
	void (*hint)(void *ctx, const struct kv_rec *rec);
	void *ctx;
};

/* From cur on, the record lines db_read.c or ops->slow takes, read on
 * other threads (two halves at once) and given to ops->add in file order
 * on this one, up to the first line they do not take; cur then stands at
 * that line. 0, add's error or -ENOMEM (cur unchanged on error); 1 if no
 * thread could be started (nothing done). db_stream.c. */
int db_stream(const char *base, size_t size, uint64_t version,
	      struct db_cursor *cur, const struct db_stream_ops *ops);

#endif
