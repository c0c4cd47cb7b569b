/* db_int.h - what the db's writer (db_write.c) and loader (db.c) share
 * (internal to the store module). */
#ifndef KV_STORE_DB_INT_H
#define KV_STORE_DB_INT_H

#define DB_VERSION 4 /* 1 to 3 still load */
#define DB_NAME	   "db.jsonl"
#define DB_TMP	   "db.jsonl.tmp"

/* dir/name, malloc'd (NULL: no memory). */
char *db_join(const char *dir, const char *name);

#endif
