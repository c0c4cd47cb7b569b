/* bench_log.c - how fast the log appends and syncs (not a test).
 *
 * Usage: bench_log [DIR] [N]. Appends N entries of a ~100-byte command
 * into a fresh log in DIR (default: a new directory under /tmp), first
 * syncing after every entry, then after every 64 (group commit), and
 * prints entries per second for each, beside the raw fdatasync rate. The
 * figures from one run are in docs/log-format.md. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "store.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int run(struct log *log, uint64_t *next, long n, long batch,
	       double *secs)
{
	char data[128];
	int len = snprintf(data, sizeof(data),
			   "{\"op\":\"put\",\"k\":\"bench/key\",\"v\":\"%s\"}",
			   "0123456789012345678901234567890123456789"
			   "012345678901234567890123456789");
	double t0 = now_s();
	for (long i = 0; i < n; i++) {
		struct log_entry e = {.index = (*next)++,
				      .term = 1,
				      .data = data,
				      .len = (size_t)len};
		int ret = log_append(log, &e);
		if (ret)
			return ret;
		if ((i + 1) % batch == 0 && (ret = log_sync(log)))
			return ret;
	}
	int ret = log_sync(log);
	*secs = now_s() - t0;
	return ret;
}

int main(int argc, char **argv)
{
	char tmpl[] = "/tmp/kvfs-bench-XXXXXX";
	const char *dir = argc > 1 ? argv[1] : mkdtemp(tmpl);
	long n = argc > 2 ? atol(argv[2]) : 2000;
	if (!dir || n <= 0) {
		fprintf(stderr, "usage: bench_log [DIR] [N]\n");
		return 2;
	}
	struct log *log;
	char *msg = NULL;
	int ret = log_open(dir, 0, &log, &msg);
	if (ret) {
		fprintf(stderr, "log_open: %s %s\n", kv_strerror(ret),
			msg ? msg : "");
		return 1;
	}
	uint64_t next = log_last_index(log) + 1;
	double s1 = 0, s64 = 0, sraw;
	if ((ret = run(log, &next, n, 1, &s1)) ||
	    (ret = run(log, &next, n * 16, 64, &s64))) {
		fprintf(stderr, "append/sync: %d\n", ret);
		return 1;
	}
	log_close(log);

	char path[4096];
	snprintf(path, sizeof(path), "%s/fdatasync-probe", dir);
	int fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0644);
	double t0 = now_s();
	for (long i = 0; i < n; i++) {
		if (pwrite(fd, "x", 1, 0) != 1 || fdatasync(fd) != 0) {
			perror("probe");
			return 1;
		}
	}
	sraw = now_s() - t0;
	close(fd);
	unlink(path);
	printf("raw fdatasync:            %8.0f /s\n", (double)n / sraw);
	printf("append+sync each entry:   %8.0f entries/s\n", (double)n / s1);
	printf("append, sync every 64:    %8.0f entries/s\n",
	       (double)n * 16 / s64);
	printf("(log left in %s)\n", dir);
	return 0;
}
