/* apply_entry.c - map_apply: a command to the state machine's rules.
 *
 * A transaction (apply_txn.c) is made of the plain ops (apply.c), so the
 * entry that picks between them sits above both. */
#include "apply_int.h"

int map_apply(struct map *m, uint64_t index, const struct kv_cmd *cmd,
	      struct kv_result *res,
	      void (*on_change)(void *ctx, const char *key, size_t klen),
	      void *ctx)
{
	if (cmd->op == KV_OP_TXN) {
		res->rev = index;
		res->count = 0;
		return apply_txn(m, index, cmd, res, on_change, ctx);
	}
	res->txn = NULL;
	return apply_plain(m, index, cmd, res, on_change, ctx);
}
