/* node_int.h - what the files of the node layer share (not public).
 *
 * A node is one thread that drives the Raft core (loop.c) and the calls
 * other threads make of it (call.c, propose.c, read.c, deliver.c). struct
 * kv_node is split by concern; each part says beside its fields who owns
 * them: fixed from node_open to node_close, the node thread's alone, or
 * guarded by the part's own mutex. Every call another thread makes is a
 * struct node_call, settled exactly once, by the node thread (or by
 * node_stop once that thread has ended); a blocking call is the same call
 * with a done callback that posts a semaphore.
 *
 * Lock order: the node's mutexes (inbox, reads, status, members, snap)
 * are leaves: none is held while another is taken, nor while calling the
 * store, the peers or a callback, and the node thread holds none while it
 * stops a peer sender (peers_remove waits for that sender's thread, which
 * may be calling node_unsent). watch_mu is the exception: the store takes
 * it under its map lock (on_change) and holds it while the mount's
 * callback runs, so nothing may hold watch_mu and then call the store. */
#ifndef KV_NODE_INT_H
#define KV_NODE_INT_H

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "join.h"
#include "metrics.h"
#include "node.h"
#include "peer.h"
#include "raft.h"
#include "snapxfer.h"

/* Time: one tick, and the core's timeouts in ticks. */
#define NODE_TICK_MS	   50
#define NODE_HEARTBEAT	   2   /* 100 ms */
#define NODE_ELECTION	   10  /* 0.5 .. 1 s, randomized */
#define NODE_READ_RETRY_MS 500 /* a ReadIndex round unanswered this long */
/* Leases (lease.c): a new leader counts every lease from its office plus
 * this (the longest election timeout), and retries an expiry not
 * committed after this long. */
#define NODE_LEASE_EXTEND_MS (2 * NODE_ELECTION * NODE_TICK_MS)
#define NODE_LEASE_RETRY_MS  1000
#define NODE_LEASE_PENDING   64
/* What a follower is assumed to take per heartbeat interval at least
 * (raft_options.resend_bytes_per_heartbeat): 10 MB/s, what 16 MiB entries
 * got through a 3-node cluster on two busy cores, so that one still on
 * its way is not resent (1.6 s more for 16 MiB). */
#define NODE_RESEND_BYTES_PER_HEARTBEAT (1u << 20)
#define NODE_READ_PIPELINE		1 /* ReadIndex rounds in flight (read.c) */
#define NODE_RETRY_PAUSE_MS		20 /* a write that must wait for a leader */
/* The core's in-memory log (trail.c): at most this many applied entries
 * and this many bytes of entry data, compacted a step of this many
 * entries or bytes at a time; held while a snapshot is sent and this long
 * after; the heap trimmed after this many bytes were dropped; the lag
 * of a follower heard from within this long kept up to this many
 * entries and bytes. */
#define NODE_TRAIL_ENTRIES     10000
#define NODE_TRAIL_BYTES       (32u << 20)
#define NODE_TRAIL_STEP	       1024
#define NODE_TRAIL_STEP_BYTES  (4u << 20)
#define NODE_TRAIL_HOLD_MS     5000
#define NODE_TRAIL_TRIM_BYTES  (64u << 20)
#define NODE_TRAIL_LIVE_MS     2000
#define NODE_TRAIL_LAG_ENTRIES 100000
#define NODE_TRAIL_LAG_BYTES   (512u << 20)
#define NODE_MAX_INBOX_MSGS    65536
#define NODE_MAX_UNSENT	       64 /* unsent batches noted at once */
/* Commands this long or longer are decoded before the node thread
 * applies them (decoded.c), up to this many bytes of them at once. */
#define NODE_PREDECODE_BYTES (64u * 1024u)
/* What decoding json (cmd's encoding, len bytes) gives, exactly, for a
 * command of NODE_PREDECODE_BYTES or more, a big put's record prepared
 * (store_cmd_prepare), for the node thread's apply to take (decoded.c);
 * NULL for a small one or without memory. The proposer's thread.
 * propose.c. */
struct kv_cmd *propose_predecode(const struct kv_cmd *cmd, const char *json,
				 size_t len);
#define NODE_DECODED_MAX_BYTES (256u << 20)

