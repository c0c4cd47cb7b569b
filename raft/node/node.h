/* node.h - the node layer: what fs/ and the HTTP API call.
 *
 * A node owns the store, the Raft core (driven by the node thread,
 * loop.c) and the peer senders of one kvfs process. Writes are proposed
 * through it (forwarded to the leader from a follower) and answered once
 * committed and applied on this node; reads ask it first whether the local
 * map may be read (ReadIndex). One member is a cluster of one: the same
 * path. Every call is asynchronous inside: the blocking ones start the
 * asynchronous call and wait for its answer, so they must never be made
 * from the node thread (nor from a node_done_fn or node_watch callback,
 * which run on it): that thread would wait for itself. */
#ifndef KV_NODE_H
#define KV_NODE_H

#include <stdbool.h>
#include <stdint.h>

#include <stddef.h>

#include "store.h"

struct kv_node;
struct peer_tls; /* raft/peer/peer_tls.h */

struct node_options {
	uint64_t id;		 /* this member's id (>= 1) */
	const char *data_dir;	 /* data directory */
	const char *listen;	 /* "HOST:PORT" for HTTP; port 0 picks one */
	const char *peers;	 /* "1=HOST:PORT,2=..." or NULL: alone */
	uint64_t snapshot_every; /* 0: store default */
	size_t watch_history;	 /* events kept for watches; 0: default */
	uint64_t snapshot_bytes; /* 0: store default */
	size_t segment_size;	 /* 0: store default */
	int write_timeout_ms;	 /* bound on waiting for a quorum; 0: 5000 */
	/* The cluster's secret: a file of one token (two during a
	 * rotation: the first presented, both accepted), reread by
	 * node_reload_tokens. NULL: a member alone keeps a random one in
	 * DATA_DIR/cluster-token; every other member needs the file. */
	const char *cluster_token_file;
	const char *join; /* "HOST:PORT" of a member to join, or NULL */
	/* TLS for every connection to a peer (streams, snapshots, joining;
	 * borrowed, it must outlive the node), NULL: plain. */
	const struct peer_tls *tls;
	/* A backup (GET /snapshot) to start a new cluster from: the data
	 * directory must be empty; NULL: none (store_restore). */
	const char *restore;
};

/* Check the options (--listen may have port 0, --peers and --join
 * addresses need a port from 1 to 65535: -EINVAL before the data
 * directory is touched), open the store (recovering it), join the
 * cluster if asked, and start the node thread. The HTTP listener
 * (raft/http/http.h) is started by the caller afterwards. On failure
 * *errmsg (malloc'd, may be NULL) says why. Any thread. */
int node_open(const struct node_options *opt, struct kv_node **out,
	      char **errmsg);
/* Stop taking part: the node thread ends, then every call it held is
 * answered KV_ESHUTDOWN (on this thread) and new ones are refused.
 * Idempotent. Call it before stopping the HTTP listener, so that no
 * request it suspended is left waiting. Any thread but the node's own:
 * not from a node_done_fn or node_watch callback. */
void node_stop(struct kv_node *n);
/* node_stop if not done yet, then stop the peers and the store, free.
 * After http_stop (the listener uses the node). The thread that opened
 * it, or any thread but the node's own; NULL is fine. */
void node_close(struct kv_node *n);

/* Propose cmd; wait until it is committed and applied here. cmd is
 * borrowed; a zero mtime_ns is set to now (the proposer's clock, so every
 * node records the same mtime). Keys are checked first (-EINVAL,
 * -ENAMETOOLONG), values over KV_MAX_VALUE give -EFBIG. Returns 0 with the
 * command's own outcome in res->err, or -ENOSPC, KV_EFAILED,
 * KV_ENOQUORUM (not applied by the write timeout; unknown whether it
 * will be once the core took it), KV_ESHUTDOWN. Blocks: any thread but
 * the node's own (FUSE's threads, the listener's offloaded handlers). */
int node_propose(struct kv_node *n, struct kv_cmd *cmd, struct kv_result *res);

/* Wait until this node may serve a read from its map: linearizable waits
 * for the leader's commit index to be applied here (ReadIndex); local
 * returns at once. 0, KV_ENOQUORUM, KV_EFAILED or KV_ESHUTDOWN. Blocks:
 * any thread but the node's own. */
int node_read_barrier(struct kv_node *n, bool linearizable);

/* The answer to an asynchronous call: ret as the blocking call would
 * return it, and for a write res (valid during the call only, its txn
 * too: kv_txn_res_ref to keep that; NULL unless
 * ret is 0). Called exactly once, on the node thread, or on the thread in
 * node_stop once the node thread ended; possibly before the call that
 * started it returned. It must not block and must not call the node's
 * blocking calls (the node thread would wait for itself). */
