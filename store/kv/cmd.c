/* cmd.c - a command as one line of JSON (encoded by hand, read in place).
 *
 * The line is what the log stores and what Raft replicates, so it carries
 * its format version ("v":1) and decoding is strict: unknown fields, missing
 * required fields, wrong types and out-of-range numbers are -EINVAL, another
 * version is KV_EVERSION. Values are JSON strings when they are valid UTF-8
 * without NUL ("val") and base64 otherwise ("val64"). The mtime is a decimal
 * string because JSON numbers are doubles in cJSON (exact only to 2^53) and
 * nanoseconds since 1970 are past that. Field list: docs/map-and-db.md.
 * Decoding reads the checked text in place (jread.h): every write is
 * decoded on every node, and a cJSON tree cost more than the apply. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "jread.h"
#include "kv.h"

static const char *const op_names[] = {
    [KV_OP_NOOP] = "noop",	 [KV_OP_PUT] = "put",
    [KV_OP_DEL] = "del",	 [KV_OP_MKDIR] = "mkdir",
    [KV_OP_RMDIR] = "rmdir",	 [KV_OP_RENAME] = "rename",
    [KV_OP_SETATTR] = "setattr",
};
#define N_OPS (sizeof(op_names) / sizeof(op_names[0]))

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
	N_FIELDS
};
static const char *const field_names[N_FIELDS] = {
    "v",  "op",	  "k",	   "k2",     "val",	  "val64",
    "mt", "mode", "flags", "if_rev", "if_absent",
};
#define B(f) (1u << (f))
/* Which fields an op may carry (allowed) and must carry (required). */
static const unsigned op_allowed[N_OPS] = {
    [KV_OP_NOOP] = 0,
    [KV_OP_PUT] = B(F_K) | B(F_VAL) | B(F_VAL64) | B(F_MT) | B(F_MODE) |
		  B(F_IF_REV) | B(F_IF_ABSENT),
    [KV_OP_DEL] = B(F_K) | B(F_IF_REV),
    [KV_OP_MKDIR] = B(F_K) | B(F_MT) | B(F_MODE),
    [KV_OP_RMDIR] = B(F_K),
    [KV_OP_RENAME] = B(F_K) | B(F_K2) | B(F_FLAGS),
    [KV_OP_SETATTR] = B(F_K) | B(F_MT) | B(F_MODE),
};
static const unsigned op_required[N_OPS] = {
    [KV_OP_NOOP] = 0,	      [KV_OP_PUT] = B(F_K) | B(F_MT),
    [KV_OP_DEL] = B(F_K),     [KV_OP_MKDIR] = B(F_K) | B(F_MT),
    [KV_OP_RMDIR] = B(F_K),   [KV_OP_RENAME] = B(F_K) | B(F_K2),
    [KV_OP_SETATTR] = B(F_K),
};

static void put_val(struct kv_buf *b, const unsigned char *val, size_t vlen)
{
	if (kv_utf8_valid(val, vlen, false)) {
		kv_buf_puts(b, ",\"val\":");
		kv_buf_json_str(b, val, vlen);
	} else {
		kv_buf_puts(b, ",\"val64\":\"");
		kv_buf_base64(b, val, vlen);
		kv_buf_puts(b, "\"");
	}
}

