/* applier.c - store_apply: committed entries into the map.
 *
 * Applying runs on the caller's thread (the node's), with no hand-off:
 * commands are decoded first (unless the caller decoded a big one
 * already, on another thread, or the entry is one store_recover handed
 * the core, decoded ahead by predecode.c), then a chunk of entries is applied
 * under one write lock of map_lock, and reported with the lock released (the
 * callbacks wake readers, who take it). An entry is committed before it
 * is applied, so applying needs nothing of the log. After each chunk the
 * snapshot schedule is checked (two atomic loads), so snapshots follow the
 * applied entries whatever the traffic. What a command does to the map is
 * apply.c's; threads and locks: store_int.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_int.h"

/* What apply_chunk did with each entry. */
enum applied_as { NOT_APPLIED, APPLIED, APPLIED_CMD };

#define APPLY_CHUNK 64

static void on_change(void *ctx, const char *key, size_t klen)
{
	struct store *st = ctx;
	if (st->opt.on_change) {
		st->opt.on_change(st->opt.on_change_ctx, key, klen);
		st->changed = true;
	}
}

/* Apply entry e (its command decoded in cmd, or cmd_err) to the map at
 * applied + 1; map_lock held for writing. false if the store failed. */
static bool apply_one(struct store *st, const struct store_entry *e,
		      const struct kv_cmd *cmd, int cmd_err,
		      struct kv_result *res)
{
	if (e->index != st->applied + 1) {
		char what[96];
		snprintf(what, sizeof(what), "entry %llu to apply after %llu",
			 (unsigned long long)e->index,
			 (unsigned long long)st->applied);
		store_fail(st, KV_ECORRUPT, what);
		return false;
	}
	*res = (struct kv_result){.err = 0, .rev = e->index};
	if (e->type == STORE_ENTRY_CMD) {
		struct kv_list revoked; /* a revoke's keys, for watches */
		if (cmd_err) {
			res->err = cmd_err;
		} else if (lease_revoke_keys(st, cmd, &revoked) != 0 ||
			   map_apply(st->map, e->index, cmd, res, on_change,
				     st) != 0) {
			kv_list_clear(&revoked);
			store_fail(st, -ENOMEM, "applying an entry");
			return false;
		} else if (res->err == 0 && cmd->op == KV_OP_TXN) {
			hist_add_txn(st, e->index, cmd, res->txn);
		} else if (res->err == 0) {
			hist_add(st, e->index, cmd);
			lease_revoke_events(st, e->index, &revoked);
		}
		if (!cmd_err)
			kv_list_clear(&revoked);
	} else if (e->type == STORE_ENTRY_CONFIG) {
		char *c = store_conf_to_json(e->data, e->len);
		if (!c) {
			store_fail(st, -ENOMEM, "applying a config");
			return false;
		}
		free(st->conf_json);
		st->conf_json = c;
	}
	st->applied = e->index;
	st->applied_term = e->term;
	st->pub_applied = e->index;
	return true;
}

/* Before applying a chunk: its keys' index buckets, then their chains'
 * first nodes, loaded all at once (map_prefetch_key). A replay after a
 * restart puts keys the map does not have, each lookup a miss in a big
 * table: in turn, those misses were a fifth of the node thread's time. */
static void prefetch_keys(const struct map *m, const struct store_entry *e,
			  const struct kv_cmd *cmds, const int *cmd_err,
			  size_t n)
{
	uint32_t kh[APPLY_CHUNK];
	bool on[APPLY_CHUNK];

	for (size_t i = 0; i < n; i++) {
		on[i] = e[i].type == STORE_ENTRY_CMD && !cmd_err[i] &&
			kv_op_has_key(cmds[i].op) && cmds[i].key != NULL;
		if (on[i])
			kh[i] = map_prefetch_key(m, cmds[i].key, cmds[i].klen);
	}
	for (size_t i = 0; i < n; i++)
		if (on[i])
			map_prefetch_chain(m, kh[i]);
}

/* Apply committed entries e[0..n) (n <= APPLY_CHUNK) with their decoded
 * commands under one write lock, then report them with it released. */
static void apply_chunk(struct store *st, const struct store_entry *e,
			const struct kv_cmd *cmds, const int *cmd_err, size_t n)
{
	struct kv_result res[APPLY_CHUNK];
	unsigned char as[APPLY_CHUNK] = {0};
	pthread_rwlock_wrlock(&st->map_lock);
	if (n > 1)
		prefetch_keys(st->map, e, cmds, cmd_err, n);
	for (size_t i = 0; i < n && !st->failed; i++) {
		if (e[i].index <= st->applied)
			continue; /* applied before (db or an earlier batch) */
		if (!apply_one(st, &e[i], &cmds[i], cmd_err[i], &res[i]))
			break;
		as[i] = e[i].type == STORE_ENTRY_CMD ? APPLIED_CMD : APPLIED;
	}
	pthread_rwlock_unlock(&st->map_lock);
	if (st->changed) {
		st->changed = false;
		if (st->opt.on_changes_done)
			st->opt.on_changes_done(st->opt.on_change_ctx);
	}
	hist_notify(st);
	for (size_t i = 0; i < n; i++)
		if (as[i] != NOT_APPLIED)
			st->opt.raft->applied(
			    st->opt.raft_ctx, e[i].index, e[i].term,
			    as[i] == APPLIED_CMD ? &res[i] : NULL);
	for (size_t i = 0; i < n; i++)
		if (as[i] == APPLIED_CMD)
			kv_txn_res_unref(res[i].txn); /* kept if referenced */
}

int store_apply(struct store *st, const struct store_entry *e, size_t n)
{
	for (size_t i = 0; i < n; i += APPLY_CHUNK) {
		size_t k = n - i < APPLY_CHUNK ? n - i : APPLY_CHUNK;
		struct kv_cmd cmds[APPLY_CHUNK];
		int cmd_err[APPLY_CHUNK];
		int ret = 0;
		memset(cmds, 0, k * sizeof(cmds[0]));
		for (size_t j = 0; j < k && ret == 0; j++) {
			cmd_err[j] = 0;
			if (e[i + j].type != STORE_ENTRY_CMD)
				continue;
			if (e[i + j].cmd) {
				cmds[j] = *e[i + j].cmd; /* borrowed */
				continue;
			}
			if (st->pre == NULL ||
			    !predecode_take(st->pre, &e[i + j], &cmds[j], &ret))
				ret = kv_cmd_decode(e[i + j].data, e[i + j].len,
						    &cmds[j]);
			if (ret != 0 && ret != -ENOMEM) {
				cmd_err[j] = -EINVAL;
				ret = 0;
			}
		}
		if (ret == 0)
			apply_chunk(st, e + i, cmds, cmd_err, k);
		for (size_t j = 0; j < k; j++)
			if (!e[i + j].cmd)
				kv_cmd_clear(&cmds[j]);
		if (st->pre && predecode_done(st->pre)) {
			predecode_free(st->pre); /* past the recovered ones */
			st->pre = NULL;
		}
		if (ret != 0)
			return ret;
		owner_kick_if_due(st);
	}
	return 0;
}
