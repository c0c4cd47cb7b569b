/* db_write.c - writing the db snapshot file (db.c has the format's
 * outline and the loading): db_write streams the header, the lease
 * table, the records in map order, the lock table and the trailer
 * through a buffer with write(2) into db.jsonl.tmp, syncs it, renames it
 * over db.jsonl and syncs the directory, so db.jsonl is always a complete
 * snapshot. The format is in docs/map-and-db.md. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "codec.h"
#include "db.h"
#include "db_int.h"
#include "leases.h"
#include "locks.h"

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

/* Bytes as "name":"text" (UTF-8 without NUL) or "name64":"base64". */
static void put_bytes(struct kv_buf *b, const char *name, const void *p,
		      size_t n)
{
	size_t mark = b->len;
	kv_buf_printf(b, "\"%s\":", name);
	if (b->err || kv_buf_json_text(b, p, n))
		return;
	b->len = mark; /* not text: "name64" instead */
	b->p[mark] = '\0';
	kv_buf_printf(b, "\"%s64\":\"", name);
	kv_buf_base64(b, p, n);
	kv_buf_puts(b, "\"");
}

static void put_rec(struct kv_buf *b, const struct kv_rec *r)
{
	kv_buf_puts(b, "{\"k\":");
	kv_buf_json_str(b, kv_rec_key(r), r->klen);
	kv_buf_puts(b, ",");
	put_bytes(b, "v", kv_rec_val(r), r->vlen);
	kv_buf_printf(b, ",\"cr\":%" PRIu64 ",\"mr\":%" PRIu64 ",\"mt\":",
		      r->create_rev, r->mod_rev);
	kv_buf_i64(b, r->mtime_ns);
	kv_buf_puts(b, ",\"ct\":");
	kv_buf_i64(b, r->ctime_ns);
	kv_buf_puts(b, ",\"at\":");
	kv_buf_i64(b, r->atime_ns);
	kv_buf_printf(b, ",\"mode\":%" PRIu32, r->mode);
	if (r->uid != KV_NO_OWNER)
		kv_buf_printf(b, ",\"uid\":%" PRIu32, r->uid);
	if (r->gid != KV_NO_OWNER)
		kv_buf_printf(b, ",\"gid\":%" PRIu32, r->gid);
	if (kv_rec_lease(r) != 0)
		kv_buf_printf(b, ",\"lease\":%" PRIu64, kv_rec_lease(r));
	if (r->nxattr > 0) {
		kv_buf_puts(b, ",\"x\":[");
		for (size_t i = 0; i < r->nxattr; i++) {
			kv_buf_puts(b, i ? ",{\"n\":" : "{\"n\":");
			kv_buf_json_str(b, kv_rec_xattrs(r)[i].name,
					kv_rec_xattrs(r)[i].nlen);
			kv_buf_puts(b, ",");
			put_bytes(b, "v", kv_rec_xattrs(r)[i].val,
				  kv_rec_xattrs(r)[i].vlen);
			kv_buf_puts(b, "}");
		}
		kv_buf_puts(b, "]");
	}
	kv_buf_puts(b, "}\n");
}

/* The lock table: a line per session, then a line per lock. */
static void put_locks(struct kv_buf *b, const struct locks *l)
{
	for (size_t i = 0; i < l->ns; i++)
		kv_buf_printf(b,
			      "{\"sess\":%" PRIu64 ",\"node\":%" PRIu64
			      ",\"rev\":%" PRIu64 "}\n",
			      l->s[i].sid, l->s[i].node, l->s[i].rev);
	for (size_t i = 0; i < l->n; i++) {
		const struct lock_ent *e = &l->v[i];
		kv_buf_puts(b, "{\"lock\":");
		kv_buf_json_str(b, e->key, e->klen);
		kv_buf_printf(b,
			      ",\"sid\":%" PRIu64 ",\"own\":\"%" PRIu64
			      "\",\"pid\":%" PRIu32 ",\"lt\":%d,\"lkind\":%d"
			      ",\"ls\":",
			      e->sid, e->owner, e->pid, (int)e->type,
			      (int)e->kind);
		kv_buf_i64(b, (int64_t)e->start);
		kv_buf_puts(b, ",\"le\":");
		kv_buf_i64(b, (int64_t)e->end);
		kv_buf_puts(b, "}\n");
	}
}

/* The lease table: a line per lease, before the records on them. */
static void put_leases(struct kv_buf *b, const struct leases *l)
{
	for (size_t i = 0; i < l->n; i++)
		kv_buf_printf(b,
			      "{\"lease\":%" PRIu64 ",\"ttl\":%" PRIu64
			      ",\"rev\":%" PRIu64 "}\n",
			      l->v[i].id, l->v[i].ttl, l->v[i].rev);
}

static int put_header(struct kv_buf *b, const struct db_meta *meta, size_t n)
{
	kv_buf_printf(b,
		      "{\"kvfs\":\"db\",\"version\":%d,\"index\":%" PRIu64
		      ",\"term\":%" PRIu64 ",\"count\":%zu,\"conf\":",
		      DB_VERSION, meta->index, meta->term, n);
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

char *db_join(const char *dir, const char *name)
{
	char *p;

	if (asprintf(&p, "%s/%s", dir, name) < 0)
		return NULL;
	return p;
}

int db_write(const char *dir, const struct db_meta *meta,
	     struct kv_rec *const *recs, size_t n, const struct locks *locks)
{
	return db_write_tables(dir, meta, recs, n, locks, NULL);
}

int db_write_tables(const char *dir, const struct db_meta *meta,
		    struct kv_rec *const *recs, size_t n,
		    const struct locks *locks, const struct leases *leases)
{
	struct writer w = {.fd = -1, .crc = 0};
	char *tmp = db_join(dir, DB_TMP), *path = db_join(dir, DB_NAME);
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
	if (leases != NULL)
		put_leases(&w.b, leases);
	for (size_t i = 0; i < n; i++) {
		put_rec(&w.b, recs[i]);
		if ((err = flush(&w, false)) != 0)
			goto err_unlink;
	}
	if (locks != NULL)
		put_locks(&w.b, locks);
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