int kv_cmd_encode(const struct kv_cmd *cmd, char **out, size_t *len)
{
	struct kv_buf b;
	unsigned op = (unsigned)cmd->op;

	if (op >= N_OPS)
		return -EINVAL;
	kv_buf_init(&b);
	kv_buf_puts(&b, "{\"v\":");
	kv_buf_u64(&b, KV_FORMAT_VERSION);
	kv_buf_puts(&b, ",\"op\":\"");
	kv_buf_puts(&b, op_names[op]);
	kv_buf_puts(&b, "\"");
	if (cmd->op != KV_OP_NOOP) {
		kv_buf_puts(&b, ",\"k\":");
		kv_buf_json_str(&b, cmd->key, cmd->klen);
	}
	switch (cmd->op) {
	case KV_OP_NOOP:
	case KV_OP_RMDIR:
		break;
	case KV_OP_PUT:
		put_val(&b, cmd->val, cmd->vlen);
		kv_buf_puts(&b, ",\"mt\":");
		kv_buf_i64(&b, cmd->mtime_ns);
		if (cmd->mode != 0) {
			kv_buf_puts(&b, ",\"mode\":");
			kv_buf_u64(&b, cmd->mode);
		}
		if (cmd->if_rev != 0) {
			kv_buf_puts(&b, ",\"if_rev\":");
			kv_buf_u64(&b, cmd->if_rev);
		}
		if (cmd->if_absent)
			kv_buf_puts(&b, ",\"if_absent\":true");
		break;
	case KV_OP_DEL:
		if (cmd->if_rev != 0)
			kv_buf_printf(&b, ",\"if_rev\":%" PRIu64, cmd->if_rev);
		break;
	case KV_OP_MKDIR:
		kv_buf_printf(&b, ",\"mt\":\"%" PRId64 "\",\"mode\":%" PRIu32,
			      cmd->mtime_ns, cmd->mode);
		break;
	case KV_OP_RENAME:
		kv_buf_puts(&b, ",\"k2\":");
		kv_buf_json_str(&b, cmd->key2, cmd->k2len);
		if (cmd->flags != 0)
			kv_buf_printf(&b, ",\"flags\":%u", cmd->flags);
		break;
	case KV_OP_SETATTR:
		if (cmd->set_mtime)
			kv_buf_printf(&b, ",\"mt\":\"%" PRId64 "\"",
				      cmd->mtime_ns);
		if (cmd->set_mode)
			kv_buf_printf(&b, ",\"mode\":%" PRIu32, cmd->mode);
		break;
	}
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

/* A string of UTF-8 without NUL, malloc'd with a NUL after it. */
static int get_str(struct jr *r, char **out, size_t *len)
{
	int err;

	if (jr_kind(r) != '"')
		return -EINVAL;
	if ((err = jr_str_dup(r, out, len)) < 0)
		return err;
	if (!kv_utf8_valid(*out, *len, false)) {
		free(*out);
		*out = NULL;
		return -EINVAL;
	}
	return 0;
}

static int get_uint(struct jr *r, double max, uint64_t *out)
{
	if (jr_kind(r) != 'n')
		return -EINVAL;
	return kv_uint_of_double(jr_num(r), max, out);
}

static int decode_field(enum field f, struct jr *r, struct kv_cmd *cmd)
{
	uint64_t u = 0;
	char buf[32];
	int err;

	switch (f) {
	case F_V:
	case F_OP:
		jr_skip(r); /* read before the others */
		return 0;
	case F_K:
		return get_str(r, &cmd->key, &cmd->klen);
	case F_K2:
		return get_str(r, &cmd->key2, &cmd->k2len);
	case F_VAL: {
		char *val = NULL;
		err = get_str(r, &val, &cmd->vlen);
		cmd->val = (unsigned char *)val;
		return err;
	}
	case F_VAL64: {
		char *text;
		size_t n;
		if (jr_kind(r) != '"')
			return -EINVAL;
		if ((err = jr_str_dup(r, &text, &n)) < 0)
			return err;
		err = kv_base64_decode(text, n, &cmd->val, &cmd->vlen);
		free(text);
		return err;
	}
	case F_MT:
		cmd->set_mtime = true;
		if (jr_kind(r) != '"' ||
		    jr_str(r, buf, sizeof(buf)) != strlen(buf))
			return -EINVAL; /* too long or a NUL inside */
		return kv_i64_parse(buf, &cmd->mtime_ns);
	case F_MODE:
		cmd->set_mode = true;
		err = get_uint(r, 07777, &u);
		cmd->mode = (uint32_t)u;
		return err;
	case F_FLAGS:
		err = get_uint(r, KV_RENAME_NOREPLACE | KV_RENAME_EXCHANGE, &u);
		if (err == 0 && u == (KV_RENAME_NOREPLACE | KV_RENAME_EXCHANGE))
			err = -EINVAL;
		cmd->flags = (unsigned)u;
		return err;
	case F_IF_REV:
		err = get_uint(r, KV_JSON_INT_MAX, &cmd->if_rev);
		if (err == 0 && cmd->if_rev == 0)
			err = -EINVAL;
		return err;
	case F_IF_ABSENT:
		if (jr_kind(r) != 't' && jr_kind(r) != 'f')
			return -EINVAL;
		cmd->if_absent = jr_bool(r);
		return 0;
	case N_FIELDS:
		break;
	}
	return -EINVAL;
}

/* The index of the field named k, or N_FIELDS. */
static unsigned field_of(const char *k)
{
	unsigned f;

	for (f = 0; f < N_FIELDS; f++)
		if (strcmp(k, field_names[f]) == 0)
			break;
	return f;
}

/* The version and the op, wherever they are (another version may have
 * other fields, so they come first): 0, -EINVAL or KV_EVERSION. */
static int get_version_and_op(struct jr at, unsigned *opi)
{
	struct jr v = {NULL, NULL}, op = {NULL, NULL};
	char k[16], name[16];
	bool first = true;
	uint64_t ver;
	size_t n;

	jr_enter(&at);
	while (jr_more(&at, &first)) {
		jr_name(&at, k, sizeof(k));
		if (strcmp(k, "v") == 0 && v.p == NULL)
			v = at;
		else if (strcmp(k, "op") == 0 && op.p == NULL)
			op = at;
		jr_skip(&at);
	}
	if (v.p == NULL || get_uint(&v, KV_JSON_INT_MAX, &ver) != 0)
		return -EINVAL;
	if (ver != KV_FORMAT_VERSION)
		return KV_EVERSION;
	if (op.p == NULL || jr_kind(&op) != '"' ||
	    (n = jr_str(&op, name, sizeof(name))) != strlen(name))
		return -EINVAL;
	for (*opi = 0; *opi < N_OPS; (*opi)++)
		if (strcmp(name, op_names[*opi]) == 0)
			return 0;
	return -EINVAL;
}

int kv_cmd_decode(const char *json, size_t len, struct kv_cmd *cmd)
{
	const char *end;
	struct jr r;
	unsigned seen = 0, opi;
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
	if ((err = get_version_and_op(r, &opi)) != 0)
		return err;
	cmd->op = (enum kv_op)opi;
	err = -EINVAL;
	jr_enter(&r);
	while (jr_more(&r, &first)) {
		unsigned f;

		jr_name(&r, k, sizeof(k));
		f = field_of(k);
		if (f == N_FIELDS || (seen & B(f)))
			goto out_clear;
		/* val and val64 fill the same buffer: one or the other. */
		if ((f == F_VAL && (seen & B(F_VAL64))) ||
		    (f == F_VAL64 && (seen & B(F_VAL))))
			goto out_clear;
		seen |= B(f);
		if (f > F_OP && !(op_allowed[opi] & B(f)))
			goto out_clear;
		err = decode_field((enum field)f, &r, cmd);
		if (err != 0)
			goto out_clear;
		err = -EINVAL;
	}
	if ((seen & op_required[opi]) != op_required[opi])
		goto out_clear;
	if (cmd->op == KV_OP_PUT &&
	    !!(seen & B(F_VAL)) == !!(seen & B(F_VAL64)))
		goto out_clear;
	if (cmd->op == KV_OP_PUT && cmd->if_absent && cmd->if_rev != 0)
		goto out_clear;
	if (cmd->op == KV_OP_PUT || cmd->op == KV_OP_MKDIR) {
		cmd->set_mode = false; /* only setattr uses the set_ flags */
		cmd->set_mtime = false;
	}
	return 0;

out_clear:
	kv_cmd_clear(cmd);
	return err;
}

void kv_cmd_clear(struct kv_cmd *cmd)
{
	free(cmd->key);
	free(cmd->key2);
	free(cmd->val);
	memset(cmd, 0, sizeof(*cmd));
}
