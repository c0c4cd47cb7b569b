/* log.h - the replicated log on disk (internal to the store module).
 *
 * JSON Lines in mmap'd segment files, one entry a line with a checksum.
 * Segments are preallocated with posix_fallocate so that writing through
 * the mapping never hits a hole on a full disk (SIGBUS); growth fails with
 * -ENOSPC instead. Only the store-owner thread calls these, except
 * log_sync_run, which the sync thread calls. */
#ifndef KV_STORE_LOG_H
#define KV_STORE_LOG_H

#include <stddef.h>
#include <stdint.h>

struct log;

/* One entry. data is the command's JSON text (one line, no newline). When
 * returned by log_get, data points into the mapping and stays valid until
 * the next call that changes the log. */
struct log_entry {
	uint64_t index;
	uint64_t term;
	uint8_t type; /* 0 normal command, 1 no-op, 2 configuration (raft) */
	const char *data;
	size_t len;
};

/* Open the log in dir (creating it if empty), replaying the segments: a
 * torn last line is cut off; damage anywhere else returns KV_ECORRUPT with
 * *errmsg naming the file and offset. Unknown version: KV_EVERSION.
 * segment_size 0 means the default (64 MiB). */
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
uint64_t log_bytes(const struct log *log);

/* Write e into the mapping (not yet durable). e->index must be last + 1,
 * or <= last, in which case the suffix from e->index is dropped first
 * (Raft conflict truncation). Returns 0, -ENOSPC, -EINVAL, -errno. */
int log_append(struct log *log, const struct log_entry *e);

/* Drop entries from index on (index > first). */
int log_truncate(struct log *log, uint64_t index);

/* Make every appended entry durable. log_sync_prepare captures what must
 * be synced (dup'd descriptors) so that log_sync_run can run on another
 * thread while the owner goes on appending; log_sync_done releases it.
 * log_sync does all three. A failed sync is reported as -errno; the caller
 * treats it as fatal and sticky. */
struct log_sync;
int log_sync_prepare(struct log *log, struct log_sync **out);
int log_sync_run(struct log_sync *s);
void log_sync_done(struct log_sync *s);
int log_sync(struct log *log);

/* Read the entry at index (first <= index <= last). -ENOENT otherwise,
 * KV_ECORRUPT if its checksum fails. */
int log_get(struct log *log, uint64_t index, struct log_entry *out);

/* Compaction: forget entries <= index (a snapshot covers them); whole
 * segments are deleted once every entry in them is covered. */
int log_compact(struct log *log, uint64_t index, uint64_t term);

/* Discard everything and start empty after (index, term), e.g. after
 * installing a snapshot that is ahead of the log. */
int log_reset(struct log *log, uint64_t index, uint64_t term);

#endif
