/* node_int.h - what the files of the node layer share (not public).
 *
 * node.c opens and closes a node (identity, store, core, peers, listener)
 * and renders /status; node_loop.c is the node thread, the only one that
 * touches the Raft core; node_client.c is what other threads call:
 * proposals, forwarding and read barriers. They meet in struct kv_node
 * under n->mu: an inbox the node thread drains, and soft state it
 * publishes. Locking order: n->mu, then the store's or the peers' own
 * locks (enqueueing); the store's owner thread takes n->mu in its
 * callbacks while holding none of its own. */
#ifndef KV_NODE_INT_H
#define KV_NODE_INT_H

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "node.h"
#include "peer.h"
#include "raft.h"
#include "snapxfer.h"

/* Time: one tick, and the core's timeouts in ticks. */
#define NODE_TICK_MS	    50
#define NODE_HEARTBEAT	    2	 /* 100 ms */
#define NODE_ELECTION	    10	 /* 0.5 .. 1 s, randomized */
#define NODE_READ_RETRY_MS  500	 /* a ReadIndex round unanswered this long */
#define NODE_READ_PIPELINE  4	 /* ReadIndex rounds in flight at once */
#define NODE_COMPACT_TRAIL  5000 /* entries kept in memory after a db */
#define NODE_MAX_INBOX_MSGS 65536

/* A local proposal, on the proposer's stack (or in an asynchronous
 * call's state, node_client.c), guarded by n->mu. */
enum prop_state {
	PROP_QUEUED,	/* in n->props, not yet seen by the node thread */
	PROP_TAKEN,	/* the node thread is proposing it */
	PROP_FORWARDED, /* sent to the leader as ctx: on n->forwarded */
	PROP_WAITING,	/* in the core's log at (index, term): on n->waiting */
	PROP_DONE,	/* ret and res are final */
};

struct prop {
	struct prop *next;
	enum prop_state state;
	const char *json; /* a command, or */
	size_t len;
	enum raft_conf_op conf_op; /* nonzero: a membership change */
	uint64_t conf_id;
	const char *conf_addr;
	uint64_t index, term;
	uint64_t ctx; /* PROP_FORWARDED: the batch it went in */
	int ret;      /* 0 (res holds the outcome), NODE_RETRY, or an error */
	struct kv_result res;
	/* posted once, when it is settled (PROP_DONE), after n->mu is
	 * released (see struct node_waiter) */
	sem_t sem;
	struct prop *wake_next;
	/* An asynchronous call's: settle is called instead of the post
	 * (n->mu not held, from the thread that settled it; arg is the
	 * call's); the node thread fails it once until passed. */
	void (*settle)(struct prop *p);
	void *arg;
	const struct timespec *until;
};

/* A thread waiting for a ReadIndex round or for an index to be applied.
 * It sleeps on a semaphore of its own, which whoever settles it posts
 * once, after releasing n->mu: a condition variable wakes its waiters into
 * n->mu, and 64 readers woken by one broadcast fought for it (futex
 * contention was a tenth of a follower's time under linearizable GETs). */
struct node_waiter {
	struct node_waiter *next; /* on its list, under n->mu */
	struct node_waiter *wake_next;
	uint64_t at;	/* the round (reader) or index (applier) awaited */
	uint64_t index; /* a reader's answer: the read index */
	int ret;	/* 0 or KV_ESHUTDOWN, set when settled */
	bool listed;	/* on its list: not settled yet (under n->mu) */
	sem_t sem;
	/* an asynchronous call's, as in struct prop */
	void (*settle)(struct node_waiter *w);
	void *arg;
	const struct timespec *until;
};

/* Not applied and never will be (not the leader, or its entry lost to
 * another leader's): safe to propose again. */
#define NODE_RETRY 1

/* A batch of peer messages waiting for the node thread. */
struct inmsg {
	struct inmsg *next;
	struct raft_message *msgs;
	size_t n;
};

/* A snapshot being sent to one follower, on a thread of its own. */
struct snap_send {
	struct snap_send *next;
	struct kv_node *n;
	uint64_t id;
	char addr[RAFT_ADDR_MAX];
	uint64_t index, term;	 /* the db file's */
	struct raft_message msg; /* the meta, sent once the data is in */
	pthread_t thread;
	atomic_bool cancel;
	bool finished; /* under n->mu: the thread is done, ret is final */
	int ret;
};

/* What /status shows of one member, published by the node thread. */
struct node_member {
	uint64_t id;
	enum raft_server_role role;
	char addr[RAFT_ADDR_MAX];
	bool has_progress; /* leader only */
	struct raft_progress_info prog;
};

struct kv_node {
	uint64_t id;
	char *listen;
	char *data_dir;
	char cluster_id[PEER_ID_MAX + 1];
	char token[PEER_ID_MAX + 1];
	int write_timeout_ms;
	struct timespec started;
	struct store *store;
	struct peer_set *peers;
	struct raft *raft; /* node thread only (and node_open/close) */
	/* Messages of one node-thread turn, handed to the peers together:
	 * one frame per peer and turn, not one per call, since every frame
	 * wakes the listener on the other side. Each message owns its
	 * entries (raft_message_clear). Node thread only. */
	struct raft_message *outbox;
	size_t n_outbox, cap_outbox;
	pthread_t thread;
	bool thread_started;

