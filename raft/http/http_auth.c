/* http_auth.c - who a request is from, and whether it may do what it asks.
 *
 * A request is from a member when it carries one of the cluster's tokens
 * (X-Kvfs-Token, node_token_check) and, with TLS, a certificate of the
 * cluster's CA (http_tls.c); members may do everything. A client presents
 * "Authorization: Bearer TOKEN", looked up in the --auth table: lines
 * "NAME ROLE sha256:HEX [PREFIX]" holding only the SHA-256 of each token,
 * so the file holds no secret. The table is swapped whole on a reload
 * (SIGHUP), under a lock requests only read; a table that does not parse
 * keeps the old one. Roles: read (GET, listings, /status), write (also
 * PUT, DELETE, CAS), admin (also membership); a PREFIX bounds the keys.
 * The rules, route by route, are in http_auth_check; statuses and codes in
 * docs/http-api.md and docs/security.md. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "http_int.h"
#include "peer.h"

#define SHA256_LEN   32
#define NAME_MAX_LEN 64
#define LINE_MAX_LEN 8192

struct auth_entry {
	char name[NAME_MAX_LEN + 1];
	enum http_role role;
	unsigned char hash[SHA256_LEN];
	char *prefix; /* NULL: every key */
	size_t plen;
};

struct http_auth {
	char *file;
	pthread_rwlock_t lock; /* guards t and n; a leaf */
	struct auth_entry *t;
	size_t n;
};

static void entries_free(struct auth_entry *t, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(t[i].prefix);
	free(t);
}

