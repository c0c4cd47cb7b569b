/* http_watch.c - GET /kv/<key-or-prefix>?watch: the changes, as they are
 * applied, one JSON object a line (docs/http-api.md#watch).
 *
 * A watch starts after the request's read barrier (ReadIndex: this node
 * has applied everything committed when it was asked), from ?since=REV
 * or, without it, from the next revision. The body is produced by a
 * content reader on the listener's thread from the store's history
 * (store_watch_read): event lines, and progress lines ({"progress":R}:
 * every matching change up to R was sent) first, every keep-alive
 * interval and at the end. A client resumes from the last revision it
 * saw plus one, on any member. With nothing to send the reader parks the
 * connection (MHD_suspend_connection, the pattern libmicrohttpd
 * prescribes for "no data yet") and the store's hook, called after each
 * applied batch, or the ticker, once a second, takes it up again. With
 * ?wait=SECONDS (long poll) the answer ends after the first events, or
 * after that many seconds with none. A watch that falls behind the
 * history (it dropped changes the watch did not send yet) ends with an
 * error line naming the oldest revision kept; a request from before it
 * is 410 before anything is sent. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "http_int.h"
#include "store.h"

#define WATCH_KEEPALIVE_MS 10000u
#define WATCH_MAX_WAIT_S   300u
#define WATCH_BATCH	   64
#define WATCH_BLOCK	   (32u << 10)

/* The distinct prefixes watched: a batch of changes is matched once per
 * prefix, not once per watch (ws->mu). */
struct wprefix {
	struct wprefix *next;
	char *p;
	size_t plen;
	unsigned refs;
	bool hit; /* the batch being dispatched touched it */
	/* The lines of the last read of the history for this prefix, with
	 * values ([1]) and without ([0]): every watch of the prefix that
	 * looks from the same revision takes these bytes instead of reading
	 * and encoding the same events again, so a change seen by 1,000
	 * watches is encoded once, not 1,000 times (ws->mu). */
	struct wlines {
		bool valid;
		uint64_t from, next; /* the revisions [from, next) they cover */
		struct kv_buf b;
	} lines[2];
};
/* Reads whose lines are longer are not kept (big values: one copy per
 * watch is what the stream needs anyway). */
#define WATCH_SHARE_MAX (256u << 10)

struct watch {
	struct watch *prev, *next; /* in the server's list (ws->mu) */
	struct wprefix *pfx;
	struct http_watches *ws;
	struct MHD_Connection *conn;
	struct store *st;
	char *prefix;
	size_t plen;
	uint64_t next_rev; /* the first revision not yet looked at */
	bool values;	   /* event lines carry the value */
	uint64_t deadline; /* long poll: when to end (kv_mono_ms); 0: stream */
	uint64_t last_ms;  /* the last line written */
	bool sent;	   /* an event line was sent */
	bool ended;	   /* the last line is in out */
	bool parked;	   /* suspended, waiting for a change (ws->mu) */
	struct kv_buf out;
	size_t off; /* of out, sent */
};

struct http_watches {
	pthread_mutex_t mu;
	struct watch *head;
	bool closing;
	bool ticking;
	pthread_t ticker;
	pthread_cond_t cond; /* the ticker sleeps on it */
	struct store *st;
	unsigned n;
	struct wprefix *prefixes;
};

enum wake { WAKE_ALL, WAKE_DUE, WAKE_HIT };

/* Take parked watches up again (ws->mu held): all of them, those with a
 * keep-alive or a deadline due, or those whose prefix a batch hit. */
static void unpark(struct http_watches *ws, enum wake why, uint64_t now)
{
	for (struct watch *w = ws->head; w; w = w->next) {
		if (!w->parked)
			continue;
		bool due = now - w->last_ms >= WATCH_KEEPALIVE_MS ||
			   (w->deadline && now >= w->deadline);
		if ((why == WAKE_DUE && !due) ||
		    (why == WAKE_HIT && !w->pfx->hit))
			continue;
		w->parked = false;
		MHD_resume_connection(w->conn);
	}
}

/* The store's hook: a batch of changes from revision first was applied.
 * Each watched prefix is matched against the batch once; only the
 * watches of a prefix it touched wake (1,000 watches of other keys cost
 * one check, not 1,000 wake-ups). first 0: everyone looks again. */
