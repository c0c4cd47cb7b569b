/* node.c - opening and closing a node.
 *
 * node_open checks the options (every address through kv_addr_parse,
 * before anything touches the data directory), opens and recovers the
 * store, joins a cluster if asked, loads the directory's identity
 * (identity.c), builds the Raft core from what the store recovered,
 * starts the peer senders and then the node thread (loop.c). node_stop
 * ends the thread and answers every call it held; node_close frees the
 * rest, in reverse order. The HTTP listener is started and stopped by the
 * caller (fs/main.c), between the two. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static void node_on_changes_done(void *ctx)
{
	struct kv_node *n = ctx;
	pthread_mutex_lock(&n->watch_mu);
	if (n->watch_done)
		n->watch_done(n->watch_ctx);
	pthread_mutex_unlock(&n->watch_mu);
}

/* --join: a data directory without an identity asks the cluster to add
 * this node (as a learner, promoted once caught up); one with an identity
 * already joined (or bootstrapped) and just restarts. */
static int join_cluster(struct kv_node *n, const struct node_options *opt,
			struct join_answer *ans, bool *joining, char **errmsg)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/cluster.json", opt->data_dir);
	if (access(path, F_OK) == 0)
		return 0;
	if (opt->peers && *opt->peers) {
		*errmsg = node_msgf("give --join or --peers, not both");
		return -EINVAL;
	}
	if (!kv_addr_valid(n->listen)) {
		*errmsg = node_msgf("--join needs the address the members "
				    "will dial as --listen (HOST:PORT, port "
				    "1-65535), not \"%s\"",
				    n->listen);
		return -EINVAL;
	}
	kv_log(KV_LOG_INFO, "asking %s to add node %llu at %s", opt->join,
	       (unsigned long long)n->id, n->listen);
	char *why = NULL;
	struct cluster_auth auth = identity_auth(n);
	int ret =
	    cluster_join(opt->join, &auth, n->id, n->listen, 60000, ans, &why);
	if (ret != 0) {
		*errmsg = node_msgf("cannot join through %s: %s", opt->join,
				    why ? why : kv_strerror(ret));
		free(why);
		return ret;
	}
	*joining = true;
	return 0;
}

/* A node that just joined knows no member until the leader's log or
 * snapshot reaches it, but must answer the leader meanwhile: start
 * senders for the members the cluster lists now (members_sync keeps them
 * in step with the configuration once it arrives). */
static void add_join_peers(struct kv_node *n, const char *member)
{
	long status = 0;
	char *body = NULL, *why = NULL;
	struct cluster_auth auth = identity_auth(n);
	if (cluster_http(member, &auth, "GET", "/cluster/members", NULL, 0,
			 5000, &status, &body, NULL, NULL, &why) != 0 ||
	    status != 200) {
		kv_log(KV_LOG_WARN,
		       "cannot list the members through %s (%s); "
		       "waiting for the leader's configuration",
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
		    kv_addr_valid(addr->valuestring))
			peers_add(n->peers, v, addr->valuestring);
	}
	cJSON_Delete(j);
	free(body);
}

/* The core cannot include kv.h; its not-leader code is ours by value. */
_Static_assert(RAFT_ENOTLEADER == KV_ENOTLEADER,
	       "raft.h and kv.h disagree on the not-leader code");

/* Does e's data lie in the store's block of the recovered entries? */
static bool in_block(const struct store_entry *e)
{
	return e->type != STORE_ENTRY_CONFIG && e->len;
}

/* One foreign buffer for the entries' block: a reference for each entry
 * in it and one the node keeps (n->restored), which holds the block for
 * store_recovery_drop. NULL if there is nothing to share or no memory
 * (the core then copies). */
static struct raft_buf *shared_block(struct kv_node *n,
				     const struct store_recovery *rec)
{
	size_t refs = 0;
	for (size_t i = 0; i < rec->n; i++)
		refs += in_block(&rec->entries[i]);
	void *arena = refs ? store_recovery_hold(rec) : NULL;
	if (!arena)
		return NULL;
	struct raft_buf *b =
	    raft_buf_foreign(refs + 1, store_recovery_drop, arena);
	if (!b) {
		store_recovery_drop(arena);
		return NULL;
	}
	n->restored = b;
	n->restored_last = rec->entries[rec->n - 1].index;
	return b;
}

