/* rmtree.h - removing a test's data directory, for the tests that run nodes
 * (each runs a node on a directory of its own under /tmp). */
#ifndef KVFS_TESTS_RMTREE_H
#define KVFS_TESTS_RMTREE_H

#include <ftw.h>
#include <stdio.h>
#include <sys/stat.h>

static inline int rmtree_entry(const char *path, const struct stat *sb,
			       int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* Remove dir and everything below it (links are not followed). */
static inline void rmtree(const char *dir)
{
	nftw(dir, rmtree_entry, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
