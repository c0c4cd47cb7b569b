/* metrics.h - counters and latency histograms that any thread may bump
 * without a lock, and the registry /metrics renders (Prometheus text
 * format, docs/http-api.md).
 *
 * A metric is a static struct kv_metric owned by the module that counts
 * (store, node, peer, http, fs); the module registers it once when it
 * starts, and bumps it with relaxed atomics: a counter is one atomic add,
 * a histogram observation three. The registry is process-wide (a kvfs
 * process runs one node); rendering reads every value without stopping
 * anyone, so a scrape sees each value at some instant, not all at one. */
#ifndef KV_METRICS_H
#define KV_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Latency buckets, upper bounds in seconds: 50 µs to 10 s, then +Inf. */
#define KV_HIST_BUCKETS 18

struct kv_hist {
	_Atomic uint64_t bucket[KV_HIST_BUCKETS]; /* not cumulative */
	_Atomic uint64_t count;
	_Atomic uint64_t sum_ns;
};

enum kv_metric_type { KV_METRIC_COUNTER, KV_METRIC_GAUGE, KV_METRIC_HIST };

struct kv_metric {
	const char *name; /* kvfs_..., with _total for counters */
	const char *help;
	enum kv_metric_type type;
	/* n series: labels[i] is series i's label set without braces
	 * (`op="read"`), NULL or "" for none; values or hists has n items */
	unsigned n;
	const char *const *labels;
	_Atomic uint64_t *values;
	struct kv_hist *hists;
	/* counters and gauges: the values are nanoseconds, rendered as
	 * seconds (a duration gauge such as the longest node-thread turn) */
	int ns;
	struct kv_metric *next; /* the registry's */
	_Atomic int registered;
};

/* One series without labels. */
#define KV_METRIC_COUNTER_INIT(nm, hp)                                         \
	{                                                                      \
		.name = (nm), .help = (hp), .type = KV_METRIC_COUNTER, .n = 1, \
		.values = (_Atomic uint64_t[1])                                \
		{                                                              \
			0                                                      \
		}                                                              \
	}
/* A gauge of one series whose value is a duration in nanoseconds. */
#define KV_METRIC_GAUGE_NS_INIT(nm, hp)                                        \
	{                                                                      \
		.name = (nm), .help = (hp), .type = KV_METRIC_GAUGE, .n = 1,   \
		.ns = 1, .values = (_Atomic uint64_t[1])                       \
		{                                                              \
			0                                                      \
		}                                                              \
	}
#define KV_METRIC_HIST_INIT(nm, hp)                                            \
	{                                                                      \
		.name = (nm), .help = (hp), .type = KV_METRIC_HIST, .n = 1,    \
		.hists = (struct kv_hist[1])                                   \
		{                                                              \
			{                                                      \
				.count = 0                                     \
			}                                                      \
		}                                                              \
	}

/* Add m to the registry (once; later calls do nothing). */
void kv_metric_register(struct kv_metric *m);

static inline void kv_metric_add(struct kv_metric *m, unsigned series,
				 uint64_t v)
{
	atomic_fetch_add_explicit(&m->values[series], v, memory_order_relaxed);
}
static inline void kv_metric_set(struct kv_metric *m, unsigned series,
				 uint64_t v)
{
	atomic_store_explicit(&m->values[series], v, memory_order_relaxed);
}
void kv_hist_observe_ns(struct kv_hist *h, uint64_t ns);

/* Append every registered metric to *buf (realloc'd; *len and *cap as
 * for a growing buffer). 0, or -ENOMEM. */
int kv_metrics_render(char **buf, size_t *len, size_t *cap);
/* The same helper for metrics made at scrape time: appends `fmt` to buf. */
int kv_metrics_printf(char **buf, size_t *len, size_t *cap, const char *fmt,
		      ...) __attribute__((format(printf, 4, 5)));

#endif
