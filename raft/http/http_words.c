/* http_words.c - mem-db's word counter: POST /words/register and
 * GET /words/occurences (also spelt /words/occurrences).
 *
 * A register splits its text into words (http_words_split: the rule is
 * below and in docs/http-api.md) and proposes one command, an add
 * (store/apply_add.c), that counts every word of the request at once: one
 * replicated entry, applied by the state machine, so registers made at
 * the same time on any nodes never lose a count (mem-db loaded a count
 * and stored it back). The counts are ordinary keys, HTTP_WORDS_DIR/WORD
 * holding decimal text, readable through /kv/ and the mount. A read asks
 * the node's read barrier first, as GET /kv/ does. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "codec.h"
#include "http_int.h"

/* The code point of the UTF-8 sequence at s[0..n) (valid, checked
 * before), and its length in *len. */
static uint32_t utf8_at(const unsigned char *s, size_t n, size_t *len)
{
	if (s[0] < 0x80 || n < 2) {
		*len = 1;
		return s[0];
	}
	if (s[0] < 0xe0) {
		*len = 2;
		return (uint32_t)(s[0] & 0x1f) << 6 | (s[1] & 0x3f);
	}
	if (s[0] < 0xf0) {
		*len = 3;
		return (uint32_t)(s[0] & 0x0f) << 12 |
		       (uint32_t)(s[1] & 0x3f) << 6 | (s[2] & 0x3f);
	}
	*len = 4;
	return (uint32_t)(s[0] & 0x07) << 18 | (uint32_t)(s[1] & 0x3f) << 12 |
	       (uint32_t)(s[2] & 0x3f) << 6 | (s[3] & 0x3f);
}

/* Is code point c part of a word? ASCII letters and digits, and every
 * other character but the blocks of punctuation, symbols and spaces
 * listed (docs/http-api.md): the rule is the same on every node and in
 * every locale. */
static bool word_char(uint32_t c)
{
	if (c < 0x80)
		return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
		       (c >= 'A' && c <= 'Z');
	return !(c <= 0xbf || c == 0xd7 || c == 0xf7 ||
		 (c >= 0x2000 && c <= 0x2bff) || (c >= 0x3000 && c <= 0x303f) ||
		 (c >= 0xfe00 && c <= 0xfe0f) || c == 0xfeff ||
		 (c >= 0xff00 && c <= 0xff0f) || (c >= 0xfff0 && c <= 0xffff) ||
		 (c >= 0x1f000 && c <= 0x1faff));
}

static int word_cmp(const void *a, const void *b)
{
	const struct kv_add *x = a, *y = b;
	size_t n = x->nlen < y->nlen ? x->nlen : y->nlen;
	int c = memcmp(x->name, y->name, n);
	return c ? c : (x->nlen > y->nlen) - (x->nlen < y->nlen);
}

int http_words_split(const char *text, size_t len, struct http_words *out)
{
	const unsigned char *s = (const unsigned char *)text;
	size_t cap = 0, i = 0;

	memset(out, 0, sizeof(*out));
	if (!kv_utf8_valid(text, len, false))
		return -EILSEQ;
	out->lower = malloc(len + 1);
	if (!out->lower)
		return -ENOMEM;
	for (size_t k = 0; k < len; k++)
		out->lower[k] =
		    (char)(s[k] >= 'A' && s[k] <= 'Z' ? s[k] + 32 : s[k]);
	while (i < len) {
		size_t cl, start;
		while (i < len && !word_char(utf8_at(s + i, len - i, &cl)))
			i += cl;
		if (i == len)
			break;
		start = i;
		while (i < len && word_char(utf8_at(s + i, len - i, &cl)))
			i += cl;
		if (i - start > HTTP_WORD_MAX) {
			http_words_free(out);
			return -ENAMETOOLONG;
		}
		if (out->n == cap) {
			size_t nc = cap ? cap * 2 : 64;
			struct kv_add *v = realloc(out->adds, nc * sizeof(*v));
			if (!v) {
				http_words_free(out);
				return -ENOMEM;
			}
			out->adds = v;
			cap = nc;
		}
		out->adds[out->n++] = (struct kv_add){
		    .name = out->lower + start, .nlen = i - start, .n = 1};
		out->total++;
	}
	/* sorted and merged: each word once, with its count */
	if (out->n > 1)
		qsort(out->adds, out->n, sizeof(*out->adds), word_cmp);
	size_t w = 0;
	for (size_t k = 0; k < out->n; k++) {
		if (w > 0 && word_cmp(&out->adds[w - 1], &out->adds[k]) == 0)
			out->adds[w - 1].n++;
		else
			out->adds[w++] = out->adds[k];
	}
	out->n = w;
	return out->n > KV_MAX_ADDS ? -E2BIG : 0;
}

void http_words_free(struct http_words *w)
{
	free(w->adds);
	free(w->lower);
	memset(w, 0, sizeof(*w));
}

bool http_words_check(struct http_req *r)
{
	/* the key the routes reach, for a token's prefix */
	r->key = strdup(HTTP_WORDS_DIR);
	if (!r->key)
		return false;
	r->klen = strlen(HTTP_WORDS_DIR);
	return true;
}

