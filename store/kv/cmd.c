/* cmd.c - a command as one line of JSON: its tables and its reading in
 * place (cmd_encode.c writes it by hand).
 *
 * The line is what the log stores and what Raft replicates, so it carries
 * its format version ("v":2, KV_CMD_VERSION) and decoding is strict:
 * unknown fields, fields the op or the version does not take, missing
 * required fields, wrong types and out-of-range numbers are -EINVAL, an
 * unknown version is KV_EVERSION. Version 1 lines (no owners, ctime, atime,
 * kinds or extended attributes) still decode, meaning what they meant.
 * Version 3 added the lock table's ops (lock, sess_open, sess_renew,
 * sess_end), their fields and a put's if_sid; a command is written with
 * the lowest version that has its op and fields, so only those carry
 * "v":3. Version 4 added the leases' ops (lease_grant, lease_keepalive,
 * lease_revoke) and a put's lease and ttl.
 * Values are JSON strings when they are valid UTF-8 without NUL ("val")
 * and base64 otherwise ("val64"). Times are decimal strings because JSON
 * numbers are doubles (exact only to 2^53) and nanoseconds since 1970 are
 * past that. Field list: docs/map-and-db.md. Decoding reads the checked
 * text in place (jread.h): every write is decoded on every node, and a
 * cJSON tree cost more than the apply. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cmd_int.h"
#include "codec.h"
#include "jread.h"
#include "kv.h"

const char *const kv_cmd_op_names[] = {
    [KV_OP_NOOP] = "noop",
    [KV_OP_PUT] = "put",
    [KV_OP_DEL] = "del",
    [KV_OP_MKDIR] = "mkdir",
    [KV_OP_RMDIR] = "rmdir",
    [KV_OP_RENAME] = "rename",
    [KV_OP_SETATTR] = "setattr",
    [KV_OP_SETXATTR] = "setxattr",
    [KV_OP_RMXATTR] = "rmxattr",
    [KV_OP_ADD] = "add",
    [KV_OP_LOCK] = "lock",
    [KV_OP_SESS_OPEN] = "sess_open",
    [KV_OP_SESS_RENEW] = "sess_renew",
    [KV_OP_SESS_END] = "sess_end",
    [KV_OP_LEASE_GRANT] = "lease_grant",
    [KV_OP_LEASE_KEEPALIVE] = "lease_keepalive",
    [KV_OP_LEASE_REVOKE] = "lease_revoke",
    [KV_OP_TXN] = "txn",
};
_Static_assert(sizeof(kv_cmd_op_names) / sizeof(kv_cmd_op_names[0]) == N_OPS,
	       "a name for every op");
#define N_V1_OPS (KV_OP_SETATTR + 1)
#define N_V2_OPS (KV_OP_RMXATTR + 1)
#define N_V3_OPS (KV_OP_SESS_END + 1)

/* The version cmd is written with: the lowest that has its op and
 * fields, so that a node of an older version still reads what it can. */
unsigned kv_cmd_version(const struct kv_cmd *cmd)
{
	if ((unsigned)cmd->op >= N_V3_OPS ||
	    (cmd->op == KV_OP_PUT && (cmd->set_lease || cmd->ttl != 0)))
		return 4; /* leases */
	if (cmd->op == KV_OP_RMDIR && cmd->flags != 0)
		return 3; /* recursive */
	return (unsigned)cmd->op < N_V2_OPS && cmd->if_sid == 0 ? 2 : 3;
}

bool kv_op_has_key(enum kv_op op)
{
	return op != KV_OP_NOOP && op != KV_OP_SESS_OPEN &&
	       op != KV_OP_SESS_RENEW && op != KV_OP_SESS_END &&
	       op < KV_OP_LEASE_GRANT; /* a grant's key is optional; a txn's
					  keys are its ops' */
}

static const char *const field_names[N_FIELDS] = {
    "v",     "op",     "k",	    "k2",    "val", "val64", "mt",  "mode",
    "flags", "if_rev", "if_absent", "t",     "at",  "uid",   "gid", "x",
    "xn",    "add",    "sid",	    "node",  "own", "pid",   "lt",  "lkind",
    "ls",    "le",     "if_sid",    "lease", "ttl", "txn",
};
#define V2_FIELDS (B(F_T) | B(F_AT) | B(F_UID) | B(F_GID) | B(F_X) | B(F_XN))
#define V3_FIELDS                                                              \
	(B(F_ADD) | B(F_SID) | B(F_NODE) | B(F_OWN) | B(F_PID) | B(F_LT) |     \
	 B(F_LKIND) | B(F_LS) | B(F_LE) | B(F_IF_SID))