/* The Raft core from what the store recovered. */
static int core_open(struct kv_node *n, const struct raft_config *boot,
		     char **errmsg)
{
	struct store_recovery rec;
	int ret = store_recover(n->store, &rec);
	if (ret != 0) {
		*errmsg =
		    node_msgf("cannot read the log back: %s", kv_strerror(ret));
		return ret;
	}
	ret = node_abstain_open(n, rec.lost_index, errmsg);
	if (ret != 0) {
		store_recovery_free(&rec);
		return ret;
	}
	struct raft_entry *ents = calloc(rec.n ? rec.n : 1, sizeof(*ents));
	if (!ents) {
		store_recovery_free(&rec);
		return -ENOMEM;
	}
	/* the recovery's entries' data is the store's: one block, read by
	 * its replay's decoding thread too (store_recovery). The core's log
	 * shares it, by references to one foreign buffer, instead of copying
	 * every entry (0.15 s and as many bytes again as the log after the
	 * db, at 700,000 entries); the configurations, malloc'd apart, it
	 * copies. Once applied, the trail of them gets bytes of its own and
	 * the block goes (trail.c). */
	struct raft_buf *shared = shared_block(n, &rec);
	for (size_t i = 0; i < rec.n; i++)
		ents[i] = (struct raft_entry){
		    .index = rec.entries[i].index,
		    .term = rec.entries[i].term,
		    .type = (enum raft_entry_type)rec.entries[i].type,
		    .data = (void *)rec.entries[i].data,
		    .len = rec.entries[i].len,
		    .buf = shared && in_block(&rec.entries[i]) ? shared : NULL};
	struct raft_restore rs = {.term = rec.term,
				  .vote = rec.vote,
				  .entries = ents,
				  .n_entries = rec.n,
				  .applied = rec.snap_index,
				  .abstain_until = n->abstain_until};
	rs.snapshot.index = rec.snap_index;
	rs.snapshot.term = rec.snap_term;
	rs.snapshot.conf = *boot;
	if (rec.conf && raft_config_decode(rec.conf, rec.conf_len,
					   &rs.snapshot.conf) != 0) {
		*errmsg = node_msgf("the db's configuration is damaged");
		ret = KV_ECORRUPT;
		goto out;
	}
	struct raft_options ro = {.id = n->id,
				  .election_ticks = NODE_ELECTION,
				  .heartbeat_ticks = NODE_HEARTBEAT,
				  .resend_bytes_per_heartbeat =
				      NODE_RESEND_BYTES_PER_HEARTBEAT,
				  /* update_process is done with them
				     before it calls the core again */
				  .borrow_entries = true,
				  .seed = (uint64_t)kv_wall_ns() ^
					  ((uint64_t)getpid() << 32) ^ n->id};
	ret = raft_new(&ro, &rs, &n->raft);
	if (ret != 0)
		*errmsg = node_msgf("cannot start Raft on the recovered log "
				    "(term %llu, db at %llu, %zu entries): %s",
				    (unsigned long long)rec.term,
				    (unsigned long long)rec.snap_index, rec.n,
				    kv_strerror(ret));
out:
	for (size_t i = 0; i < rec.n; i++) /* the core took its own */
		if (ents[i].buf)
			raft_buf_unref(ents[i].buf);
	if (ret != 0 && n->restored) {
		raft_buf_unref(n->restored);
		n->restored = NULL;
	}
	free(ents);
	store_recovery_free(&rec);
	return ret;
}

/* The options alone: the id, --listen (port 0 picks one) and the members
 * --peers gives, or this node alone at --listen. */
static int check_options(const struct node_options *opt,
			 struct raft_config *given, char **errmsg)
{
	if (opt->id == 0 || opt->id > PEER_INT_MAX) {
		*errmsg = node_msgf("--id must be a number from 1");
		return -EINVAL;
	}
	char host[KV_ADDR_MAX + 1];
	const char *why;
	if (opt->listen && kv_addr_parse(opt->listen, true, host, sizeof(host),
					 NULL, &why) != 0) {
		*errmsg = node_msgf("bad --listen address \"%.80s\": %s",
				    opt->listen, why);
		return -EINVAL;
	}
	if (opt->join && !kv_addr_valid(opt->join)) {
		*errmsg = node_msgf("bad --join address \"%.80s\": expected "
				    "HOST:PORT, port 1-65535",
				    opt->join);
		return -EINVAL;
	}
	if (opt->peers && *opt->peers)
		return identity_parse_peers(opt->peers, opt->id, false,
					    "--peers", given, errmsg);
	char one[RAFT_ADDR_MAX + 32];
	snprintf(one, sizeof(one), "%llu=%s", (unsigned long long)opt->id,
		 opt->listen ? opt->listen : "127.0.0.1:7001");
	return identity_parse_peers(one, opt->id, true, "--listen", given,
				    errmsg);
}

