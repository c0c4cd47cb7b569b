/* db_read.c - a db's record lines read in place, without cJSON
 * (db_read.h); and the rule on a record's kind and value that both
 * readers apply. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "codec.h"
#include "db_read.h"
#include "jread.h"

const char *db_kind_problem(uint64_t md, uint64_t version, size_t klen,
			    const unsigned char *val, size_t vlen)
{
	uint64_t kind = md & S_IFMT;

	if ((md & ~(uint64_t)(S_IFMT | 07777)) != 0 ||
	    (version < 2 && kind != S_IFREG && kind != S_IFDIR))
		return "bad mode";
	if (klen == 0 && kind != S_IFDIR)
		return "the root is not a directory";
	switch (kind) {
	case S_IFDIR:
		return vlen == 0 ? NULL : "directory with a value";
	case S_IFIFO:
	case S_IFSOCK:
		return vlen == 0 ? NULL : "special file with a value";
	case S_IFLNK:
		if (vlen == 0 || vlen > KV_MAX_LINK ||
		    memchr(val, '\0', vlen) != NULL)
			return "bad symbolic link target";
		return NULL;
	case S_IFREG:
		return vlen > KV_MAX_VALUE ? "value over the limit" : NULL;
	default:
		return "bad mode";
	}
}

/* The fields db_write writes for a record without extended attributes
 * (db.c's rec_fields, in its order); version 1 knew the first seven,
 * version 4 added the lease. */
enum {
	F_K,
	F_V,
	F_V64,
	F_CR,
	F_MR,
	F_MT,
	F_MODE,
	F_CT,
	F_AT,
	F_UID,
	F_GID,
	F_LEASE,
	F_N,
	F_N_V1 = F_CT,
	F_N_V2 = F_LEASE
};
static const char *const names[F_N] = {"k",  "v",   "v64",  "cr",
				       "mr", "mt",  "mode", "ct",
				       "at", "uid", "gid",  "lease"};
#define TIME_MAX 24 /* "-9223372036854775808" and more */

/* What a line held, as read. */
struct db_fields {
	bool seen[F_N];
	char key[KV_MAX_KEY + 2];
	size_t klen;
	size_t slen; /* "v" or "v64" in the scratch buffer */
	double num[F_N];
	char times[3][TIME_MAX]; /* mt, ct, at */
};

/* The field named by the n bytes at name (NUL-terminated; "" for a name
 * jr_name refused), or -1: by the length and the first byte, then one
 * compare (a loop of strcmp was a tenth of the reader's time). */
static int field_of(const char *name, size_t n)
{
	int i = -1;

	switch (n) {
	case 1:
		return name[0] == 'k' ? F_K : name[0] == 'v' ? F_V : -1;
	case 2:
		i = name[0] == 'c'   ? F_CR
		    : name[0] == 'a' ? F_AT
		    : name[0] != 'm' ? -1
		    : name[1] == 'r' ? F_MR
				     : F_MT;
		if (i == F_CR && name[1] == 't')
			i = F_CT;
		break;
	case 3:
		i = name[0] == 'v' ? F_V64 : name[0] == 'u' ? F_UID : F_GID;
		break;
	case 4:
		i = F_MODE;
		break;
	case 5:
		i = F_LEASE;
		break;
	}
	return i >= 0 && memcmp(name, names[i], n + 1) == 0 ? i : -1;
}

/* Read one field's value into f; false if the line is db.c's. */
static bool read_field(struct jr *r, int i, struct db_fields *f,
		       struct db_scratch *sc)
{
	char kind = jr_kind(r);

	switch (i) {
	case F_K:
		if (kind != '"')
			return false;
		f->klen = jr_str_nonul(r, f->key, sizeof(f->key));
		return f->klen < sizeof(f->key) - 1;
	case F_V:
	case F_V64: /* the buffer holds the whole line: it fits */
		if (kind != '"')
			return false;
		f->slen = jr_str_nonul(r, sc->buf, sc->cap);
		return f->slen < sc->cap;
	case F_MT:
	case F_CT:
	case F_AT: {
		char *t = f->times[i == F_MT ? 0 : i == F_CT ? 1 : 2];
		return kind == '"' && jr_str(r, t, TIME_MAX) < TIME_MAX - 1;
	}
	default:
		if (kind != 'n')
			return false;
		f->num[i] = jr_num(r);
		return true;
	}
}

/* The line's fields, once each, all known; false if it is db.c's. */
static bool read_fields(const char *p, size_t n, uint64_t version,
			struct db_fields *f, struct db_scratch *sc)
{
	const char *end;
	char name[8];
	bool first = true;
	int nf = version < 2 ? F_N_V1 : version < 4 ? F_N_V2 : F_N;

