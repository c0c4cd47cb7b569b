/* join.c - asking a cluster to add this node (POST /cluster/members).
 *
 * A join is a loop of one-shot libcurl requests against a deadline: any
 * member may be asked, a follower answers 421 naming the leader, which is
 * asked next; a 503 (no leader yet, another membership change under way,
 * no quorum) or a member that cannot be reached is asked again after a
 * backoff. The request is idempotent by design: a 409 whose body shows
 * this id already at this address is taken as success, so a joiner that
 * crashed after the change committed, or whose answer was lost in a
 * timeout, just asks again. Deadlines are kv_deadline's (monotonic);
 * addresses are checked by cluster_addr_valid (kv_addr_valid). The
 * server side is raft/http/http_cluster.c. */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "join.h"
#include "kv.h"
#include "peer.h"
#include "peer_tls.h"

#define JOIN_PATH	   "/cluster/members"
#define BACKOFF_MIN_MS	   20
#define BACKOFF_MAX_MS	   1000
#define CONNECT_TIMEOUT_MS 2000
#define MAX_REDIRECTS	   4
#define RESP_MAX	   (64u * 1024u * 1024u)
#define JOIN_ID_LIMIT	   9007199254740991ull /* 2^53 - 1 */
#define JOIN_REASON_MAX	   256

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void set_err(char **errmsg, const char *fmt, ...)
{
	va_list ap;

	if (!errmsg)
		return;
	free(*errmsg);
	*errmsg = NULL;
	va_start(ap, fmt);
	if (vasprintf(errmsg, fmt, ap) < 0)
		*errmsg = NULL;
	va_end(ap);
}

static void sleep_ms(long ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

bool cluster_addr_valid(const char *a)
{
	return kv_addr_valid(a);
}

bool cluster_addr_loopback(const char *a)
{
	char host[KV_ADDR_MAX + 1];
	struct in_addr v4;
	struct in6_addr v6;

	if (!a || kv_addr_parse(a, true, host, sizeof(host), NULL, NULL) != 0)
		return false;
	if (strcmp(host, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, host, &v4) == 1)
		return (ntohl(v4.s_addr) >> 24) == 127;
	return inet_pton(AF_INET6, host, &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

/* Add auth's tokens to the header list *h (curl copies them). 0 or
 * -ENOMEM. */
static int auth_headers(struct curl_slist **h, const struct cluster_auth *a)
{
	char line[PEER_ID_MAX + 64];
	int err = 0;

	for (int i = 0; i < 2 && err == 0; i++) {
		const char *v = a ? (i ? a->bearer : a->token) : NULL;
		if (!v)
			continue;
		snprintf(line, sizeof(line), "%s: %s%s",
			 i ? "Authorization" : PEER_HDR_TOKEN,
			 i ? "Bearer " : "", v);
		struct curl_slist *t = curl_slist_append(*h, line);
		if (!t)
			err = -ENOMEM;
		else
			*h = t;
	}
	explicit_bzero(line, sizeof(line));
	return err;
}

/* ---- one request ---- */

struct buf {
	char *data;
	size_t len;
	unsigned retry_after;
	bool overflow;
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *cls)
{
	struct buf *b = cls;
	size_t n = size * nmemb;
	char *d;

	if (b->len + n > RESP_MAX) {
		b->overflow = true;
		return 0;
	}
	d = realloc(b->data, b->len + n + 1);
	if (!d)
		return 0;
	memcpy(d + b->len, data, n);
	b->len += n;
	d[b->len] = '\0';
	b->data = d;
	return n;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *cls)
{
	struct buf *b = cls;
	size_t n = size * nmemb;
	static const char name[] = "retry-after:";

	if (n > sizeof(name) - 1 &&
	    strncasecmp(data, name, sizeof(name) - 1) == 0) {
		unsigned long v = strtoul(data + sizeof(name) - 1, NULL, 10);
		b->retry_after = v > 3600 ? 3600 : (unsigned)v;
	}
	return n;
}

int cluster_http(const char *addr, const struct cluster_auth *auth,
		 const char *method, const char *path, const char *body,
		 size_t len, int timeout_ms, long *status, char **resp,
		 size_t *resp_len, unsigned *retry_after, char **errmsg)
{
	struct buf b = {0};
	struct curl_slist *hdrs = NULL;
	char url[JOIN_ADDR_MAX + 8 + 4096];
	CURL *c;
	CURLcode rc;
	int err = 0;

	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != CURLE_OK) {
		set_err(errmsg, "libcurl did not initialise: %s",
			curl_easy_strerror(curl_init_rc));
		return -EIO;
	}
	if (snprintf(url, sizeof(url), "%s://%s%s",
		     peer_tls_scheme(auth ? auth->tls : NULL), addr,
		     path) >= (int)sizeof(url)) {
		set_err(errmsg, "request path too long");
		return -EINVAL;
	}
	c = curl_easy_init();
	if (!c)
		return -ENOMEM;
	hdrs = curl_slist_append(hdrs, "Expect:");
	if (body)
		hdrs =
		    curl_slist_append(hdrs, "Content-Type: application/json");
	if (!hdrs || auth_headers(&hdrs, auth) != 0) {
		err = -ENOMEM;
		goto err_headers;
	}
	peer_tls_curl(c, auth ? auth->tls : NULL);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_PROXY, "");
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
			 (long)(timeout_ms < CONNECT_TIMEOUT_MS
				    ? timeout_ms
				    : CONNECT_TIMEOUT_MS));
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &b);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)len);
	}
	if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	else if (strcmp(method, body ? "POST" : "GET") != 0)
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	rc = curl_easy_perform(c);
	if (rc != CURLE_OK) {
		if (b.overflow) {
			set_err(errmsg, "%s: answer larger than %u bytes", addr,
				RESP_MAX);
			err = -EIO;
		} else {
			set_err(errmsg, "%s: %s", addr, curl_easy_strerror(rc));
			/* a certificate refused is not worth retrying */
			err = rc == CURLE_COULDNT_CONNECT      ? -ECONNREFUSED
			      : rc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT
			      : rc == CURLE_PEER_FAILED_VERIFICATION ||
				      rc == CURLE_SSL_CERTPROBLEM ||
				      rc == CURLE_SSL_CACERT_BADFILE
				  ? -EACCES
				  : -EIO;
		}
		goto err_headers;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	if (!b.data) {
		b.data = strdup("");
		if (!b.data) {
			err = -ENOMEM;
			goto err_headers;
		}
	}
	*resp = b.data;
	if (resp_len)
		*resp_len = b.len;
	b.data = NULL;
	if (retry_after)
		*retry_after = b.retry_after;
err_headers:
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(c);
	free(b.data);
	return err;
}

