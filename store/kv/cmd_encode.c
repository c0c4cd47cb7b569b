/* cmd_encode.c - a command written as one line of JSON, by hand, so that
 * a 16 MiB value is copied once, not through a cJSON tree; the lowest
 * version that has its op and fields (cmd_int.h). The format and its
 * reading: cmd.c, docs/map-and-db.md. */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>

#include "cmd_int.h"
#include "codec.h"
#include "kv.h"

/* Bytes as "name":"text" when they are UTF-8 without NUL, else as
 * "name64":"base64". */
static void put_bytes(struct kv_buf *b, const char *name, const void *p,
		      size_t n)
{
	kv_buf_puts(b, ",\"");
	kv_buf_puts(b, name);
	size_t mark = b->len; /* the name's end */
	kv_buf_puts(b, "\":");
	if (b->err || kv_buf_json_text(b, p, n))
		return;
	b->len = mark; /* not text: the name gets its "64" */
	b->p[mark] = '\0';
	kv_buf_puts(b, "64\":\"");
	kv_buf_base64(b, p, n);
	kv_buf_puts(b, "\"");
}

static void put_time(struct kv_buf *b, const char *name, int64_t ns)
{
	kv_buf_printf(b, ",\"%s\":", name);
	kv_buf_i64(b, ns);
}

static void put_owner(struct kv_buf *b, const struct kv_cmd *cmd)
{
	if (cmd->set_uid)
		kv_buf_printf(b, ",\"uid\":%" PRIu32, cmd->uid);
	if (cmd->set_gid)
		kv_buf_printf(b, ",\"gid\":%" PRIu32, cmd->gid);
}

static void put_xattrs(struct kv_buf *b, const struct kv_cmd *cmd)
{
	kv_buf_puts(b, ",\"x\":[");
	for (size_t i = 0; i < cmd->nxattr; i++) {
		const struct kv_xattr *x = &cmd->xattrs[i];
		kv_buf_puts(b, i ? ",{\"n\":" : "{\"n\":");
		kv_buf_json_str(b, x->name, x->nlen);
		put_bytes(b, "v", x->val, x->vlen);
		kv_buf_puts(b, "}");
	}
	kv_buf_puts(b, "]");
}

static void put_adds(struct kv_buf *b, const struct kv_cmd *cmd)
{
	kv_buf_puts(b, ",\"add\":[");
	for (size_t i = 0; i < cmd->nadd; i++) {
		const struct kv_add *a = &cmd->adds[i];
		kv_buf_puts(b, i ? ",{\"n\":" : "{\"n\":");
		kv_buf_json_str(b, a->name, a->nlen);
		kv_buf_puts(b, ",\"d\":");
		kv_buf_u64(b, a->n);
		kv_buf_puts(b, "}");
	}
	kv_buf_puts(b, "]");
}

