/* http_reply.c - HTTP responses: JSON bodies, errors, entity tags, dates.
 *
 * Every error leaves the node as {"error":"message","code":"stable_code"}
 * with a status; http_error_status is the one place where kvfs's errors
 * (negative errno and the kv codes of store.h) become HTTP statuses. Error
 * messages are our own text, never request bytes, so the JSON is always
 * valid. Requests are taken in by http.c; handlers are in http_kv.c. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec.h"
#include "http_int.h"

void http_error_status(int err, unsigned *status, const char **code)
{
	switch (err) {
	case -EINVAL:
		*status = MHD_HTTP_BAD_REQUEST;
		*code = "bad_request";
		return;
	case -ENAMETOOLONG:
		*status = MHD_HTTP_BAD_REQUEST;
		*code = "bad_key";
		return;
	case -ENOENT:
		*status = MHD_HTTP_NOT_FOUND;
		*code = "not_found";
		return;
	case KV_EPRECOND:
		*status = MHD_HTTP_PRECONDITION_FAILED;
		*code = "precondition_failed";
		return;
	case -EFBIG:
		*status = MHD_HTTP_CONTENT_TOO_LARGE;
		*code = "too_large";
		return;
	case -EISDIR:
	case -ENOTDIR:
	case -ENOTEMPTY:
	case -EEXIST:
		*status = MHD_HTTP_CONFLICT;
		*code = "conflict";
		return;
	case KV_ENOQUORUM:
		*status = MHD_HTTP_SERVICE_UNAVAILABLE;
		*code = "no_quorum";
		return;
	case KV_ESHUTDOWN:
	case KV_ENOTLEADER:
	case -EAGAIN:
	case -ETIMEDOUT:
		*status = MHD_HTTP_SERVICE_UNAVAILABLE;
		*code = "not_ready";
		return;
	case -ENOSPC:
	case -EDQUOT:
		*status = MHD_HTTP_INSUFFICIENT_STORAGE;
		*code = "disk_full";
		return;
	default: /* KV_EFAILED, KV_ECORRUPT, -EIO, -ENOMEM, ... */
		*status = MHD_HTTP_INTERNAL_SERVER_ERROR;
		*code = "internal";
		return;
	}
}

static void add_allow(struct MHD_Response *resp, unsigned allow)
{
	static const struct {
		unsigned bit;
		const char *name;
	} names[] = {
	    {HTTP_GET, "GET"},	 {HTTP_HEAD, "HEAD"},	  {HTTP_PUT, "PUT"},
	    {HTTP_POST, "POST"}, {HTTP_DELETE, "DELETE"},
	};
	char buf[64] = "";

	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		if (!(allow & names[i].bit))
			continue;
		if (buf[0])
			strcat(buf, ", ");
		strcat(buf, names[i].name);
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, buf);
}

enum MHD_Result http_queue(struct http_req *r, unsigned status,
			   struct MHD_Response *resp)
{
	enum MHD_Result ret;

	if (!resp)
		return MHD_NO;
	if (status == MHD_HTTP_SERVICE_UNAVAILABLE)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		add_allow(resp, r->allow);
	r->reply_status = status;
	if (r->offloaded) {
		/* not the listener's thread: kept for it (http.c) */
		if (r->reply)
			MHD_destroy_response(r->reply);
		r->reply = resp;
		r->reply_status = status;
		r->answered = true;
		return MHD_YES;
	}
	ret = MHD_queue_response(r->conn, status, resp);
	MHD_destroy_response(resp);
	if (ret == MHD_YES)
		r->answered = true;
	return ret;
}

enum MHD_Result http_queue_kept(struct http_req *r, unsigned status,
				struct MHD_Response *resp)
{
	r->reply_status = status;
	enum MHD_Result ret = MHD_queue_response(r->conn, status, resp);
	if (ret == MHD_YES)
		r->answered = true;
	return ret;
}

enum MHD_Result http_reply_json(struct http_req *r, unsigned status,
				const char *json, size_t len)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(
	    len, (void *)json, MHD_RESPMEM_MUST_COPY);

	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				"application/json");
	return http_queue(r, status, resp);
}

