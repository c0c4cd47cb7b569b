/* kvbench.c - a load generator for kvfs's HTTP API (and etcd's, to compare),
 * and a raw fsync meter.
 *
 * N client threads, each with one keep-alive connection, send PUT or GET
 * requests as fast as answers come back, for a duration or a fixed count,
 * and record every latency; the figures are throughput and p50/p99/max.
 * Plain sockets and a minimal HTTP/1.1 reader (Content-Length and chunked
 * bodies) keep the client cheap, so the server, not the generator, is what
 * is measured. `--target etcd3` speaks etcd's v3 JSON gateway and `etcd2`
 * its v2 keys API, with the same workload, so scripts/bench-cluster can put
 * kvfs and etcd side by side; `--target byte` speaks kvfs's byte protocol
 * (--tcp-listen: SET and GET, docs/byte-protocol.md), for scripts/bench-compare
 * to put it beside Redis, and `--target redis` speaks RESP (SET, GET), so
 * Redis can be driven by this same client. `--tls-ca FILE` (with --tls-cert and
 * --tls-key for a client certificate) speaks https: one GnuTLS session per
 * connection, the CA checked, not the name, as kvfs's own clients do, so
 * scripts/bench-tls can put TLS beside plain. `--fsync DIR` instead measures
 * how many write+fdatasync rounds the disk does per second. Used by
 * scripts/bench and scripts/bench-cluster. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>

/* Which HTTP API the requests speak. */
enum target {
	TARGET_KVFS,  /* PUT /kv/K (raw body), GET /kv/K[?consistency=local] */
	TARGET_ETCD2, /* PUT /v2/keys/K (form value=), GET [?quorum=true] */
	TARGET_ETCD3, /* POST /v3/kv/put, /v3/kv/range (base64 JSON) */
	TARGET_BYTE,  /* kvfs's byte protocol (--tcp-listen): SET, GET */
	TARGET_REDIS, /* Redis's RESP: SET, GET (the same client for both) */
};

struct conf {
	enum target target;
	bool local_read; /* GET: a possibly stale local read, no quorum */
	const char *host;
	const char *port;
	const char *op; /* put, get */
	const char *prefix;
	int clients;
	double duration;
	long count; /* total ops; 0: run for duration */
	size_t value_size;
	long keys; /* key space */
	bool binary;
	const char
	    *query; /* kvfs: raw suffix of GET URLs; not with --read local */
};

struct worker {
	const struct conf *c;
	int id;
	long ops, errors;
	double *lat; /* seconds */
	size_t nlat, caplat;
	pthread_t thread;
};

/* A client's connection: a socket, and a TLS session over it or NULL. */
struct conn {
	int fd;
	gnutls_session_t tls;
};

/* --tls-ca: the credentials every session uses (read-only once made). */
static gnutls_certificate_credentials_t tls_cred;

static volatile bool stop_flag;
static long next_op; /* with count: shared counter */
static pthread_mutex_t op_mu = PTHREAD_MUTEX_INITIALIZER;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int dial_tcp(const struct conf *c)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_socktype = SOCK_STREAM};
	struct addrinfo *ai;
	if (getaddrinfo(c->host, c->port, &hints, &ai) != 0)
		return -1;
	int fd = socket(ai->ai_family, ai->ai_socktype, 0);
	if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	if (fd >= 0) {
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	return fd;
}

static void hang_up(struct conn *k)
{
	if (k->tls)
		gnutls_deinit(k->tls);
	if (k->fd >= 0)
		close(k->fd);
	k->fd = -1;
	k->tls = NULL;
}

/* Connect, and with --tls-ca shake hands. 0 or -1 (k closed). */
static int dial(const struct conf *c, struct conn *k)
{
	int r;

	k->tls = NULL;
	if ((k->fd = dial_tcp(c)) < 0)
		return -1;
	if (!tls_cred)
		return 0;
	if (gnutls_init(&k->tls, GNUTLS_CLIENT) < 0) {
		k->tls = NULL;
		hang_up(k);
		return -1;
	}
	gnutls_set_default_priority(k->tls);
	gnutls_credentials_set(k->tls, GNUTLS_CRD_CERTIFICATE, tls_cred);
	gnutls_session_set_verify_cert(k->tls, NULL, 0);
	gnutls_transport_set_int(k->tls, k->fd);
	do
		r = gnutls_handshake(k->tls);
	while (r < 0 && !gnutls_error_is_fatal(r));
	if (r < 0) {
		fprintf(stderr, "kvbench: TLS: %s\n", gnutls_strerror(r));
		hang_up(k);
		return -1;
	}
	return 0;
}

