/* bench_snapshot.c - the snapshot schedule under load, and what a db costs
 * the appliers (not a test).
 *
 * Usage: bench_snapshot [DIR] [KEYS] [OPS] [EVERY]. First times map_collect
 * over a map of KEYS keys (default 1,000,000): how long a db taken straight
 * from the map holds its read lock. Then drives a store in DIR (default: a
 * new directory under /tmp) as the node does, in batches of 64 (append,
 * wait for the persisted report, apply): KEYS puts to load it, then OPS
 * (default 200,000) puts over those keys, and prints snapshot_index
 * against the applied index, the largest lag, the snapshots taken, and
 * how long each store_apply call of 64 entries took (a db that holds the
 * map lock shows there). EVERY sets snapshot_every (default 10,000; a huge
 * one gives the baseline without snapshots). The figures are in
 * docs/log-format.md. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "map.h"
#include "store.h"

#define BATCH 64

struct bench {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	uint64_t persisted;
	uint64_t snapshots;
};

static void on_persisted(void *ctx, uint64_t index, uint64_t term)
{
	(void)term;
	struct bench *b = ctx;
	pthread_mutex_lock(&b->mu);
	b->persisted = index;
	pthread_cond_broadcast(&b->cond);
	pthread_mutex_unlock(&b->mu);
}

static void on_applied(void *ctx, uint64_t index, uint64_t term,
		       const struct kv_result *res)
{
	(void)ctx;
	(void)index;
	(void)term;
	(void)res;
}

static void on_snapshotted(void *ctx, uint64_t index)
{
	(void)index;
	struct bench *b = ctx;
	pthread_mutex_lock(&b->mu);
	b->snapshots++;
	pthread_mutex_unlock(&b->mu);
}

static const struct store_raft_ops ops = {.persisted = on_persisted,
					  .applied = on_applied,
					  .snapshotted = on_snapshotted};

static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static void key_of(uint64_t k, char *buf, size_t n)
{
	snprintf(buf, n, "bench/k%08" PRIu64, k);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* map_collect over a map of n keys, 5 times. */
static void time_collect(uint64_t n)
{
	struct map *m = map_new();
	char val[100];
	memset(val, 'v', sizeof(val));
	for (uint64_t i = 0; i < n; i++) {
		char key[32];
		key_of(i * 2654435761u % n, key, sizeof(key));
		struct kv_rec *r = kv_rec_new(key, strlen(key), val, 100);
		if (!r)
			exit(1);
		r->mode = S_IFREG | 0644;
		r->create_rev = r->mod_rev = i + 1;
		if (map_insert(m, r) != 0)
			exit(1);
	}
	double t[5];
	for (int i = 0; i < 5; i++) {
		struct kv_rec **recs;
		size_t got;
		double t0 = now_ms();
		if (map_collect(m, &recs, &got) != 0)
			exit(1);
		t[i] = now_ms() - t0;
		map_collect_free(recs, got);
	}
	qsort(t, 5, sizeof(t[0]), cmp_double);
	printf("map_collect of %" PRIu64 " keys (a db straight from the map "
	       "holds its read lock this long): min %.1f ms, median %.1f ms, "
	       "max %.1f ms\n",
	       map_count(m), t[0], t[2], t[4]);
	map_free(m);
}

/* Put keys (i + k) % keys for k in 0..n-1 at indexes next.., as the node
 * does; each store_apply call's time goes in lat. */
static void put_batch(struct store *st, struct bench *b, uint64_t *next,
		      uint64_t first_key, uint64_t keys, double *lat)
{
	struct store_entry e[BATCH];
	char val[100];
	memset(val, 'a' + (char)(*next % 26), sizeof(val));
	for (size_t k = 0; k < BATCH; k++) {
		char key[32];
		key_of((first_key + k) % keys, key, sizeof(key));
		struct kv_cmd c = {.op = KV_OP_PUT,
				   .key = key,
				   .klen = strlen(key),
				   .val = (unsigned char *)val,
				   .vlen = sizeof(val),
				   .mode = 0644,
				   .mtime_ns = 1};
		char *json;
		size_t len;
		if (kv_cmd_encode(&c, &json, &len) != 0)
			exit(1);
		e[k] = (struct store_entry){.index = *next + k,
					    .term = 1,
					    .type = STORE_ENTRY_CMD,
					    .data = json,
					    .len = len};
	}
	if (store_append(st, e, BATCH) != 0)
		exit(1);
	pthread_mutex_lock(&b->mu);
	while (b->persisted < *next + BATCH - 1)
		pthread_cond_wait(&b->cond, &b->mu);
	pthread_mutex_unlock(&b->mu);
	double t0 = now_ms();
	if (store_apply(st, e, BATCH) != 0)
		exit(1);
	*lat = now_ms() - t0;
	*next += BATCH;
	for (size_t k = 0; k < BATCH; k++)
		free((void *)e[k].data);
}

