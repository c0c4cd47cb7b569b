/* identity.c - which cluster and member a data directory belongs to, and
 * the cluster's secret.
 *
 * cluster.json in the data directory records the cluster id (derived from
 * the bootstrap --peers list: an id, no secret), the member's id and the
 * bootstrap members. It is written once, atomically (kv_file_replace), and
 * checked at every start: a directory of another cluster or id is
 * refused. The token is a secret of random bytes (peer_token.c): a member
 * alone makes one at bootstrap and keeps it in DATA_DIR/cluster-token
 * (mode 0600); every other member is given the same --cluster-token file,
 * reread on SIGHUP for a rotation. Tokens are never in cluster.json (a
 * token an older kvfs derived from --peers and kept there is refused, with
 * the fix). The --peers list is parsed here too, with every address
 * checked by kv_addr_parse. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fcntl.h>
#include <unistd.h>

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

/* Put tokens[0..n) in place: the first presented, all accepted. */
static void tokens_set(struct kv_node *n, char tokens[][PEER_ID_MAX + 1],
		       size_t count)
{
	pthread_mutex_lock(&n->tok.mu);
	memcpy(n->tok.present, tokens[0], sizeof(n->tok.present));
	for (size_t i = 0; i < PEER_TOKENS; i++)
		if (i < count)
			memcpy(n->tok.accept[i], tokens[i], PEER_ID_MAX + 1);
		else
			memset(n->tok.accept[i], 0, PEER_ID_MAX + 1);
	pthread_mutex_unlock(&n->tok.mu);
}

/* What to do without a token file, said once. */
#define TOKEN_HOW                                                              \
	"make one with `kvfsctl new-token > FILE`, copy FILE to every "        \
	"member (mode 0600) and start each with --cluster-token=FILE"

int identity_tokens_open(struct kv_node *n, const struct node_options *opt,
			 const struct raft_config *given, char **errmsg)
{
	char tokens[PEER_TOKENS][PEER_ID_MAX + 1], path[4096];
	size_t count = 0;

	pthread_mutex_init(&n->tok.mu, NULL);
	n->tls = opt->tls;
	if (opt->cluster_token_file) {
		if (strlen(opt->cluster_token_file) >= sizeof(n->tok.file)) {
			*errmsg = node_msgf("--cluster-token: path too long");
			return -EINVAL;
		}
		int ret = peer_tokens_read(opt->cluster_token_file, tokens,
					   &count, errmsg);
		if (ret != 0)
			return ret;
		snprintf(n->tok.file, sizeof(n->tok.file), "%s",
			 opt->cluster_token_file);
		tokens_set(n, tokens, count);
		explicit_bzero(tokens, sizeof(tokens));
		return 0;
	}
	snprintf(path, sizeof(path), "%s/cluster.json", opt->data_dir);
	if (access(path, F_OK) == 0)
		return 0; /* identity_load says what this member needs */
	if (opt->join) {
		*errmsg = node_msgf("--join needs the cluster's token: give "
				    "this node the members' --cluster-token "
				    "file (a member alone keeps it in its "
				    "DATA_DIR/cluster-token)");
		return -EINVAL;
	}
	if (given->n > 1) {
		*errmsg = node_msgf("a cluster of %u members needs one secret "
				    "on every member: " TOKEN_HOW,
				    given->n);
		return -EINVAL;
	}
	return 0;
}

/* DATA_DIR/cluster-token of a member alone: read it, or make it when
 * create. */
