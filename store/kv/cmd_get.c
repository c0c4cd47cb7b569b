/* cmd_get.c - the command reader's value readers (cmd.c calls them for
 * each field): strings, base64, numbers in their ranges, times, modes,
 * extended attributes and an add's counters, each with the rules
 * docs/map-and-db.md gives its field. */
#include "cmd_int.h"
#include "codec.h"
#include "jread.h"
#include "kv.h"
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* A string of UTF-8 without NUL, malloc'd with a NUL after it. */
int cmd_get_str(struct jr *r, char **out, size_t *len)
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

/* Base64 text decoded into *out. */
int cmd_get_b64(struct jr *r, unsigned char **out, size_t *len)
{
	char *text;
	size_t n;
	int err;

	if (jr_kind(r) != '"')
		return -EINVAL;
	if ((err = jr_str_dup(r, &text, &n)) < 0)
		return err;
	err = kv_base64_decode(text, n, out, len);
	free(text);
	return err;
}

int cmd_get_uint(struct jr *r, double max, uint64_t *out)
{
	if (jr_kind(r) != 'n')
		return -EINVAL;
	return kv_uint_of_double(jr_num(r), max, out);
}

int cmd_get_time(struct jr *r, int64_t *out)
{
	char buf[32];

	if (jr_kind(r) != '"' ||
	    jr_str_nonul(r, buf, sizeof(buf)) >= sizeof(buf))
		return -EINVAL; /* too long or a NUL inside */
	return kv_i64_parse(buf, out);
}

