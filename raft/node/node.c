/* node.c - opening and closing a node, its identity, and /status.
 *
 * A data directory belongs to one member of one cluster: cluster.json in
 * it records the cluster id (derived from the bootstrap --peers list), the
 * member's id, the bootstrap members and, when no --cluster-token file is
 * given, the token derived at bootstrap. Starting on a directory of
 * another cluster or id is refused. The node thread is in node_loop.c,
 * proposals and reads in node_client.c. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "codec.h"
#include "join.h"
#include "node_int.h"

static void node_on_change(void *ctx, const char *key, size_t klen)
{
	struct kv_node *n = ctx;
	pthread_mutex_lock(&n->watch_mu);
	if (n->watch_cb)
		n->watch_cb(n->watch_ctx, key, klen);
	pthread_mutex_unlock(&n->watch_mu);
}

static char *msgf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *msgf(const char *fmt, ...)
{
	va_list ap;
	char *m = NULL;
	va_start(ap, fmt);
	if (vasprintf(&m, fmt, ap) < 0)
		m = NULL;
	va_end(ap);
	return m;
}

/* Parse --peers ("ID=HOST:PORT,..."): every item well formed, ids unique,
 * this node among them. Members are voters, sorted by id. */
static int parse_peers(const char *peers, uint64_t id, struct raft_config *c,
		       char **errmsg)
{
	memset(c, 0, sizeof(*c));
	const char *p = peers;
	while (*p) {
		char *end;
		errno = 0;
		unsigned long long pid = strtoull(p, &end, 10);
		if (errno || end == p || *end != '=' || pid == 0 ||
		    pid > PEER_INT_MAX) {
			*errmsg = msgf("bad --peers item at \"%s\": expected "
				       "ID=HOST:PORT",
				       p);
			return -EINVAL;
		}
		const char *addr = end + 1;
		const char *comma = strchr(addr, ',');
		size_t alen = comma ? (size_t)(comma - addr) : strlen(addr);
		if (alen == 0 || alen >= RAFT_ADDR_MAX ||
		    !memchr(addr, ':', alen) || memchr(addr, ' ', alen)) {
			*errmsg =
			    msgf("bad --peers address for member %llu", pid);
			return -EINVAL;
		}
		if (raft_config_get(c, pid)) {
			*errmsg = msgf("--peers lists member %llu twice", pid);
			return -EINVAL;
		}
		if (c->n == RAFT_MAX_SERVERS) {
			*errmsg = msgf("--peers lists more than %d members",
				       RAFT_MAX_SERVERS);
			return -EINVAL;
		}
		unsigned i = c->n++;
		while (i > 0 && c->servers[i - 1].id > pid) {
			c->servers[i] = c->servers[i - 1];
			i--;
		}
		c->servers[i].id = pid;
		c->servers[i].role = RAFT_VOTER;
		memset(c->servers[i].addr, 0, RAFT_ADDR_MAX);
		memcpy(c->servers[i].addr, addr, alen);
		p = comma ? comma + 1 : addr + alen;
	}
	if (!raft_config_get(c, id)) {
		*errmsg = msgf("--peers does not list this node (--id=%llu)",
			       (unsigned long long)id);
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

/* Read the token: the first line of path, printable ASCII. */
static int read_token(const char *path, char *out, char **errmsg)
{
	FILE *f = fopen(path, "re");
	if (!f) {
		int err = -errno;
		*errmsg = msgf("cannot read --cluster-token file %s: %s", path,
			       strerror(-err));
		return err;
	}
	char line[PEER_ID_MAX + 2];
	bool ok = fgets(line, sizeof(line), f) != NULL;
	fclose(f);
	if (ok)
		line[strcspn(line, "\r\n")] = '\0';
	if (!ok || !peer_id_valid(line)) {
		*errmsg = msgf("--cluster-token file %s: the first line must "
			       "hold 1 to %d printable ASCII characters "
			       "without spaces",
			       path, PEER_ID_MAX);
		return -EINVAL;
	}
	memcpy(out, line, strlen(line) + 1); /* valid: at most PEER_ID_MAX */
	return 0;
}

/* Write cluster.json atomically (temp file, fsync, rename, dir fsync). */
static int identity_write(const char *dir, const char *json)
{
	char tmp[4096], path[4096];
	snprintf(tmp, sizeof(tmp), "%s/cluster.json.tmp", dir);
	snprintf(path, sizeof(path), "%s/cluster.json", dir);
	FILE *f = fopen(tmp, "we");
	if (!f)
		return -errno;
	int ret = 0;
	if (fputs(json, f) < 0 || fputc('\n', f) < 0 || fflush(f) != 0 ||
	    fsync(fileno(f)) != 0)
		ret = -errno;
	if (fclose(f) != 0 && ret == 0)
		ret = -errno;
	if (ret == 0 && rename(tmp, path) != 0)
		ret = -errno;
	if (ret == 0)
		ret = kv_sync_dir(dir);
	if (ret != 0)
		unlink(tmp);
	return ret;
}

/* Load or create the data dir's identity; fill n->cluster_id, n->token
 * (unless a token file set it) and *boot (the bootstrap members). given
 * is what --peers gave (or this node alone); joined, if not NULL, is the
 * answer of the cluster this node just joined (it starts with no members:
 * the leader's log or snapshot brings the configuration). */
static int identity(struct kv_node *n, const char *dir, bool peers_given,
		    const struct raft_config *given, bool have_token,
		    const struct join_answer *joined, struct raft_config *boot,
		    char **errmsg)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/cluster.json", dir);
	char *text = NULL;
	size_t len = 0;
	FILE *f = fopen(path, "re");
	if (f) {
		char buf[8192];
		len = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[len] = '\0';
		text = strdup(buf);
		if (!text)
			return -ENOMEM;
	} else if (errno != ENOENT) {
		int err = -errno;
		*errmsg = msgf("cannot read %s: %s", path, strerror(-err));
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
	int ret = 0;
	if (!text && joined) {
		snprintf(n->cluster_id, sizeof(n->cluster_id), "%s",
			 joined->cluster_id);
		if (!have_token) {
			snprintf(n->token, sizeof(n->token), "%s",
				 joined->token);
			n->token_derived = true;
		}
		memset(boot, 0, sizeof(*boot));
		want[0] = '\0'; /* no bootstrap members */
	}
	if (!text) {
		/* bootstrap (or a data dir from before cluster.json) */
		if (!joined) {
			snprintf(n->cluster_id, sizeof(n->cluster_id), "%s",
				 want_id);
			*boot = *given;
		}
		if (!have_token && !joined) {
			snprintf(n->token, sizeof(n->token), "dt-%016llx",
				 (unsigned long long)fnv64("token\n", want));
			n->token_derived = true;
		}
		cJSON *j = cJSON_CreateObject();
		cJSON_AddNumberToObject(j, "version", KV_FORMAT_VERSION);
		cJSON_AddStringToObject(j, "cluster_id", n->cluster_id);
		cJSON_AddNumberToObject(j, "id", (double)n->id);
		cJSON_AddStringToObject(j, "members", want);
		if (!have_token)
			cJSON_AddStringToObject(j, "token", n->token);
		char *out = cJSON_PrintUnformatted(j);
		cJSON_Delete(j);
		ret = out ? identity_write(dir, out) : -ENOMEM;
		free(out);
		if (ret != 0)
			*errmsg =
			    msgf("cannot write %s: %s", path, strerror(-ret));
		free(want);
		return ret;
	}
	cJSON *j = kv_json_parse(text, strlen(text));
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "version");
	const cJSON *cid = cJSON_GetObjectItemCaseSensitive(j, "cluster_id");
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
	const cJSON *mem = cJSON_GetObjectItemCaseSensitive(j, "members");
	const cJSON *tok = cJSON_GetObjectItemCaseSensitive(j, "token");
	uint64_t stored_id = 0;
	if (!j || !cJSON_IsNumber(v) || !cJSON_IsString(cid) ||
	    !peer_id_valid(cid->valuestring) || !cJSON_IsString(mem) ||
	    kv_json_uint(id, (double)PEER_INT_MAX, &stored_id) != 0 ||
	    (tok &&
	     (!cJSON_IsString(tok) || !peer_id_valid(tok->valuestring)))) {
		*errmsg = msgf("%s is damaged; restore it or start this member "
			       "on a new data directory",
			       path);
		ret = KV_ECORRUPT;
	} else if (v->valuedouble != KV_FORMAT_VERSION) {
		*errmsg = msgf("%s has format version %g; this kvfs reads %d",
			       path, v->valuedouble, KV_FORMAT_VERSION);
		ret = KV_EVERSION;
	} else if (stored_id != n->id) {
		*errmsg = msgf("the data directory %s belongs to member %llu "
			       "of cluster %s, not to --id=%llu",
			       dir, (unsigned long long)stored_id,
			       cid->valuestring, (unsigned long long)n->id);
		ret = -EINVAL;
	} else if (peers_given && mem->valuestring[0] &&
		   strcmp(cid->valuestring, want_id) != 0) {
		*errmsg = msgf("the data directory %s belongs to cluster %s "
			       "(members %s), but --peers describes cluster %s "
			       "(%s); use the data directory of this cluster "
			       "or a new one",
			       dir, cid->valuestring, mem->valuestring, want_id,
			       want);
		ret = -EINVAL;
	} else {
		char *err2 = NULL;
		snprintf(n->cluster_id, sizeof(n->cluster_id), "%s",
			 cid->valuestring);
		memset(boot, 0, sizeof(*boot));
		/* a node that joined has no bootstrap members */
		ret = mem->valuestring[0]
			  ? parse_peers(mem->valuestring, n->id, boot, &err2)
			  : 0;
		if (ret != 0) {
			*errmsg =
			    msgf("%s: members: %s", path, err2 ? err2 : "bad");
			free(err2);
		} else if (!have_token) {
			if (!tok) {
				*errmsg = msgf("%s holds no token: give this "
					       "member --cluster-token",
					       path);
				ret = -EINVAL;
			} else {
				snprintf(n->token, sizeof(n->token), "%s",
					 tok->valuestring);
				n->token_derived = true;
			}
		}
	}
	cJSON_Delete(j);
	free(text);
	free(want);
	return ret;
}

/* --join: a data directory without an identity asks the cluster to add
 * this node (as a learner, promoted once caught up); one with an identity
 * already joined (or bootstrapped) and just restarts. */
static int join_cluster(struct kv_node *n, const struct node_options *opt,
			bool have_token, struct join_answer *ans, bool *joining,
			char **errmsg)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/cluster.json", opt->data_dir);
	if (access(path, F_OK) == 0)
		return 0;
	if (opt->peers && *opt->peers) {
		*errmsg = msgf("give --join or --peers, not both");
		return -EINVAL;
	}
	fprintf(stderr, "kvfs: asking %s to add node %llu at %s\n", opt->join,
		(unsigned long long)n->id, n->listen);
	char *why = NULL;
	int ret = cluster_join(opt->join, n->id, n->listen, 60000, ans, &why);
	if (ret != 0) {
		*errmsg = msgf("cannot join through %s: %s", opt->join,
			       why ? why : kv_strerror(ret));
		free(why);
		return ret;
	}
	if (!ans->token[0] && !have_token) {
		*errmsg = msgf("the cluster uses a --cluster-token file: give "
			       "this node the same file");
		return -EACCES;
	}
	*joining = true;
	return 0;
}

