/* test_http.c - the HTTP API against a real node on 127.0.0.1.
 *
 * One node is opened on a temporary data directory with port 0; the tests
 * talk to it with libcurl for well-formed requests and with raw sockets
 * for hostile ones (half headers, truncated bodies, absurd lengths). Each
 * test uses its own keys, so they share the node. Waits are bounded by
 * socket deadlines, never by sleeps. The server is raft/http*.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http_int.h"
#include "tcurl.h"
#include "tnode.h"

static struct tnode tn;
static struct kv_node *node;
static unsigned port;
static char datadir[] = "/tmp/kvfs-test-http-XXXXXX";

/* ---- a small client ---- */

/* Send method path with an optional body and extra headers (NULL-ended). */
static void req(const char *method, const char *path, const void *body,
		size_t blen, struct tresp *r, ...)
{
	const char *hdrs[16];
	size_t n = 0;
	va_list ap;

	va_start(ap, r);
	for (const char *h; (h = va_arg(ap, const char *));) {
		assert_true(n + 1 < sizeof hdrs / sizeof *hdrs);
		hdrs[n++] = h;
	}
	va_end(ap);
	hdrs[n] = NULL;
	tcurl_req(port, method, path, body, blen, hdrs, false, r);
}

/* The error body's "code", checked against want. */
static void assert_error(const struct tresp *r, long status, const char *code)
{
	if (r->status != status)
		fail_msg("status %ld, want %ld; body %s", r->status, status,
			 r->body ? r->body : "");
	assert_non_null(r->body);
	cJSON *j = cJSON_Parse(r->body);
	assert_non_null(j);
	assert_true(cJSON_IsString(cJSON_GetObjectItem(j, "error")));
	cJSON *c = cJSON_GetObjectItem(j, "code");
	assert_true(cJSON_IsString(c));
	assert_string_equal(c->valuestring, code);
	cJSON_Delete(j);
}

static uint64_t body_rev(const struct tresp *r)
{
	cJSON *j = cJSON_Parse(r->body);
	assert_non_null(j);
	cJSON *rev = cJSON_GetObjectItem(j, "rev");
	assert_true(cJSON_IsNumber(rev));
	uint64_t v = (uint64_t)rev->valuedouble;
	cJSON_Delete(j);
	assert_true(v > 0);
	return v;
}

/* ---- raw sockets for hostile clients ---- */

static int raw_connect(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct timeval tv = {.tv_sec = 60};

	assert_true(fd >= 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
	/* a deadline, so a broken server fails the test instead of hanging
	 * it */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	return fd;
}

static void raw_send(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return; /* the server may close early; that is fine */
		p += n;
		len -= (size_t)n;
	}
}

/* Read until the server closes (or the deadline); returns the status code
 * of the first response line, 0 if none; the text in buf. */
static int raw_read_status(int fd, char *buf, size_t size)
{
	size_t len = 0;
	int status = 0;

	for (;;) {
		ssize_t n = recv(fd, buf + len, size - 1 - len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		if (len == size - 1)
			break;
		buf[len] = '\0';
		/* A whole response: headers and a body of its length. */
		char *end = strstr(buf, "\r\n\r\n");
		char *cl = strcasestr(buf, "Content-Length:");
		if (end && cl && cl < end &&
		    len >= (size_t)(end + 4 - buf) + strtoul(cl + 15, NULL, 10))
			break;
	}
	buf[len] = '\0';
	if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
		status = 0;
	return status;
}

static void assert_node_serves(void)
{
	struct tresp r;
	req("GET", "/status", NULL, 0, &r, NULL);
	assert_int_equal(r.status, 200);
	tresp_clear(&r);
}

/* ---- the tests ---- */

static void test_put_get_delete_round_trip_binary_values(void **state)
{
	static const char val[] = "a\0b\xff\xfe\n\r\x01 end";
	const size_t vlen = sizeof val - 1;
	struct tresp r;
	char buf[256], etag[64];

	(void)state;
	req("PUT", "/kv/bin/one", val, vlen, &r, NULL);
	assert_int_equal(r.status, 201);
	uint64_t rev = body_rev(&r);
	snprintf(etag, sizeof etag, "\"%llu\"", (unsigned long long)rev);
	assert_non_null(tresp_header(&r, "ETag", buf, sizeof buf));
	assert_string_equal(buf, etag);
	tresp_clear(&r);

	req("GET", "/kv/bin/one", NULL, 0, &r, NULL);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.len, vlen);
	assert_memory_equal(r.body, val, vlen);
	assert_string_equal(tresp_header(&r, "ETag", buf, sizeof buf), etag);
	assert_string_equal(tresp_header(&r, "Content-Type", buf, sizeof buf),
			    "application/octet-stream");
	assert_non_null(tresp_header(&r, "Last-Modified", buf, sizeof buf));
	time_t lm = curl_getdate(buf, NULL);
	assert_true(lm > 0);
	assert_true(llabs((long long)(lm - time(NULL))) < 24 * 3600);
	assert_non_null(
	    tresp_header(&r, "X-Kvfs-Create-Revision", buf, sizeof buf));
	assert_int_equal(strtoull(buf, NULL, 10), rev);
	tresp_clear(&r);

	req("HEAD", "/kv/bin/one", NULL, 0, &r, NULL);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.len, 0);
	assert_int_equal(
	    strtoul(tresp_header(&r, "Content-Length", buf, sizeof buf), NULL,
		    10),
	    vlen);
	tresp_clear(&r);

	/* replacing is 200 with a newer revision */
	req("POST", "/kv/bin/one", "\xff", 1, &r, NULL);
	assert_int_equal(r.status, 200);
	assert_true(body_rev(&r) > rev);
	tresp_clear(&r);
	req("GET", "/kv/bin/one?consistency=local", NULL, 0, &r, NULL);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.len, 1);
	assert_int_equal((unsigned char)r.body[0], 0xff);
	tresp_clear(&r);

	req("DELETE", "/kv/bin/one", NULL, 0, &r, NULL);
	assert_int_equal(r.status, 200);
	assert_true(body_rev(&r) > rev);
	tresp_clear(&r);
	req("GET", "/kv/bin/one", NULL, 0, &r, NULL);
	assert_error(&r, 404, "not_found");
	tresp_clear(&r);
	req("DELETE", "/kv/bin/one", NULL, 0, &r, NULL);
	assert_error(&r, 404, "not_found");
	tresp_clear(&r);
}

