/* history.c - the recent changes, for watches (store.h, docs/http-api.md).
 *
 * Every command the applier applies without error becomes one event (its
 * revision is the entry's log index): the op, the key (and a rename's
 * target), and for a put the record it left, referenced, not copied. An
 * add (counters, apply_add.c) is one put event per counter, all of its
 * revision; a read never splits a revision, so a watcher gets all of an
 * add or none of it, and resumes after it. The
 * events sit in a ring, oldest dropped first once it holds more than
 * history_events of them or more than history_bytes of keys and values;
 * `oldest` is the first revision from which the history is complete, so
 * a watcher that asks for an older one is told, not given a gap. The log
 * replayed at start goes through the applier too, so after a restart the
 * history reaches back to the db snapshot. Installing a snapshot from the
 * leader replaces the map without events: the history starts again after
 * it. Appended on the applier's thread with the map's write lock held,
 * read by watchers under hist.mu only; each append ends with the hooks
 * (the HTTP watches, the mount's events file) called once the map's lock
 * is released. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "store_int.h"

#define HIST_EVENTS_DEFAULT 100000
#define HIST_BYTES_DEFAULT  (64u << 20)

static size_t event_bytes(const struct store_event *e)
{
	return e->klen + e->k2len + (e->rec ? e->rec->vlen : 0) + sizeof(*e);
}

static void event_clear(struct store_event *e)
{
	if (e->key_own)
		free((char *)e->key);
	if (e->key2_own)
		free((char *)e->key2);
	kv_rec_unref(e->rec);
	memset(e, 0, sizeof(*e));
}

/* e's key (key2 if second) as the text k[0..klen): the record's own if it
 * is the same text, else a copy. false without memory. */
static bool event_key(struct store_event *e, bool second, const char *k,
		      size_t klen)
{
	const char **out = second ? &e->key2 : &e->key;
	bool *own = second ? &e->key2_own : &e->key_own;
	char *copy;

	if (second)
		e->k2len = (uint16_t)klen;
	else
		e->klen = (uint16_t)klen;
	if (e->rec != NULL && e->rec->klen == klen &&
	    memcmp(kv_rec_key(e->rec), k, klen) == 0) {
		*out = kv_rec_key(e->rec); /* most events: no copy */
		return true;
	}
	if ((copy = malloc(klen + 1)) == NULL)
		return false;
	if (klen)
		memcpy(copy, k, klen);
	copy[klen] = '\0';
	*out = copy;
	*own = true;
	return true;
}

int hist_init(struct store_history *h, const struct store_options *opt)
{
	memset(h, 0, sizeof(*h));
	h->cap =
	    opt->history_events ? opt->history_events : HIST_EVENTS_DEFAULT;
	h->max_bytes =
	    opt->history_bytes ? opt->history_bytes : HIST_BYTES_DEFAULT;
	h->ring = calloc(h->cap, sizeof(*h->ring));
	if (!h->ring)
		return -ENOMEM;
	h->oldest = 1;
	pthread_cond_init(&h->idle, NULL);
	return -pthread_mutex_init(&h->mu, NULL);
}

void hist_free(struct store_history *h)
{
	if (!h->ring)
		return;
	for (size_t i = 0; i < h->n; i++)
		event_clear(&h->ring[(h->head + i) % h->cap]);
	free(h->ring);
	h->ring = NULL;
	pthread_cond_destroy(&h->idle);
	pthread_mutex_destroy(&h->mu);
}

/* Drop the oldest event. mu held. */
static void drop_oldest(struct store_history *h)
{
	struct store_event *e = &h->ring[h->head];
	h->bytes -= event_bytes(e);
	h->oldest = e->rev + 1;
	event_clear(e);
	h->head = (h->head + 1) % h->cap;
	h->n--;
}

void hist_start_after(struct store_history *h, uint64_t index)
{
	pthread_mutex_lock(&h->mu);
	while (h->n)
		drop_oldest(h);
	h->oldest = index + 1;
	h->seq++;
	pthread_mutex_unlock(&h->mu);
}

