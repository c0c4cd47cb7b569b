/* map_stat.c - what stat(2) shows of a path of the map: a file, an
 * explicit or implicit directory, the root (map.h, map_impl.h). Read
 * through map.c's lookups; moved out of map.c, which keeps the tree. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "map_impl.h"

static void stat_rec(const struct kv_rec *r, struct kv_stat *st)
{
	st->mode = r->mode;
	st->uid = r->uid;
	st->gid = r->gid;
	st->create_rev = r->create_rev;
	st->mod_rev = r->mod_rev;
	st->mtime_ns = r->mtime_ns;
	st->ctime_ns = r->ctime_ns;
	st->atime_ns = r->atime_ns;
}

void map_stat_of(const struct map *m, enum map_kind k, const struct map_node *n,
		 const char *path, size_t plen, struct kv_stat *st)
{
	memset(st, 0, sizeof(*st));
	st->is_dir = map_kind_is_dir(k);
	st->uid = st->gid = KV_NO_OWNER;
	st->nlink = 1;
	if (st->is_dir)
		st->nlink = map_nlink(m, path, plen);
	if (k == MAP_ROOT) {
		st->mode = S_IFDIR | 0755;
		if (map_root(m) != NULL)
			stat_rec(map_root(m), st);
		return;
	}
	if (k == MAP_IMPLICIT) {
		/* The revisions and times of the first key below it: cheap
		 * (no subtree scan) and stable while that key is. */
		st->mode = S_IFDIR | 0755;
		st->create_rev = map_node_rec(n)->create_rev;
		st->mod_rev = map_node_rec(n)->mod_rev;
		st->mtime_ns = st->ctime_ns = st->atime_ns =
		    map_node_rec(n)->mtime_ns;
		return;
	}
	stat_rec(map_node_rec(n), st);
	if (k == MAP_FILE)
		st->size = map_node_rec(n)->vlen;
}

int map_stat(const struct map *m, const char *path, size_t plen,
	     struct kv_stat *out)
{
	struct map_node *n;
	enum map_kind k = map_lookup(m, path, plen, &n);

	if (k == MAP_NONE)
		return -ENOENT;
	map_stat_of(m, k, n, path, plen, out);
	return 0;
}