/* A node that just joined knows no member until the leader's log or
 * snapshot reaches it, but must answer the leader meanwhile: start
 * senders for the members the cluster lists now (sync_peers keeps them in
 * step with the configuration once it arrives). */
static void add_join_peers(struct kv_node *n, const char *member)
{
	long status = 0;
	char *body = NULL, *why = NULL;
	if (cluster_http(member, "GET", "/cluster/members", NULL, 0, 5000,
			 &status, &body, NULL, NULL, &why) != 0 ||
	    status != 200) {
		fprintf(stderr,
			"kvfs: cannot list the members through %s (%s); "
			"waiting for the leader's configuration\n",
			member, why ? why : "bad answer");
		free(body);
		free(why);
		return;
	}
	cJSON *j = kv_json_parse(body, strlen(body));
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, "members");
	const cJSON *m;
	cJSON_ArrayForEach(m, arr)
	{
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(m, "id");
		const cJSON *addr =
		    cJSON_GetObjectItemCaseSensitive(m, "address");
		uint64_t v;
		if (kv_json_uint(id, (double)PEER_INT_MAX, &v) == 0 &&
		    v != n->id && cJSON_IsString(addr) &&
		    cluster_addr_valid(addr->valuestring))
			peers_add(n->peers, v, addr->valuestring);
	}
	cJSON_Delete(j);
	free(body);
}

