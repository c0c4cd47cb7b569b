/* status.c - what the node publishes about itself, and /status.
 *
 * The node thread publishes its soft state (role, leader, term, commit,
 * last index) under st.mu at the end of a turn in which it changed, and
 * the configuration under mb.mu (members.c), so that readers never touch
 * the proposal path: node_leader, GET /status and GET /cluster/members
 * copy what they need under those small locks and render it outside
 * them, with the store's own figures and the peer senders' view of each
 * connection. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "node_int.h"

static const char *role_name(enum raft_role r);

/* The log line of a change of leader or term. */
static void say_leader(const struct kv_node *n, const struct node_soft *s)
{
	if (s->leader)
		kv_log(KV_LOG_INFO, "leader: node %llu in term %llu%s",
		       (unsigned long long)s->leader,
		       (unsigned long long)s->term,
		       s->leader == n->id ? " (this node)" : "");
	else
		kv_log(KV_LOG_INFO, "no leader in term %llu (this node: %s)",
		       (unsigned long long)s->term, role_name(s->role));
}

bool status_publish(struct kv_node *n)
{
	struct raft *r = n->raft;
	struct node_soft s = {.role = raft_role(r),
			      .leader = raft_leader(r),
			      .term = raft_term(r),
			      .commit = raft_commit_index(r),
			      .last_index = raft_last_index(r),
			      .mem_first = raft_snapshot_index(r) + 1,
			      .mem_bytes = raft_log_bytes(r)};
	const struct raft_server *ls =
	    raft_config_get(raft_config(r), s.leader);
	snprintf(s.leader_addr, sizeof(s.leader_addr), "%s",
		 ls ? ls->addr : "");
	struct node_soft *p = &n->pub_last;
	bool changed = s.leader != p->leader || s.term != p->term;
	if (changed && s.leader != 0)
		kv_metric_add(&node_m_leader_changes, 0, 1);
	if (changed)
		say_leader(n, &s);
	/* a node is candidate or leader in a new term only by its own
	 * election (a pre-vote that fails does not raise the term) */
	if (s.term > p->term &&
	    (s.role == RAFT_CANDIDATE || s.role == RAFT_LEADER))
		kv_metric_add(&node_m_elections, 0, 1);
	if (!changed && s.role == p->role && s.commit == p->commit &&
	    s.last_index == p->last_index && s.mem_first == p->mem_first &&
	    s.mem_bytes == p->mem_bytes &&
	    strcmp(s.leader_addr, p->leader_addr) == 0)
		return false;
	*p = s;
	pthread_mutex_lock(&n->st.mu);
	n->st.soft = s;
	pthread_mutex_unlock(&n->st.mu);
	return changed;
}

void status_set_fatal(struct kv_node *n, int err)
{
	atomic_store(&n->st.fatal, err);
}

uint64_t node_leader(struct kv_node *n, char *addr, size_t cap)
{
	pthread_mutex_lock(&n->st.mu);
	uint64_t id = n->st.soft.leader;
	if (addr && cap)
		snprintf(addr, cap, "%s", n->st.soft.leader_addr);
	pthread_mutex_unlock(&n->st.mu);
	return id;
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

/* The published members, and when each was last heard from. */
static unsigned members_copy(struct kv_node *n, struct node_member *m,
			     uint64_t *heard)
{
	pthread_mutex_lock(&n->mb.mu);
	unsigned count = n->mb.n;
	memcpy(m, n->mb.list, count * sizeof(m[0]));
	for (unsigned i = 0; heard && i < count; i++) {
		heard[i] = 0;
		for (size_t k = 0; k < RAFT_MAX_SERVERS; k++)
			if (n->mb.heard[k].id == m[i].id)
				heard[i] = n->mb.heard[k].ms;
	}
	pthread_mutex_unlock(&n->mb.mu);
	return count;
}

/* {"id","address","role"} of m, added to arr; NULL without memory. */
static cJSON *member_add(cJSON *arr, const struct node_member *m)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	cJSON_AddItemToArray(arr, o);
	cJSON_AddNumberToObject(o, "id", (double)m->id);
	cJSON_AddStringToObject(o, "address", m->addr);
	cJSON_AddStringToObject(o, "role",
				m->role == RAFT_LEARNER ? "learner" : "voter");
	return o;
}

