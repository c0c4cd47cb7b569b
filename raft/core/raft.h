/* raft.h - the pure Raft core: the public API.
 *
 * The core is a deterministic state machine with no I/O, threads, clock or
 * randomness of its own (etcd's raft and cowsql/raft are built this way).
 * Events go in through one function each (raft_tick, raft_step,
 * raft_propose, raft_persisted, raft_read_index, ...); everything the caller
 * must do comes out in one struct raft_update (raft_update_get). Time is a
 * count of ticks, randomness a seed given at raft_new. The node thread
 * (raft/node/) is the only caller in production; tests/raft/core/ drives
 * many cores in a simulated cluster. Section numbers (§5.2 ...) refer to the
 * Raft paper (Ongaro & Ousterhout, "In Search of an Understandable Consensus
 * Algorithm", extended version) and "§4.x diss." to Ongaro's dissertation.
 *
 * THE CALLER'S ORDER, for each struct raft_update u:
 *  1. If u.has_snapshot: install the snapshot u.snapshot (its data came out
 *     of band with the RAFT_MSG_SNAPSHOT message that caused it) and drop the
 *     whole stored log; durably. Then call raft_persisted(r, u.snapshot.index,
 *     u.snapshot.term).
 *  2. If u.hard_state_changed: persist (term, vote) and SYNC it, before any
 *     message of this update leaves the node (§5.1: "updated on stable
 *     storage before responding to RPCs").
 *  3. Send u.msgs. They may leave before u.entries are durable: the core
 *     never acknowledges an entry (to a leader, or to itself as leader)
 *     before raft_persisted says it is durable, so a leader may send appends
 *     while it syncs its own log.
 *  4. Write u.entries: first delete every stored entry with index >=
 *     u.entries[0].index (a conflict truncation, §5.3; usually none), then
 *     append them in order. When they are durable (possibly later, possibly
 *     several updates at once), call raft_persisted(r, index, term) with the
 *     last durable entry. Writes must reach the disk in update order.
 *  5. Apply u.committed in order. They are committed and durable locally.
 *  6. u.reads: a linearizable read with ctx may be served once the applied
 *     index is >= its index (err == 0), or must fail (err < 0).
 *  7. raft_update_free(&u).
 * Steps 3-7 may overlap with later events (the core keeps no pointer into
 * an update), but entries must be written in the order they were handed out.
 *
 * Memory: everything reachable from a raft_update (entries, their data,
 * messages, the entries inside messages) is owned by the update and freed
 * by raft_update_free (with raft_options.borrow_entries, the data of
 * entries and committed is the core's: see raft_update.borrowed). To keep one
 * message beyond it, copy the struct and set the original's type to
 * RAFT_MSG_NONE; then free the copy with raft_message_clear. Arguments to the
 * core (messages to raft_step, data to raft_propose) are borrowed: the core
 * copies what it keeps, or takes a reference where the data is shared (see
 * struct raft_entry: a message's entries are shared with the core's log,
 * so they are freed with raft_message_clear, on any thread).
 *
 * Threads: a struct raft is not thread-safe; one thread owns it. */
#ifndef KV_RAFT_H
#define KV_RAFT_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Errors: 0 or a negative code. RAFT_ENOTLEADER has the value of
 * KV_ENOTLEADER (store/kv/kv.h) so the node layer passes it through; the
 * core does not include kv.h (it includes nothing outside raft/core/), so
 * the two are kept equal by hand. */
#define RAFT_ENOTLEADER (-1100)	  /* not the leader: see raft_leader() */
#define RAFT_ENOMEM	(-ENOMEM) /* out of memory; the core is unchanged */
#define RAFT_EINVAL	(-EINVAL) /* bad argument (unknown id, bad index) */
#define RAFT_EBUSY	(-EBUSY) /* leader transfer or config change going on */

#define RAFT_NONE 0 /* no node id (ids are >= 1) */

enum raft_role {
	RAFT_FOLLOWER = 0,
	RAFT_PRE_CANDIDATE, /* asking for pre-votes (§9.6 diss.) */
	RAFT_CANDIDATE,
	RAFT_LEADER,
};

