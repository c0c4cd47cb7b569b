/* propose.c - writes and membership changes, from the caller to the log.
 *
 * A write goes into the node thread's inbox and waits for its entry to be
 * applied here, on the leader and on a follower alike: a follower's node
 * thread forwards it to the leader (forward.c), and the write then waits
 * for that entry as the leader's own would, so it answers its client only
 * once it applied the write itself (read-your-writes on every node). A
 * write is retried only when it surely was not applied (no leader, not the
 * leader, lost to another leader's entry): it is parked on the node
 * thread until a leader is known, then proposed again, all within its
 * deadline. Once it may have reached a log, a missing answer is reported
 * as KV_ENOQUORUM with the outcome unknown, never retried (a retry could
 * apply it twice). The calls themselves are in call.c; the node thread
 * proposes what its inbox holds in loop.c. */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "node_int.h"

/* ---- the callers' side ---- */

/* Does cmd make or change a key with a reserved segment (kv.h)? A
 * delete, an rmdir and a rename's source may name one: a key made before
 * the rule can be removed. An add's counters are NAME below its key. */
static bool propose_reserved(const struct kv_cmd *cmd)
{
	if (!kv_op_has_key(cmd->op) || cmd->op == KV_OP_LOCK)
		return false;
	if (cmd->op == KV_OP_RENAME)
		return kv_key_reserved(cmd->key2, cmd->k2len);
	if (cmd->op == KV_OP_ADD)
		for (size_t i = 0; i < cmd->nadd; i++)
			if (kv_key_reserved(cmd->adds[i].name,
					    cmd->adds[i].nlen))
				return true;
	if (cmd->op == KV_OP_DEL || cmd->op == KV_OP_RMDIR)
		return false;
	return kv_key_reserved(cmd->key, cmd->klen);
}

int propose_check(const struct kv_cmd *cmd)
{
	int ret;
	/* an add's key is a directory, the root ("") too */
	if (kv_op_has_key(cmd->op) && !(cmd->op == KV_OP_ADD && !cmd->klen)) {
		ret = kv_key_check(cmd->key, cmd->klen);
		if (ret != 0)
			return ret;
	}
	if (cmd->op == KV_OP_RENAME) {
		ret = kv_key_check(cmd->key2, cmd->k2len);
		if (ret != 0)
			return ret;
	}
	if (propose_reserved(cmd))
		return -EINVAL;
	if (cmd->op == KV_OP_PUT && cmd->vlen > KV_MAX_VALUE)
		return -EFBIG;
	if (cmd->op == KV_OP_ADD && (cmd->nadd == 0 || cmd->nadd > KV_MAX_ADDS))
		return -EINVAL;
	if (cmd->op == KV_OP_TXN)
		return kv_txn_check(cmd->txn, NULL, NULL, NULL);
	return 0;
}

/* A big put decoded without its value: the command encoded again with
 * an empty value and that line decoded give every other field exactly as
 * decoding json would (the encoding of a field does not depend on the
 * value), and the value's bytes are cmd's own, which is what decoding its
 * escaped or base64 form gives back; the record is built from them. This
 * skips the decoder's scan, UTF-8 check and copy of the value, or its
 * base64 decode (with 1 MiB values, 12 to 20% of the proposing thread).
 * NULL if not such a put, or without memory. */
static struct kv_cmd *predecode_put(const struct kv_cmd *cmd)
{
	if (cmd->op != KV_OP_PUT || cmd->vlen < STORE_PREPARE_BYTES ||
	    cmd->vlen > KV_MAX_VALUE)
		return NULL;
	struct kv_cmd bare = *cmd;
	bare.val = (unsigned char *)"";
	bare.vlen = 0;
	char *line;
	size_t len;
	if (kv_cmd_encode(&bare, &line, &len) != 0)
		return NULL;
	struct kv_cmd *d = malloc(sizeof(*d));
	if (d && kv_cmd_decode(line, len, d) != 0) {
		free(d);
		d = NULL;
	}
	free(line);
	if (d && (store_cmd_prepare_from(d, cmd->val, cmd->vlen) != 0 ||
		  d->prep == NULL)) {
		kv_cmd_clear(d);
		free(d);
		d = NULL;
	}
	return d;
}

