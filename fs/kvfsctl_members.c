/* kvfsctl_members.c - kvfsctl's membership commands: members, add,
 * remove, transfer-leader (POST and DELETE /cluster/..., sent to the node
 * asked, which forwards to the leader), and the member-address check the
 * options share. */
#include "codec.h"
#include "join.h"
#include "kv.h"
#include "kvfsctl.h"
#include "peer.h"
#include "peer_tls.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ctl_members(const struct ctl *c)
{
	long status = 0;
	char *resp = NULL;
	cJSON *o, *m;
	double leader = 0;
	int rc = ctl_request(c, "GET", "/cluster/members", NULL, 0, &status,
			     &resp, NULL);

	if (rc != 0)
		return rc;
	if (status != 200) {
		ctl_print_failure("members", status, resp);
		free(resp);
		return 1;
	}
	o = cJSON_Parse(resp);
	if (c->json || !o) {
		ctl_print_json(resp);
		goto out;
	}
	m = cJSON_GetObjectItemCaseSensitive(o, "leader");
	if (cJSON_IsNumber(m))
		leader = m->valuedouble;
	printf("%-6s %-32s %-8s %s\n", "ID", "ADDRESS", "ROLE", "");
	cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(o, "members"))
	{
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(m, "id");
		const cJSON *a = cJSON_GetObjectItemCaseSensitive(m, "address");
		const cJSON *r = cJSON_GetObjectItemCaseSensitive(m, "role");
		printf("%-6.0f %-32s %-8s %s\n",
		       cJSON_IsNumber(id) ? id->valuedouble : 0.0,
		       cJSON_IsString(a) ? a->valuestring : "?",
		       cJSON_IsString(r) ? r->valuestring : "?",
		       cJSON_IsNumber(id) && id->valuedouble == leader &&
			       leader > 0
			   ? "leader"
			   : "");
	}
out:
	cJSON_Delete(o);
	free(resp);
	return 0;
}

/* A member id argument: 1..2^53-1. */
static int parse_id(const char *s, uint64_t *id)
{
	char *end;
	unsigned long long v;

	if (!s[0] || s[0] < '0' || s[0] > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v == 0 || v > 9007199254740991ull)
		return -EINVAL;
	*id = v;
	return 0;
}

/* Is a a member address (HOST:PORT, port 1..65535)? If not, say why on
 * stderr, naming what (the option or argument it came from). */
bool ctl_addr_ok(const char *what, const char *a)
{
	char host[KV_ADDR_MAX + 1];
	const char *why = NULL;

	if (kv_addr_parse(a, false, host, sizeof(host), NULL, &why) != 0) {
		fprintf(stderr, "kvfsctl: %s \"%s\": %s\n", what, a, why);
		return false;
	}
	if (!cluster_addr_valid(a)) {
		fprintf(stderr,
			"kvfsctl: %s \"%s\": the host may hold only letters, "
			"digits, '.', '-' and '_', or be an [IPv6] address\n",
			what, a);
		return false;
	}
	return true;
}

/* A membership change at the leader. */
static int change(const struct ctl *c, const char *method, const char *path,
		  const char *body, const char *what, long *status, char **resp,
		  bool *retried)
{
	char *err = NULL;
	int rc =
	    cluster_leader_request(c->node, &c->auth, method, path, body,
				   c->timeout_ms, status, resp, retried, &err);

	if (rc != 0) {
		fprintf(stderr, "kvfsctl: %s: %s\n", what,
			err ? err : strerror(-rc));
		free(err);
		return 1;
	}
	return 0;
}

/* True if a 409 answer names addr as the member's address. */
static bool conflict_at(const char *resp, const char *addr)
{
	cJSON *o = cJSON_Parse(resp);
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "address");
	bool same = cJSON_IsString(a) && strcmp(a->valuestring, addr) == 0;

	cJSON_Delete(o);
	return same;
}

