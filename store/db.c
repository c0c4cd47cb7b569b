/* db.c - the db snapshot file: the map at an applied index, as JSON Lines.
 *
 * A header line (format version, index, term, record count, raft conf),
 * one line per record in map order, and a trailer with the count and a
 * CRC-32C of every byte before it. db_write streams the lines through a
 * buffer with write(2) into db.jsonl.tmp, syncs it, renames it over
 * db.jsonl and syncs the directory, so db.jsonl is always a complete
 * snapshot: any damage, a missing trailer included, is KV_ECORRUPT at load.
 * db_load maps the file and parses it a line at a time with cJSON. The
 * format (version 2: owners, ctime, atime, kinds, extended attributes and
 * the root's record; version 3: the lock table's sessions and locks after
 * the records; version 4: the lease table before the records and a
 * record's lease; older versions still load, with their defaults and
 * empty tables) is in docs/map-and-db.md. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "codec.h"
#include "db.h"
#include "db_int.h"
#include "db_read.h"
#include "leases.h"
#include "locks.h"

/* ---- loading ---- */

struct loader {
	const char *path;
	uint64_t version; /* the header's */
	const char *base; /* the mapping */
	size_t size;
	char **errmsg;
	struct db_scratch sc; /* db_read_rec's */
};

static int damaged(const struct loader *l, size_t off, const char *what)
{
	if (l->errmsg != NULL) {
		free(*l->errmsg);
		if (asprintf(l->errmsg, "%s: damaged at offset %zu: %s",
			     l->path, off, what) < 0)
			*l->errmsg = NULL;
	}
	return KV_ECORRUPT;
}

static int load_header(struct loader *l, const cJSON *h, struct db_meta *meta,
		       uint64_t *count)
{
	const cJSON *kvfs = cJSON_GetObjectItemCaseSensitive(h, "kvfs");
	const cJSON *ver = cJSON_GetObjectItemCaseSensitive(h, "version");
	const cJSON *conf = cJSON_GetObjectItemCaseSensitive(h, "conf");
	uint64_t v;

	if (!cJSON_IsString(kvfs) || strcmp(kvfs->valuestring, "db") != 0 ||
	    kv_json_uint(ver, KV_JSON_INT_MAX, &v) != 0)
		return damaged(l, 0, "not a kvfs db header");
	if (v < 1 || v > DB_VERSION) {
		if (l->errmsg != NULL) {
			free(*l->errmsg);
			if (asprintf(l->errmsg,
				     "%s: unknown format version %" PRIu64
				     " (this kvfs reads 1 to %d)",
				     l->path, v, DB_VERSION) < 0)
				*l->errmsg = NULL;
		}
		return KV_EVERSION;
	}
	l->version = v;
	if (kv_json_uint(cJSON_GetObjectItemCaseSensitive(h, "index"),
			 KV_JSON_INT_MAX, &meta->index) != 0 ||
	    kv_json_uint(cJSON_GetObjectItemCaseSensitive(h, "term"),
			 KV_JSON_INT_MAX, &meta->term) != 0 ||
	    kv_json_uint(cJSON_GetObjectItemCaseSensitive(h, "count"),
			 KV_JSON_INT_MAX, count) != 0 ||
	    conf == NULL)
		return damaged(l, 0, "bad header fields");
	if (!cJSON_IsNull(conf)) {
		meta->conf = cJSON_PrintUnformatted(conf);
		if (meta->conf == NULL)
			return -ENOMEM;
	}
	return 0;
}

/* The fields of a record line, by name; version 2 added the second row. */
static const char *const rec_fields[] = {
    "k",     "v",  "v64", "cr",	 "mr", "mt", "mode", /* version 1 */
    "ct",    "at", "uid", "gid", "x",		     /* version 2 */
    "lease",					     /* version 4 */
};
enum {
	R_K,
	R_V,
	R_V64,
	R_CR,
	R_MR,
	R_MT,
	R_MODE,
	R_CT,
	R_AT,
	R_UID,
	R_GID,
	R_X,
	R_LEASE,
	N_REC_FIELDS,
	N_V1_REC_FIELDS = R_CT,
	N_V2_REC_FIELDS = R_LEASE
};