enum raft_entry_type {
	RAFT_ENTRY_NORMAL = 1, /* data: the caller's command, opaque */
	RAFT_ENTRY_NOOP = 2,   /* appended by a new leader (§5.4.2, §8) */
	RAFT_ENTRY_CONFIG = 3, /* data: raft_config_encode() text */
};

/* An entry's data is either plain (buf NULL: data is malloc'd and owned
 * by whoever holds the entry, freed with free) or shared (buf set: data
 * belongs to buf, an immutable buffer with a reference count, and the
 * entry holds one reference). Shared data is never written to; whoever
 * holds a shared entry drops its reference with raft_entry_release, on
 * any thread (the count is atomic), and the last one frees the data.
 *
 * Who shares: the core's log holds every entry shared. Entries given to
 * the core shared (raft_propose_entry, a message's entries in raft_step,
 * raft_restore's) are kept by taking a reference, not by copying: a
 * 16 MiB entry is then one buffer for the proposer, the core's log and
 * every follower's append. The entries of the appends the core sends
 * (u.msgs) are shared with its log; those of u.entries and u.committed
 * are plain copies (or the log's own, borrowed: raft_update.borrowed).
 * Code that may hold a shared entry frees it with raft_entry_release or
 * raft_message_clear, never with free(data). */
struct raft_buf;

struct raft_entry {
	uint64_t term;
	uint64_t index;
	enum raft_entry_type type;
	void *data; /* plain: malloc'd and owned; shared: buf's */
	size_t len;
	struct raft_buf *buf; /* NULL: plain; else one reference to it */
};

/* Make e's data shared: plain data (malloc'd, owned by e) is adopted by a
 * new buffer holding one reference, which e keeps; no copy. Shared
 * already, or no data: nothing to do. 0 or RAFT_ENOMEM (e unchanged). */
int raft_entry_share(struct raft_entry *e);
/* A word about a shared entry's bytes that their holder attaches where
 * it shares them (the node: a checksum of the bytes, computed on the
 * thread that received them, so the node thread need not read them
 * again). It travels with the buffer to every holder; the core never
 * reads it. Set it once, before the entry is handed on (the hand-off
 * orders it for the readers); a plain entry takes none. 0 if none. */
void raft_entry_set_note(struct raft_entry *e, uint64_t note);
uint64_t raft_entry_note(const struct raft_entry *e);
/* *dst = *src with data of its own: a new reference if src is shared,
 * else a copy of the bytes (plain). 0 or RAFT_ENOMEM (*dst zeroed). */
int raft_entry_dup(struct raft_entry *dst, const struct raft_entry *src);
/* Free e's data or drop its reference; data, len and buf are zeroed. */
void raft_entry_release(struct raft_entry *e);
/* A buffer of bytes the caller keeps (many entries' data in one block of
 * its own, a restart's log read back): it holds refs references, one for
 * each entry the caller sets buf to it and one more if the caller keeps
 * one; release(ctx) is called, on whichever thread drops the last one,
 * once they are all gone. It takes no note (raft_entry_note is 0). NULL
 * if out of memory. */
struct raft_buf *raft_buf_foreign(size_t refs, void (*release)(void *ctx),
				  void *ctx);
/* Drop a reference to b taken outside an entry (NULL: nothing). */
void raft_buf_unref(struct raft_buf *b);

/* ---- Configuration (§6; single-server changes, §4.1 diss.) ---- */

#define RAFT_MAX_SERVERS 16
#define RAFT_ADDR_MAX	 64

enum raft_server_role {
	RAFT_VOTER = 1,
	RAFT_LEARNER = 2, /* receives the log, never votes nor counts (§4.2.1
			     diss.) */
};

struct raft_server {
	uint64_t id;
	enum raft_server_role role;
	char addr[RAFT_ADDR_MAX]; /* "host:port", carried, never read */
};

struct raft_config {
	unsigned n;
	struct raft_server servers[RAFT_MAX_SERVERS];
};

/* Encode c as text ("raftconf 1\n" then "id role addr\n" lines) into
 * buf[0..cap). Returns the length (which may exceed cap: then nothing
 * usable was written) or RAFT_EINVAL. */
int raft_config_encode(const struct raft_config *c, char *buf, size_t cap);
/* Decode text from raft_config_encode. 0 or RAFT_EINVAL. */
int raft_config_decode(const void *buf, size_t len, struct raft_config *out);
/* The server with id, or NULL. */
const struct raft_server *raft_config_get(const struct raft_config *c,
					  uint64_t id);

