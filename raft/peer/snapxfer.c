/* snapxfer.c - the receiving half of the snapshot transfer.
 *
 * Chunks are written straight into DATA_DIR/snapshot.incoming at their
 * offset; a sidecar (snapshot.incoming.meta, written and renamed before
 * the file restarts) names the snapshot it belongs to, so a restarted
 * process resumes where the file ends. Nothing is synced until the last
 * chunk: then the file is synced, checked whole against the sender's CRC
 * (which also catches a tail damaged by a crash), and renamed to
 * snapshot.ready. The sending half is snapxfer_send.c; the API and the
 * rules are in snapxfer.h, the protocol in docs/peer-protocol.md. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "kv.h"
#include "snapxfer.h"

/* The buffer the whole-file check reads through. */
#define CHECK_BUF (64u * 1024u)

struct snapxfer_recv {
	pthread_mutex_t mu; /* guards everything below */
	char *dir, *inc, *meta, *ready;
	int fd;		      /* snapshot.incoming, or -1 */
	uint64_t index, term; /* its snapshot; index 0: none */
	uint64_t end;	      /* its length */
	/* The snapshot completed last, for a repeated done. */
	uint64_t done_index, done_term, done_size;
	uint32_t done_crc;
};

#define WHY(...)                                                               \
	do {                                                                   \
		if (why != NULL && why_len > 0)                                \
			snprintf(why, why_len, __VA_ARGS__);                   \
	} while (0)

/* ---- parsing ---- */

/* A plain decimal number: digits only, no sign, no spaces, fits 63 bits. */
static int parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (s == NULL || *s == '\0' || strlen(s) > 19)
		return -EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	if (v > INT64_MAX)
		return -EINVAL;
	*out = v;
	return 0;
}

/* Exactly 8 hex digits. */
static int parse_crc(const char *s, uint32_t *out)
{
	uint32_t v = 0;

	if (s == NULL || strlen(s) != 8)
		return -EINVAL;
	for (; *s; s++) {
		int d = (*s >= '0' && *s <= '9')   ? *s - '0'
			: (*s >= 'a' && *s <= 'f') ? *s - 'a' + 10
			: (*s >= 'A' && *s <= 'F') ? *s - 'A' + 10
						   : -1;
		if (d < 0)
			return -EINVAL;
		v = v << 4 | (uint32_t)d;
	}
	*out = v;
	return 0;
}

int snapxfer_parse(const struct snapxfer_params *p, const void *body,
		   size_t len, struct snapxfer_chunk *c, char *why,
		   size_t why_len)
{
	memset(c, 0, sizeof(*c));
	if (parse_u64(p->index, &c->index) != 0 || c->index == 0) {
		WHY("index must be a number >= 1");
		return -EINVAL;
	}
	if (parse_u64(p->term, &c->term) != 0) {
		WHY("term must be a number");
		return -EINVAL;
	}
	if (parse_u64(p->offset, &c->offset) != 0) {
		WHY("offset must be a number");
		return -EINVAL;
	}
	if (parse_crc(p->chunk_crc, &c->crc) != 0) {
		WHY("%s must be 8 hex digits", SNAPXFER_HDR_CRC);
		return -EINVAL;
	}
	if (p->done != NULL) {
		if (strcmp(p->done, "1") != 0) {
			WHY("done must be 1 if present");
			return -EINVAL;
		}
		c->done = true;
		if (parse_u64(p->total, &c->total) != 0 ||
		    parse_crc(p->crc, &c->file_crc) != 0) {
			WHY("done needs total (a number) and crc (8 hex "
			    "digits)");
			return -EINVAL;
		}
	} else if (p->total != NULL || p->crc != NULL) {
		WHY("total and crc go only with done=1");
		return -EINVAL;
	}
	c->data = body;
	c->len = len;
	return 0;
}

/* ---- files ---- */

static char *join(const char *dir, const char *name)
{
	char *p;

	if (asprintf(&p, "%s/%s", dir, name) < 0)
		return NULL;
	return p;
}