static void test_empty_and_large_values_round_trip(void **state)
{
	size_t big = 2u * 1024 * 1024 + 7;
	char *val = malloc(big);
	struct tresp r;

	(void)state;
	assert_non_null(val);
	for (size_t i = 0; i < big; i++)
		val[i] = (char)(i * 131 + (i >> 9));
	req("PUT", "/kv/big/empty", "", 0, &r, NULL);
	assert_int_equal(r.status, 201);
	tresp_clear(&r);
	req("GET", "/kv/big/empty", NULL, 0, &r, NULL);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.len, 0);
	tresp_clear(&r);

	req("PUT", "/kv/big/two-mib", val, big, &r, NULL);
	assert_int_equal(r.status, 201);
	tresp_clear(&r);
	req("GET", "/kv/big/two-mib", NULL, 0, &r, NULL);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.len, big);
	assert_memory_equal(r.body, val, big);
	tresp_clear(&r);
	free(val);
}

static void test_conditional_writes_give_412_on_conflict(void **state)
{
	struct tresp r;
	char hdr[64], stale[64];

	(void)state;
	req("PUT", "/kv/cas/k", "v1", 2, &r, "If-None-Match: *", NULL);
	assert_int_equal(r.status, 201);
	uint64_t rev1 = body_rev(&r);
	tresp_clear(&r);
	req("PUT", "/kv/cas/k", "v2", 2, &r, "If-None-Match: *", NULL);
	assert_error(&r, 412, "precondition_failed");
	tresp_clear(&r);

	/* quoted, as the ETag was given */
	snprintf(hdr, sizeof hdr, "If-Match: \"%llu\"",
		 (unsigned long long)rev1);
	snprintf(stale, sizeof stale, "%s", hdr);
	req("PUT", "/kv/cas/k", "v2", 2, &r, hdr, NULL);
	assert_int_equal(r.status, 200);
	uint64_t rev2 = body_rev(&r);
	tresp_clear(&r);
	req("PUT", "/kv/cas/k", "v3", 2, &r, stale, NULL);
	assert_error(&r, 412, "precondition_failed");
	tresp_clear(&r);

	/* bare */
	snprintf(hdr, sizeof hdr, "If-Match: %llu", (unsigned long long)rev2);
	req("PUT", "/kv/cas/k", "v3", 2, &r, hdr, NULL);
	assert_int_equal(r.status, 200);
	uint64_t rev3 = body_rev(&r);
	tresp_clear(&r);
	req("GET", "/kv/cas/k", NULL, 0, &r, NULL);
	assert_int_equal(r.len, 2);
	assert_memory_equal(r.body, "v3", 2);
	tresp_clear(&r);

	/* a malformed If-Match is a bad request, not a silent write */
	req("PUT", "/kv/cas/k", "v4", 2, &r, "If-Match: twelve", NULL);
	assert_error(&r, 400, "bad_request");
	tresp_clear(&r);

	req("DELETE", "/kv/cas/k", NULL, 0, &r, stale, NULL);
	assert_error(&r, 412, "precondition_failed");
	tresp_clear(&r);
	snprintf(hdr, sizeof hdr, "If-Match: \"%llu\"",
		 (unsigned long long)rev3);
	req("DELETE", "/kv/cas/k", NULL, 0, &r, hdr, NULL);
	assert_int_equal(r.status, 200);
	tresp_clear(&r);
}

