/* test_logging.c - the log line (store/kv/logging.c): its format, the
 * level filter, the node id, one line a call whatever the message holds,
 * and the metrics registry's text (store/kv/metrics.c). */
#include <fcntl.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "kv.h"
#include "metrics.h"

/* What the calls in fn wrote to stderr. */
static char *capture(void (*fn)(void))
{
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	int saved = dup(STDERR_FILENO);
	dup2(fds[1], STDERR_FILENO);
	close(fds[1]);
	fn();
	dup2(saved, STDERR_FILENO);
	close(saved);
	static char buf[16384];
	ssize_t n = read(fds[0], buf, sizeof buf - 1);
	close(fds[0]);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

static bool matches(const char *text, const char *re)
{
	regex_t r;
	assert_int_equal(regcomp(&r, re, REG_EXTENDED | REG_NOSUB), 0);
	bool m = regexec(&r, text, 0, NULL, 0) == 0;
	regfree(&r);
	return m;
}

static void two_lines(void)
{
	kv_log_set_level(KV_LOG_INFO);
	kv_log_set_node(7);
	kv_log(KV_LOG_INFO, "hello %d", 42);
	kv_log(KV_LOG_DEBUG, "not shown");
	kv_log(KV_LOG_WARN, "ends with newlines\n\n");
	kv_log_set_node(0);
	kv_log(KV_LOG_ERROR, "no node");
}

static void test_a_line_is_time_level_node_message(void **state)
{
	(void)state;
	char *out = capture(two_lines);
	assert_true(matches(out,
			    "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:"
			    "[0-9]{2}\\.[0-9]{3}Z INFO node=7 hello 42\n"));
	assert_null(strstr(out, "not shown"));
	assert_true(matches(out, "Z WARN node=7 ends with newlines\n[0-9]"));
	assert_true(matches(out, "Z ERROR no node\n$"));
}

static void long_line(void)
{
	char big[5000];
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	kv_log(KV_LOG_INFO, "%s", big);
}

static void test_a_long_message_is_cut_to_one_line(void **state)
{
	(void)state;
	char *out = capture(long_line);
	assert_int_equal(strchr(out, '\n') - out + 1, (long)strlen(out));
	assert_true(strlen(out) < 2100);
}

static void test_levels_parse(void **state)
{
	(void)state;
	enum kv_log_level l;
	assert_int_equal(kv_log_level_parse("debug", &l), 0);
	assert_int_equal(l, KV_LOG_DEBUG);
	assert_int_equal(kv_log_level_parse("warn", &l), 0);
	assert_int_equal(l, KV_LOG_WARN);
	assert_int_not_equal(kv_log_level_parse("loud", &l), 0);
}

static struct kv_metric m_count =
    KV_METRIC_COUNTER_INIT("kvfs_test_things_total", "Things counted.");
static struct kv_metric m_hist =
    KV_METRIC_HIST_INIT("kvfs_test_seconds", "Things timed.");
static struct kv_metric m_dur =
    KV_METRIC_GAUGE_NS_INIT("kvfs_test_longest_seconds", "The longest thing.");

static void test_metrics_render_counters_and_cumulative_buckets(void **state)
{
	(void)state;
	kv_metric_register(&m_count);
	kv_metric_register(&m_count); /* once only */
	kv_metric_register(&m_hist);
	kv_metric_register(&m_dur);
	kv_metric_add(&m_count, 0, 3);
	kv_metric_set(&m_dur, 0, 1250000000);
	kv_hist_observe_ns(m_hist.hists, 40000);       /* <= 50 us */
	kv_hist_observe_ns(m_hist.hists, 2000000);     /* <= 2.5 ms */
	kv_hist_observe_ns(m_hist.hists, 20000000000); /* +Inf */
	char *buf = NULL;
	size_t len = 0, cap = 0;
	assert_int_equal(kv_metrics_render(&buf, &len, &cap), 0);
	assert_non_null(strstr(buf, "# TYPE kvfs_test_things_total counter\n"
				    "kvfs_test_things_total 3\n"));
	assert_non_null(
	    strstr(buf, "kvfs_test_seconds_bucket{le=\"5e-05\"} 1\n"));
	assert_non_null(
	    strstr(buf, "kvfs_test_seconds_bucket{le=\"0.001\"} 1\n"));
	assert_non_null(
	    strstr(buf, "kvfs_test_seconds_bucket{le=\"0.0025\"} 2\n"));
	assert_non_null(strstr(buf, "kvfs_test_seconds_bucket{le=\"10\"} 2\n"));
	assert_non_null(
	    strstr(buf, "kvfs_test_seconds_bucket{le=\"+Inf\"} 3\n"));
	assert_non_null(strstr(buf, "kvfs_test_seconds_count 3\n"));
	assert_non_null(strstr(buf, "kvfs_test_seconds_sum 20.002040000\n"));
	/* a duration gauge counts nanoseconds and shows seconds */
	assert_non_null(strstr(buf, "# TYPE kvfs_test_longest_seconds gauge\n"
				    "kvfs_test_longest_seconds 1.250000000\n"));
	/* registered twice, rendered once */
	char *first = strstr(buf, "# HELP kvfs_test_things_total");
	assert_null(strstr(first + 1, "# HELP kvfs_test_things_total"));
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_a_line_is_time_level_node_message),
	    cmocka_unit_test(test_a_long_message_is_cut_to_one_line),
	    cmocka_unit_test(test_levels_parse),
	    cmocka_unit_test(
		test_metrics_render_counters_and_cumulative_buckets),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
