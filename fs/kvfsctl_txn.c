/* kvfsctl_txn.c - kvfsctl txn: a transaction (POST /txn).
 *
 * kvfsctl txn [FILE|-] sends the JSON of docs/http-api.md ("compare",
 * "success", "failure") read from FILE or stdin; kvfsctl txn WORDS...
 * builds it from a few words: "if KEY TARGET OP VALUE" (a comparison,
 * TARGET value, mod_rev, create_rev or exists, VALUE true or false for
 * exists), then the success branch's ops ("then" may start it), "else"
 * and the failure branch's: "get KEY", "put KEY VALUE", "del KEY",
 * "del-range DIR". The node's answer is printed as it came, pretty
 * ({"succeeded":...,"rev":...,"results":[...]}). Exit 0 when the
 * comparisons held (the success branch ran), CTL_EXIT_TXN_FAILED (3) when
 * the failure branch ran, 1 when the request failed (a 400 says what is
 * wrong with the body), 2 for bad usage. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "kvfsctl.h"

/* 3 x 16 MiB + 64 KiB: the node's limit on a /txn body */
#define TXN_BODY_MAX (3u * 16u * 1024u * 1024u + 65536u)

/* All of f (up to TXN_BODY_MAX bytes), malloc'd; NULL with errno. */
static char *read_all(FILE *f, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	while (buf) {
		if (n == cap) {
			if (cap >= TXN_BODY_MAX) {
				free(buf);
				errno = EFBIG;
				return NULL;
			}
			cap = cap * 2 > TXN_BODY_MAX ? TXN_BODY_MAX : cap * 2;
			char *b = realloc(buf, cap + 1);
			if (!b) {
				free(buf);
				return NULL;
			}
			buf = b;
		}
		size_t k = fread(buf + n, 1, cap - n, f);
		n += k;
		if (k == 0) {
			if (ferror(f)) {
				free(buf);
				errno = EIO;
				return NULL;
			}
			break;
		}
	}
	if (buf)
		*len = n;
	return buf;
}

/* Send body[0..len) and print the answer: the exit status. */
static int send_txn(const struct ctl *c, const char *body, size_t len)
{
	long status = 0;
	char *resp = NULL;
	int rc =
	    ctl_request(c, "POST", "/txn", body, len, &status, &resp, NULL);
	if (rc != 0)
		return rc;
	if (status != 200) {
		ctl_print_failure("txn", status, resp);
		free(resp);
		return 1;
	}
	cJSON *o = cJSON_Parse(resp);
	const cJSON *ok = cJSON_GetObjectItemCaseSensitive(o, "succeeded");
	rc =
	    cJSON_IsBool(ok) ? (cJSON_IsTrue(ok) ? 0 : CTL_EXIT_TXN_FAILED) : 1;
	if (c->json)
		printf("%s\n", resp);
	else
		ctl_print_json(resp);
	cJSON_Delete(o);
	free(resp);
	return rc;
}

int ctl_txn(const struct ctl *c, const char *file)
{
	bool std = strcmp(file, "-") == 0;
	FILE *f = std ? stdin : fopen(file, "rb");
	if (!f) {
		fprintf(stderr, "kvfsctl: txn: %s: %s\n", file,
			strerror(errno));
		return 2;
	}
	size_t len = 0;
	char *body = read_all(f, &len);
	int e = errno;
	if (!std)
		fclose(f);
	if (!body) {
		fprintf(stderr, "kvfsctl: txn: %s: %s\n", file,
			e == EFBIG ? "over the 48 MiB a body may have"
				   : strerror(e));
		return 1;
	}
	int rc = send_txn(c, body, len);
	free(body);
	return rc;
}

/* How many words follow word t (0: not an op). */
static int arity(const char *t)
{
	if (strcmp(t, "if") == 0)
		return 4;
	if (strcmp(t, "put") == 0)
		return 2;
	if (strcmp(t, "get") == 0 || strcmp(t, "del") == 0 ||
	    strcmp(t, "del-range") == 0)
		return 1;
	return 0;
}

/* words w[i..i+arity] as a comparison or an op. */
static cJSON *word_item(char **w, int i)
{
	const char *t = w[i];
	cJSON *item = cJSON_CreateObject();
	if (!item || !cJSON_AddStringToObject(item, "key", w[i + 1]))
		return item;
	if (strcmp(t, "if") == 0) {
		const char *tg = w[i + 2], *v = w[i + 4];
		cJSON_AddStringToObject(item, "target", tg);
		cJSON_AddStringToObject(item, "op", w[i + 3]);
		if (strcmp(tg, "exists") == 0)
			cJSON_AddBoolToObject(item, "value",
					      strcmp(v, "true") == 0);
		else if (strcmp(tg, "value") == 0)
			cJSON_AddStringToObject(item, "value", v);
		else
			cJSON_AddNumberToObject(item, "rev", strtod(v, NULL));
		return item;
	}
	cJSON_AddStringToObject(item, "op",
				strcmp(t, "put") == 0	      ? "put"
				: strcmp(t, "get") == 0	      ? "get"
				: strcmp(t, "del-range") == 0 ? "delete_range"
							      : "delete");
	if (strcmp(t, "put") == 0)
		cJSON_AddStringToObject(item, "value", w[i + 2]);
	return item;
}

int ctl_txn_words(const struct ctl *c, int n, char **w)
{
	cJSON *o = cJSON_CreateObject();
	cJSON *cmp = cJSON_AddArrayToObject(o, "compare");
	cJSON *ok = cJSON_AddArrayToObject(o, "success");
	cJSON *other = cJSON_AddArrayToObject(o, "failure");
	cJSON *br = ok;
	if (!o || !cmp || !ok || !other) {
		cJSON_Delete(o);
		return 1;
	}
	for (int i = 0; i < n;) {
		if (strcmp(w[i], "then") == 0 || strcmp(w[i], "else") == 0) {
			br = w[i++][0] == 'e' ? other : ok;
			continue;
		}
		int k = arity(w[i]);
		if (k == 0 || i + k >= n) {
			fprintf(stderr,
				"kvfsctl: txn: %s \"%s\" (words: if KEY TARGET "
				"OP VALUE, then, else, get KEY, put KEY VALUE, "
				"del KEY, del-range DIR)\n",
				k ? "too few words after" : "unknown word",
				w[i]);
			cJSON_Delete(o);
			return 2;
		}
		cJSON *item = word_item(w, i);
		cJSON_AddItemToArray(strcmp(w[i], "if") == 0 ? cmp : br, item);
		i += k + 1;
	}
	char *body = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (!body)
		return 1;
	int rc = send_txn(c, body, strlen(body));
	free(body);
	return rc;
}