/* Walk /kv/<dir>/ with limit, collecting "name:type" joined by ','. */
static void list_all_q(const char *dir, const char *query, int limit, char *out,
		       size_t size, int *pages)
{
	char path[512], *after = NULL;

	out[0] = '\0';
	*pages = 0;
	for (;;) {
		struct tresp r;
		char *esc = NULL;
		if (after) {
			CURL *c = curl_easy_init();
			esc = curl_easy_escape(c, after, 0);
			curl_easy_cleanup(c);
		}
		snprintf(path, sizeof path, "/kv/%s?limit=%d%s%s%s", dir, limit,
			 query, esc ? "&after=" : "", esc ? esc : "");
		curl_free(esc);
		req("GET", path, NULL, 0, &r, NULL);
		assert_int_equal(r.status, 200);
		(*pages)++;
		cJSON *j = cJSON_Parse(r.body);
		assert_non_null(j);
		cJSON *ents = cJSON_GetObjectItem(j, "entries");
		assert_true(cJSON_IsArray(ents));
		assert_true(cJSON_GetArraySize(ents) <= limit);
		cJSON *e;
		cJSON_ArrayForEach(e, ents)
		{
			cJSON *name = cJSON_GetObjectItem(e, "name");
			cJSON *type = cJSON_GetObjectItem(e, "type");
			assert_true(cJSON_IsString(name));
			assert_true(cJSON_IsString(type));
			assert_true(
			    cJSON_IsNumber(cJSON_GetObjectItem(e, "size")));
			assert_true(
			    cJSON_IsNumber(cJSON_GetObjectItem(e, "rev")));
			assert_true(
			    cJSON_IsNumber(cJSON_GetObjectItem(e, "mtime")));
			if (out[0])
				strncat(out, ",", size - strlen(out) - 1);
			strncat(out, name->valuestring, size - strlen(out) - 1);
			strncat(out, ":", size - strlen(out) - 1);
			strncat(out, type->valuestring, size - strlen(out) - 1);
		}
		cJSON *next = cJSON_GetObjectItem(j, "next");
		assert_non_null(next);
		free(after);
		after = NULL;
		if (cJSON_IsString(next))
			after = strdup(next->valuestring);
		else
			assert_true(cJSON_IsNull(next));
		cJSON_Delete(j);
		tresp_clear(&r);
		if (!after)
			break;
		assert_true(*pages < 100);
	}
}

static void list_all(const char *dir, int limit, char *out, size_t size,
		     int *pages)
{
	list_all_q(dir, "", limit, out, size, pages);
}

static void test_listing_paginates_with_limit_and_after(void **state)
{
	static const char *keys[] = {"ls/a", "ls/b",	 "ls/c",    "ls/d",
				     "ls/e", "ls/sub/x", "ls/sub/y"};
	char path[64], got[1024];
	int pages;
	struct tresp r;

	(void)state;
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		snprintf(path, sizeof path, "/kv/%s", keys[i]);
		req("PUT", path, "xyz", 3, &r, NULL);
		assert_int_equal(r.status, 201);
		tresp_clear(&r);
	}
	list_all("ls/", 2, got, sizeof got, &pages);
	assert_string_equal(got, "a:file,b:file,c:file,d:file,e:file,sub:dir");
	assert_true(pages >= 3);
	list_all("ls/", 1000, got, sizeof got, &pages);
	assert_string_equal(got, "a:file,b:file,c:file,d:file,e:file,sub:dir");
	assert_int_equal(pages, 1);
	list_all("ls/sub/", 1, got, sizeof got, &pages);
	assert_string_equal(got, "x:file,y:file");

	/* the root lists top-level names */
	req("GET", "/kv/", NULL, 0, &r, NULL);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "\"name\":\"ls\""));
	tresp_clear(&r);

	req("GET", "/kv/no-such-dir/", NULL, 0, &r, NULL);
	assert_error(&r, 404, "not_found");
	tresp_clear(&r);
	req("GET", "/kv/ls/?limit=0", NULL, 0, &r, NULL);
	assert_error(&r, 400, "bad_request");
	tresp_clear(&r);
	req("GET", "/kv/ls/?limit=abc", NULL, 0, &r, NULL);
	assert_error(&r, 400, "bad_request");
	tresp_clear(&r);
}

/* ?recursive lists every key below, at any depth, paginated, names
 * relative to the directory; DELETE ?recursive removes a subtree as one
 * entry (one revision), and nothing outside it. */
