/* kvfsctl_watch.c - kvfsctl watch PREFIX: print each change under PREFIX
 * as it is applied, until interrupted.
 *
 * Long polls (GET /kv/PREFIX?watch&since=N&wait=25), each answered once
 * there is a change or after 25 s with only a progress line; the next
 * asks from the last revision seen plus one, so nothing is missed or
 * printed twice, also when a request fails and is sent again (a node
 * restarting, a leader change). A line a change: REVISION OP KEY (and
 * "-> TO" for a rename, the size for a put); --json prints the node's
 * lines as they are. 410 (the revision is older than the node's
 * history) ends it with the oldest revision named. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "kvfsctl.h"

#define WATCH_WAIT_S 25

/* Print one line of the node's answer; advance *next past it. */
static void show(const struct ctl *c, const char *line, size_t n,
		 uint64_t *next)
{
	cJSON *o = cJSON_ParseWithLength(line, n);
	if (!o)
		return;
	const cJSON *rev = cJSON_GetObjectItemCaseSensitive(o, "revision");
	const cJSON *prog = cJSON_GetObjectItemCaseSensitive(o, "progress");
	const cJSON *at = cJSON_IsNumber(rev) ? rev : prog;
	if (cJSON_IsNumber(at) && (uint64_t)at->valuedouble + 1 > *next)
		*next = (uint64_t)at->valuedouble + 1;
	if (cJSON_IsNumber(rev)) {
		if (c->json) {
			printf("%.*s\n", (int)n, line);
		} else {
			const cJSON *op = cJSON_GetObjectItem(o, "op");
			const cJSON *key = cJSON_GetObjectItem(o, "key");
			const cJSON *to = cJSON_GetObjectItem(o, "to");
			const cJSON *size = cJSON_GetObjectItem(o, "size");
			printf("%" PRIu64 " %s %s", (uint64_t)rev->valuedouble,
			       cJSON_IsString(op) ? op->valuestring : "?",
			       cJSON_IsString(key) ? key->valuestring : "?");
			if (cJSON_IsString(to))
				printf(" -> %s", to->valuestring);
			if (cJSON_IsNumber(size))
				printf(" (%.0f bytes)", size->valuedouble);
			printf("\n");
		}
		fflush(stdout);
	}
	cJSON_Delete(o);
}

int ctl_watch(const struct ctl *c, const char *prefix, uint64_t since,
	      uint64_t count)
{
	char *base = ctl_kv_path(prefix);
	if (!base)
		return 1;
	uint64_t next = since, shown = 0;
	unsigned failures = 0;
	for (;;) {
		char path[8300];
		snprintf(path, sizeof path,
			 "%s?watch&since=%" PRIu64 "&wait=%d", base, next,
			 WATCH_WAIT_S);
		struct ctl lc = *c;
		lc.timeout_ms = (WATCH_WAIT_S + 10) * 1000;
		long status = 0;
		char *resp = NULL;
		size_t len = 0;
		char *err = NULL;
		int rc = cluster_http(lc.node, &lc.auth, "GET", path, NULL, 0,
				      lc.timeout_ms, &status, &resp, &len, NULL,
				      &err);
		if (rc != 0 || status == 503) {
			/* the node restarting, no leader yet: ask again */
			if (failures++ % 10 == 0)
				fprintf(stderr,
					"kvfsctl: watch: %s; retrying\n",
					err ? err : "the node is not ready");
			free(err);
			free(resp);
			sleep(1);
			continue;
		}
		failures = 0;
		if (status != 200) {
			ctl_print_failure("watch", status, resp);
			free(resp);
			free(base);
			return 1;
		}
		for (size_t i = 0; i < len;) {
			size_t e = i;
			while (e < len && resp[e] != '\n')
				e++;
			uint64_t before = next;
			show(c, resp + i, e - i, &next);
			const char *l = resp + i;
			if (next != before && e - i > 12 &&
			    memcmp(l, "{\"revision\"", 11) == 0)
				shown++;
			i = e + 1;
			if (count && shown >= count) {
				free(resp);
				free(base);
				return 0;
			}
		}
		free(resp);
		if (next == 0)
			next = 1;
	}
}