/* Not applied and never will be (not the leader, or its entry lost to
 * another leader's): safe to propose again. A call's internal result. */
#define NODE_RETRY 1

#include "call_int.h" /* the calls: struct node_call and its lists */

/* ---- The parts of struct kv_node ---- */

/* A batch of peer messages waiting for the node thread. */
struct inmsg {
	struct inmsg *next;
	struct raft_message *msgs;
	size_t n;
};

/* What other threads hand the node thread (all under mu). cond wakes the
 * node thread; whoever adds something signals it while holding mu, so no
 * wake-up is lost. */
struct node_inbox {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct call_list calls; /* writes and changes, in arrival order */
	struct inmsg *msgs, *msgs_tail;
	size_t n_msgs;
	uint64_t persisted_index, persisted_term; /* latest reported */
	bool persisted_new;
	uint64_t snapshotted; /* latest db index reported, 0 none */
	bool sends_finished;  /* a snapshot sender finished */
	bool reads;	      /* a reader wants a ReadIndex round */
	bool expire;	      /* a blocking call's deadline passed */
	/* A call needs no wake: the node is the only voter and waits for a
	 * sync of its log, whose report (on_persisted) wakes it and clears
	 * this; the calls queued meanwhile go into the next sync as they
	 * would have if each had woken it (update.c: calls_lazy_update). */
	bool lazy;
	/* Batches a peer sender says never reached the leader
	 * (node_unsent): the node thread retries their writes. More at once
	 * than there is room for wait for their deadline. */
	uint64_t unsent[NODE_MAX_UNSENT];
	size_t n_unsent;
};

/* Proposals the node thread holds (node thread only, and node_stop's
 * once it ended). */
struct node_props {
	/* sent to the leader and not answered yet, by batch (fwd), in the
	 * order sent. Batches are numbered upward from the wall clock in
	 * microseconds at start, as ReadIndex rounds are, so an answer meant
	 * for an earlier process matches none. */
	struct call_list forwarded;
	uint64_t fwd_seq; /* the latest batch's */
	/* in the core's log, by increasing index */
	struct call_list waiting;
	/* taken off waiting by the store's applied callback, settled by the
	 * node thread once the store returns (the callback may run on the
	 * store's owner, while the node thread waits in store_install) */
	struct call_list applied;
	/* writes that surely were not applied, waiting for a leader, in the
	 * order parked */
	struct call_list parked;
	/* counts leader and term changes: a parked write is retried at once
	 * when it changed, else after NODE_RETRY_PAUSE_MS */
	uint64_t epoch;
	/* leadership transfers under way (transfer.c) */
	struct call_list transfers;
};

/* Read barriers. Readers want a round numbered at least need; the node
 * thread numbers rounds upward from a base of its own (the wall clock in
 * microseconds at start, so answers to an earlier process's rounds fall
 * outside) and never reuses a number; the latest answered round and its
 * index serve every reader that arrived before that round was issued.
 * Each reader sleeps on a semaphore of its own (its done callback), posted
 * once, after mu is released: a condition variable wakes its waiters into
 * the mutex, and 64 readers woken by one broadcast fought for it (futex
 * contention was a tenth of a follower's time under linearizable GETs). */
struct node_reads {
	pthread_mutex_t mu; /* guards the fields up to readers */
	uint64_t need, issued, answered, index;
	unsigned inflight;  /* rounds issued, not answered nor failed */
	uint64_t issued_ms; /* when the latest round was issued */
	/* What other threads may do about rounds without the node thread
	 * (read_fast.c), written by it before anything of a turn leaves it
	 * (reads_fast_publish): on a follower, the term and the leader a
	 * reader asks itself (0: ask through the node thread); on a leader
	 * whose voters' requests each complete a quorum (raft_read_by_asker),
	 * its term, commit index and other voters, for the thread that
	 * receives a READ_INDEX to answer it (0: the core answers). */
	uint64_t ask_term, ask_leader;
	uint64_t lead_term, lead_commit;
	uint64_t lead_voters[2];
	/* readers waiting for a round, in arrival order (so by round) */
	struct call_list readers;
	/* the node thread's alone: */
	/* readers answered, waiting for their index to be applied here, by
	 * increasing index (added and settled on the node thread only) */
	struct call_list appliers;
	uint64_t retry_ms; /* no leader: no round before this */
	bool want;	   /* readers wait for a round not issued yet */
	/* raft_read_is_local's commit index, or 0: written by the node
	 * thread before anything of a turn leaves it (reads_solo_publish),
	 * 0 before it appends a configuration change; read by any reader
	 * (node_read_now) */
	_Atomic uint64_t solo_index;
};