struct kv_cmd *propose_predecode(const struct kv_cmd *cmd, const char *json,
				 size_t len)
{
	if (len < NODE_PREDECODE_BYTES)
		return NULL;
	struct kv_cmd *d = predecode_put(cmd);
	if (d)
		return d;
	d = malloc(sizeof(*d));
	if (d && kv_cmd_decode(json, len, d) != 0) {
		free(d);
		d = NULL;
	}
	if (d) /* a big put's record too: else the apply copies and hashes */
		(void)store_cmd_prepare(d);
	return d;
}

void propose_hand_dec(struct kv_node *n, struct node_call *c)
{
	if (c->dec) {
		decoded_put_cmd(n, c->index, c->term, c->dec, c->len);
		free(c->dec);
		c->dec = NULL;
	}
}

/* Check cmd, stamp its mtime (the proposer's clock, so every node records
 * the same) and encode it; *json is the caller's. Then check there is
 * room for it (with its line's framing) in the log. */
static int cmd_prepare(struct kv_node *n, struct kv_cmd *cmd, char **json,
		       size_t *len)
{
	int ret = propose_check(cmd);
	if (ret != 0)
		return ret;
	if (cmd->mtime_ns == 0 &&
	    (cmd->op == KV_OP_PUT || cmd->op == KV_OP_MKDIR ||
	     cmd->op == KV_OP_RENAME || cmd->op == KV_OP_SETATTR))
		cmd->mtime_ns = kv_wall_ns();
	if (cmd->time_ns == 0 && cmd->op == KV_OP_ADD)
		cmd->time_ns = kv_wall_ns();
	ret = kv_cmd_encode(cmd, json, len);
	if (ret == 0 && store_room(n->store) < (uint64_t)*len + 256) {
		free(*json);
		ret = -ENOSPC;
	}
	return ret;
}

/* Hand c to the node thread: 0, or KV_EFAILED, KV_ESHUTDOWN (c is not
 * taken, its done is never called). */
static int propose_start(struct kv_node *n, struct node_call *c)
{
	if (atomic_load(&n->st.fatal))
		return KV_EFAILED;
	c->t0_ns = kv_mono_ns();
	return inbox_add_call(n, c);
}

int node_propose_async(struct kv_node *n, struct kv_cmd *cmd, node_done_fn done,
		       void *ctx)
{
	struct node_call *c = malloc(sizeof(*c));
	if (!c)
		return -ENOMEM;
	char *json;
	size_t len;
	int ret = cmd_prepare(n, cmd, &json, &len);
	if (ret != 0) {
		free(c);
		return ret;
	}
	call_init(n, c, CALL_WRITE, done, ctx);
	c->heap = true;
	c->json = json;
	c->len = len;
	call_share_json(c);
	c->dec = propose_predecode(cmd, json, len);
	ret = propose_start(n, c);
	if (ret != 0) {
		call_free_dec(c);
		call_free_json(c);
		free(c);
	}
	return ret;
}

int node_propose(struct kv_node *n, struct kv_cmd *cmd, struct kv_result *res)
{
	char *json;
	size_t len;
	int ret = cmd_prepare(n, cmd, &json, &len);
	if (ret != 0)
		return ret;
	res->err = 0;
	res->rev = 0;
	struct node_call c;
	struct call_sync s;
	call_sync_init(n, &c, CALL_WRITE, &s);
	c.json = json;
	c.len = len;
	call_share_json(&c);
	c.dec = propose_predecode(cmd, json, len);
	ret = propose_start(n, &c);
	if (ret == 0)
		ret = call_wait(n, &c, &s, res);
	else
		sem_destroy(&s.sem);
	call_free_dec(&c); /* the call is ours again */
	call_free_json(&c);
	return ret;
}

int node_change_member(struct kv_node *n, enum node_member_op op, uint64_t id,
		       const char *addr)
{
	if (id == 0 || id > PEER_INT_MAX)
		return -EINVAL;
	if (op == NODE_MEMBER_ADD && !kv_addr_valid(addr))
		return -EINVAL;
	pthread_mutex_lock(&n->st.mu);
	bool leader = n->st.soft.role == RAFT_LEADER;
	pthread_mutex_unlock(&n->st.mu);
	if (!leader)
		return KV_ENOTLEADER;
	struct node_call c;
	struct call_sync s;
	call_sync_init(n, &c, CALL_CONF, &s);
	c.conf_op =
	    op == NODE_MEMBER_ADD ? RAFT_CONF_ADD_LEARNER : RAFT_CONF_REMOVE;
	c.conf_id = id;
	if (op == NODE_MEMBER_ADD)
		memcpy(c.conf_addr, addr, strlen(addr) + 1); /* checked */
	int ret = propose_start(n, &c);
	if (ret == 0)
		ret = call_wait(n, &c, &s, NULL);
	else
		sem_destroy(&s.sem);
	/* not taken: no longer the leader, or still queued at the deadline
	 * (then a 503 to retry, not a 421 that may name this very node) */
	if (ret == NODE_RETRY)
		ret = kv_past(&c.deadline) ? KV_ENOQUORUM : KV_ENOTLEADER;
	if (ret == RAFT_EINVAL)
		ret = -EINVAL;
	return ret;
}