#define V4_FIELDS (B(F_LEASE) | B(F_TTL) | B(F_TXN))
#define LOCK_FIELDS                                                            \
	(B(F_K) | B(F_SID) | B(F_OWN) | B(F_LT) | B(F_LKIND) | B(F_LS) |       \
	 B(F_LE))
/* Which fields an op may carry (allowed) and must carry (required). */
const unsigned kv_cmd_op_allowed[N_OPS] = {
    [KV_OP_NOOP] = 0,
    [KV_OP_PUT] = B(F_K) | B(F_VAL) | B(F_VAL64) | B(F_MT) | B(F_MODE) |
		  B(F_IF_REV) | B(F_IF_ABSENT) | B(F_T) | B(F_AT) | OWNER |
		  B(F_X) | B(F_IF_SID) | B(F_LEASE) | B(F_TTL),
    [KV_OP_DEL] = B(F_K) | B(F_IF_REV) | B(F_T),
    [KV_OP_MKDIR] = B(F_K) | B(F_MT) | B(F_MODE) | B(F_T) | B(F_AT) | OWNER,
    [KV_OP_RMDIR] = B(F_K) | B(F_FLAGS) | B(F_T),
    [KV_OP_RENAME] = B(F_K) | B(F_K2) | B(F_FLAGS) | B(F_T),
    [KV_OP_SETATTR] = B(F_K) | B(F_MT) | B(F_MODE) | B(F_T) | B(F_AT) | OWNER,
    [KV_OP_SETXATTR] =
	B(F_K) | B(F_XN) | B(F_VAL) | B(F_VAL64) | B(F_FLAGS) | B(F_T),
    [KV_OP_RMXATTR] = B(F_K) | B(F_XN) | B(F_T),
    [KV_OP_ADD] = B(F_K) | B(F_ADD) | B(F_T),
    [KV_OP_LOCK] = LOCK_FIELDS | B(F_PID),
    [KV_OP_SESS_OPEN] = B(F_NODE),
    [KV_OP_SESS_RENEW] = B(F_SID),
    [KV_OP_SESS_END] = B(F_SID) | B(F_IF_REV),
    [KV_OP_LEASE_GRANT] = B(F_TTL) | B(F_K) | B(F_T),
    [KV_OP_LEASE_KEEPALIVE] = B(F_LEASE),
    [KV_OP_LEASE_REVOKE] = B(F_LEASE) | B(F_IF_REV) | B(F_T),
    [KV_OP_TXN] = B(F_T) | B(F_TXN),
};
static const unsigned op_required[N_OPS] = {
    [KV_OP_NOOP] = 0,
    [KV_OP_PUT] = B(F_K) | B(F_MT),
    [KV_OP_DEL] = B(F_K),
    [KV_OP_MKDIR] = B(F_K) | B(F_MT),
    [KV_OP_RMDIR] = B(F_K),
    [KV_OP_RENAME] = B(F_K) | B(F_K2),
    [KV_OP_SETATTR] = B(F_K),
    [KV_OP_SETXATTR] = B(F_K) | B(F_XN),
    [KV_OP_RMXATTR] = B(F_K) | B(F_XN),
    [KV_OP_ADD] = B(F_K) | B(F_ADD),
    [KV_OP_LOCK] = LOCK_FIELDS,
    [KV_OP_SESS_OPEN] = B(F_NODE),
    [KV_OP_SESS_RENEW] = B(F_SID),
    [KV_OP_SESS_END] = B(F_SID),
    [KV_OP_LEASE_GRANT] = B(F_TTL),
    [KV_OP_LEASE_KEEPALIVE] = B(F_LEASE),
    [KV_OP_LEASE_REVOKE] = B(F_LEASE),
    [KV_OP_TXN] = B(F_T) | B(F_TXN),
};

/* One field's value into cmd. One case a field, as the table in
 * docs/map-and-db.md has one row a field: longer than 100 lines because
 * the fields are that many, each case a line or three. */