static ssize_t conn_send(struct conn *k, const char *p, size_t n)
{
	if (k->tls) {
		ssize_t r;
		do
			r = gnutls_record_send(k->tls, p, n);
		while (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED);
		return r < 0 ? -1 : r;
	}
	return send(k->fd, p, n, MSG_NOSIGNAL);
}

static ssize_t conn_recv(struct conn *k, char *p, size_t n)
{
	if (k->tls) {
		ssize_t r;
		do
			r = gnutls_record_recv(k->tls, p, n);
		while (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED);
		return r < 0 ? -1 : r;
	}
	return recv(k->fd, p, n, 0);
}

static int send_all(struct conn *fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = conn_send(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Received bytes not yet consumed; a response's leftovers stay for the next. */
struct rbuf {
	char d[65536];
	size_t len;
};

/* Appends what the socket has to b; -1 on EOF, error or a full buffer. */
static int fill(struct conn *fd, struct rbuf *b)
{
	if (b->len == sizeof(b->d))
		return -1;
	for (;;) {
		ssize_t r = conn_recv(fd, b->d + b->len, sizeof(b->d) - b->len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		b->len += (size_t)r;
		return 0;
	}
}

static void consume(struct rbuf *b, size_t n)
{
	memmove(b->d, b->d + n, b->len - n);
	b->len -= n;
}

/* Drops the next n bytes of the stream (a body nobody reads). */
static int skip(struct conn *fd, struct rbuf *b, size_t n)
{
	while (n > 0) {
		if (b->len == 0 && fill(fd, b) < 0)
			return -1;
		size_t k = n < b->len ? n : b->len;
		consume(b, k);
		n -= k;
	}
	return 0;
}

/* Consumes one CRLF-terminated line; returns its length without CRLF, the
 * line stays readable at *line until the next call. -1 on a broken stream. */
static long take_line(struct conn *fd, struct rbuf *b, char *line, size_t cap)
{
	char *eol;
	while (!(eol = memmem(b->d, b->len, "\r\n", 2)))
		if (fill(fd, b) < 0)
			return -1;
	size_t n = (size_t)(eol - b->d);
	size_t k = n < cap - 1 ? n : cap - 1;
	memcpy(line, b->d, k);
	line[k] = '\0';
	consume(b, n + 2);
	return (long)n;
}

/* The value of header name in the header block [d, d+len), or NULL. */
static const char *header(const char *d, size_t len, const char *name)
{
	size_t n = strlen(name);
	const char *p = d, *end = d + len;
	while (p < end) {
		const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
		if (!eol)
			break;
		if ((size_t)(eol - p) > n && p[n] == ':' &&
		    strncasecmp(p, name, n) == 0) {
			const char *v = p + n + 1;
			while (v < eol && (*v == ' ' || *v == '\t'))
				v++;
			return v;
		}
		p = eol + 2;
	}
	return NULL;
}

/* Reads one response and drops its body; returns the status code or -1. */
static int read_response(struct conn *fd, struct rbuf *b)
{
	char *end;
	while (!(end = memmem(b->d, b->len, "\r\n\r\n", 4)))
		if (fill(fd, b) < 0)
			return -1;
	size_t hlen = (size_t)(end - b->d) + 4;
	int status = 0;
	if (sscanf(b->d, "HTTP/1.%*d %d", &status) != 1)
		return -1;
	const char *te = header(b->d, hlen, "Transfer-Encoding");
	bool chunked = te && strncasecmp(te, "chunked", 7) == 0;
	const char *cl = header(b->d, hlen, "Content-Length");
	size_t clen = cl ? strtoul(cl, NULL, 10) : 0;
	consume(b, hlen);
	if (!chunked)
		return skip(fd, b, clen) < 0 ? -1 : status;
	char line[64];
	for (;;) {
		if (take_line(fd, b, line, sizeof(line)) < 0)
			return -1;
		size_t size = strtoul(line, NULL, 16);
		if (size == 0)
			break;
		if (skip(fd, b, size + 2) < 0) /* data and its CRLF */
			return -1;
	}
	long n; /* trailers, then an empty line */
	while ((n = take_line(fd, b, line, sizeof(line))) > 0)
		;
	return n < 0 ? -1 : status;
}

static void record(struct worker *w, double lat)
{
	if (w->nlat == w->caplat) {
		w->caplat = w->caplat ? w->caplat * 2 : 4096;
		w->lat = realloc(w->lat, w->caplat * sizeof(double));
		if (!w->lat) {
			fprintf(stderr, "kvbench: out of memory\n");
			exit(1);
		}
	}
	w->lat[w->nlat++] = lat;
}

static size_t base64(char *out, const char *in, size_t n)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				  "abcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)(unsigned char)in[i] << 16;
		if (i + 1 < n)
			v |= (unsigned)(unsigned char)in[i + 1] << 8;
		if (i + 2 < n)
			v |= (unsigned char)in[i + 2];
		out[o++] = tab[(v >> 18) & 63];
		out[o++] = tab[(v >> 12) & 63];
		out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? tab[v & 63] : '=';
	}
	out[o] = '\0';
	return o;
}

/* application/x-www-form-urlencoded, for etcd v2's value=. */
static size_t form_encode(char *out, const char *in, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)in[i];
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' ||
		    ch == '.' || ch == '~') {
			out[o++] = (char)ch;
		} else {
			out[o++] = '%';
			out[o++] = hex[ch >> 4];
			out[o++] = hex[ch & 15];
		}
	}
	out[o] = '\0';
	return o;
}