	pthread_mutex_t mu;
	pthread_cond_t cond;	   /* wakes the node thread */
	pthread_cond_t state_cond; /* leader changes: waiters */
	unsigned state_waiters;	   /* threads waiting on state_cond */
	/* threads waiting for an index to be applied, by increasing index */
	struct node_waiter *appliers;
	bool stopping;
	/* threads retrying asynchronous writes (node_client.c), and their
	 * condition: node_close waits until there are none */
	unsigned retrying;
	pthread_cond_t retry_cond;

	/* inbox (under mu) */
	struct prop *props, *props_tail;
	struct inmsg *msgs, *msgs_tail;
	size_t inbox_msgs;
	uint64_t persisted_index, persisted_term; /* latest reported */
	bool persisted_new;
	uint64_t snapshotted; /* latest db index reported, 0 none */
	uint64_t linger;      /* a removed leader whose sender stays for now */
	struct snap_send *sends; /* snapshot senders (node thread starts) */
	bool sends_finished;	 /* one of them finished */

	/* the latest verified snapshot file received (http_peer.c) */
	struct snapxfer_recv *snaprecv;
	struct snapxfer_ready ready;
	bool has_ready;
	bool token_derived;

	/* proposals in the core's log, by increasing index (under mu) */
	struct prop *waiting, *waiting_tail;
	/* proposals sent to the leader and not answered yet, by batch
	 * (ctx), in the order sent (under mu). Batches are numbered upward
	 * from the wall clock in microseconds at start, as ReadIndex rounds
	 * are, so an answer meant for an earlier process matches none. */
	struct prop *forwarded, *forwarded_tail;
	uint64_t fwd_seq; /* the latest batch's (node thread) */
	/* Batches a peer sender says never reached the leader (node_unsent,
	 * from its thread): the node thread retries their writes. Under
	 * unsent_mu alone, so that a sender never waits for n->mu (the
	 * node thread may hold it while it stops that sender). */
	pthread_mutex_t unsent_mu;
	uint64_t unsent[64];
	size_t n_unsent;

	/* ReadIndex rounds (under mu): readers want a round numbered at
	 * least read_need; the node thread numbers rounds upward from a base
	 * of its own (the wall clock in microseconds at start, so answers to
	 * an earlier process's rounds fall outside) and never reuses a
	 * number; the latest answered round and its index serve every reader
	 * that arrived before that round was issued. */
	uint64_t read_need, read_issued, read_answered, read_index;
	/* readers waiting for a round, in arrival order (so by round) */
	struct node_waiter *readers, *readers_tail;
	unsigned read_inflight; /* rounds issued, not answered nor failed */

	/* When each peer's messages last reached this node (CLOCK_MONOTONIC
	 * ms; under mu): /status's last contact. A sender cannot tell: its
	 * stream takes bytes while a frozen peer's socket has room. */
	struct {
		uint64_t id, ms;
	} heard[RAFT_MAX_SERVERS];
	struct timespec read_issued_at;
	struct timespec read_retry_at; /* no leader: not before this */

	/* soft state published by the node thread (under mu) */
	enum raft_role role;
	uint64_t leader, term, commit, last_index;
	char leader_addr[RAFT_ADDR_MAX];
	struct node_member members[RAFT_MAX_SERVERS];
	unsigned n_members;
	uint64_t applied; /* from the store's applied callback */
	int fatal;	  /* the store failed: no more progress */

	pthread_mutex_t watch_mu;
	void (*watch_cb)(void *ctx, const char *key, size_t klen);
	void *watch_ctx;
};

/* node_loop.c */
int node_loop_start(struct kv_node *n);
/* The peer senders' unsent callback (struct peer_options); arg is n. */
void node_unsent(void *arg, uint64_t to, uint64_t ctx);
void node_loop_stop(struct kv_node *n);
extern const struct store_raft_ops node_store_ops;

/* node_client.c: wait until no thread retries an asynchronous write;
 * n->stopping is set, so none starts. Any thread but those. */
void node_retry_wait(struct kv_node *n);

/* CLOCK_MONOTONIC in ms. */
uint64_t node_mono_ms(void);
/* Absolute CLOCK_MONOTONIC deadline ms from now, and the test. */
struct timespec node_deadline(int ms);
bool node_past(const struct timespec *deadline);
/* pthread_cond_timedwait on a CLOCK_MONOTONIC condvar. */
int node_cond_init(pthread_cond_t *c);
/* Wait for sem until the CLOCK_MONOTONIC deadline (NULL: no limit): 0,
 * or ETIMEDOUT. */
int node_sem_wait(sem_t *sem, const struct timespec *deadline);
/* Post every waiter of a list linked by wake_next (n->mu not held). */
void node_wake_all(struct node_waiter *list);

#endif
