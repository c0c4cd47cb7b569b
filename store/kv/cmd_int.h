/* cmd_int.h - what the command's reader (cmd.c) and writer
 * (cmd_encode.c) share: the ops' names, the fields and which op takes
 * which, the version a command is written with. Not public: kv.h has
 * kv_cmd_encode and kv_cmd_decode. */
#ifndef KV_CMD_INT_H
#define KV_CMD_INT_H

#include "kv.h"

enum field {
	F_V,
	F_OP,
	F_K,
	F_K2,
	F_VAL,
	F_VAL64,
	F_MT,
	F_MODE,
	F_FLAGS,
	F_IF_REV,
	F_IF_ABSENT,
	/* version 2 */
	F_T,
	F_AT,
	F_UID,
	F_GID,
	F_X,
	F_XN,
	/* version 3 */
	F_ADD,
	F_SID,
	F_NODE,
	F_OWN,
	F_PID,
	F_LT,
	F_LKIND,
	F_LS,
	F_LE,
	F_IF_SID,
	/* version 4 */
	F_LEASE,
	F_TTL,
	F_TXN,
	N_FIELDS
};
#define B(f)  (1u << (f))
#define OWNER (B(F_UID) | B(F_GID))

#define N_OPS (KV_OP_TXN + 1)
/* By op: its name in the JSON, and the fields it may carry. */
extern const char *const kv_cmd_op_names[N_OPS];
extern const unsigned kv_cmd_op_allowed[N_OPS];
/* The version cmd is written with: the lowest that has its op and
 * fields, so that a node of an older version still reads what it can. */
unsigned kv_cmd_version(const struct kv_cmd *cmd);

/* cmd_txn.c: a txn's "txn" field, written after the others and read
 * (into cmd->txn, then cmd's) in place. */
struct kv_buf;
struct jr;
void kv_cmd_txn_encode(struct kv_buf *b, const struct kv_txn *t);
int kv_cmd_txn_decode(struct jr *r, struct kv_cmd *cmd);

/* cmd_get.c: one field's value from the reader at it, into the command
 * (0, -EINVAL for a value the field may not have, -ENOMEM). */
struct jr;
int cmd_get_str(struct jr *r, char **out, size_t *len);
int cmd_get_b64(struct jr *r, unsigned char **out, size_t *len);
int cmd_get_uint(struct jr *r, double max, uint64_t *out);
int cmd_get_time(struct jr *r, int64_t *out);
int cmd_get_u64_str(struct jr *r, uint64_t *out);
int cmd_get_offset(struct jr *r, uint64_t *out);
int cmd_get_mode(struct jr *r, unsigned opi, uint64_t ver, uint32_t *out);
int cmd_get_xattrs(struct jr *r, struct kv_cmd *cmd);
int cmd_get_adds(struct jr *r, struct kv_cmd *cmd);

#endif
