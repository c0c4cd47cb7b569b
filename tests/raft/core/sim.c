/* sim.c - the simulated cluster: fake network, fake disks, virtual time,
 * and the invariant checks (see sim.h).
 *
 * Each node follows raft.h's caller order exactly: snapshot, hard state
 * (synced at once), send, queue entries on a disk whose writes become
 * durable only at a random later sync (then raft_persisted), apply,
 * reads. Checks, after every update and every step: at most one leader per
 * term (election safety), every appended (index, term) carries the same
 * data and previous term everywhere (log matching, by induction), every
 * committed entry is in every later leader's log (leader completeness),
 * no index is committed or applied with two different contents (state
 * machine safety), and every completed read saw every write acknowledged
 * before it was issued. White-box: it reads the core through raft_impl.h. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raft_impl.h"
#include "sim.h"

struct sim_op {
	struct raft_entry *ents; /* truncate at ents[0].index, append */
	size_t n;
};

struct sim_disk {
	uint64_t term, vote;
	struct raft_snapshot_meta snap;
	uint64_t snap_hash;
	struct raft_entry *log; /* durable entries snap.index+1 .. */
	size_t n, cap;
	struct sim_op *ops; /* written, not yet synced: lost on a crash */
	size_t n_ops, cap_ops;
};

struct sim_node {
	uint64_t id;
	struct raft *r;
	struct sim_disk d;
	uint64_t applied, applied_term, hash;
	uint64_t commit_seen;
	enum raft_role last_role;
	uint64_t last_term;
	unsigned restarts;
	uint64_t abstain_until; /* given at every boot (sim_damage_last) */
	/* sim_set_stuck: its log writes never become durable, and it may
	 * not be a candidate (raft_set_candidacy), at every boot too */
	bool stuck;
};

struct sim_pkt {
	uint64_t at, seq;
	struct raft_message m;
};

struct proposal {
	unsigned node;
	uint64_t index, term;
};

struct pending_read {
	unsigned node;
	uint64_t ctx, min_index;
};

struct reg_slot {
	uint64_t index, term, data_hash, prev_term;
};

struct sim {
	unsigned n;
	struct sim_node nodes[SIM_MAX];
	bool cut[SIM_MAX][SIM_MAX];
	struct raft_options opt;
	struct sim_faults f;
	uint64_t now, rng, pkt_seq;
	struct sim_pkt *net;
	size_t n_net, cap_net;
	unsigned compact_every;
	/* invariant state */
	uint64_t *leader_of_term;
	size_t n_terms;
	uint64_t *committed_term, *applied_hash;
	size_t n_idx;
	struct reg_slot *reg;
	size_t cap_reg, n_reg;
	struct proposal *props;
	size_t n_props, cap_props;
	uint64_t max_acked;
	unsigned acked;
	struct pending_read *reads;
	size_t n_reads, cap_reads;
	unsigned reads_done;
	uint64_t next_cmd, next_ctx;
	char err[512];
};

#define GROW(arr, n, cap)                                                      \
	do {                                                                   \
		if ((n) == (cap)) {                                            \
			(cap) = (cap) ? (cap)*2 : 16;                          \
			(arr) = realloc((arr), (cap) * sizeof(*(arr)));        \
			if (!(arr))                                            \
				abort();                                       \
		}                                                              \
	} while (0)

static void fail(struct sim *s, const char *fmt, ...)
{
	if (s->err[0])
		return;
	va_list ap;
	va_start(ap, fmt);
	int k = snprintf(s->err, sizeof(s->err),
			 "t=%llums: ", (unsigned long long)s->now);
	vsnprintf(s->err + k, sizeof(s->err) - (size_t)k, fmt, ap);
	va_end(ap);
}

const char *sim_error(const struct sim *s)
{
	return s->err[0] ? s->err : NULL;
}