/* The senders' view of the connection to a peer. */
static void peer_connection(cJSON *p, const struct peer_info *info,
			    uint64_t heard, uint64_t mono)
{
	/* a follower talks to the leader only: a peer it never sent to is
	 * neither reachable nor not */
	if (info->last_ok_ms || info->last_err_ms)
		cJSON_AddBoolToObject(p, "reachable", info->reachable);
	else
		cJSON_AddNullToObject(p, "reachable");
	cJSON_AddNumberToObject(p, "last_contact_ms",
				heard ? (double)(mono - heard) : -1.0);
	cJSON_AddNumberToObject(p, "queued", (double)info->queued);
	cJSON_AddNumberToObject(p, "sent", (double)info->sent);
	cJSON_AddNumberToObject(p, "frames", (double)info->batches);
	cJSON_AddNumberToObject(p, "bytes_sent", (double)info->bytes_sent);
	cJSON_AddNumberToObject(p, "frames_received",
				(double)info->frames_received);
	cJSON_AddNumberToObject(p, "bytes_received",
				(double)info->bytes_received);
	cJSON_AddNumberToObject(p, "dropped", (double)info->dropped);
	if (info->last_err[0])
		cJSON_AddStringToObject(p, "last_error", info->last_err);
}

/* The peers array of /status: membership and replication as published
 * by the node thread, the senders' view of each connection. */