/* The byte protocol's size field: 4 bytes little-endian, then a space. */
static size_t put_size(char *out, size_t n)
{
	for (int i = 0; i < 4; i++)
		out[i] = (char)((n >> (8 * i)) & 0xff);
	out[4] = ' ';
	return 5;
}

static uint32_t get_size(const char *p)
{
	const unsigned char *u = (const unsigned char *)p;
	return (uint32_t)u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 |
	       (uint32_t)u[3] << 24;
}

/* One byte-protocol reply (docs/byte-protocol.md): `true`, a value
 * (SIZE, a space, the bytes) or an error (`ERR `, SIZE, a space, `CODE:
 * MESSAGE`). As HTTP statuses: 200, 404 for not_found, 500 for the
 * other errors; -1 on a broken stream. */
static int read_byte_reply(struct conn *fd, struct rbuf *b)
{
	while (b->len < 4)
		if (fill(fd, b) < 0)
			return -1;
	if (memcmp(b->d, "true", 4) == 0) {
		consume(b, 4);
		return 200;
	}
	bool err = memcmp(b->d, "ERR ", 4) == 0;
	size_t at = err ? 4 : 0;
	while (b->len < at + 5)
		if (fill(fd, b) < 0)
			return -1;
	uint32_t n = get_size(b->d + at);
	if (b->d[at + 4] != ' ')
		return -1;
	consume(b, at + 5);
	if (!err)
		return skip(fd, b, n) < 0 ? -1 : 200;
	while (b->len < n && b->len < 9)
		if (fill(fd, b) < 0)
			return -1;
	int status = n >= 9 && memcmp(b->d, "not_found", 9) == 0 ? 404 : 500;
	return skip(fd, b, n) < 0 ? -1 : status;
}

/* One RESP reply: `+OK`, a bulk string (`$N` and N bytes) or a nil
 * (`$-1`), `-ERR ...`. As HTTP statuses: 200, 404 for nil, 500 for an
 * error; -1 on a broken stream. */
static int read_resp_reply(struct conn *fd, struct rbuf *b)
{
	char line[128];
	long n = take_line(fd, b, line, sizeof(line));
	if (n < 1)
		return -1;
	if (line[0] == '+')
		return 200;
	if (line[0] == '-')
		return 500;
	if (line[0] != '$')
		return -1;
	long len = strtol(line + 1, NULL, 10);
	if (len < 0)
		return 404;
	return skip(fd, b, (size_t)len + 2) < 0 ? -1 : 200;
}

/* The PUT body as the target wants it, made once per client: the raw
 * value (kvfs), "value=" form-encoded (etcd2), or base64 (etcd3). */
static size_t encode_value(const struct conf *c, char *out, const char *val)
{
	switch (c->target) {
	case TARGET_ETCD2:
		memcpy(out, "value=", 6);
		return 6 + form_encode(out + 6, val, c->value_size);
	case TARGET_ETCD3:
		return base64(out, val, c->value_size);
	case TARGET_KVFS:
	case TARGET_BYTE:
	case TARGET_REDIS:
		break;
	}
	memcpy(out, val, c->value_size);
	return c->value_size;
}