static void test_recursive_listing_and_delete(void **state)
{
	static const char *keys[] = {"rt/a",  "rt/b/c", "rt/b/d/e", "rt/b/d/f",
				     "rt/b0", "rt/z",	"rtx/keep", "rt2/keep"};
	char path[64], got[1024];
	int pages;
	struct tresp r;

	(void)state;
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		snprintf(path, sizeof path, "/kv/%s", keys[i]);
		req("PUT", path, "v", 1, &r, NULL);
		assert_int_equal(r.status, 201);
		tresp_clear(&r);
	}
	list_all_q("rt/", "&recursive", 2, got, sizeof got, &pages);
	assert_string_equal(got,
			    "a:file,b/c:file,b/d/e:file,b/d/f:file,b0:file,"
			    "z:file");
	assert_int_equal(pages, 3);
	list_all_q("rt/b/", "&recursive", 100, got, sizeof got, &pages);
	assert_string_equal(got, "c:file,d/e:file,d/f:file");
	req("GET", "/kv/rt/a/?recursive", NULL, 0, &r, NULL);
	assert_error(&r, 409, "conflict");
	tresp_clear(&r);

	req("DELETE", "/kv/rt/b/?recursive", NULL, 0, &r, NULL);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "\"rev\":"));
	tresp_clear(&r);
	list_all_q("rt/", "&recursive", 100, got, sizeof got, &pages);
	assert_string_equal(got, "a:file,b0:file,z:file");
	req("GET", "/kv/rt/b/", NULL, 0, &r, NULL);
	assert_error(&r, 404, "not_found");
	tresp_clear(&r);
	/* without ?recursive a directory with keys is not deleted */
	req("DELETE", "/kv/rt/", NULL, 0, &r, NULL);
	assert_int_equal(r.status, 405);
	tresp_clear(&r);
	req("DELETE", "/kv/rt?recursive", NULL, 0, &r, NULL);
	assert_int_equal(r.status, 200);
	tresp_clear(&r);
	req("GET", "/kv/rt/", NULL, 0, &r, NULL);
	assert_error(&r, 404, "not_found");
	tresp_clear(&r);
	req("GET", "/kv/rtx/keep", NULL, 0, &r, NULL);
	assert_int_equal(r.status, 200);
	tresp_clear(&r);
	req("GET", "/kv/rt2/keep", NULL, 0, &r, NULL);
	assert_int_equal(r.status, 200);
	tresp_clear(&r);
	req("DELETE", "/kv/rtx/keep/?recursive", NULL, 0, &r, NULL);
	assert_error(&r, 409, "conflict");
	tresp_clear(&r);
	req("DELETE", "/kv/nothere/?recursive", NULL, 0, &r, NULL);
	assert_error(&r, 404, "not_found");
	tresp_clear(&r);
	req("DELETE", "/kv/?recursive", NULL, 0, &r, NULL);
	assert_error(&r, 400, "bad_request");
	tresp_clear(&r);
}

static void test_unknown_query_parameters_are_400_naming_them(void **state)
{
	static const char *bad[] = {
	    "/kv/qp?expire=5",	 "/kv/qp?wait=true",	 "/kv/?sort=1",
	    "/status?verbose",	 "/health?x=1",		 "/metrics?name=a",
	    "/kv/qp?limit=1&zz", "/cluster/members?all",
	};
	struct tresp r;
	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		req("GET", bad[i], NULL, 0, &r, NULL);
		assert_error(&r, 400, "bad_request");
		const char *name = strchr(bad[i], '?') + 1;
		char want[64];
		snprintf(want, sizeof want, "unknown query parameter: %.*s",
			 (int)strcspn(name, "=&"), name);
		if (strstr(bad[i], "&zz"))
			snprintf(want, sizeof want,
				 "unknown query parameter: zz");
		if (!strstr(r.body, want))
			fail_msg("%s: %s lacks \"%s\"", bad[i], r.body, want);
		tresp_clear(&r);
	}
	/* a write with an unknown parameter is refused before it is made */
	req("PUT", "/kv/qp?expire=5", "v", 1, &r, NULL);
	assert_error(&r, 400, "bad_request");
	tresp_clear(&r);
	req("GET", "/kv/qp", NULL, 0, &r, NULL);
	assert_int_equal(r.status, 404);
	tresp_clear(&r);
	/* the ones each route takes still work */
	req("GET", "/kv/?limit=5&after=a", NULL, 0, &r, NULL);
	assert_int_equal(r.status, 200);
	tresp_clear(&r);
	req("GET", "/status?pretty", NULL, 0, &r, NULL);
	assert_int_equal(r.status, 200);
	assert_non_null(strchr(r.body, '\n'));
	tresp_clear(&r);
	req("GET", "/kv/qp?consistency=local", NULL, 0, &r, NULL);
	assert_int_equal(r.status, 404);
	tresp_clear(&r);
}

static void test_bad_keys_are_refused_with_400_bad_key(void **state)
{
	static const char *bad[] = {
	    "/kv/a%00b", "/kv/bad%FFutf8", "/kv/%C0%AF", "/kv/a/../b",
	    "/kv/..",	 "/kv/a//b",	   "/kv/./a",	 "/kv/a%zz",
	    "/kv/a%2",	 "/kv/%2E%2E",	   "/kv/x%2F",	 "/get/a%00",
	    "/set/..",
	};
	struct tresp r;
	char longkey[1200];

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		const char *m = strncmp(bad[i], "/set/", 5) == 0   ? "POST"
				: strncmp(bad[i], "/get/", 5) == 0 ? "GET"
								   : "PUT";
		req(m, bad[i], "v", 1, &r, NULL);
		if (r.status != 400)
			fail_msg("%s %s: %ld", m, bad[i], r.status);
		assert_error(&r, 400, "bad_key");
		tresp_clear(&r);
	}
	memset(longkey, 'k', sizeof longkey);
	memcpy(longkey, "/kv/", 4);
	longkey[sizeof longkey - 1] = '\0';
	req("PUT", longkey, "v", 1, &r, NULL);
	assert_error(&r, 400, "bad_key");
	tresp_clear(&r);

	/* an escaped '/' is a separator, and UTF-8 is fine */
	req("PUT", "/kv/esc%2Fk%C3%A9y", "v", 1, &r, NULL);
	assert_int_equal(r.status, 201);
	tresp_clear(&r);
	req("GET", "/kv/esc/k\xc3\xa9y", NULL, 0, &r, NULL);
	assert_int_equal(r.status, 200);
	tresp_clear(&r);
}