/* Bytes from "v" (a UTF-8 string) or "v64" (base64): *p borrowed from
 * the tree, or malloc'd into *bin. 0 or -EINVAL with *why. */
static int get_bytes(const cJSON *v, const cJSON *v64, const void **p,
		     size_t *n, unsigned char **bin, const char **why)
{
	*bin = NULL;
	if ((v == NULL) == (v64 == NULL))
		return -EINVAL;
	if (v != NULL) {
		if (!cJSON_IsString(v))
			return -EINVAL;
		*p = v->valuestring;
		*n = strlen(v->valuestring);
		if (!kv_utf8_valid(*p, *n, false)) {
			*why = "value is not UTF-8";
			return -EINVAL;
		}
		return 0;
	}
	if (!cJSON_IsString(v64) ||
	    kv_base64_decode(v64->valuestring, strlen(v64->valuestring), bin,
			     n) != 0) {
		*why = "bad base64 value";
		return -EINVAL;
	}
	*p = *bin;
	return 0;
}

struct xattrs {
	struct kv_xattr *v;
	unsigned char **bins; /* what get_bytes decoded, freed after */
	size_t n;
};

static void xattrs_free(struct xattrs *x)
{
	for (size_t i = 0; i < x->n; i++)
		free(x->bins[i]);
	free(x->bins);
	free(x->v);
}

/* "x": [{"n": name, "v"|"v64": value}, ...], checked as apply checks a
 * put's set. 0, -EINVAL (*why), -ENOMEM. */
static int load_xattrs(const cJSON *x, struct xattrs *out, const char **why)
{
	size_t n = (size_t)cJSON_GetArraySize(x);
	const cJSON *it;

	*why = "bad extended attribute";
	if (!cJSON_IsArray(x) || n == 0)
		return -EINVAL;
	out->v = calloc(n, sizeof(*out->v));
	out->bins = calloc(n, sizeof(*out->bins));
	if (out->v == NULL || out->bins == NULL)
		return -ENOMEM;
	cJSON_ArrayForEach(it, x)
	{
		const cJSON *nm = cJSON_GetObjectItemCaseSensitive(it, "n");
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(it, "v");
		const cJSON *v64 = cJSON_GetObjectItemCaseSensitive(it, "v64");
		struct kv_xattr *xa = &out->v[out->n];
		const void *val;

		if (!cJSON_IsObject(it) || cJSON_GetArraySize(it) != 2 ||
		    !cJSON_IsString(nm) ||
		    get_bytes(v, v64, &val, &xa->vlen, &out->bins[out->n],
			      why) != 0)
			return -EINVAL;
		out->n++;
		xa->name = nm->valuestring;
		xa->nlen = strlen(nm->valuestring);
		xa->val = val;
		if (kv_xattr_name_check(xa->name, xa->nlen) != 0 ||
		    xa->vlen > KV_MAX_XATTR_VALUE)
			return -EINVAL;
		for (size_t i = 0; i + 1 < out->n; i++)
			if (strcmp(out->v[i].name, xa->name) == 0)
				return -EINVAL;
	}
	return kv_xattrs_size(out->v, out->n) > KV_MAX_XATTR_TOTAL ? -EINVAL
								   : 0;
}

