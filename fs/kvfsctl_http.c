/* kvfsctl_http.c - the client's helpers for talking to one node: a
 * request (raft/peer/join.c's cluster_http, with the client's TLS and
 * tokens), saying why one failed, printing JSON, a key's URL path. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "kvfsctl.h"

/* The "error" of a JSON error body, or the body itself. */
void ctl_print_failure(const char *what, long status, const char *resp)
{
	cJSON *o = cJSON_Parse(resp);
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "error");

	fprintf(stderr, "kvfsctl: %s: HTTP %ld: %s\n", what, status,
		cJSON_IsString(e) ? e->valuestring
		: resp[0]	  ? resp
				  : "(no body)");
	cJSON_Delete(o);
}

/* Print a JSON answer pretty (or as it came if it is not JSON). */
void ctl_print_json(const char *resp)
{
	cJSON *o = cJSON_Parse(resp);
	char *text = o ? cJSON_Print(o) : NULL;

	printf("%s\n", text ? text : resp);
	free(text);
	cJSON_Delete(o);
}

/* One request to the node itself; 0 or 1 (the message printed). */
int ctl_request(const struct ctl *c, const char *method, const char *path,
		const char *body, size_t len, long *status, char **resp,
		size_t *resp_len)
{
	char *err = NULL;
	int rc =
	    cluster_http(c->node, &c->auth, method, path, body, len,
			 c->timeout_ms, status, resp, resp_len, NULL, &err);

	if (rc != 0) {
		fprintf(stderr, "kvfsctl: %s\n", err ? err : strerror(-rc));
		free(err);
		return 1;
	}
	return 0;
}

/* "/kv/" + KEY percent-encoded (slashes kept: they are the key's
 * directories); NULL if too long. malloc'd. */
char *ctl_kv_path(const char *key)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(key);
	char *p = malloc(4 + 3 * n + 1), *o;

	if (!p)
		return NULL;
	o = p + sprintf(p, "/kv/");
	for (const unsigned char *k = (const unsigned char *)key; *k; k++) {
		if ((*k >= 'a' && *k <= 'z') || (*k >= 'A' && *k <= 'Z') ||
		    (*k >= '0' && *k <= '9') || strchr("-._~/", *k)) {
			*o++ = (char)*k;
		} else {
			*o++ = '%';
			*o++ = hex[*k >> 4];
			*o++ = hex[*k & 15];
		}
	}
	*o = '\0';
	return p;
}