typedef void (*node_done_fn)(void *ctx, int ret, const struct kv_result *res);

/* node_propose without blocking: the same checks at once (their error is
 * returned, as are -ENOSPC, -ENOMEM, KV_EFAILED and KV_ESHUTDOWN, and done
 * is never called), else 0 and done gets what node_propose would have
 * returned, by the same deadline (the node thread watches it, within a
 * tick). cmd is borrowed for the call only. A write that must wait for a
 * leader waits on the node thread and is proposed again once one is
 * known. Any thread. */
int node_propose_async(struct kv_node *n, struct kv_cmd *cmd, node_done_fn done,
		       void *ctx);

/* True if a linearizable read may be served now, without a round or a
 * wait: this node is the leader and only voter of a committed
 * configuration and has applied its commit index (counted as a read
 * barrier). node_read_barrier tries it first; an asynchronous caller
 * tries it before it suspends. Any thread, never blocks. */
bool node_read_now(struct kv_node *n);

/* node_read_barrier (linearizable) without blocking: 0 and done gets 0,
 * KV_ENOQUORUM, KV_EFAILED or KV_ESHUTDOWN later; or KV_ESHUTDOWN,
 * -ENOMEM at once (done is never called). Any thread. */
int node_read_barrier_async(struct kv_node *n, node_done_fn done, void *ctx);

/* Hand a batch of peer messages (from peer_handle_body) to the node
 * thread, which takes ownership. A follower's forwarded writes are
 * checked and re-encoded on the calling thread first. 0, or
 * -EBUSY/-ENOMEM when it is dropped (a network may drop messages; Raft
 * resends). Any thread (the listener's, in practice); never blocks on
 * the node thread. bytes is the batch's encoded size, counted as received
 * from its sender (/status peers, /metrics). */
struct raft_message;
int node_deliver(struct kv_node *n, struct raft_message *msgs, size_t count,
		 size_t bytes);

/* The address this node listens on, "HOST:PORT": --listen, or its own
 * address in --peers, or 127.0.0.1:7001. Valid until node_close. Any
 * thread. */
const char *node_listen(const struct kv_node *n);
/* The data directory, as given in node_options. */
const char *node_data_dir(const struct kv_node *n);

/* The cluster id peers must present (header X-Kvfs-Cluster), the token
 * this node presents (X-Kvfs-Token; it changes only in
 * node_reload_tokens: a thread that may race one takes node_token_copy),
 * this node's id (fixed until node_close), and the leader as this node
 * knows it (id 0 and "" if unknown; addr, may be NULL, has room for cap
 * bytes: 64 hold any address). Any thread: the leader is a copy the node
 * thread published at the end of its latest turn. */
const char *node_cluster_id(const struct kv_node *n);
const char *node_token(const struct kv_node *n);
/* Copy the token this node presents into buf (257 bytes:
 * PEER_ID_MAX + 1). Any thread. */
void node_token_copy(struct kv_node *n, char *buf);
/* True if got (an X-Kvfs-Token header, NULL if missing) is one of the
 * tokens this node accepts, compared in constant time. Any thread. */
bool node_token_check(struct kv_node *n, const char *got);
/* Read the --cluster-token file again (SIGHUP): the tokens accepted and
 * the one presented change at once, and the peer streams open again with
 * it. Without a file, nothing (0). A bad file keeps the tokens as they
 * were: -EINVAL / -errno with *errmsg (malloc'd) naming the file and the
 * line. Any thread but the node's. */
int node_reload_tokens(struct kv_node *n, char **errmsg);
uint64_t node_id(const struct kv_node *n);
uint64_t node_leader(struct kv_node *n, char *addr, size_t cap);

/* ---- Membership (one server at a time, raft.h) ---- */

/* GET /cluster/members: {"leader":ID,"members":[{"id":N,"address":"H:P",
 * "role":"voter"|"learner"}, ...]} as this node knows them (the node
 * thread's latest published configuration). *out malloc'd, the caller
 * frees. 0 or -ENOMEM. Any thread. */
int node_members_json(struct kv_node *n, char **out);