static struct kv_node *node_alloc(const struct node_options *opt)
{
	struct kv_node *n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	n->id = opt->id;
	n->write_timeout_ms =
	    opt->write_timeout_ms > 0 ? opt->write_timeout_ms : 5000;
	n->started_ms = kv_mono_ms();
	/* ReadIndex rounds and forwarded batches count up from the wall
	 * clock, so that answers meant for an earlier process match none */
	uint64_t base = (uint64_t)kv_wall_ns() / 1000;
	n->rd.issued = n->rd.answered = n->rd.need = n->props.fwd_seq = base;
	atomic_init(&n->stopping, false);
	atomic_init(&n->st.fatal, 0);
	pthread_mutex_init(&n->in.mu, NULL);
	kv_cond_init(&n->in.cond);
	pthread_mutex_init(&n->rd.mu, NULL);
	pthread_mutex_init(&n->st.mu, NULL);
	pthread_mutex_init(&n->mb.mu, NULL);
	pthread_mutex_init(&n->snap.mu, NULL);
	pthread_mutex_init(&n->watch_mu, NULL);
	pthread_mutex_init(&n->dec.mu, NULL);
	return n;
}

static void node_free(struct kv_node *n)
{
	decoded_clear(n);
	pthread_mutex_destroy(&n->dec.mu);
	pthread_mutex_destroy(&n->watch_mu);
	pthread_mutex_destroy(&n->snap.mu);
	pthread_mutex_destroy(&n->mb.mu);
	pthread_mutex_destroy(&n->st.mu);
	pthread_mutex_destroy(&n->rd.mu);
	pthread_cond_destroy(&n->in.cond);
	pthread_mutex_destroy(&n->in.mu);
	free(n->listen);
	free(n->data_dir);
	free(n);
}

/* The store, with what to do about a damaged data directory. */
static int store_start(struct kv_node *n, const struct node_options *opt,
		       char **errmsg)
{
	struct store_options so = {.dir = opt->data_dir,
				   .snapshot_every = opt->snapshot_every,
				   .snapshot_bytes = opt->snapshot_bytes,
				   .segment_size = opt->segment_size,
				   .history_events = opt->watch_history,
				   .on_change = node_on_change,
				   .on_changes_done = node_on_changes_done,
				   .on_change_ctx = n,
				   .raft = &node_store_ops,
				   .raft_ctx = n};
	int ret = store_open(&so, &n->store, errmsg);
	if (ret == KV_ECORRUPT || ret == KV_EVERSION) {
		char *m = node_msgf(
		    "%s\nThe data directory %s cannot be used. If the other "
		    "members are healthy, move it aside (keep it for "
		    "inspection) and start this member again with the same "
		    "--id and --peers on an empty directory: it catches up "
		    "from the leader by snapshot.",
		    *errmsg ? *errmsg : kv_strerror(ret), opt->data_dir);
		if (m) {
			free(*errmsg);
			*errmsg = m;
		}
	}
	return ret;
}

/* --restore: the empty data directory seeded from the backup, before the
 * store opens it; a new cluster is then bootstrapped on it. */
static int restore_backup(const struct node_options *opt, char **errmsg)
{
	if (opt->join) {
		*errmsg = node_msgf("--restore starts a new cluster; it does "
				    "not go with --join (a joining member "
				    "gets the data from the leader)");
		return -EINVAL;
	}
	uint64_t index = 0;
	int ret = store_restore(opt->data_dir, opt->restore, &index, errmsg);
	if (ret == 0)
		kv_log(KV_LOG_INFO,
		       "restored %s (revision %llu) into %s: a new "
		       "cluster starts from it",
		       opt->restore, (unsigned long long)index, opt->data_dir);
	return ret;
}