/* The longest key, every byte it can of it percent-encoded (a URL of 12
 * KiB), fits the per-connection memory MHD parses a request in. */
static void test_longest_key_percent_encoded_round_trips(void **state)
{
	enum { SEGS = KV_MAX_KEY / 256 };
	char path[SEGS * 127 * 6 + SEGS + 64] = "/kv/",
					  key[KV_MAX_KEY + 1] = "";
	struct tresp r;

	(void)state;
	for (int s = 0; s < SEGS; s++) {
		for (int i = 0; i < 127; i++) {
			strcat(path, "%C3%A9");
			strcat(key, "\xc3\xa9");
		}
		strcat(path, "/");
		strcat(key, "/");
	}
	while (strlen(key) < KV_MAX_KEY) {
		strcat(path, "a");
		strcat(key, "a");
	}
	assert_int_equal(strlen(key), KV_MAX_KEY);
	req("PUT", path, "long", 4, &r, NULL);
	assert_int_equal(r.status, 201);
	tresp_clear(&r);
	req("GET", path, NULL, 0, &r, NULL);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.len, 4);
	assert_memory_equal(r.body, "long", 4);
	tresp_clear(&r);
}

static void test_errors_carry_json_bodies_and_stable_codes(void **state)
{
	struct tresp r;
	char buf[256];

	(void)state;
	req("GET", "/nowhere", NULL, 0, &r, NULL);
	assert_error(&r, 404, "not_found");
	tresp_clear(&r);

	req("DELETE", "/status", NULL, 0, &r, NULL);
	assert_error(&r, 405, "method_not_allowed");
	assert_non_null(tresp_header(&r, "Allow", buf, sizeof buf));
	assert_non_null(strstr(buf, "GET"));
	tresp_clear(&r);
	req("PATCH", "/kv/x", "v", 1, &r, NULL);
	assert_error(&r, 405, "method_not_allowed");
	tresp_clear(&r);
	req("PUT", "/kv/dir/", "v", 1, &r, NULL);
	assert_error(&r, 405, "method_not_allowed");
	assert_string_equal(tresp_header(&r, "Allow", buf, sizeof buf),
			    "GET, HEAD");
	tresp_clear(&r);

	req("GET", "/kv/x?consistency=sometimes", NULL, 0, &r, NULL);
	assert_error(&r, 400, "bad_request");
	tresp_clear(&r);

	/* a key and a directory of the same name conflict: 409 */
	req("PUT", "/kv/conf/d/leaf", "v", 1, &r, NULL);
	assert_int_equal(r.status, 201);
	tresp_clear(&r);
	req("PUT", "/kv/conf/d", "v", 1, &r, NULL);
	assert_error(&r, 409, "conflict");
	tresp_clear(&r);
	req("PUT", "/kv/conf/d/leaf/under", "v", 1, &r, NULL);
	assert_error(&r, 409, "conflict");
	tresp_clear(&r);
	req("GET", "/kv/conf/d", NULL, 0, &r, NULL);
	assert_error(&r, 409, "conflict");
	tresp_clear(&r);
}

static void test_put_without_length_is_411(void **state)
{
	static const char rq[] = "PUT /kv/nolen HTTP/1.1\r\nHost: x\r\n"
				 "Connection: close\r\n\r\n";
	char buf[4096];
	int fd = raw_connect();

	(void)state;
	raw_send(fd, rq, sizeof rq - 1);
	assert_int_equal(raw_read_status(fd, buf, sizeof buf), 411);
	assert_non_null(strstr(buf, "\"code\":\"length_required\""));
	close(fd);
}

static void test_oversized_bodies_are_413_without_being_read(void **state)
{
	char rq[512], buf[4096];
	int fd = raw_connect();

	(void)state;
	/* a declared length over the limit is refused from the headers */
	snprintf(rq, sizeof rq,
		 "PUT /kv/huge HTTP/1.1\r\nHost: x\r\n"
		 "Content-Length: %u\r\n\r\n",
		 KV_MAX_VALUE + 1);
	raw_send(fd, rq, strlen(rq));
	raw_send(fd, "only a little", 13);
	assert_int_equal(raw_read_status(fd, buf, sizeof buf), 413);
	assert_non_null(strstr(buf, "\"code\":\"too_large\""));
	close(fd);

	/* an absurd one is refused too (by us or by MHD), and the node
	 * stays */
	fd = raw_connect();
	snprintf(rq, sizeof rq,
		 "PUT /kv/huge HTTP/1.1\r\nHost: x\r\n"
		 "Content-Length: 999999999999999999999999\r\n\r\n");
	raw_send(fd, rq, strlen(rq));
	int st = raw_read_status(fd, buf, sizeof buf);
	assert_true(st == 413 || st == 400);
	close(fd);
	assert_node_serves();
}

struct feeder {
	size_t left;
};

static size_t feed(char *buf, size_t size, size_t nmemb, void *cls)
{
	struct feeder *f = cls;
	size_t n = size * nmemb;
	if (n > f->left)
		n = f->left;
	memset(buf, 'z', n);
	f->left -= n;
	return n;
}

