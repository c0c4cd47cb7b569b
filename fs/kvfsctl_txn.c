/* kvfsctl_txn.c - kvfsctl txn [FILE|-]: a transaction (POST /txn).
 *
 * The body is the JSON of docs/http-api.md ("compare", "success",
 * "failure"), read from FILE or stdin; the node's answer is printed as it
 * came, pretty ({"succeeded":...,"rev":...,"results":[...]}). Exit 0 when
 * the comparisons held (the success branch ran), CTL_EXIT_TXN_FAILED (3)
 * when the failure branch ran, 1 when the request failed (a 400 says
 * what is wrong with the body), 2 for bad usage. */
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
	char *body = read_all(f, &len), *resp = NULL;
	int e = errno;
	if (!std)
		fclose(f);
	if (!body) {
		fprintf(stderr, "kvfsctl: txn: %s: %s\n", file,
			e == EFBIG ? "over the 48 MiB a body may have"
				   : strerror(e));
		return 1;
	}
	long status = 0;
	int rc =
	    ctl_request(c, "POST", "/txn", body, len, &status, &resp, NULL);
	free(body);
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
	if (c->json) {
		printf("%s\n", resp);
	} else {
		ctl_print_json(resp);
	}
	cJSON_Delete(o);
	free(resp);
	return rc;
}