/* Read the sidecar: 0 and the snapshot, or -EINVAL / -errno. */
static int meta_read(const char *path, uint64_t *index, uint64_t *term)
{
	char buf[512];
	cJSON *j, *k, *v, *i, *t;
	int fd = open(path, O_RDONLY | O_CLOEXEC), err = -EINVAL;
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -EINVAL;
	buf[n] = '\0';
	j = cJSON_Parse(buf);
	k = cJSON_GetObjectItemCaseSensitive(j, "kvfs");
	v = cJSON_GetObjectItemCaseSensitive(j, "version");
	i = cJSON_GetObjectItemCaseSensitive(j, "index");
	t = cJSON_GetObjectItemCaseSensitive(j, "term");
	if (cJSON_IsString(k) && strcmp(k->valuestring, "snapxfer") == 0 &&
	    cJSON_IsNumber(v) && v->valuedouble == KV_FORMAT_VERSION &&
	    cJSON_IsNumber(i) && i->valuedouble >= 1 &&
	    i->valuedouble < 9007199254740992.0 && cJSON_IsNumber(t) &&
	    t->valuedouble >= 0 && t->valuedouble < 9007199254740992.0) {
		*index = (uint64_t)i->valuedouble;
		*term = (uint64_t)t->valuedouble;
		err = 0;
	}
	cJSON_Delete(j);
	return err;
}

/* Replace the sidecar with one naming (index, term): temp file, fsync,
 * rename, fsync the directory (kv_file_replace). */
static int meta_write(struct snapxfer_recv *r, uint64_t index, uint64_t term)
{
	char buf[160];
	int len =
	    snprintf(buf, sizeof(buf),
		     "{\"kvfs\":\"snapxfer\",\"version\":%d,\"index\":%" PRIu64
		     ",\"term\":%" PRIu64 "}\n",
		     KV_FORMAT_VERSION, index, term);

	return kv_file_replace(r->dir, SNAPXFER_META, buf, (size_t)len, 0644);
}

static void forget(struct snapxfer_recv *r)
{
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
	r->index = r->term = r->end = 0;
}

/* Drop the partial file and begin an empty one for (index, term): the
 * old file goes first, then the sidecar is replaced, then the new file
 * is created, so a sidecar never names older data. */
