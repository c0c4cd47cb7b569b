/* kvfsctl_lease.c - kvfsctl lease grant TTL | keep-alive [--once] ID |
 * revoke ID | ls | get ID: the lease endpoints (docs/http-api.md,
 * "Leases").
 *
 * grant prints the new lease's id; keep-alive renews the lease every
 * third of its TTL until interrupted (or once with --once), a line per
 * renewal, and fails (exit 1) once the lease is gone; revoke deletes the
 * lease and its keys; ls prints a lease a line (id, TTL, seconds left,
 * keys); get the lease's JSON. --json prints the node's JSON as it came. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "kvfsctl.h"

static int number(const char *what, const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (s[0] < '0' || s[0] > '9' || *end || v == 0) {
		fprintf(stderr, "kvfsctl: lease: %s is not a %s\n", s, what);
		return 2;
	}
	*out = v;
	return 0;
}

/* One request; 0 with *resp on a 200, else 1 (said on stderr). */
static int ask(const struct ctl *c, const char *what, const char *method,
	       const char *path, const char *body, char **resp)
{
	long status = 0;
	*resp = NULL;
	int rc = ctl_request(c, method, path, body, body ? strlen(body) : 0,
			     &status, resp, NULL);
	if (rc == 0 && status != 200) {
		ctl_print_failure(what, status, *resp);
		rc = 1;
	}
	if (rc != 0) {
		free(*resp);
		*resp = NULL;
	}
	return rc;
}

static uint64_t num_of(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsNumber(v) && v->valuedouble >= 0
		   ? (uint64_t)v->valuedouble
		   : 0;
}

static int grant(const struct ctl *c, uint64_t ttl)
{
	char body[48], *resp;
	snprintf(body, sizeof body, "{\"ttl\":%" PRIu64 "}", ttl);
	int rc = ask(c, "lease grant", "POST", "/lease", body, &resp);
	if (rc != 0)
		return rc;
	cJSON *o = cJSON_Parse(resp);
	if (c->json)
		ctl_print_json(resp);
	else
		printf("%" PRIu64 "\n", num_of(o, "id"));
	cJSON_Delete(o);
	free(resp);
	return 0;
}

static int keep_alive(const struct ctl *c, uint64_t id, bool once)
{
	char path[64];
	snprintf(path, sizeof path, "/lease/%" PRIu64 "/keepalive", id);
	for (;;) {
		char *resp;
		int rc = ask(c, "lease keep-alive", "POST", path, NULL, &resp);
		if (rc != 0)
			return rc;
		cJSON *o = cJSON_Parse(resp);
		uint64_t ttl = num_of(o, "ttl");
		cJSON_Delete(o);
		if (c->json)
			printf("%s\n", resp);
		else
			printf("lease %" PRIu64 " kept alive, ttl %" PRIu64
			       "\n",
			       id, ttl);
		fflush(stdout);
		free(resp);
		if (once)
			return 0;
		/* a third of the TTL: two chances more before it runs out */
		uint64_t ms = ttl ? ttl * 1000 / 3 : 500;
		struct timespec ts = {(time_t)(ms / 1000),
				      (long)(ms % 1000) * 1000000};
		while (nanosleep(&ts, &ts) != 0)
			;
	}
}

static int simple(const struct ctl *c, const char *what, const char *method,
		  uint64_t id)
{
	char path[48], *resp;
	snprintf(path, sizeof path, "/lease/%" PRIu64, id);
	int rc = ask(c, what, method, path, NULL, &resp);
	if (rc == 0 && (c->json || strcmp(method, "GET") == 0))
		ctl_print_json(resp);
	free(resp);
	return rc;
}

static int list(const struct ctl *c)
{
	char *resp;
	int rc = ask(c, "lease ls", "GET", "/lease", NULL, &resp);
	if (rc != 0)
		return rc;
	if (c->json) {
		printf("%s\n", resp);
		free(resp);
		return 0;
	}
	cJSON *o = cJSON_Parse(resp);
	const cJSON *e;
	printf("%-12s %8s %8s %8s\n", "ID", "TTL", "LEFT", "KEYS");
	cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(o, "leases"))
	    printf("%-12" PRIu64 " %8" PRIu64 " %8" PRIu64 " %8" PRIu64 "\n",
		   num_of(e, "id"), num_of(e, "ttl"), num_of(e, "remaining"),
		   num_of(e, "keys"));
	cJSON_Delete(o);
	free(resp);
	return 0;
}

int ctl_lease(const struct ctl *c, int nargs, char **argv)
{
	uint64_t v;
	int rc;
	const char *sub = nargs > 0 ? argv[0] : "";

	if (strcmp(sub, "ls") == 0 && nargs == 1)
		return list(c);
	if (strcmp(sub, "grant") == 0 && nargs == 2)
		return (rc = number("TTL", argv[1], &v)) ? rc : grant(c, v);
	if (strcmp(sub, "keep-alive") == 0 && nargs >= 2 && nargs <= 3) {
		bool once = nargs == 3 && strcmp(argv[1], "--once") == 0;
		if (nargs == 3 && !once)
			return 2;
		rc = number("lease id", argv[nargs - 1], &v);
		return rc ? rc : keep_alive(c, v, once);
	}
	if (strcmp(sub, "revoke") == 0 && nargs == 2)
		return (rc = number("lease id", argv[1], &v))
			   ? rc
			   : simple(c, "lease revoke", "DELETE", v);
	if (strcmp(sub, "get") == 0 && nargs == 2)
		return (rc = number("lease id", argv[1], &v))
			   ? rc
			   : simple(c, "lease get", "GET", v);
	return 2;
}