/* Writes the request for key k into req (room for ev_len + 1024 bytes). */
static size_t build_request(const struct conf *c, bool put, long k,
			    const char *ev, size_t ev_len, char *req)
{
	int hl = 0;
	switch (c->target) {
	case TARGET_BYTE: {
		char key[300];
		int kl = snprintf(key, sizeof(key), "%s%ld", c->prefix, k);
		size_t o = 4;
		memcpy(req, put ? "SET " : "GET ", 4);
		o += put_size(req + o, (size_t)kl);
		if (put)
			o += put_size(req + o, ev_len);
		memcpy(req + o, key, (size_t)kl);
		o += (size_t)kl;
		if (!put)
			return o;
		req[o++] = ' ';
		memcpy(req + o, ev, ev_len);
		return o + ev_len;
	}
	case TARGET_REDIS: {
		char key[300];
		int kl = snprintf(key, sizeof(key), "%s%ld", c->prefix, k);
		if (!put)
			return (size_t)snprintf(
			    req, 1024, "*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n", kl,
			    key);
		hl = snprintf(req, 1024,
			      "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%zu\r\n", kl,
			      key, ev_len);
		memcpy(req + hl, ev, ev_len);
		memcpy(req + hl + ev_len, "\r\n", 2);
		return (size_t)hl + ev_len + 2;
	}
	case TARGET_KVFS:
		if (!put)
			return (size_t)snprintf(
			    req, 1024,
			    "GET /kv/%s%ld%s%s HTTP/1.1\r\nHost: b\r\n\r\n",
			    c->prefix, k,
			    c->local_read ? "?consistency=local" : "",
			    c->query);
		hl = snprintf(req, 1024,
			      "PUT /kv/%s%ld HTTP/1.1\r\nHost: b\r\n"
			      "Content-Length: %zu\r\n\r\n",
			      c->prefix, k, ev_len);
		break;
	case TARGET_ETCD2:
		if (!put)
			return (size_t)snprintf(
			    req, 1024,
			    "GET /v2/keys/%s%ld%s HTTP/1.1\r\nHost: b\r\n\r\n",
			    c->prefix, k, c->local_read ? "" : "?quorum=true");
		hl = snprintf(req, 1024,
			      "PUT /v2/keys/%s%ld HTTP/1.1\r\nHost: b\r\n"
			      "Content-Type: application/x-www-form-urlencoded"
			      "\r\nContent-Length: %zu\r\n\r\n",
			      c->prefix, k, ev_len);
		break;
	case TARGET_ETCD3: {
		char key[300], k64[420];
		int kl = snprintf(key, sizeof(key), "%s%ld", c->prefix, k);
		base64(k64, key, (size_t)kl);
		char head[600];
		int bl;
		if (put)
			bl = snprintf(head, sizeof(head),
				      "{\"key\":\"%s\",\"value\":\"", k64);
		else
			bl = snprintf(
			    head, sizeof(head), "{\"key\":\"%s\"%s}", k64,
			    c->local_read ? ",\"serializable\":true" : "");
		size_t blen = (size_t)bl + (put ? ev_len + 2 : 0);
		hl = snprintf(req, 1024,
			      "POST /v3/kv/%s HTTP/1.1\r\nHost: b\r\n"
			      "Content-Type: application/json\r\n"
			      "Content-Length: %zu\r\n\r\n%s",
			      put ? "put" : "range", blen, head);
		if (!put)
			return (size_t)hl;
		memcpy(req + hl, ev, ev_len);
		memcpy(req + hl + ev_len, "\"}", 2);
		return (size_t)hl + ev_len + 2;
	}
	}
	memcpy(req + hl, ev, ev_len);
	return (size_t)hl + ev_len;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	const struct conf *c = w->c;
	bool put = strcmp(c->op, "put") == 0;
	size_t cap = c->value_size * 3 + 16; /* the worst encoding */
	char *req = malloc(cap + 1024);
	char *val = malloc(c->value_size + 1);
	char *ev = malloc(cap);
	struct rbuf *b = calloc(1, sizeof(*b));
	unsigned seed = (unsigned)w->id * 2654435761u + 1;
	struct conn k = {.fd = -1}, *fd = &k;
	if (!req || !val || !ev || !b || dial(c, fd) < 0) {
		fprintf(stderr, "kvbench: client %d cannot start\n", w->id);
		w->errors++;
		goto out;
	}
	for (size_t i = 0; i < c->value_size; i++)
		val[i] = c->binary ? (char)(rand_r(&seed) & 0xff)
				   : (char)('a' + rand_r(&seed) % 26);
	size_t ev_len = encode_value(c, ev, val);
	while (!stop_flag) {
		long k;
		if (c->count) {
			pthread_mutex_lock(&op_mu);
			k = next_op < c->count ? next_op++ : -1;
			pthread_mutex_unlock(&op_mu);
			if (k < 0)
				break;
		} else {
			k = rand_r(&seed) % c->keys;
		}
		if (c->count && c->keys)
			k %= c->keys;
		size_t hl = build_request(c, put, k, ev, ev_len, req);
		double t0 = now_s();
		int status = -1;
		if (send_all(fd, req, hl) == 0)
			status =
			    c->target == TARGET_BYTE	? read_byte_reply(fd, b)
			    : c->target == TARGET_REDIS ? read_resp_reply(fd, b)
							: read_response(fd, b);
		double t1 = now_s();
		if (status < 0) {
			w->errors++;
			hang_up(fd);
			b->len = 0;
			if (dial(c, fd) < 0)
				break;
			continue;
		}
		if (status >= 200 && status < 300) {
			record(w, t1 - t0);
		} else if (!(status == 404 && !put)) {
			/* the first few say what they were */
			if (w->errors++ < 3)
				fprintf(stderr, "kvbench: client %d: HTTP %d\n",
					w->id, status);
		} else
			record(w, t1 - t0);
		w->ops++;
	}
out:
	hang_up(fd);
	free(req);
	free(val);
	free(ev);
	free(b);
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static int run_load(struct conf *c)
{
	struct worker *ws = calloc((size_t)c->clients, sizeof(*ws));
	if (!ws)
		return 1;
	double t0 = now_s();
	for (int i = 0; i < c->clients; i++) {
		ws[i].c = c;
		ws[i].id = i;
		pthread_create(&ws[i].thread, NULL, worker_main, &ws[i]);
	}
	if (!c->count) {
		struct timespec ts = {
		    .tv_sec = (time_t)c->duration,
		    .tv_nsec =
			(long)((c->duration - (double)(time_t)c->duration) *
			       1e9)};
		nanosleep(&ts, NULL);
		stop_flag = true;
	}
	long ops = 0, errors = 0;
	size_t n = 0;
	for (int i = 0; i < c->clients; i++) {
		pthread_join(ws[i].thread, NULL);
		ops += ws[i].ops;
		errors += ws[i].errors;
		n += ws[i].nlat;
	}
	double elapsed = now_s() - t0;
	double *all = malloc((n ? n : 1) * sizeof(double));
	size_t k = 0;
	for (int i = 0; i < c->clients; i++) {
		memcpy(all + k, ws[i].lat, ws[i].nlat * sizeof(double));
		k += ws[i].nlat;
		free(ws[i].lat);
	}
	qsort(all, n, sizeof(double), cmp_double);
	double p50 = n ? all[n / 2] : 0, p99 = n ? all[(n * 99) / 100] : 0;
	double max = n ? all[n - 1] : 0;
	static const char *const names[] = {"kvfs", "etcd2", "etcd3", "byte",
					    "redis"};
	printf("target=%s op=%s%s clients=%d ops=%ld errors=%ld seconds=%.2f "
	       "ops_per_s=%.0f p50_ms=%.3f p99_ms=%.3f max_ms=%.3f\n",
	       names[c->target], c->op,
	       strcmp(c->op, "get") ? ""
	       : c->local_read	    ? " read=local"
				    : " read=linearizable",
	       c->clients, ops, errors, elapsed,
	       elapsed > 0 ? (double)ops / elapsed : 0, p50 * 1e3, p99 * 1e3,
	       max * 1e3);
	free(all);
	free(ws);
	return errors ? 3 : 0;
}

/* Rounds of "write 4 KiB at the end, fdatasync" per second in dir. */
static int run_fsync(const char *dir, double duration)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/kvbench-fsync.tmp", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0) {
		perror("kvbench: open");
		return 1;
	}
	char block[4096];
	memset(block, 'x', sizeof(block));
	long rounds = 0;
	double t0 = now_s(), t;
	do {
		if (write(fd, block, sizeof(block)) != (ssize_t)sizeof(block) ||
		    fdatasync(fd) != 0) {
			perror("kvbench: write/fdatasync");
			close(fd);
			unlink(path);
			return 1;
		}
		rounds++;
		t = now_s();
	} while (t - t0 < duration);
	close(fd);
	unlink(path);
	printf("op=fdatasync rounds=%ld seconds=%.2f per_s=%.0f\n", rounds,
	       t - t0, (double)rounds / (t - t0));
	return 0;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: kvbench [--addr HOST:PORT] [--op put|get] "
		"[--clients N]\n"
		"               [--duration S | --count N] [--value-size B] "
		"[--keys N]\n"
		"               [--prefix P] [--binary] [--query ?Q]\n"
		"               [--target kvfs|etcd2|etcd3] "
		"[--read linearizable|local]\n"
		"               [--tls-ca FILE [--tls-cert FILE --tls-key "
		"FILE]]\n"
		"       kvbench --fsync DIR [--duration S]\n");
}