/* The soft state the node thread publishes for other threads. */
struct node_soft {
	enum raft_role role;
	uint64_t leader, term, commit, last_index;
	/* the core's in-memory log: its first index and data bytes */
	uint64_t mem_first, mem_bytes;
	char leader_addr[RAFT_ADDR_MAX];
};
struct node_status {
	pthread_mutex_t mu; /* guards soft and write_err* */
	struct node_soft soft;
	/* this member cannot write its log (writable.c): the error, 0 if
	 * none, and since when (CLOCK_MONOTONIC ms, and the wall clock's ms
	 * since the epoch) */
	int write_err;
	uint64_t write_err_mono_ms;
	int64_t write_err_wall_ms;
	/* the store failed, or the hard state could not be saved: no more
	 * progress. Written by the node thread, read without a lock. */
	atomic_int fatal;
};

/* What /status shows of one member, published by the node thread. */
struct node_member {
	uint64_t id;
	enum raft_server_role role;
	char addr[RAFT_ADDR_MAX];
	bool has_progress; /* leader only */
	struct raft_progress_info prog;
};

/* The trail is kept back for a follower a snapshot was sent to, until
 * its match reaches index or until_ms (trail.c). id 0: free. */
struct node_trail_hold {
	uint64_t id, index, until_ms;
};
/* When the leader last saw a follower answer (trail.c). */
struct node_trail_seen {
	uint64_t id, ms;
};

/* A snapshot being sent to one follower, on a thread of its own; or,
 * waiting, for a db at msg.snapshot.index or later (no thread yet). */
struct snap_send {
	struct snap_send *next;
	struct kv_node *n;
	uint64_t id;
	char addr[RAFT_ADDR_MAX];
	uint64_t index, term;	 /* the db file's */
	struct raft_message msg; /* the meta, sent once the data is in */
	pthread_t thread;
	atomic_bool cancel;
	atomic_bool finished; /* the thread is done: ret is final */
	int ret;
	bool waiting; /* for a fresh db: no thread */
};

/* Membership: the configuration as published, when each peer was heard
 * from, and the node thread's peer senders. */
struct node_members {
	pthread_mutex_t mu; /* guards list, n and heard */
	struct node_member list[RAFT_MAX_SERVERS];
	unsigned n;
	/* When each peer's messages last reached this node (CLOCK_MONOTONIC
	 * ms; node_deliver): /status's last contact. A sender cannot tell:
	 * its stream takes bytes while a frozen peer's socket has room. */
	struct {
		uint64_t id, ms;
	} heard[RAFT_MAX_SERVERS];
	/* the node thread's alone: */
	struct raft_config synced; /* what the senders were set up for */
	uint64_t linger; /* a removed leader whose sender stays for now */
	struct snap_send *sends; /* snapshot senders */
};

/* The latest verified snapshot file received (node_snapshot_chunk, from
 * the listener's threads), which the node thread installs. */
/* A snapshot transfer as /status and the log report it. */
struct node_xfer {
	uint64_t peer;	     /* to (sending) or 0 (receiving) */
	uint64_t index;	     /* the snapshot's; 0: slot free */
	uint64_t have, size; /* bytes the receiver has; size 0: unknown */
	uint64_t t0_ms, last_ms, logged_ms; /* started, last chunk, logged */
};

struct node_snap {
	struct snapxfer_recv *recv; /* fixed */
	pthread_mutex_t mu; /* guards ready, has_ready, sending, receiving */
	struct snapxfer_ready ready;
	bool has_ready;
	struct node_xfer sending[RAFT_MAX_SERVERS];
	struct node_xfer receiving;
};

/* The cluster's tokens (identity.c): the one this node presents and the
 * ones it accepts (the same, and one more during a rotation). */
struct node_tokens {
	pthread_mutex_t mu; /* guards present and accept; a leaf */
	char present[PEER_ID_MAX + 1];
	char accept[PEER_TOKENS][PEER_ID_MAX + 1]; /* "": none */
	/* Fixed: the --cluster-token file ("": DATA_DIR/cluster-token,
	 * never reread). */
	char file[4096];
};