/* The Raft core from what the store recovered. */
static int core_open(struct kv_node *n, const struct raft_config *boot,
		     char **errmsg)
{
	struct store_recovery rec;
	int ret = store_recover(n->store, &rec);
	if (ret != 0) {
		*errmsg =
		    msgf("cannot read the log back: %s", kv_strerror(ret));
		return ret;
	}
	struct raft_entry *ents = calloc(rec.n ? rec.n : 1, sizeof(*ents));
	if (!ents) {
		store_recovery_free(&rec);
		return -ENOMEM;
	}
	for (size_t i = 0; i < rec.n; i++)
		ents[i] = (struct raft_entry){
		    .index = rec.entries[i].index,
		    .term = rec.entries[i].term,
		    .type = (enum raft_entry_type)rec.entries[i].type,
		    .data = (void *)rec.entries[i].data,
		    .len = rec.entries[i].len};
	struct raft_restore rs = {.term = rec.term,
				  .vote = rec.vote,
				  .entries = ents,
				  .n_entries = rec.n,
				  .applied = rec.snap_index};
	rs.snapshot.index = rec.snap_index;
	rs.snapshot.term = rec.snap_term;
	rs.snapshot.conf = *boot;
	if (rec.conf && raft_config_decode(rec.conf, rec.conf_len,
					   &rs.snapshot.conf) != 0) {
		*errmsg = msgf("the db's configuration is damaged");
		ret = KV_ECORRUPT;
		goto out;
	}
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	struct raft_options ro = {.id = n->id,
				  .election_ticks = NODE_ELECTION,
				  .heartbeat_ticks = NODE_HEARTBEAT,
				  .seed = (uint64_t)t.tv_nsec ^
					  ((uint64_t)getpid() << 32) ^ n->id};
	ret = raft_new(&ro, &rs, &n->raft);
	if (ret != 0)
		*errmsg = msgf("cannot start Raft on the recovered log "
			       "(term %llu, db at %llu, %zu entries): %s",
			       (unsigned long long)rec.term,
			       (unsigned long long)rec.snap_index, rec.n,
			       kv_strerror(ret));
out:
	free(ents);
	store_recovery_free(&rec);
	return ret;
}

