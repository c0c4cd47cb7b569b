/* dircount.h - how many sub-directories each directory has (internal to
 * the store module).
 *
 * A directory's link count is 2 plus its sub-directories, and a map where
 * directories may be implicit cannot count them without a scan, so map.c
 * keeps the counts as it changes: a chained hash table from a directory's
 * path to its number of sub-directories, holding only directories that
 * have some. map.c decides when a count changes (dirs_note); this file
 * only stores them. The owner of the map is the only caller. */
#ifndef KV_STORE_DIRCOUNT_H
#define KV_STORE_DIRCOUNT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dircount;

struct dircounts {
	struct dircount **buckets; /* dir_buckets chains (a power of two) */
	size_t nbuckets, n;
	/* An entry could not be allocated: every count is dropped and
	 * dircount_get answers 0 with *lost set, until dircounts_free. */
	bool lost;
};

/* Path p[0..plen) (hashed to kh by the caller) gained (sign > 0) or lost
 * a sub-directory. Losing one it does not have is a broken invariant
 * (asserted). Without memory: t->lost. */
void dircount_adjust(struct dircounts *t, const char *p, size_t plen,
		     uint64_t kh, int sign);
/* The count of p (0 if it has none). */
uint32_t dircount_get(const struct dircounts *t, const char *p, size_t plen,
		      uint64_t kh);
/* Drop every entry (the table is empty and usable after). */
void dircounts_free(struct dircounts *t);

#endif