static int data_token(struct kv_node *n, bool create, char **errmsg)
{
	char tokens[PEER_TOKENS][PEER_ID_MAX + 1], path[4096];
	size_t count = 0;
	int ret;

	snprintf(path, sizeof(path), "%s/cluster-token", n->data_dir);
	if (create) {
		char text[2 * PEER_TOKEN_BYTES + 2];
		if ((ret = peer_token_new(text)) != 0) {
			*errmsg = node_msgf("cannot make a token: %s",
					    strerror(-ret));
			return ret;
		}
		strcat(text, "\n");
		ret = kv_file_replace(n->data_dir, "cluster-token", text,
				      strlen(text), 0600);
		explicit_bzero(text, sizeof(text));
		if (ret != 0) {
			*errmsg = node_msgf("cannot write %s: %s", path,
					    strerror(-ret));
			return ret;
		}
	}
	char *why = NULL;
	ret = peer_tokens_read(path, tokens, &count, &why);
	if (ret == -ENOENT) {
		free(why);
		*errmsg = node_msgf("this member has no token: give it the "
				    "members' --cluster-token file");
		return -EINVAL;
	}
	if (ret != 0) {
		*errmsg = why;
		return ret;
	}
	tokens_set(n, tokens, count);
	explicit_bzero(tokens, sizeof(tokens));
	return 0;
}

int node_reload_tokens(struct kv_node *n, char **errmsg)
{
	char tokens[PEER_TOKENS][PEER_ID_MAX + 1];
	size_t count = 0;

	*errmsg = NULL;
	if (!n->tok.file[0])
		return 0;
	int ret = peer_tokens_read(n->tok.file, tokens, &count, errmsg);
	if (ret != 0)
		return ret;
	tokens_set(n, tokens, count);
	ret = peers_set_token(n->peers, tokens[0]);
	explicit_bzero(tokens, sizeof(tokens));
	return ret;
}

void node_token_copy(struct kv_node *n, char *buf)
{
	pthread_mutex_lock(&n->tok.mu);
	memcpy(buf, n->tok.present, sizeof(n->tok.present));
	pthread_mutex_unlock(&n->tok.mu);
}

bool node_token_check(struct kv_node *n, const char *got)
{
	const char *want[PEER_TOKENS];

	pthread_mutex_lock(&n->tok.mu);
	for (size_t i = 0; i < PEER_TOKENS; i++)
		want[i] = n->tok.accept[i][0] ? n->tok.accept[i] : NULL;
	bool ok = peer_token_any(got, want, PEER_TOKENS);
	pthread_mutex_unlock(&n->tok.mu);
	return ok;
}

struct cluster_auth identity_auth(struct kv_node *n)
{
	/* read at open, before any reload can run */
	return (struct cluster_auth){.tls = n->tls, .token = n->tok.present};
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
		memset(boot, 0, sizeof(*boot));
	} else {
		/* bootstrap (or a data dir from before cluster.json) */
		snprintf(n->cluster_id, sizeof(n->cluster_id), "%s", want_id);
		*boot = *given;
	}
	/* a member alone makes its secret (identity_tokens_open refused
	 * every other case without a file) */
	int ret = have_token ? 0 : data_token(n, true, errmsg);
	if (ret != 0)
		return ret;
	cJSON *j = cJSON_CreateObject();
	cJSON_AddNumberToObject(j, "version", KV_FORMAT_VERSION);
	cJSON_AddStringToObject(j, "cluster_id", n->cluster_id);
	cJSON_AddNumberToObject(j, "id", (double)n->id);
	cJSON_AddStringToObject(j, "members", joined ? "" : want);
	char *out = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	char *text = out ? node_msgf("%s\n", out) : NULL;
	free(out);
	ret = text ? kv_file_replace(n->data_dir, "cluster.json", text,
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
		} else if (!have_token && tok) {
			/* kvfs before secret tokens derived one from
			 * --peers and kept it here: anyone could compute it */
			*errmsg = node_msgf(
			    "%s holds a token derived from the member list, "
			    "which anyone who knows the members can compute; "
			    "it is no longer accepted: " TOKEN_HOW
			    " (docs/security.md, \"Upgrading\")",
			    path);
			ret = -EINVAL;
		} else if (!have_token) {
			ret = data_token(n, false, errmsg);
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
