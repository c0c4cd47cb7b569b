/* http_txn.c - POST /txn: a transaction, proposed as one entry.
 *
 * The body (read by http_txn_parse.c) becomes one command, the op "txn"
 * (store/apply_txn.c), proposed as every write is (forwarded from a
 * follower, answered once applied here). A txn that only reads goes
 * through the log too: its gets are then as of its revision, linearizable
 * like any write, at the price of an entry. The answer is built from what
 * the apply did (kv_result.txn, referenced by txn_done until the reply):
 * {"succeeded":B,"rev":N,"results":[...]}, one result for each op of the
 * branch taken. A body of 256 KiB or more is read and proposed on a
 * thread of its own, as a big PUT is (http_call.c), so that the listener
 * serves the others meanwhile. Grammar, limits and guarantees:
 * docs/http-api.md. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "http_int.h"

/* What a request keeps between its two runs. */
struct txn_ctx {
	struct kv_txn *txn;	/* the body, for the answer's keys */
	struct kv_txn_res *res; /* referenced in txn_done */
	/* a body read on a worker (big ones): what it found wrong */
	int bad;
	char msg[256];
};

static void ctx_free(void *p)
{
	struct txn_ctx *c = p;
	kv_txn_free(c->txn);
	kv_txn_res_unref(c->res);
	free(c);
}

/* The node's answer (the node thread): keep the results, then resume. */
static void txn_done(void *ctx, int ret, const struct kv_result *res)
{
	struct http_req *r = ctx;
	struct txn_ctx *c = r->ctx;
	if (ret == 0 && res && res->txn) {
		kv_txn_res_ref(res->txn);
		c->res = res->txn;
	}
	http_done(r, ret, res);
}

/* Does a token with a prefix reach key (or, for a delete_range,
 * everything below it)? As http_auth_key_check decides for one key. */
static bool reaches(const char *prefix, const char *key, size_t klen, bool dir)
{
	size_t plen = strlen(prefix), n = klen + (dir ? 1 : 0);
	if (n < plen)
		return false;
	for (size_t i = 0; i < plen; i++)
		if ((i < klen ? key[i] : '/') != prefix[i])
			return false;
	return true;
}

static bool all_reached(const struct http_req *r, const struct kv_txn *t)
{
	if (r->peer || !r->prefix)
		return true;
	for (size_t i = 0; i < t->ncmp; i++)
		if (!reaches(r->prefix, t->cmp[i].key, t->cmp[i].klen, false))
			return false;
	for (int b = 0; b < 2; b++)
		for (size_t i = 0; i < t->nop[b]; i++) {
			const struct kv_txn_op *o = &t->br[b][i];
			if (!reaches(r->prefix, o->key, o->klen,
				     o->kind == KV_TXN_DEL_RANGE))
				return false;
		}
	return true;
}

/* May r write what t would write? A read-only transaction (comparisons
 * and gets) needs only the read role: http_auth_check leaves /txn's role
 * to this, once the body says what it does. */
static bool may_write(const struct http_req *r, const struct kv_txn *t)
{
	if (r->peer || !r->http->auth || r->role >= HTTP_ROLE_WRITE)
		return true;
	for (int b = 0; b < 2; b++)
		for (size_t i = 0; i < t->nop[b]; i++)
			if (t->br[b][i].kind != KV_TXN_GET)
				return false;
	return true;
}

static void put_value(struct kv_buf *b, const struct kv_rec *rec)
{
	if (kv_utf8_valid(kv_rec_val(rec), rec->vlen, false)) {
		kv_buf_puts(b, ",\"value\":");
		kv_buf_json_str(b, kv_rec_val(rec), rec->vlen);
	} else {
		kv_buf_puts(b, ",\"value_base64\":\"");
		kv_buf_base64(b, kv_rec_val(rec), rec->vlen);
		kv_buf_puts(b, "\"");
	}
}

static void put_result(struct kv_buf *b, const struct kv_txn_op *o,
		       const struct kv_txn_op_res *res)
{
	static const char *const names[] = {"get", "put", "delete",
					    "delete_range"};
	kv_buf_printf(b, "{\"op\":\"%s\",\"key\":", names[o->kind]);
	kv_buf_json_str(b, o->key, o->klen);
	if (o->kind == KV_TXN_GET && res->rec) {
		const struct kv_rec *rec = res->rec;
		kv_buf_printf(b,
			      ",\"found\":true,\"mod_rev\":%" PRIu64
			      ",\"create_rev\":%" PRIu64 ",\"size\":%zu",
			      rec->mod_rev, rec->create_rev, (size_t)rec->vlen);
		put_value(b, rec);
	} else if (o->kind == KV_TXN_GET) {
		kv_buf_puts(b, ",\"found\":false");
	} else if (o->kind != KV_TXN_PUT) {
		kv_buf_printf(b, ",\"deleted\":%" PRIu64, res->deleted);
	}
	kv_buf_puts(b, "}");
}