static void on_changes(void *ctx, uint64_t first)
{
	struct http_watches *ws = ctx;
	pthread_mutex_lock(&ws->mu);
	if (first == 0) {
		unpark(ws, WAKE_ALL, 0);
	} else {
		bool any = false;
		for (struct wprefix *p = ws->prefixes; p; p = p->next)
			any |= p->hit =
			    store_watch_any(ws->st, first, p->p, p->plen);
		if (any)
			unpark(ws, WAKE_HIT, 0);
	}
	pthread_mutex_unlock(&ws->mu);
}

/* The group of prefix p (a reference), made if new. ws->mu held. */
static struct wprefix *prefix_get(struct http_watches *ws, const char *p,
				  size_t plen)
{
	struct wprefix *x;
	for (x = ws->prefixes; x; x = x->next)
		if (x->plen == plen && memcmp(x->p, p, plen) == 0) {
			x->refs++;
			return x;
		}
	x = calloc(1, sizeof(*x));
	if (!x || !(x->p = malloc(plen + 1))) {
		free(x);
		return NULL;
	}
	memcpy(x->p, p, plen);
	x->p[plen] = '\0';
	x->plen = plen;
	x->refs = 1;
	x->next = ws->prefixes;
	ws->prefixes = x;
	return x;
}

static void prefix_put(struct http_watches *ws, struct wprefix *x)
{
	if (!x || --x->refs)
		return;
	for (struct wprefix **pp = &ws->prefixes; *pp; pp = &(*pp)->next)
		if (*pp == x) {
			*pp = x->next;
			break;
		}
	kv_buf_free(&x->lines[0].b);
	kv_buf_free(&x->lines[1].b);
	free(x->p);
	free(x);
}

static void *ticker_main(void *arg)
{
	pthread_setname_np(pthread_self(), "kvfs-watch");
	struct http_watches *ws = arg;
	pthread_mutex_lock(&ws->mu);
	while (!ws->closing) {
		struct timespec t = kv_deadline(1000);
		pthread_cond_timedwait(&ws->cond, &ws->mu, &t);
		unpark(ws, WAKE_DUE, kv_mono_ms());
	}
	pthread_mutex_unlock(&ws->mu);
	return NULL;
}

int http_watches_new(struct kv_node *n, struct http_watches **out)
{
	struct http_watches *ws = calloc(1, sizeof(*ws));
	if (!ws)
		return -ENOMEM;
	pthread_mutex_init(&ws->mu, NULL);
	kv_cond_init(&ws->cond);
	ws->st = node_store(n);
	int ret = ws->st ? store_watch_hook(ws->st, on_changes, ws) : 0;
	if (ret == 0)
		ret = -pthread_create(&ws->ticker, NULL, ticker_main, ws);
	if (ret != 0) {
		if (ws->st)
			store_watch_unhook(ws->st, on_changes, ws);
		pthread_cond_destroy(&ws->cond);
		pthread_mutex_destroy(&ws->mu);
		free(ws);
		return ret;
	}
	ws->ticking = true;
	*out = ws;
	return 0;
}

void http_watches_stop(struct http_watches *ws)
{
	if (!ws)
		return;
	pthread_mutex_lock(&ws->mu);
	ws->closing = true;
	unpark(ws, WAKE_ALL, 0);
	pthread_cond_broadcast(&ws->cond);
	pthread_mutex_unlock(&ws->mu);
	if (ws->ticking)
		pthread_join(ws->ticker, NULL);
	ws->ticking = false;
	if (ws->st)
		store_watch_unhook(ws->st, on_changes, ws);
	ws->st = NULL;
}

void http_watches_free(struct http_watches *ws)
{
	if (!ws)
		return;
	http_watches_stop(ws);
	pthread_cond_destroy(&ws->cond);
	pthread_mutex_destroy(&ws->mu);
	free(ws);
}

unsigned http_watches_count(struct http_watches *ws)
{
	pthread_mutex_lock(&ws->mu);
	unsigned n = ws->n;
	pthread_mutex_unlock(&ws->mu);
	return n;
}

static void event_line(struct watch *w, const struct store_event *e)
{
	store_event_line(&w->out, e, w->values);
}

static void progress_line(struct watch *w)
{
	kv_buf_puts(&w->out, "{\"progress\":");
	kv_buf_u64(&w->out, w->next_rev - 1);
	kv_buf_puts(&w->out, "}\n");
}

/* The lines another watch of w's prefix read from w->next_rev, if any:
 * appended to w's out. */