static int bad_line(char **errmsg, const char *file, unsigned line,
		    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int bad_line(char **errmsg, const char *file, unsigned line,
		    const char *fmt, ...)
{
	char why[200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (asprintf(errmsg, "--auth %s, line %u: %s", file, line, why) < 0)
		*errmsg = NULL;
	return -EINVAL;
}

static int hex_val(char c)
{
	return c >= '0' && c <= '9'   ? c - '0'
	       : c >= 'a' && c <= 'f' ? c - 'a' + 10
	       : c >= 'A' && c <= 'F' ? c - 'A' + 10
				      : -1;
}

/* One line's words into e. 0, 1 (blank or comment) or -EINVAL. */
static int parse_line(char *s, struct auth_entry *e, const char *file,
		      unsigned lineno, char **errmsg)
{
	char *w[5], *save = NULL;
	int n = 0;

	for (char *t = strtok_r(s, " \t", &save); t && n < 5;
	     t = strtok_r(NULL, " \t", &save))
		w[n++] = t;
	if (n == 0 || w[0][0] == '#')
		return 1;
	if (n < 3 || n > 4)
		return bad_line(errmsg, file, lineno,
				"expected NAME ROLE sha256:HEX [PREFIX], got "
				"%d words",
				n);
	if (strlen(w[0]) > NAME_MAX_LEN)
		return bad_line(errmsg, file, lineno,
				"a name is at most %d characters",
				NAME_MAX_LEN);
	snprintf(e->name, sizeof(e->name), "%s", w[0]);
	e->role = strcmp(w[1], "read") == 0    ? HTTP_ROLE_READ
		  : strcmp(w[1], "write") == 0 ? HTTP_ROLE_WRITE
		  : strcmp(w[1], "admin") == 0 ? HTTP_ROLE_ADMIN
					       : HTTP_ROLE_NONE;
	if (e->role == HTTP_ROLE_NONE)
		return bad_line(errmsg, file, lineno,
				"the role \"%.16s\" is none of read, write, "
				"admin",
				w[1]);
	if (strncmp(w[2], "sha256:", 7) != 0 ||
	    strlen(w[2] + 7) != 2 * SHA256_LEN)
		return bad_line(errmsg, file, lineno,
				"the third word must be sha256: and 64 hex "
				"digits (the SHA-256 of the token: printf %%s "
				"TOKEN | sha256sum)");
	for (int i = 0; i < SHA256_LEN; i++) {
		int hi = hex_val(w[2][7 + 2 * i]),
		    lo = hex_val(w[2][8 + 2 * i]);
		if (hi < 0 || lo < 0)
			return bad_line(errmsg, file, lineno,
					"sha256: takes 64 hex digits");
		e->hash[i] = (unsigned char)(hi << 4 | lo);
	}
	if (n == 4) {
		if (kv_key_check(w[3], strlen(w[3])) < 0 &&
		    w[3][strlen(w[3]) - 1] != '/')
			return bad_line(errmsg, file, lineno,
					"the prefix is not a key nor a key "
					"followed by '/'");
		if (!(e->prefix = strdup(w[3])))
			return -ENOMEM;
		e->plen = strlen(w[3]);
	}
	return 0;
}

/* Parse file into a new table. 0 or -EINVAL / -errno with *errmsg. */
static int table_load(const char *file, struct auth_entry **out, size_t *count,
		      char **errmsg)
{
	FILE *f = fopen(file, "re");
	struct auth_entry *t = NULL;
	size_t n = 0, cap = 0;
	char line[LINE_MAX_LEN];
	unsigned lineno = 0;
	int err = 0;

	if (!f) {
		err = -errno;
		if (asprintf(errmsg, "--auth %s: %s", file, strerror(errno)) <
		    0)
			*errmsg = NULL;
		return err;
	}
	while (err == 0 && fgets(line, sizeof(line), f)) {
		lineno++;
		size_t len = strcspn(line, "\r\n");
		if (line[len] == '\0' && !feof(f)) {
			err = bad_line(errmsg, file, lineno, "line too long");
			break;
		}
		line[len] = '\0';
		if (n == cap) {
			cap = cap ? 2 * cap : 16;
			struct auth_entry *nt = realloc(t, cap * sizeof(*t));
			if (!nt) {
				err = -ENOMEM;
				break;
			}
			t = nt;
		}
		memset(&t[n], 0, sizeof(t[n]));
		int r = parse_line(line, &t[n], file, lineno, errmsg);
		if (r < 0) {
			free(t[n].prefix);
			err = r;
		} else if (r == 0) {
			n++;
		}
	}
	fclose(f);
	if (err != 0) {
		entries_free(t, n);
		return err;
	}
	*out = t;
	*count = n;
	return 0;
}

int http_auth_new(const char *file, struct http_auth **out, char **errmsg)
{
	struct http_auth *a = calloc(1, sizeof(*a));

	*errmsg = NULL;
	if (!a || !(a->file = strdup(file))) {
		free(a);
		return -ENOMEM;
	}
	int err = table_load(file, &a->t, &a->n, errmsg);
	if (err != 0) {
		free(a->file);
		free(a);
		return err;
	}
	pthread_rwlock_init(&a->lock, NULL);
	*out = a;
	return 0;
}

int http_auth_reload(struct http_auth *a, size_t *count, char **errmsg)
{
	struct auth_entry *t = NULL, *old;
	size_t n = 0, oldn;

	*errmsg = NULL;
	int err = table_load(a->file, &t, &n, errmsg);
	if (err != 0)
		return err;
	pthread_rwlock_wrlock(&a->lock);
	old = a->t;
	oldn = a->n;
	a->t = t;
	a->n = n;
	pthread_rwlock_unlock(&a->lock);
	entries_free(old, oldn);
	*count = n;
	return 0;
}

void http_auth_free(struct http_auth *a)
{
	if (!a)
		return;
	entries_free(a->t, a->n);
	pthread_rwlock_destroy(&a->lock);
	free(a->file);
	free(a);
}

/* Look the bearer token up: its entry's role, name and prefix into r.
 * Every entry is compared, in constant time, whichever matches. */
static bool bearer_lookup(struct http_auth *a, const char *tok,
			  struct http_req *r)
{
	unsigned char h[SHA256_LEN];
	ssize_t hit = -1;

	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, tok, strlen(tok), h) < 0)
		return false;
	pthread_rwlock_rdlock(&a->lock);
	for (size_t i = 0; i < a->n; i++) {
		unsigned char d = 0;
		for (int k = 0; k < SHA256_LEN; k++)
			d |= h[k] ^ a->t[i].hash[k];
		/* no branch on the bytes: the index is kept by a mask */
		ssize_t m = -(ssize_t)(d == 0);
		hit = (hit & ~m) | ((ssize_t)i & m);
	}
	if (hit >= 0) {
		const struct auth_entry *e = &a->t[hit];
		r->role = e->role;
		snprintf(r->who, sizeof(r->who), "%s", e->name);
		free(r->prefix);
		r->prefix = e->prefix ? strdup(e->prefix) : NULL;
	}
	pthread_rwlock_unlock(&a->lock);
	explicit_bzero(h, sizeof(h));
	return hit >= 0;
}

/* Refuse r with status and code (401 unauthenticated, 403 forbidden),
 * logging 401s with the remote address: false. */
static bool refuse(struct http_req *r, unsigned status, const char *msg)
{
	if (status == MHD_HTTP_UNAUTHORIZED) {
		char from[80];
		http_remote(r, from, sizeof(from));
		kv_log(KV_LOG_WARN, "refused %s %s from %s: %s",
		       http_method_name(r->method), r->route->prefix, from,
		       msg);
	}
	http_fail(r, status,
		  status == MHD_HTTP_UNAUTHORIZED ? "unauthenticated"
						  : "forbidden",
		  msg);
	return false;
}

/* Who r is from: a member (r->peer), a client of the --auth table
 * (r->role), or nobody known. false once refused (a wrong token or
 * certificate is never taken for no token). */