/* What a register counted, kept for its answer. */
struct reg_ctx {
	uint64_t total, distinct;
};

/* The text of a register: the body, or with Content-Type
 * application/json the string "text" of a JSON object. */
static int body_text(struct http_req *r, char **text, size_t *len, cJSON **doc)
{
	const char *ct = http_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
	*doc = NULL;
	if (ct && strncasecmp(ct, "application/json", 16) == 0) {
		*doc = cJSON_ParseWithLength((const char *)r->body, r->len);
		cJSON *t = cJSON_GetObjectItemCaseSensitive(*doc, "text");
		if (!cJSON_IsObject(*doc) || !cJSON_IsString(t))
			return -EINVAL;
		*text = t->valuestring;
		*len = strlen(t->valuestring);
		return 0;
	}
	*text = (char *)r->body;
	*len = r->body ? r->len : 0;
	return 0;
}

enum MHD_Result http_words_register(struct http_req *r)
{
	if (r->async_done) {
		struct reg_ctx *c = r->ctx;
		char body[96];
		if (r->async_ret < 0)
			return http_fail_err(r, r->async_ret, NULL);
		int e = r->async_res.err;
		if (e == -EINVAL || e == -EOVERFLOW)
			return http_fail(r, MHD_HTTP_CONFLICT, "conflict",
					 "a count under " HTTP_WORDS_DIR
					 "/ is not a number (or would pass "
					 "2^64 - 1); nothing was counted");
		if (e == -EISDIR || e == -ENOTDIR)
			return http_fail(r, MHD_HTTP_CONFLICT, "conflict",
					 "a word's key under " HTTP_WORDS_DIR
					 "/ is a directory, or " HTTP_WORDS_DIR
					 " is a file; nothing was counted");
		if (e < 0)
			return http_fail_err(r, e, NULL);
		int n = snprintf(body, sizeof body,
				 "{\"rev\":%" PRIu64 ",\"words\":%" PRIu64
				 ",\"distinct\":%" PRIu64 "}",
				 r->async_res.rev, c->total, c->distinct);
		return http_reply_json(r, MHD_HTTP_OK, body, (size_t)n);
	}
	char *text;
	size_t len;
	cJSON *doc;
	struct http_words w;
	enum MHD_Result ret;
	int rc = body_text(r, &text, &len, &doc);
	if (rc < 0) {
		cJSON_Delete(doc);
		return http_fail(r, MHD_HTTP_BAD_REQUEST, "bad_request",
				 "a JSON body is an object with a string "
				 "field \"text\"");
	}
	rc = http_words_split(text, len, &w);
	cJSON_Delete(doc);
	if (rc == -ENOMEM)
		return MHD_NO;
	if (rc < 0)
		return http_fail(
		    r, MHD_HTTP_BAD_REQUEST, "bad_request",
		    rc == -EILSEQ ? "the text is not valid UTF-8"
		    : rc == -ENAMETOOLONG
			? "a word is longer than 255 bytes"
			: "more than 100000 different words in one request");
	if (w.n == 0) {
		http_words_free(&w);
		return http_reply_json(r, MHD_HTTP_OK,
				       "{\"rev\":null,\"words\":0,"
				       "\"distinct\":0}",
				       strlen("{\"rev\":null,\"words\":0,"
					      "\"distinct\":0}"));
	}
	struct reg_ctx *c = malloc(sizeof(*c));
	if (!c) {
		http_words_free(&w);
		return MHD_NO;
	}
	*c = (struct reg_ctx){w.total, w.n};
	r->ctx = c;
	r->ctx_free = free;
	struct kv_cmd cmd = {.op = KV_OP_ADD,
			     .key = (char *)HTTP_WORDS_DIR,
			     .klen = strlen(HTTP_WORDS_DIR),
			     .adds = w.adds,
			     .nadd = w.n};
	if (!http_suspend(r)) {
		ret = http_fail_err(r, KV_ESHUTDOWN, NULL);
	} else {
		http_started(r,
			     node_propose_async(r->node, &cmd, http_done, r));
		ret = MHD_YES;
	}
	http_words_free(&w); /* the command is borrowed for the call only */
	return ret;
}

/* The count key dir/word holds: 0 if absent, -1 if not a count. */
static int64_t count_of(struct store *st, const char *word, size_t n)
{
	char key[KV_MAX_KEY + 1];
	size_t dl = strlen(HTTP_WORDS_DIR);
	struct kv_rec *rec = NULL;
	uint64_t v = 0;

	if (dl + 1 + n > KV_MAX_KEY)
		return 0;
	memcpy(key, HTTP_WORDS_DIR, dl);
	key[dl] = '/';
	memcpy(key + dl + 1, word, n);
	if (store_get(st, key, dl + 1 + n, &rec) < 0)
		return 0;
	size_t len = rec->vlen;
	if (len > 0 && kv_rec_val(rec)[len - 1] == '\n')
		len--;
	for (size_t i = 0; i < len; i++) {
		unsigned d = (unsigned)kv_rec_val(rec)[i] - '0';
		if (d > 9 || v > (uint64_t)INT64_MAX / 10) {
			kv_rec_unref(rec);
			return -1;
		}
		v = v * 10 + d;
	}
	kv_rec_unref(rec);
	return (int64_t)v;
}

