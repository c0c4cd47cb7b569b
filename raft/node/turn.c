/* turn.c - the node thread's measure of its own turns.
 *
 * Heartbeats go out only between turns, so a turn longer than the
 * heartbeat interval is a pause the followers see (a few of them in a
 * row, an election). Each turn is cut into phases by marks: the time
 * since the previous mark goes to the phase named, with what it handled
 * (messages, calls, entries and their bytes). A turn slower than the
 * heartbeat interval is counted and logged with its phases, slowest
 * first; the longest turn and the count are published (lock-free) for
 * /status and /metrics. The loop is loop.c; the marks in an update are
 * update.c's and outbox.c's. */
#include <stdio.h>
#include <string.h>

#include "node_int.h"

static const char *const phase_names[TURN_NPHASES] = {
    [TURN_INBOX] = "inbox",	     [TURN_MSGS] = "peer messages",
    [TURN_PROPOSE] = "proposals",    [TURN_TICK] = "tick",
    [TURN_CORE] = "core update",     [TURN_INSTALL] = "install",
    [TURN_HARDSTATE] = "hard state", [TURN_SEND] = "sends",
    [TURN_APPEND] = "log append",    [TURN_APPLY] = "apply",
    [TURN_OTHER] = "other",
};

void turn_begin(struct kv_node *n)
{
	struct node_turn *t = &n->turn;
	memset(t->ns, 0, sizeof(t->ns));
	memset(t->items, 0, sizeof(t->items));
	memset(t->bytes, 0, sizeof(t->bytes));
	t->t0_ns = t->mark_ns = kv_mono_ns();
}

void turn_mark(struct kv_node *n, enum turn_phase ph, uint64_t items,
	       uint64_t bytes)
{
	struct node_turn *t = &n->turn;
	uint64_t now = kv_mono_ns();
	t->ns[ph] += now - t->mark_ns;
	t->items[ph] += items;
	t->bytes[ph] += bytes;
	t->mark_ns = now;
}

/* "log append 412 ms (1 items, 16.0 MiB), sends 20 ms (3 items)": the
 * phases that took a millisecond or more, slowest first. */
static void phases_text(const struct node_turn *t, char *buf, size_t cap)
{
	bool used[TURN_NPHASES] = {false};
	size_t len = 0;
	buf[0] = '\0';
	for (;;) {
		int best = -1;
		for (int i = 0; i < TURN_NPHASES; i++)
			if (!used[i] && t->ns[i] >= 1000000 &&
			    (best < 0 || t->ns[i] > t->ns[best]))
				best = i;
		if (best < 0 || len + 1 >= cap)
			return;
		used[best] = true;
		int w = snprintf(buf + len, cap - len, "%s%s %llu ms",
				 len ? ", " : "", phase_names[best],
				 (unsigned long long)(t->ns[best] / 1000000));
		if (w > 0 && (size_t)w < cap - len)
			len += (size_t)w;
		if (t->items[best] && len + 1 < cap) {
			w = snprintf(buf + len, cap - len, " (%llu",
				     (unsigned long long)t->items[best]);
			if (w > 0 && (size_t)w < cap - len)
				len += (size_t)w;
			if (t->bytes[best] && len + 1 < cap) {
				w = snprintf(buf + len, cap - len, ", %.1f MiB",
					     (double)t->bytes[best] /
						 (1024.0 * 1024.0));
				if (w > 0 && (size_t)w < cap - len)
					len += (size_t)w;
			}
			if (len + 2 < cap) {
				buf[len++] = ')';
				buf[len] = '\0';
			}
		}
	}
}

void turn_end(struct kv_node *n)
{
	struct node_turn *t = &n->turn;
	turn_mark(n, TURN_OTHER, 0, 0);
	uint64_t took = t->mark_ns - t->t0_ns;
	const uint64_t work[4] = {kv_work.crc, kv_work.hash, kv_work.copy,
				  kv_work.write};
	for (int i = 0; i < 4; i++)
		atomic_store_explicit(&t->work[i], work[i],
				      memory_order_relaxed);
	kv_hist_observe_ns(node_m_turn_seconds.hists, took);
	if (took > atomic_load_explicit(&t->max_ns, memory_order_relaxed)) {
		atomic_store_explicit(&t->max_ns, took, memory_order_relaxed);
		kv_metric_set(&node_m_turn_max_seconds, 0, took);
	}
	if (took <= (uint64_t)NODE_HEARTBEAT * NODE_TICK_MS * 1000000)
		return;
	atomic_fetch_add_explicit(&t->slow, 1, memory_order_relaxed);
	kv_metric_add(&node_m_slow_turns, 0, 1);
	char what[512];
	phases_text(t, what, sizeof(what));
	kv_log(KV_LOG_WARN,
	       "slow node turn: %llu ms, longer than the heartbeat interval "
	       "(%d ms): %s",
	       (unsigned long long)(took / 1000000),
	       NODE_HEARTBEAT * NODE_TICK_MS, what[0] ? what : "no one phase");
}

void turn_stats(struct kv_node *n, uint64_t *max_ns, uint64_t *slow)
{
	*max_ns = atomic_load_explicit(&n->turn.max_ns, memory_order_relaxed);
	*slow = atomic_load_explicit(&n->turn.slow, memory_order_relaxed);
}

void turn_work(struct kv_node *n, uint64_t out[4])
{
	for (int i = 0; i < 4; i++)
		out[i] = atomic_load_explicit(&n->turn.work[i],
					      memory_order_relaxed);
}