static void test_chunked_body_over_the_limit_is_413(void **state)
{
	char url[128];
	struct feeder f = {.left = KV_MAX_VALUE + 64 * 1024};
	struct tresp r = {0};
	struct curl_slist *hdrs = NULL;
	CURL *c = curl_easy_init();

	(void)state;
	snprintf(url, sizeof url, "http://127.0.0.1:%u/kv/chunky", port);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(c, CURLOPT_READFUNCTION, feed);
	curl_easy_setopt(c, CURLOPT_READDATA, &f);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, tcurl_body_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
	hdrs = curl_slist_append(hdrs, "Transfer-Encoding: chunked");
	hdrs = curl_slist_append(hdrs, "Expect:");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	assert_int_equal(curl_easy_perform(c), CURLE_OK);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(c);
	assert_error(&r, 413, "too_large");
	tresp_clear(&r);

	req("GET", "/kv/chunky", NULL, 0, &r, NULL);
	assert_error(&r, 404, "not_found");
	tresp_clear(&r);
}

static void test_mmapd_set_and_get_keep_working(void **state)
{
	struct tresp r;

	(void)state;
	/* urlencoded, with NUL, 0xFF and '+' for a space */
	req("POST", "/set/mm/k", "other=1&value=a%00b%FF+c%2B&x=2", 31, &r,
	    "Content-Type: application/x-www-form-urlencoded", NULL);
	assert_int_equal(r.status, 201);
	tresp_clear(&r);
	req("GET", "/get/mm/k", NULL, 0, &r, NULL);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.len, 7);
	assert_memory_equal(r.body, "a\0b\xff c+", 7);
	tresp_clear(&r);

	/* Go's FormValue also reads the query */
	req("POST", "/set/mm/q?value=from%20query", NULL, 0, &r, NULL);
	assert_int_equal(r.status, 201);
	tresp_clear(&r);
	req("GET", "/kv/mm/q", NULL, 0, &r, NULL);
	assert_int_equal(r.len, 10);
	assert_memory_equal(r.body, "from query", 10);
	tresp_clear(&r);

	/* multipart, as curl -F sends it */
	CURL *c = curl_easy_init();
	char url[128];
	curl_mime *mime = curl_mime_init(c);
	curl_mimepart *part = curl_mime_addpart(mime);
	curl_mime_name(part, "value");
	curl_mime_data(part, "multi\0part", 10);
	snprintf(url, sizeof url, "http://127.0.0.1:%u/set/mm/m", port);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_MIMEPOST, mime);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, tcurl_body_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
	memset(&r, 0, sizeof r);
	assert_int_equal(curl_easy_perform(c), CURLE_OK);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
	curl_mime_free(mime);
	curl_easy_cleanup(c);
	assert_int_equal(r.status, 201);
	tresp_clear(&r);
	req("GET", "/get/mm/m", NULL, 0, &r, NULL);
	assert_int_equal(r.len, 10);
	assert_memory_equal(r.body, "multi\0part", 10);
	tresp_clear(&r);

	req("POST", "/set/mm/none", "other=1", 7, &r,
	    "Content-Type: application/x-www-form-urlencoded", NULL);
	assert_error(&r, 400, "bad_request");
	tresp_clear(&r);
	req("GET", "/get/mm/absent", NULL, 0, &r, NULL);
	assert_error(&r, 404, "not_found");
	tresp_clear(&r);
}

static void test_status_has_every_field_issue_2_names(void **state)
{
	static const char *fields[] = {
	    "id",
	    "role",
	    "term",
	    "leader",
	    "leader_address",
	    "commit_index",
	    "applied_index",
	    "first_index",
	    "last_index",
	    "snapshot_index",
	    "keys",
	    "bytes",
	    "version",
	    "uptime_s",
	};
	struct tresp r;
	char buf[128];

	(void)state;
	req("GET", "/status", NULL, 0, &r, NULL);
	assert_int_equal(r.status, 200);
	assert_string_equal(tresp_header(&r, "Content-Type", buf, sizeof buf),
			    "application/json");
	cJSON *j = cJSON_Parse(r.body);
	assert_non_null(j);
	for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
		if (!cJSON_GetObjectItem(j, fields[i]))
			fail_msg("/status lacks %s: %s", fields[i], r.body);
	cJSON *role = cJSON_GetObjectItem(j, "role");
	assert_true(cJSON_IsString(role));
	cJSON_Delete(j);
	tresp_clear(&r);
}

static void test_slow_client_does_not_block_others(void **state)
{
	static const char half[] =
	    "GET /kv/slowpoke HTTP/1.1\r\nHost: x\r\nX-Ha";
	int slow[4];
	struct tresp r;

	(void)state;
	for (int i = 0; i < 4; i++) {
		slow[i] = raw_connect();
		raw_send(slow[i], half, sizeof half - 1);
	}
	/* while they sit there, others are served */
	req("PUT", "/kv/slow/other", "v", 1, &r, NULL);
	assert_int_equal(r.status, 201);
	tresp_clear(&r);
	req("GET", "/kv/slow/other", NULL, 0, &r, NULL);
	assert_int_equal(r.status, 200);
	tresp_clear(&r);
	/* and the slow ones can still finish */
	raw_send(slow[0], "lf: done\r\n\r\n", 12);
	char buf[4096];
	assert_int_equal(raw_read_status(slow[0], buf, sizeof buf), 404);
	for (int i = 0; i < 4; i++)
		close(slow[i]);
}

