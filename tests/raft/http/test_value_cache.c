/* test_value_cache.c - the listener's two shortcuts of issue 25 answer
 * as the slow paths do.
 *
 * A GET of a key answered with the response kept for its version
 * (raft/http/http_value.c) is the response the slow path builds: the
 * same status, body and headers (Date aside), for every version of the
 * key, with or without a lease; HEAD, If-None-Match and big values take
 * the slow path. The table's counts (http_value_cache_counts) tell which
 * path answered. And the query arguments a request keeps a table of
 * (http_req's qkey, up to HTTP_QUERY_KEPT) give the answers that asking
 * libmicrohttpd gives, which a request with more arguments than that
 * does. Keys shorter than HTTP_KEY_INLINE, percent-encoded, are decoded
into the request and longer ones into a buffer of their own: the same
key either way, and the same 400 for a malformed one; ?consistency read
as it came or, with escapes, decoded. One node on 127.0.0.1, libcurl. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_int.h"
#include "tnode.h"

static struct tnode tn;
static char datadir[] = "/tmp/kvfs-test-value-cache-XXXXXX";

struct resp {
	long status;
	char *body, *headers;
	size_t len, hlen;
};

static size_t grow(char **buf, size_t *len, const void *data, size_t n)
{
	char *b = realloc(*buf, *len + n + 1);
	assert_non_null(b);
	memcpy(b + *len, data, n);
	*len += n;
	b[*len] = '\0';
	*buf = b;
	return n;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *cls)
{
	struct resp *r = cls;
	return grow(&r->body, &r->len, data, size * nmemb);
}

/* Every header line but Date (which moves with the clock). */
static size_t on_header(char *data, size_t size, size_t nmemb, void *cls)
{
	struct resp *r = cls;
	size_t n = size * nmemb;
	if (n >= 5 && strncasecmp(data, "Date:", 5) == 0)
		return n;
	return grow(&r->headers, &r->hlen, data, n);
}

static void req(const char *method, const char *path, const char *body,
		const char *hdr, struct resp *r)
{
	char url[512];
	CURL *c = curl_easy_init();
	struct curl_slist *hdrs = NULL;

	memset(r, 0, sizeof *r);
	assert_non_null(c);
	snprintf(url, sizeof url, "http://127.0.0.1:%u%s", tn.port, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
	hdrs = curl_slist_append(hdrs, "Expect:");
	if (hdr)
		hdrs = curl_slist_append(hdrs, hdr);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	else
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)strlen(body));
	}
	CURLcode rc = curl_easy_perform(c);
	if (rc != CURLE_OK)
		fail_msg("%s %s: %s", method, path, curl_easy_strerror(rc));
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(c);
}

static void resp_clear(struct resp *r)
{
	free(r->body);
	free(r->headers);
	memset(r, 0, sizeof *r);
}

static void counts(uint64_t *hits, uint64_t *misses)
{
	http_value_cache_counts(tn.http->values, hits, misses);
}

static void assert_same(const struct resp *a, const struct resp *b)
{
	assert_int_equal(a->status, b->status);
	assert_int_equal(a->len, b->len);
	if (a->len)
		assert_memory_equal(a->body, b->body, a->len);
	assert_non_null(a->headers);
	assert_non_null(b->headers);
	assert_string_equal(a->headers, b->headers);
}

static bool has_header(const struct resp *r, const char *line)
{
	return r->headers && strstr(r->headers, line) != NULL;
}

/* GET path three ways: built for the table (or kept already), kept, and
 * built by the slow path (an If-None-Match naming no revision); all
 * three alike, and the counts say which path answered each. Returns the
 * kept one in *out. */
static void get_three_ways(const char *path, const char *want, struct resp *out)
{
	struct resp first, slow;
	uint64_t h0, m0, h1, m1, h2, m2;

	counts(&h0, &m0);
	req("GET", path, NULL, NULL, &first);
	counts(&h1, &m1);
	assert_int_equal(h1 + m1, h0 + m0 + 1);
	req("GET", path, NULL, NULL, out);
	counts(&h2, &m2);
	assert_int_equal(h2, h1 + 1); /* the kept response */
	assert_int_equal(m2, m1);
	req("GET", path, NULL, "If-None-Match: \"0\"", &slow);
	counts(&h1, &m1);
	assert_int_equal(h1 + m1, h2 + m2); /* the table not asked */
	assert_int_equal(out->status, 200);
	assert_int_equal(out->len, strlen(want));
	assert_memory_equal(out->body, want, out->len);
	assert_same(&first, out);
	assert_same(&slow, out);
	resp_clear(&first);
	resp_clear(&slow);
}

