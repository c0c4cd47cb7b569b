/* membership.c - who is in the cluster: the configuration in effect, the
 * voters and their quorum, and the leader's progress per member (§4.1
 * diss., single-server changes).
 *
 * A server uses the latest configuration in its log, committed or not;
 * memb_conf_refresh finds it after any change to the log. The progress
 * array follows the configuration member for member, so a lookup is a
 * short scan. The text form of a configuration is config.c's. */
#include <assert.h>
#include <string.h>

#include "membership.h"
#include "raft_impl.h"

static unsigned count_voters(const struct raft_config *c)
{
	unsigned n = 0;
	for (unsigned i = 0; i < c->n; i++)
		n += c->servers[i].role == RAFT_VOTER;
	return n;
}

bool memb_is_voter(const struct raft *r, uint64_t id)
{
	const struct raft_server *s = raft_config_get(&r->conf, id);
	return s && s->role == RAFT_VOTER;
}

uint64_t memb_quorum(const struct raft *r)
{
	return count_voters(&r->conf) / 2 + 1;
}

uint64_t memb_quorum_value(const struct raft *r,
			   uint64_t (*value)(const struct raft *r,
					     const struct raft_progress *p))
{
	uint64_t v[RAFT_MAX_SERVERS];
	unsigned n = 0;
	for (size_t i = 0; i < r->n_prs; i++)
		if (memb_is_voter(r, r->prs[i].id))
			v[n++] = value(r, &r->prs[i]);
	if (n == 0)
		return 0;
	/* Sort descending (n <= 16): the quorum-th value is reached by a
	 * quorum. */
	for (unsigned i = 1; i < n; i++)
		for (unsigned j = i; j > 0 && v[j] > v[j - 1]; j--) {
			uint64_t t = v[j];
			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	return v[memb_quorum(r) - 1];
}

struct raft_progress *memb_progress(struct raft *r, uint64_t id)
{
	for (size_t i = 0; i < r->n_prs; i++)
		if (r->prs[i].id == id)
			return &r->prs[i];
	return NULL;
}

void memb_set_conf(struct raft *r, const struct raft_config *c, uint64_t index)
{
	assert(c->n <= RAFT_MAX_SERVERS);
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
				prs[i].match = u64_min(r->persisted, last);
		}
	}
	r->n_prs = c->n;
}

uint64_t memb_conf_at(const struct raft *r, uint64_t index,
		      struct raft_config *out)
{
	assert(index >= r->log.snap_index && index <= mlog_last_index(&r->log));
	for (uint64_t i = index; i > r->log.snap_index; i--) {
		const struct raft_entry *e = mlog_get(&r->log, i);
		struct raft_config c;
		if (e->type == RAFT_ENTRY_CONFIG &&
		    raft_config_decode(e->data, e->len, &c) == 0) {
			*out = c;
			return i;
		}
	}
	*out = r->snap_conf;
	return r->log.snap_index;
}

void memb_conf_refresh(struct raft *r)
{
	struct raft_config c;
	uint64_t at = memb_conf_at(r, mlog_last_index(&r->log), &c);
	/* Already in effect: nothing to redo. */
	if (at > r->log.snap_index && at == r->conf_index &&
	    memcmp(&c, &r->conf, sizeof(c)) == 0)
		return;
	memb_set_conf(r, &c, at);
}

int memb_conf_change(const struct raft_config *cur, enum raft_conf_op op,
		     uint64_t id, const char *addr, struct raft_config *out)
{
	struct raft_config c = *cur;
	struct raft_server *s = NULL;
	for (unsigned i = 0; i < c.n; i++)
		if (c.servers[i].id == id)
			s = &c.servers[i];
	if (id == RAFT_NONE)
		return RAFT_EINVAL;
	switch (op) {
	case RAFT_CONF_ADD_LEARNER:
		if (s || c.n == RAFT_MAX_SERVERS)
			return RAFT_EINVAL;
		s = &c.servers[c.n++];
		memset(s, 0, sizeof(*s));
		s->id = id;
		s->role = RAFT_LEARNER;
		if (addr) {
			if (strlen(addr) >= RAFT_ADDR_MAX)
				return RAFT_EINVAL;
			strcpy(s->addr, addr);
		}
		break;
	case RAFT_CONF_PROMOTE:
		if (!s || s->role != RAFT_LEARNER)
			return RAFT_EINVAL;
		s->role = RAFT_VOTER;
		break;
	case RAFT_CONF_REMOVE:
		if (!s)
			return RAFT_EINVAL;
		*s = c.servers[--c.n];
		break;
	default:
		return RAFT_EINVAL;
	}
	/* Removing the last voter: nobody could ever commit again. */
	if (count_voters(&c) == 0)
		return RAFT_EINVAL;
	*out = c;
	return 0;
}
