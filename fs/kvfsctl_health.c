/* kvfsctl_health.c - `kvfsctl health`: is the cluster healthy, as one
 * node sees it, and if not why. It asks the node's /health, /readyz and
 * /status and prints a short table: the node, then each peer with its
 * reachability and how far behind it is, then one verdict line. Exit 0
 * when healthy, 1 when not (or the node cannot be asked), so that it
 * serves in scripts and checks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "kvfsctl.h"

#define LAG_WARN 1000 /* entries behind the leader that count as lagging */

/* GET path as parsed JSON (NULL if not JSON); *status the HTTP status. */
static cJSON *get_json(const struct ctl *c, const char *path, long *status)
{
	char *resp = NULL;
	*status = 0;
	if (ctl_request(c, "GET", path, NULL, 0, status, &resp, NULL) != 0)
		return NULL;
	cJSON *o = cJSON_Parse(resp ? resp : "");
	free(resp);
	return o;
}

static double num(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static const char *str(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Append "; why" to the reasons. */
static void why(char *buf, size_t cap, const char *text)
{
	size_t n = strlen(buf);
	snprintf(buf + n, cap - n, "%s%s", n ? "; " : "", text);
}

int ctl_health(const struct ctl *c)
{
	long hs, rs, ss;
	cJSON *h = get_json(c, "/health", &hs);
	cJSON *r = get_json(c, "/readyz", &rs);
	cJSON *st = get_json(c, "/status", &ss);
	char reasons[1024] = "", line[256];
	if (!st || ss != 200) {
		fprintf(stderr,
			"kvfsctl: health: %s gives no /status (HTTP "
			"%ld)\n",
			c->node, ss);
		cJSON_Delete(h);
		cJSON_Delete(r);
		cJSON_Delete(st);
		return 1;
	}
	if (hs != 200) {
		snprintf(line, sizeof line, "this node is not healthy: %s",
			 str(h, "reason") ? str(h, "reason") : "no answer");
		why(reasons, sizeof reasons, line);
	}
	if (rs != 200) {
		snprintf(line, sizeof line, "this node is not ready: %s",
			 str(r, "reason") ? str(r, "reason") : "no answer");
		why(reasons, sizeof reasons, line);
	}
	const cJSON *err = cJSON_GetObjectItemCaseSensitive(st, "error");
	if (cJSON_IsObject(err)) {
		/* /status: this member cannot write its log (or failed) */
		snprintf(line, sizeof line, "%s%s%s",
			 str(err, "what") ? str(err, "what") : "an error",
			 str(err, "since") ? " since " : "",
			 str(err, "since") ? str(err, "since") : "");
		why(reasons, sizeof reasons, line);
	}
	const char *role = str(st, "role");
	bool leader = role && strcmp(role, "leader") == 0;
	double last = num(st, "last_index");
	printf("node %.0f  %s  term %.0f  leader %.0f  commit %.0f  applied "
	       "%.0f  keys %.0f\n",
	       num(st, "id"), role ? role : "?", num(st, "term"),
	       num(st, "leader"), num(st, "commit_index"),
	       num(st, "applied_index"), num(st, "keys"));
	printf("%-6s %-28s %-10s %s\n", "PEER", "ADDRESS", "REACHABLE",
	       leader ? "BEHIND" : "");
	const cJSON *p;
	int down = 0, peers = 0;
	cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(st, "peers"))
	{
		const cJSON *reach =
		    cJSON_GetObjectItemCaseSensitive(p, "reachable");
		const char *rtxt = cJSON_IsBool(reach)
				       ? (cJSON_IsTrue(reach) ? "yes" : "NO")
				       : "-";
		peers++;
		char behind[32] = "";
		double match = num(p, "match_index");
		if (leader && match >= 0)
			snprintf(behind, sizeof behind, "%.0f",
				 last > match ? last - match : 0);
		printf("%-6.0f %-28s %-10s %s\n", num(p, "id"),
		       str(p, "address") ? str(p, "address") : "?", rtxt,
		       behind);
		if (cJSON_IsFalse(reach)) {
			down++;
			snprintf(line, sizeof line, "peer %.0f unreachable%s%s",
				 num(p, "id"), str(p, "last_error") ? ": " : "",
				 str(p, "last_error") ? str(p, "last_error")
						      : "");
			why(reasons, sizeof reasons, line);
		} else if (leader && match >= 0 && last - match > LAG_WARN) {
			snprintf(line, sizeof line,
				 "peer %.0f is %s entries "
				 "behind",
				 num(p, "id"), behind);
			why(reasons, sizeof reasons, line);
		}
	}
	if (leader && peers && 2 * down >= peers + 1)
		why(reasons, sizeof reasons, "a majority is out of reach");
	if (reasons[0])
		printf("NOT healthy: %s\n", reasons);
	else
		printf("healthy\n");
	cJSON_Delete(h);
	cJSON_Delete(r);
	cJSON_Delete(st);
	return reasons[0] ? 1 : 0;
}
