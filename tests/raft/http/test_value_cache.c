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
#include "tcurl.h"
#include "tnode.h"

static struct tnode tn;
static char datadir[] = "/tmp/kvfs-test-value-cache-XXXXXX";

static void req(const char *method, const char *path, const char *body,
		const char *hdr, struct tresp *r)
{
	const char *hdrs[] = {hdr, NULL};
	tcurl_req(tn.port, method, path, body, body ? strlen(body) : 0, hdrs,
		  true, r);
}

static void counts(uint64_t *hits, uint64_t *misses)
{
	http_value_cache_counts(tn.http->values, hits, misses);
}

static void assert_same(const struct tresp *a, const struct tresp *b)
{
	assert_int_equal(a->status, b->status);
	assert_int_equal(a->len, b->len);
	if (a->len)
		assert_memory_equal(a->body, b->body, a->len);
	assert_non_null(a->headers);
	assert_non_null(b->headers);
	assert_string_equal(a->headers, b->headers);
}

static bool has_header(const struct tresp *r, const char *line)
{
	return r->headers && strstr(r->headers, line) != NULL;
}

/* GET path three ways: built for the table (or kept already), kept, and
 * built by the slow path (an If-None-Match naming no revision); all
 * three alike, and the counts say which path answered each. Returns the
 * kept one in *out. */
static void get_three_ways(const char *path, const char *want,
			   struct tresp *out)
{
	struct tresp first, slow;
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
	tresp_clear(&first);
	tresp_clear(&slow);
}

static void test_kept_response_is_the_built_one_for_every_version(void **s)
{
	struct tresp r, a, b;
	char line[64];

	(void)s;
	req("PUT", "/kv/vc/k", "one", NULL, &r);
	assert_int_equal(r.status, 201);
	tresp_clear(&r);
	get_three_ways("/kv/vc/k", "one", &a);

	/* a new version: its own headers, never the old one's */
	req("PUT", "/kv/vc/k", "two!", NULL, &r);
	assert_int_equal(r.status, 200);
	tresp_clear(&r);
	get_three_ways("/kv/vc/k", "two!", &b);
	assert_string_not_equal(a.headers, b.headers);
	tresp_clear(&a);

	/* on a lease, and off it again */
	req("PUT", "/kv/vc/k?ttl=600", "three", NULL, &r);
	assert_int_equal(r.status, 200);
	tresp_clear(&r);
	get_three_ways("/kv/vc/k", "three", &a);
	assert_true(has_header(&a, "X-Kvfs-Lease: "));
	tresp_clear(&a);
	req("PUT", "/kv/vc/k", "four", NULL, &r);
	tresp_clear(&r);
	get_three_ways("/kv/vc/k", "four", &a);
	assert_false(has_header(&a, "X-Kvfs-Lease"));

	/* HEAD of a kept version: its length, no body */
	req("HEAD", "/kv/vc/k", NULL, NULL, &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.len, 0);
	assert_true(has_header(&r, "Content-Length: 4\r\n"));
	tresp_clear(&r);
	/* a 304 still */
	char *etag = strstr(a.headers, "ETag: ");
	assert_non_null(etag);
	snprintf(line, sizeof line, "If-None-Match: %.*s",
		 (int)strcspn(etag + 6, "\r\n"), etag + 6);
	req("GET", "/kv/vc/k", NULL, line, &r);
	assert_int_equal(r.status, 304);
	tresp_clear(&r);
	tresp_clear(&a);
	tresp_clear(&b);

	/* deleted: not found, whatever the table held */
	req("DELETE", "/kv/vc/k", NULL, NULL, &r);
	assert_int_equal(r.status, 200);
	tresp_clear(&r);
	req("GET", "/kv/vc/k", NULL, NULL, &r);
	assert_int_equal(r.status, 404);
	tresp_clear(&r);
}

static void test_big_values_are_built_each_time(void **s)
{
	char *big = malloc(HTTP_VALUE_CACHE_MAX + 2);
	struct tresp r, g1, g2;
	uint64_t h0, m0, h1, m1;

	(void)s;
	assert_non_null(big);
	memset(big, 'b', HTTP_VALUE_CACHE_MAX + 1);
	big[HTTP_VALUE_CACHE_MAX + 1] = '\0';
	req("PUT", "/kv/vc/big", big, NULL, &r);
	assert_int_equal(r.status, 201);
	tresp_clear(&r);
	counts(&h0, &m0);
	req("GET", "/kv/vc/big", NULL, NULL, &g1);
	req("GET", "/kv/vc/big", NULL, NULL, &g2);
	counts(&h1, &m1);
	assert_int_equal(h1, h0);
	assert_int_equal(m1, m0);
	assert_int_equal(g1.len, HTTP_VALUE_CACHE_MAX + 1);
	assert_memory_equal(g1.body, big, g1.len);
	assert_same(&g1, &g2);
	tresp_clear(&g1);
	tresp_clear(&g2);
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
	struct tresp r;
	char path[512];

	(void)s;
	req("PUT", "/kv/vq/k", "value", NULL, &r);
	assert_int_equal(r.status, 201);
	tresp_clear(&r);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct tresp a, b;
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
		tresp_clear(&a);
		tresp_clear(&b);
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
	struct tresp r;

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
		tresp_clear(&r);
		/* read back through the other decoder */
		encode_all(path, sizeof path, "/kv/vq/", key + 3);
		req("GET", path, NULL, NULL, &r);
		assert_int_equal(r.status, 200);
		assert_int_equal(r.len, len);
		assert_memory_equal(r.body, key, len);
		tresp_clear(&r);
	}
	/* malformed, short and long */
	static const char *const bad[] = {"/kv/vq/x%zz", "/kv/vq/x%4",
					  "/kv/vq/x%"};
	for (size_t i = 0; i < 3; i++) {
		req("GET", bad[i], NULL, NULL, &r);
		assert_int_equal(r.status, 400);
		tresp_clear(&r);
		memset(key, 'b', HTTP_KEY_INLINE);
		key[HTTP_KEY_INLINE] = '\0';
		snprintf(path, sizeof path, "/kv/vq/%s%s", key, bad[i] + 8);
		req("GET", path, NULL, NULL, &r);
		assert_int_equal(r.status, 400);
		tresp_clear(&r);
	}
	/* ?consistency with escapes: decoded, as before */
	req("PUT", "/kv/vq/c", "c", NULL, &r);
	tresp_clear(&r);
	req("GET", "/kv/vq/c?consistency=%6Cocal", NULL, NULL, &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.len, 1);
	tresp_clear(&r);
	req("GET", "/kv/vq/c?consistency=%6", NULL, NULL, &r);
	assert_int_equal(r.status, 400);
	tresp_clear(&r);
	req("GET", "/kv/vq/c?consistency=%6Cocalx", NULL, NULL, &r);
	assert_int_equal(r.status, 400);
	tresp_clear(&r);
}

static int setup(void **state)
{
	(void)state;
	if (tcurl_node_start(datadir, &tn) != 0)
		return -1;
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
	    cmocka_unit_test(
		test_kept_response_is_the_built_one_for_every_version),
	    cmocka_unit_test(test_big_values_are_built_each_time),
	    cmocka_unit_test(test_query_table_answers_as_libmicrohttpd),
	    cmocka_unit_test(test_short_and_long_keys_decode_alike),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
