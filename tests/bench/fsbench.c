/* fsbench.c - small-file throughput in a directory, with threads: the load
 * generator of scripts/bench-mount (a benchmark program, not a test).
 *
 * One operation per file, the files split among the threads by number:
 * "create" is open(O_CREAT|O_TRUNC) + write + close of new files,
 * "overwrite" the same on files that exist, "read" open + read + close.
 * Written in C so that what is measured is the filesystem and not the
 * caller (a Python loop costs more than a FUSE round trip). Prints the
 * files per second; exits 1 on the first failed call, naming it.
 *
 * usage: fsbench DIR create|overwrite|read FILES THREADS [SIZE] */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *dir, *op;
static long files, threads, size;

static void die(const char *what, const char *path)
{
	fprintf(stderr, "fsbench: %s %s: %s\n", what, path, strerror(errno));
	exit(1);
}

static void *worker(void *arg)
{
	long t = (long)arg;
	char path[4096], *buf = malloc((size_t)size + 1);

	memset(buf, 'v', (size_t)size);
	for (long i = t; i < files; i += threads) {
		snprintf(path, sizeof(path), "%s/f%07ld", dir, i);
		if (strcmp(op, "read") == 0) {
			int fd = open(path, O_RDONLY);
			if (fd < 0)
				die("open", path);
			if (read(fd, buf, (size_t)size + 1) != size)
				die("read", path);
			if (close(fd) != 0)
				die("close", path);
		} else {
			int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
			if (fd < 0)
				die("open", path);
			if (write(fd, buf, (size_t)size) != size)
				die("write", path);
			if (close(fd) != 0)
				die("close", path);
		}
	}
	free(buf);
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t tid[64];
	struct timespec a, b;

	if (argc < 5) {
		fprintf(stderr,
			"usage: fsbench DIR create|overwrite|read FILES "
			"THREADS [SIZE]\n");
		return 2;
	}
	dir = argv[1];
	op = argv[2];
	files = atol(argv[3]);
	threads = atol(argv[4]);
	size = argc > 5 ? atol(argv[5]) : 100;
	if (threads < 1 || threads > 64 || files < 1 || size < 1)
		return 2;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long t = 0; t < threads; t++)
		pthread_create(&tid[t], NULL, worker, (void *)t);
	for (long t = 0; t < threads; t++)
		pthread_join(tid[t], NULL);
	clock_gettime(CLOCK_MONOTONIC, &b);
	double s =
	    (double)(b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
	printf("%.0f\n", (double)files / s);
	return 0;
}