int ctl_add(const struct ctl *c, const char *ids, const char *addr)
{
	char body[160], *resp = NULL;
	long status = 0;
	uint64_t id;
	bool retried = false;
	int rc;

	if (parse_id(ids, &id) != 0) {
		fprintf(stderr, "kvfsctl: add: want ID (>= 1) and HOST:PORT\n");
		return EXIT_USAGE;
	}
	if (!ctl_addr_ok("add: address", addr))
		return EXIT_USAGE;
	snprintf(body, sizeof(body), "{\"id\":%" PRIu64 ",\"address\":\"%s\"}",
		 id, addr);
	rc = change(c, "POST", "/cluster/members", body, "add", &status, &resp,
		    &retried);
	if (rc != 0)
		return rc;
	if (status == 201) {
		if (c->json)
			ctl_print_json(resp);
		else
			printf("added %" PRIu64 " at %s as a learner\n", id,
			       addr);
	} else if (status == 409 && retried && conflict_at(resp, addr)) {
		/* An earlier attempt, whose answer was lost, added it. */
		printf("added %" PRIu64 " at %s as a learner (by an earlier "
		       "attempt)\n",
		       id, addr);
	} else {
		ctl_print_failure("add", status, resp);
		rc = 1;
	}
	free(resp);
	return rc;
}

int ctl_remove(const struct ctl *c, const char *ids)
{
	char path[64], *resp = NULL;
	long status = 0;
	uint64_t id;
	bool retried = false;
	int rc;

	if (parse_id(ids, &id) != 0) {
		fprintf(stderr, "kvfsctl: remove: want ID (>= 1)\n");
		return EXIT_USAGE;
	}
	snprintf(path, sizeof(path), "/cluster/members/%" PRIu64, id);
	rc =
	    change(c, "DELETE", path, NULL, "remove", &status, &resp, &retried);
	if (rc != 0)
		return rc;
	if (status == 200) {
		if (c->json)
			ctl_print_json(resp);
		else
			printf("removed %" PRIu64 "\n", id);
	} else if (status == 404 && retried) {
		/* An earlier attempt, whose answer was lost (a leader that
		 * removed itself steps down before it can answer), removed
		 * it: the id is gone either way. */
		printf("removed %" PRIu64 " (by an earlier attempt)\n", id);
	} else {
		ctl_print_failure("remove", status, resp);
		rc = 1;
	}
	free(resp);
	return rc;
}

/* POST /cluster/leader at the leader (a 421 is followed to it): hand
 * leadership to ID, or (none) to the most caught-up voter. */
int ctl_transfer_leader(const struct ctl *c, const char *ids)
{
	char body[64] = "{}", *resp = NULL;
	long status = 0;
	uint64_t id = 0;
	bool retried = false;
	int rc;

	if (ids && parse_id(ids, &id) != 0) {
		fprintf(stderr, "kvfsctl: transfer-leader: want ID (>= 1), or "
				"nothing for the most caught-up voter\n");
		return EXIT_USAGE;
	}
	if (ids)
		snprintf(body, sizeof(body), "{\"id\":%" PRIu64 "}", id);
	rc = change(c, "POST", "/cluster/leader", body, "transfer-leader",
		    &status, &resp, &retried);
	if (rc != 0)
		return rc;
	cJSON *o = status == 200 ? cJSON_Parse(resp) : NULL;
	const cJSON *l = cJSON_GetObjectItemCaseSensitive(o, "leader");
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "previous");
	const cJSON *ms = cJSON_GetObjectItemCaseSensitive(o, "took_ms");
	if (status == 200 && cJSON_IsNumber(l)) {
		if (c->json)
			ctl_print_json(resp);
		else if (cJSON_IsNumber(p) && p->valuedouble == l->valuedouble)
			printf("node %.0f leads already\n", l->valuedouble);
		else
			printf("node %.0f leads now (was node %.0f; %.0f ms)\n",
			       l->valuedouble,
			       cJSON_IsNumber(p) ? p->valuedouble : 0.0,
			       cJSON_IsNumber(ms) ? ms->valuedouble : 0.0);
	} else {
		ctl_print_failure("transfer-leader", status, resp);
		rc = 1;
	}
	cJSON_Delete(o);
	free(resp);
	return rc;
}