/* Big commands decoded off the node thread (decoded.c). */
struct dec_item;
struct node_decoded {
	pthread_mutex_t mu; /* guards head and bytes; a leaf */
	struct dec_item *head;
	size_t bytes;
};

/* The node thread's measure of its turns (turn.c). */
enum turn_phase {
	TURN_INBOX,	/* taking the inbox */
	TURN_MSGS,	/* stepping the peers' messages */
	TURN_PROPOSE,	/* proposing calls (or forwarding them) */
	TURN_TICK,	/* the clock, promotions, read rounds */
	TURN_CORE,	/* taking the core's update (its copies) */
	TURN_INSTALL,	/* installing a received snapshot */
	TURN_HARDSTATE, /* saving term and vote */
	TURN_SEND,	/* handing messages to the peer senders */
	TURN_APPEND,	/* store_append */
	TURN_APPLY,	/* store_apply and settling what it answered */
	TURN_OTHER,
	TURN_NPHASES
};
struct node_turn {
	/* the node thread's alone: the turn under way */
	uint64_t t0_ns, mark_ns;
	uint64_t ns[TURN_NPHASES], items[TURN_NPHASES], bytes[TURN_NPHASES];
	/* written by the node thread, read by any (turn_stats) */
	_Atomic uint64_t max_ns; /* the longest turn since the start */
	_Atomic uint64_t slow;	 /* turns longer than a heartbeat interval */
	/* the node thread's kv_work (kv.h) at its last turn's end: the
	 * bytes it checksummed, hashed, copied into records, wrote */
	_Atomic uint64_t work[4];
};

/* The leader's expiry of leases (lease.c): the node thread's, but
 * floor_ms, which any thread reads for a remaining TTL. */
struct node_leases {
	uint64_t term; /* the term it leads in; 0: not the leader */
	struct {
		uint64_t id, rev, at_ms;
	} pending[NODE_LEASE_PENDING]; /* expiries proposed */
	size_t npending;
	/* While leading: office + NODE_LEASE_EXTEND_MS, before which no
	 * lease's TTL starts; 0 otherwise. */
	_Atomic uint64_t floor_ms;
};

struct kv_node {
	/* Fixed from node_open to node_close: any thread, no lock. */
	uint64_t id;
	char *listen;
	char *data_dir;
	char cluster_id[PEER_ID_MAX + 1];
	const struct peer_tls *tls; /* borrowed; NULL: plain */
	struct node_tokens tok;
	int write_timeout_ms;
	uint64_t started_ms; /* CLOCK_MONOTONIC */
	struct store *store;
	struct peer_set *peers;
	/* node_stop began: calls are refused from now on. Set once; each
	 * list is emptied under its own lock after the node thread ended. */
	atomic_bool stopping;

	/* The node thread's alone (and node_open's before it starts,
	 * node_stop's after it ended). */
	struct raft *raft;
	/* Messages of one node-thread turn, handed to the peers together:
	 * one frame per peer and turn, not one per call, since every frame
	 * wakes the listener on the other side. Each message owns its
	 * entries (raft_message_clear). */
	struct raft_message *outbox;
	size_t n_outbox, cap_outbox;
	uint64_t compacted; /* the latest db index the node thread saw */
	struct node_trail_hold holds[RAFT_MAX_SERVERS]; /* trail.c */
	struct node_trail_seen seen[RAFT_MAX_SERVERS];
	/* the block of a restart's entries, shared with the core's log
	 * until it holds none unapplied (node.c, trail.c); NULL: none */
	struct raft_buf *restored;
	uint64_t restored_last; /* the last of those entries */
	uint64_t trail_freed;	/* entry bytes dropped since malloc_trim */
	bool trail_burst;	/* the log was far longer than its trail */
	/* A dropped damaged entry's index (raft_restore.abstain_until), kept
	 * in DATA_DIR/abstain until an entry at or past it is durable here
	 * again; 0 if none (node.c). */
	uint64_t abstain_until;
	/* writable.c: the log cannot be written (0: it can), since when
	 * (CLOCK_MONOTONIC ms) */
	struct {
		int err;
		uint64_t since_ms;
	} wr;
	struct node_soft pub_last; /* what was published last */
	pthread_t thread;
	bool thread_started;

