/* http_txn_parse.c - the body of POST /txn read into a transaction.
 *
 * The body is a JSON object (docs/http-api.md has the grammar):
 * "compare", "success" and "failure", each a list, each optional. Every
 * mistake is a message naming where it is ("success[2].value: ...") for
 * a 400; the rules that span items (the limits, keys apart, the key
 * rules) are kv_txn_check's, the same the command's decoding and the
 * apply use. The handler and the answer are http_txn.c. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "http_int.h"

static int bad(char *msg, size_t cap, const char *list, size_t i,
	       const char *what)
{
	if (i == (size_t)-1)
		snprintf(msg, cap, "%s: %s", list, what);
	else
		snprintf(msg, cap, "%s[%zu]%s", list, i, what);
	return -EINVAL;
}

/* Only the fields named in allowed (space-separated) may be in o. */
static const char *unknown_field(const cJSON *o, const char *allowed)
{
	for (const cJSON *f = o->child; f; f = f->next) {
		size_t n = strlen(f->string);
		const char *p = allowed;
		bool ok = false;
		while (!ok && (p = strstr(p, f->string)) != NULL) {
			ok = (p == allowed || p[-1] == ' ') &&
			     (p[n] == ' ' || p[n] == '\0');
			p += n ? n : 1;
		}
		if (!ok)
			return f->string;
	}
	return NULL;
}

static int dup_key(const cJSON *o, char **key, size_t *klen)
{
	const cJSON *k = cJSON_GetObjectItemCaseSensitive(o, "key");
	if (!cJSON_IsString(k))
		return -EINVAL;
	*klen = strlen(k->valuestring);
	return (*key = strdup(k->valuestring)) ? 0 : -ENOMEM;
}

/* "value" (a string, its UTF-8 bytes) or "value_base64": into val. 1 if
 * neither is there, 0, or -EINVAL / -ENOMEM. */
static int dup_value(const cJSON *o, unsigned char **val, size_t *vlen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "value");
	const cJSON *b = cJSON_GetObjectItemCaseSensitive(o, "value_base64");
	if (v && b)
		return -EINVAL;
	if (b) {
		if (!cJSON_IsString(b))
			return -EINVAL;
		return kv_base64_decode(b->valuestring, strlen(b->valuestring),
					val, vlen);
	}
	if (!v)
		return 1;
	if (!cJSON_IsString(v))
		return -EINVAL;
	*vlen = strlen(v->valuestring);
	*val = (unsigned char *)strdup(v->valuestring);
	return *val ? 0 : -ENOMEM;
}

static int parse_cmp(const cJSON *o, struct kv_txn_cmp *c, size_t i, char *msg,
		     size_t cap)
{
	static const char *const targets[] = {"value", "mod_rev", "create_rev",
					      "exists"};
	static const char *const ops[] = {"==", "!=", "<", ">"};
	const char *f;
	int err;

	if (!cJSON_IsObject(o))
		return bad(msg, cap, "compare", i, " is not an object");
	if ((f = unknown_field(o, "key target op value value_base64 rev"))) {
		char what[96];
		snprintf(what, sizeof(what), ": unknown field \"%.40s\"", f);
		return bad(msg, cap, "compare", i, what);
	}
	if ((err = dup_key(o, &c->key, &c->klen)) != 0)
		return err == -ENOMEM ? err
				      : bad(msg, cap, "compare", i,
					    ".key: a string is needed");
	const cJSON *tg = cJSON_GetObjectItemCaseSensitive(o, "target");
	const cJSON *op = cJSON_GetObjectItemCaseSensitive(o, "op");
	unsigned t = 4, p = 4;
	for (unsigned k = 0; cJSON_IsString(tg) && k < 4; k++)
		if (strcmp(tg->valuestring, targets[k]) == 0)
			t = k;
	if (cJSON_IsString(tg) && strcmp(tg->valuestring, "version") == 0)
		return bad(msg, cap, "compare", i,
			   ".target: kvfs keeps no version count; compare "
			   "mod_rev or create_rev");
	if (t == 4)
		return bad(msg, cap, "compare", i,
			   ".target: one of value, mod_rev, create_rev, "
			   "exists");
	for (unsigned k = 0; cJSON_IsString(op) && k < 4; k++)
		if (strcmp(op->valuestring, ops[k]) == 0)
			p = k;
	if (p == 4)
		return bad(msg, cap, "compare", i, ".op: one of ==, !=, <, >");
	c->target = (enum kv_txn_target)t;
	c->op = (enum kv_txn_cmp_op)p;
	const cJSON *rev = cJSON_GetObjectItemCaseSensitive(o, "rev");
	const cJSON *val = cJSON_GetObjectItemCaseSensitive(o, "value");
	if (c->target == KV_TXN_VALUE) {
		if (rev)
			return bad(msg, cap, "compare", i,
				   ": a value compare takes value or "
				   "value_base64, not rev");
		err = dup_value(o, &c->val, &c->vlen);
		if (err == -ENOMEM)
			return err;
		if (err != 0)
			return bad(
			    msg, cap, "compare", i,
			    ": value (a string) or value_base64 (base64) "
			    "is needed");
		return 0;
	}
	if (c->target == KV_TXN_EXISTS) {
		if (!cJSON_IsBool(val) || rev ||
		    cJSON_GetObjectItemCaseSensitive(o, "value_base64"))
			return bad(msg, cap, "compare", i,
				   ": an exists compare takes value true or "
				   "false");
		c->n = cJSON_IsTrue(val) ? 1 : 0;
		return 0;
	}
	if (val || cJSON_GetObjectItemCaseSensitive(o, "value_base64") ||
	    !cJSON_IsNumber(rev) ||
	    kv_uint_of_double(rev->valuedouble, KV_JSON_INT_MAX, &c->n) != 0)
		return bad(msg, cap, "compare", i,
			   ": a revision compare takes rev, an integer 0 .. "
			   "2^53");
	return 0;
}

