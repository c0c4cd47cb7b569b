/* http_body.c - a request's body, from its headers to its last byte.
 *
 * Content-Length and Transfer-Encoding decide before any body is read
 * whether a body is acceptable at all; the bytes are then kept up to the
 * route's limit (a raw body, or the form field "value" through MHD's post
 * processor), within a budget shared by every connection so that many
 * large uploads cannot exhaust memory, and past the limit only counted
 * (drained) or cut off. Routing and the request's life are in
 * http_request.c. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "http_int.h"

/* A form body may percent-encode every byte of the largest value. */
#define HTTP_FORM_MAX_BODY (3u * (size_t)KV_MAX_VALUE + 64u * 1024u)
/* Past this many body bytes a request that is refused anyway is cut off
 * instead of read to its end. */
#define HTTP_DRAIN_MAX (4u * (uint64_t)KV_MAX_VALUE)

/* Bodies held at once by all connections together; past it a request is
 * answered 503 (retry) rather than letting many large uploads exhaust
 * memory. */
#define HTTP_BODY_BUDGET (256u * 1024u * 1024u)

void http_body_drop(struct http_req *r)
{
	free(r->body);
	r->body = NULL;
	r->len = r->cap = 0;
	atomic_fetch_sub(&r->http->body_bytes, r->reserved);
	r->reserved = 0;
}

/* Make room for cap bytes of body, within the listener's budget. 0,
 * -EBUSY or -ENOMEM. */
static int body_reserve(struct http_req *r, size_t cap)
{
	unsigned char *b;

	if (cap <= r->cap)
		return 0;
	size_t delta = cap - r->reserved;
	if (atomic_fetch_add(&r->http->body_bytes, delta) + delta >
	    HTTP_BODY_BUDGET) {
		atomic_fetch_sub(&r->http->body_bytes, delta);
		return -EBUSY;
	}
	r->reserved = cap;
	b = realloc(r->body, cap);
	if (!b)
		return -ENOMEM;
	r->body = b;
	r->cap = cap;
	return 0;
}

/* Append body bytes (or form value bytes), within the route's limit; past
 * it or the budget the body is dropped and the rest is only counted.
 * 0, -EFBIG, -EBUSY or -ENOMEM. */
static int body_append(struct http_req *r, const char *data, size_t size)
{
	size_t max = r->route->max_body;
	int rc = 0;

	if (size > max - r->len) {
		rc = -EFBIG;
	} else if (r->len + size > r->cap) {
		size_t cap = r->cap ? r->cap : 64 * 1024;
		while (cap < r->len + size)
			cap *= 2;
		rc = body_reserve(r, cap < max ? cap : max);
	}
	if (rc == -EFBIG)
		r->too_large = true;
	if (rc == -EBUSY)
		r->busy = true;
	if (rc < 0) {
		http_body_drop(r);
		return rc;
	}
	memcpy(r->body + r->len, data, size);
	r->len += size;
	return 0;
}

/* The post processor hands us form fields in pieces; only "value" is kept
 * (the first one), bounded by the route's limit. */
static enum MHD_Result on_form_field(void *cls, enum MHD_ValueKind kind,
				     const char *key, const char *filename,
				     const char *content_type,
				     const char *transfer_encoding,
				     const char *data, uint64_t off,
				     size_t size)
{
	struct http_req *r = cls;

	(void)kind;
	(void)filename;
	(void)content_type;
	(void)transfer_encoding;
	if (!key || strcmp(key, "value") != 0 || r->value_done)
		return MHD_YES;
	if (off == 0 && r->has_value && r->len > 0) {
		r->value_done = true; /* a second "value" field */
		return MHD_YES;
	}
	r->has_value = true;
	if (r->too_large || r->busy || size == 0)
		return MHD_YES;
	return body_append(r, data, size) == -ENOMEM ? MHD_NO : MHD_YES;
}

