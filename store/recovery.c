/* recovery.c - where a store's state comes from: its own files at open,
 * or a leader's snapshot.
 *
 * At open the db is loaded into the map and the log is checked to go on
 * from it; the log's entries after the db are not applied but handed to
 * the Raft core (store_recover), which applies them again once it knows
 * they are committed. An install puts a verified snapshot file in place of
 * the db, the map and the log, on the owner thread, once no db job and no
 * log sync runs. Opening the files is store.c's; threads: store_int.h. */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "store_int.h"

/* ---- open ---- */

int recovery_check_log(struct store *st, char **errmsg)
{
	uint64_t first = log_first_index(st->log);
	uint64_t last = log_last_index(st->log);
	if (last < st->snap_index) {
		/* the db is ahead of the whole log: start the log after it */
		return log_reset(st->log, st->snap_index, st->snap_term);
	}
	if (first > st->snap_index + 1) {
		if (asprintf(errmsg,
			     "the db ends at index %llu but the log starts "
			     "at %llu: entries are missing",
			     (unsigned long long)st->snap_index,
			     (unsigned long long)first) < 0)
			*errmsg = NULL;
		return KV_ECORRUPT;
	}
	return 0; /* the core applies what it knows is committed */
}

/* ---- store_recover ---- */

void store_recovery_free(struct store_recovery *rec)
{
	for (size_t i = 0; i < rec->n; i++) /* the others are in the arena */
		if (rec->entries[i].type == STORE_ENTRY_CONFIG)
			free((void *)rec->entries[i].data);
	pre_arena_unref(rec->arena);
	free(rec->entries);
	free(rec->conf);
	/* The copies were as big as the log after the db (tens of MiB), in
	 * the arena of the thread that made them: give its free pages
	 * back, or they stay resident. */
	if (rec->n > 0)
		malloc_trim(0);
	memset(rec, 0, sizeof(*rec));
}

void *store_recovery_hold(const struct store_recovery *rec)
{
	if (rec->arena)
		pre_arena_ref(rec->arena);
	return rec->arena;
}

void store_recovery_drop(void *arena)
{
	pre_arena_unref(arena);
}

/* A copy of log entry le as the core sees it (configurations back to
 * their text, malloc'd; the others' bytes at *at in the arena, *at moved
 * past them). 0, -ENOMEM, KV_ECORRUPT. */
static int copy_entry(const struct log_entry *le, struct store_entry *e,
		      char **at)
{
	e->index = le->index;
	e->term = le->term;
	e->type = le->type + 1;
	void *data = NULL;
	size_t len = 0;
	if (e->type == STORE_ENTRY_CONFIG) {
		data = store_conf_from_json(le->data, le->len, &len);
		if (!data)
			return KV_ECORRUPT;
	} else if (le->len) {
		data = *at;
		memcpy(data, le->data, le->len);
		len = le->len;
		*at += len;
	}
	e->data = data;
	e->len = len;
	return 0;
}

/* Entries [from, to] of st's log copied into out[] and the arena from at
 * on: *n of them, then 0 or the first failure. */
struct copy_part {
	struct store *st;
	uint64_t from, to;
	struct store_entry *out;
	char *at, *end;
	size_t n;
	int ret;
};

static void *copy_part(void *arg)
{
	struct copy_part *c = arg;
	for (uint64_t i = c->from; i <= c->to; i++) {
		struct log_entry le;
		int ret = log_get_opened(c->st->log, i, &le);
		if (ret == 0 && le.type + 1 != STORE_ENTRY_CONFIG &&
		    le.len > (size_t)(c->end - c->at))
			ret = KV_ECORRUPT; /* cannot be: data is in the line */
		if (ret == 0)
			ret = copy_entry(&le, &c->out[c->n], &c->at);
		if (ret != 0) {
			c->ret = ret;
			break;
		}
		c->n++;
	}
	return NULL;
}

/* copy_part on a thread of its own, named for what it does */
static void *copy_half_main(void *arg)
{
	pthread_setname_np(pthread_self(), "kvfs-logcopy");
	return copy_part(arg);
}

/* Past this many entries the second half is copied on a thread of its
 * own (parsing each line's head was 0.2 s of a 700k-entry restart, with
 * one core idle: the db's load is over by then). */
#define COPY_SPLIT_MIN 4096

/* The log's entries after the db; log_mu held (the log is only read,
 * by both halves). An entry's data is part of its line, so the half from
 * mid on starts in the arena where its lines would: both fit. */