static bool identify(struct http_req *r)
{
	const char *tok = http_header(r, PEER_HDR_TOKEN);
	const char *az = http_header(r, MHD_HTTP_HEADER_AUTHORIZATION);
	struct http_server *h = r->http;
	int cert = http_tls_client_cert(r);

	if (cert < 0)
		return refuse(r, MHD_HTTP_UNAUTHORIZED,
			      "the client certificate is not one of the "
			      "cluster's CA, or not valid now");
	if (cert == 0 && h->tls && h->tls_client_auth)
		return refuse(r, MHD_HTTP_UNAUTHORIZED,
			      "a client certificate of the cluster's CA is "
			      "required");
	if (tok) {
		if (!node_token_check(r->node, tok))
			return refuse(r, MHD_HTTP_UNAUTHORIZED,
				      "missing or wrong " PEER_HDR_TOKEN);
		if (h->tls && cert == 0)
			return refuse(r, MHD_HTTP_UNAUTHORIZED,
				      "a member must present a certificate of "
				      "the cluster's CA");
		r->peer = true;
		r->role = HTTP_ROLE_ADMIN;
		snprintf(r->who, sizeof(r->who), "member");
		return true;
	}
	if (!az)
		return true;
	if (strncasecmp(az, "Bearer ", 7) != 0 || !h->auth ||
	    !bearer_lookup(h->auth, az + 7 + strspn(az + 7, " "), r))
		return refuse(r, MHD_HTTP_UNAUTHORIZED,
			      h->auth ? "unknown token"
				      : "this node takes no client tokens "
					"(no --auth)");
	return true;
}

bool http_auth_check(struct http_req *r)
{
	enum http_access acc = r->route->access;
	struct http_server *h = r->http;
	/* /txn is a POST that may only read: http_txn.c checks the role
	 * once the body says whether it writes */
	bool change = r->method & (HTTP_PUT | HTTP_POST | HTTP_DELETE) &&
		      strcmp(r->route->prefix, "/txn") != 0;

	if (!identify(r))
		return false;
	if (r->peer)
		return true;
	switch (acc) {
	case HTTP_ACCESS_PEER:
		return refuse(r, MHD_HTTP_UNAUTHORIZED,
			      "missing or wrong " PEER_HDR_TOKEN);
	case HTTP_ACCESS_STATUS:
		if (h->status_public || !h->auth)
			return true;
		break;
	case HTTP_ACCESS_MEMBERS:
		if (!change && !h->auth)
			return true;
		if (change && r->role == HTTP_ROLE_NONE)
			return refuse(r, MHD_HTTP_UNAUTHORIZED,
				      h->auth ? "membership changes need an "
						"admin token or the cluster "
						"token"
					      : "membership changes need the "
						"cluster token "
						"(" PEER_HDR_TOKEN ")");
		if (change && r->role < HTTP_ROLE_ADMIN)
			return refuse(r, MHD_HTTP_FORBIDDEN,
				      "membership changes need the admin role");
		break;
	case HTTP_ACCESS_ADMIN:
		if (r->role == HTTP_ROLE_NONE)
			return refuse(r, MHD_HTTP_UNAUTHORIZED,
				      h->auth ? "this needs an admin token or "
						"the cluster token"
					      : "this needs the cluster token "
						"(" PEER_HDR_TOKEN ")");
		if (r->role < HTTP_ROLE_ADMIN)
			return refuse(r, MHD_HTTP_FORBIDDEN,
				      "this needs the admin role");
		break;
	case HTTP_ACCESS_CLIENT:
		if (!h->auth)
			return true;
		if (change && r->role != HTTP_ROLE_NONE &&
		    r->role < HTTP_ROLE_WRITE)
			return refuse(r, MHD_HTTP_FORBIDDEN,
				      "writes need the write role");
		break;
	}
	if (r->role == HTTP_ROLE_NONE)
		return refuse(r, MHD_HTTP_UNAUTHORIZED,
			      "this node needs a token: Authorization: "
			      "Bearer TOKEN");
	return true;
}

bool http_auth_key_check(struct http_req *r)
{
	if (r->peer || !r->prefix || r->route->access != HTTP_ACCESS_CLIENT)
		return true;
	/* /txn names its keys in its body: http_txn.c checks each of them */
	if (strcmp(r->route->prefix, "/txn") == 0)
		return true;
	/* a key K is K; a listing of directory D is "D/" (the root: "") */
	bool dir = r->rest[0] == '\0' || r->rest[strlen(r->rest) - 1] == '/';
	size_t plen = strlen(r->prefix), n = r->klen + (dir && r->klen);
	bool ok = n >= plen;
	for (size_t i = 0; ok && i < plen; i++)
		ok = (i < r->klen ? r->key[i] : '/') == r->prefix[i];
	if (ok)
		return true;
	char msg[sizeof(r->who) + 64];
	snprintf(msg, sizeof(msg),
		 "the token \"%s\" may only reach keys under its prefix",
		 r->who);
	return refuse(r, MHD_HTTP_FORBIDDEN, msg);
}