/* A u64 written as a decimal string (it may be past 2^53). */
int cmd_get_u64_str(struct jr *r, uint64_t *out)
{
	char buf[32];
	uint64_t v = 0;
	size_t n;

	if (jr_kind(r) != '"' ||
	    (n = jr_str_nonul(r, buf, sizeof(buf))) >= sizeof(buf) || n == 0 ||
	    n > 20 || (n > 1 && buf[0] == '0'))
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		unsigned d = (unsigned)(buf[i] - '0');
		if (d > 9 || v > (UINT64_MAX - d) / 10)
			return -EINVAL;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

/* A lock offset: a time-like decimal string, 0 .. KV_LOCK_EOF. */
int cmd_get_offset(struct jr *r, uint64_t *out)
{
	int64_t v;
	int err = cmd_get_time(r, &v);

	if (err == 0 && v < 0)
		err = -EINVAL;
	*out = (uint64_t)v;
	return err;
}

/* A mode as the op and version allow: permission bits, and for a put in
 * version 2 a kind that is not a directory. */
int cmd_get_mode(struct jr *r, unsigned opi, uint64_t ver, uint32_t *out)
{
	uint64_t u;
	int err = cmd_get_uint(r, 0xffff, &u);

	if (err != 0)
		return err;
	if (opi == KV_OP_PUT && ver >= 2) {
		uint64_t kind = u & S_IFMT;
		if ((u & ~(uint64_t)(S_IFMT | 07777)) != 0 ||
		    !(kind == 0 || kind == S_IFREG || kind == S_IFLNK ||
		      kind == S_IFIFO || kind == S_IFSOCK))
			return -EINVAL;
	} else if (u > 07777) {
		return -EINVAL;
	}
	*out = (uint32_t)u;
	return 0;
}

/* One {"n":name,"v"|"v64":value} of "x", into x (which then owns the
 * name and the value). */
static int cmd_get_xattr(struct jr *r, struct kv_xattr *x)
{
	char k[8], *name = NULL, *text = NULL;
	unsigned char *val = NULL;
	bool first = true, has_val = false;
	size_t n;
	int err = -EINVAL;

	if (jr_kind(r) != '{')
		return -EINVAL;
	jr_enter(r);
	while (jr_more(r, &first)) {
		jr_name(r, k, sizeof(k));
		if (strcmp(k, "n") == 0 && name == NULL) {
			err = cmd_get_str(r, &name, &x->nlen);
		} else if (strcmp(k, "v") == 0 && !has_val) {
			err = cmd_get_str(r, &text, &n);
			val = (unsigned char *)text;
			x->vlen = n;
			has_val = true;
		} else if (strcmp(k, "v64") == 0 && !has_val) {
			err = cmd_get_b64(r, &val, &x->vlen);
			has_val = true;
		} else {
			err = -EINVAL;
		}
		if (err != 0)
			break;
	}
	if (err == 0 && (name == NULL || !has_val))
		err = -EINVAL;
	if (err != 0) {
		free(name);
		free(val);
		return err;
	}
	x->name = name;
	x->val = val;
	return 0;
}

int cmd_get_xattrs(struct jr *r, struct kv_cmd *cmd)
{
	bool first = true;
	size_t cap = 0;
	int err;

	cmd->set_xattrs = true;
	if (jr_kind(r) != '[')
		return -EINVAL;
	jr_enter(r);
	while (jr_more(r, &first)) {
		if (cmd->nxattr == cap) {
			size_t nc = cap ? cap * 2 : 4;
			struct kv_xattr *v =
			    realloc(cmd->xattrs, nc * sizeof(*v));
			if (v == NULL)
				return -ENOMEM;
			cmd->xattrs = v;
			cap = nc;
		}
		if ((err = cmd_get_xattr(r, &cmd->xattrs[cmd->nxattr])) != 0)
			return err;
		cmd->nxattr++;
	}
	return 0;
}

/* One {"n":name,"d":N} of "add" into a (which then owns the name). */
static int cmd_get_add(struct jr *r, struct kv_add *a)
{
	char k[8];
	bool first = true, has_n = false;
	int err = -EINVAL;

	a->name = NULL;
	if (jr_kind(r) != '{')
		return -EINVAL;
	jr_enter(r);
	while (jr_more(r, &first)) {
		jr_name(r, k, sizeof(k));
		if (strcmp(k, "n") == 0 && a->name == NULL) {
			err = cmd_get_str(r, &a->name, &a->nlen);
		} else if (strcmp(k, "d") == 0 && !has_n) {
			err = cmd_get_uint(r, KV_JSON_INT_MAX, &a->n);
			if (err == 0 && a->n == 0)
				err = -EINVAL;
			has_n = true;
		} else {
			err = -EINVAL;
		}
		if (err != 0)
			break;
	}
	if (err == 0 && (a->name == NULL || !has_n || a->nlen == 0 ||
			 memchr(a->name, '/', a->nlen) != NULL))
		err = -EINVAL;
	if (err != 0) {
		free(a->name);
		a->name = NULL;
	}
	return err;
}

/* Names in strictly increasing byte order: each once, one canonical
 * order. */
static bool cmd_name_before(const struct kv_add *a, const struct kv_add *b)
{
	size_t n = a->nlen < b->nlen ? a->nlen : b->nlen;
	int c = memcmp(a->name, b->name, n);
	return c < 0 || (c == 0 && a->nlen < b->nlen);
}

int cmd_get_adds(struct jr *r, struct kv_cmd *cmd)
{
	bool first = true;
	size_t cap = 0;
	int err;

	if (jr_kind(r) != '[')
		return -EINVAL;
	jr_enter(r);
	while (jr_more(r, &first)) {
		if (cmd->nadd == KV_MAX_ADDS)
			return -EINVAL;
		if (cmd->nadd == cap) {
			size_t nc = cap ? cap * 2 : 8;
			struct kv_add *v = realloc(cmd->adds, nc * sizeof(*v));
			if (v == NULL)
				return -ENOMEM;
			cmd->adds = v;
			cap = nc;
		}
		if ((err = cmd_get_add(r, &cmd->adds[cmd->nadd])) != 0)
			return err;
		cmd->nadd++;
		if (cmd->nadd > 1 &&
		    !cmd_name_before(&cmd->adds[cmd->nadd - 2],
				     &cmd->adds[cmd->nadd - 1]))
			return -EINVAL;
	}
	return cmd->nadd == 0 ? -EINVAL : 0;
}