static long rss_mib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = 0;
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb / 1024;
}

static void run(struct store *st, struct bench *b, uint64_t keys, uint64_t ops)
{
	uint64_t next = 1;
	double lat, t0 = now_ms();
	for (uint64_t k = 0; k < keys; k += BATCH)
		put_batch(st, b, &next, k, keys, &lat);
	pthread_mutex_lock(&b->mu);
	uint64_t load_snaps = b->snapshots;
	pthread_mutex_unlock(&b->mu);
	printf("load: %" PRIu64 " puts in %.1f s, %" PRIu64 " snapshots\n",
	       next - 1, (now_ms() - t0) / 1e3, load_snaps);
	size_t nb = (size_t)(ops / BATCH);
	double *lats = calloc(nb, sizeof(*lats));
	uint64_t start = next, max_lag = 0;
	printf("%10s %15s %12s %8s\n", "applied", "snapshot_index",
	       "first_index", "log_MiB");
	t0 = now_ms();
	for (size_t i = 0; i < nb; i++) {
		put_batch(st, b, &next, i * 7919 * BATCH, keys, &lats[i]);
		if (i % 32 && i + 1 < nb)
			continue;
		struct store_status ss;
		store_status(st, &ss);
		uint64_t lag = ss.applied_index - ss.snapshot_index;
		if (lag > max_lag)
			max_lag = lag;
		if (i % 320 == 0 || i + 1 == nb)
			printf("%10" PRIu64 " %15" PRIu64 " %12" PRIu64
			       " %8.1f\n",
			       ss.applied_index, ss.snapshot_index,
			       ss.first_index, (double)ss.log_bytes / 1048576);
	}
	double secs = (now_ms() - t0) / 1e3;
	pthread_mutex_lock(&b->mu);
	uint64_t snaps = b->snapshots - load_snaps;
	pthread_mutex_unlock(&b->mu);
	qsort(lats, nb, sizeof(*lats), cmp_double);
	printf("run: %" PRIu64 " puts over %" PRIu64 " keys in %.1f s; %" PRIu64
	       " snapshots; largest lag applied - snapshot_index %" PRIu64 "\n",
	       next - start, keys, secs, snaps, max_lag);
	printf("store_apply of %d entries: median %.2f ms, p99 %.2f ms, "
	       "p99.9 %.2f ms, max %.2f ms\n",
	       BATCH, lats[nb / 2], lats[nb * 99 / 100], lats[nb * 999 / 1000],
	       lats[nb - 1]);
	printf("VmRSS at the end: %ld MiB\n", rss_mib());
	free(lats);
}

int main(int argc, char **argv)
{
	char tmpl[] = "/tmp/kvfs-bench-snapshot.XXXXXX";
	const char *dir = argc > 1 ? argv[1] : mkdtemp(tmpl);
	uint64_t keys = argc > 2 ? strtoull(argv[2], NULL, 10) : 1000000;
	uint64_t nops = argc > 3 ? strtoull(argv[3], NULL, 10) : 200000;
	uint64_t every = argc > 4 ? strtoull(argv[4], NULL, 10) : 0;
	if (!dir || keys < BATCH || nops < BATCH) {
		fprintf(stderr,
			"usage: bench_snapshot [DIR] [KEYS] [OPS] [EVERY]\n");
		return 2;
	}
	time_collect(keys);
	struct bench b = {.mu = PTHREAD_MUTEX_INITIALIZER,
			  .cond = PTHREAD_COND_INITIALIZER};
	struct store_options o = {.dir = dir,
				  .snapshot_every = every,
				  .snapshot_bytes = every ? UINT64_MAX : 0,
				  .raft = &ops,
				  .raft_ctx = &b};
	struct store *st;
	char *msg = NULL;
	int ret = store_open(&o, &st, &msg);
	if (ret != 0) {
		fprintf(stderr, "store_open %s: %s: %s\n", dir,
			kv_strerror(ret), msg ? msg : "");
		return 1;
	}
	if (every)
		printf("store in %s, snapshot_every %" PRIu64 "\n", dir, every);
	else
		printf("store in %s, default schedule (snapshot_every 10000, "
		       "snapshot_bytes 64 MiB)\n",
		       dir);
	run(st, &b, keys, nops);
	store_close(st);
	return 0;
}