/* ---- the join ---- */

/* A string field of o, or NULL. */
static const char *str_field(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The "error" text of an answer, for a message (our own reason if none). */
static void answer_reason(const cJSON *o, char *why, size_t cap)
{
	const char *e = o ? str_field(o, "error") : NULL;
	snprintf(why, cap, "%s", e ? e : "no reason given");
}

/* Take cluster_id from a 201 or a matching 409. */
static int fill_answer(const cJSON *o, struct join_answer *out)
{
	const char *cid = str_field(o, "cluster_id");

	if (!cid || !cid[0] || strlen(cid) > JOIN_ID_MAX)
		return -EPROTO;
	snprintf(out->cluster_id, sizeof(out->cluster_id), "%s", cid);
	return 0;
}

/* Where a 421 or 503 answer (text) sends a leader request next: to the
 * leader a 421 names (true: ask it at once, up to MAX_REDIRECTS in a row;
 * a 421 naming no usable leader leaves target as it is, false), or after a
 * 503 back to member (false: after the backoff), since a leader we were
 * sent to may have been removed or deposed and know no leader since.
 * target (JOIN_ADDR_MAX + 1 bytes) is updated, last (JOIN_REASON_MAX)
 * says what happened. */
static bool next_target(long status, const char *text, const char *member,
			char *target, char *last, int *redirects, bool *retried)
{
	cJSON *o = cJSON_Parse(text);
	bool follow = false;

	if (status == 421) {
		const char *lead = o ? str_field(o, "leader_address") : NULL;
		snprintf(last, JOIN_REASON_MAX,
			 "%s is not the leader (leader: %.64s)", target,
			 lead && lead[0] ? lead : "unknown");
		if (lead && cluster_addr_valid(lead) &&
		    strcmp(lead, target) != 0 && *redirects < MAX_REDIRECTS) {
			snprintf(target, JOIN_ADDR_MAX + 1, "%s", lead);
			(*redirects)++;
			follow = true;
		}
	} else {
		char why[JOIN_REASON_MAX - 80];
		answer_reason(o, why, sizeof(why));
		snprintf(last, JOIN_REASON_MAX, "%s answered 503: %s", target,
			 why);
		if (retried)
			*retried = true;
		snprintf(target, JOIN_ADDR_MAX + 1, "%s", member);
	}
	cJSON_Delete(o);
	return follow;
}

int cluster_leader_request(const char *member, const struct cluster_auth *auth,
			   const char *method, const char *path,
			   const char *body, int timeout_ms, long *status,
			   char **resp, bool *retried, char **errmsg)
{
	char target[JOIN_ADDR_MAX + 1], last[JOIN_REASON_MAX] = "";
	struct timespec deadline = kv_deadline(timeout_ms);
	long backoff = BACKOFF_MIN_MS;
	int redirects = 0, attempts = 0;

	if (errmsg)
		*errmsg = NULL;
	if (retried)
		*retried = false;
	if (!cluster_addr_valid(member)) {
		set_err(errmsg, "\"%.80s\" is not HOST:PORT",
			member ? member : "");
		return -EINVAL;
	}
	if (timeout_ms <= 0) {
		set_err(errmsg, "bad timeout %d", timeout_ms);
		return -EINVAL;
	}
	snprintf(target, sizeof(target), "%s", member);
	for (;;) {
		long left = kv_ms_left(&deadline);
		char *text = NULL, *terr = NULL;
		bool follow;
		int rc;

		if (left <= 0)
			break;
		attempts++;
		rc = cluster_http(target, auth, method, path, body,
				  body ? strlen(body) : 0, (int)left, status,
				  &text, NULL, NULL, &terr);
		if (rc == -ENOMEM || rc == -EINVAL || rc == -EACCES) {
			set_err(errmsg, "%s", terr ? terr : strerror(-rc));
			free(terr);
			return rc;
		}
		if (rc < 0) {
			if (retried)
				*retried = true;
			snprintf(last, sizeof(last), "%s", terr ? terr : "?");
			free(terr);
			/* The leader we were sent to may be gone: ask the
			 * member we were given again. */
			snprintf(target, sizeof(target), "%s", member);
			goto retry;
		}
		if (*status != 421 && *status != 503) {
			*resp = text;
			return 0;
		}
		follow = next_target(*status, text, member, target, last,
				     &redirects, retried);
		free(text);
		if (follow)
			continue;
		redirects = 0;
	retry:
		left = kv_ms_left(&deadline);
		if (left <= 0)
			break;
		sleep_ms(backoff < left ? backoff : left);
		backoff =
		    backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
	}
	set_err(errmsg,
		"no answer from a leader within %d ms (%d attempts); "
		"last: %s",
		timeout_ms, attempts, last[0] ? last : "nothing");
	return -ETIMEDOUT;
}

int cluster_join(const char *member, const struct cluster_auth *auth,
		 uint64_t id, const char *self_addr, int timeout_ms,
		 struct join_answer *out, char **errmsg)
{
	char body[160], *resp = NULL, *err = NULL;
	long status = 0;
	cJSON *o;
	int rc;

	if (errmsg)
		*errmsg = NULL;
	if (!cluster_addr_valid(member)) {
		set_err(errmsg, "--join: \"%.80s\" is not HOST:PORT",
			member ? member : "");
		return -EINVAL;
	}
	if (!cluster_addr_valid(self_addr)) {
		set_err(errmsg,
			"this node's address \"%.80s\" is not HOST:PORT",
			self_addr ? self_addr : "");
		return -EINVAL;
	}
	if (id == 0 || id > JOIN_ID_LIMIT || timeout_ms <= 0 || !out) {
		set_err(errmsg, "bad id %" PRIu64 " or timeout %d", id,
			timeout_ms);
		return -EINVAL;
	}
	snprintf(body, sizeof(body), "{\"id\":%" PRIu64 ",\"address\":\"%s\"}",
		 id, self_addr);
	rc = cluster_leader_request(member, auth, "POST", JOIN_PATH, body,
				    timeout_ms, &status, &resp, NULL, &err);
	if (rc != 0) {
		set_err(errmsg, "join: %s", err ? err : strerror(-rc));
		free(err);
		return rc;
	}
	o = cJSON_Parse(resp);
	switch (status) {
	case 201:
		if (fill_answer(o, out) != 0) {
			set_err(
			    errmsg,
			    "join: the leader answered 201 without a usable "
			    "cluster_id");
			rc = -EPROTO;
		}
		break;
	case 409: {
		const char *have = o ? str_field(o, "address") : NULL;
		if (have && strcmp(have, self_addr) == 0 &&
		    fill_answer(o, out) == 0)
			break;
		if (have)
			set_err(errmsg,
				"join: id %" PRIu64
				" is already a member at %.64s, not %s",
				id, have, self_addr);
		else
			set_err(errmsg,
				"join: id %" PRIu64 " is already a member (the "
				"leader did not say at which address)",
				id);
		rc = -EEXIST;
		break;
	}
	default: {
		char why[JOIN_REASON_MAX - 80];
		answer_reason(o, why, sizeof(why));
		set_err(errmsg, "join: refused (HTTP %ld): %s", status, why);
		rc = status == 400   ? -EINVAL
		     : status == 401 ? -EACCES
		     : status == 403 ? -EPERM
				     : -EPROTO;
		break;
	}
	}
	cJSON_Delete(o);
	free(resp);
	return rc;
}
