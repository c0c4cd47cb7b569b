/* db_read.h - reading a db's record lines in place (internal to the store
 * module; db.c is the file format, this is its fast path).
 *
 * cJSON builds a tree of some twenty allocations for every record line;
 * at 1M keys that was most of the time a node took to load its db. A line
 * holding only what db_write writes for a record without extended
 * attributes is read here with store/kv/jread.h instead, with the same
 * checks; any other line, and any line that would fail a check, is left
 * to db.c's reader, which says what is wrong. */
#ifndef KV_STORE_DB_READ_H
#define KV_STORE_DB_READ_H

#include <stddef.h>
#include <stdint.h>

#include "kv.h"

/* What the reader reuses from line to line; zeroed to start, released
 * with db_scratch_free. */
struct db_fields;
struct db_scratch {
	char *buf;
	size_t cap;
	struct db_fields *f;
};
void db_scratch_free(struct db_scratch *sc);

/* The record line p[0..n) (without its newline) of a db of format
 * version: 1 and *out a new record (refs 1) if it was read here, 0 if the
 * line is for db.c's reader, -ENOMEM. */
int db_read_rec(const char *p, size_t n, uint64_t version,
		struct db_scratch *sc, struct kv_rec **out);

/* The mode's kind, and the value it may have; NULL if they fit (what a
 * record line must hold, whichever reader read it). */
const char *db_kind_problem(uint64_t md, uint64_t version, size_t klen,
			    const unsigned char *val, size_t vlen);

#endif
