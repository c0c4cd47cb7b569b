/* node_metrics.c - what the node counts for /metrics: proposals and how
 * long writes take, leader changes and elections, ReadIndex rounds, the
 * node thread's turns (turn.c). The
 * figures that are states, not events (term, role, indexes, peers), are
 * read from /status at scrape time instead (raft/http/http_metrics.c). */
#include "node_int.h"

struct kv_metric node_m_proposals = KV_METRIC_COUNTER_INIT(
    "kvfs_raft_proposals_total",
    "Entries this node appended to the Raft log as leader (its own writes "
    "and those forwarded to it).");
struct kv_metric node_m_write_seconds = KV_METRIC_HIST_INIT(
    "kvfs_raft_write_seconds",
    "Writes made on this node (HTTP and mount), from the call to its "
    "answer: committed and applied here, or failed.");
struct kv_metric node_m_leader_changes = KV_METRIC_COUNTER_INIT(
    "kvfs_raft_leader_changes_total",
    "Times this node saw a new leader (a different id or a new term).");
struct kv_metric node_m_elections = KV_METRIC_COUNTER_INIT(
    "kvfs_raft_elections_started_total",
    "Elections this node started (a new term as candidate).");
struct kv_metric node_m_read_rounds = KV_METRIC_COUNTER_INIT(
    "kvfs_raft_read_index_rounds_total",
    "ReadIndex rounds this node asked for; one serves every read "
    "barrier waiting for it.");
struct kv_metric node_m_read_barriers = KV_METRIC_COUNTER_INIT(
    "kvfs_raft_read_barriers_total",
    "Linearizable read barriers asked of this node (HTTP and mount).");

struct kv_metric node_m_read_local = KV_METRIC_COUNTER_INIT(
    "kvfs_raft_read_barriers_local_total",
    "Read barriers passed at once, without a ReadIndex round: this node "
    "is the leader and only voter and had applied its commit index.");
struct kv_metric node_m_turn_seconds = KV_METRIC_HIST_INIT(
    "kvfs_raft_turn_seconds",
    "Turns of the node thread (the one that drives Raft): heartbeats go "
    "out between turns, so a long turn delays them.");
struct kv_metric node_m_turn_max_seconds = KV_METRIC_GAUGE_NS_INIT(
    "kvfs_raft_turn_max_seconds",
    "The longest turn of the node thread since the process started.");
struct kv_metric node_m_slow_turns = KV_METRIC_COUNTER_INIT(
    "kvfs_raft_slow_turns_total",
    "Turns of the node thread longer than the heartbeat interval (each "
    "logged with what it did).");

void node_metrics_register(void)
{
	kv_metric_register(&node_m_read_local);
	kv_metric_register(&node_m_proposals);
	kv_metric_register(&node_m_write_seconds);
	kv_metric_register(&node_m_leader_changes);
	kv_metric_register(&node_m_elections);
	kv_metric_register(&node_m_read_rounds);
	kv_metric_register(&node_m_read_barriers);
	kv_metric_register(&node_m_turn_seconds);
	kv_metric_register(&node_m_turn_max_seconds);
	kv_metric_register(&node_m_slow_turns);
}
