/* logging.c - the log line every module writes: a UTC timestamp with
 * milliseconds, a level, the node's id, the message; one write(2) a line,
 * so lines from threads never interleave.
 *
 *   2026-12-02T04:20:01.123Z INFO node=1 leader elected: node 2 in term 5
 *
 * The level below which lines are dropped is set once at start
 * (--log-level); the node id once it is known (0 prints no id). */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kv.h"

static _Atomic int max_level = KV_LOG_INFO;
static _Atomic uint64_t node_id;

static const char *const names[] = {"ERROR", "WARN", "INFO", "DEBUG"};

void kv_log_set_level(enum kv_log_level max)
{
	atomic_store(&max_level, (int)max);
}

void kv_log_set_node(uint64_t id)
{
	atomic_store(&node_id, id);
}

bool kv_log_on(enum kv_log_level level)
{
	return (int)level <= atomic_load(&max_level);
}

int kv_log_level_parse(const char *s, enum kv_log_level *out)
{
	static const char *const lower[] = {"error", "warn", "info", "debug"};
	for (int i = 0; i < 4; i++)
		if (strcmp(s, lower[i]) == 0) {
			*out = (enum kv_log_level)i;
			return 0;
		}
	return -EINVAL;
}

void kv_logv(enum kv_log_level level, const char *fmt, va_list ap)
{
	if (!kv_log_on(level))
		return;
	char line[2048];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
	uint64_t id = atomic_load(&node_id);
	int k = snprintf(line + n, sizeof line - n, ".%03ldZ %s ",
			 ts.tv_nsec / 1000000, names[level]);
	n += k > 0 ? (size_t)k : 0;
	if (id) {
		k = snprintf(line + n, sizeof line - n, "node=%llu ",
			     (unsigned long long)id);
		n += k > 0 ? (size_t)k : 0;
	}
	k = vsnprintf(line + n, sizeof line - n, fmt, ap);
	if (k < 0)
		k = 0;
	n = n + (size_t)k >= sizeof line - 1 ? sizeof line - 2 : n + (size_t)k;
	/* one line, whatever the message ended with */
	while (n > 0 && line[n - 1] == '\n')
		n--;
	line[n++] = '\n';
	for (size_t off = 0; off < n;) {
		ssize_t w = write(STDERR_FILENO, line + off, n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += (size_t)w;
	}
}

void kv_log(enum kv_log_level level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	kv_logv(level, fmt, ap);
	va_end(ap);
}
