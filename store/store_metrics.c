/* store_metrics.c - what the store counts for /metrics: how long the
 * log's syncs take (the disk's share of every write), and the snapshots
 * written. Sizes (keys, bytes, log bytes) are read from /status at
 * scrape time. */
#include "store_int.h"

struct kv_metric store_m_fsync_seconds = KV_METRIC_HIST_INIT(
    "kvfs_log_fsync_seconds",
    "One group commit's fdatasync of the log (and of its directory "
    "when a segment was added).");
struct kv_metric store_m_fsync_errors = KV_METRIC_COUNTER_INIT(
    "kvfs_log_fsync_errors_total", "Syncs of the log that failed.");
struct kv_metric store_m_snapshots = KV_METRIC_COUNTER_INIT(
    "kvfs_snapshots_total", "Snapshots (db.jsonl) written by this node.");
struct kv_metric store_m_snapshot_seconds = KV_METRIC_HIST_INIT(
    "kvfs_snapshot_seconds",
    "Writing one snapshot, off the write path (the db-writer thread).");

void store_metrics_register(void)
{
	kv_metric_register(&store_m_fsync_seconds);
	kv_metric_register(&store_m_fsync_errors);
	kv_metric_register(&store_m_snapshots);
	kv_metric_register(&store_m_snapshot_seconds);
}
