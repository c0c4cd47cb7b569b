/* membership.c - who is in the cluster: the configuration in effect, the
 * voters and their quorum, and the leader's progress per member (§4.1
 * diss., single-server changes).
 *
 * A server uses the latest configuration in its log, committed or not;
 * raft_conf_refresh finds it after any change to the log. The progress
 * array follows the configuration member for member, so a lookup is a
 * short scan. The text form of a configuration is config.c's. */
#include <string.h>

#include "raft_impl.h"

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

bool raft_is_voter(const struct raft *r, uint64_t id)
{
	const struct raft_server *s = raft_config_get(&r->conf, id);
	return s && s->role == RAFT_VOTER;
}

uint64_t raft_quorum(const struct raft *r)
{
	uint64_t n = 0;
	for (unsigned i = 0; i < r->conf.n; i++)
		if (r->conf.servers[i].role == RAFT_VOTER)
			n++;
	return n / 2 + 1;
}

struct raft_progress *raft_pr(struct raft *r, uint64_t id)
{
	for (size_t i = 0; i < r->n_prs; i++)
		if (r->prs[i].id == id)
			return &r->prs[i];
	return NULL;
}

/* Install c as the configuration in effect; the leader keeps the progress
 * of members that stay and starts probing new ones. */
void raft_set_conf(struct raft *r, const struct raft_config *c, uint64_t index)
{
	r->conf = *c;
	r->conf_index = index;
	struct raft_progress old[RAFT_MAX_SERVERS];
	size_t n_old = r->n_prs;
	memcpy(old, r->prs, n_old * sizeof(old[0]));
	struct raft_progress *prs = r->prs;
	uint64_t last = mlog_last_index(&r->log);
	for (unsigned i = 0; i < c->n; i++) {
		uint64_t id = c->servers[i].id;
		bool found = false;
		for (size_t j = 0; j < n_old; j++)
			if (old[j].id == id) {
				prs[i] = old[j];
				found = true;
			}
		if (!found) {
			progress_reset(&prs[i], id, last + 1);
			prs[i].recent_active = true;
			if (id == r->id)
				prs[i].match = min_u64(r->persisted, last);
		}
	}
	r->n_prs = c->n;
}

/* §4.1 diss.: "a server always uses the latest configuration in its log,
 * regardless of whether the entry is committed". */
void raft_conf_refresh(struct raft *r)
{
	for (uint64_t i = mlog_last_index(&r->log); i > r->log.snap_index;
	     i--) {
		const struct raft_entry *e = mlog_get(&r->log, i);
		struct raft_config c;
		if (e->type == RAFT_ENTRY_CONFIG &&
		    raft_config_decode(e->data, e->len, &c) == 0) {
			if (r->conf_index != i ||
			    memcmp(&c, &r->conf, sizeof(c)) != 0)
				raft_set_conf(r, &c, i);
			return;
		}
	}
	raft_set_conf(r, &r->snap_conf, r->log.snap_index);
}