static enum MHD_Result answer(struct http_req *r)
{
	struct txn_ctx *c = r->ctx;
	const struct kv_result *res = &r->async_res;
	if (r->async_ret < 0)
		return http_fail_err(r, r->async_ret, NULL);
	if (res->err != 0 || c->res == NULL) {
		char msg[160];
		int e = res->err ? res->err : -EIO;
		snprintf(msg, sizeof(msg),
			 "%s[%" PRIu64 "]: %s; nothing was changed",
			 c->res && !c->res->succeeded ? "failure" : "success",
			 res->count, kv_strerror(e));
		if (e == -EISDIR || e == -ENOTDIR)
			return http_fail(r, MHD_HTTP_CONFLICT, "conflict", msg);
		return http_fail_err(r, e, msg);
	}
	int br = c->res->succeeded ? 0 : 1;
	struct kv_buf b;
	kv_buf_init(&b);
	kv_buf_printf(&b, "{\"succeeded\":%s,\"rev\":%" PRIu64 ",\"results\":[",
		      c->res->succeeded ? "true" : "false", res->rev);
	for (size_t i = 0; i < c->res->n && i < c->txn->nop[br]; i++) {
		if (i)
			kv_buf_puts(&b, ",");
		put_result(&b, &c->txn->br[br][i], &c->res->r[i]);
	}
	kv_buf_puts(&b, "]}");
	if (b.err) {
		kv_buf_free(&b);
		return MHD_NO;
	}
	enum MHD_Result ret = http_reply_json(r, MHD_HTTP_OK, b.p, b.len);
	kv_buf_free(&b);
	return ret;
}

/* Read the body and propose it: 0 once proposed (txn_done answers), or
 * what is wrong (-EACCES: a key beyond the token's prefix, -EPERM: a
 * write with a read token, -ENOMEM, or the rule broken with c->msg). */
static int read_and_propose(struct http_req *r, struct txn_ctx *c)
{
	int err =
	    http_txn_parse(r->body, r->len, &c->txn, c->msg, sizeof(c->msg));
	if (err != 0)
		return err;
	if (!all_reached(r, c->txn))
		return -EACCES;
	if (!may_write(r, c->txn))
		return -EPERM;
	struct kv_cmd cmd = {
	    .op = KV_OP_TXN, .txn = c->txn, .time_ns = kv_wall_ns()};
	http_started(r, node_propose_async(r->node, &cmd, txn_done, r));
	return 0;
}

static enum MHD_Result refuse(struct http_req *r, const struct txn_ctx *c)
{
	if (c->bad == -EACCES)
		return http_fail(r, MHD_HTTP_FORBIDDEN, "forbidden",
				 "the token may only reach keys under its "
				 "prefix");
	if (c->bad == -EPERM)
		return http_fail(r, MHD_HTTP_FORBIDDEN, "forbidden",
				 "a transaction that puts or deletes needs the "
				 "write role");
	if (c->bad == -ENOMEM)
		return MHD_NO;
	return http_fail(
	    r, MHD_HTTP_BAD_REQUEST,
	    strstr(c->msg, "key rules") ? "bad_key" : "bad_request", c->msg);
}

/* A big body is read on a thread of its own, as a big PUT is encoded
 * (http_propose): the listener serves everyone else meanwhile. */
static void *reader_main(void *arg)
{
	struct http_req *r = arg;
	struct http_server *h = r->http;
	struct txn_ctx *c = r->ctx;
	/* r is not touched once proposed: txn_done may complete it */
	int bad = read_and_propose(r, c);
	if (bad != 0) {
		c->bad = bad;
		http_done(r, 0, NULL);
	}
	pthread_mutex_lock(&h->mu);
	if (--h->workers == 0)
		pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

static bool read_on_a_thread(struct http_req *r)
{
	struct http_server *h = r->http;
	pthread_attr_t attr;
	pthread_t t;
	pthread_mutex_lock(&h->mu);
	h->workers++;
	pthread_mutex_unlock(&h->mu);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	int err = pthread_create(&t, &attr, reader_main, r);
	pthread_attr_destroy(&attr);
	if (err == 0)
		return true;
	pthread_mutex_lock(&h->mu);
	h->workers--;
	pthread_mutex_unlock(&h->mu);
	return false;
}

enum MHD_Result http_txn_handle(struct http_req *r)
{
	struct txn_ctx *c = r->ctx;
	if (r->async_done)
		return c && c->bad ? refuse(r, c) : answer(r);
	if (r->too_large)
		return http_fail(r, MHD_HTTP_CONTENT_TOO_LARGE, "too_large",
				 "the body is over its limit");
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return MHD_NO;
	r->ctx = c;
	r->ctx_free = ctx_free;
	if (!http_suspend(r))
		return http_fail_err(r, KV_ESHUTDOWN, NULL);
	if (r->len >= HTTP_PROPOSE_THREAD_BYTES && read_on_a_thread(r))
		return MHD_YES;
	int bad = read_and_propose(r, c);
	if (bad != 0) {
		c->bad = bad;
		http_done(r, 0, NULL); /* answered when taken up again */
	}
	return MHD_YES;
}
