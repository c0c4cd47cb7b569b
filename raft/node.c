/* node.c - the node layer: proposals, read barriers, status.
 *
 * The one place fs/ and the HTTP API hand commands to. With a single
 * member, a proposal is committed once durably appended, so it goes
 * straight to the store (store_propose: append, group-commit sync, apply).
 * The Raft node thread replaces that path for clusters without changing
 * these calls. The HTTP listener lives in http.c. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "node.h"

struct kv_node {
	uint64_t id;
	char *listen;
	struct store *store;
	struct node_http *http;
	uint64_t term;
	struct timespec started;

	pthread_mutex_t watch_mu;
	void (*watch_cb)(void *ctx, const char *key, size_t klen);
	void *watch_ctx;
};

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

/* Check --peers: "ID=HOST:PORT" items separated by commas, this node among
 * them. Until the cluster layer lands, only a one-member list is served. */
static int check_peers(const char *peers, uint64_t id, char **errmsg)
{
	if (!peers || !*peers)
		return 0;
	int count = 0;
	bool self = false;
	const char *p = peers;
	while (*p) {
		char *end;
		errno = 0;
		unsigned long long pid = strtoull(p, &end, 10);
		if (errno || end == p || *end != '=' || pid == 0) {
			*errmsg = msgf("bad --peers item at \"%s\": expected "
				       "ID=HOST:PORT",
				       p);
			return -EINVAL;
		}
		const char *addr = end + 1;
		const char *comma = strchr(addr, ',');
		size_t alen = comma ? (size_t)(comma - addr) : strlen(addr);
		if (alen == 0 || !memchr(addr, ':', alen)) {
			*errmsg =
			    msgf("bad --peers address for member %llu", pid);
			return -EINVAL;
		}
		count++;
		if (pid == id)
			self = true;
		p = comma ? comma + 1 : addr + alen;
	}
	if (!self) {
		*errmsg = msgf("--peers does not list this node (--id=%llu)",
			       (unsigned long long)id);
		return -EINVAL;
	}
	if (count > 1) {
		*errmsg = msgf("--peers lists %d members: this build serves "
			       "one member only (clusters are not "
			       "implemented yet)",
			       count);
		return -ENOTSUP;
	}
	return 0;
}

int node_open(const struct node_options *opt, struct kv_node **out,
	      char **errmsg)
{
	*errmsg = NULL;
	int ret = check_peers(opt->peers, opt->id, errmsg);
	if (ret != 0)
		return ret;
	struct kv_node *n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	n->id = opt->id;
	n->listen = strdup(opt->listen ? opt->listen : "127.0.0.1:7001");
	if (!n->listen) {
		ret = -ENOMEM;
		goto err_free;
	}
	pthread_mutex_init(&n->watch_mu, NULL);
	clock_gettime(CLOCK_MONOTONIC, &n->started);

	struct store_options so = {.dir = opt->data_dir,
				   .snapshot_every = opt->snapshot_every,
				   .snapshot_bytes = opt->snapshot_bytes,
				   .segment_size = opt->segment_size,
				   .on_change = node_on_change,
				   .on_change_ctx = n};
	ret = store_open(&so, &n->store, errmsg);
	if (ret != 0)
		goto err_mutex;

	/* One member: it is the leader of a term of its own. Persist the
	 * term (and the vote for itself) before serving anything in it. */
	struct store_status s;
	ret = store_status(n->store, &s);
	if (ret != 0)
		goto err_store;
	n->term = s.term + 1;
	ret = store_save_hardstate(n->store, n->term, n->id);
	if (ret != 0) {
		*errmsg = msgf("cannot save hard state: %s", kv_strerror(ret));
		goto err_store;
	}

	ret = node_http_start(n, n->listen, &n->http, errmsg);
	if (ret != 0)
		goto err_store;
	*out = n;
	return 0;

err_store:
	store_close(n->store);
err_mutex:
	pthread_mutex_destroy(&n->watch_mu);
err_free:
	free(n->listen);
	free(n);
	return ret;
}

void node_close(struct kv_node *n)
{
	if (!n)
		return;
	node_http_stop(n->http);
	store_close(n->store);
	pthread_mutex_destroy(&n->watch_mu);
	free(n->listen);
	free(n);
}

int node_propose(struct kv_node *n, struct kv_cmd *cmd, struct kv_result *res)
{
	int ret;
	if (cmd->op != KV_OP_NOOP) {
		ret = kv_key_check(cmd->key, cmd->klen);
		if (ret != 0)
			return ret;
	}
	if (cmd->op == KV_OP_RENAME) {
		ret = kv_key_check(cmd->key2, cmd->k2len);
		if (ret != 0)
			return ret;
	}
	if (cmd->op == KV_OP_PUT && cmd->vlen > KV_MAX_VALUE)
		return -EFBIG;
	if (cmd->mtime_ns == 0 &&
	    (cmd->op == KV_OP_PUT || cmd->op == KV_OP_MKDIR ||
	     cmd->op == KV_OP_RENAME || cmd->op == KV_OP_SETATTR)) {
		struct timespec now;
		clock_gettime(CLOCK_REALTIME, &now);
		cmd->mtime_ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
	}
	return store_propose(n->store, n->term, cmd, res);
}

int node_read_barrier(struct kv_node *n, bool linearizable)
{
	/* One member: everything committed was applied before its writer
	 * was answered, so the local map is already linearizable. */
	(void)n;
	(void)linearizable;
	return 0;
}

struct store *node_store(struct kv_node *n)
{
	return n->store;
}

unsigned node_port(const struct kv_node *n)
{
	return node_http_port(n->http);
}

void node_watch(struct kv_node *n,
		void (*cb)(void *ctx, const char *key, size_t klen), void *ctx)
{
	pthread_mutex_lock(&n->watch_mu);
	n->watch_cb = cb;
	n->watch_ctx = ctx;
	pthread_mutex_unlock(&n->watch_mu);
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
	cJSON_AddNumberToObject(j, "id", (double)n->id);
	cJSON_AddStringToObject(j, "role", "leader");
	cJSON_AddNumberToObject(j, "term", (double)n->term);
	cJSON_AddNumberToObject(j, "leader", (double)n->id);
	cJSON_AddStringToObject(j, "leader_address", n->listen);
	cJSON_AddNumberToObject(j, "commit_index", (double)s.applied_index);
	cJSON_AddNumberToObject(j, "applied_index", (double)s.applied_index);
	cJSON_AddNumberToObject(j, "first_index", (double)s.first_index);
	cJSON_AddNumberToObject(j, "last_index", (double)s.last_index);
	cJSON_AddNumberToObject(j, "snapshot_index", (double)s.snapshot_index);
	cJSON_AddNumberToObject(j, "keys", (double)s.keys);
	cJSON_AddNumberToObject(j, "bytes", (double)s.bytes);
	cJSON_AddNumberToObject(j, "log_bytes", (double)s.log_bytes);
	cJSON_AddStringToObject(j, "version", KVFS_VERSION);
	cJSON_AddNumberToObject(j, "format_version", KV_FORMAT_VERSION);
	cJSON_AddNumberToObject(j, "uptime_s",
				(double)(now.tv_sec - n->started.tv_sec));
	if (s.failed)
		cJSON_AddStringToObject(j, "error", kv_strerror(s.failed));
	char *text = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	if (!text)
		return -ENOMEM;
	*out = text;
	return 0;
}