/* Change the membership through the log, on the leader, and wait until
 * the change is applied here. NODE_MEMBER_ADD adds id at addr as a
 * learner, which the leader promotes to voter once it has caught up;
 * NODE_MEMBER_REMOVE removes id (the leader too: it steps down once the
 * change commits). 0, KV_ENOTLEADER (see node_leader), -EBUSY (another
 * change is under way: retry), -EEXIST (id is a member), -ENOENT (id is
 * not one), -EINVAL (bad id or address, or removing the last voter),
 * KV_ENOQUORUM (not applied within the write timeout: outcome unknown),
 * KV_EFAILED, KV_ESHUTDOWN. Blocks: any thread but the node's own. */
enum node_member_op {
	NODE_MEMBER_ADD = 1,
	NODE_MEMBER_REMOVE,
};
int node_change_member(struct kv_node *n, enum node_member_op op, uint64_t id,
		       const char *addr);

/* ---- Leadership (§3.10 of Ongaro's dissertation) ---- */

/* Hand leadership from this node (the leader) to voter id, 0 for the
 * voter with the longest log among those heard from lately, and wait
 * until another member leads: 0 with *leader (may be NULL) its id (this
 * node's own if id is this node) and addr (may be NULL; cap bytes, 64
 * hold any) its address. Meanwhile writes wait (they go to the
 * new leader). Errors: KV_ENOTLEADER (see node_leader), -ENOENT (id is not
 * a member), -EINVAL (id is a learner; or 0 and there is no other voter),
 * -EBUSY (another transfer is under way), -ETIMEDOUT (the target did not
 * take over within an election timeout: abandoned, this node still
 * leads), KV_ENOQUORUM (no leader known within timeout_ms, 0: the write
 * timeout), KV_EFAILED, KV_ESHUTDOWN. Blocks: any thread but the node's
 * own. */
int node_transfer_leader(struct kv_node *n, uint64_t id, int timeout_ms,
			 uint64_t *leader, char *addr, size_t cap);
/* Before a clean stop: if this node leads, hand leadership to the voter
 * with the longest log, trying for at most two election timeouts (2 s),
 * then give followers a moment to send their writes to the new leader;
 * logged either way, never an error (the stop goes on). Call it before
 * node_stop. Blocks: any thread but the node's own. */
void node_handover(struct kv_node *n);

/* The store, for reads after node_read_barrier. Fixed until node_close.
 * Any thread. */
struct store *node_store(struct kv_node *n);
/* Why this member cannot write its log now, or 0: the store's write error
 * (a stall on a full disk, a failed write or sync), or -ENOSPC when the
 * log has less room than one more write may need and the file system no
 * room for a new segment (what a PUT is refused with, 507). *since_ms
 * (monotonic ms, 0 if not known) when it began. The same test the node
 * thread makes once a tick to stand down (writable.c), made at the
 * call: /health says so as soon as a write has been refused. Any
 * thread. */
int node_write_error(struct kv_node *n, uint64_t *since_ms);

/* The milliseconds lease l (store_leases, store_lease_get) has left as
 * this node counts them: from when it applied the lease's rev (or, on a
 * leader, from its office plus an election timeout, if that is later).
 * The leader's count decides; a follower's is an estimate. Any thread. */
int64_t node_lease_remaining_ms(struct kv_node *n, const struct store_lease *l);

/* The body of GET /status, JSON in *out (malloc'd, the caller frees).
 * 0, -ENOMEM or store_status's error. Blocks on the store's owner thread
 * (store_status): any thread but that one and the node's. */
int node_status_json(struct kv_node *n, char **out);

/* Register the callback run after each applied change to a key (for the
 * mount's cache invalidation), and done (may be NULL), run once after
 * each chunk of applied entries that had changes, before their writers
 * are answered; NULLs to remove (once node_watch returns, the old
 * callbacks are not running and will not run). Both run on the node
 * thread (store_apply), cb while the store holds its map's write lock:
 * they must not block, nor call the store or the node. node_watch
 * itself: any thread, but not from the callbacks. */
void node_watch(struct kv_node *n,
		void (*cb)(void *ctx, const char *key, size_t klen),
		void (*done)(void *ctx), void *ctx);

/* A chunk of a snapshot file a leader sends (POST /raft/snapshot,
 * snapxfer.h): appended to the data directory's incoming file; *next is
 * the offset the receiver expects next. 1 when the file is complete and
 * verified (it then waits for the snapshot message that installs it), 0,
 * or the errors of snapxfer_recv_chunk with why filled. Blocks on the
 * disk: any thread but the node's own (the listener's offloaded
 * handlers; chunks are serialized inside). */
struct snapxfer_chunk;
int node_snapshot_chunk(struct kv_node *n, const struct snapxfer_chunk *c,
			uint64_t *next, char *why, size_t why_len);

#endif