/* What a snapshot covers: every entry up to index (of term) is in it, and
 * conf is the configuration at index. */
struct raft_snapshot_meta {
	uint64_t index;
	uint64_t term;
	struct raft_config conf;
};

/* ---- Messages: plain structs of numbers, for raft/peer/ to serialize ---- */

enum raft_msg_type {
	RAFT_MSG_NONE = 0,
	/* AppendEntries (§5.3): index = prev log index, log_term = prev log
	 * term, entries, commit = leader's commit. */
	RAFT_MSG_APPEND,
	/* index = the follower's match (success) or the rejected prev index
	 * (reject); on reject hint_index/hint_term say where to probe next. */
	RAFT_MSG_APPEND_RESP,
	/* RequestVote (§5.2, §5.4.1): index/log_term = candidate's last log
	 * index/term; transfer = sent after TimeoutNow (bypasses the lease). */
	RAFT_MSG_VOTE,
	RAFT_MSG_VOTE_RESP, /* reject */
	/* Pre-Vote (§9.6 diss.): like VOTE for term+1, but nobody changes
	 * term or vote. */
	RAFT_MSG_PREVOTE,
	RAFT_MSG_PREVOTE_RESP, /* reject */
	/* commit = min(follower's match, leader's commit); ctx = the leader's
	 * latest ReadIndex round, echoed in the response. */
	RAFT_MSG_HEARTBEAT,
	RAFT_MSG_HEARTBEAT_RESP, /* ctx */
	/* A follower asks the leader for a read index (§6.4): ctx. */
	RAFT_MSG_READ_INDEX,
	RAFT_MSG_READ_INDEX_RESP, /* ctx, index; reject if refused */
	/* InstallSnapshot (§7): snapshot meta; the data goes out of band. The
	 * answer is an APPEND_RESP with index = snapshot.index. */
	RAFT_MSG_SNAPSHOT,
	/* Leader transfer (§3.10 diss.): start an election now. */
	RAFT_MSG_TIMEOUT_NOW,
	/* Writes a follower forwards to the leader: ctx, entries (type
	 * NORMAL, data only; term and index 0). The node layer handles
	 * these two, never the core (raft_step drops them); term is 0. */
	RAFT_MSG_PROPOSE,
	/* The leader's answer: ctx; on success the first hint_index entries
	 * were appended at index, index + 1, ... in term log_term (fewer
	 * than sent only if it ran out of memory: the rest were not). reject:
	 * none was appended; hint_term says why: 0 not the leader (or busy:
	 * retry), ENOSPC its disk is full, EINVAL a command it refused. */
	RAFT_MSG_PROPOSE_RESP,
};

struct raft_message {
	enum raft_msg_type type;
	uint64_t from, to, term;
	uint64_t index, log_term, commit, ctx;
	uint64_t hint_index, hint_term;
	bool reject, transfer;
	struct raft_entry *entries; /* APPEND and PROPOSE only */
	size_t n_entries;
	struct raft_snapshot_meta snapshot; /* SNAPSHOT only */
};

/* Free the entries a message owns and zero it. */
void raft_message_clear(struct raft_message *m);
const char *raft_msg_type_name(enum raft_msg_type t);

/* ---- The update ---- */

struct raft_read {
	uint64_t ctx;	/* as given to raft_read_index */
	uint64_t index; /* serve once applied >= index */
	int err;	/* 0, or RAFT_ENOTLEADER: leadership lost, retry */
};

struct raft_update {
	/* Current soft state, always filled. */
	enum raft_role role;
	uint64_t leader;
	uint64_t commit;

	bool hard_state_changed;
	uint64_t term, vote;

	bool has_snapshot;
	struct raft_snapshot_meta snapshot; /* to install (step 1) */

	struct raft_entry *entries; /* to persist (step 4) */
	size_t n_entries;

	struct raft_message *msgs; /* to send (step 3) */
	size_t n_msgs;

	struct raft_entry *committed; /* to apply (step 5) */
	size_t n_committed;

	struct raft_read *reads; /* step 6 */
	size_t n_reads;