/* The fields of each op after "k". */
static void put_fields(struct kv_buf *b, const struct kv_cmd *cmd)
{
	switch (cmd->op) {
	case KV_OP_NOOP:
	case KV_OP_DEL:
		break;
	case KV_OP_LOCK:
		kv_buf_printf(b,
			      ",\"sid\":%" PRIu64 ",\"own\":\"%" PRIu64
			      "\",\"pid\":%" PRIu32 ",\"lt\":%d,\"lkind\":%d",
			      cmd->sid, cmd->lock_owner, cmd->lock_pid,
			      (int)cmd->lock_type, (int)cmd->lock_kind);
		put_time(b, "ls", (int64_t)cmd->lock_start);
		put_time(b, "le", (int64_t)cmd->lock_end);
		break;
	case KV_OP_SESS_OPEN:
		kv_buf_printf(b, ",\"node\":%" PRIu64, cmd->node);
		break;
	case KV_OP_SESS_RENEW:
	case KV_OP_SESS_END:
		kv_buf_printf(b, ",\"sid\":%" PRIu64, cmd->sid);
		break;
	case KV_OP_LEASE_GRANT:
		kv_buf_printf(b, ",\"ttl\":%" PRIu32, cmd->ttl);
		if (cmd->key != NULL) {
			kv_buf_puts(b, ",\"k\":");
			kv_buf_json_str(b, cmd->key, cmd->klen);
		}
		break;
	case KV_OP_LEASE_KEEPALIVE:
	case KV_OP_LEASE_REVOKE:
		kv_buf_printf(b, ",\"lease\":%" PRIu64, cmd->lease);
		break;
	case KV_OP_PUT:
		put_bytes(b, "val", cmd->val, cmd->vlen);
		if (cmd->set_lease)
			kv_buf_printf(b, ",\"lease\":%" PRIu64, cmd->lease);
		if (cmd->ttl != 0)
			kv_buf_printf(b, ",\"ttl\":%" PRIu32, cmd->ttl);
		put_time(b, "mt", cmd->mtime_ns);
		/* A mode without set_mode is set too when nonzero (callers
		 * that predate the flag). */
		if (cmd->set_mode || cmd->mode != 0)
			kv_buf_printf(b, ",\"mode\":%" PRIu32, cmd->mode);
		if (cmd->if_absent)
			kv_buf_puts(b, ",\"if_absent\":true");
		if (cmd->set_xattrs)
			put_xattrs(b, cmd);
		if (cmd->if_sid != 0)
			kv_buf_printf(b, ",\"if_sid\":%" PRIu64, cmd->if_sid);
		break;
	case KV_OP_MKDIR:
		put_time(b, "mt", cmd->mtime_ns);
		if (cmd->set_mode || cmd->mode != 0)
			kv_buf_printf(b, ",\"mode\":%" PRIu32, cmd->mode);
		break;
	case KV_OP_RMDIR:
		if (cmd->flags != 0)
			kv_buf_printf(b, ",\"flags\":%u", cmd->flags);
		break;
	case KV_OP_RENAME:
		kv_buf_puts(b, ",\"k2\":");
		kv_buf_json_str(b, cmd->key2, cmd->k2len);
		if (cmd->flags != 0)
			kv_buf_printf(b, ",\"flags\":%u", cmd->flags);
		break;
	case KV_OP_SETATTR:
		if (cmd->set_mtime)
			put_time(b, "mt", cmd->mtime_ns);
		if (cmd->set_mode)
			kv_buf_printf(b, ",\"mode\":%" PRIu32, cmd->mode);
		break;
	case KV_OP_SETXATTR:
	case KV_OP_RMXATTR:
		kv_buf_puts(b, ",\"xn\":");
		kv_buf_json_str(b, cmd->xname, cmd->xnlen);
		if (cmd->op == KV_OP_SETXATTR)
			put_bytes(b, "val", cmd->val, cmd->vlen);
		if (cmd->flags != 0)
			kv_buf_printf(b, ",\"flags\":%u", cmd->flags);
		break;
	case KV_OP_ADD:
		put_adds(b, cmd);
		break;
	case KV_OP_TXN:
		if (cmd->txn == NULL) {
			b->err = -EINVAL;
			return;
		}
		kv_cmd_txn_encode(b, cmd->txn);
		break;
	}
	if ((kv_cmd_op_allowed[cmd->op] & B(F_IF_REV)) && cmd->if_rev != 0)
		kv_buf_printf(b, ",\"if_rev\":%" PRIu64, cmd->if_rev);
	if ((kv_cmd_op_allowed[cmd->op] & B(F_AT)) && cmd->set_atime)
		put_time(b, "at", cmd->atime_ns);
	if (kv_cmd_op_allowed[cmd->op] & OWNER)
		put_owner(b, cmd);
	if ((kv_cmd_op_allowed[cmd->op] & B(F_T)) && cmd->time_ns != 0)
		put_time(b, "t", cmd->time_ns);
}

int kv_cmd_encode(const struct kv_cmd *cmd, char **out, size_t *len)
{
	struct kv_buf b;
	unsigned op = (unsigned)cmd->op;

	if (op >= N_OPS)
		return -EINVAL;
	kv_buf_init(&b);
	kv_buf_puts(&b, "{\"v\":");
	kv_buf_u64(&b, kv_cmd_version(cmd));
	kv_buf_puts(&b, ",\"op\":\"");
	kv_buf_puts(&b, kv_cmd_op_names[op]);
	kv_buf_puts(&b, "\"");
	if (kv_op_has_key(cmd->op)) {
		kv_buf_puts(&b, ",\"k\":");
		kv_buf_json_str(&b, cmd->key, cmd->klen);
	}
	put_fields(&b, cmd);
	kv_buf_puts(&b, "}");
	if (b.err) {
		int err = b.err;
		kv_buf_free(&b);
		return err;
	}
	*out = b.p;
	*len = b.len;
	return 0;
}