int main(int argc, char **argv)
{
	struct conf c = {.host = "127.0.0.1",
			 .port = "7001",
			 .op = "put",
			 .prefix = "bench/",
			 .clients = 1,
			 .duration = 5,
			 .value_size = 100,
			 .keys = 10000,
			 .query = ""};
	const char *fsync_dir = NULL;
	const char *tls_ca = NULL, *tls_cert = NULL, *tls_key = NULL;
	static char addr[256];
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--binary")) {
			c.binary = true;
			continue;
		}
		if (!v) {
			usage();
			return 2;
		}
		i++;
		if (!strcmp(a, "--addr")) {
			snprintf(addr, sizeof(addr), "%s", v);
			char *colon = strrchr(addr, ':');
			if (!colon) {
				usage();
				return 2;
			}
			*colon = '\0';
			c.host = addr;
			c.port = colon + 1;
		} else if (!strcmp(a, "--op")) {
			c.op = v;
		} else if (!strcmp(a, "--clients")) {
			c.clients = atoi(v);
		} else if (!strcmp(a, "--duration")) {
			c.duration = atof(v);
		} else if (!strcmp(a, "--count")) {
			c.count = atol(v);
		} else if (!strcmp(a, "--value-size")) {
			c.value_size = (size_t)atol(v);
		} else if (!strcmp(a, "--keys")) {
			c.keys = atol(v);
		} else if (!strcmp(a, "--prefix")) {
			c.prefix = v;
		} else if (!strcmp(a, "--query")) {
			c.query = v;
		} else if (!strcmp(a, "--target")) {
			if (!strcmp(v, "kvfs"))
				c.target = TARGET_KVFS;
			else if (!strcmp(v, "etcd2"))
				c.target = TARGET_ETCD2;
			else if (!strcmp(v, "etcd3"))
				c.target = TARGET_ETCD3;
			else if (!strcmp(v, "byte"))
				c.target = TARGET_BYTE;
			else if (!strcmp(v, "redis"))
				c.target = TARGET_REDIS;
			else {
				usage();
				return 2;
			}
		} else if (!strcmp(a, "--read")) {
			if (!strcmp(v, "local"))
				c.local_read = true;
			else if (strcmp(v, "linearizable")) {
				usage();
				return 2;
			}
		} else if (!strcmp(a, "--fsync")) {
			fsync_dir = v;
		} else if (!strcmp(a, "--tls-ca")) {
			tls_ca = v;
		} else if (!strcmp(a, "--tls-cert")) {
			tls_cert = v;
		} else if (!strcmp(a, "--tls-key")) {
			tls_key = v;
		} else {
			usage();
			return 2;
		}
	}
	if (fsync_dir)
		return run_fsync(fsync_dir, c.duration);
	if (c.clients < 1 || c.keys < 1 ||
	    (strcmp(c.op, "put") && strcmp(c.op, "get"))) {
		usage();
		return 2;
	}
	if (tls_ca && (gnutls_certificate_allocate_credentials(&tls_cred) < 0 ||
		       gnutls_certificate_set_x509_trust_file(
			   tls_cred, tls_ca, GNUTLS_X509_FMT_PEM) <= 0 ||
		       (tls_cert && gnutls_certificate_set_x509_key_file(
					tls_cred, tls_cert, tls_key,
					GNUTLS_X509_FMT_PEM) < 0))) {
		fprintf(stderr, "kvbench: cannot load --tls-ca/--tls-cert\n");
		return 2;
	}
	return run_load(&c);
}