static void status_peers(struct kv_node *n, cJSON *j)
{
	cJSON *arr = cJSON_AddArrayToObject(j, "peers");
	if (!arr)
		return;
	struct node_member m[RAFT_MAX_SERVERS];
	uint64_t heard[RAFT_MAX_SERVERS];
	unsigned count = members_copy(n, m, heard);
	uint64_t mono = kv_mono_ms();
	for (unsigned i = 0; i < count; i++) {
		if (m[i].id == n->id)
			continue;
		cJSON *p = member_add(arr, &m[i]);
		if (!p)
			return;
		struct peer_info info;
		if (peers_info(n->peers, m[i].id, &info) == 0)
			peer_connection(p, &info, heard[i], mono);
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
	struct node_member m[RAFT_MAX_SERVERS];
	unsigned count = members_copy(n, m, NULL);
	for (unsigned i = 0; i < count && member_add(arr, &m[i]); i++)
		;
	return arr;
}

/* j's text as *out (malloc'd); j is deleted. */
/* "node_thread_bytes": the per-byte work the node thread did so far
 * (kv_work): a big value's must be done where it arrives (issue 20), so
 * all but "written" stay small beside the bytes of values written. */
static void status_turn_work(struct kv_node *n, cJSON *j)
{
	static const char *const names[4] = {"checksummed", "hashed", "copied",
					     "written"};
	uint64_t w[4];
	turn_work(n, w);
	cJSON *o = cJSON_AddObjectToObject(j, "node_thread_bytes");
	for (int i = 0; o && i < 4; i++)
		cJSON_AddNumberToObject(o, names[i], (double)w[i]);
}

static int json_out(cJSON *j, char **out)
{
	char *text = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	if (!text)
		return -ENOMEM;
	*out = text;
	return 0;
}

int node_members_json(struct kv_node *n, char **out)
{
	cJSON *j = cJSON_CreateObject();
	if (!j)
		return -ENOMEM;
	cJSON_AddNumberToObject(j, "leader", (double)node_leader(n, NULL, 0));
	cJSON *mem = members_array(n);
	if (!mem) {
		cJSON_Delete(j);
		return -ENOMEM;
	}
	cJSON_AddItemToObject(j, "members", mem);
	return json_out(j, out);
}

/* "error": {"what","code","since","for_ms"} while this member cannot
 * write its log (writable.c) or has failed (fatal: the store's sticky
 * error or a hard state that could not be saved); absent otherwise. */
static void status_error(struct kv_node *n, cJSON *j, int fatal)
{
	pthread_mutex_lock(&n->st.mu);
	int err = n->st.write_err;
	uint64_t mono = n->st.write_err_mono_ms;
	int64_t wall = n->st.write_err_wall_ms;
	pthread_mutex_unlock(&n->st.mu);
	if (!err && !fatal)
		return;
	cJSON *e = cJSON_AddObjectToObject(j, "error");
	if (!e)
		return;
	char what[200];
	const char *code = "write_failed";
	if (err == -ENOSPC && !fatal) {
		code = "disk_full";
		snprintf(what, sizeof(what),
			 "the log cannot be written: the disk is full");
	} else if (err) {
		snprintf(what, sizeof(what), "the log cannot be written: %s",
			 kv_strerror(err));
	} else {
		code = "failed";
		snprintf(what, sizeof(what),
			 "this node stopped taking part: %s",
			 kv_strerror(fatal));
	}
	cJSON_AddStringToObject(e, "what", what);
	cJSON_AddStringToObject(e, "code", code);
	cJSON_AddBoolToObject(e, "candidate", false);
	if (err) {
		char iso[40];
		time_t secs = (time_t)(wall / 1000);
		struct tm tm;
		gmtime_r(&secs, &tm);
		size_t k = strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%S", &tm);
		snprintf(iso + k, sizeof(iso) - k, ".%03dZ",
			 (int)(wall % 1000));
		cJSON_AddStringToObject(e, "since", iso);
		cJSON_AddNumberToObject(e, "for_ms",
					(double)(kv_mono_ms() - mono));
	}
}

int node_status_json(struct kv_node *n, char **out)
{
	struct store_status s;
	int ret = store_status(n->store, &s);
	if (ret != 0)
		return ret;
	cJSON *j = cJSON_CreateObject();
	if (!j)
		return -ENOMEM;
	pthread_mutex_lock(&n->st.mu);
	struct node_soft soft = n->st.soft;
	pthread_mutex_unlock(&n->st.mu);
	int fatal = atomic_load(&n->st.fatal);
	cJSON_AddNumberToObject(j, "id", (double)n->id);
	cJSON_AddStringToObject(j, "cluster_id", n->cluster_id);
	cJSON_AddStringToObject(j, "role", role_name(soft.role));
	cJSON_AddNumberToObject(j, "term", (double)soft.term);
	cJSON_AddNumberToObject(j, "leader", (double)soft.leader);
	cJSON_AddStringToObject(j, "leader_address", soft.leader_addr);
	cJSON_AddNumberToObject(j, "commit_index", (double)soft.commit);
	cJSON_AddNumberToObject(j, "applied_index", (double)s.applied_index);
	cJSON_AddNumberToObject(j, "first_index", (double)s.first_index);
	cJSON_AddNumberToObject(j, "last_index", (double)soft.last_index);
	cJSON_AddNumberToObject(j, "durable_index", (double)s.last_index);
	cJSON_AddNumberToObject(j, "snapshot_index", (double)s.snapshot_index);
	cJSON_AddNumberToObject(j, "memory_first_index",
				(double)soft.mem_first);
	cJSON_AddNumberToObject(j, "memory_log_bytes", (double)soft.mem_bytes);
	cJSON_AddNumberToObject(j, "keys", (double)s.keys);
	cJSON_AddNumberToObject(j, "bytes", (double)s.bytes);
	cJSON_AddNumberToObject(j, "log_bytes", (double)s.log_bytes);
	cJSON_AddNumberToObject(j, "lock_sessions", (double)s.lock_sessions);
	cJSON_AddNumberToObject(j, "locks", (double)s.locks);
	cJSON_AddNumberToObject(j, "leases", (double)s.leases);
	cJSON_AddNumberToObject(j, "leased_keys", (double)s.leased_keys);
	char hash[17];
	snprintf(hash, sizeof(hash), "%016llx",
		 (unsigned long long)s.state_hash);
	cJSON_AddStringToObject(j, "state_hash", hash);
	cJSON_AddStringToObject(j, "version", KVFS_VERSION);
	cJSON_AddNumberToObject(j, "format_version", KV_FORMAT_VERSION);
	cJSON_AddNumberToObject(
	    j, "uptime_s", (double)((kv_mono_ms() - n->started_ms) / 1000));
	uint64_t max_turn_ns, slow_turns;
	turn_stats(n, &max_turn_ns, &slow_turns);
	cJSON_AddNumberToObject(j, "max_turn_ms",
				(double)(max_turn_ns / 1000000));
	cJSON_AddNumberToObject(j, "slow_turns", (double)slow_turns);
	status_turn_work(n, j);
	status_peers(n, j);
	snapshot_status(n, j);
	cJSON *mem = members_array(n);
	if (mem)
		cJSON_AddItemToObject(j, "members", mem);
	status_error(n, j, s.failed ? s.failed : fatal);
	return json_out(j, out);
}
