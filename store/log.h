/* log.h - the replicated log on disk (internal to the store module).
 *
 * JSON Lines in mmap'd segment files, one entry a line with a checksum.
 * Segments are preallocated with posix_fallocate so that writing through
 * the mapping never hits a hole on a full disk (SIGBUS); growth fails with
 * -ENOSPC instead. One thread at a time calls these (the store holds its
 * log lock around each call), except log_sync_run, which the sync thread
 * calls without it. Formats and the durability invariants:
 * docs/log-format.md. */
#ifndef KV_STORE_LOG_H
#define KV_STORE_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct log;

/* One entry. data is the command's JSON text (one line: no '\n', no NUL),
 * stored verbatim; len 0 (data may be NULL) is stored as `null` and reads
 * back as len 0. When returned by log_get, data points into the mapping and
 * stays valid until that entry is dropped (log_truncate or a conflicting
 * log_append at or below its index, log_compact past its segment,
 * log_reset, log_close): segments are mapped once, whole, and never move,
 * so later appends do not invalidate it (the snapshot replica reads
 * committed entries so, without the store's log lock). */
struct log_entry {
	uint64_t index;
	uint64_t term;
	uint8_t type; /* 0 normal command, 1 no-op, 2 configuration (raft) */
	const char *data;
	size_t len;
	/* log_append: set by a caller that read data already (on another
	 * thread): data_crc is kv_crc32c(0, data, len) and data holds no
	 * '\n' and no NUL, so the append reads data only to write it. */
	bool data_checked;
	uint32_t data_crc;
};

/* Open the log in dir (creating it if empty), replaying the segments: a
 * torn last line is cut off; a complete last line that is damaged is cut
 * off too, said on stderr and reported by log_lost_index; damage anywhere
 * else returns KV_ECORRUPT with *errmsg naming the file and offset.
 * Unknown version: KV_EVERSION. segment_size 0 means the default (64 MiB).
 */
int log_open(const char *dir, size_t segment_size, struct log **out,
	     char **errmsg);
void log_close(struct log *log);

/* Indexes: an empty log has first = last + 1. After log_reset(i, t) or
 * compaction, first is the index after the snapshot. */
uint64_t log_first_index(const struct log *log);
uint64_t log_last_index(const struct log *log);
/* Term of the entry at index; also answers for the snapshot's index
 * (log_reset/compact remember it). 0 if unknown. */
uint64_t log_term_at(const struct log *log, uint64_t index);
/* Bytes of the entries first..last as stored (drops with compaction).
 * O(1). */
uint64_t log_bytes(const struct log *log);
/* The index of the entry whose line log_open cut because it was complete
 * (it ended in its newline) but damaged (checksum or syntax), 0 if none:
 * that entry may have been acknowledged, and is gone from this log. */
uint64_t log_lost_index(const struct log *log);

/* Write e into the mapping (not yet durable). e->index must be last + 1,
 * or first..last, in which case the suffix from e->index is dropped first
 * (Raft conflict truncation, see log_truncate). -EINVAL also for a term
 * below the previous entry's or data with '\n' or NUL. -ENOSPC when a new
 * segment cannot be preallocated: nothing changed, retry later. When a
 * segment fills up, the full one is fdatasync'd before the next is created
 * (a -errno from that is a failed sync: fatal). */
int log_append(struct log *log, const struct log_entry *e);

/* Drop entries from index on (first <= index <= last + 1): their bytes
 * are zeroed and later segments deleted, and that is made durable before
 * this returns (fdatasync, directory fsync), so no crash can resurrect
 * them behind newer entries. -EINVAL out of range; -errno is a failed sync. */
int log_truncate(struct log *log, uint64_t index);

/* Bytes an append can still write into the open segment without creating
 * a file (0 when there is none). */
uint64_t log_room(const struct log *log);

/* Make every appended entry durable. log_sync_prepare (owner thread)
 * captures what must be synced: dup'd descriptors of segments written
 * since the last prepare, and of the directory if a segment was created or
 * deleted. log_sync_run (any one thread) fdatasyncs them and touches no
 * state of struct log, so the owner goes on appending meanwhile; when it
 * returns 0, every entry appended before the prepare is durable.
 * log_sync_done (any thread) releases it. log_sync does all three. A
 * failed sync is -errno; the caller treats it as fatal and sticky. */
struct log_sync;
int log_sync_prepare(struct log *log, struct log_sync **out);
int log_sync_run(struct log_sync *s);
void log_sync_done(struct log_sync *s);
int log_sync(struct log *log);

/* Read the entry at index (first <= index <= last). -ENOENT otherwise,
 * KV_ECORRUPT if its checksum fails. */
int log_get(struct log *log, uint64_t index, struct log_entry *out);
/* The same, but an entry the log held when it was opened and still holds
 * (not truncated or reset since) is not checked again: the replay at open
 * checked its line's CRC in this very mapping (the recovery's copies of
 * the log after the db, 160 MB at 700,000 entries). */
int log_get_opened(struct log *log, uint64_t index, struct log_entry *out);
/* The bytes of the lines of entries from..to as stored (clipped to the
 * segments): at least the sum of their data's lengths, found without
 * reading a line. */
size_t log_line_bytes(const struct log *log, uint64_t from, uint64_t to);
/* Give back the mapped pages read so far (log_get's, the replay's): they
 * count in resident memory until then, and a later log_get faults them
 * in again. The entries log_get returned stay readable. */
void log_release(struct log *log);

/* Compaction: forget entries <= index (a snapshot covers them); whole
 * segments are deleted once every entry in them is covered, except the
 * last segment, whose header keeps the log's position across a restart.
 * After a restart, first may therefore be below index + 1 (kept entries).
 * index < first: nothing to do; index > last: log_reset. -EINVAL if term
 * is not the term of the entry at index. */
int log_compact(struct log *log, uint64_t index, uint64_t term);

/* Discard everything and start empty after (index, term), e.g. after
 * installing a snapshot that is ahead of the log. The deletions are made
 * durable (directory fsync) before it returns; an empty segment records
 * (index, term) for a restart (if the disk is full, the next append
 * creates it). */
int log_reset(struct log *log, uint64_t index, uint64_t term);

#endif
