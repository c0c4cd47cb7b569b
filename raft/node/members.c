/* members.c - membership as the node thread keeps it.
 *
 * The peer senders follow the core's configuration: one for every other
 * member, started, moved or stopped as entries change it, except that a
 * leader that removed itself keeps its sender until another node leads
 * (it needs our answers to commit its own removal). A leader promotes a
 * learner once it has caught up, and proposes the changes asked through
 * node_change_member (propose.c). The configuration and the leader's view
 * of each follower are published under mb.mu for /status and
 * /cluster/members (status.c). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "node_int.h"

/* Does c differ from the configuration the senders were set up for? */
static bool config_changed(const struct kv_node *n, const struct raft_config *c)
{
	const struct raft_config *s = &n->mb.synced;
	if (c->n != s->n)
		return true;
	for (unsigned i = 0; i < c->n; i++)
		if (c->servers[i].id != s->servers[i].id ||
		    strcmp(c->servers[i].addr, s->servers[i].addr) != 0)
			return true;
	return false;
}

/* Start and move senders for c's members, stop those of members gone. */
static void sync_peers(struct kv_node *n, const struct raft_config *c)
{
	for (unsigned i = 0; i < c->n; i++) {
		const struct raft_server *s = &c->servers[i];
		if (s->id == n->id)
			continue;
		struct peer_info info;
		if (peers_info(n->peers, s->id, &info) == 0) {
			if (strcmp(info.addr, s->addr) == 0)
				continue;
			peers_remove(n->peers, s->id);
		}
		int ret = peers_add(n->peers, s->id, s->addr);
		if (ret != 0)
			kv_log(KV_LOG_WARN, "cannot add peer %llu at %s: %s",
			       (unsigned long long)s->id, s->addr,
			       kv_strerror(ret));
	}
	/* Members that left: their senders stop. Not a leader that removed
	 * itself, though: it needs our answers to commit its removal (then
	 * it steps down); its sender stops once another node leads. */
	const struct raft_config *old = &n->mb.synced;
	for (unsigned i = 0; i < old->n; i++) {
		uint64_t id = old->servers[i].id;
		if (id == n->id || raft_config_get(c, id))
			continue;
		if (id == raft_leader(n->raft))
			n->mb.linger = id;
		else
			peers_remove(n->peers, id);
	}
}

void members_sync(struct kv_node *n)
{
	const struct raft_config *c = raft_config(n->raft);
	if (config_changed(n, c)) {
		sync_peers(n, c);
		n->mb.synced = *c;
	}
	if (n->mb.linger && n->mb.linger != raft_leader(n->raft) &&
	    !raft_config_get(c, n->mb.linger)) {
		peers_remove(n->peers, n->mb.linger);
		n->mb.linger = 0;
	}
}

void members_promote(struct kv_node *n)
{
	/* one change at a time; the core says EBUSY while one is under way */
	const struct raft_config *c = raft_config(n->raft);
	uint64_t commit = raft_commit_index(n->raft);
	for (unsigned i = 0; i < c->n; i++) {
		const struct raft_server *s = &c->servers[i];
		struct raft_progress_info pi;
		if (s->role != RAFT_LEARNER ||
		    raft_progress(n->raft, s->id, &pi) != 0 ||
		    !pi.recent_active || pi.match < commit)
			continue;
		uint64_t index;
		reads_solo_off(n); /* a second voter: reads need rounds */
		if (raft_change_membership(n->raft, RAFT_CONF_PROMOTE, s->id,
					   s->addr, &index) == 0)
			kv_log(KV_LOG_INFO,
			       "node %llu caught up (index %llu): "
			       "promoting it to voter",
			       (unsigned long long)s->id,
			       (unsigned long long)pi.match);
		return;
	}
}

int members_change(struct kv_node *n, struct node_call *c)
{
	const struct raft_config *conf = raft_config(n->raft);
	const struct raft_server *s = raft_config_get(conf, c->conf_id);
	if (c->conf_op == RAFT_CONF_ADD_LEARNER && s)
		return -EEXIST;
	if (c->conf_op == RAFT_CONF_REMOVE && !s)
		return -ENOENT;
	reads_solo_off(n); /* republished once the change is committed */
	int ret = raft_change_membership(n->raft, c->conf_op, c->conf_id,
					 c->conf_addr, &c->index);
	if (ret == 0)
		c->term = raft_term(n->raft);
	else if (ret == RAFT_ENOTLEADER)
		ret = NODE_RETRY;
	return ret;
}

void members_publish(struct kv_node *n)
{
	struct raft *r = n->raft;
	const struct raft_config *c = raft_config(r);
	bool leader = raft_role(r) == RAFT_LEADER;
	struct node_member m[RAFT_MAX_SERVERS];
	for (unsigned i = 0; i < c->n; i++) {
		m[i].id = c->servers[i].id;
		m[i].role = c->servers[i].role;
		memcpy(m[i].addr, c->servers[i].addr, sizeof(m[i].addr));
		m[i].has_progress = leader && m[i].id != n->id &&
				    raft_progress(r, m[i].id, &m[i].prog) == 0;
	}
	pthread_mutex_lock(&n->mb.mu);
	memcpy(n->mb.list, m, c->n * sizeof(m[0]));
	n->mb.n = c->n;
	pthread_mutex_unlock(&n->mb.mu);
}
