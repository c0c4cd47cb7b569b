/* locks.h - the lock table: sessions and the locks they hold (internal to
 * the store module).
 *
 * Part of the state machine beside the map (struct map holds one): the
 * lock, sess_open, sess_renew and sess_end commands change it, every node
 * applies them in log order with the same rules, so every node has the
 * same table, and two owners never both hold conflicting locks. It goes
 * into the db snapshot (db.c) and the state hash. The rules (conflicts,
 * POSIX splitting and merging, flock conversion, a session's end) are
 * locks.c's; what the mount makes of them is docs/mount.md's. */
#ifndef KV_STORE_LOCKS_H
#define KV_STORE_LOCKS_H

#include "store.h"

/* One granted lock: owner (sid, owner) holds type over [start, end] of
 * key, in the lock space of kind. */
struct lock_ent {
	char *key; /* malloc'd, NUL-terminated */
	size_t klen;
	uint64_t sid, owner;
	uint64_t start, end;
	uint32_t pid;
	enum kv_lock_type type; /* KV_LOCK_RD or KV_LOCK_WR */
	enum kv_lock_kind kind;
};

/* One live session: opened by node at entry sid, last heard of at rev
 * (the index of its last sess_open, sess_renew or lock command). */
struct lock_sess {
	uint64_t sid, node, rev;
};

/* The table. Locks in the order the rules leave them (the same on every
 * node); sessions in the order they were opened. */
struct locks {
	struct lock_ent *v;
	size_t n, cap;
	struct lock_sess *s;
	size_t ns, scap;
};

void locks_init(struct locks *l);
void locks_clear(struct locks *l); /* frees everything, back to empty */

/* Apply cmd (a lock or sess_* op) at index: res->err gets the outcome
 * (0; -ENOENT: no such session; -EAGAIN: a conflicting lock; KV_EPRECOND:
 * sess_end's if_rev is not the session's rev; -EINVAL). For each key
 * whose locks changed, changed(ctx, key, klen) (may be NULL). 0 or
 * -ENOMEM (nothing changed then). */
int locks_apply(struct locks *l, uint64_t index, const struct kv_cmd *cmd,
		struct kv_result *res,
		void (*changed)(void *ctx, const char *key, size_t klen),
		void *ctx);

/* The first lock that conflicts with owner (sid, owner) taking type
 * (KV_LOCK_RD or WR) over [start, end] of key in kind, or NULL. */
const struct lock_ent *locks_conflict(const struct locks *l, const char *key,
				      size_t klen, enum kv_lock_kind kind,
				      uint64_t sid, uint64_t owner,
				      enum kv_lock_type type, uint64_t start,
				      uint64_t end);
/* How many locks owner (sid, owner) holds on key in kind; owner
 * UINT64_MAX: any owner of sid; key NULL: any key. */
size_t locks_held(const struct locks *l, const char *key, size_t klen,
		  enum kv_lock_kind kind, uint64_t sid, uint64_t owner);
struct lock_sess *locks_session(const struct locks *l, uint64_t sid);

/* The snapshot's loading: add a session or a lock as written (no rules
 * checked but the shape: a lock's session must be loaded, its range
 * ordered, its type and kind known). 0, -EINVAL, -ENOMEM. */
int locks_load_session(struct locks *l, const struct lock_sess *s);
int locks_load_lock(struct locks *l, const struct lock_ent *e);

/* dst (uninitialized) becomes a copy of src: 0 or -ENOMEM (dst empty). */
int locks_copy(struct locks *dst, const struct locks *src);

/* A hash of the whole table, independent of the order of its entries;
 * 0 when empty. */
uint64_t locks_hash(const struct locks *l);

#endif