static bool fill_shared(struct watch *w)
{
	struct http_watches *ws = w->ws;
	struct wlines *l = &w->pfx->lines[w->values];
	bool hit = false;
	pthread_mutex_lock(&ws->mu);
	if (l->valid && l->from == w->next_rev) {
		kv_buf_put(&w->out, l->b.p, l->b.len);
		w->next_rev = l->next;
		hit = true;
	}
	pthread_mutex_unlock(&ws->mu);
	if (hit && w->out.err == 0)
		w->sent = true;
	return hit && w->out.err == 0;
}

/* Keep out[start..] as the lines of [from, next) for the prefix. */
static void fill_share(struct watch *w, size_t start, uint64_t from,
		       uint64_t next)
{
	size_t len = w->out.len - start;
	if (w->out.err || len == 0 || len > WATCH_SHARE_MAX)
		return;
	struct http_watches *ws = w->ws;
	struct wlines *l = &w->pfx->lines[w->values];
	pthread_mutex_lock(&ws->mu);
	l->b.len = 0;
	l->b.err = 0;
	kv_buf_put(&l->b, w->out.p + start, len);
	l->valid = l->b.err == 0;
	l->from = from;
	l->next = next;
	pthread_mutex_unlock(&ws->mu);
}

/* Read what the history has for w into out; false if w fell behind it
 * (the error line is in out then). */
static bool fill(struct watch *w)
{
	if (fill_shared(w))
		return true;
	size_t start = w->out.len;
	uint64_t from = w->next_rev;
	struct store_event stack[WATCH_BATCH], *ev = stack;
	size_t n, cap = WATCH_BATCH;
	uint64_t next, oldest;
	int ret;
	/* one revision (an add of many counters) may need more room */
	while ((ret = store_watch_read(w->st, w->next_rev, w->prefix, w->plen,
				       ev, cap, &n, &next, &oldest)) ==
	       -ENOBUFS) {
		if (ev != stack)
			free(ev);
		cap *= 2;
		ev = malloc(cap * sizeof(*ev));
		if (!ev) {
			w->out.err = -ENOMEM; /* the stream ends in error */
			return false;
		}
	}
	if (ret == KV_EGONE) {
		kv_buf_printf(&w->out,
			      "{\"error\":\"the changes from revision %" PRIu64
			      " on were dropped from the history before "
			      "they were sent\",\"code\":\"compacted\","
			      "\"oldest\":%" PRIu64 "}\n",
			      w->next_rev, oldest);
		if (ev != stack)
			free(ev);
		return false;
	}
	for (size_t i = 0; i < n; i++)
		event_line(w, &ev[i]);
	store_events_free(ev, n);
	if (ev != stack)
		free(ev);
	if (n)
		w->sent = true;
	w->next_rev = next;
	fill_share(w, start, from, next);
	return true;
}

static ssize_t watch_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	(void)pos;
	struct watch *w = cls;
	struct http_watches *ws = w->ws;
	for (;;) {
		if (w->off < w->out.len) {
			size_t k = w->out.len - w->off;
			if (k > max)
				k = max;
			memcpy(buf, w->out.p + w->off, k);
			w->off += k;
			return (ssize_t)k;
		}
		w->out.len = w->off = 0;
		if (w->out.err)
			return MHD_CONTENT_READER_END_WITH_ERROR;
		if (w->ended)
			return MHD_CONTENT_READER_END_OF_STREAM;
		uint64_t seq = store_watch_seq(w->st);
		uint64_t now = kv_mono_ms();
		pthread_mutex_lock(&ws->mu);
		bool closing = ws->closing;
		pthread_mutex_unlock(&ws->mu);
		if (closing) {
			progress_line(w);
			w->ended = true;
			continue;
		}
		if (!fill(w)) {
			w->ended = true;
			continue;
		}
		if (w->out.len) {
			w->last_ms = now;
			continue;
		}
		if (w->deadline && (w->sent || now >= w->deadline)) {
			progress_line(w);
			w->ended = true;
			continue;
		}
		if (now - w->last_ms >= WATCH_KEEPALIVE_MS) {
			progress_line(w);
			w->last_ms = now;
			continue;
		}
		/* nothing now: park, unless a change came since we looked */
		pthread_mutex_lock(&ws->mu);
		if (ws->closing || store_watch_seq(w->st) != seq) {
			pthread_mutex_unlock(&ws->mu);
			continue;
		}
		w->parked = true;
		MHD_suspend_connection(w->conn);
		pthread_mutex_unlock(&ws->mu);
		return 0;
	}
}