	/* entries' and committed's data are the core's (borrow_entries):
	 * valid until the next call into the core other than raft_persisted;
	 * only the arrays are the update's */
	bool borrowed;
};

/* ---- Lifetime ---- */

struct raft_options {
	uint64_t id;		  /* this node, >= 1 */
	unsigned election_ticks;  /* election timeout, randomized in [e, 2e);
				     0: 10 */
	unsigned heartbeat_ticks; /* 0: 1; must be < election_ticks */
	unsigned max_inflight;	  /* appends in flight per follower; 0: 32 */
	size_t max_batch_entries; /* per append; 0: 256 */
	size_t max_batch_bytes;	  /* per append (data bytes); 0: 1 MiB */
	/* Entry bytes a follower is assumed to take (receive, decode, make
	 * durable, answer) per heartbeat interval at least; 0: 4 MiB. An
	 * append not yet answered is resent only after its bytes had that
	 * time (on top of the usual three heartbeats in REPLICATE), so a big
	 * entry still on its way is not sent again behind itself. */
	size_t resend_bytes_per_heartbeat;
	/* The update's entries and committed point at the core's own data
	 * (raft_update.borrowed) instead of copies: for a caller that is
	 * done with them before it calls the core again (but for
	 * raft_persisted), as the node thread is. Saves two copies of every
	 * entry; a 16 MiB one took 50 to 250 ms of a turn to copy. */
	bool borrow_entries;
	bool disable_pre_vote;	   /* default: Pre-Vote on */
	bool disable_check_quorum; /* default: check-quorum and lease on */
	uint64_t seed;		   /* drives the election timeout PRNG */
};

/* What the caller recovered from its disk. Zeroed = a fresh node whose
 * initial configuration is snapshot.conf (bootstrap). */
struct raft_restore {
	uint64_t term, vote;
	struct raft_snapshot_meta snapshot; /* index 0 if none */
	const struct raft_entry *entries;   /* durable entries after it,
					       borrowed (copied) */
	size_t n_entries;
	uint64_t applied; /* entries the state machine already applied (all
			     committed); >= snapshot.index */
	/* 0, or the index of an entry the store dropped because its line was
	 * damaged: complete, but with a bad checksum (a flipped byte, not a
	 * torn write). This node may have acknowledged that entry to a leader,
	 * which may have counted it towards a commit; voting for a candidate
	 * that lacks it could elect a leader without a committed entry
	 * (§5.4.1 relies on every voter's log keeping what it acknowledged).
	 * So while raft_last_index() < abstain_until the core grants no vote
	 * and no pre-vote, and never campaigns (election timeouts pass, a
	 * TimeoutNow is ignored); it still follows a leader and appends. Once
	 * a leader's entries (or its snapshot) bring the log to the index, it
	 * behaves normally: a leader's log holds every committed entry, so the
	 * entry now at that index is the committed one if there was one.
	 * Not voting is always safe; only liveness can suffer: a majority must
	 * be able to elect a leader without this node (with no other voter it
	 * never leads again; there the entry is lost either way). After a
	 * restart the damaged line is gone, so the caller must keep the value
	 * (beside the hard state) and pass it again until raft_last_index()
	 * reaches it. */
	uint64_t abstain_until;
};

struct raft;

/* Create a core as a follower. Returns 0, RAFT_ENOMEM, or RAFT_EINVAL
 * (id 0, heartbeat >= election, entries not contiguous after the
 * snapshot, applied beyond the log). */
int raft_new(const struct raft_options *opt, const struct raft_restore *rs,
	     struct raft **out);
void raft_free(struct raft *r);

/* ---- Events ---- */

/* One unit of time passed: election timeout (§5.2), heartbeats, check
 * quorum, transfer timeout. */
void raft_tick(struct raft *r);

/* A message from a peer arrived (borrowed). Messages not for us, from an
 * old term, stale or duplicated are dropped or answered per the rules of
 * §5.1: terms order everything. Returns 0 or RAFT_ENOMEM (the message is
 * then dropped; the network may drop messages anyway). */
int raft_step(struct raft *r, const struct raft_message *m);

