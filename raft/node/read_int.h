/* read_int.h - what read.c and read_fast.c (the read barriers) offer the
 * rest of raft/node (internal, included by node_int.h); their state is
 * struct node_reads in node_int.h. */
#ifndef KV_NODE_READ_INT_H
#define KV_NODE_READ_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raft.h"

struct kv_node;

/* read.c: read barriers, the node thread's side. */
/* The ReadIndex round to ask for now, numbered before it is asked; 0 if
 * none is due. */
uint64_t reads_round_next(struct kv_node *n);
/* raft_read_index refused round (no leader): ask again a tick later. */
void reads_round_failed(struct kv_node *n, uint64_t round);
/* The core's answers to rounds. */
void reads_answered(struct kv_node *n, const struct raft_read *reads,
		    size_t count);
/* Settle the readers waiting for an index now applied here. */
void reads_settle_applied(struct kv_node *n);
/* On the thread that delivers m (deliver.c): a leader's answer to one of
 * this node's rounds, whose index is applied here already, serves the
 * round's readers at once, without a turn of the node thread. true if m
 * was used up (the core need not see it). */
bool reads_answer_direct(struct kv_node *n, const struct raft_message *m);
/* Publish rd.solo_index from the core (raft_read_is_local), or set it to
 * 0 before appending a configuration change. Node thread. */
void reads_solo_publish(struct kv_node *n);
void reads_solo_off(struct kv_node *n);
/* read_fast.c: rounds asked and answered off the node thread. Publish
 * rd's ask_* and lead_* from the core (node thread, before anything of a
 * turn leaves it), or clear lead_* before a configuration change. */
void reads_fast_publish(struct kv_node *n);
void reads_fast_off(struct kv_node *n);
/* rd.mu held: if readers wait for a round not issued, none flies and a
 * leader is published to ask, issue it here and fill *m, the READ_INDEX to
 * send (reads_ask_send, rd.mu released). The round, or 0. */
uint64_t reads_ask_locked(struct kv_node *n, struct raft_message *m);
void reads_ask_send(struct kv_node *n, const struct raft_message *m);
/* On the thread that delivers m: a voter's READ_INDEX in the published
 * term of a leader whose voters each complete a quorum is answered into
 * *resp with the published commit index, as the core would. true if m was
 * used up (send *resp; the core need not see m). */
bool reads_lead_answer(struct kv_node *n, const struct raft_message *m,
		       struct raft_message *resp);
/* Settle every reader whose deadline passed. */
void reads_expire(struct kv_node *n);
/* Settle every reader with ret (shutdown, after the node thread ended). */
void reads_drain(struct kv_node *n, int ret);

#endif