enum MHD_Result http_fail(struct http_req *r, unsigned status, const char *code,
			  const char *msg)
{
	cJSON *o = cJSON_CreateObject();
	char *text = NULL;
	enum MHD_Result ret = MHD_NO;

	if (!o)
		return MHD_NO;
	if (!cJSON_AddStringToObject(o, "error", msg) ||
	    !cJSON_AddStringToObject(o, "code", code))
		goto out_free;
	text = cJSON_PrintUnformatted(o);
	if (!text)
		goto out_free;
	ret = http_reply_json(r, status, text, strlen(text));
	free(text);
out_free:
	cJSON_Delete(o);
	return ret;
}

enum MHD_Result http_fail_err(struct http_req *r, int err, const char *msg)
{
	unsigned status;
	const char *code;

	http_error_status(err, &status, &code);
	return http_fail(r, status, code, msg ? msg : kv_strerror(err));
}

int http_parse_etag(const char *s, uint64_t *rev)
{
	const char *p = s, *end;
	uint64_t v = 0;

	while (*p == ' ' || *p == '\t')
		p++;
	if (strncmp(p, "W/", 2) == 0)
		p += 2;
	bool quoted = *p == '"';
	if (quoted)
		p++;
	if (*p < '0' || *p > '9')
		return -EINVAL;
	for (end = p; *end >= '0' && *end <= '9'; end++) {
		unsigned d = (unsigned)(*end - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -EINVAL;
		v = v * 10 + d;
	}
	if (quoted) {
		if (*end != '"')
			return -EINVAL;
		end++;
	}
	while (*end == ' ' || *end == '\t')
		end++;
	if (*end || v == 0)
		return -EINVAL;
	*rev = v;
	return 0;
}

size_t http_format_u64(uint64_t v, char *buf, size_t size)
{
	char tmp[20];
	size_t n = kv_u64_dec(tmp, v);

	if (size == 0)
		return n;
	size_t w = n < size ? n : size - 1;
	memcpy(buf, tmp, w);
	buf[w] = '\0';
	return n;
}

size_t http_format_i64(int64_t v, char *buf, size_t size)
{
	if (v >= 0)
		return http_format_u64((uint64_t)v, buf, size);
	if (size < 2) {
		if (size)
			buf[0] = '\0';
		return 1 + http_format_u64(0 - (uint64_t)v, NULL, 0);
	}
	buf[0] = '-';
	return 1 + http_format_u64(0 - (uint64_t)v, buf + 1, size - 1);
}

void http_format_etag(uint64_t rev, char *buf, size_t size)
{
	if (size < 23) { /* '"', 20 digits, '"', NUL */
		snprintf(buf, size, "\"%" PRIu64 "\"", rev);
		return;
	}
	buf[0] = '"';
	size_t n = http_format_u64(rev, buf + 1, size - 1);
	buf[1 + n] = '"';
	buf[2 + n] = '\0';
}

static char *two_digits(char *p, int v)
{
	p[0] = (char)('0' + v / 10 % 10);
	p[1] = (char)('0' + v % 10);
	return p + 2;
}

void http_format_date(int64_t ns, char *buf, size_t size)
{
	static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed",
					"Thu", "Fri", "Sat"};
	static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr",
					   "May", "Jun", "Jul", "Aug",
					   "Sep", "Oct", "Nov", "Dec"};
	time_t t = (time_t)(ns / 1000000000);
	struct tm tm;

	if (ns < 0 || !gmtime_r(&t, &tm)) {
		t = 0;
		gmtime_r(&t, &tm);
	}
	if (size < 30 || tm.tm_year + 1900 > 9999) {
		snprintf(buf, size, "%s, %02d %s %04d %02d:%02d:%02d GMT",
			 days[tm.tm_wday % 7], tm.tm_mday,
			 months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour,
			 tm.tm_min, tm.tm_sec);
		return;
	}
	/* the IMF-fixdate of RFC 9110 5.6.7, without printf: a GET of a key
	 * formats one a request */
	int year = tm.tm_year + 1900;
	char *p = buf;
	memcpy(p, days[tm.tm_wday % 7], 3);
	p += 3;
	*p++ = ',';
	*p++ = ' ';
	p = two_digits(p, tm.tm_mday);
	*p++ = ' ';
	memcpy(p, months[tm.tm_mon % 12], 3);
	p += 3;
	*p++ = ' ';
	p = two_digits(p, year / 100);
	p = two_digits(p, year % 100);
	*p++ = ' ';
	p = two_digits(p, tm.tm_hour);
	*p++ = ':';
	p = two_digits(p, tm.tm_min);
	*p++ = ':';
	p = two_digits(p, tm.tm_sec);
	memcpy(p, " GMT", 5);
}