int node_open(const struct node_options *opt, struct kv_node **out,
	      char **errmsg)
{
	*errmsg = NULL;
	if (opt->id == 0 || opt->id > PEER_INT_MAX) {
		*errmsg = msgf("--id must be a number from 1");
		return -EINVAL;
	}
	struct kv_node *n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	n->id = opt->id;
	n->write_timeout_ms =
	    opt->write_timeout_ms > 0 ? opt->write_timeout_ms : 5000;
	clock_gettime(CLOCK_MONOTONIC, &n->started);
	struct timespec wall;
	clock_gettime(CLOCK_REALTIME, &wall);
	n->read_issued = n->read_answered = n->read_need = n->fwd_seq =
	    (uint64_t)wall.tv_sec * 1000000 + (uint64_t)wall.tv_nsec / 1000;
	pthread_mutex_init(&n->mu, NULL);
	pthread_mutex_init(&n->watch_mu, NULL);
	pthread_mutex_init(&n->unsent_mu, NULL);
	node_cond_init(&n->cond);
	node_cond_init(&n->state_cond);
	pthread_cond_init(&n->retry_cond, NULL);

	struct raft_config given, boot;
	bool peers_given = opt->peers && *opt->peers;
	int ret;
	if (peers_given) {
		ret = parse_peers(opt->peers, n->id, &given, errmsg);
	} else {
		char one[RAFT_ADDR_MAX + 32];
		snprintf(one, sizeof(one), "%llu=%s", (unsigned long long)n->id,
			 opt->listen ? opt->listen : "127.0.0.1:7001");
		ret = parse_peers(one, n->id, &given, errmsg);
	}
	if (ret != 0)
		goto err_free;
	const char *self = raft_config_get(&given, n->id)->addr;
	n->listen = strdup(opt->listen ? opt->listen : self);
	n->data_dir = strdup(opt->data_dir);
	if (!n->listen || !n->data_dir) {
		ret = -ENOMEM;
		goto err_free;
	}
	bool have_token = opt->cluster_token_file != NULL;
	if (have_token) {
		ret = read_token(opt->cluster_token_file, n->token, errmsg);
		if (ret != 0)
			goto err_free;
	}

	struct store_options so = {.dir = opt->data_dir,
				   .snapshot_every = opt->snapshot_every,
				   .snapshot_bytes = opt->snapshot_bytes,
				   .segment_size = opt->segment_size,
				   .on_change = node_on_change,
				   .on_change_ctx = n,
				   .raft = &node_store_ops,
				   .raft_ctx = n};
	ret = store_open(&so, &n->store, errmsg);
	if (ret == KV_ECORRUPT || ret == KV_EVERSION) {
		char *m =
		    msgf("%s\nThe data directory %s cannot be used. If "
			 "the other members are healthy, move it aside "
			 "(keep it for inspection) and start this member "
			 "again with the same --id and --peers on an "
			 "empty directory: it catches up from the leader "
			 "by snapshot.",
			 *errmsg ? *errmsg : kv_strerror(ret), opt->data_dir);
		if (m) {
			free(*errmsg);
			*errmsg = m;
		}
	}
	if (ret != 0)
		goto err_free;
	struct join_answer ans;
	bool joining = false;
	if (opt->join) {
		ret = join_cluster(n, opt, have_token, &ans, &joining, errmsg);
		if (ret != 0)
			goto err_store;
	}
	ret = identity(n, opt->data_dir, peers_given, &given, have_token,
		       joining ? &ans : NULL, &boot, errmsg);
	if (ret != 0)
		goto err_store;
	struct store_status ss;
	ret = store_status(n->store, &ss);
	if (ret != 0)
		goto err_store;
	n->applied = ss.applied_index;
	ret = core_open(n, &boot, errmsg);
	if (ret != 0)
		goto err_store;
	struct peer_options popt = {.unsent = node_unsent, .unsent_arg = n};
	ret = peers_new(n->cluster_id, n->token, n->id, &popt, &n->peers);
	if (ret != 0) {
		*errmsg =
		    msgf("cannot start the peer senders: %s", kv_strerror(ret));
		goto err_raft;
	}
	if (joining)
		add_join_peers(n, opt->join);
	ret = snapxfer_recv_new(opt->data_dir, &n->snaprecv);
	if (ret != 0) {
		*errmsg = msgf("cannot prepare for snapshots in %s: %s",
			       opt->data_dir, kv_strerror(ret));
		goto err_peers;
	}
	ret = node_loop_start(n);
	if (ret != 0) {
		*errmsg =
		    msgf("cannot start the node thread: %s", kv_strerror(ret));
		goto err_peers;
	}
	*out = n;
	return 0;

err_peers:
	snapxfer_recv_free(n->snaprecv);
	peers_free(n->peers);
err_raft:
	raft_free(n->raft);
err_store:
	store_close(n->store);
err_free:
	pthread_cond_destroy(&n->retry_cond);
	pthread_cond_destroy(&n->state_cond);
	pthread_cond_destroy(&n->cond);
	pthread_mutex_destroy(&n->unsent_mu);
	pthread_mutex_destroy(&n->watch_mu);
	pthread_mutex_destroy(&n->mu);
	free(n->listen);
	free(n->data_dir);
	free(n);
	return ret;
}