static int decode_field(enum field f, unsigned opi, uint64_t ver, struct jr *r,
			struct kv_cmd *cmd)
{
	uint64_t u = 0;
	int err;

	switch (f) {
	case F_V:
	case F_OP:
		jr_skip(r); /* read before the others */
		return 0;
	case F_K:
		return cmd_get_str(r, &cmd->key, &cmd->klen);
	case F_K2:
		return cmd_get_str(r, &cmd->key2, &cmd->k2len);
	case F_XN:
		return cmd_get_str(r, &cmd->xname, &cmd->xnlen);
	case F_VAL: {
		char *val = NULL;
		err = cmd_get_str(r, &val, &cmd->vlen);
		cmd->val = (unsigned char *)val;
		return err;
	}
	case F_VAL64:
		return cmd_get_b64(r, &cmd->val, &cmd->vlen);
	case F_MT:
		cmd->set_mtime = opi == KV_OP_SETATTR;
		return cmd_get_time(r, &cmd->mtime_ns);
	case F_AT:
		cmd->set_atime = true;
		return cmd_get_time(r, &cmd->atime_ns);
	case F_T:
		err = cmd_get_time(r, &cmd->time_ns);
		return err == 0 && cmd->time_ns == 0 ? -EINVAL : err;
	case F_MODE:
		err = cmd_get_mode(r, opi, ver, &cmd->mode);
		/* Version 1: a put or mkdir with mode 0 kept the mode or
		 * took the default. */
		cmd->set_mode = !(ver < 2 && cmd->mode == 0 &&
				  (opi == KV_OP_PUT || opi == KV_OP_MKDIR));
		return err;
	case F_UID:
	case F_GID:
		err = cmd_get_uint(r, (double)(KV_NO_OWNER - 1), &u);
		if (f == F_UID) {
			cmd->uid = (uint32_t)u;
			cmd->set_uid = true;
		} else {
			cmd->gid = (uint32_t)u;
			cmd->set_gid = true;
		}
		return err;
	case F_FLAGS: {
		/* rename: NOREPLACE or EXCHANGE; setxattr: CREATE or
		 * REPLACE; never both; rmdir: RECURSIVE (checked below) */
		err = cmd_get_uint(r, 3, &u);
		if (err == 0 && u == 3)
			err = -EINVAL;
		cmd->flags = (unsigned)u;
		return err;
	}
	case F_IF_REV:
		err = cmd_get_uint(r, KV_JSON_INT_MAX, &cmd->if_rev);
		if (err == 0 && cmd->if_rev == 0)
			err = -EINVAL;
		return err;
	case F_IF_ABSENT:
		if (jr_kind(r) != 't' && jr_kind(r) != 'f')
			return -EINVAL;
		cmd->if_absent = jr_bool(r);
		return 0;
	case F_X:
		return cmd_get_xattrs(r, cmd);
	case F_ADD:
		return cmd_get_adds(r, cmd);
	case F_SID:
		err = cmd_get_uint(r, KV_JSON_INT_MAX, &cmd->sid);
		return err == 0 && cmd->sid == 0 ? -EINVAL : err;
	case F_NODE:
		err = cmd_get_uint(r, KV_JSON_INT_MAX, &cmd->node);
		return err == 0 && cmd->node == 0 ? -EINVAL : err;
	case F_IF_SID:
		err = cmd_get_uint(r, KV_JSON_INT_MAX, &cmd->if_sid);
		return err == 0 && cmd->if_sid == 0 ? -EINVAL : err;
	case F_LEASE:
		/* a put's 0 takes the key off its lease; the others name one */
		err = cmd_get_uint(r, KV_JSON_INT_MAX, &cmd->lease);
		cmd->set_lease = opi == KV_OP_PUT;
		return err == 0 && cmd->lease == 0 && opi != KV_OP_PUT ? -EINVAL
								       : err;
	case F_TTL:
		err = cmd_get_uint(r, KV_LEASE_TTL_MAX, &u);
		cmd->ttl = (uint32_t)u;
		return err == 0 && u == 0 ? -EINVAL : err;
	case F_OWN:
		return cmd_get_u64_str(r, &cmd->lock_owner);
	case F_PID:
		err = cmd_get_uint(r, (double)UINT32_MAX, &u);
		cmd->lock_pid = (uint32_t)u;
		return err;
	case F_LT:
		err = cmd_get_uint(r, KV_LOCK_WR, &u);
		cmd->lock_type = (enum kv_lock_type)u;
		return err;
	case F_LKIND:
		err = cmd_get_uint(r, KV_LOCK_POSIX, &u);
		if (err == 0 && u < KV_LOCK_FLOCK)
			err = -EINVAL;
		cmd->lock_kind = (enum kv_lock_kind)u;
		return err;
	case F_LS:
		return cmd_get_offset(r, &cmd->lock_start);
	case F_LE:
		return cmd_get_offset(r, &cmd->lock_end);
	case F_TXN:
		return kv_cmd_txn_decode(r, cmd);
	case N_FIELDS:
		break;
	}
	return -EINVAL;
}