/* Propose a new entry (the leader appends it, §5.3). data is copied. On
 * success *index and *term name the entry: it was applied if an entry at
 * index with term comes out in u.committed; another term there means it
 * was lost. RAFT_ENOTLEADER on a non-leader (raft_leader() names the leader
 * to forward to, RAFT_NONE if unknown), RAFT_EBUSY during a leader
 * transfer, RAFT_EINVAL for type CONFIG (use raft_change_membership),
 * RAFT_ENOMEM. */
int raft_propose(struct raft *r, enum raft_entry_type type, const void *data,
		 size_t len, uint64_t *index, uint64_t *term);
/* The same for e's type and data (e->index and e->term are ignored): shared
 * data (raft_entry_share) is kept by a new reference, not copied; the
 * caller keeps its own reference and releases it when it likes. */
int raft_propose_entry(struct raft *r, const struct raft_entry *e,
		       uint64_t *index, uint64_t *term);

/* Entries up to index (whose term is term) are durable on this node, and so
 * is every entry before it. A stale report (the entry at index has another
 * term now, after a truncation) is ignored. */
void raft_persisted(struct raft *r, uint64_t index, uint64_t term);

/* Ask for a linearizable read (§6.4 ReadIndex). On the leader, once it has
 * committed an entry of its term, the commit index is confirmed by a quorum
 * heartbeat round (one round serves every read that arrived before it); on
 * a follower the leader is asked. The answer comes in u.reads with ctx;
 * a read may also never be answered (message lost): the caller times out.
 * RAFT_ENOTLEADER if no leader is known. */
int raft_read_index(struct raft *r, uint64_t ctx);

/* True when a read needs no round: this node is the leader, the only voter
 * of a committed configuration, and has committed an entry of its term.
 * No other leader can then exist, and the commit index is already what a
 * round would confirm. False again before a configuration change takes
 * effect (it takes effect on append, in raft_change_membership's turn). */
bool raft_read_is_local(const struct raft *r);

/* True when a voter's READ_INDEX in our term may be answered at once with
 * the commit index, as the core does (readindex.c, asker_confirms): this
 * node is the leader of a committed configuration in which it and any one
 * other voter are a quorum (two or three voters), and has committed an
 * entry of its term. The node answers such requests on the thread that
 * receives them while this holds (raft/node/read_fast.c); like
 * raft_read_is_local it is false from the turn a configuration change is
 * appended. */
bool raft_read_by_asker(const struct raft *r);

/* Hand leadership to voter id (§3.10 diss.): bring its log up to ours,
 * then send it TimeoutNow; it campaigns at once, and its vote requests
 * carry `transfer`, which gets them past the other voters' leases (the
 * only disruptive vote that is allowed). id RAFT_NONE: the voter with the
 * longest log among those that answered within two heartbeat intervals
 * (or any voter). Proposals get
 * RAFT_EBUSY until the transfer ends: a new leader (this node becomes a
 * follower), or an election timeout without one (abandoned; raft_transferee
 * is RAFT_NONE again while this node still leads). Returns 0 (started, or
 * this very transfer is under way, or id is this node and nothing is),
 * RAFT_ENOTLEADER, RAFT_EINVAL (id not a voter; RAFT_NONE and no other
 * voter), RAFT_EBUSY (a transfer to another member is under way). */
int raft_transfer_leadership(struct raft *r, uint64_t id);
/* The target of the transfer under way, RAFT_NONE if none (or not
 * leader). */
uint64_t raft_transferee(const struct raft *r);

/* May this member stand for election? Default yes. A caller that cannot
 * write its log (a full disk, an I/O error) says no: the core then never
 * campaigns (election timeouts pass, TimeoutNow is ignored), and a leader
 * hands leadership to the voter raft_transfer_leadership(RAFT_NONE) would
 * pick, again and again, from its next tick; when a transfer is abandoned
 * it steps down (unless it is the only voter: then it stays), so that the
 * others elect one of their own. It still votes (the caller must not send
 * what depends on a hard state it could not save) and follows a leader.
 * Yes again restores the default at once. */
void raft_set_candidacy(struct raft *r, bool may);
bool raft_candidacy(const struct raft *r);

/* Single-server membership change (§4.1 diss.): the new configuration takes
 * effect on every server as soon as it is in its log. One change at a time,
 * and only after the leader committed an entry of its term (RAFT_EBUSY).
 * RAFT_ENOTLEADER; RAFT_EINVAL if the change makes no sense (adding a
 * member, promoting a voter, removing a non-member or the last voter). */