void node_stop(struct kv_node *n)
{
	/* No more Raft: every call waiting on the node is answered
	 * (KV_ESHUTDOWN), and new ones are refused. Then the retrying
	 * threads end, so that no request of the listener is left waiting
	 * when it stops (its suspended connections must all be resumed). */
	node_loop_stop(n);
	node_retry_wait(n);
}

void node_close(struct kv_node *n)
{
	if (!n)
		return;
	/* Then the senders; the store finishes what it was handed. */
	node_stop(n);
	snapxfer_recv_free(n->snaprecv);
	peers_free(n->peers);
	store_close(n->store);
	raft_free(n->raft);
	pthread_cond_destroy(&n->retry_cond);
	pthread_cond_destroy(&n->state_cond);
	pthread_cond_destroy(&n->cond);
	pthread_mutex_destroy(&n->unsent_mu);
	pthread_mutex_destroy(&n->watch_mu);
	pthread_mutex_destroy(&n->mu);
	free(n->listen);
	free(n->data_dir);
	free(n);
}

const char *node_listen(const struct kv_node *n)
{
	return n->listen;
}

const char *node_cluster_id(const struct kv_node *n)
{
	return n->cluster_id;
}

const char *node_token(const struct kv_node *n)
{
	return n->token;
}

uint64_t node_id(const struct kv_node *n)
{
	return n->id;
}