static int restart(struct snapxfer_recv *r, uint64_t index, uint64_t term)
{
	int err;

	forget(r);
	if (unlink(r->inc) != 0 && errno != ENOENT)
		return -errno;
	if ((err = meta_write(r, index, term)) != 0)
		return err;
	r->fd = open(r->inc, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (r->fd < 0)
		return -errno;
	if ((err = kv_sync_dir(r->dir)) != 0) {
		forget(r);
		return err;
	}
	r->index = index;
	r->term = term;
	return 0;
}

/* Cut the file back to empty after a failed check (same snapshot). */
static int truncate_all(struct snapxfer_recv *r)
{
	if (ftruncate(r->fd, 0) != 0)
		return -errno;
	r->end = 0;
	return 0;
}

int snapxfer_recv_new(const char *dir, struct snapxfer_recv **out)
{
	struct snapxfer_recv *r = calloc(1, sizeof(*r));
	struct stat st;

	if (r == NULL)
		return -ENOMEM;
	r->fd = -1;
	r->dir = strdup(dir);
	r->inc = join(dir, SNAPXFER_INCOMING);
	r->meta = join(dir, SNAPXFER_META);
	r->ready = join(dir, SNAPXFER_READY);
	if (r->dir == NULL || r->inc == NULL || r->meta == NULL ||
	    r->ready == NULL) {
		snapxfer_recv_free(r);
		return -ENOMEM;
	}
	pthread_mutex_init(&r->mu, NULL);
	if (meta_read(r->meta, &r->index, &r->term) == 0) {
		r->fd = open(r->inc, O_RDWR | O_CLOEXEC);
		if (r->fd >= 0 && fstat(r->fd, &st) == 0)
			r->end = (uint64_t)st.st_size;
		else
			forget(r);
	}
	if (r->index == 0) {
		/* Nothing to resume: no stale partial file either. */
		unlink(r->inc);
		unlink(r->meta);
	}
	*out = r;
	return 0;
}

void snapxfer_recv_free(struct snapxfer_recv *r)
{
	if (r == NULL)
		return;
	if (r->dir != NULL && r->inc != NULL && r->meta != NULL &&
	    r->ready != NULL) {
		forget(r);
		pthread_mutex_destroy(&r->mu);
	}
	free(r->dir);
	free(r->inc);
	free(r->meta);
	free(r->ready);
	free(r);
}

/* CRC-32C of the first size bytes of fd. */
static int file_crc(int fd, uint64_t size, uint32_t *out)
{
	unsigned char *buf = malloc(CHECK_BUF);
	uint32_t crc = 0;
	uint64_t off = 0;

	if (buf == NULL)
		return -ENOMEM;
	while (off < size) {
		size_t want =
		    size - off < CHECK_BUF ? (size_t)(size - off) : CHECK_BUF;
		ssize_t n = pread(fd, buf, want, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			free(buf);
			return n < 0 ? -errno : -EIO;
		}
		crc = kv_crc32c(crc, buf, (size_t)n);
		off += (uint64_t)n;
	}
	free(buf);
	*out = crc;
	return 0;
}

/* The last call: verify, sync, rename. 1, or an error (see the header). */
static int finish(struct snapxfer_recv *r, const struct snapxfer_chunk *c,
		  struct snapxfer_ready *ready, char *why, size_t why_len)
{
	uint32_t crc = 0;
	int err;

	if (r->end < c->total) {
		WHY("have %" PRIu64 " of %" PRIu64 " bytes", r->end, c->total);
		return -ERANGE;
	}
	if (r->end > c->total) {
		WHY("have %" PRIu64 " bytes, more than the %" PRIu64
		    " announced; starting over",
		    r->end, c->total);
		err = truncate_all(r);
		return err != 0 ? err : -EBADMSG;
	}
	/* A resent chunk or a failed write may have left bytes past the
	 * end. */
	if (ftruncate(r->fd, (off_t)r->end) != 0 || fsync(r->fd) != 0)
		return -errno;
	if ((err = file_crc(r->fd, r->end, &crc)) != 0)
		return err;
	if (crc != c->file_crc) {
		WHY("the file's CRC-32C is %08" PRIx32 ", not %08" PRIx32
		    "; starting over",
		    crc, c->file_crc);
		err = truncate_all(r);
		return err != 0 ? err : -EBADMSG;
	}
	if (rename(r->inc, r->ready) != 0)
		return -errno;
	unlink(r->meta);
	if ((err = kv_sync_dir(r->dir)) != 0)
		return err;
	r->done_index = r->index;
	r->done_term = r->term;
	r->done_size = r->end;
	r->done_crc = crc;
	if (ready != NULL) {
		ready->index = r->index;
		ready->term = r->term;
		ready->size = r->end;
		snprintf(ready->path, sizeof(ready->path), "%s", r->ready);
	}
	forget(r);
	return 1;
}

/* A chunk for the snapshot completed last while its file still waits: a
 * probe learns it is all there, a matching done hears "complete" again.
 * -1 if this does not apply. */
static int repeat_done(struct snapxfer_recv *r, const struct snapxfer_chunk *c,
		       uint64_t *next, struct snapxfer_ready *ready)
{
	struct stat st;

	if (r->index != 0 || c->index != r->done_index ||
	    c->term != r->done_term || c->len != 0 ||
	    stat(r->ready, &st) != 0 || (uint64_t)st.st_size != r->done_size)
		return -1;
	if (c->done && (c->total != r->done_size || c->file_crc != r->done_crc))
		return -1;
	*next = r->done_size;
	if (!c->done)
		return 0;
	if (ready != NULL) {
		ready->index = r->done_index;
		ready->term = r->done_term;
		ready->size = r->done_size;
		snprintf(ready->path, sizeof(ready->path), "%s", r->ready);
	}
	return 1;
}

static int take(struct snapxfer_recv *r, const struct snapxfer_chunk *c,
		uint64_t *next, struct snapxfer_ready *ready, char *why,
		size_t why_len)
{
	int err;

	if ((err = repeat_done(r, c, next, ready)) >= 0)
		return err;
	if (c->index != r->index || c->term != r->term || r->fd < 0) {
		if ((err = restart(r, c->index, c->term)) != 0) {
			WHY("cannot start %s: %s", r->inc, strerror(-err));
			return err;
		}
	}
	*next = r->end;
	if (c->offset > r->end) {
		WHY("offset %" PRIu64 " is past the %" PRIu64 " bytes received",
		    c->offset, r->end);
		return -ERANGE;
	}
	if (c->len > 0) {
		uint64_t end = c->offset + c->len;

		/* Bytes past the new end (a resent chunk behind the end)
		 * stay until finish() cuts the file at r->end. */
		err = kv_pwrite_all(r->fd, c->data, c->len, c->offset);
		if (err != 0) {
			/* Whatever landed is checked at the end; resume
			 * from the last offset known to be whole. */
			WHY("writing %s: %s", r->inc, strerror(-err));
			if (c->offset < r->end)
				r->end = c->offset;
			*next = r->end;
			return err;
		}
		r->end = end;
		*next = end;
	}
	if (!c->done)
		return 0;
	err = finish(r, c, ready, why, why_len);
	*next = err == 1 ? c->total : r->end;
	return err;
}

int snapxfer_recv_chunk(struct snapxfer_recv *r, const struct snapxfer_chunk *c,
			uint64_t *next, struct snapxfer_ready *ready, char *why,
			size_t why_len)
{
	int err;

	pthread_mutex_lock(&r->mu);
	*next = c->index == r->index && c->term == r->term ? r->end : 0;
	if (c->len > SNAPXFER_MAX_CHUNK) {
		WHY("a chunk of %zu bytes, more than %u", c->len,
		    SNAPXFER_MAX_CHUNK);
		err = -EFBIG;
	} else if (kv_crc32c(0, c->data, c->len) != c->crc) {
		WHY("the chunk at offset %" PRIu64 " fails its CRC-32C",
		    c->offset);
		err = -EBADMSG;
	} else {
		err = take(r, c, next, ready, why, why_len);
	}
	pthread_mutex_unlock(&r->mu);
	return err;
}

int snapxfer_http_status(int err)
{
	switch (err) {
	case 0:
	case 1:
		return 200;
	case -ERANGE:
		return 409;
	case -EBADMSG:
	case -EINVAL:
		return 400;
	case -EFBIG:
		return 413;
	case -ENOSPC:
		return 507;
	case -ENOMEM:
		return 503;
	default:
		return 500;
	}
}

size_t snapxfer_reply(int err, uint64_t next, const char *why, char *buf,
		      size_t size)
{
	char esc[200];
	size_t n = 0;
	int len;

	/* The reason, made safe for a JSON string without a JSON writer. */
	for (const char *p = why;
	     err < 0 && p != NULL && *p && n < sizeof(esc) - 1; p++)
		esc[n++] = (*p < 0x20 || *p > 0x7e || *p == '"' || *p == '\\')
			       ? ' '
			       : *p;
	esc[n] = '\0';
	if (err < 0)
		len = snprintf(buf, size,
			       "{\"offset\":%" PRIu64
			       ",\"ready\":false,\"error\":\"%s\"}",
			       next, n ? esc : kv_strerror(err));
	else
		len =
		    snprintf(buf, size, "{\"offset\":%" PRIu64 ",\"ready\":%s}",
			     next, err == 1 ? "true" : "false");
	if (len < 0)
		return 0;
	return (size_t)len < size ? (size_t)len : size - 1;
}