uint64_t sim_rand(struct sim *s, uint64_t n)
{
	uint64_t z = (s->rng += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	z ^= z >> 31;
	return n ? z % n : z;
}

static uint64_t fnv(uint64_t h, const void *p, size_t len)
{
	const unsigned char *b = p;
	if (!h)
		h = 1469598103934665603ull;
	for (size_t i = 0; i < len; i++)
		h = (h ^ b[i]) * 1099511628211ull;
	return h;
}

static uint64_t entry_hash(const struct raft_entry *e)
{
	uint64_t h = fnv(0, &e->type, sizeof(e->type));
	return fnv(h, e->data, e->len);
}

static void grow_u64(uint64_t **a, size_t *n, size_t need)
{
	if (need < *n)
		return;
	size_t cap = *n ? *n : 64;
	while (cap <= need)
		cap *= 2;
	*a = realloc(*a, cap * sizeof(**a));
	if (!*a)
		abort();
	memset(*a + *n, 0, (cap - *n) * sizeof(**a));
	*n = cap;
}

static void grow_idx(struct sim *s, uint64_t idx)
{
	if (idx < s->n_idx)
		return;
	size_t n1 = s->n_idx;
	grow_u64(&s->committed_term, &n1, idx);
	size_t n2 = s->n_idx;
	grow_u64(&s->applied_hash, &n2, idx);
	s->n_idx = n1;
}

/* ---- log matching registry: (index, term) -> (data, prev term) ---- */

static void reg_grow(struct sim *s);

static struct reg_slot *reg_find(struct sim *s, uint64_t index, uint64_t term)
{
	if (s->n_reg * 2 >= s->cap_reg)
		reg_grow(s);
	uint64_t h = (index * 0x9e3779b97f4a7c15ull) ^ (term * 31);
	for (size_t i = h & (s->cap_reg - 1);; i = (i + 1) & (s->cap_reg - 1)) {
		struct reg_slot *sl = &s->reg[i];
		if (sl->index == 0 || (sl->index == index && sl->term == term))
			return sl;
	}
}

static void reg_grow(struct sim *s)
{
	struct reg_slot *old = s->reg;
	size_t n = s->cap_reg;
	s->cap_reg = n ? n * 2 : 1024;
	s->reg = calloc(s->cap_reg, sizeof(*s->reg));
	if (!s->reg)
		abort();
	s->n_reg = 0;
	for (size_t i = 0; i < n; i++)
		if (old[i].index) {
			*reg_find(s, old[i].index, old[i].term) = old[i];
			s->n_reg++;
		}
	free(old);
}

static void reg_check(struct sim *s, unsigned i, const struct raft_entry *e,
		      uint64_t prev_term)
{
	struct reg_slot *sl = reg_find(s, e->index, e->term);
	uint64_t h = entry_hash(e);
	if (sl->index == 0) {
		*sl = (struct reg_slot){e->index, e->term, h, prev_term};
		s->n_reg++;
		return;
	}
	if (sl->data_hash != h || sl->prev_term != prev_term)
		fail(s,
		     "log matching: node %u entry %llu/term %llu differs "
		     "(prev term %llu vs %llu)",
		     i + 1, (unsigned long long)e->index,
		     (unsigned long long)e->term, (unsigned long long)prev_term,
		     (unsigned long long)sl->prev_term);
}

/* ---- invariants on one node ---- */

static void check_node(struct sim *s, unsigned i)
{
	struct sim_node *nd = &s->nodes[i];
	struct raft *r = nd->r;
	if (!r)
		return;
	if (r->role == RAFT_LEADER) {
		grow_u64(&s->leader_of_term, &s->n_terms, r->term);
		uint64_t *l = &s->leader_of_term[r->term];
		if (*l == 0)
			*l = nd->id;
		else if (*l != nd->id)
			fail(s,
			     "election safety: nodes %llu and %llu both "
			     "leaders of term %llu",
			     (unsigned long long)*l, (unsigned long long)nd->id,
			     (unsigned long long)r->term);
		if (nd->last_role != RAFT_LEADER || nd->last_term != r->term) {
			/* Leader completeness (§5.4): every committed entry
			 * is in the new leader's log. */
			for (uint64_t x = r->log.snap_index + 1;
			     x < s->n_idx && s->committed_term[x]; x++)
				if (mlog_term(&r->log, x) !=
				    s->committed_term[x])
					fail(s,
					     "leader completeness: leader %u "
					     "term %llu lacks committed entry "
					     "%llu",
					     i + 1, (unsigned long long)r->term,
					     (unsigned long long)x);
		}
	}
	nd->last_role = r->role;
	nd->last_term = r->term;
	if (r->commit > mlog_last_index(&r->log))
		fail(s, "node %u commit %llu past its log %llu", i + 1,
		     (unsigned long long)r->commit,
		     (unsigned long long)mlog_last_index(&r->log));
	for (uint64_t x = nd->commit_seen + 1; x <= r->commit; x++) {
		if (x <= r->log.snap_index)
			continue;
		grow_idx(s, x);
		uint64_t t = mlog_term(&r->log, x);
		if (s->committed_term[x] == 0)
			s->committed_term[x] = t;
		else if (s->committed_term[x] != t)
			fail(s,
			     "state machine safety: index %llu committed with "
			     "term %llu on node %u, %llu elsewhere",
			     (unsigned long long)x, (unsigned long long)t,
			     i + 1, (unsigned long long)s->committed_term[x]);
	}
	if (r->commit > nd->commit_seen)
		nd->commit_seen = r->commit;
}

/* ---- disk ---- */

static void disk_truncate(struct sim_disk *d, uint64_t from)
{
	while (d->n && d->log[d->n - 1].index >= from) {
		d->n--;
		free(d->log[d->n].data);
	}
}

static uint64_t disk_last(const struct sim_disk *d, uint64_t *term)
{
	if (d->n) {
		*term = d->log[d->n - 1].term;
		return d->log[d->n - 1].index;
	}
	*term = d->snap.term;
	return d->snap.index;
}

static void disk_drop_ops(struct sim_disk *d)
{
	for (size_t i = 0; i < d->n_ops; i++)
		mlog_entries_free(d->ops[i].ents, d->ops[i].n);
	d->n_ops = 0;
}

static void process(struct sim *s, unsigned i);

static void disk_sync(struct sim *s, unsigned i)
{
	struct sim_node *nd = &s->nodes[i];
	struct sim_disk *d = &nd->d;
	if (!d->n_ops)
		return;
	/* Sync a prefix of the queued writes (sometimes all). */
	size_t k = 1 + (size_t)sim_rand(s, d->n_ops);
	for (size_t o = 0; o < k; o++) {
		struct sim_op *op = &d->ops[o];
		uint64_t t, last = disk_last(d, &t);
		if (op->ents[0].index > last + 1 ||
		    op->ents[0].index <= d->snap.index)
			fail(s, "node %u persists entry %llu after %llu", i + 1,
			     (unsigned long long)op->ents[0].index,
			     (unsigned long long)last);
		disk_truncate(d, op->ents[0].index);
		for (size_t e = 0; e < op->n; e++) {
			GROW(d->log, d->n, d->cap);
			d->log[d->n++] = op->ents[e];
		}
		free(op->ents);
	}
	memmove(d->ops, d->ops + k, (d->n_ops - k) * sizeof(*d->ops));
	d->n_ops -= k;
	uint64_t t, last = disk_last(d, &t);
	raft_persisted(nd->r, last, t);
	process(s, i);
}

/* ---- network ---- */

static void copy_msg(struct raft_message *dst, const struct raft_message *m)
{
	*dst = *m;
	if (m->n_entries) {
		mlog_copy(
		    &(struct raft_log){.ents = m->entries,
				       .n = m->n_entries,
				       .snap_index = m->entries[0].index - 1},
		    m->entries[0].index, m->entries[0].index + m->n_entries - 1,
		    &dst->entries);
	}
}

static void net_send(struct sim *s, struct raft_message *m)
{
	/* Takes ownership of m's entries. */
	unsigned copies = 1;
	if (sim_rand(s, 100) < s->f.drop_pct)
		copies = 0;
	else if (sim_rand(s, 100) < s->f.dup_pct &&
		 m->type != RAFT_MSG_SNAPSHOT)
		copies = 2; /* a snapshot is a transfer, reported once */
	if (copies == 0 && m->type == RAFT_MSG_SNAPSHOT) {
		struct sim_node *from = &s->nodes[m->from - 1];
		raft_snapshot_done(from->r, m->to, false);
	}
	if (s->n_net > 20000)
		fail(s, "message storm: %zu messages in flight", s->n_net);
	for (unsigned c = 0; c < copies; c++) {
		GROW(s->net, s->n_net, s->cap_net);
		struct sim_pkt *p = &s->net[s->n_net++];
		unsigned span = s->f.max_delay - s->f.min_delay + 1;
		p->at = s->now + s->f.min_delay + sim_rand(s, span);
		p->seq = s->pkt_seq++;
		if (c == 0)
			p->m = *m;
		else
			copy_msg(&p->m, m);
	}
	if (copies == 0)
		raft_message_clear(m);
	m->type = RAFT_MSG_NONE;
	m->entries = NULL;
	m->n_entries = 0;
}

static void apply(struct sim *s, unsigned i, const struct raft_entry *e)
{
	struct sim_node *nd = &s->nodes[i];
	if (e->index != nd->applied + 1) {
		fail(s, "node %u applies %llu after %llu", i + 1,
		     (unsigned long long)e->index,
		     (unsigned long long)nd->applied);
		return;
	}
	nd->hash = fnv(nd->hash, &e->term, sizeof(e->term));
	nd->hash = fnv(nd->hash, &e->index, sizeof(e->index));
	nd->hash = fnv(nd->hash, e->data, e->len);
	nd->applied = e->index;
	nd->applied_term = e->term;
	grow_idx(s, e->index);
	uint64_t *h = &s->applied_hash[e->index];
	if (*h == 0)
		*h = nd->hash;
	else if (*h != nd->hash)
		fail(s, "state machine safety: node %u state differs at %llu",
		     i + 1, (unsigned long long)e->index);
	for (size_t p = 0; p < s->n_props; p++) {
		struct proposal *pr = &s->props[p];
		if (pr->node != i || pr->index != e->index)
			continue;
		if (pr->term == e->term) {
			s->acked++;
			if (e->index > s->max_acked)
				s->max_acked = e->index;
		}
		s->props[p] = s->props[--s->n_props];
		p--;
	}
}

static void compact(struct sim *s, unsigned i)
{
	struct sim_node *nd = &s->nodes[i];
	struct sim_disk *d = &nd->d;
	if (!s->compact_every || nd->applied < d->snap.index + s->compact_every)
		return;
	if (raft_compact(nd->r, nd->applied) != 0) {
		fail(s, "node %u cannot compact at %llu", i + 1,
		     (unsigned long long)nd->applied);
		return;
	}
	d->snap.index = nd->applied;
	d->snap.term = nd->applied_term;
	d->snap.conf = nd->r->snap_conf;
	d->snap_hash = nd->hash;
	size_t drop = 0;
	while (drop < d->n && d->log[drop].index <= d->snap.index)
		free(d->log[drop++].data);
	memmove(d->log, d->log + drop, (d->n - drop) * sizeof(*d->log));
	d->n -= drop;
}

static void process(struct sim *s, unsigned i)
{
	struct sim_node *nd = &s->nodes[i];
	while (nd->r && raft_has_update(nd->r)) {
		struct raft_update u;
		if (raft_update_get(nd->r, &u) != 0)
			abort();
		struct sim_disk *d = &nd->d;
		if (u.has_snapshot) {
			uint64_t x = u.snapshot.index;
			if (x >= s->n_idx || !s->applied_hash[x])
				fail(s,
				     "node %u installs unknown snapshot %llu",
				     i + 1, (unsigned long long)x);
			else {
				d->snap = u.snapshot;
				d->snap_hash = s->applied_hash[x];
				disk_truncate(d, 0);
				disk_drop_ops(d);
				nd->applied = x;
				nd->applied_term = u.snapshot.term;
				nd->hash = d->snap_hash;
				raft_persisted(nd->r, x, u.snapshot.term);
			}
		}
		if (u.hard_state_changed) {
			d->term = u.term;
			d->vote = u.vote;
		}
		for (size_t m = 0; m < u.n_msgs; m++)
			net_send(s, &u.msgs[m]);
		if (u.n_entries) {
			for (size_t e = 0; e < u.n_entries; e++)
				reg_check(
				    s, i, &u.entries[e],
				    e ? u.entries[e - 1].term
				      : mlog_term(&nd->r->log,
						  u.entries[0].index - 1));
			GROW(d->ops, d->n_ops, d->cap_ops);
			d->ops[d->n_ops++] =
			    (struct sim_op){u.entries, u.n_entries};
			u.entries = NULL;
			u.n_entries = 0;
		}
		for (size_t e = 0; e < u.n_committed; e++)
			apply(s, i, &u.committed[e]);
		for (size_t k = 0; k < u.n_reads; k++) {
			for (size_t p = 0; p < s->n_reads; p++) {
				struct pending_read *pr = &s->reads[p];
				if (pr->ctx != u.reads[k].ctx)
					continue;
				if (u.reads[k].err == 0) {
					if (u.reads[k].index < pr->min_index)
						fail(s,
						     "stale read on node %u: "
						     "index %llu < acked %llu",
						     i + 1,
						     (unsigned long long)u
							 .reads[k]
							 .index,
						     (unsigned long long)
							 pr->min_index);
					s->reads_done++;
				}
				s->reads[p] = s->reads[--s->n_reads];
				break;
			}
		}
		raft_update_free(&u);
		compact(s, i);
		check_node(s, i);
	}
}

/* ---- lifetime ---- */

static void boot(struct sim *s, unsigned i)
{
	struct sim_node *nd = &s->nodes[i];
	struct raft_options o = s->opt;
	o.id = nd->id;
	o.seed = s->opt.seed * 1000003u + i * 7919u + nd->restarts;
	struct raft_restore rs = {
	    .term = nd->d.term,
	    .vote = nd->d.vote,
	    .snapshot = nd->d.snap,
	    .entries = nd->d.log,
	    .n_entries = nd->d.n,
	    .applied = nd->d.snap.index,
	    .abstain_until = nd->abstain_until,
	};
	if (raft_new(&o, &rs, &nd->r) != 0)
		abort();
	if (nd->stuck)
		raft_set_candidacy(nd->r, false);
	nd->applied = nd->d.snap.index;
	nd->applied_term = nd->d.snap.term;
	nd->hash = nd->d.snap_hash;
	nd->commit_seen = nd->d.snap.index;
	nd->last_role = RAFT_FOLLOWER;
	nd->last_term = nd->d.term;
}

struct sim *sim_new_partial(unsigned n, unsigned voters, uint64_t seed,
			    const struct raft_options *o)
{
	struct sim *s = calloc(1, sizeof(*s));
	if (!s || n > SIM_MAX)
		abort();
	s->n = n;
	s->opt = o ? *o : (struct raft_options){0};
	s->opt.seed = seed;
	s->rng = seed * 0x2545f4914f6cdd1dull + 1;
	s->f = (struct sim_faults){0, 0, 1, 5, 50};
	struct raft_config c = {0};
	for (unsigned i = 0; i < voters; i++) {
		c.servers[c.n].id = i + 1;
		c.servers[c.n].role = RAFT_VOTER;
		snprintf(c.servers[c.n].addr, RAFT_ADDR_MAX, "10.0.0.%u:70",
			 i + 1);
		c.n++;
	}
	for (unsigned i = 0; i < n; i++) {
		s->nodes[i].id = i + 1;
		if (i < voters)
			s->nodes[i].d.snap.conf = c;
		boot(s, i);
	}
	return s;
}

struct sim *sim_new(unsigned n, uint64_t seed, const struct raft_options *o)
{
	return sim_new_partial(n, n, seed, o);
}

void sim_free(struct sim *s)
{
	for (unsigned i = 0; i < s->n; i++) {
		struct sim_node *nd = &s->nodes[i];
		raft_free(nd->r);
		disk_drop_ops(&nd->d);
		free(nd->d.ops);
		disk_truncate(&nd->d, 0);
		free(nd->d.log);
	}
	for (size_t p = 0; p < s->n_net; p++)
		raft_message_clear(&s->net[p].m);
	free(s->net);
	free(s->leader_of_term);
	free(s->committed_term);
	free(s->applied_hash);
	free(s->reg);
	free(s->props);
	free(s->reads);
	free(s);
}

void sim_set_faults(struct sim *s, const struct sim_faults *f)
{
	s->f = *f;
	if (s->f.max_delay < s->f.min_delay)
		s->f.max_delay = s->f.min_delay;
}

void sim_set_compact_every(struct sim *s, unsigned n)
{
	s->compact_every = n;
}

void sim_crash(struct sim *s, unsigned i)
{
	struct sim_node *nd = &s->nodes[i];
	if (!nd->r)
		return;
	raft_free(nd->r);
	nd->r = NULL;
	disk_drop_ops(&nd->d); /* unsynced writes are lost */
	for (size_t p = 0; p < s->n_props; p++)
		if (s->props[p].node == i)
			s->props[p--] = s->props[--s->n_props];
	for (size_t p = 0; p < s->n_reads; p++)
		if (s->reads[p].node == i)
			s->reads[p--] = s->reads[--s->n_reads];
}

void sim_restart(struct sim *s, unsigned i)
{
	struct sim_node *nd = &s->nodes[i];
	if (nd->r)
		return;
	nd->restarts++;
	boot(s, i);
}

uint64_t sim_damage_last(struct sim *s, unsigned i, bool abstain)
{
	struct sim_node *nd = &s->nodes[i];
	struct sim_disk *d = &nd->d;
	if (nd->r || d->n == 0)
		return 0;
	uint64_t index = d->log[d->n - 1].index;
	disk_truncate(d, index);
	if (abstain)
		nd->abstain_until = index;
	return index;
}

void sim_set_stuck(struct sim *s, unsigned i, bool stuck)
{
	struct sim_node *nd = &s->nodes[i];
	nd->stuck = stuck;
	if (nd->r) {
		raft_set_candidacy(nd->r, !stuck);
		process(s, i);
	}
}

uint64_t sim_durable_index(const struct sim *s, unsigned i)
{
	uint64_t term;
	return disk_last(&s->nodes[i].d, &term);
}

bool sim_up(const struct sim *s, unsigned i)
{
	return s->nodes[i].r != NULL;
}

void sim_cut(struct sim *s, unsigned i, unsigned j, bool cut)
{
	s->cut[i][j] = s->cut[j][i] = cut;
}

void sim_isolate(struct sim *s, unsigned i)
{
	for (unsigned j = 0; j < s->n; j++)
		if (j != i)
			sim_cut(s, i, j, true);
}

void sim_heal(struct sim *s)
{
	memset(s->cut, 0, sizeof(s->cut));
}

struct raft *sim_raft(struct sim *s, unsigned i)
{
	return s->nodes[i].r;
}

unsigned sim_size(const struct sim *s)
{
	return s->n;
}

uint64_t sim_now(const struct sim *s)
{
	return s->now;
}

int sim_leader(struct sim *s)
{
	int best = -1;
	for (unsigned i = 0; i < s->n; i++) {
		struct raft *r = s->nodes[i].r;
		if (r && r->role == RAFT_LEADER &&
		    (best < 0 || r->term > s->nodes[best].r->term))
			best = (int)i;
	}
	return best;
}

bool sim_has_leader(struct sim *s)
{
	return sim_leader(s) >= 0;
}

bool sim_propose(struct sim *s, unsigned i)
{
	struct raft *r = s->nodes[i].r;
	if (!r)
		return false;
	char buf[32];
	int len = snprintf(buf, sizeof(buf), "cmd-%llu",
			   (unsigned long long)++s->next_cmd);
	uint64_t index, term;
	if (raft_propose(r, RAFT_ENTRY_NORMAL, buf, (size_t)len, &index,
			 &term) != 0)
		return false;
	GROW(s->props, s->n_props, s->cap_props);
	s->props[s->n_props++] = (struct proposal){i, index, term};
	process(s, i);
	return true;
}

void sim_read(struct sim *s, unsigned i)
{
	struct raft *r = s->nodes[i].r;
	if (!r)
		return;
	uint64_t ctx = ++s->next_ctx;
	if (raft_read_index(r, ctx) != 0)
		return;
	GROW(s->reads, s->n_reads, s->cap_reads);
	s->reads[s->n_reads++] = (struct pending_read){i, ctx, s->max_acked};
	process(s, i);
}

int sim_change(struct sim *s, enum raft_conf_op op, uint64_t id)
{
	int l = sim_leader(s);
	if (l < 0)
		return RAFT_ENOTLEADER;
	int rc = raft_change_membership(s->nodes[l].r, op, id, "x:1", NULL);
	process(s, (unsigned)l);
	return rc;
}

static void deliver(struct sim *s)
{
	/* Deliver due packets in (time, seq) order. */
	for (;;) {
		size_t best = s->n_net;
		for (size_t p = 0; p < s->n_net; p++) {
			if (s->net[p].at > s->now)
				continue;
			if (best == s->n_net ||
			    s->net[p].at < s->net[best].at ||
			    (s->net[p].at == s->net[best].at &&
			     s->net[p].seq < s->net[best].seq))
				best = p;
		}
		if (best == s->n_net)
			return;
		struct raft_message m = s->net[best].m;
		s->net[best] = s->net[--s->n_net];
		unsigned from = (unsigned)m.from - 1, to = (unsigned)m.to - 1;
		bool ok = to < s->n && s->nodes[to].r && !s->cut[from][to];
		if (m.type == RAFT_MSG_SNAPSHOT && s->nodes[from].r) {
			raft_snapshot_done(s->nodes[from].r, m.to, ok);
			process(s, from);
		}
		if (ok) {
			raft_step(s->nodes[to].r, &m);
			process(s, to);
		}
		raft_message_clear(&m);
		if (s->err[0])
			return;
	}
}

static void step(struct sim *s)
{
	s->now++;
	deliver(s);
	for (unsigned i = 0; i < s->n; i++) {
		struct sim_node *nd = &s->nodes[i];
		if (!nd->r)
			continue;
		if ((s->now + i * 3) % 10 == 0) {
			raft_tick(nd->r);
			process(s, i);
		}
		if (nd->d.n_ops && !nd->stuck &&
		    sim_rand(s, 100) < s->f.sync_pct)
			disk_sync(s, i);
		check_node(s, i);
	}
}

bool sim_run(struct sim *s, unsigned ms)
{
	for (unsigned t = 0; t < ms && !s->err[0]; t++)
		step(s);
	return !s->err[0];
}

bool sim_run_until(struct sim *s, unsigned ms, bool (*pred)(struct sim *))
{
	for (unsigned t = 0; t < ms && !s->err[0]; t++) {
		if (pred(s))
			return true;
		step(s);
	}
	return !s->err[0] && pred(s);
}

bool sim_converged(struct sim *s)
{
	int l = sim_leader(s);
	if (l < 0)
		return false;
	struct raft *lr = s->nodes[l].r;
	if (lr->commit != mlog_last_index(&lr->log) ||
	    lr->commit < s->max_acked)
		return false;
	for (unsigned i = 0; i < s->n; i++) {
		struct sim_node *nd = &s->nodes[i];
		if (!nd->r)
			continue;
		if (raft_config_get(&lr->conf, nd->id) == NULL)
			continue; /* removed */
		if (nd->applied != lr->commit)
			return false;
	}
	return true;
}

unsigned sim_acked(const struct sim *s)
{
	return s->acked;
}

unsigned sim_reads_done(const struct sim *s)
{
	return s->reads_done;
}

uint64_t sim_applied(const struct sim *s, unsigned i)
{
	return s->nodes[i].applied;
}

uint64_t sim_terms_seen(const struct sim *s)
{
	uint64_t t = 0;
	for (unsigned i = 0; i < s->n; i++)
		if (s->nodes[i].r && s->nodes[i].r->term > t)
			t = s->nodes[i].r->term;
	return t;
}