/* ---- the node thread's side ---- */

void props_settle(struct kv_node *n, struct node_call *c, int ret)
{
	if (ret != NODE_RETRY || c->kind != CALL_WRITE) {
		call_finish(c, ret);
		return;
	}
	/* surely not applied: once more when a leader is known */
	if (kv_past(&c->deadline)) {
		call_finish(c, call_expired(n));
		return;
	}
	c->stage = CALL_PARKED;
	c->retry_ms = kv_mono_ms() + NODE_RETRY_PAUSE_MS;
	c->epoch = n->props.epoch;
	calls_push(&n->props.parked, c);
}

/* Is the first parked write due: a leader is known, and its pause is over
 * or the leader or term changed since it was parked? Calls are parked in
 * order, so the later ones have later times and no earlier epochs. */
static bool parked_due(const struct kv_node *n, uint64_t now)
{
	const struct node_call *c = n->props.parked.head;
	if (!c || (raft_role(n->raft) != RAFT_LEADER &&
		   raft_leader(n->raft) == RAFT_NONE))
		return false;
	return c->epoch != n->props.epoch || c->retry_ms <= now;
}

struct node_call *props_take_due(struct kv_node *n)
{
	uint64_t now = kv_mono_ms();
	struct call_list due = {0};
	while (parked_due(n, now)) {
		struct node_call *c = n->props.parked.head;
		calls_unlink(&n->props.parked, NULL, c);
		calls_push(&due, c);
	}
	return due.head;
}

uint64_t props_next_due(const struct kv_node *n)
{
	const struct node_call *c = n->props.parked.head;
	if (!c || (raft_role(n->raft) != RAFT_LEADER &&
		   raft_leader(n->raft) == RAFT_NONE))
		return 0;
	return c->epoch != n->props.epoch ? 1 : c->retry_ms;
}

void props_fail_parked(struct kv_node *n, int ret)
{
	calls_settle(&n->props.parked, false, ret);
}

void props_expire(struct kv_node *n)
{
	/* parked: surely not applied, but that is what a write answers once
	 * its time is up; forwarded or waiting: the outcome is unknown */
	int ret = call_expired(n);
	calls_settle(&n->props.parked, true, ret);
	calls_settle(&n->props.forwarded, true, ret);
	calls_settle(&n->props.waiting, true, ret);
	calls_settle(&n->props.transfers, true, ret);
}

void props_drain(struct kv_node *n, int ret)
{
	props_settle_applied(n);
	calls_settle(&n->props.parked, false, ret);
	calls_settle(&n->props.forwarded, false, ret);
	calls_settle(&n->props.waiting, false, ret);
	calls_settle(&n->props.transfers, false, ret);
}

void props_on_applied(struct kv_node *n, uint64_t index, uint64_t term,
		      const struct kv_result *res)
{
	/* waiting is in index order: everything up to index is settled */
	struct call_list *w = &n->props.waiting;
	while (w->head && w->head->index <= index) {
		struct node_call *c = w->head;
		assert(c->stage == CALL_WAITING);
		calls_unlink(w, NULL, c);
		if (c->index == index && c->term == term) {
			if (res) {
				c->res = *res;
				kv_txn_res_ref(c->res.txn); /* call_finish's */
			}
			c->ret = 0;
		} else {
			c->ret = NODE_RETRY; /* lost to another leader */
		}
		c->stage = CALL_APPLIED;
		calls_push(&n->props.applied, c);
	}
}

void props_settle_applied(struct kv_node *n)
{
	struct node_call *c = n->props.applied.head;
	n->props.applied.head = n->props.applied.tail = NULL;
	while (c) {
		struct node_call *next = c->next;
		props_settle(n, c, c->ret);
		c = next;
	}
}