/* The numbers of a record line into rec. 0 or -EINVAL. */
static int load_numbers(const cJSON **f, struct kv_rec *rec)
{
	uint64_t u, lease;

	if (kv_json_uint(f[R_CR], KV_JSON_INT_MAX, &rec->create_rev) != 0 ||
	    kv_json_uint(f[R_MR], KV_JSON_INT_MAX, &rec->mod_rev) != 0 ||
	    kv_json_i64(f[R_MT], &rec->mtime_ns) != 0)
		return -EINVAL;
	rec->ctime_ns = rec->atime_ns = rec->mtime_ns;
	if ((f[R_CT] && kv_json_i64(f[R_CT], &rec->ctime_ns) != 0) ||
	    (f[R_AT] && kv_json_i64(f[R_AT], &rec->atime_ns) != 0))
		return -EINVAL;
	if (f[R_UID]) {
		if (kv_json_uint(f[R_UID], KV_NO_OWNER - 1, &u) != 0)
			return -EINVAL;
		rec->uid = (uint32_t)u;
	}
	if (f[R_GID]) {
		if (kv_json_uint(f[R_GID], KV_NO_OWNER - 1, &u) != 0)
			return -EINVAL;
		rec->gid = (uint32_t)u;
	}
	if (f[R_LEASE]) { /* then rec has a lease slot (load_rec) */
		if (kv_json_uint(f[R_LEASE], KV_JSON_INT_MAX, &lease) != 0 ||
		    lease == 0 || S_ISDIR(rec->mode))
			return -EINVAL;
		kv_rec_set_lease(rec, lease);
	}
	return 0;
}

/* One record line into a new kv_rec; NULL with *why set if it is bad (or
 * *err set without memory). */
static struct kv_rec *load_rec(const cJSON *o, uint64_t version,
			       const char **why, int *err)
{
	const cJSON *f[N_REC_FIELDS] = {0}, *it;
	size_t nfields = version < 2   ? N_V1_REC_FIELDS
			 : version < 4 ? N_V2_REC_FIELDS
				       : N_REC_FIELDS;
	struct xattrs xa = {0};
	unsigned char *bin = NULL;
	const void *val = NULL;
	struct kv_rec *rec = NULL;
	const char *key, *problem;
	size_t vlen = 0, klen;
	uint64_t md;

	*why = "bad record";
	cJSON_ArrayForEach(it, o)
	{
		size_t i = 0;
		while (i < nfields && strcmp(it->string, rec_fields[i]) != 0)
			i++;
		if (i == nfields || f[i] != NULL)
			return NULL; /* unknown or repeated field */
		f[i] = it;
	}
	if (!cJSON_IsString(f[R_K]) || kv_json_uint(f[R_MODE], 0xffff, &md))
		return NULL;
	key = f[R_K]->valuestring;
	klen = strlen(key);
	if ((klen != 0 || version < 2) && kv_key_check(key, klen) != 0) {
		*why = "bad key";
		return NULL;
	}
	if (get_bytes(f[R_V], f[R_V64], &val, &vlen, &bin, why) != 0)
		return NULL;
	if ((problem = db_kind_problem(md, version, klen, val, vlen)) != NULL) {
		*why = problem;
		goto out_free;
	}
	if (f[R_X] && (*err = load_xattrs(f[R_X], &xa, why)) != 0) {
		if (*err == -EINVAL)
			*err = 0;
		goto out_free;
	}
	rec =
	    kv_rec_new_l(key, klen, val, vlen, xa.v, xa.n, f[R_LEASE] != NULL);
	if (rec == NULL) {
		*err = -ENOMEM;
		goto out_free;
	}
	rec->mode = (uint32_t)md;
	if (load_numbers(f, rec) != 0) {
		kv_rec_unref(rec);
		rec = NULL;
	}
out_free:
	xattrs_free(&xa);
	free(bin);
	return rec;
}

static int load_trailer(const struct loader *l, const cJSON *t, size_t off,
			uint64_t count, uint64_t seen, uint32_t crc)
{
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(t, "crc");
	uint64_t n;
	char want[9];

	if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(t, "end")) ||
	    kv_json_uint(cJSON_GetObjectItemCaseSensitive(t, "count"),
			 KV_JSON_INT_MAX, &n) != 0 ||
	    !cJSON_IsString(c))
		return damaged(l, off, "bad trailer");
	if (n != count || seen != count)
		return damaged(l, off, "record count does not match");
	snprintf(want, sizeof(want), "%08" PRIx32, crc);
	if (strcmp(c->valuestring, want) != 0)
		return damaged(l, off,
			       "checksum mismatch over the bytes before");
	return 0;
}