static int copy_entries(struct store *st, struct store_recovery *rec)
{
	uint64_t last = log_last_index(st->log);
	uint64_t from = st->snap_index + 1;
	if (last < from)
		return 0;
	/* the lines' bytes bound the arena without a pass that parses them
	 * (a large allocation is mapped, and the pages past what is copied
	 * are never touched) */
	size_t bytes = log_line_bytes(st->log, from, last);
	rec->entries = calloc(last - from + 1, sizeof(*rec->entries));
	rec->arena = pre_arena_new(bytes); /* one allocation, not one each */
	if (!rec->entries || !rec->arena)
		return -ENOMEM;
	char *base = pre_arena_bytes(rec->arena);
	uint64_t mid = last - from + 1 >= COPY_SPLIT_MIN
			   ? from + (last - from + 1) / 2
			   : last + 1;
	size_t head =
	    mid <= last ? log_line_bytes(st->log, from, mid - 1) : bytes;
	struct copy_part a = {st,   from,	 mid - 1, rec->entries,
			      base, base + head, 0,	  0};
	struct copy_part b = {
	    st,		 mid,	       last, rec->entries + (mid - from),
	    base + head, base + bytes, 0,    0};
	pthread_t t;
	bool two =
	    mid <= last && pthread_create(&t, NULL, copy_half_main, &b) == 0;
	if (!two)
		a.to = last, a.end = base + bytes;
	copy_part(&a);
	if (two)
		pthread_join(t, NULL);
	rec->n = a.n;
	if (a.ret == 0 && two) {
		rec->n += b.n;
		a.ret = b.ret;
	} else if (two) {
		/* the first half failed: the second's copies go */
		for (size_t i = 0; i < b.n; i++)
			if (b.out[i].type == STORE_ENTRY_CONFIG)
				free((void *)b.out[i].data);
	}
	if (a.ret != 0)
		return a.ret;
	st->replay_end = last;	 /* the schedule waits for its applies */
	log_release(st->log);	 /* copied: the pages are not needed now */
	predecode_free(st->pre); /* a second store_recover: anew */
	st->pre = predecode_start(rec->entries, rec->n, rec->arena);
	return 0;
}

int recovery_recover(struct store *st, struct store_recovery *rec)
{
	memset(rec, 0, sizeof(*rec));
	rec->term = st->term;
	rec->vote = st->vote;
	rec->snap_index = st->snap_index;
	rec->snap_term = st->snap_term;
	rec->lost_index = st->lost_index;
	int ret = 0;
	if (st->conf_json) {
		rec->conf = store_conf_from_json(
		    st->conf_json, strlen(st->conf_json), &rec->conf_len);
		if (!rec->conf)
			ret = KV_ECORRUPT;
	}
	if (ret == 0) {
		pthread_mutex_lock(&st->log_mu);
		ret = copy_entries(st, rec);
		pthread_mutex_unlock(&st->log_mu);
	}
	if (ret != 0)
		store_recovery_free(rec);
	return ret;
}

/* ---- install ---- */

/* The loaded snapshot (m, meta) replaces the log and the map; its file is
 * already the db. log_mu is taken here. 0 or -errno (the store failed). */
static int replace_state(struct store *st, struct map *m, struct db_meta *meta)
{
	/* Appends written before, synced or not yet, are gone with the log
	 * (the appender waits for this install; the sync thread is idle). */
	pthread_mutex_lock(&st->log_mu);
	append_drop_stalled(st);
	st->w_index = st->w_term = 0;
	int ret = log_reset(st->log, meta->index, meta->term);
	if (ret != 0) {
		pthread_mutex_unlock(&st->log_mu);
		store_fail(st, ret, "resetting the log after a snapshot");
		return ret;
	}
	/* the applier waits for this install: the lock is for readers */
	pthread_rwlock_wrlock(&st->map_lock);
	struct map *old = st->map;
	st->map = m;
	free(st->conf_json);
	st->conf_json = meta->conf;
	meta->conf = NULL;
	st->snap_index = st->applied = st->pub_applied = meta->index;
	st->snap_term = st->applied_term = meta->term;
	pthread_rwlock_unlock(&st->map_lock);
	st->replay_end = 0; /* the recovered entries are replaced */
	append_update_room_locked(st);
	pthread_mutex_unlock(&st->log_mu);
	map_free(old);
	return 0;
}

/* Put the snapshot file r->path in place of the map, the db and the log.
 */
static int do_install(struct store *st, struct req *r)
{
	struct map *m = map_new();
	if (!m)
		return -ENOMEM;
	struct db_meta meta = {0};
	char *why = NULL;
	int ret = db_load_file(r->path, m, &meta, &why);
	if (ret != 0) {
		kv_log(KV_LOG_WARN, "snapshot %s refused: %s", r->path,
		       why ? why : kv_strerror(ret));
		free(why);
		goto err;
	}
	char db[4096];
	snprintf(db, sizeof(db), "%s/db.jsonl", st->dir);
	if (rename(r->path, db) != 0) {
		ret = -errno;
		goto err;
	}
	/* the db is in place once the directory is synced: a crash from
	 * then on restarts from it */
	ret = kv_sync_dir(st->dir);
	if (ret != 0) {
		store_fail(st, ret, "syncing the installed snapshot");
		goto err;
	}
	ret = replace_state(st, m, &meta);
	if (ret != 0)
		goto err;
	st->snap.failures = 0;
	st->snap.retry_ms = 0;
	r->index = meta.index;
	r->term = meta.term;
	return 0;
err:
	free(meta.conf);
	map_free(m);
	return ret;
}

/* Run a waiting install once no db job (its rename must not land over the
 * installed db, and its cut is of the map the install replaces) and no log sync
 * (it reports its appends durable) is under way; no sync starts while one waits
 * (sync_hold). */
void recovery_maybe_install(struct store *st)
{
	if (!st->install_waiting)
		return;
	pthread_mutex_lock(&st->log_mu);
	st->sync_hold = true;
	bool busy = st->sync_busy;
	if (busy)
		st->sync_notify = true; /* sync_done brings us back */
	pthread_mutex_unlock(&st->log_mu);
	if (busy || st->snap.running)
		return;
	struct req *r = st->install_waiting;
	st->install_waiting = NULL;
	int ret = do_install(st, r);
	pthread_mutex_lock(&st->log_mu);
	st->sync_hold = false;
	append_kick_sync_locked(st); /* a refused install dropped nothing */
	pthread_mutex_unlock(&st->log_mu);
	owner_complete(r, ret);
}
