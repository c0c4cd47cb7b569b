/* identity.c - which cluster and member a data directory belongs to.
 *
 * cluster.json in the data directory records the cluster id (derived from
 * the bootstrap --peers list), the member's id, the bootstrap members and,
 * when no --cluster-token file is given, the token derived at bootstrap.
 * It is written once, atomically (kv_file_replace), and checked at every
 * start: a directory of another cluster or id is refused. The --peers
 * list is parsed here too, with every address checked by kv_addr_parse. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "codec.h"
#include "join.h"
#include "node_int.h"

char *node_msgf(const char *fmt, ...)
{
	va_list ap;
	char *m = NULL;
	va_start(ap, fmt);
	if (vasprintf(&m, fmt, ap) < 0)
		m = NULL;
	va_end(ap);
	return m;
}

/* Add member id at addr[0..alen) to c, keeping c sorted by id. */
static int add_member(struct raft_config *c, uint64_t id, const char *addr,
		      size_t alen, const char *what, char **errmsg)
{
	if (raft_config_get(c, id)) {
		*errmsg = node_msgf("%s lists member %llu twice", what,
				    (unsigned long long)id);
		return -EINVAL;
	}
	if (c->n == RAFT_MAX_SERVERS) {
		*errmsg = node_msgf("%s lists more than %d members", what,
				    RAFT_MAX_SERVERS);
		return -EINVAL;
	}
	unsigned i = c->n++;
	while (i > 0 && c->servers[i - 1].id > id) {
		c->servers[i] = c->servers[i - 1];
		i--;
	}
	c->servers[i].id = id;
	c->servers[i].role = RAFT_VOTER;
	memset(c->servers[i].addr, 0, RAFT_ADDR_MAX);
	memcpy(c->servers[i].addr, addr, alen);
	return 0;
}

int identity_parse_peers(const char *peers, uint64_t id, bool allow_zero,
			 const char *what, struct raft_config *c, char **errmsg)
{
	memset(c, 0, sizeof(*c));
	const char *p = peers;
	while (*p) {
		char *end;
		errno = 0;
		unsigned long long pid = strtoull(p, &end, 10);
		if (errno || end == p || *end != '=' || pid == 0 ||
		    pid > PEER_INT_MAX || *p < '0' || *p > '9') {
			*errmsg = node_msgf("bad %s item at \"%s\": expected "
					    "ID=HOST:PORT",
					    what, p);
			return -EINVAL;
		}
		const char *addr = end + 1;
		const char *comma = strchr(addr, ',');
		size_t alen = comma ? (size_t)(comma - addr) : strlen(addr);
		char one[KV_ADDR_MAX + 1], host[KV_ADDR_MAX + 1];
		const char *why = "address too long";
		bool ok = alen <= KV_ADDR_MAX;
		if (ok) {
			memcpy(one, addr, alen);
			one[alen] = '\0';
			ok = kv_addr_parse(one, allow_zero, host, sizeof(host),
					   NULL, &why) == 0;
		}
		if (!ok) {
			*errmsg = node_msgf("bad %s address \"%.*s\" for "
					    "member %llu: %s",
					    what, (int)(alen < 80 ? alen : 80),
					    addr, pid, why);
			return -EINVAL;
		}
		int ret = add_member(c, pid, addr, alen, what, errmsg);
		if (ret != 0)
			return ret;
		p = comma ? comma + 1 : addr + alen;
	}
	if (!raft_config_get(c, id)) {
		*errmsg = node_msgf("%s does not list this node (--id=%llu)",
				    what, (unsigned long long)id);
		return -EINVAL;
	}
	return 0;
}

/* 64-bit FNV-1a, for ids derived from the bootstrap members. */
static uint64_t fnv64(const char *salt, const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (const char *p = salt; *p; p++)
		h = (h ^ (unsigned char)*p) * 0x100000001b3ull;
	for (const char *p = s; *p; p++)
		h = (h ^ (unsigned char)*p) * 0x100000001b3ull;
	return h;
}