static void test_truncated_body_stores_nothing(void **state)
{
	static const char rq[] = "PUT /kv/trunc HTTP/1.1\r\nHost: x\r\n"
				 "Content-Length: 100\r\n\r\n0123456789";
	struct tresp r;
	int fd = raw_connect();

	(void)state;
	raw_send(fd, rq, sizeof rq - 1);
	close(fd);
	/* a request behind it on a fresh connection is served, and the
	 * truncated one left nothing */
	assert_node_serves();
	req("GET", "/kv/trunc", NULL, 0, &r, NULL);
	assert_error(&r, 404, "not_found");
	tresp_clear(&r);
}

static void test_huge_headers_and_garbage_do_not_hurt_the_node(void **state)
{
	size_t big = 200 * 1024;
	char *rq = malloc(big + 256);
	char buf[4096];
	int fd;

	(void)state;
	assert_non_null(rq);
	strcpy(rq, "GET /kv/x HTTP/1.1\r\nHost: x\r\nX-Big: ");
	size_t n = strlen(rq);
	memset(rq + n, 'a', big);
	strcpy(rq + n + big, "\r\n\r\n");
	fd = raw_connect();
	raw_send(fd, rq, strlen(rq));
	int st = raw_read_status(fd, buf, sizeof buf);
	assert_true(st == 0 || st == 431 || st == 414 || st == 413 ||
		    st == 400);
	close(fd);
	free(rq);

	fd = raw_connect();
	raw_send(fd, "\x16\x03\x01\x02\x00garbage\r\n\r\n", 16);
	raw_read_status(fd, buf, sizeof buf);
	close(fd);

	/* a body sent with GET is read and ignored */
	fd = raw_connect();
	static const char getbody[] = "GET /status HTTP/1.1\r\nHost: x\r\n"
				      "Content-Length: 5\r\n\r\nhello";
	raw_send(fd, getbody, sizeof getbody - 1);
	assert_int_equal(raw_read_status(fd, buf, sizeof buf), 200);
	close(fd);
	assert_node_serves();
}

/* Many uploads that each claim the largest body do not exhaust memory:
 * past the listener's budget they are told to retry (503), and once they
 * go away uploads are taken again. Probes are uploads of the same size, so
 * the budget is exceeded even if a hog or two were refused while another
 * request held part of it. */
static void test_many_large_uploads_at_once_get_503_retry(void **state)
{
	enum { HOGS = 16, PROBES = 32 };
	char rq[256], buf[4096];
	int hogs[HOGS], probes[PROBES], np = 0, st = 0;

	(void)state;
	snprintf(rq, sizeof rq,
		 "PUT /kv/hog HTTP/1.1\r\nHost: x\r\n"
		 "Content-Length: %u\r\n\r\nxx",
		 KV_MAX_VALUE);
	for (int i = 0; i < HOGS; i++) {
		hogs[i] = raw_connect();
		raw_send(hogs[i], rq, strlen(rq));
	}
	/* the hogs' headers are handled in their own threads: poll with
	 * probes; an accepted probe waits for its body (no answer within a
	 * second) and stays open as one more hog */
	time_t deadline = time(NULL) + 30;
	while (st != 503 && np < PROBES && time(NULL) < deadline) {
		int fd = raw_connect();
		struct timeval tv = {.tv_sec = 1};
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
		raw_send(fd, rq, strlen(rq));
		st = raw_read_status(fd, buf, sizeof buf);
		if (st == 503) {
			assert_non_null(strstr(buf, "\"not_ready\""));
			assert_non_null(strcasestr(buf, "Retry-After:"));
			close(fd);
		} else {
			assert_int_equal(st, 0); /* accepted, waiting */
			probes[np++] = fd;
		}
	}
	assert_int_equal(st, 503);
	for (int i = 0; i < HOGS; i++)
		close(hogs[i]);
	for (int i = 0; i < np; i++)
		close(probes[i]);
	deadline = time(NULL) + 30;
	while (time(NULL) < deadline) {
		struct tresp r;
		req("PUT", "/kv/hog-small", "v", 1, &r, NULL);
		st = (int)r.status;
		tresp_clear(&r);
		if (st != 503)
			break;
	}
	assert_true(st == 200 || st == 201);
}

