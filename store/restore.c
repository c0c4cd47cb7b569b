/* restore.c - a new data directory seeded from a backup (kvfs
 * --restore=FILE, a db snapshot saved with GET /snapshot).
 *
 * The backup is verified whole (the db loader checks every line and the
 * trailer's CRC-32C), then written again as this directory's db at the
 * backup's index, with the Raft configuration left out and term 1, the
 * hard state at term 1 too: the node that opens the directory next starts
 * a new cluster (its own id, its members from --peers) whose log begins
 * after the backup's index. Members of a cluster being restored each get
 * the same file, so they start equal. Lock sessions are left out (no node
 * of the old cluster holds one here); leases are kept, their TTLs counted
 * again from the new cluster's start. */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "db.h"
#include "hardstate.h"
#include "map.h"
#include "store.h"

static char *msgf(const char *fmt, const char *a, const char *b)
{
	size_t n = strlen(fmt) + strlen(a) + strlen(b) + 1;
	char *s = malloc(n);
	if (s)
		snprintf(s, n, fmt, a, b);
	return s;
}

/* Does dir hold a member's state already (its identity, a db, a log)? */
static bool has_state(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return false;
	bool found = false;
	struct dirent *e;
	while (!found && (e = readdir(d)))
		found = strcmp(e->d_name, "cluster.json") == 0 ||
			strncmp(e->d_name, "db.jsonl", 8) == 0 ||
			strncmp(e->d_name, "log-", 4) == 0 ||
			strcmp(e->d_name, "raft-state.json") == 0;
	closedir(d);
	return found;
}

int store_restore(const char *dir, const char *path, uint64_t *index,
		  char **errmsg)
{
	*errmsg = NULL;
	if (has_state(dir)) {
		*errmsg = msgf("%s already holds a member's data%s: --restore "
			       "starts a new member on an empty directory",
			       dir, "");
		return -EEXIST;
	}
	int ret = kv_mkdir_p(dir);
	if (ret != 0) {
		*errmsg = msgf("cannot make %s: %s", dir, kv_strerror(ret));
		return ret;
	}
	struct map *m = map_new();
	if (!m)
		return -ENOMEM;
	struct db_meta meta = {0};
	char *why = NULL;
	ret = db_load_file(path, m, &meta, &why);
	if (ret != 0) {
		*errmsg = msgf("the backup %s cannot be read: %s", path,
			       why ? why : kv_strerror(ret));
		free(why);
		map_free(m);
		return ret;
	}
	free(meta.conf);
	struct kv_rec **recs = NULL;
	size_t n = 0;
	ret = map_collect(m, &recs, &n);
	if (ret == 0) {
		struct db_meta fresh = {.index = meta.index, .term = 1};
		/* a new cluster: no lock sessions; the leases stay, so
		 * keys with a TTL still expire */
		ret = db_write_tables(dir, &fresh, recs, n, NULL,
				      map_leases_c(m));
		map_collect_free(recs, n);
	}
	if (ret == 0)
		ret = hardstate_save(dir, 1, 0);
	map_free(m);
	if (ret != 0)
		*errmsg = msgf("cannot write the restored db in %s: %s", dir,
			       kv_strerror(ret));
	else
		*index = meta.index;
	return ret;
}