/* The bootstrap members as canonical text "1=a,2=b" (sorted by id). */
static char *members_text(const struct raft_config *c)
{
	size_t cap = (size_t)c->n * (RAFT_ADDR_MAX + 24) + 1;
	char *t = malloc(cap);
	if (!t)
		return NULL;
	size_t len = 0;
	t[0] = '\0';
	for (unsigned i = 0; i < c->n; i++)
		len += (size_t)snprintf(
		    t + len, cap - len, "%s%llu=%s", i ? "," : "",
		    (unsigned long long)c->servers[i].id, c->servers[i].addr);
	return t;
}

int identity_read_token(struct kv_node *n, const char *path, char **errmsg)
{
	FILE *f = fopen(path, "re");
	if (!f) {
		int err = -errno;
		*errmsg = node_msgf("cannot read --cluster-token file %s: %s",
				    path, strerror(-err));
		return err;
	}
	char line[PEER_ID_MAX + 2];
	bool ok = fgets(line, sizeof(line), f) != NULL;
	fclose(f);
	if (ok)
		line[strcspn(line, "\r\n")] = '\0';
	if (!ok || !peer_id_valid(line)) {
		*errmsg = node_msgf("--cluster-token file %s: the first line "
				    "must hold 1 to %d printable ASCII "
				    "characters without spaces",
				    path, PEER_ID_MAX);
		return -EINVAL;
	}
	memcpy(n->token, line, strlen(line) + 1); /* at most PEER_ID_MAX */
	return 0;
}

/* A new identity: n->cluster_id, n->token and *boot, written to
 * cluster.json. want is the bootstrap members' text ("" for a node that
 * joined), want_id the cluster id it gives. */
static int identity_create(struct kv_node *n, const struct raft_config *given,
			   bool have_token, const struct join_answer *joined,
			   const char *want, const char *want_id,
			   struct raft_config *boot, char **errmsg)
{
	if (joined) {
		snprintf(n->cluster_id, sizeof(n->cluster_id), "%s",
			 joined->cluster_id);
		if (!have_token) {
			snprintf(n->token, sizeof(n->token), "%s",
				 joined->token);
			n->token_derived = true;
		}
		memset(boot, 0, sizeof(*boot));
	} else {
		/* bootstrap (or a data dir from before cluster.json) */
		snprintf(n->cluster_id, sizeof(n->cluster_id), "%s", want_id);
		*boot = *given;
		if (!have_token) {
			snprintf(n->token, sizeof(n->token), "dt-%016llx",
				 (unsigned long long)fnv64("token\n", want));
			n->token_derived = true;
		}
	}
	cJSON *j = cJSON_CreateObject();
	cJSON_AddNumberToObject(j, "version", KV_FORMAT_VERSION);
	cJSON_AddStringToObject(j, "cluster_id", n->cluster_id);
	cJSON_AddNumberToObject(j, "id", (double)n->id);
	cJSON_AddStringToObject(j, "members", joined ? "" : want);
	if (!have_token)
		cJSON_AddStringToObject(j, "token", n->token);
	char *out = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	char *text = out ? node_msgf("%s\n", out) : NULL;
	free(out);
	int ret = text ? kv_file_replace(n->data_dir, "cluster.json", text,
					 strlen(text), 0644)
		       : -ENOMEM;
	free(text);
	if (ret != 0)
		*errmsg = node_msgf("cannot write %s/cluster.json: %s",
				    n->data_dir, strerror(-ret));
	return ret;
}

/* An identity read back from text (cluster.json at path): checked against
 * this node's id and, when --peers was given, its cluster. */