int node_open(const struct node_options *opt, struct kv_node **out,
	      char **errmsg)
{
	node_metrics_register();
	kv_log_set_node(opt->id);
	*errmsg = NULL;
	struct raft_config given, boot;
	int ret = check_options(opt, &given, errmsg);
	if (ret != 0)
		return ret;
	struct kv_node *n = node_alloc(opt);
	if (!n)
		return -ENOMEM;
	const char *self = raft_config_get(&given, n->id)->addr;
	n->listen = strdup(opt->listen ? opt->listen : self);
	n->data_dir = strdup(opt->data_dir);
	ret = !n->listen || !n->data_dir ? -ENOMEM : 0;
	bool have_token = opt->cluster_token_file != NULL;
	if (ret == 0)
		ret = identity_tokens_open(n, opt, &given, errmsg);
	if (ret == 0 && opt->restore)
		ret = restore_backup(opt, errmsg);
	if (ret == 0)
		ret = store_start(n, opt, errmsg);
	if (ret != 0)
		goto err_free;
	struct join_answer ans;
	bool joining = false;
	if (opt->join) {
		ret = join_cluster(n, opt, &ans, &joining, errmsg);
		if (ret != 0)
			goto err_store;
	}
	ret = identity_load(n, opt->peers && *opt->peers, &given, have_token,
			    joining ? &ans : NULL, &boot, errmsg);
	if (ret == 0)
		ret = core_open(n, &boot, errmsg);
	if (ret != 0)
		goto err_store;
	struct peer_options popt = {
	    .unsent = node_unsent, .unsent_arg = n, .tls = n->tls};
	ret = peers_new(n->cluster_id, n->tok.present, n->id, &popt, &n->peers);
	if (ret != 0) {
		*errmsg = node_msgf("cannot start the peer senders: %s",
				    kv_strerror(ret));
		goto err_raft;
	}
	if (joining)
		add_join_peers(n, opt->join);
	ret = snapxfer_recv_new(opt->data_dir, &n->snap.recv);
	if (ret != 0) {
		*errmsg = node_msgf("cannot prepare for snapshots in %s: %s",
				    opt->data_dir, kv_strerror(ret));
		goto err_peers;
	}
	ret = node_loop_start(n);
	if (ret != 0) {
		*errmsg = node_msgf("cannot start the node thread: %s",
				    kv_strerror(ret));
		goto err_recv;
	}
	*out = n;
	return 0;

err_recv:
	snapxfer_recv_free(n->snap.recv);
err_peers:
	peers_free(n->peers);
err_raft:
	raft_free(n->raft);
	raft_buf_unref(n->restored);
err_store:
	store_close(n->store);
err_free:
	node_free(n);
	return ret;
}

void node_stop(struct kv_node *n)
{
	/* No more Raft: every call the node held is answered
	 * (KV_ESHUTDOWN), and new ones are refused, so that no request of
	 * the listener is left waiting when it stops (its suspended
	 * connections must all be resumed). */
	node_loop_stop(n);
}

void node_close(struct kv_node *n)
{
	if (!n)
		return;
	/* Then the senders; the store finishes what it was handed. */
	node_stop(n);
	snapxfer_recv_free(n->snap.recv);
	peers_free(n->peers);
	store_close(n->store);
	raft_free(n->raft);
	raft_buf_unref(n->restored); /* the restart's block, if held */
	node_free(n);
}

const char *node_listen(const struct kv_node *n)
{
	return n->listen;
}

const char *node_data_dir(const struct kv_node *n)
{
	return n->data_dir;
}

const char *node_cluster_id(const struct kv_node *n)
{
	return n->cluster_id;
}

const char *node_token(const struct kv_node *n)
{
	return n->tok.present;
}

uint64_t node_id(const struct kv_node *n)
{
	return n->id;
}

struct store *node_store(struct kv_node *n)
{
	return n->store;
}

void node_watch(struct kv_node *n,
		void (*cb)(void *ctx, const char *key, size_t klen),
		void (*done)(void *ctx), void *ctx)
{
	pthread_mutex_lock(&n->watch_mu);
	n->watch_cb = cb;
	n->watch_done = done;
	n->watch_ctx = ctx;
	pthread_mutex_unlock(&n->watch_mu);
}