/* Add a record read at off to m: 0, damage or -ENOMEM. */
static int add_rec(const struct loader *l, struct map *m, struct kv_rec *rec,
		   size_t off)
{
	if (kv_rec_lease(rec) != 0 &&
	    leases_find(map_leases_c(m), kv_rec_lease(rec)) == NULL) {
		kv_rec_unref(rec);
		return damaged(l, off, "a key on no lease");
	}
	int err = map_append(m, rec);
	if (err != 0)
		kv_rec_unref(rec);
	return err == -EINVAL ? damaged(l, off, "record out of order") : err;
}

/* db_stream's adder: add_rec with the loader and map. */
struct adder {
	const struct loader *l;
	struct map *m;
};
static int add_streamed(void *ctx, struct kv_rec *rec, size_t off)
{
	struct adder *a = ctx;
	return add_rec(a->l, a->m, rec, off);
}

/* ... and its hint: the index bucket a file's record goes in */
static void hint_streamed(void *ctx, const struct kv_rec *rec)
{
	struct adder *a = ctx;
	if (!S_ISDIR(rec->mode))
		(void)map_prefetch_key(a->m, kv_rec_key(rec), rec->klen);
}

/* db_stream's slow reader: a record line as the loop below reads one
 * that is not a table line (db_int.h). */
static int read_slow(void *ctx, const char *line, size_t len,
		     struct kv_rec **rec)
{
	const struct loader *l = ((const struct adder *)ctx)->l;
	cJSON *o = kv_json_parse(line, len);
	const char *why;
	int err = 0;

	*rec = NULL;
	if (o != NULL && cJSON_IsObject(o) &&
	    !cJSON_GetObjectItemCaseSensitive(o, "end") &&
	    !cJSON_GetObjectItemCaseSensitive(o, "ttl") &&
	    !cJSON_GetObjectItemCaseSensitive(o, "sess") &&
	    !cJSON_GetObjectItemCaseSensitive(o, "lock"))
		*rec = load_rec(o, l->version, &why, &err);
	cJSON_Delete(o);
	return *rec != NULL ? 1 : err;
}

/* Records past this many bytes of file are read on other threads
 * (db_stream.c); a smaller db is not worth the threads. */
#define LOAD_STREAM_MIN (64u << 10)