static bool add_count(cJSON *o, struct store *st, const char *word, size_t n)
{
	char name[HTTP_WORD_MAX + 1], num[24];
	memcpy(name, word, n);
	name[n] = '\0';
	if (cJSON_GetObjectItemCaseSensitive(o, name))
		return true; /* asked twice */
	int64_t v = count_of(st, word, n);
	if (v < 0)
		return cJSON_AddNullToObject(o, name) != NULL;
	snprintf(num, sizeof num, "%" PRId64, v);
	return cJSON_AddRawToObject(o, name, num) != NULL;
}

/* ?terms=a,b: each term's word (as a register would count it). */
static enum MHD_Result some_words(struct http_req *r, cJSON *o,
				  const char *terms, size_t tlen)
{
	struct store *st = node_store(r->node);
	const char *p = terms, *end = terms + tlen;
	while (p <= end) {
		const char *q = memchr(p, ',', (size_t)(end - p));
		if (!q)
			q = end;
		struct http_words w;
		int rc = http_words_split(p, (size_t)(q - p), &w);
		if (rc == -ENOMEM)
			return MHD_NO;
		if (rc < 0 || w.total > 1 || (w.total == 0 && q > p)) {
			http_words_free(&w);
			return http_fail(r, MHD_HTTP_BAD_REQUEST, "bad_request",
					 "each of 'terms' (separated by ',') "
					 "is one word");
		}
		bool ok = w.n == 0 ||
			  add_count(o, st, w.adds[0].name, w.adds[0].nlen);
		http_words_free(&w);
		if (!ok)
			return MHD_NO;
		p = q + 1;
	}
	return MHD_YES;
}

/* No terms: every word counted, up to HTTP_WORDS_ALL_MAX. */
static enum MHD_Result all_words(struct http_req *r, cJSON *o)
{
	struct store *st = node_store(r->node);
	struct kv_list list = {0};
	int rc = store_list(st, HTTP_WORDS_DIR, strlen(HTTP_WORDS_DIR), NULL,
			    HTTP_WORDS_ALL_MAX + 1, &list);
	if (rc == -ENOENT)
		return MHD_YES;
	if (rc < 0)
		return http_fail_err(r, rc, NULL);
	if (list.n > HTTP_WORDS_ALL_MAX) {
		kv_list_clear(&list);
		return http_fail(r, MHD_HTTP_CONTENT_TOO_LARGE, "too_large",
				 "more than 100000 words: ask for some with "
				 "?terms=a,b");
	}
	for (size_t i = 0; i < list.n; i++) {
		const char *name = list.ents[i].name;
		if (list.ents[i].st.is_dir || strlen(name) > HTTP_WORD_MAX)
			continue;
		if (!add_count(o, st, name, strlen(name))) {
			kv_list_clear(&list);
			return MHD_NO;
		}
	}
	kv_list_clear(&list);
	return MHD_YES;
}

enum MHD_Result http_words_occurences(struct http_req *r)
{
	bool bad;
	size_t tlen = 0;
	bool bad2;
	char *terms = http_query(r, "terms", &tlen, &bad);
	char *c = http_query(r, "consistency", NULL, &bad2);
	bad = bad || bad2;
	enum MHD_Result ret;

	if (bad || (terms && strlen(terms) != tlen)) {
		ret = http_fail(r, MHD_HTTP_BAD_REQUEST, "bad_request",
				"bad query value");
		goto out;
	}
	if (c && strcmp(c, "local") != 0 && strcmp(c, "linearizable") != 0) {
		ret = http_fail(r, MHD_HTTP_BAD_REQUEST, "bad_request",
				"consistency is local or linearizable");
		goto out;
	}
	if (!r->async_done && !(c && strcmp(c, "local") == 0) &&
	    !node_read_now(r->node)) {
		if (!http_suspend(r)) {
			ret = http_fail_err(r, KV_ESHUTDOWN, NULL);
			goto out;
		}
		http_started(r, node_read_barrier_async(r->node, http_done, r));
		ret = MHD_YES;
		goto out;
	}
	if (r->async_done && r->async_ret < 0) {
		ret = http_fail_err(r, r->async_ret, NULL);
		goto out;
	}
	cJSON *o = cJSON_CreateObject();
	if (!o) {
		ret = MHD_NO;
		goto out;
	}
	ret = terms ? some_words(r, o, terms, tlen) : all_words(r, o);
	if (ret == MHD_YES && !r->answered) {
		char *text = cJSON_PrintUnformatted(o);
		ret = text ? http_reply_json(r, MHD_HTTP_OK, text, strlen(text))
			   : MHD_NO;
		free(text);
	}
	cJSON_Delete(o);
out:
	free(terms);
	free(c);
	return ret;
}