static void watch_free(void *cls)
{
	struct watch *w = cls;
	struct http_watches *ws = w->ws;
	pthread_mutex_lock(&ws->mu);
	if (w->prev)
		w->prev->next = w->next;
	else
		ws->head = w->next;
	if (w->next)
		w->next->prev = w->prev;
	ws->n--;
	prefix_put(ws, w->pfx);
	pthread_mutex_unlock(&ws->mu);
	kv_buf_free(&w->out);
	free(w->prefix);
	free(w);
}

/* A number query parameter in [0, max]; false after queueing a 400. */
static bool query_uint(struct http_req *r, const char *name, uint64_t max,
		       uint64_t *out, bool *present)
{
	bool bad;
	size_t len;
	char *v = http_query(r, name, &len, &bad);
	*present = v != NULL;
	if (!v && !bad)
		return true;
	char *end = NULL;
	errno = 0;
	unsigned long long x = v ? strtoull(v, &end, 10) : 0;
	bool ok = v && !bad && len > 0 && end == v + len && errno == 0 &&
		  v[0] != '-' && x <= max;
	free(v);
	if (ok) {
		*out = x;
		return true;
	}
	char msg[120];
	snprintf(msg, sizeof msg, "%s is a whole number from 0 to %" PRIu64,
		 name, max);
	http_fail(r, MHD_HTTP_BAD_REQUEST, "bad_request", msg);
	return false;
}

enum MHD_Result http_watch_start(struct http_req *r)
{
	struct http_watches *ws = r->http->watches;
	uint64_t since = 0, values = 1, wait = 0;
	if (!ws->st)
		return http_fail(r, MHD_HTTP_NOT_IMPLEMENTED, "not_implemented",
				 "this node has no store to watch");
	bool has_since, has_values, has_wait;
	if (!query_uint(r, "since", UINT64_MAX - 1, &since, &has_since) ||
	    !query_uint(r, "values", 1, &values, &has_values) ||
	    !query_uint(r, "wait", WATCH_MAX_WAIT_S, &wait, &has_wait))
		return MHD_YES;
	if (!has_since || since == 0)
		since = store_applied(ws->st) + 1; /* what comes next */
	/* from before the history: say so now, with the oldest kept */
	size_t n;
	uint64_t next, oldest;
	if (store_watch_read(ws->st, since, "", 0, NULL, 0, &n, &next,
			     &oldest) == KV_EGONE) {
		char body[240];
		int len = snprintf(
		    body, sizeof body,
		    "{\"error\":\"revision %" PRIu64
		    " is older than the history of changes kept; read the "
		    "keys again and watch from oldest or later\","
		    "\"code\":\"compacted\",\"oldest\":%" PRIu64 "}",
		    since, oldest);
		return http_reply_json(r, MHD_HTTP_GONE, body, (size_t)len);
	}
	struct watch *w = calloc(1, sizeof(*w));
	if (!w)
		return http_fail_err(r, -ENOMEM, NULL);
	w->ws = ws;
	w->conn = r->conn;
	w->st = ws->st;
	w->next_rev = since;
	w->values = values != 0;
	w->last_ms = kv_mono_ms();
	w->deadline = has_wait ? w->last_ms + wait * 1000 : 0;
	kv_buf_init(&w->out);
	w->prefix = malloc(r->klen + 1);
	if (!w->prefix) {
		free(w);
		return http_fail_err(r, -ENOMEM, NULL);
	}
	memcpy(w->prefix, r->key ? r->key : "", r->klen);
	w->prefix[r->klen] = '\0';
	w->plen = r->klen;
	/* the first line: where the watch starts */
	progress_line(w);
	pthread_mutex_lock(&ws->mu);
	bool closing = ws->closing;
	if (!closing && !(w->pfx = prefix_get(ws, w->prefix, w->plen))) {
		pthread_mutex_unlock(&ws->mu);
		kv_buf_free(&w->out);
		free(w->prefix);
		free(w);
		return http_fail_err(r, -ENOMEM, NULL);
	}
	if (!closing) {
		w->next = ws->head;
		if (ws->head)
			ws->head->prev = w;
		ws->head = w;
		ws->n++;
	}
	pthread_mutex_unlock(&ws->mu);
	if (closing) {
		kv_buf_free(&w->out);
		free(w->prefix);
		free(w);
		return http_fail_err(r, KV_ESHUTDOWN, NULL);
	}
	struct MHD_Response *resp = MHD_create_response_from_callback(
	    MHD_SIZE_UNKNOWN, WATCH_BLOCK, watch_read, w, watch_free);
	if (!resp) {
		watch_free(w);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				"application/x-ndjson");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL,
				"no-store");
	return http_queue(r, MHD_HTTP_OK, resp);
}