static enum store_event_op op_of(enum kv_op op)
{
	switch (op) {
	case KV_OP_PUT:
		return STORE_EV_PUT;
	case KV_OP_DEL:
		return STORE_EV_DELETE;
	case KV_OP_MKDIR:
		return STORE_EV_MKDIR;
	case KV_OP_RMDIR:
		return STORE_EV_RMDIR;
	case KV_OP_RENAME:
		return STORE_EV_RENAME;
	default:
		return STORE_EV_ATTR;
	}
}

/* An add: one put of each counter, DIR/NAME, at rev. */
static void hist_add_counters(struct store *st, uint64_t rev,
			      const struct kv_cmd *cmd)
{
	char key[KV_MAX_KEY + 1];
	for (size_t i = 0; i < cmd->nadd; i++) {
		/* counters at the root are NAME alone (apply_add.c) */
		size_t pre = cmd->klen ? cmd->klen + 1 : 0;
		size_t n = pre + cmd->adds[i].nlen;
		if (n > KV_MAX_KEY)
			continue; /* refused by the apply: not applied */
		memcpy(key, cmd->key, cmd->klen);
		if (pre)
			key[cmd->klen] = '/';
		memcpy(key + pre, cmd->adds[i].name, cmd->adds[i].nlen);
		key[n] = '\0';
		struct kv_cmd put = {.op = KV_OP_PUT, .key = key, .klen = n};
		hist_add_one(st, rev, &put);
	}
}

void hist_add(struct store *st, uint64_t rev, const struct kv_cmd *cmd)
{
	/* the lock table's commands change no key: no event (a lock is not
	 * a change a watcher of the key's value sees) */
	if (!kv_op_has_key(cmd->op) || cmd->op == KV_OP_LOCK)
		return;
	if (cmd->op == KV_OP_ADD)
		hist_add_counters(st, rev, cmd);
	else
		hist_add_one(st, rev, cmd);
}

void hist_add_one(struct store *st, uint64_t rev, const struct kv_cmd *cmd)
{
	struct store_history *h = &st->hist;
	if (!h->ring || cmd->op == KV_OP_NOOP)
		return;
	struct store_event e = {.rev = rev,
				.op = op_of(cmd->op),
				.recursive = cmd->op == KV_OP_RMDIR &&
					     (cmd->flags & KV_RMDIR_RECURSIVE)};
	/* the record as the change left it (a rename's at its new name) */
	const char *at = cmd->op == KV_OP_RENAME ? cmd->key2 : cmd->key;
	size_t atlen = cmd->op == KV_OP_RENAME ? cmd->k2len : cmd->klen;
	if (e.op != STORE_EV_DELETE && e.op != STORE_EV_RMDIR && at) {
		e.rec = map_get(st->map, at, atlen);
		if (e.rec)
			kv_rec_ref(e.rec);
	}
	if (!event_key(&e, false, cmd->key ? cmd->key : "", cmd->klen) ||
	    (cmd->key2 && !event_key(&e, true, cmd->key2, cmd->k2len))) {
		/* no memory: the history cannot stay complete */
		event_clear(&e);
		hist_start_after(h, rev);
		st->hist_added = true;
		st->hist_first = 0;
		return;
	}
	pthread_mutex_lock(&h->mu);
	while (h->n &&
	       (h->n == h->cap || h->bytes + event_bytes(&e) > h->max_bytes))
		drop_oldest(h);
	if (h->n == 0)
		h->oldest = h->oldest > rev ? rev : h->oldest;
	h->bytes += event_bytes(&e);
	h->ring[(h->head + h->n) % h->cap] = e;
	h->n++;
	h->seq++;
	pthread_mutex_unlock(&h->mu);
	if (!st->hist_added)
		st->hist_first = rev;
	st->hist_added = true;
}

