/* log_mem.h - the core's in-memory log (log_mem.c).
 *
 * Entries snap_index+1 .. snap_index+n, each holding its data shared
 * (raft.h, struct raft_entry), after the
 * compaction point (snap_index, snap_term). The bottom of the core: it
 * knows nothing of terms' meaning, roles or messages. Indexes passed to
 * the mutators must lie within the log (asserted); the queries accept any
 * index and answer 0/NULL outside it. */
#ifndef KV_RAFT_LOG_MEM_H
#define KV_RAFT_LOG_MEM_H

#include "raft.h"

struct raft_log {
	struct raft_entry *ents; /* entry i at ents[i - snap_index - 1] */
	size_t n, cap;
	uint64_t snap_index, snap_term;
	uint64_t bytes; /* the data bytes of ents[0..n) */
};

/* An empty log that starts after (snap_index, snap_term). */
void mlog_init(struct raft_log *l, uint64_t snap_index, uint64_t snap_term);
/* Free every entry; l is empty afterwards (mlog_init to reuse it). */
void mlog_close(struct raft_log *l);
/* Index of the last entry, snap_index if none. */
uint64_t mlog_last_index(const struct raft_log *l);
/* Term of the last entry, snap_term if none. */
uint64_t mlog_last_term(const struct raft_log *l);
/* Term at index; snap_term at snap_index; 0 if compacted or past the end
 * (§5.3: 0 never matches a real term, which start at 1). */
uint64_t mlog_term(const struct raft_log *l, uint64_t index);
/* The entry at index (borrowed, valid until the log changes), or NULL if
 * compacted or past the end. */
const struct raft_entry *mlog_get(const struct raft_log *l, uint64_t index);
/* Append e at last+1: its data by a new reference if shared, else copied
 * into a buffer of the log's own. Requires e->index == last+1
 * and e->term >= the last term (Log Matching, §5.3). 0 or -ENOMEM (the log
 * is unchanged). */
int mlog_append(struct raft_log *l, const struct raft_entry *e);
/* The entries sharing b get bytes of their own (copied), and drop their
 * references to it. 0 or -ENOMEM (some may still share b). */
int mlog_own(struct raft_log *l, const struct raft_buf *b);
/* Drop entries >= index, a conflicting suffix (Figure 2 AppendEntries
 * step 3). Requires index > snap_index. */
void mlog_truncate(struct raft_log *l, uint64_t index);
/* Drop entries <= index, which a snapshot (or the caller's own durable,
 * applied copy) now covers (§7). Requires snap_index < index <= last.
 * The array shrinks once it is mostly empty. */
void mlog_compact(struct raft_log *l, uint64_t index);
/* Drop everything: the log now starts after (index, term), an installed
 * snapshot (§7 "discard the entire log"). */
void mlog_reset(struct raft_log *l, uint64_t index, uint64_t term);
/* Entries [lo, hi] with their data borrowed from the log (only the
 * array is new, freed with free): valid until the log drops or truncates
 * them. *out = NULL if hi < lo. 0 or -ENOMEM. */
int mlog_view(const struct raft_log *l, uint64_t lo, uint64_t hi,
	      struct raft_entry **out);
/* Copy entries [lo, hi] (data copied: plain entries) into a new array the
 * caller frees with mlog_entries_free; *out = NULL if hi < lo. Requires
 * the range within the log. 0 or -ENOMEM. */
int mlog_copy(const struct raft_log *l, uint64_t lo, uint64_t hi,
	      struct raft_entry **out);
/* The same with the data shared: each entry a new reference to the log's
 * buffer (for messages, which outlive the turn), no bytes copied. */
int mlog_share(const struct raft_log *l, uint64_t lo, uint64_t hi,
	       struct raft_entry **out);
/* Release n entries (raft_entry_release), then free the array (NULL is
 * fine). */
void mlog_entries_free(struct raft_entry *ents, size_t n);
/* The largest index c in [snap_index, limit] such that dropping the
 * entries up to c leaves at most keep_entries entries up to limit and
 * at most keep_bytes of data in the whole log, or limit if no c does;
 * snap_index if nothing need go; *drop the data bytes up to it.
 * O(entries dropped). */
uint64_t mlog_trail_cut(const struct raft_log *l, uint64_t limit,
			uint64_t keep_entries, uint64_t keep_bytes,
			uint64_t *drop);
/* §5.3 fast backtracking: the largest index <= index whose term is <=
 * term, stopping at snap_index. */
uint64_t mlog_find_conflict_by_term(const struct raft_log *l, uint64_t index,
				    uint64_t term);

#endif