static int parse_op(const cJSON *o, struct kv_txn_op *op, const char *list,
		    size_t i, char *msg, size_t cap)
{
	static const char *const kinds[] = {"get", "put", "delete",
					    "delete_range"};
	const cJSON *k = cJSON_GetObjectItemCaseSensitive(o, "op");
	const char *f;
	unsigned kind = 4;
	int err;

	if (!cJSON_IsObject(o))
		return bad(msg, cap, list, i, " is not an object");
	if ((f = unknown_field(o, "op key value value_base64"))) {
		char what[96];
		snprintf(what, sizeof(what), ": unknown field \"%.40s\"", f);
		return bad(msg, cap, list, i, what);
	}
	for (unsigned n = 0; cJSON_IsString(k) && n < 4; n++)
		if (strcmp(k->valuestring, kinds[n]) == 0)
			kind = n;
	if (kind == 4)
		return bad(msg, cap, list, i,
			   ".op: one of get, put, delete, delete_range");
	op->kind = (enum kv_txn_kind)kind;
	if ((err = dup_key(o, &op->key, &op->klen)) != 0)
		return err == -ENOMEM
			   ? err
			   : bad(msg, cap, list, i, ".key: a string is needed");
	err = dup_value(o, &op->val, &op->vlen);
	if (err == -ENOMEM)
		return err;
	if (op->kind == KV_TXN_PUT && err != 0)
		return bad(msg, cap, list, i,
			   ": a put takes value (a string) or value_base64 "
			   "(base64)");
	if (op->kind != KV_TXN_PUT && err != 1)
		return bad(msg, cap, list, i, ": only a put takes a value");
	return 0;
}

/* The list named name of body into *v (*n items of sz bytes). */
static int parse_list(const cJSON *body, const char *name, void **v, size_t *n,
		      size_t sz, char *msg, size_t cap)
{
	const cJSON *l = cJSON_GetObjectItemCaseSensitive(body, name);
	if (!l)
		return 0;
	if (!cJSON_IsArray(l))
		return bad(msg, cap, name, (size_t)-1, "a list is needed");
	size_t count = (size_t)cJSON_GetArraySize(l);
	if (count > KV_TXN_MAX_ITEMS)
		return bad(msg, cap, name, (size_t)-1,
			   "more than 128 comparisons and operations in all");
	if ((*v = calloc(count ? count : 1, sz)) == NULL)
		return -ENOMEM;
	size_t i = 0;
	for (const cJSON *o = l->child; o; o = o->next, i++) {
		int err;
		*n = i + 1; /* freed with the rest on failure */
		if (sz == sizeof(struct kv_txn_cmp))
			err = parse_cmp(o, (struct kv_txn_cmp *)*v + i, i, msg,
					cap);
		else
			err = parse_op(o, (struct kv_txn_op *)*v + i, name, i,
				       msg, cap);
		if (err != 0)
			return err;
	}
	return 0;
}

/* Does the body hold an escaped NUL (\u0000, not after an escaped
 * backslash)? cJSON would cut the string there. */
static bool has_nul_escape(const unsigned char *b, size_t len)
{
	for (size_t i = 0; i + 6 <= len; i++) {
		if (b[i] != '\\' || memcmp(b + i + 1, "u0000", 5) != 0)
			continue;
		size_t k = 0;
		while (k < i && b[i - 1 - k] == '\\')
			k++;
		if (k % 2 == 0)
			return true;
	}
	return false;
}

int http_txn_parse(const unsigned char *body, size_t len, struct kv_txn **out,
		   char *msg, size_t cap)
{
	if (has_nul_escape(body, len)) {
		*out = NULL;
		snprintf(msg, cap,
			 "a string holds \\u0000: send bytes with "
			 "NUL as value_base64");
		return -EINVAL;
	}
	cJSON *doc = cJSON_ParseWithLength((const char *)body, len);
	struct kv_txn *t = NULL;
	const char *f;
	int err = -EINVAL;

	*out = NULL;
	if (!cJSON_IsObject(doc)) {
		snprintf(msg, cap,
			 "the body is a JSON object: {\"compare\":[...],"
			 "\"success\":[...],\"failure\":[...]}");
		goto out;
	}
	if ((f = unknown_field(doc, "compare success failure"))) {
		snprintf(msg, cap, "unknown field \"%.40s\"", f);
		goto out;
	}
	if ((t = calloc(1, sizeof(*t))) == NULL) {
		err = -ENOMEM;
		goto out;
	}
	if ((err = parse_list(doc, "compare", (void **)&t->cmp, &t->ncmp,
			      sizeof(*t->cmp), msg, cap)) != 0 ||
	    (err = parse_list(doc, "success", (void **)&t->br[0], &t->nop[0],
			      sizeof(*t->br[0]), msg, cap)) != 0 ||
	    (err = parse_list(doc, "failure", (void **)&t->br[1], &t->nop[1],
			      sizeof(*t->br[1]), msg, cap)) != 0)
		goto out;
	const char *why, *where;
	size_t item;
	if ((err = kv_txn_check(t, &why, &where, &item)) != 0) {
		if (*where)
			snprintf(msg, cap, "%s[%zu]: %s", where, item, why);
		else
			snprintf(msg, cap, "%s", why);
		goto out;
	}
out:
	cJSON_Delete(doc);
	if (err != 0)
		kv_txn_free(t);
	else
		*out = t;
	return err;
}