static void test_errors_map_to_one_status_and_code_each(void **state)
{
	static const struct {
		int err;
		unsigned status;
		const char *code;
	} cases[] = {
	    {-EINVAL, 400, "bad_request"},
	    {-ENAMETOOLONG, 400, "bad_key"},
	    {-ENOENT, 404, "not_found"},
	    {-EISDIR, 409, "conflict"},
	    {-ENOTDIR, 409, "conflict"},
	    {KV_EPRECOND, 412, "precondition_failed"},
	    {-EFBIG, 413, "too_large"},
	    {KV_ENOQUORUM, 503, "no_quorum"},
	    {KV_ESHUTDOWN, 503, "not_ready"},
	    {KV_ENOTLEADER, 503, "not_ready"},
	    {-ENOSPC, 507, "disk_full"},
	    {KV_EFAILED, 500, "internal"},
	    {KV_ECORRUPT, 500, "internal"},
	    {-EIO, 500, "internal"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		unsigned status = 0;
		const char *code = NULL;
		http_error_status(cases[i].err, &status, &code);
		assert_int_equal(status, cases[i].status);
		assert_string_equal(code, cases[i].code);
	}
}

static void test_etags_parse_quoted_bare_and_weak(void **state)
{
	uint64_t rev = 0;

	(void)state;
	assert_int_equal(http_parse_etag("\"12\"", &rev), 0);
	assert_int_equal(rev, 12);
	assert_int_equal(http_parse_etag(" 13 ", &rev), 0);
	assert_int_equal(rev, 13);
	assert_int_equal(http_parse_etag("W/\"14\"", &rev), 0);
	assert_int_equal(rev, 14);
	assert_int_equal(http_parse_etag("\"15", &rev), -EINVAL);
	assert_int_equal(http_parse_etag("*", &rev), -EINVAL);
	assert_int_equal(http_parse_etag("0", &rev), -EINVAL);
	assert_int_equal(http_parse_etag("\"1\", \"2\"", &rev), -EINVAL);
	assert_int_equal(http_parse_etag("99999999999999999999999", &rev),
			 -EINVAL);
}

/* The hand-made formatters of the GET headers say what snprintf and
 * strftime would, at the edges too. */
static void test_header_formatters_match_printf(void **state)
{
	static const uint64_t u[] = {0, 1, 9, 10, 12345, UINT64_MAX};
	static const int64_t i[] = {0, -1, 42, INT64_MAX, INT64_MIN};
	static const int64_t when[] = {0, 1796236243122219479LL,
				       951782400LL * 1000000000LL,
				       4102444799LL * 1000000000LL};
	char a[32], b[32];

	(void)state;
	for (size_t k = 0; k < sizeof u / sizeof u[0]; k++) {
		int n = snprintf(b, sizeof b, "%" PRIu64, u[k]);
		assert_int_equal(http_format_u64(u[k], a, sizeof a), n);
		assert_string_equal(a, b);
		snprintf(b, sizeof b, "\"%" PRIu64 "\"", u[k]);
		http_format_etag(u[k], a, sizeof a);
		assert_string_equal(a, b);
	}
	for (size_t k = 0; k < sizeof i / sizeof i[0]; k++) {
		int n = snprintf(b, sizeof b, "%" PRId64, i[k]);
		assert_int_equal(http_format_i64(i[k], a, sizeof a), n);
		assert_string_equal(a, b);
	}
	/* cut to the buffer, the length it needed returned */
	assert_int_equal(http_format_u64(123456, a, 4), 6);
	assert_string_equal(a, "123");
	for (size_t k = 0; k < sizeof when / sizeof when[0]; k++) {
		time_t t = (time_t)(when[k] / 1000000000);
		struct tm tm;
		gmtime_r(&t, &tm);
		strftime(b, sizeof b, "%a, %d %b %Y %H:%M:%S GMT", &tm);
		http_format_date(when[k], a, sizeof a);
		assert_string_equal(a, b);
	}
}

/* ---- the node under test ---- */

static int setup(void **state)
{
	(void)state;
	if (tcurl_node_start(datadir, &tn) != 0)
		return -1;
	node = tn.node;
	port = tn.port;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	tcurl_node_stop(datadir, &tn);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_put_get_delete_round_trip_binary_values),
	    cmocka_unit_test(test_empty_and_large_values_round_trip),
	    cmocka_unit_test(test_conditional_writes_give_412_on_conflict),
	    cmocka_unit_test(test_listing_paginates_with_limit_and_after),
	    cmocka_unit_test(test_bad_keys_are_refused_with_400_bad_key),
	    cmocka_unit_test(test_longest_key_percent_encoded_round_trips),
	    cmocka_unit_test(test_errors_carry_json_bodies_and_stable_codes),
	    cmocka_unit_test(test_put_without_length_is_411),
	    cmocka_unit_test(test_oversized_bodies_are_413_without_being_read),
	    cmocka_unit_test(test_chunked_body_over_the_limit_is_413),
	    cmocka_unit_test(test_mmapd_set_and_get_keep_working),
	    cmocka_unit_test(test_status_has_every_field_issue_2_names),
	    cmocka_unit_test(test_slow_client_does_not_block_others),
	    cmocka_unit_test(test_truncated_body_stores_nothing),
	    cmocka_unit_test(
		test_huge_headers_and_garbage_do_not_hurt_the_node),
	    cmocka_unit_test(test_many_large_uploads_at_once_get_503_retry),
	    cmocka_unit_test(test_errors_map_to_one_status_and_code_each),
	    cmocka_unit_test(test_etags_parse_quoted_bare_and_weak),
	    cmocka_unit_test(test_header_formatters_match_printf),
	    cmocka_unit_test(test_recursive_listing_and_delete),
	    cmocka_unit_test(test_unknown_query_parameters_are_400_naming_them),
	};
	return cmocka_run_group_tests_name("http", tests, setup, teardown);
}