	struct node_inbox in;
	struct node_props props;
	struct node_reads rd;
	struct node_status st;
	struct node_members mb;
	struct node_snap snap;
	struct node_turn turn;
	struct node_decoded dec;
	struct node_leases leases;

	/* The mount's callback for applied changes (node_watch). */
	pthread_mutex_t watch_mu;
	void (*watch_cb)(void *ctx, const char *key, size_t klen);
	void (*watch_done)(void *ctx);
	void *watch_ctx;
};

/* ---- What the files offer each other ---- */

/* lease.c: on every tick, a leader's expiry of leases. */
void node_leases_tick(struct kv_node *n);

/* loop.c: the node thread. */
int node_loop_start(struct kv_node *n);
void node_loop_stop(struct kv_node *n);

/* call.c: handing calls to the node thread. */
/* Hand c (a write or change, listed by nobody) to the node thread. 0, or
 * KV_ESHUTDOWN once stopping (c is not taken). Any thread. */
int inbox_add_call(struct kv_node *n, struct node_call *c);
/* Ask the node thread to settle the calls whose deadline passed now
 * rather than at its next tick. Any thread. */
void inbox_expire(struct kv_node *n);
/* Wake the node thread for a reader's round. Any thread, no lock held. */
void inbox_wake_reads(struct kv_node *n);

/* update.c: carrying out an update (raft.h's order). Node thread. */
void update_process(struct kv_node *n, struct raft_update *u);
extern const struct store_raft_ops node_store_ops;

/* outbox.c: the turn's messages. Node thread. */
/* Move *m, and the entries it owns, into the outbox; *m is zeroed. */
void outbox_add(struct kv_node *n, struct raft_message *m);
/* Hand the turn's messages to the peers, in order, and free them. */
void outbox_flush(struct kv_node *n);

/* propose.c: the node thread's side of writes and changes. */
/* c's entry is known (c->index, c->term): hand its decoded command, if
 * any, to decoded.c. Node thread. */
void propose_hand_dec(struct kv_node *n, struct node_call *c);
/* A command's keys and size: 0, -EINVAL, -ENAMETOOLONG, -EFBIG. */
int propose_check(const struct kv_cmd *cmd);
/* Settle c (off every list) with ret: a write that surely was not
 * applied is parked to be retried, anything else finished. */
void props_settle(struct kv_node *n, struct node_call *c, int ret);
/* Settle what the store's applied callback took off props.waiting. */
void props_settle_applied(struct kv_node *n);
/* The parked writes whose time to be retried came, taken off the list
 * (NULL if none, or no leader is known). */
struct node_call *props_take_due(struct kv_node *n);
/* When the first parked write is due (CLOCK_MONOTONIC ms), 0 if none. */
uint64_t props_next_due(const struct kv_node *n);
/* Settle, with ret, every parked write (a failed store). */
void props_fail_parked(struct kv_node *n, int ret);
/* Settle every write and change whose deadline passed. */
void props_expire(struct kv_node *n);
/* Settle every write and change the node still holds with ret
 * (shutdown, after the node thread ended). */
void props_drain(struct kv_node *n, int ret);
/* The store's applied callback: the waiting calls up to (index, term). */
void props_on_applied(struct kv_node *n, uint64_t index, uint64_t term,
		      const struct kv_result *res);

/* transfer.c: leadership transfers. Node thread. */
/* Take a CALL_TRANSFER: answer it at once (not the leader, a bad target,
 * nothing to do) or start the transfer and list it on props.transfers. */
void transfer_begin(struct kv_node *n, struct node_call *c);
/* At the end of a turn: answer the transfers that ended (another member
 * leads: 0; the core abandoned it: -ETIMEDOUT). */
void transfer_check(struct kv_node *n);

/* writable.c: a member that cannot write its log. Node thread. */
/* Once a tick: look at the store; on a change tell the core whether this
 * member may be a candidate, log it and publish it for /status. */
void writable_check(struct kv_node *n);
/* This member cannot write and another voter can take over: writes sent
 * to it as leader are answered "retry" rather than "disk full". */
bool writable_handing_over(struct kv_node *n);