	if (jr_check(p, n, &end) != 0 || end != p + n)
		return false;
	struct jr r = {p, p + n};
	if (jr_kind(&r) != '{')
		return false;
	jr_enter(&r);
	while (jr_more(&r, &first)) {
		int i = field_of(name, jr_name(&r, name, sizeof(name)));
		if (i < 0 || i >= nf || f->seen[i] || !read_field(&r, i, f, sc))
			return false;
		f->seen[i] = true;
	}
	return f->seen[F_K] && f->seen[F_MODE] && f->seen[F_CR] &&
	       f->seen[F_MR] && f->seen[F_MT] && f->seen[F_V] != f->seen[F_V64];
}

/* The numbers of f into rec, as db.c's load_numbers: false if one is
 * bad. */
static bool set_numbers(const struct db_fields *f, struct kv_rec *rec)
{
	uint64_t u;

	if (kv_uint_of_double(f->num[F_CR], KV_JSON_INT_MAX,
			      &rec->create_rev) != 0 ||
	    kv_uint_of_double(f->num[F_MR], KV_JSON_INT_MAX, &rec->mod_rev) !=
		0 ||
	    kv_i64_parse(f->times[0], &rec->mtime_ns) != 0)
		return false;
	rec->ctime_ns = rec->atime_ns = rec->mtime_ns;
	/* most records have the three times equal: parsed once */
	if ((f->seen[F_CT] && strcmp(f->times[1], f->times[0]) != 0 &&
	     kv_i64_parse(f->times[1], &rec->ctime_ns)) ||
	    (f->seen[F_AT] && strcmp(f->times[2], f->times[0]) != 0 &&
	     kv_i64_parse(f->times[2], &rec->atime_ns)))
		return false;
	if (f->seen[F_UID]) {
		if (kv_uint_of_double(f->num[F_UID], KV_NO_OWNER - 1, &u))
			return false;
		rec->uid = (uint32_t)u;
	}
	if (f->seen[F_GID]) {
		if (kv_uint_of_double(f->num[F_GID], KV_NO_OWNER - 1, &u))
			return false;
		rec->gid = (uint32_t)u;
	}
	/* db.c's rule: a lease is a nonzero id, and not a directory's; rec
	 * has a lease slot if the field is there (db_read_rec) */
	if (f->seen[F_LEASE]) {
		uint64_t lease;
		if (kv_uint_of_double(f->num[F_LEASE], KV_JSON_INT_MAX,
				      &lease) != 0 ||
		    lease == 0 || S_ISDIR(rec->mode))
			return false;
		kv_rec_set_lease(rec, lease);
	}
	return true;
}

/* The value: "v" checked as UTF-8, "v64" decoded (into *bin). */
static bool value_of(const struct db_fields *f, const struct db_scratch *sc,
		     const unsigned char **val, size_t *vlen,
		     unsigned char **bin)
{
	if (f->seen[F_V]) {
		*val = (const unsigned char *)sc->buf;
		*vlen = f->slen;
		return kv_utf8_valid(sc->buf, f->slen, false);
	}
	if (kv_base64_decode(sc->buf, f->slen, bin, vlen) != 0)
		return false;
	*val = *bin;
	return true;
}

void db_scratch_free(struct db_scratch *sc)
{
	free(sc->buf);
	free(sc->f);
	memset(sc, 0, sizeof(*sc));
}

int db_read_rec(const char *p, size_t n, uint64_t version,
		struct db_scratch *sc, struct kv_rec **out)
{
	unsigned char *bin = NULL;
	const unsigned char *val;
	uint64_t md;
	size_t vlen;
	int ret = 0;

	*out = NULL;
	if (sc->cap <= n) {
		char *b = realloc(sc->buf, n + 1);
		if (b == NULL)
			return -ENOMEM;
		sc->buf = b;
		sc->cap = n + 1;
	}
	if (sc->f == NULL && (sc->f = malloc(sizeof(*sc->f))) == NULL)
		return -ENOMEM;
	struct db_fields *f = sc->f;
	memset(f->seen, 0, sizeof(f->seen)); /* the rest is read once seen */
	if (!read_fields(p, n, version, f, sc) ||
	    kv_uint_of_double(f->num[F_MODE], 0xffff, &md) != 0 ||
	    ((f->klen != 0 || version < 2) &&
	     kv_key_check(f->key, f->klen) != 0) ||
	    !value_of(f, sc, &val, &vlen, &bin) ||
	    db_kind_problem(md, version, f->klen, val, vlen) != NULL)
		goto out;
	struct kv_rec *rec =
	    kv_rec_new_l(f->key, f->klen, val, vlen, NULL, 0, f->seen[F_LEASE]);
	if (rec == NULL) {
		ret = -ENOMEM;
		goto out;
	}
	rec->mode = (uint32_t)md;
	if (!set_numbers(f, rec)) {
		kv_rec_unref(rec);
		goto out;
	}
	*out = rec;
	ret = 1;
out:
	free(bin);
	return ret;
}