bool http_body_begin(struct http_req *r)
{
	const char *cl = http_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
	const char *te = http_header(r, MHD_HTTP_HEADER_TRANSFER_ENCODING);
	bool chunked = te && strcasestr(te, "chunked") != NULL;
	size_t max = r->route->body == HTTP_BODY_FORM ? HTTP_FORM_MAX_BODY
						      : r->route->max_body;
	unsigned long long len = 0;

	if (r->route->body == HTTP_BODY_STREAM)
		return true; /* unbounded; its frames are bounded */

	if (!cl && !chunked) {
		/* ?add takes no body: none is none (RFC 9112 6.3) */
		if (r->route->body == HTTP_BODY_RAW &&
		    !http_query_has(r, "add")) {
			http_fail(r, MHD_HTTP_LENGTH_REQUIRED,
				  "length_required",
				  "a body needs Content-Length or chunked "
				  "transfer encoding");
			return false;
		}
		return true; /* a form may come in the query alone */
	}
	if (cl) {
		char *end;
		errno = 0;
		len = strtoull(cl, &end, 10);
		if (errno || end == cl || *end || cl[0] == '-') {
			http_fail(r, MHD_HTTP_BAD_REQUEST, "bad_request",
				  "bad Content-Length");
			return false;
		}
		if (len > max) {
			http_fail(r, MHD_HTTP_CONTENT_TOO_LARGE, "too_large",
				  "the body is larger than the limit");
			return false;
		}
	}
	if (r->route->body == HTTP_BODY_RAW && len > 0) {
		int rc = body_reserve(r, (size_t)len);
		if (rc == -EBUSY) {
			http_fail(r, MHD_HTTP_SERVICE_UNAVAILABLE, "not_ready",
				  "too many large uploads at once; retry");
			return false;
		}
		if (rc < 0)
			return false;
	}
	if (r->route->body == HTTP_BODY_FORM && (chunked || len > 0)) {
		r->pp = MHD_create_post_processor(r->conn, 64 * 1024,
						  on_form_field, r);
		if (!r->pp) {
			http_fail(r, MHD_HTTP_BAD_REQUEST, "bad_request",
				  "the body must be a form "
				  "(application/x-www-form-urlencoded or "
				  "multipart/form-data)");
			return false;
		}
	}
	return true;
}

enum MHD_Result http_body_piece(struct http_req *r, const char *data,
				size_t size)
{
	r->received += size;
	if (r->route->body == HTTP_BODY_STREAM)
		return r->route->stream(r, data, size);
	if (r->received > HTTP_DRAIN_MAX)
		return MHD_NO; /* refused anyway; stop reading */
	if (!(r->method & r->route->body_methods) || r->too_large || r->busy ||
	    r->bad_form)
		return MHD_YES; /* drained */
	if (r->route->body == HTTP_BODY_FORM) {
		if (r->received > HTTP_FORM_MAX_BODY) {
			r->too_large = true;
			return MHD_YES;
		}
		if (r->pp && MHD_post_process(r->pp, data, size) != MHD_YES)
			r->bad_form = true;
		return MHD_YES;
	}
	/* chunked bodies (and ones longer than they said) are counted */
	if (body_append(r, data, size) == -ENOMEM)
		return MHD_NO;
	return MHD_YES;
}

bool http_body_refused(struct http_req *r, enum MHD_Result *ret)
{
	if (r->too_large)
		*ret = http_fail(r, MHD_HTTP_CONTENT_TOO_LARGE, "too_large",
				 "the value is larger than the limit");
	else if (r->busy)
		*ret = http_fail(r, MHD_HTTP_SERVICE_UNAVAILABLE, "not_ready",
				 "too many large uploads at once; retry");
	else if (r->bad_form)
		*ret = http_fail(r, MHD_HTTP_BAD_REQUEST, "bad_request",
				 "malformed form body");
	else
		return false;
	return true;
}

void http_body_done(struct http_req *r)
{
	if (r->pp) {
		MHD_destroy_post_processor(r->pp);
		r->pp = NULL;
	}
}
