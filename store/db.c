/* db.c - the db snapshot file: the map at an applied index, as JSON Lines.
 *
 * A header line (format version, index, term, record count, raft conf),
 * one line per record in map order, and a trailer with the count and a
 * CRC-32C of every byte before it. db_write streams the lines through a
 * buffer with write(2) into db.jsonl.tmp, syncs it, renames it over
 * db.jsonl and syncs the directory, so db.jsonl is always a complete
 * snapshot: any damage, a missing trailer included, is KV_ECORRUPT at load.
 * db_load maps the file and parses it a line at a time with cJSON. The
 * format is in docs/map-and-db.md. */
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

#define DB_NAME	 "db.jsonl"
#define DB_TMP	 "db.jsonl.tmp"
#define FLUSH_AT (1u << 20)

struct writer {
	int fd;
	uint32_t crc;
	struct kv_buf b;
};

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Write out the buffer (checksummed) if it is full, or always if force. */
static int flush(struct writer *w, bool force)
{
	int err;

	if (w->b.err)
		return w->b.err;
	if (!force && w->b.len < FLUSH_AT)
		return 0;
	w->crc = kv_crc32c(w->crc, w->b.p, w->b.len);
	err = write_all(w->fd, w->b.p, w->b.len);
	w->b.len = 0;
	return err;
}

static void put_rec(struct kv_buf *b, const struct kv_rec *r)
{
	kv_buf_puts(b, "{\"k\":");
	kv_buf_json_str(b, r->key, r->klen);
	if (kv_utf8_valid(r->val, r->vlen, false)) {
		kv_buf_puts(b, ",\"v\":");
		kv_buf_json_str(b, r->val, r->vlen);
	} else {
		kv_buf_puts(b, ",\"v64\":\"");
		kv_buf_base64(b, r->val, r->vlen);
		kv_buf_puts(b, "\"");
	}
	kv_buf_printf(b, ",\"cr\":%" PRIu64 ",\"mr\":%" PRIu64 ",\"mt\":",
		      r->create_rev, r->mod_rev);
	kv_buf_i64(b, r->mtime_ns);
	kv_buf_printf(b, ",\"mode\":%" PRIu32 "}\n", r->mode);
}

static int put_header(struct kv_buf *b, const struct db_meta *meta, size_t n)
{
	kv_buf_printf(b,
		      "{\"kvfs\":\"db\",\"version\":%d,\"index\":%" PRIu64
		      ",\"term\":%" PRIu64 ",\"count\":%zu,\"conf\":",
		      KV_FORMAT_VERSION, meta->index, meta->term, n);
	if (meta->conf != NULL) {
		/* Re-printed unformatted: one line, and known to be JSON. */
		cJSON *conf = cJSON_Parse(meta->conf);
		char *s = conf ? cJSON_PrintUnformatted(conf) : NULL;

		cJSON_Delete(conf);
		if (s == NULL)
			return conf ? -ENOMEM : -EINVAL;
		kv_buf_puts(b, s);
		cJSON_free(s);
	} else {
		kv_buf_puts(b, "null");
	}
	kv_buf_puts(b, "}\n");
	return 0;
}

static char *join(const char *dir, const char *name)
{
	char *p;

	if (asprintf(&p, "%s/%s", dir, name) < 0)
		return NULL;
	return p;
}

int db_write(const char *dir, const struct db_meta *meta,
	     struct kv_rec *const *recs, size_t n)
{
	struct writer w = {.fd = -1, .crc = 0};
	char *tmp = join(dir, DB_TMP), *path = join(dir, DB_NAME);
	int err = -ENOMEM;

	kv_buf_init(&w.b);
	if (tmp == NULL || path == NULL)
		goto out_free;
	w.fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (w.fd < 0) {
		err = -errno;
		goto out_free;
	}
	if ((err = put_header(&w.b, meta, n)) != 0)
		goto err_unlink;
	for (size_t i = 0; i < n; i++) {
		put_rec(&w.b, recs[i]);
		if ((err = flush(&w, false)) != 0)
			goto err_unlink;
	}
	if ((err = flush(&w, true)) != 0)
		goto err_unlink;
	kv_buf_printf(
	    &w.b, "{\"end\":true,\"count\":%zu,\"crc\":\"%08" PRIx32 "\"}\n", n,
	    w.crc);
	if ((err = flush(&w, true)) != 0)
		goto err_unlink;
	if (fsync(w.fd) != 0) {
		err = -errno;
		goto err_unlink;
	}
	if (close(w.fd) != 0) {
		w.fd = -1;
		err = -errno;
		goto err_unlink;
	}
	w.fd = -1;
	if (rename(tmp, path) != 0) {
		err = -errno;
		goto err_unlink;
	}
	err = kv_sync_dir(dir);
	goto out_free;

err_unlink:
	if (w.fd >= 0)
		close(w.fd);
	unlink(tmp);
out_free:
	kv_buf_free(&w.b);
	free(tmp);
	free(path);
	return err;
}

/* ---- loading ---- */

struct loader {
	const char *path;
	const char *base; /* the mapping */
	size_t size;
	char **errmsg;
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

static int load_header(const struct loader *l, const cJSON *h,
		       struct db_meta *meta, uint64_t *count)
{
	const cJSON *kvfs = cJSON_GetObjectItemCaseSensitive(h, "kvfs");
	const cJSON *ver = cJSON_GetObjectItemCaseSensitive(h, "version");
	const cJSON *conf = cJSON_GetObjectItemCaseSensitive(h, "conf");
	uint64_t v;