/* f if the n bytes at k are its name, else N_FIELDS. */
static unsigned is_field(const char *k, size_t n, enum field f)
{
	return memcmp(k, field_names[f], n + 1) == 0 ? f : N_FIELDS;
}

/* The index of the field named by the n bytes at k (NUL-terminated; ""
 * for a name jr_name refused), or N_FIELDS: by its length and first byte,
 * then one compare. Every write is decoded on every node and a replay
 * decodes hundreds of thousands: a loop of strcmp was a tenth of it. */
static unsigned field_of(const char *k, size_t n)
{
	switch (n) {
	case 1:
		switch (k[0]) {
		case 'v':
			return F_V;
		case 'k':
			return F_K;
		case 't':
			return F_T;
		case 'x':
			return F_X;
		}
		break;
	case 2:
		switch (k[0]) {
		case 'o':
			return is_field(k, n, F_OP);
		case 'k':
			return is_field(k, n, F_K2);
		case 'm':
			return is_field(k, n, F_MT);
		case 'a':
			return is_field(k, n, F_AT);
		case 'x':
			return is_field(k, n, F_XN);
		case 'l':
			return k[1] == 't'   ? F_LT
			       : k[1] == 's' ? F_LS
			       : k[1] == 'e' ? F_LE
					     : N_FIELDS;
		}
		break;
	case 3:
		switch (k[0]) {
		case 'v':
			return is_field(k, n, F_VAL);
		case 'u':
			return is_field(k, n, F_UID);
		case 'g':
			return is_field(k, n, F_GID);
		case 'a':
			return is_field(k, n, F_ADD);
		case 's':
			return is_field(k, n, F_SID);
		case 'o':
			return is_field(k, n, F_OWN);
		case 'p':
			return is_field(k, n, F_PID);
		case 't':
			return k[1] == 't' ? is_field(k, n, F_TTL)
					   : is_field(k, n, F_TXN);
		}
		break;
	case 4:
		return k[0] == 'm' ? is_field(k, n, F_MODE)
				   : is_field(k, n, F_NODE);
	case 5:
		switch (k[0]) {
		case 'v':
			return is_field(k, n, F_VAL64);
		case 'f':
			return is_field(k, n, F_FLAGS);
		case 'l':
			return k[1] == 'k' ? is_field(k, n, F_LKIND)
					   : is_field(k, n, F_LEASE);
		}
		break;
	case 6:
		return k[3] == 'r' ? is_field(k, n, F_IF_REV)
				   : is_field(k, n, F_IF_SID);
	case 9:
		return is_field(k, n, F_IF_ABSENT);
	}
	return N_FIELDS;
}

/* The version and the op, wherever they are (another version may have
 * other fields, so they come first): 0, -EINVAL or KV_EVERSION. */