/* forward.c: writes a follower forwards to the leader. Node thread. */
/* Put the writes of list marked forward (ret NODE_FORWARD) in PROPOSE
 * messages to leader; each gets its batch in c->fwd, or ret -ENOMEM. */
#define NODE_FORWARD 2
void forward_calls(struct kv_node *n, struct node_call *list, size_t count,
		   uint64_t leader);
/* The leader's side: a follower's PROPOSE, answered in *resp. */
void forward_take(struct kv_node *n, const struct raft_message *m,
		  struct raft_message *resp);
/* The follower's side: the leader's PROPOSE_RESP. */
void forward_answer(struct kv_node *n, const struct raft_message *m);
/* Writes of batches that never reached the leader: proposed again. */
void forward_unsent(struct kv_node *n, const uint64_t *batch, size_t count);
/* Check and re-encode the commands of a follower's PROPOSE before the
 * node thread sees it (node_deliver, any thread). */
void forward_check(struct raft_message *m);

/* deliver.c: the peer senders' unsent callback (struct peer_options);
 * arg is n. A sender's thread, holding none of the peers' locks. */
void node_unsent(void *arg, uint64_t to, uint64_t ctx);

#include "read_int.h" /* read.c and read_fast.c: read barriers */

/* members.c: membership on the node thread. */
/* Keep the peer senders in step with the core's configuration, and stop
 * a lingering removed leader's once another node leads. */
void members_sync(struct kv_node *n);
/* Promote learners that caught up. Leader only, once a tick. */
void members_promote(struct kv_node *n);
/* A membership change through the core: 0 with c->index/term, or the
 * error node_change_member documents (NODE_RETRY: not the leader). */
int members_change(struct kv_node *n, struct node_call *c);
/* Publish the configuration (and the leader's progress) for /status. */
void members_publish(struct kv_node *n);

/* status.c: the published soft state. Node thread. */
/* Publish role, leader, term, commit, last index; true if the leader or
 * term changed since the last call. */
bool status_publish(struct kv_node *n);
/* Record a fatal error (the latest is kept): the node stops taking part. */
void status_set_fatal(struct kv_node *n, int err);

/* snapshot.c: snapshot senders (leader). Node thread. */
/* The core wants a snapshot sent to m->to: start a sender unless one is
 * running; the message (the meta) goes once the data is there. */
void snapshot_send_start(struct kv_node *n, struct raft_message *m);
/* Reap finished senders (the meta goes out, the core learns the
 * outcome); cancel_all stops and reaps every one (shutdown). */
void snapshot_send_reap(struct kv_node *n, bool cancel_all);
/* A db at index is in place: start the senders that waited for it. */
void snapshot_send_resume(struct kv_node *n, uint64_t index);

/* trail.c: the core's in-memory log, bounded. Node thread. */
/* Compact the core to its trail (after every turn). */
void trail_compact(struct kv_node *n);
/* Keep the entries after index in memory until follower id matches it
 * (a snapshot at index was just sent to it), or for a while. */
void trail_hold(struct kv_node *n, uint64_t id, uint64_t index);
/* The verified file received, taken for installing: its path and index,
 * false if none. */
bool snapshot_ready_take(struct kv_node *n, char *path, size_t cap,
			 uint64_t *index);
void snapshot_ready_clear(struct kv_node *n);

/* identity.c: cluster.json and --peers. */
/* Parse "ID=HOST:PORT,..." into c (voters sorted by id); id must be
 * listed. what names the list in *errmsg ("--peers"); allow_zero admits
 * port 0 (a --listen that picks its port). 0 or -EINVAL. */
int identity_parse_peers(const char *peers, uint64_t id, bool allow_zero,
			 const char *what, struct raft_config *c,
			 char **errmsg);
/* The tokens, before the store is opened: --cluster-token's file if
 * given (n->tok), else nothing yet (identity_load takes or makes
 * DATA_DIR/cluster-token); a cluster of several members, or a join,
 * without a file is refused here, with the command that makes one. Sets
 * n->tls too. 0 or -EINVAL / -errno with *errmsg. */
int identity_tokens_open(struct kv_node *n, const struct node_options *opt,
			 const struct raft_config *given, char **errmsg);
