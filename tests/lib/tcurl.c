/* tcurl.c - a test's HTTP client (tcurl.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "tcurl.h"

struct sink {
	struct tresp *r;
	bool no_date;
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

size_t tcurl_body_cb(char *data, size_t size, size_t nmemb, void *cls)
{
	struct tresp *r = cls;
	return grow(&r->body, &r->len, data, size * nmemb);
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *cls)
{
	struct sink *s = cls;
	size_t n = size * nmemb;
	if (s->no_date && n >= 5 && strncasecmp(data, "Date:", 5) == 0)
		return n;
	return grow(&s->r->headers, &s->r->hlen, data, n);
}

void tcurl_req(unsigned port, const char *method, const char *path,
	       const void *body, size_t blen, const char *const *hdrs,
	       bool no_date, struct tresp *r)
{
	size_t ulen = strlen(path) + 32;
	char *url = malloc(ulen);
	CURL *c = curl_easy_init();
	struct curl_slist *list = curl_slist_append(NULL, "Expect:");
	struct sink s = {r, no_date};

	memset(r, 0, sizeof *r);
	assert_non_null(url);
	assert_non_null(c);
	snprintf(url, ulen, "http://127.0.0.1:%u%s", port, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, tcurl_body_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &s);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
	for (size_t i = 0; hdrs && hdrs[i]; i++)
		list = curl_slist_append(list, hdrs[i]);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
	if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	else
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)blen);
	}
	CURLcode rc = curl_easy_perform(c);
	if (rc != CURLE_OK)
		fail_msg("%s %s: %s", method, path, curl_easy_strerror(rc));
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	curl_slist_free_all(list);
	curl_easy_cleanup(c);
	free(url);
}

void tresp_clear(struct tresp *r)
{
	free(r->body);
	free(r->headers);
	memset(r, 0, sizeof *r);
}

const char *tresp_header(const struct tresp *r, const char *name, char *buf,
			 size_t size)
{
	size_t nl = strlen(name);
	const char *p = r->headers;

	while (p && *p) {
		const char *eol = strstr(p, "\r\n");
		size_t n = eol ? (size_t)(eol - p) : strlen(p);
		if (n > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			const char *v = p + nl + 1;
			while (*v == ' ')
				v++;
			size_t vn = n - (size_t)(v - p);
			if (vn >= size)
				vn = size - 1;
			memcpy(buf, v, vn);
			buf[vn] = '\0';
			return buf;
		}
		p = eol ? eol + 2 : p + n;
	}
	return NULL;
}

int tcurl_node_start(char *datadir, struct tnode *t)
{
	struct node_options opt = {.id = 1, .listen = "127.0.0.1:0"};

	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (!mkdtemp(datadir))
		return -1;
	opt.data_dir = datadir;
	return tnode_start(&opt, t) == 0 && t->port ? 0 : -1;
}

void tcurl_node_stop(char *datadir, struct tnode *t)
{
	tnode_close(t);
	rmtree(datadir);
	curl_global_cleanup();
}
