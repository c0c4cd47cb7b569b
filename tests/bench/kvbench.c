/* kvbench.c - a load generator for kvfs's HTTP API, and a raw fsync meter.
 *
 * N client threads, each with one keep-alive connection, send PUT or GET
 * requests as fast as answers come back, for a duration or a fixed count,
 * and record every latency; the figures are throughput and p50/p99/max.
 * Plain sockets and a minimal HTTP/1.1 reader keep the client cheap, so the
 * server, not the generator, is what is measured. `--fsync DIR` instead
 * measures how many write+fdatasync rounds the disk does per second. Used
 * by scripts/bench. */
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
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct conf {
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
	const char *query; /* appended to GET URLs, e.g. "?consistency=local" */
};

struct worker {
	const struct conf *c;
	int id;
	long ops, errors;
	double *lat; /* seconds */
	size_t nlat, caplat;
	pthread_t thread;
};

static volatile bool stop_flag;
static long next_op; /* with count: shared counter */
static pthread_mutex_t op_mu = PTHREAD_MUTEX_INITIALIZER;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int dial(const struct conf *c)
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

static int send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Read one response; returns the status code or -1. buf keeps leftovers. */
struct rbuf {
	char d[65536];
	size_t len;
};

static int read_response(int fd, struct rbuf *b)
{
	for (;;) {
		char *end = memmem(b->d, b->len, "\r\n\r\n", 4);
		if (end) {
			size_t hlen = (size_t)(end - b->d) + 4;
			int status = 0;
			if (sscanf(b->d, "HTTP/1.%*d %d", &status) != 1)
				return -1;
			size_t clen = 0;
			char *cl = memmem(b->d, hlen, "Content-Length:", 15);
			if (!cl)
				cl = memmem(b->d, hlen, "content-length:", 15);
			if (cl)
				clen = strtoul(cl + 15, NULL, 10);
			size_t total = hlen + clen;
			while (b->len < total) {
				if (total > sizeof(b->d)) {
					/* drain a large body */
					size_t left = total - b->len;
					char tmp[65536];
					while (left > 0) {
						ssize_t r =
						    recv(fd, tmp,
							 left < sizeof(tmp)
							     ? left
							     : sizeof(tmp),
							 0);
						if (r <= 0)
							return -1;
						left -= (size_t)r;
					}
					b->len = 0;
					return status;
				}
				ssize_t r = recv(fd, b->d + b->len,
						 sizeof(b->d) - b->len, 0);
				if (r <= 0)
					return -1;
				b->len += (size_t)r;
			}
			memmove(b->d, b->d + total, b->len - total);
			b->len -= total;
			return status;
		}
		if (b->len == sizeof(b->d))
			return -1;
		ssize_t r = recv(fd, b->d + b->len, sizeof(b->d) - b->len, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		b->len += (size_t)r;
	}
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

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	const struct conf *c = w->c;
	bool put = strcmp(c->op, "put") == 0;
	char *req = malloc(c->value_size + 512);
	char *val = malloc(c->value_size + 1);
	struct rbuf *b = calloc(1, sizeof(*b));
	unsigned seed = (unsigned)w->id * 2654435761u + 1;
	int fd = dial(c);
	if (!req || !val || !b || fd < 0) {
		fprintf(stderr, "kvbench: client %d cannot start\n", w->id);
		w->errors++;
		goto out;
	}
	for (size_t i = 0; i < c->value_size; i++)
		val[i] = c->binary ? (char)(rand_r(&seed) & 0xff)
				   : (char)('a' + rand_r(&seed) % 26);
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
		int hl;
		if (put) {
			hl = snprintf(req, 512,
				      "PUT /kv/%s%ld HTTP/1.1\r\nHost: b\r\n"
				      "Content-Length: %zu\r\n\r\n",
				      c->prefix, k, c->value_size);
			memcpy(req + hl, val, c->value_size);
			hl += (int)c->value_size;
		} else {
			hl = snprintf(req, 512,
				      "GET /kv/%s%ld%s HTTP/1.1\r\nHost: "
				      "b\r\n\r\n",
				      c->prefix, k, c->query);
		}
		double t0 = now_s();
		int status = -1;
		if (send_all(fd, req, (size_t)hl) == 0)
			status = read_response(fd, b);
		double t1 = now_s();
		if (status < 0) {
			w->errors++;
			close(fd);
			b->len = 0;
			fd = dial(c);
			if (fd < 0)
				break;
			continue;
		}
		if (status >= 200 && status < 300)
			record(w, t1 - t0);
		else if (!(status == 404 && !put))
			w->errors++;
		else
			record(w, t1 - t0);
		w->ops++;
	}
out:
	if (fd >= 0)
		close(fd);
	free(req);
	free(val);
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
	printf("op=%s clients=%d ops=%ld errors=%ld seconds=%.2f "
	       "ops_per_s=%.0f p50_ms=%.3f p99_ms=%.3f max_ms=%.3f\n",
	       c->op, c->clients, ops, errors, elapsed,
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
		} else if (!strcmp(a, "--fsync")) {
			fsync_dir = v;
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
	return run_load(&c);
}