/* Who this node is to the members it asks (joining), for join.h. */
struct cluster_auth identity_auth(struct kv_node *n);
/* Load or create the data dir's identity: n->cluster_id, the tokens
 * (unless a token file set them: DATA_DIR/cluster-token, made for a
 * member alone) and *boot (the bootstrap members). given
 * is the members --peers gave (or this node alone); joined, if not NULL,
 * the answer of the cluster this node just joined. */
struct join_answer;
int identity_load(struct kv_node *n, bool peers_given,
		  const struct raft_config *given, bool have_token,
		  const struct join_answer *joined, struct raft_config *boot,
		  char **errmsg);
/* A malloc'd message, or NULL without memory. */
char *node_msgf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* abstain.c: at open, the index of a dropped damaged entry (lost, from
 * the store, or kept in DATA_DIR/abstain) into n->abstain_until, kept on
 * disk; 0 or -errno with *errmsg. The node thread, after a durability
 * report up to index: once that entry is durable again, forget it. */
int node_abstain_open(struct kv_node *n, uint64_t lost, char **errmsg);
void node_abstain_check(struct kv_node *n, uint64_t index);

/* snapshot.c: the transfers in progress, as /status shows them (under
 * snap.mu: "snapshot_transfers", an array). */
struct cJSON;
void snapshot_status(struct kv_node *n, struct cJSON *j);

/* decoded.c: big commands decoded before they are applied. Any thread
 * but where said; nothing is required to be found (a cache).
 * decoded_wanted: is a command of len bytes at index/term (0: not known
 * yet) worth decoding now (big, room, not held)? decoded_put decodes
 * data[0..len) and keeps it under index/term, or with index 0 pending
 * under the data pointer (a forwarded write on the leader: node_deliver);
 * decoded_put_cmd keeps *cmd (taken). decoded_rekey gives the pending one
 * of data its entry (node thread, once proposed); decoded_forget drops it
 * (before data is freed). decoded_take (node thread, applying index in
 * order) moves the command of (index, term) into *out (the caller clears
 * it) and drops what is held at or before index. */
bool decoded_wanted(struct kv_node *n, uint64_t index, uint64_t term,
		    size_t len);
void decoded_put(struct kv_node *n, uint64_t index, uint64_t term,
		 const void *data, size_t len);
void decoded_put_cmd(struct kv_node *n, uint64_t index, uint64_t term,
		     struct kv_cmd *cmd, size_t len);
void decoded_rekey(struct kv_node *n, const void *data, uint64_t index,
		   uint64_t term);
void decoded_forget(struct kv_node *n, const void *data);
bool decoded_take(struct kv_node *n, uint64_t index, uint64_t term,
		  struct kv_cmd *out);
void decoded_clear(struct kv_node *n);
/* decoded_note: check and checksum a big entry's data (store_data_check)
 * on the thread that made or received it, noted on its shared buffer
 * (raft_entry_set_note) before it is handed on; decoded_checked reads
 * the note for store_append (false: not noted, the append checks). */
void decoded_note(struct raft_entry *e);
bool decoded_checked(const struct raft_entry *e, uint32_t *crc);

/* turn.c: the node thread's measure of its turns. Node thread, but
 * turn_stats (any thread). A turn is turn_begin, marks, turn_end: each
 * mark gives the time since the previous one to phase ph, with the items
 * (messages, calls, entries) and entry bytes it handled. turn_end counts
 * and logs a turn longer than the heartbeat interval, naming its phases. */
void turn_begin(struct kv_node *n);
void turn_mark(struct kv_node *n, enum turn_phase ph, uint64_t items,
	       uint64_t bytes);
void turn_end(struct kv_node *n);
/* The longest turn since the start and the count of slow ones. */
void turn_stats(struct kv_node *n, uint64_t *max_ns, uint64_t *slow);
/* The node thread's per-byte work so far (kv_work at its last turn's
 * end): checksummed, hashed, copied, written. Any thread. */
void turn_work(struct kv_node *n, uint64_t out[4]);

/* node_metrics.c: what the node counts for /metrics. */
extern struct kv_metric node_m_proposals, node_m_write_seconds,
    node_m_leader_changes, node_m_elections, node_m_read_rounds,
    node_m_read_barriers, node_m_read_local, node_m_turn_seconds,
    node_m_turn_max_seconds, node_m_slow_turns;
void node_metrics_register(void);

#endif