static void test_kept_response_is_the_built_one_for_every_version(void **s)
{
	struct resp r, a, b;
	char line[64];

	(void)s;
	req("PUT", "/kv/vc/k", "one", NULL, &r);
	assert_int_equal(r.status, 201);
	resp_clear(&r);
	get_three_ways("/kv/vc/k", "one", &a);

	/* a new version: its own headers, never the old one's */
	req("PUT", "/kv/vc/k", "two!", NULL, &r);
	assert_int_equal(r.status, 200);
	resp_clear(&r);
	get_three_ways("/kv/vc/k", "two!", &b);
	assert_string_not_equal(a.headers, b.headers);
	resp_clear(&a);

	/* on a lease, and off it again */
	req("PUT", "/kv/vc/k?ttl=600", "three", NULL, &r);
	assert_int_equal(r.status, 200);
	resp_clear(&r);
	get_three_ways("/kv/vc/k", "three", &a);
	assert_true(has_header(&a, "X-Kvfs-Lease: "));
	resp_clear(&a);
	req("PUT", "/kv/vc/k", "four", NULL, &r);
	resp_clear(&r);
	get_three_ways("/kv/vc/k", "four", &a);
	assert_false(has_header(&a, "X-Kvfs-Lease"));

	/* HEAD of a kept version: its length, no body */
	req("HEAD", "/kv/vc/k", NULL, NULL, &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.len, 0);
	assert_true(has_header(&r, "Content-Length: 4\r\n"));
	resp_clear(&r);
	/* a 304 still */
	char *etag = strstr(a.headers, "ETag: ");
	assert_non_null(etag);
	snprintf(line, sizeof line, "If-None-Match: %.*s",
		 (int)strcspn(etag + 6, "\r\n"), etag + 6);
	req("GET", "/kv/vc/k", NULL, line, &r);
	assert_int_equal(r.status, 304);
	resp_clear(&r);
	resp_clear(&a);
	resp_clear(&b);

	/* deleted: not found, whatever the table held */
	req("DELETE", "/kv/vc/k", NULL, NULL, &r);
	assert_int_equal(r.status, 200);
	resp_clear(&r);
	req("GET", "/kv/vc/k", NULL, NULL, &r);
	assert_int_equal(r.status, 404);
	resp_clear(&r);
}

static void test_big_values_are_built_each_time(void **s)
{
	char *big = malloc(HTTP_VALUE_CACHE_MAX + 2);
	struct resp r, g1, g2;
	uint64_t h0, m0, h1, m1;

	(void)s;
	assert_non_null(big);
	memset(big, 'b', HTTP_VALUE_CACHE_MAX + 1);
	big[HTTP_VALUE_CACHE_MAX + 1] = '\0';
	req("PUT", "/kv/vc/big", big, NULL, &r);
	assert_int_equal(r.status, 201);
	resp_clear(&r);
	counts(&h0, &m0);
	req("GET", "/kv/vc/big", NULL, NULL, &g1);
	req("GET", "/kv/vc/big", NULL, NULL, &g2);
	counts(&h1, &m1);
	assert_int_equal(h1, h0);
	assert_int_equal(m1, m0);
	assert_int_equal(g1.len, HTTP_VALUE_CACHE_MAX + 1);
	assert_memory_equal(g1.body, big, g1.len);
	assert_same(&g1, &g2);
	resp_clear(&g1);
	resp_clear(&g2);
	free(big);
}

/* Each request twice: as it is (its arguments in the request's table)
 * and with HTTP_QUERY_KEPT more (?limit, which a key's GET and PUT take
 * and ignore), so that its arguments are looked up in libmicrohttpd; the
 * same status and body. */