static int get_version_and_op(struct jr at, uint64_t *ver, unsigned *opi)
{
	struct jr v = {NULL, NULL}, op = {NULL, NULL};
	char k[16], name[16];
	bool first = true;

	jr_enter(&at);
	while (jr_more(&at, &first)) {
		jr_name(&at, k, sizeof(k));
		if (strcmp(k, "v") == 0 && v.p == NULL)
			v = at;
		else if (strcmp(k, "op") == 0 && op.p == NULL)
			op = at;
		jr_skip(&at);
	}
	if (v.p == NULL || cmd_get_uint(&v, KV_JSON_INT_MAX, ver) != 0)
		return -EINVAL;
	if (*ver < 1 || *ver > KV_CMD_VERSION)
		return KV_EVERSION;
	if (op.p == NULL || jr_kind(&op) != '"' ||
	    jr_str_nonul(&op, name, sizeof(name)) >= sizeof(name))
		return -EINVAL;
	for (*opi = 0; *opi < (*ver < 2	  ? N_V1_OPS
			       : *ver < 3 ? N_V2_OPS
			       : *ver < 4 ? N_V3_OPS
					  : N_OPS);
	     (*opi)++)
		if (strcmp(name, kv_cmd_op_names[*opi]) == 0)
			return 0;
	return -EINVAL;
}

/* The checks that span fields, once all are read. */
static bool fields_agree(const struct kv_cmd *cmd, unsigned seen)
{
	bool has_val = seen & (B(F_VAL) | B(F_VAL64));

	if ((cmd->op == KV_OP_PUT || cmd->op == KV_OP_SETXATTR) && !has_val)
		return false;
	if (cmd->op == KV_OP_PUT && cmd->if_absent && cmd->if_rev != 0)
		return false;
	if (cmd->op == KV_OP_LOCK && cmd->lock_start > cmd->lock_end)
		return false;
	/* a put's lease of its own, or one it names: not both */
	if (cmd->op == KV_OP_PUT && cmd->ttl != 0 && cmd->set_lease)
		return false;
	return true;
}

int kv_cmd_decode(const char *json, size_t len, struct kv_cmd *cmd)
{
	const char *end;
	struct jr r;
	unsigned seen = 0, opi;
	uint64_t ver;
	bool first = true;
	char k[16];
	int err;

	memset(cmd, 0, sizeof(*cmd));
	if (jr_check(json, len, &end) < 0)
		return -EINVAL;
	for (const char *p = end; p < json + len; p++)
		if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
			return -EINVAL;
	r = (struct jr){json, end};
	if (jr_kind(&r) != '{')
		return -EINVAL;
	if ((err = get_version_and_op(r, &ver, &opi)) != 0)
		return err;
	cmd->op = (enum kv_op)opi;
	err = -EINVAL;
	jr_enter(&r);
	while (jr_more(&r, &first)) {
		unsigned f;

		f = field_of(k, jr_name(&r, k, sizeof(k)));
		if (f == N_FIELDS || (seen & B(f)))
			goto out_clear;
		/* val and val64 fill the same buffer: one or the other. */
		if ((f == F_VAL && (seen & B(F_VAL64))) ||
		    (f == F_VAL64 && (seen & B(F_VAL))))
			goto out_clear;
		seen |= B(f);
		if (f > F_OP && !(kv_cmd_op_allowed[opi] & B(f)))
			goto out_clear;
		if (ver < 2 && (B(f) & V2_FIELDS))
			goto out_clear;
		if (ver < 3 && (B(f) & V3_FIELDS))
			goto out_clear;
		if (ver < 4 && (B(f) & V4_FIELDS))
			goto out_clear;
		err = decode_field((enum field)f, opi, ver, &r, cmd);
		if (err != 0)
			goto out_clear;
		err = -EINVAL;
	}
	if ((seen & op_required[opi]) != op_required[opi] ||
	    !fields_agree(cmd, seen))
		goto out_clear;
	return 0;

out_clear:
	kv_cmd_clear(cmd);
	return err;
}

void kv_cmd_clear(struct kv_cmd *cmd)
{
	if (cmd->prep == NULL || cmd->key != kv_rec_key(cmd->prep))
		free(cmd->key); /* else the record's, as predecode.c sets it */
	free(cmd->key2);
	if (cmd->prep)
		kv_rec_unref(cmd->prep); /* val is its value */
	else
		free(cmd->val);
	free(cmd->xname);
	for (size_t i = 0; i < cmd->nxattr; i++) {
		free((char *)cmd->xattrs[i].name);
		free((unsigned char *)cmd->xattrs[i].val);
	}
	free(cmd->xattrs);
	for (size_t i = 0; i < cmd->nadd; i++)
		free(cmd->adds[i].name);
	free(cmd->adds);
	kv_txn_free(cmd->txn);
	memset(cmd, 0, sizeof(*cmd));
}