	if (!cJSON_IsString(kvfs) || strcmp(kvfs->valuestring, "db") != 0 ||
	    kv_json_uint(ver, KV_JSON_INT_MAX, &v) != 0)
		return damaged(l, 0, "not a kvfs db header");
	if (v != KV_FORMAT_VERSION) {
		if (l->errmsg != NULL) {
			free(*l->errmsg);
			if (asprintf(l->errmsg,
				     "%s: unknown format version %" PRIu64
				     " (this kvfs reads %d)",
				     l->path, v, KV_FORMAT_VERSION) < 0)
				*l->errmsg = NULL;
		}
		return KV_EVERSION;
	}
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

/* One record line into a new kv_rec; NULL with *why set if it is bad. */
static struct kv_rec *load_rec(const cJSON *o, const char **why, int *err)
{
	const cJSON *k = NULL, *v = NULL, *v64 = NULL, *cr = NULL, *mr = NULL,
		    *mt = NULL, *mode = NULL, *it;
	unsigned char *bin = NULL;
	const void *val;
	size_t vlen, klen;
	uint64_t create, modrev, md;
	int64_t mtime;
	struct kv_rec *rec;

	*why = "bad record";
	cJSON_ArrayForEach(it, o)
	{
		const cJSON **slot = strcmp(it->string, "k") == 0      ? &k
				     : strcmp(it->string, "v") == 0    ? &v
				     : strcmp(it->string, "v64") == 0  ? &v64
				     : strcmp(it->string, "cr") == 0   ? &cr
				     : strcmp(it->string, "mr") == 0   ? &mr
				     : strcmp(it->string, "mt") == 0   ? &mt
				     : strcmp(it->string, "mode") == 0 ? &mode
								       : NULL;
		if (slot == NULL || *slot != NULL)
			return NULL; /* unknown or repeated field */
		*slot = it;
	}
	if (!cJSON_IsString(k) || (v == NULL) == (v64 == NULL) ||
	    kv_json_uint(cr, KV_JSON_INT_MAX, &create) != 0 ||
	    kv_json_uint(mr, KV_JSON_INT_MAX, &modrev) != 0 ||
	    kv_json_i64(mt, &mtime) != 0 ||
	    kv_json_uint(mode, 0xffffffffu, &md) != 0)
		return NULL;
	klen = strlen(k->valuestring);
	if (kv_key_check(k->valuestring, klen) != 0) {
		*why = "bad key";
		return NULL;
	}
	if (!(S_ISREG(md) || S_ISDIR(md)) || (md & ~(S_IFMT | 07777)) != 0) {
		*why = "bad mode";
		return NULL;
	}
	if (v != NULL) {
		if (!cJSON_IsString(v))
			return NULL;
		val = v->valuestring;
		vlen = strlen(v->valuestring);
		if (!kv_utf8_valid(val, vlen, false)) {
			*why = "value is not UTF-8";
			return NULL;
		}
	} else {
		if (!cJSON_IsString(v64) ||
		    kv_base64_decode(v64->valuestring, strlen(v64->valuestring),
				     &bin, &vlen) != 0) {
			*why = "bad base64 value";
			return NULL;
		}
		val = bin;
	}
	if (S_ISDIR(md) && vlen != 0) {
		*why = "directory with a value";
		free(bin);
		return NULL;
	}
	rec = kv_rec_new(k->valuestring, klen, val, vlen);
	free(bin);
	if (rec == NULL) {
		*err = -ENOMEM;
		return NULL;
	}
	rec->mode = (uint32_t)md;
	rec->create_rev = create;
	rec->mod_rev = modrev;
	rec->mtime_ns = mtime;
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

static int load_lines(const struct loader *l, struct map *m,
		      struct db_meta *meta)
{
	size_t off = 0;
	uint64_t count = 0, seen = 0;
	uint32_t crc = 0;
	int err = 0;

	for (bool first = true;; first = false) {
		const char *line = l->base + off, *nl;
		size_t len;
		cJSON *o;

		if (off == l->size)
			return damaged(l, off, "no trailer (incomplete file)");
		nl = memchr(line, '\n', l->size - off);
		if (nl == NULL)
			return damaged(l, off, "unterminated last line");
		len = (size_t)(nl - line);
		o = kv_json_parse(line, len);
		if (o == NULL || !cJSON_IsObject(o)) {
			cJSON_Delete(o);
			return damaged(l, off, "not a JSON object");
		}
		if (first) {
			err = load_header(l, o, meta, &count);
		} else if (cJSON_GetObjectItemCaseSensitive(o, "end")) {
			err = load_trailer(l, o, off, count, seen, crc);
			if (err == 0 && len + 1 != l->size - off)
				err = damaged(l, off + len + 1,
					      "data after the trailer");
			cJSON_Delete(o);
			return err;
		} else {
			const char *why;
			struct kv_rec *rec = load_rec(o, &why, &err);

			if (rec == NULL && err == 0)
				err = damaged(l, off, why);
			if (rec != NULL) {
				err = map_append(m, rec);
				if (err != 0)
					kv_rec_unref(rec);
				if (err == -EINVAL)
					err = damaged(l, off,
						      "record out of order");
			}
			seen++;
		}
		cJSON_Delete(o);
		if (err != 0)
			return err;
		crc = kv_crc32c(crc, line, len + 1);
		off += len + 1;
	}
}

int db_load(const char *dir, struct map *m, struct db_meta *meta, char **errmsg)
{
	char *path = join(dir, DB_NAME);
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