uint64_t node_leader(struct kv_node *n, char *addr, size_t cap)
{
	pthread_mutex_lock(&n->mu);
	uint64_t id = n->leader;
	if (addr && cap)
		snprintf(addr, cap, "%s", n->leader_addr);
	pthread_mutex_unlock(&n->mu);
	return id;
}

struct store *node_store(struct kv_node *n)
{
	return n->store;
}

void node_watch(struct kv_node *n,
		void (*cb)(void *ctx, const char *key, size_t klen), void *ctx)
{
	pthread_mutex_lock(&n->watch_mu);
	n->watch_cb = cb;
	n->watch_ctx = ctx;
	pthread_mutex_unlock(&n->watch_mu);
}

static const char *role_name(enum raft_role r)
{
	switch (r) {
	case RAFT_LEADER:
		return "leader";
	case RAFT_CANDIDATE:
		return "candidate";
	case RAFT_PRE_CANDIDATE:
		return "pre-candidate";
	case RAFT_FOLLOWER:
		break;
	}
	return "follower";
}

/* The peers array of /status: membership and replication as published
 * by the node thread, the senders' view of each connection. */
static void status_peers(struct kv_node *n, cJSON *j)
{
	cJSON *arr = cJSON_AddArrayToObject(j, "peers");
	if (!arr)
		return;
	pthread_mutex_lock(&n->mu);
	unsigned count = n->n_members;
	struct node_member m[RAFT_MAX_SERVERS];
	memcpy(m, n->members, sizeof(m));
	uint64_t heard[RAFT_MAX_SERVERS] = {0};
	for (unsigned i = 0; i < count; i++)
		for (size_t k = 0; k < RAFT_MAX_SERVERS; k++)
			if (n->heard[k].id == m[i].id)
				heard[i] = n->heard[k].ms;
	pthread_mutex_unlock(&n->mu);
	uint64_t mono = node_mono_ms();
	for (unsigned i = 0; i < count; i++) {
		if (m[i].id == n->id)
			continue;
		cJSON *p = cJSON_CreateObject();
		if (!p)
			return;
		cJSON_AddItemToArray(arr, p);
		cJSON_AddNumberToObject(p, "id", (double)m[i].id);
		cJSON_AddStringToObject(p, "address", m[i].addr);
		cJSON_AddStringToObject(
		    p, "role", m[i].role == RAFT_LEARNER ? "learner" : "voter");
		struct peer_info info;
		if (peers_info(n->peers, m[i].id, &info) == 0) {
			/* a follower talks to the leader only: a peer it
			 * never sent to is neither reachable nor not */
			if (info.last_ok_ms || info.last_err_ms)
				cJSON_AddBoolToObject(p, "reachable",
						      info.reachable);
			else
				cJSON_AddNullToObject(p, "reachable");
			cJSON_AddNumberToObject(
			    p, "last_contact_ms",
			    heard[i] ? (double)(mono - heard[i]) : -1.0);
			cJSON_AddNumberToObject(p, "queued",
						(double)info.queued);
			cJSON_AddNumberToObject(p, "sent", (double)info.sent);
			cJSON_AddNumberToObject(p, "frames",
						(double)info.batches);
			cJSON_AddNumberToObject(p, "dropped",
						(double)info.dropped);
			if (info.last_err[0])
				cJSON_AddStringToObject(p, "last_error",
							info.last_err);
		}
		if (m[i].has_progress) {
			cJSON_AddNumberToObject(p, "match_index",
						(double)m[i].prog.match);
			cJSON_AddNumberToObject(p, "next_index",
						(double)m[i].prog.next);
			cJSON_AddNumberToObject(p, "inflight",
						(double)m[i].prog.inflight);
			cJSON_AddBoolToObject(p, "active",
					      m[i].prog.recent_active);
			cJSON_AddBoolToObject(p, "snapshot",
					      m[i].prog.snapshot);
		}
	}
}

/* [{"id","address","role"}] of the configuration in effect here. */
static cJSON *members_array(struct kv_node *n)
{
	cJSON *arr = cJSON_CreateArray();
	if (!arr)
		return NULL;
	pthread_mutex_lock(&n->mu);
	for (unsigned i = 0; i < n->n_members; i++) {
		const struct node_member *m = &n->members[i];
		cJSON *o = cJSON_CreateObject();
		if (!o)
			break;
		cJSON_AddItemToArray(arr, o);
		cJSON_AddNumberToObject(o, "id", (double)m->id);
		cJSON_AddStringToObject(o, "address", m->addr);
		cJSON_AddStringToObject(
		    o, "role", m->role == RAFT_LEARNER ? "learner" : "voter");
	}
	pthread_mutex_unlock(&n->mu);
	return arr;
}

