/* locks.c - the lock table's rules: sessions, conflicts, POSIX ranges.
 *
 * One flat array of granted locks and one of sessions: a node holds a
 * handful of locks, not millions, and a scan is simpler to get right than
 * an interval tree, and to keep identical on every node (removals keep the
 * order; nothing depends on addresses or on this node's clock). A lock
 * command is all or nothing: conflicting -> -EAGAIN and no change; memory
 * is found before anything changes. POSIX rules (IEEE 1003.1 fcntl):
 * an owner's own locks never conflict with it, a new lock replaces the
 * owner's locks over its range (splitting them), adjacent or overlapping
 * locks of one owner and type merge; a flock lock is the same over the
 * whole file, in a lock space of its own. Ending a session drops its locks.
 * locks.h says what the table is; docs/mount.md what the mount makes of
 * it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "locks.h"

void locks_init(struct locks *l)
{
	memset(l, 0, sizeof(*l));
}

void locks_clear(struct locks *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].key);
	free(l->v);
	free(l->s);
	locks_init(l);
}

struct lock_sess *locks_session(const struct locks *l, uint64_t sid)
{
	for (size_t i = 0; i < l->ns; i++)
		if (l->s[i].sid == sid)
			return &l->s[i];
	return NULL;
}

static bool same_key(const struct lock_ent *e, const char *key, size_t klen)
{
	return e->klen == klen && memcmp(e->key, key, klen) == 0;
}

static bool overlaps(const struct lock_ent *e, uint64_t start, uint64_t end)
{
	return e->start <= end && start <= e->end;
}

const struct lock_ent *locks_conflict(const struct locks *l, const char *key,
				      size_t klen, enum kv_lock_kind kind,
				      uint64_t sid, uint64_t owner,
				      enum kv_lock_type type, uint64_t start,
				      uint64_t end)
{
	if (type == KV_LOCK_UN)
		return NULL;
	for (size_t i = 0; i < l->n; i++) {
		const struct lock_ent *e = &l->v[i];
		if (e->kind != kind || !same_key(e, key, klen) ||
		    (e->sid == sid && e->owner == owner) ||
		    !overlaps(e, start, end))
			continue;
		if (e->type == KV_LOCK_WR || type == KV_LOCK_WR)
			return e;
	}
	return NULL;
}

size_t locks_held(const struct locks *l, const char *key, size_t klen,
		  enum kv_lock_kind kind, uint64_t sid, uint64_t owner)
{
	size_t n = 0;
	for (size_t i = 0; i < l->n; i++) {
		const struct lock_ent *e = &l->v[i];
		if (e->sid == sid &&
		    (owner == UINT64_MAX || e->owner == owner) &&
		    (key == NULL ||
		     (e->kind == kind && same_key(e, key, klen))))
			n++;
	}
	return n;
}

static int reserve(struct locks *l, size_t more)
{
	if (l->n + more <= l->cap)
		return 0;
	size_t nc = l->cap ? l->cap * 2 : 8;
	while (nc < l->n + more)
		nc *= 2;
	struct lock_ent *v = realloc(l->v, nc * sizeof(*v));
	if (v == NULL)
		return -ENOMEM;
	l->v = v;
	l->cap = nc;
	return 0;
}

/* Remove entry i, keeping the order of the others; its key is freed. */
static void remove_at(struct locks *l, size_t i)
{
	free(l->v[i].key);
	memmove(&l->v[i], &l->v[i + 1], (l->n - i - 1) * sizeof(l->v[0]));
	l->n--;
}

static char *key_dup(const char *key, size_t klen)
{
	char *k = malloc(klen + 1);
	if (k != NULL) {
		memcpy(k, key, klen);
		k[klen] = '\0';
	}
	return k;
}

/* Owner (sid, owner) of cmd now holds type over [start, end] (nothing
 * there for KV_LOCK_UN); the conflict check passed. */