static void test_query_table_answers_as_libmicrohttpd(void **s)
{
	static const struct {
		const char *method, *path, *body;
		long status;
	} cases[] = {
	    {"GET", "/kv/vq/k?consistency=local", NULL, 200},
	    {"GET", "/kv/vq/k?consistency=linearizable", NULL, 200},
	    {"GET", "/kv/vq/k?consistency=bogus", NULL, 400},
	    {"GET", "/kv/vq/k?consistency", NULL, 200}, /* as absent */
	    {"GET", "/kv/vq/k?consistency=local&since=3", NULL, 400},
	    {"GET", "/kv/vq/k?values", NULL, 400},
	    {"GET", "/kv/vq/k?lease=1", NULL, 400},
	    {"GET", "/kv/vq/k?add=1", NULL, 400},
	    {"GET", "/kv/vq/k?ttl=1&consistency=local", NULL, 400},
	    {"PUT", "/kv/vq/k?lease=5&ttl=3", "v", 400},
	    {"PUT", "/kv/vq/k?ttl=0", "v", 400},
	    {"PUT", "/kv/vq/k?lease=x", "v", 400},
	    {"PUT", "/kv/vq/k?watch", "v", 400},
	    {"POST", "/kv/vq/n?add=x", "", 400},
	    {"POST", "/kv/vq/n?add=0", "", 400},
	    {"DELETE", "/kv/vq/nodir/?recursive", NULL, 404},
	    {"DELETE", "/kv/vq/k/?recursive", NULL, 409},
	};
	struct resp r;
	char path[512];

	(void)s;
	req("PUT", "/kv/vq/k", "value", NULL, &r);
	assert_int_equal(r.status, 201);
	resp_clear(&r);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct resp a, b;
		int n = snprintf(path, sizeof path, "%s", cases[i].path);
		for (unsigned k = 0; k < HTTP_QUERY_KEPT; k++)
			n += snprintf(path + n, sizeof path - (size_t)n,
				      "&limit=1");
		req(cases[i].method, cases[i].path, cases[i].body, NULL, &a);
		req(cases[i].method, path, cases[i].body, NULL, &b);
		if (a.status != cases[i].status || b.status != a.status)
			fail_msg("%s %s: %ld, with more arguments %ld, want "
				 "%ld",
				 cases[i].method, cases[i].path, a.status,
				 b.status, cases[i].status);
		assert_int_equal(a.len, b.len);
		if (a.len)
			assert_memory_equal(a.body, b.body, a.len);
		resp_clear(&a);
		resp_clear(&b);
	}
}

/* path + every byte of key as %XX: a long encoded form of a short key. */
static void encode_all(char *out, size_t size, const char *path,
		       const char *key)
{
	int n = snprintf(out, size, "%s", path);
	for (const char *k = key; *k; k++)
		n += snprintf(out + n, size - (size_t)n, "%%%02X",
			      (unsigned char)*k);
}

static void test_short_and_long_keys_decode_alike(void **s)
{
	char key[HTTP_KEY_INLINE + 8], path[4 * HTTP_KEY_INLINE + 64];
	struct resp r;

	(void)s;
	/* raw lengths around HTTP_KEY_INLINE ("/kv/" is not in rest) */
	for (size_t len = HTTP_KEY_INLINE - 3; len <= HTTP_KEY_INLINE + 2;
	     len++) {
		memset(key, 'a' + (int)(len % 26), len);
		memcpy(key, "vq/", 3);
		key[len] = '\0';
		snprintf(path, sizeof path, "/kv/%s", key);
		req("PUT", path, key, NULL, &r);
		assert_int_equal(r.status, 201);
		resp_clear(&r);
		/* read back through the other decoder */
		encode_all(path, sizeof path, "/kv/vq/", key + 3);
		req("GET", path, NULL, NULL, &r);
		assert_int_equal(r.status, 200);
		assert_int_equal(r.len, len);
		assert_memory_equal(r.body, key, len);
		resp_clear(&r);
	}
	/* malformed, short and long */
	static const char *const bad[] = {"/kv/vq/x%zz", "/kv/vq/x%4",
					  "/kv/vq/x%"};
	for (size_t i = 0; i < 3; i++) {
		req("GET", bad[i], NULL, NULL, &r);
		assert_int_equal(r.status, 400);
		resp_clear(&r);
		memset(key, 'b', HTTP_KEY_INLINE);
		key[HTTP_KEY_INLINE] = '\0';
		snprintf(path, sizeof path, "/kv/vq/%s%s", key, bad[i] + 8);
		req("GET", path, NULL, NULL, &r);
		assert_int_equal(r.status, 400);
		resp_clear(&r);
	}
	/* ?consistency with escapes: decoded, as before */
	req("PUT", "/kv/vq/c", "c", NULL, &r);
	resp_clear(&r);
	req("GET", "/kv/vq/c?consistency=%6Cocal", NULL, NULL, &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.len, 1);
	resp_clear(&r);
	req("GET", "/kv/vq/c?consistency=%6", NULL, NULL, &r);
	assert_int_equal(r.status, 400);
	resp_clear(&r);
	req("GET", "/kv/vq/c?consistency=%6Cocalx", NULL, NULL, &r);
	assert_int_equal(r.status, 400);
	resp_clear(&r);
}

static int setup(void **state)
{
	struct node_options opt = {.id = 1, .listen = "127.0.0.1:0"};

	(void)state;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (!mkdtemp(datadir))
		return -1;
	opt.data_dir = datadir;
	return tnode_start(&opt, &tn) == 0 && tn.port ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	tnode_close(&tn);
	rmtree(datadir);
	curl_global_cleanup();
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
		test_kept_response_is_the_built_one_for_every_version),
	    cmocka_unit_test(test_big_values_are_built_each_time),
	    cmocka_unit_test(test_query_table_answers_as_libmicrohttpd),
	    cmocka_unit_test(test_short_and_long_keys_decode_alike),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