void hist_notify(struct store *st)
{
	if (!st->hist_added)
		return;
	st->hist_added = false;
	uint64_t first = st->hist_first;
	struct store_history *h = &st->hist;
	pthread_mutex_lock(&h->mu);
	unsigned n = h->n_hooks;
	struct store_hook hooks[STORE_MAX_HOOKS];
	memcpy(hooks, h->hooks, sizeof(hooks));
	h->notifying = true;
	pthread_mutex_unlock(&h->mu);
	for (unsigned i = 0; i < n; i++)
		hooks[i].fn(hooks[i].ctx, first);
	pthread_mutex_lock(&h->mu);
	h->notifying = false;
	pthread_cond_broadcast(&h->idle);
	pthread_mutex_unlock(&h->mu);
}

int store_watch_hook(struct store *st, void (*fn)(void *ctx, uint64_t first),
		     void *ctx)
{
	struct store_history *h = &st->hist;
	int ret = 0;
	pthread_mutex_lock(&h->mu);
	if (h->n_hooks == STORE_MAX_HOOKS)
		ret = -ENOSPC;
	else
		h->hooks[h->n_hooks++] = (struct store_hook){fn, ctx};
	pthread_mutex_unlock(&h->mu);
	return ret;
}

void store_watch_unhook(struct store *st, void (*fn)(void *ctx, uint64_t first),
			void *ctx)
{
	struct store_history *h = &st->hist;
	pthread_mutex_lock(&h->mu);
	for (unsigned i = 0; i < h->n_hooks; i++)
		if (h->hooks[i].fn == fn && h->hooks[i].ctx == ctx) {
			h->hooks[i] = h->hooks[--h->n_hooks];
			break;
		}
	/* a call that copied the hooks before may still run: wait it out */
	while (h->notifying)
		pthread_cond_wait(&h->idle, &h->mu);
	pthread_mutex_unlock(&h->mu);
}

/* Does an event touch prefix: the key itself, or a key under it? "" is
 * everything. */
static bool under(const char *key, size_t klen, const char *p, size_t plen)
{
	if (!key)
		return false;
	if (plen == 0)
		return true;
	if (klen < plen || memcmp(key, p, plen) != 0)
		return false;
	return klen == plen || p[plen - 1] == '/' || key[plen] == '/';
}

/* Is e a change a watch on prefix sees? (A recursive rmdir above the
 * prefix removed it too.) */
static bool matches(const struct store_event *e, const char *prefix,
		    size_t plen)
{
	return under(e->key, e->klen, prefix, plen) ||
	       under(e->key2, e->k2len, prefix, plen) ||
	       (e->recursive && under(prefix, plen, e->key, e->klen));
}

/* The position of the first event at revision >= rev. The ring is in
 * revision order: bisection, not a walk of a long history for every read.
 * mu held. */