static int identity_check(struct kv_node *n, const char *path, const char *text,
			  bool peers_given, bool have_token, const char *want,
			  const char *want_id, struct raft_config *boot,
			  char **errmsg)
{
	cJSON *j = kv_json_parse(text, strlen(text));
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "version");
	const cJSON *cid = cJSON_GetObjectItemCaseSensitive(j, "cluster_id");
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
	const cJSON *mem = cJSON_GetObjectItemCaseSensitive(j, "members");
	const cJSON *tok = cJSON_GetObjectItemCaseSensitive(j, "token");
	uint64_t stored_id = 0;
	int ret = 0;
	if (!j || !cJSON_IsNumber(v) || !cJSON_IsString(cid) ||
	    !peer_id_valid(cid->valuestring) || !cJSON_IsString(mem) ||
	    kv_json_uint(id, (double)PEER_INT_MAX, &stored_id) != 0 ||
	    (tok &&
	     (!cJSON_IsString(tok) || !peer_id_valid(tok->valuestring)))) {
		*errmsg = node_msgf("%s is damaged; restore it or start this "
				    "member on a new data directory",
				    path);
		ret = KV_ECORRUPT;
	} else if (v->valuedouble != KV_FORMAT_VERSION) {
		*errmsg =
		    node_msgf("%s has format version %g; this kvfs reads %d",
			      path, v->valuedouble, KV_FORMAT_VERSION);
		ret = KV_EVERSION;
	} else if (stored_id != n->id) {
		*errmsg = node_msgf(
		    "the data directory %s belongs to member %llu of cluster "
		    "%s, not to --id=%llu",
		    n->data_dir, (unsigned long long)stored_id,
		    cid->valuestring, (unsigned long long)n->id);
		ret = -EINVAL;
	} else if (peers_given && mem->valuestring[0] &&
		   strcmp(cid->valuestring, want_id) != 0) {
		*errmsg = node_msgf(
		    "the data directory %s belongs to cluster %s (members "
		    "%s), but --peers describes cluster %s (%s); use the "
		    "data directory of this cluster or a new one",
		    n->data_dir, cid->valuestring, mem->valuestring, want_id,
		    want);
		ret = -EINVAL;
	} else {
		char *err2 = NULL;
		snprintf(n->cluster_id, sizeof(n->cluster_id), "%s",
			 cid->valuestring);
		memset(boot, 0, sizeof(*boot));
		/* a node that joined has no bootstrap members; a member
		 * alone may have bootstrapped with --listen's port 0 */
		ret = mem->valuestring[0]
			  ? identity_parse_peers(mem->valuestring, n->id, true,
						 "members", boot, &err2)
			  : 0;
		if (ret != 0) {
			*errmsg = node_msgf("%s: %s", path,
					    err2 ? err2 : "bad members");
			free(err2);
		} else if (!have_token && !tok) {
			*errmsg = node_msgf("%s holds no token: give this "
					    "member --cluster-token",
					    path);
			ret = -EINVAL;
		} else if (!have_token) {
			snprintf(n->token, sizeof(n->token), "%s",
				 tok->valuestring);
			n->token_derived = true;
		}
	}
	cJSON_Delete(j);
	return ret;
}

int identity_load(struct kv_node *n, bool peers_given,
		  const struct raft_config *given, bool have_token,
		  const struct join_answer *joined, struct raft_config *boot,
		  char **errmsg)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/cluster.json", n->data_dir);
	char *text = NULL;
	FILE *f = fopen(path, "re");
	if (f) {
		char buf[8192];
		size_t len = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[len] = '\0';
		text = strdup(buf);
		if (!text)
			return -ENOMEM;
	} else if (errno != ENOENT) {
		int err = -errno;
		*errmsg = node_msgf("cannot read %s: %s", path, strerror(-err));
		return err;
	}
	char *want = members_text(given);
	if (!want) {
		free(text);
		return -ENOMEM;
	}
	char want_id[PEER_ID_MAX + 1];
	snprintf(want_id, sizeof(want_id), "kv-%016llx",
		 (unsigned long long)fnv64("cluster\n", want));
	int ret = text ? identity_check(n, path, text, peers_given, have_token,
					want, want_id, boot, errmsg)
		       : identity_create(n, given, have_token, joined, want,
					 want_id, boot, errmsg);
	free(text);
	free(want);
	return ret;
}

void node_join_info(struct kv_node *n, char *cluster_id, char *token)
{
	memcpy(cluster_id, n->cluster_id, sizeof(n->cluster_id));
	if (n->token_derived)
		memcpy(token, n->token, sizeof(n->token));
	else
		token[0] = '\0';
}