static int set_range(struct locks *l, const struct kv_cmd *cmd, uint64_t start,
		     uint64_t end)
{
	/* At most two entries more: a split piece and the new lock. */
	char *k1 = key_dup(cmd->key, cmd->klen);
	char *k2 = key_dup(cmd->key, cmd->klen);
	if (k1 == NULL || k2 == NULL || reserve(l, 2) != 0) {
		free(k1);
		free(k2);
		return -ENOMEM;
	}
	for (size_t i = 0; i < l->n;) {
		struct lock_ent *e = &l->v[i];
		if (e->kind != cmd->lock_kind || e->sid != cmd->sid ||
		    e->owner != cmd->lock_owner ||
		    !same_key(e, cmd->key, cmd->klen) ||
		    !overlaps(e, start, end)) {
			i++;
			continue;
		}
		bool left = e->start<start, right = e->end> end;
		if (left && right) {
			/* at most once: the owner's locks do not overlap */
			struct lock_ent r = *e;
			r.key = k1;
			k1 = NULL;
			r.start = end + 1;
			e->end = start - 1;
			l->v[l->n++] = r;
			i++;
		} else if (left) {
			e->end = start - 1;
			i++;
		} else if (right) {
			e->start = end + 1;
			i++;
		} else {
			remove_at(l, i);
		}
	}
	if (cmd->lock_type != KV_LOCK_UN) {
		/* merge with the owner's adjacent locks of the same type */
		for (size_t i = 0; i < l->n;) {
			struct lock_ent *e = &l->v[i];
			bool mine = e->kind == cmd->lock_kind &&
				    e->sid == cmd->sid &&
				    e->owner == cmd->lock_owner &&
				    e->type == cmd->lock_type &&
				    same_key(e, cmd->key, cmd->klen);
			if (mine && e->end != KV_LOCK_EOF &&
			    e->end + 1 == start) {
				start = e->start;
				remove_at(l, i);
			} else if (mine && end != KV_LOCK_EOF &&
				   end + 1 == e->start) {
				end = e->end;
				remove_at(l, i);
			} else {
				i++;
			}
		}
		l->v[l->n++] = (struct lock_ent){
		    .key = k2,
		    .klen = cmd->klen,
		    .sid = cmd->sid,
		    .owner = cmd->lock_owner,
		    .start = start,
		    .end = end,
		    .pid = cmd->lock_pid,
		    .type = cmd->lock_type,
		    .kind = cmd->lock_kind,
		};
		k2 = NULL;
	}
	free(k1);
	free(k2);
	return 0;
}

static int apply_lock(struct locks *l, uint64_t index, const struct kv_cmd *cmd,
		      int *res)
{
	struct lock_sess *s = locks_session(l, cmd->sid);
	uint64_t start = cmd->lock_start, end = cmd->lock_end;

	if (s == NULL) {
		*res = -ENOENT;
		return 0;
	}
	s->rev = index; /* heard of, whatever the outcome */
	if (cmd->lock_type > KV_LOCK_WR || cmd->lock_kind < KV_LOCK_FLOCK ||
	    cmd->lock_kind > KV_LOCK_POSIX || start > end ||
	    end > KV_LOCK_EOF) {
		*res = -EINVAL;
		return 0;
	}
	if (cmd->lock_kind == KV_LOCK_FLOCK) {
		start = 0;
		end = KV_LOCK_EOF;
	}
	if (locks_conflict(l, cmd->key, cmd->klen, cmd->lock_kind, cmd->sid,
			   cmd->lock_owner, cmd->lock_type, start, end)) {
		*res = -EAGAIN;
		return 0;
	}
	return set_range(l, cmd, start, end);
}

static int add_session(struct locks *l, const struct lock_sess *s)
{
	if (l->ns == l->scap) {
		size_t nc = l->scap ? l->scap * 2 : 4;
		struct lock_sess *v = realloc(l->s, nc * sizeof(*v));
		if (v == NULL)
			return -ENOMEM;
		l->s = v;
		l->scap = nc;
	}
	l->s[l->ns++] = *s;
	return 0;
}

/* The session at s and every lock it holds go; changed hears of each
 * key that lost a lock. */