static size_t first_at(const struct store_history *h, uint64_t rev)
{
	size_t lo = 0, hi = h->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (h->ring[(h->head + mid) % h->cap].rev < rev)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int store_watch_read(struct store *st, uint64_t since, const char *prefix,
		     size_t plen, struct store_event *out, size_t max,
		     size_t *n, uint64_t *next, uint64_t *oldest)
{
	struct store_history *h = &st->hist;
	*n = 0;
	pthread_mutex_lock(&h->mu);
	*oldest = h->oldest;
	if (since < h->oldest) {
		pthread_mutex_unlock(&h->mu);
		return KV_EGONE;
	}
	/* what is applied is in the history: the cursor may pass it */
	uint64_t upto = st->pub_applied;
	uint64_t cursor = since;
	bool stopped = false;
	size_t lo = first_at(h, since);
	int ret = 0;
	for (size_t i = lo; i < h->n; i++) {
		const struct store_event *e = &h->ring[(h->head + i) % h->cap];
		if (e->rev > upto) {
			cursor = e->rev; /* not yet published */
			stopped = true;
			break;
		}
		if (*n == max && matches(e, prefix, plen)) {
			/* no room: never half a revision (an add's counters
			 * are one), so the next read starts at its first */
			cursor = e->rev;
			stopped = true;
			while (*n && out[*n - 1].rev == e->rev)
				event_clear(&out[--(*n)]);
			if (*n == 0 && max > 0)
				ret = -ENOBUFS; /* one revision is more */
			break;
		}
		if (!matches(e, prefix, plen))
			continue;
		struct store_event *o = &out[*n];
		*o = (struct store_event){.rev = e->rev,
					  .op = e->op,
					  .recursive = e->recursive,
					  .rec = e->rec};
		if (o->rec != NULL)
			kv_rec_ref(o->rec);
		if (!event_key(o, false, e->key, e->klen) ||
		    (e->key2 && !event_key(o, true, e->key2, e->k2len))) {
			event_clear(o);
			cursor = e->rev;
			stopped = true;
			break;
		}
		(*n)++;
	}
	if (!stopped && upto + 1 > cursor)
		cursor = upto + 1;
	*next = cursor;
	pthread_mutex_unlock(&h->mu);
	return ret;
}

bool store_watch_any(struct store *st, uint64_t from, const char *prefix,
		     size_t plen)
{
	struct store_history *h = &st->hist;
	bool any = false;
	pthread_mutex_lock(&h->mu);
	if (from < h->oldest) {
		any = true; /* the watcher must hear it is behind */
	} else {
		size_t lo = first_at(h, from);
		for (size_t i = lo; i < h->n && !any; i++) {
			const struct store_event *e =
			    &h->ring[(h->head + i) % h->cap];
			any = matches(e, prefix, plen);
		}
	}
	pthread_mutex_unlock(&h->mu);
	return any;
}

void store_events_free(struct store_event *e, size_t n)
{
	for (size_t i = 0; i < n; i++)
		event_clear(&e[i]);
}

uint64_t store_watch_seq(struct store *st)
{
	pthread_mutex_lock(&st->hist.mu);
	uint64_t s = st->hist.seq;
	pthread_mutex_unlock(&st->hist.mu);
	return s;
}

static const char *event_op_name(enum store_event_op op)
{
	switch (op) {
	case STORE_EV_PUT:
		return "put";
	case STORE_EV_DELETE:
		return "delete";
	case STORE_EV_MKDIR:
		return "mkdir";
	case STORE_EV_RMDIR:
		return "rmdir";
	case STORE_EV_RENAME:
		return "rename";
	case STORE_EV_ATTR:
		break;
	}
	return "attr";
}

void store_event_line(struct kv_buf *b, const struct store_event *e,
		      bool values)
{
	kv_buf_puts(b, "{\"revision\":");
	kv_buf_u64(b, e->rev);
	kv_buf_puts(b, ",\"op\":\"");
	kv_buf_puts(b, event_op_name(e->op));
	kv_buf_puts(b, "\",\"key\":");
	kv_buf_json_str(b, e->key, e->klen);
	if (e->key2) {
		kv_buf_puts(b, ",\"to\":");
		kv_buf_json_str(b, e->key2, e->k2len);
	}
	if (e->recursive)
		kv_buf_puts(b, ",\"recursive\":true");
	if (e->rec) {
		kv_buf_puts(b, ",\"size\":");
		kv_buf_u64(b, e->rec->vlen);
		if (values && e->op == STORE_EV_PUT) {
			const void *v = kv_rec_val(e->rec);
			if (kv_utf8_valid(v, e->rec->vlen, false)) {
				kv_buf_puts(b, ",\"value\":");
				kv_buf_json_str(b, v, e->rec->vlen);
			} else {
				kv_buf_puts(b, ",\"value_base64\":\"");
				kv_buf_base64(b, v, e->rec->vlen);
				kv_buf_puts(b, "\"");
			}
		}
	}
	kv_buf_puts(b, "}\n");
}