static int load_lines(struct loader *l, struct map *m, struct db_meta *meta)
{
	struct db_cursor c = {0};
	uint64_t count = 0;
	size_t stream_at = 0; /* not before: at most a thread per 64 KiB */
	int err = 0;

	for (bool first = true;; first = false) {
		const char *line = l->base + c.off, *nl;
		size_t len;
		cJSON *o;

		if (c.off == l->size)
			return damaged(l, c.off,
				       "no trailer (incomplete file)");
		nl = memchr(line, '\n', l->size - c.off);
		if (nl == NULL)
			return damaged(l, c.off, "unterminated last line");
		len = (size_t)(nl - line);
		bool rec_line =
		    !first && len > 5 && memcmp(line, "{\"k\":", 5) == 0;
		if (rec_line && c.off >= stream_at &&
		    l->size - c.off >= LOAD_STREAM_MIN) {
			struct adder a = {l, m};
			const struct db_stream_ops ops = {
			    read_slow, add_streamed, hint_streamed, &a};
			err = db_stream(l->base, l->size, l->version, &c, &ops);
			/* it stopped at a line it does not take: this loop
			 * reads that one, and streams again further on */
			stream_at = c.off + LOAD_STREAM_MIN;
			if (err == 0)
				continue;
			if (err != 1)
				return err;
		}
		struct kv_rec *fast = NULL;
		if (rec_line && (err = db_read_rec(line, len, l->version,
						   &l->sc, &fast)) != 0) {
			if (err < 0 || (err = add_rec(l, m, fast, c.off)) != 0)
				return err;
			c.seen++;
			c.crc = kv_crc32c(c.crc, line, len + 1);
			c.off += len + 1;
			db_release_behind(l->base, c.off, &c.released);
			continue;
		}
		o = kv_json_parse(line, len);
		if (o == NULL || !cJSON_IsObject(o)) {
			cJSON_Delete(o);
			return damaged(l, c.off, "not a JSON object");
		}
		if (first) {
			err = load_header(l, o, meta, &count);
			/* no doubling of the index on the way; a line is
			 * more than 16 bytes, whatever the count says */
			if (err == 0)
				map_reserve(m, count < l->size / 16
						   ? count
						   : l->size / 16);
		} else if (cJSON_GetObjectItemCaseSensitive(o, "end")) {
			err = load_trailer(l, o, c.off, count, c.seen, c.crc);
			if (err == 0 && len + 1 != l->size - c.off)
				err = damaged(l, c.off + len + 1,
					      "data after the trailer");
			cJSON_Delete(o);
			return err;
		} else if (l->version >= 4 && c.seen == 0 &&
			   cJSON_GetObjectItemCaseSensitive(o, "ttl")) {
			err = db_load_lease_line(o, m);
			if (err == -EINVAL)
				err = damaged(l, c.off, "bad lease");
		} else if (l->version >= 3 &&
			   (cJSON_GetObjectItemCaseSensitive(o, "sess") ||
			    cJSON_GetObjectItemCaseSensitive(o, "lock"))) {
			err = db_load_lock_line(
			    o, cJSON_GetObjectItemCaseSensitive(o, "sess"), m);
			if (err == -EINVAL)
				err = damaged(l, c.off, "bad session or lock");
		} else {
			const char *why;
			struct kv_rec *rec =
			    load_rec(o, l->version, &why, &err);

			if (rec == NULL && err == 0)
				err = damaged(l, c.off, why);
			if (rec != NULL)
				err = add_rec(l, m, rec, c.off);
			c.seen++;
		}
		cJSON_Delete(o);
		if (err != 0)
			return err;
		c.crc = kv_crc32c(c.crc, line, len + 1);
		c.off += len + 1;
	}
}

uint64_t db_size(const char *dir)
{
	char *path = db_join(dir, DB_NAME);
	struct stat sb;
	uint64_t size = path && stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
	free(path);
	return size;
}

int db_load(const char *dir, struct map *m, struct db_meta *meta, char **errmsg)
{
	char *path = db_join(dir, DB_NAME);
	if (path == NULL) {
		meta->index = 0;
		meta->term = 0;
		meta->conf = NULL;
		return -ENOMEM;
	}
	int err = db_load_file(path, m, meta, errmsg);
	free(path);
	return err;
}

int db_load_file(const char *path, struct map *m, struct db_meta *meta,
		 char **errmsg)
{
	struct loader l = {.errmsg = errmsg};
	struct stat sb;
	void *base;
	int fd, err;

	meta->index = 0;
	meta->term = 0;
	meta->conf = NULL;
	l.path = path;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err = errno == ENOENT ? 0 : -errno;
		goto out_free;
	}
	if (fstat(fd, &sb) != 0) {
		err = -errno;
		goto out_close;
	}
	if (sb.st_size == 0) {
		err = damaged(&l, 0, "empty file");
		goto out_close;
	}
	l.size = (size_t)sb.st_size;
	base = mmap(NULL, l.size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (base == MAP_FAILED) {
		err = -errno;
		goto out_close;
	}
	madvise(base, l.size, MADV_SEQUENTIAL);
	l.base = base;
	err = load_lines(&l, m, meta);
	db_scratch_free(&l.sc);
	munmap(base, l.size);
	if (err != 0) {
		free(meta->conf);
		meta->conf = NULL;
	}
out_close:
	close(fd);
out_free:
	return err;
}
