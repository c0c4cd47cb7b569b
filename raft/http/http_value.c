/* http_value.c - the response to a GET of a key: its value and the
 * headers docs/http-api.md names, built once per version of the key.
 *
 * libmicrohttpd copies every header into a list of its own (three
 * allocations each, a scan of the value for CR and LF), and frees them
 * with the response: for a GET of a small value the six headers cost more
 * than the rest of kvfs's part of the request (docs/benchmarks.md, issue
 * 25). A response can be queued on any number of connections, so the
 * listener keeps the last one it built for a key, with the record it was
 * built from: records are immutable and shared (kv.h), so while the
 * response holds its record the same pointer is the same version, and a
 * GET of that record again queues the same response. Slots are chosen by
 * the key's hash, so a newer version of the key takes its older one's
 * slot; a slot keeps its record alive until another key's GET takes it,
 * so only values up to HTTP_VALUE_CACHE_MAX are kept (about 1.7 KiB of
 * value, record and response each, about 7 MiB for a full table). A GET with
 * If-None-Match, or of a bigger value, builds its own response, as every
 * GET did before (http_value_response, the same code). Only the
 * listener's thread uses the table. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "http_int.h"

struct value_slot {
	struct kv_rec *rec; /* the version resp was built from */
	struct MHD_Response *resp;
};

struct http_value_cache {
	struct value_slot slot[HTTP_VALUE_CACHE_SLOTS];
	uint64_t hits, misses;
};

static void rec_release(void *cls)
{
	kv_rec_unref(cls);
}

struct MHD_Response *http_value_response(struct kv_rec *rec, bool no_body)
{
	static char empty[1];
	char buf[64];
	void *val = rec->vlen ? (void *)kv_rec_val(rec) : empty;
	struct MHD_Response *resp =
	    MHD_create_response_from_buffer_with_free_callback_cls(
		no_body ? 0 : rec->vlen, val, rec_release, rec);

	if (!resp)
		return NULL;
	http_format_etag(rec->mod_rev, buf, sizeof buf);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, buf);
	http_format_date(rec->mtime_ns, buf, sizeof buf);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_LAST_MODIFIED, buf);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				"application/octet-stream");
	http_format_u64(rec->create_rev, buf, sizeof buf);
	MHD_add_response_header(resp, "X-Kvfs-Create-Revision", buf);
	http_format_u64(rec->mod_rev, buf, sizeof buf);
	MHD_add_response_header(resp, "X-Kvfs-Mod-Revision", buf);
	http_format_i64(rec->mtime_ns, buf, sizeof buf);
	MHD_add_response_header(resp, "X-Kvfs-Mtime-Ns", buf);
	if (kv_rec_lease(rec) != 0) {
		snprintf(buf, sizeof buf, "%" PRIu64, kv_rec_lease(rec));
		MHD_add_response_header(resp, "X-Kvfs-Lease", buf);
	}
	return resp;
}

int http_value_cache_new(struct http_value_cache **out)
{
	*out = calloc(1, sizeof **out);
	return *out ? 0 : -ENOMEM;
}

void http_value_cache_free(struct http_value_cache *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < HTTP_VALUE_CACHE_SLOTS; i++)
		if (c->slot[i].resp)
			MHD_destroy_response(c->slot[i].resp); /* and its rec */
	free(c);
}

static size_t slot_of(const struct kv_rec *rec)
{
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a of the key */
	for (uint32_t i = 0; i < rec->klen; i++)
		h = (h ^ (unsigned char)kv_rec_key(rec)[i]) * 0x100000001b3ull;
	return (size_t)(h ^ h >> 29) & (HTTP_VALUE_CACHE_SLOTS - 1);
}

struct MHD_Response *http_value_cached(struct http_value_cache *c,
				       struct kv_rec *rec)
{
	if (!c || rec->vlen > HTTP_VALUE_CACHE_MAX)
		return NULL;
	struct value_slot *s = &c->slot[slot_of(rec)];
	if (s->rec == rec) {
		c->hits++;
		kv_rec_unref(rec); /* the slot's response holds it */
		return s->resp;
	}
	struct MHD_Response *resp = http_value_response(rec, false);
	if (!resp)
		return NULL;
	c->misses++;
	if (s->resp)
		MHD_destroy_response(s->resp); /* once no connection sends it */
	s->rec = rec;			       /* the response owns our ref */
	s->resp = resp;
	return resp;
}

void http_value_cache_counts(const struct http_value_cache *c, uint64_t *hits,
			     uint64_t *misses)
{
	*hits = c ? c->hits : 0;
	*misses = c ? c->misses : 0;
}
