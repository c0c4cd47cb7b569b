/* apply_int.h - what the files of the state machine share (internal to
 * the store module): apply.c has the rules of every op but rename, which
 * is apply_rename.c and add apply_add.c; all change the map through map_impl.h
 * and share the helpers of apply_common.c, declared first. */
#ifndef KV_STORE_APPLY_INT_H
#define KV_STORE_APPLY_INT_H

#include "map_impl.h"

typedef void (*change_fn)(void *ctx, const char *key, size_t klen);

/* fn(ctx, key, klen) if fn is set. */
void apply_changed(change_fn fn, void *ctx, const char *key, size_t klen);
/* When cmd's change was made (docs/map-and-db.md): its "t", else for put
 * and mkdir its mtime, else 0 (then no parent's times change). */
int64_t apply_time(const struct kv_cmd *cmd);
/* rec takes old's kind, mode, owner, create revision, times and lease
 * (rec made with a lease slot if old is on a lease, kv_rec_new_l). */
void apply_same_attrs(struct kv_rec *rec, const struct kv_rec *old);
/* A new record for key with old's value, attributes, times and lease,
 * changed at index (mod_rev), with room for a lease id if lease_slot or
 * old has one; NULL without memory. */
struct kv_rec *apply_rec_copy(const struct kv_rec *old, const char *key,
			      size_t klen, uint64_t index, bool lease_slot);

/* A parent directory's new times, made before the tree changes (it may
 * fail) and put in place after (it cannot). */
struct apply_touch {
	struct kv_rec *rec; /* NULL: nothing to change */
};
/* The parent of key gets mtime and ctime t (and mod_rev index) if it has
 * a record of its own (an explicit directory or the root; an implicit one
 * has no times); t 0 changes nothing. 0 or -ENOMEM. */
int apply_touch_prepare(const struct map *m, const char *key, size_t klen,
			int64_t t, uint64_t index, struct apply_touch *tp);
void apply_touch_commit(struct map *m, struct apply_touch *tp);

/* apply_lease.c: lease_grant, lease_keepalive, lease_revoke; a put's
 * lease (checked before it changes anything, then granted) */
int apply_lease(struct map *m, uint64_t index, const struct kv_cmd *cmd,
		struct kv_result *res, change_fn fn, void *ctx);
int apply_put_lease_check(const struct map *m, const struct kv_cmd *cmd);
int apply_put_lease_grant(struct map *m, uint64_t index,
			  const struct kv_cmd *cmd);

int apply_rename(struct map *m, uint64_t index, const struct kv_cmd *cmd,
		 int *res, change_fn fn, void *ctx);
/* apply_add.c: the counters of an add, all checked before any changes;
 * the count the first one holds now (after an add that succeeded). */
uint64_t apply_add_count(const struct map *m, const struct kv_cmd *cmd);
int apply_add(struct map *m, uint64_t index, const struct kv_cmd *cmd, int *res,
	      change_fn fn, void *ctx);
/* apply.c: every op but txn (map_apply is apply_entry.c's, above it and
 * apply_txn.c, whose ops are these). */
int apply_plain(struct map *m, uint64_t index, const struct kv_cmd *cmd,
		struct kv_result *res, change_fn on_change, void *ctx);
/* apply_txn.c: a transaction; res->txn what it did (or res->err). */
int apply_txn(struct map *m, uint64_t index, const struct kv_cmd *cmd,
	      struct kv_result *res, change_fn fn, void *ctx);

#endif