int node_members_json(struct kv_node *n, char **out)
{
	cJSON *j = cJSON_CreateObject();
	if (!j)
		return -ENOMEM;
	cJSON_AddNumberToObject(j, "leader", (double)node_leader(n, NULL, 0));
	cJSON *mem = members_array(n);
	if (mem)
		cJSON_AddItemToObject(j, "members", mem);
	char *text = mem ? cJSON_PrintUnformatted(j) : NULL;
	cJSON_Delete(j);
	if (!text)
		return -ENOMEM;
	*out = text;
	return 0;
}

void node_join_info(struct kv_node *n, char *cluster_id, char *token)
{
	memcpy(cluster_id, n->cluster_id, sizeof(n->cluster_id));
	if (n->token_derived)
		memcpy(token, n->token, sizeof(n->token));
	else
		token[0] = '\0';
}

int node_status_json(struct kv_node *n, char **out)
{
	struct store_status s;
	int ret = store_status(n->store, &s);
	if (ret != 0)
		return ret;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	cJSON *j = cJSON_CreateObject();
	if (!j)
		return -ENOMEM;
	pthread_mutex_lock(&n->mu);
	enum raft_role role = n->role;
	uint64_t term = n->term, leader = n->leader, commit = n->commit;
	uint64_t last = n->last_index;
	char laddr[RAFT_ADDR_MAX];
	memcpy(laddr, n->leader_addr, sizeof(laddr));
	int fatal = n->fatal;
	pthread_mutex_unlock(&n->mu);
	cJSON_AddNumberToObject(j, "id", (double)n->id);
	cJSON_AddStringToObject(j, "cluster_id", n->cluster_id);
	cJSON_AddStringToObject(j, "role", role_name(role));
	cJSON_AddNumberToObject(j, "term", (double)term);
	cJSON_AddNumberToObject(j, "leader", (double)leader);
	cJSON_AddStringToObject(j, "leader_address", laddr);
	cJSON_AddNumberToObject(j, "commit_index", (double)commit);
	cJSON_AddNumberToObject(j, "applied_index", (double)s.applied_index);
	cJSON_AddNumberToObject(j, "first_index", (double)s.first_index);
	cJSON_AddNumberToObject(j, "last_index", (double)last);
	cJSON_AddNumberToObject(j, "durable_index", (double)s.last_index);
	cJSON_AddNumberToObject(j, "snapshot_index", (double)s.snapshot_index);
	cJSON_AddNumberToObject(j, "keys", (double)s.keys);
	cJSON_AddNumberToObject(j, "bytes", (double)s.bytes);
	cJSON_AddNumberToObject(j, "log_bytes", (double)s.log_bytes);
	char hash[17];
	snprintf(hash, sizeof(hash), "%016llx",
		 (unsigned long long)s.state_hash);
	cJSON_AddStringToObject(j, "state_hash", hash);
	cJSON_AddStringToObject(j, "version", KVFS_VERSION);
	cJSON_AddNumberToObject(j, "format_version", KV_FORMAT_VERSION);
	cJSON_AddNumberToObject(j, "uptime_s",
				(double)(now.tv_sec - n->started.tv_sec));
	status_peers(n, j);
	cJSON *mem = members_array(n);
	if (mem)
		cJSON_AddItemToObject(j, "members", mem);
	if (s.failed || fatal)
		cJSON_AddStringToObject(
		    j, "error", kv_strerror(s.failed ? s.failed : fatal));
	char *text = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	if (!text)
		return -ENOMEM;
	*out = text;
	return 0;
}

int node_snapshot_chunk(struct kv_node *n, const struct snapxfer_chunk *c,
			uint64_t *next, char *why, size_t why_len)
{
	struct snapxfer_ready ready;
	int err =
	    snapxfer_recv_chunk(n->snaprecv, c, next, &ready, why, why_len);
	if (err == 1) {
		pthread_mutex_lock(&n->mu);
		n->ready = ready;
		n->has_ready = true;
		pthread_mutex_unlock(&n->mu);
	}
	return err;
}
