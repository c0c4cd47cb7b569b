/* history_txn.c - a transaction's watch events (store_int.h).
 *
 * A txn is one entry, and its writes are events of that one revision, in
 * the order of its branch: a put event for each put (the record it left),
 * a delete event for each delete that removed a key, and for a
 * delete_range that removed anything the event a recursive rmdir has
 * (DELETE ?recursive), so a watcher under the directory sees it as it
 * sees that. A read never splits a revision (history.c), so a watcher
 * sees all of a txn or none of it. Gets and a branch that writes nothing
 * leave no event. */
#include "store_int.h"

void hist_add_txn(struct store *st, uint64_t rev, const struct kv_cmd *cmd,
		  const struct kv_txn_res *tr)
{
	const struct kv_txn *t = cmd->txn;
	if (t == NULL || tr == NULL)
		return;
	int b = tr->succeeded ? 0 : 1;
	for (size_t i = 0; i < t->nop[b] && i < tr->n; i++) {
		const struct kv_txn_op *o = &t->br[b][i];
		struct kv_cmd ev = {.key = o->key, .klen = o->klen};
		switch (o->kind) {
		case KV_TXN_GET:
			continue;
		case KV_TXN_PUT:
			ev.op = KV_OP_PUT;
			break;
		case KV_TXN_DEL:
			ev.op = KV_OP_DEL;
			break;
		case KV_TXN_DEL_RANGE:
			ev.op = KV_OP_RMDIR;
			ev.flags = KV_RMDIR_RECURSIVE;
			break;
		}
		if (o->kind != KV_TXN_PUT && tr->r[i].deleted == 0)
			continue; /* nothing was there */
		hist_add_one(st, rev, &ev);
	}
}