static void end_session(struct locks *l, struct lock_sess *s,
			void (*changed)(void *, const char *, size_t),
			void *ctx)
{
	uint64_t sid = s->sid;
	size_t si = (size_t)(s - l->s);

	memmove(&l->s[si], &l->s[si + 1], (l->ns - si - 1) * sizeof(*s));
	l->ns--;
	for (size_t i = 0; i < l->n;) {
		if (l->v[i].sid != sid) {
			i++;
			continue;
		}
		if (changed)
			changed(ctx, l->v[i].key, l->v[i].klen);
		remove_at(l, i);
	}
}

int locks_apply(struct locks *l, uint64_t index, const struct kv_cmd *cmd,
		struct kv_result *res,
		void (*changed)(void *ctx, const char *key, size_t klen),
		void *ctx)
{
	struct lock_sess *s;
	int r = 0, err = 0;

	switch (cmd->op) {
	case KV_OP_LOCK:
		err = apply_lock(l, index, cmd, &r);
		if (err == 0 && r == 0 && changed)
			changed(ctx, cmd->key, cmd->klen);
		break;
	case KV_OP_SESS_OPEN:
		err = add_session(l,
				  &(struct lock_sess){index, cmd->node, index});
		break;
	case KV_OP_SESS_RENEW:
		if ((s = locks_session(l, cmd->sid)) == NULL)
			r = -ENOENT;
		else
			s->rev = index;
		break;
	case KV_OP_SESS_END:
		if ((s = locks_session(l, cmd->sid)) == NULL)
			r = -ENOENT;
		else if (cmd->if_rev != 0 && s->rev != cmd->if_rev)
			r = KV_EPRECOND;
		else
			end_session(l, s, changed, ctx);
		break;
	default:
		r = -EINVAL;
	}
	res->err = err != 0 ? err : r;
	return err;
}

int locks_load_session(struct locks *l, const struct lock_sess *s)
{
	if (s->sid == 0 || s->rev < s->sid || locks_session(l, s->sid))
		return -EINVAL;
	return add_session(l, s);
}

int locks_load_lock(struct locks *l, const struct lock_ent *e)
{
	if (locks_session(l, e->sid) == NULL || e->start > e->end ||
	    e->end > KV_LOCK_EOF ||
	    (e->type != KV_LOCK_RD && e->type != KV_LOCK_WR) ||
	    (e->kind != KV_LOCK_FLOCK && e->kind != KV_LOCK_POSIX))
		return -EINVAL;
	char *k = key_dup(e->key, e->klen);
	if (k == NULL || reserve(l, 1) != 0) {
		free(k);
		return -ENOMEM;
	}
	l->v[l->n] = *e;
	l->v[l->n++].key = k;
	return 0;
}

int locks_copy(struct locks *dst, const struct locks *src)
{
	int ret = 0;

	locks_init(dst);
	for (size_t i = 0; ret == 0 && i < src->ns; i++)
		ret = add_session(dst, &src->s[i]);
	for (size_t i = 0; ret == 0 && i < src->n; i++)
		ret = locks_load_lock(dst, &src->v[i]);
	if (ret != 0) {
		locks_clear(dst);
		return -ENOMEM; /* a valid table: only memory can fail */
	}
	return 0;
}

/* ---- the hash ---- */

uint64_t locks_hash(const struct locks *l)
{
	uint64_t sum = 0;

	for (size_t i = 0; i < l->ns; i++) {
		uint64_t h = kv_hash_mix(0x5e55, l->s[i].sid);
		h = kv_hash_mix(h, l->s[i].node);
		sum += kv_hash_mix(h, l->s[i].rev);
	}
	for (size_t i = 0; i < l->n; i++) {
		const struct lock_ent *e = &l->v[i];
		uint64_t h = 0x10c4;
		for (size_t j = 0; j < e->klen; j++)
			h = kv_hash_mix(h, (unsigned char)e->key[j]);
		h = kv_hash_mix(h, e->klen);
		h = kv_hash_mix(h, e->sid);
		h = kv_hash_mix(h, e->owner);
		h = kv_hash_mix(h, e->start);
		h = kv_hash_mix(h, e->end);
		h = kv_hash_mix(h, e->pid);
		h = kv_hash_mix(h, (uint64_t)e->type << 8 | (uint64_t)e->kind);
		sum += h;
	}
	return sum;
}
