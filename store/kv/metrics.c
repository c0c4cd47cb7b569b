/* metrics.c - the registry of metrics and its rendering in the
 * Prometheus text exposition format (version 0.0.4): a # HELP and a
 * # TYPE line a family, then its series; histograms as cumulative
 * _bucket{le="..."} series, _sum (seconds) and _count. */
#include "metrics.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct kv_metric *reg_head, **reg_tail = &reg_head;

/* Upper bounds of the buckets, in nanoseconds and as Prometheus prints
 * them; the last bucket is +Inf. */
static const uint64_t bound_ns[KV_HIST_BUCKETS - 1] = {
    50000,     100000,	   250000,     500000,	   1000000,    2500000,
    5000000,   10000000,   25000000,   50000000,   100000000,  250000000,
    500000000, 1000000000, 2500000000, 5000000000, 10000000000};
static const char *const bound_txt[KV_HIST_BUCKETS] = {
    "5e-05", "0.0001", "0.00025", "0.0005", "0.001", "0.0025",
    "0.005", "0.01",   "0.025",	  "0.05",   "0.1",   "0.25",
    "0.5",   "1",      "2.5",	  "5",	    "10",    "+Inf"};

void kv_metric_register(struct kv_metric *m)
{
	pthread_mutex_lock(&reg_mu);
	if (!atomic_load(&m->registered)) {
		m->next = NULL;
		*reg_tail = m;
		reg_tail = &m->next;
		atomic_store(&m->registered, 1);
	}
	pthread_mutex_unlock(&reg_mu);
}

void kv_hist_observe_ns(struct kv_hist *h, uint64_t ns)
{
	unsigned b = 0;
	while (b < KV_HIST_BUCKETS - 1 && ns > bound_ns[b])
		b++;
	atomic_fetch_add_explicit(&h->bucket[b], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum_ns, ns, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
}

int kv_metrics_printf(char **buf, size_t *len, size_t *cap, const char *fmt,
		      ...)
{
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(*buf ? *buf + *len : NULL,
				  *buf ? *cap - *len : 0, fmt, ap);
		va_end(ap);
		if (n < 0)
			return -ENOMEM;
		if (*buf && *len + (size_t)n < *cap) {
			*len += (size_t)n;
			return 0;
		}
		size_t want = *cap ? *cap * 2 : 16384;
		while (want < *len + (size_t)n + 1)
			want *= 2;
		char *p = realloc(*buf, want);
		if (!p)
			return -ENOMEM;
		*buf = p;
		*cap = want;
	}
}

static const char *type_name(enum kv_metric_type t)
{
	switch (t) {
	case KV_METRIC_COUNTER:
		return "counter";
	case KV_METRIC_GAUGE:
		return "gauge";
	case KV_METRIC_HIST:
		break;
	}
	return "histogram";
}

static int render_hist(char **buf, size_t *len, size_t *cap,
		       const struct kv_metric *m, const char *lab,
		       struct kv_hist *h)
{
	const char *sep = lab[0] ? "," : "";
	uint64_t cum = 0;
	int ret = 0;
	for (unsigned b = 0; b < KV_HIST_BUCKETS && !ret; b++) {
		cum +=
		    atomic_load_explicit(&h->bucket[b], memory_order_relaxed);
		ret = kv_metrics_printf(
		    buf, len, cap, "%s_bucket{%s%sle=\"%s\"} %llu\n", m->name,
		    lab, sep, bound_txt[b], (unsigned long long)cum);
	}
	/* the count is the +Inf bucket, so that the two always agree */
	uint64_t sum = atomic_load_explicit(&h->sum_ns, memory_order_relaxed);
	const char *ob = lab[0] ? "{" : "", *cb = lab[0] ? "}" : "";
	if (!ret)
		ret =
		    kv_metrics_printf(buf, len, cap, "%s_sum%s%s%s %.9f\n",
				      m->name, ob, lab, cb, (double)sum / 1e9);
	if (!ret)
		ret = kv_metrics_printf(buf, len, cap, "%s_count%s%s%s %llu\n",
					m->name, ob, lab, cb,
					(unsigned long long)cum);
	return ret;
}

static int render_one(char **buf, size_t *len, size_t *cap,
		      const struct kv_metric *m)
{
	int ret =
	    kv_metrics_printf(buf, len, cap, "# HELP %s %s\n# TYPE %s %s\n",
			      m->name, m->help, m->name, type_name(m->type));
	for (unsigned i = 0; i < m->n && !ret; i++) {
		const char *lab = m->labels && m->labels[i] ? m->labels[i] : "";
		if (m->type == KV_METRIC_HIST) {
			ret = render_hist(buf, len, cap, m, lab, &m->hists[i]);
			continue;
		}
		uint64_t v =
		    atomic_load_explicit(&m->values[i], memory_order_relaxed);
		if (m->ns)
			ret = kv_metrics_printf(
			    buf, len, cap, "%s%s%s%s %.9f\n", m->name,
			    lab[0] ? "{" : "", lab, lab[0] ? "}" : "",
			    (double)v / 1e9);
		else
			ret = kv_metrics_printf(
			    buf, len, cap, "%s%s%s%s %llu\n", m->name,
			    lab[0] ? "{" : "", lab, lab[0] ? "}" : "",
			    (unsigned long long)v);
	}
	return ret;
}

int kv_metrics_render(char **buf, size_t *len, size_t *cap)
{
	/* the lock keeps registration out, never a counter's bump */
	int ret = 0;
	pthread_mutex_lock(&reg_mu);
	for (struct kv_metric *m = reg_head; m && !ret; m = m->next)
		ret = render_one(buf, len, cap, m);
	pthread_mutex_unlock(&reg_mu);
	return ret;
}
