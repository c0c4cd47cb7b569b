/* tcurl.h - a test's HTTP client (libcurl, cmocka): one request to a
 * node on 127.0.0.1, its status, body and header block collected, for
 * the tests of raft/http. */
#ifndef KVFS_TESTS_TCURL_H
#define KVFS_TESTS_TCURL_H

#include <stdbool.h>
#include <stddef.h>

#include "tnode.h"

/* An answer: the status, the body and the header lines (each with its
 * CRLF), NUL-terminated; tresp_clear frees them. */
struct tresp {
	long status;
	char *body, *headers;
	size_t len, hlen;
};

/* method path on 127.0.0.1:port, the path sent as it is (no dot
 * segments removed), with blen bytes of body if body is not NULL, and the
 * extra header lines of hdrs (NULL-terminated; NULL: none). HEAD asks for
 * no body. no_date leaves the Date header out of r->headers (it moves with
 * the clock). A transport error fails the test. */
void tcurl_req(unsigned port, const char *method, const char *path,
	       const void *body, size_t blen, const char *const *hdrs,
	       bool no_date, struct tresp *r);
void tresp_clear(struct tresp *r);
/* libcurl's CURLOPT_WRITEFUNCTION appending to a struct tresp's body
 * (CURLOPT_WRITEDATA), for a test that sets up a transfer of its own. */
size_t tcurl_body_cb(char *data, size_t size, size_t nmemb, void *cls);
/* The value of r's header name (case-insensitive), copied into buf, or
 * NULL. */
const char *tresp_header(const struct tresp *r, const char *name, char *buf,
			 size_t size);

/* A test group's node: libcurl initialized, then a one-member node with
 * its listener on 127.0.0.1 (port 0: the kernel's pick, in t->port) and
 * its data in mkdtemp(datadir). 0 or -1. tcurl_node_stop undoes it. */
int tcurl_node_start(char *datadir, struct tnode *t);
void tcurl_node_stop(char *datadir, struct tnode *t);

#endif