enum raft_conf_op {
	RAFT_CONF_ADD_LEARNER = 1,
	RAFT_CONF_PROMOTE,
	RAFT_CONF_REMOVE,
};
int raft_change_membership(struct raft *r, enum raft_conf_op op, uint64_t id,
			   const char *addr, uint64_t *index);

/* Entries up to index (<= applied, so committed and durable here) need
 * not stay in memory: drop them from the in-memory log (§7). The caller
 * holds them in its state machine (and perhaps its own log on disk); it
 * need not have a snapshot at index yet. Followers whose next entry is
 * gone get a RAFT_MSG_SNAPSHOT at the new compaction point (the index
 * raft_snapshot_index() then returns), so the caller must be able to send
 * a snapshot at that index or later, never an older one (the follower
 * would need entries no one holds in memory). 0 or RAFT_EINVAL. */
int raft_compact(struct raft *r, uint64_t index);
/* The log's entries that share b (raft_buf_foreign) get bytes of their
 * own, so that b's block can go while they stay (a restart's copies, once
 * applied, leave a trail). 0 or RAFT_ENOMEM (try again later). */
int raft_log_own(struct raft *r, const struct raft_buf *b);
/* Where to compact to (raft_compact) to keep a bounded trail of applied
 * entries in memory: the largest index that leaves at most keep_entries
 * applied entries and at most keep_bytes of entry data in the in-memory
 * log (only applied entries are dropped, so the bytes bound gives way to
 * entries not applied yet); raft_snapshot_index() if nothing need go.
 * *drop_bytes: the entry data that would go. O(the entries it would
 * drop). */
uint64_t raft_trail_cut(const struct raft *r, uint64_t keep_entries,
			uint64_t keep_bytes, uint64_t *drop_bytes);
/* The meta of a snapshot at index: its term and the configuration in
 * effect there, for a caller whose snapshot of its state is at index,
 * later than the one the core asked for (RAFT_MSG_SNAPSHOT's): it may
 * send that meta instead, so the follower need not be sent the entries
 * up to index again. 0, or RAFT_EINVAL unless raft_snapshot_index() <=
 * index <= the applied index. */
int raft_snapshot_meta(const struct raft *r, uint64_t index,
		       struct raft_snapshot_meta *out);
/* The data bytes of the entries in the in-memory log (for /status). */
uint64_t raft_log_bytes(const struct raft *r);

/* The snapshot send to id finished (ok) or failed. Call it once per
 * RAFT_MSG_SNAPSHOT handed out. On failure the leader probes again once id
 * answers a heartbeat (and sends a new snapshot if still needed). */
void raft_snapshot_done(struct raft *r, uint64_t id, bool ok);

/* ---- Output ---- */

/* True if there is anything in an update to hand out. */
bool raft_has_update(const struct raft *r);
/* Move everything pending into *u (see THE CALLER'S ORDER). 0 or
 * RAFT_ENOMEM (nothing was moved; try again). */
int raft_update_get(struct raft *r, struct raft_update *u);
void raft_update_free(struct raft_update *u);

/* ---- Inspection ---- */

enum raft_role raft_role(const struct raft *r);
uint64_t raft_id(const struct raft *r);
uint64_t raft_term(const struct raft *r);
uint64_t raft_leader(const struct raft *r);
uint64_t raft_commit_index(const struct raft *r);
uint64_t raft_last_index(const struct raft *r);
uint64_t raft_snapshot_index(const struct raft *r);
/* Term of the entry at index; 0 if compacted or beyond the log. */
uint64_t raft_term_at(const struct raft *r, uint64_t index);
const struct raft_config *raft_config(const struct raft *r);

/* Replication state of one follower as the leader sees it (for /status). */
struct raft_progress_info {
	uint64_t match, next;
	unsigned inflight;
	bool recent_active;
	bool snapshot; /* a snapshot is being sent */
};
/* 0, RAFT_ENOTLEADER, RAFT_EINVAL (unknown id). */
int raft_progress(const struct raft *r, uint64_t id,
		  struct raft_progress_info *out);

#endif
