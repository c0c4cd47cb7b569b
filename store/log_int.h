/* log_int.h - what the files of the log share (private to store/log*.c).
 *
 * The log is three files: log_format.c (the line formats: checksums,
 * parsing), log_replay.c (reading the segments back at open: the torn-tail
 * and damaged-tail rules) and log.c (segments, appends, truncation,
 * compaction, syncs). One struct log has one owner at a time (the store
 * holds log_mu around every call but log_sync_run); nothing here locks.
 * The formats and the numbered durability invariants are in
 * docs/log-format.md. */
#ifndef KV_STORE_LOG_INT_H
#define KV_STORE_LOG_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"

#define LOG_VERSION	    1
#define LOG_DEFAULT_SEGMENT (64u * 1024u * 1024u)
/* The largest segment size a log may be opened with. A segment holds at
 * most this plus one entry (KV_MAX_VALUE and its line), so entry offsets
 * fit in 32 bits; a segment file of 4 GiB or more is refused at open. */
#define LOG_MAX_SEGMENT (1u << 30)
#define SEG_NAME_LEN	30  /* "log-" + 20 digits + ".jsonl" */
#define HDR_MAX		256 /* a header line is shorter than this */

/* One segment file, mapped whole. */
struct seg {
	char name[SEG_NAME_LEN + 1];
	int fd;
	unsigned char *map;
	size_t map_len; /* mapped bytes: the file size */
	size_t limit;	/* bytes we may write: fallocated, <= map_len */
	size_t used;	/* header and entries; zeros from here on */
	uint64_t first; /* index of the first entry */
	uint64_t prev_term;
	uint64_t count;
	uint64_t cap;
	uint32_t *off; /* off[k]: offset of entry first + k */
	/* The terms, as runs: entries k >= runs[i].k (up to the next run's)
	 * have runs[i].term. A term changes only at an election, so a
	 * segment has one run or a few, not a term an entry. */
	struct seg_run {
		uint64_t k, term;
	} * runs;
	size_t nruns, capruns;
	bool dirty; /* written since the last log_sync_prepare */
	/* The mapping's pages below this offset were given back
	 * (seg_release): not counted in the process's resident memory. */
	size_t released;
};

struct log {
	char *dir;
	int dirfd;
	size_t seg_size;
	size_t page;
	struct seg **segs; /* ascending by first */
	size_t nsegs, capsegs;
	uint64_t first, last; /* logical: entries first..last */
	uint64_t prev_term;   /* term of first - 1 (snapshot or header) */
	uint64_t bytes;	      /* log_bytes: entries first..last as stored */
	uint64_t lost_index;  /* log_lost_index: set by the replay */
	uint64_t checked;     /* lines up to here checked at open, unchanged */
	bool dir_dirty;	      /* a segment was created since the last sync */
};

/* One entry line as parsed (data points into the line). */
struct log_line {
	uint64_t index, term;
	uint8_t type;
	const char *data;
	size_t len;
};

/* ---- log_format.c: the line formats ---- */

/* The checksum of an entry: CRC-32C over index (8 bytes little-endian),
 * term (8 bytes little-endian), type (1 byte) and the command bytes. */
uint32_t logfmt_crc(uint64_t index, uint64_t term, uint8_t type,
		    const char *data, size_t len);
/* The start of an entry line, up to and including `"c":`, into buf[n]
 * (128 bytes are always enough); its length. */
int logfmt_prefix(char *buf, size_t n, const struct log_entry *e);
/* Parse one entry line p[0..n) (without its '\n') and check its CRC:
 * NULL, or why it is bad ("unparsable entry", "entry checksum mismatch"). */
const char *logfmt_parse_line(const unsigned char *p, size_t n,
			      struct log_line *out);
/* The same for a line whose CRC was checked already (by the replay at
 * open, in this mapping): the fields alone. */
const char *logfmt_parse_checked_line(const unsigned char *p, size_t n,
				      struct log_line *out);
/* The header line of a segment, newline included; its length. */
int logfmt_header(char *buf, size_t n, uint64_t first, uint64_t prev_term);
/* Parse the header line p[0..n) (without '\n'): 0, KV_EVERSION or
 * KV_ECORRUPT. */
int logfmt_parse_header(const unsigned char *p, size_t n, uint64_t *first,
			uint64_t *prev_term);
/* True if p[0..n) holds only zero bytes. */
bool logfmt_all_zero(const unsigned char *p, size_t n);

/* ---- log_seg.c: the table of segments, for log.c and the replay ---- */

void seg_free(struct seg *s);
/* Give back the mapping's pages of s below upto (rounded down to a page
 * of `page` bytes), so that resident memory holds only the recent part of
 * the log: the file's pages stay in the page cache (a dirty one is still
 * written by the next sync), and a later read or write of the range
 * faults them in again with the same bytes (the mapping is MAP_SHARED). */
void seg_release(struct seg *s, size_t upto, size_t page);
/* The same for the pages after the one that holds s->used: nothing is
 * written there yet, but the replay reads them (they must be zeros). */
void seg_release_tail(struct seg *s, size_t page);
/* Room for one more entry in s's tables (its offset, and a run should its
 * term differ). 0 or -ENOMEM. */
int seg_reserve(struct seg *s);
/* Note entry count of s at offset off with term; room made first with
 * seg_reserve (cannot fail). */
void seg_set(struct seg *s, size_t off, uint64_t term);
/* The term of entry first + k of s (k < count). */
uint64_t seg_term(const struct seg *s, uint64_t k);
/* Forget the entries of s from first + k on. */
void seg_cut_to(struct seg *s, uint64_t k);
/* Give back the table's unused room: for a segment no entry is appended
 * to any more. */
void seg_fit(struct seg *s);
/* Record an entry at offset off with term in s. 0 or -ENOMEM. */
int seg_push(struct seg *s, size_t off, uint64_t term);
/* Room for one more segment in log->segs. 0 or -ENOMEM. */
int segs_reserve(struct log *log);
/* log->bytes computed from the segments (after open, truncation,
 * compaction). */
uint64_t log_bytes_scan(const struct log *log);

/* ---- log_replay.c ---- */

/* Read every segment of log->dir into log (empty on entry): the rules of
 * "Recovery" in docs/log-format.md. 0, KV_ECORRUPT or KV_EVERSION with
 * *errmsg naming file and offset, -errno. */
int log_replay(struct log *log, char **errmsg);

#endif
