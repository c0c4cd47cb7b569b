/* map.c - the ordered map of keys: the tree, lookups, the hash, the root.
 *
 * An intrusive red-black tree from libbsd (sys/tree.h) holds one node per
 * file and per explicit directory, each pointing at an immutable kv_rec; a
 * change swaps in a new record, so readers holding the old one are safe.
 * Nodes sort by an "effective key": a file by its key, an explicit directory
 * by its key plus '/', so a directory's record sits right before its
 * contents and the subtree of "d" is exactly the range ["d/", "d0"). That
 * makes listing a walk that skips each sub-directory with one lower-bound
 * seek (map_list.c), and renaming a directory a range move. Every change
 * goes through account(), which keeps the counters and the
 * order-independent state hash, and every insertion and removal through
 * dirs_note(), which keeps the number of sub-directories of each
 * directory (its link count) from the node's two neighbours. The root
 * directory has no node: its record (NULL until a change gives it
 * attributes) hangs off the map itself.
 * Beside the tree, a chained hash table indexes every node by its key and
 * tail (map_index.c) for exact lookups; seeks and walks use the tree.
 * The node and struct map are in map_int.h. Each lease's keys are a set
 * of nodes in the lease table (lease_keys.c), kept by account().
 * While a db is collected (map_cut.c), every change first stashes the
 * record its key had at the cut (map_stash.c).
 * The rules of each command are in apply.c; semantics in docs/map-and-db.md.
 */
#include <assert.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "map_int.h"
#include "map_stash.h"

static int node_cmp(const struct map_node *a, const struct map_node *b)
{
	return map_eff_cmp(NKEY(a), NKLEN(a), a->tail, NKEY(b), NKLEN(b),
			   b->tail);
}

RB_GENERATE_STATIC(map_tree, map_node, link, node_cmp)

/* ---- the insertion hint ----
 * A put of a key map_lookup found absent links its node where the
 * lookup's descent ended instead of descending again (a replay after a
 * restart is hundreds of thousands of these). map_lookup leaves, for its
 * own thread (readers call it too), the first node at or after the
 * subtree of the key it found absent (NULL: the end), with the map and
 * the map's generation. insert_rec takes the hint if it is for this map
 * with no node removed since (a removed node may be freed: removals
 * change the generation) and the new key sorts strictly between that
 * node and the one before it, which also proves the key absent; else it
 * finds and descends as before. */
static atomic_uint_fast64_t map_gens; /* never repeats a generation */
static _Thread_local struct {
	const struct map *m;
	uint64_t gen;
	struct map_node *next;
} hint;

static void new_gen(struct map *m)
{
	m->gen =
	    atomic_fetch_add_explicit(&map_gens, 1, memory_order_relaxed) + 1;
}

static void hint_leave(const struct map *m, struct map_node *next)
{
	hint.m = m;
	hint.gen = m->gen;
	hint.next = next;
}

/* Where key + tail links without a descent: under *parent, its left
 * child if *left. false if the hint does not show it (the caller
 * descends). Uses the hint up. */
static bool hint_place(struct map *m, const char *key, size_t klen, char tail,
		       struct map_node **parent, bool *left)
{
	struct map_node *next = hint.next, *prev;

	if (hint.m != m || hint.gen != m->gen)
		return false;
	hint.m = NULL;
	prev = next != NULL ? RB_PREV(map_tree, &m->tree, next)
			    : RB_MAX(map_tree, &m->tree);
	if ((prev == NULL && next == NULL) ||
	    (prev != NULL && map_eff_cmp(NKEY(prev), NKLEN(prev), prev->tail,
					 key, klen, tail) >= 0) ||
	    (next != NULL && map_eff_cmp(key, klen, tail, NKEY(next),
					 NKLEN(next), next->tail) >= 0))
		return false;
	/* prev and next are neighbours: next has no left child, or prev
	 * is the greatest of it and has no right one */
	*left = next != NULL && RB_LEFT(next, link) == NULL;
	*parent = *left ? next : prev;
	return true;
}

bool map_node_is_dir(const struct map_node *n)
{
	return n->tail == '/';
}

struct map *map_new(void)
{
	struct map *m = calloc(1, sizeof(*m));

	if (m == NULL)
		return NULL;
	RB_INIT(&m->tree);
	new_gen(m);
	m->index = calloc(MAP_INDEX_MIN, sizeof(*m->index));
	if (m->index != NULL)
		m->nbuckets = MAP_INDEX_MIN;
	return m;
}

void map_free(struct map *m)
{
	struct map_node *n, *next;

	if (m == NULL)
		return;
	RB_FOREACH_SAFE(n, map_tree, &m->tree, next)
	{
		RB_REMOVE(map_tree, &m->tree, n);
		kv_rec_unref(n->rec);
		free(n);
	}
	free(m->index);
	kv_rec_unref(m->root);
	dircounts_free(&m->dirs);
	locks_clear(&m->locks);
	leases_clear(&m->leases);
	stash_free(m->stash);
	free(m);
}

uint64_t map_count(const struct map *m)
{
	return m->count;
}

uint64_t map_bytes(const struct map *m)
{
	return m->bytes;
}

uint64_t map_state_hash(const struct map *m)
{
	return m->hash + locks_hash(&m->locks) + leases_hash(&m->leases);
}

struct leases *map_leases(struct map *m)
{
	return &m->leases;
}

const struct leases *map_leases_c(const struct map *m)
{
	return &m->leases;
}

struct locks *map_locks(struct map *m)
{
	return &m->locks;
}

const struct locks *map_locks_c(const struct map *m)
{
	return &m->locks;
}

/* ---- tree helpers ---- */

static struct map_node *tree(const struct map *m, const char *key, size_t klen,
			     char tail, bool exact)
{
	/* RB_FIND and RB_NFIND, by hand: they need a node of the key to
	 * compare, and a record's key lives in its record's allocation */
	struct map_node *n = RB_ROOT(&m->tree), *ge = NULL;

	while (n != NULL) {
		int c =
		    map_eff_cmp(key, klen, tail, NKEY(n), NKLEN(n), n->tail);
		if (c == 0)
			return n;
		if (c < 0) {
			ge = n;
			n = RB_LEFT(n, link);
		} else {
			n = RB_RIGHT(n, link);
		}
	}
	return exact ? NULL : ge;
}

struct map_node *map_find(const struct map *m, const char *key, size_t klen,
			  char tail)
{
	if (m->nbuckets != 0)
		return map_index_find(m, key, klen, tail);
	return tree(m, key, klen, tail, true);
}

struct map_node *map_lower_bound(const struct map *m, const char *key,
				 size_t klen, char tail)
{
	return tree(m, key, klen, tail, false);
}

struct map_node *map_next(const struct map *m, struct map_node *n)
{
	(void)m;
	return RB_NEXT(map_tree, (struct map_tree *)&m->tree, n);
}

struct kv_rec *map_node_rec(const struct map_node *n)
{
	return n->rec;
}

bool map_in_subtree(const struct map_node *n, const char *p, size_t plen)
{
	if (plen == 0)
		return true;
	if (NKLEN(n) < plen || memcmp(NKEY(n), p, plen) != 0)
		return false;
	if (NKLEN(n) == plen)
		return map_node_is_dir(n);
	return NKEY(n)[plen] == '/';
}

struct map_node *map_subtree_first(const struct map *m, const char *p,
				   size_t plen)
{
	struct map_node *n;

	if (plen == 0)
		return RB_MIN(map_tree, (struct map_tree *)&m->tree);
	n = map_lower_bound(m, p, plen, '/');
	return n != NULL && map_in_subtree(n, p, plen) ? n : NULL;
}

/* ---- sub-directory counts ---- */

/* Directory p[0..plen) gained (sign > 0) or lost a sub-directory. */
static void dirs_adjust(struct map *m, const char *p, size_t plen, int sign)
{
	if (plen == 0)
		m->root_subdirs += sign > 0 ? 1 : -1;
	else
		dircount_adjust(&m->dirs, p, plen, map_key_hash(p, plen, 0),
				sign);
}

static size_t last_slash(const char *key, size_t end)
{
	const char *s = memrchr(key, '/', end);
	return s ? (size_t)(s - key) : 0;
}

/* n, in the tree, was just inserted (sign > 0) or is about to be removed.
 * The directories n makes exist are its own path if it is a directory and
 * each of its ancestors; one of them exists only by n exactly when
 * neither of n's neighbours lies in its subtree (a subtree is a range of
 * the order). Then its parent gains or loses a sub-directory. Deepest
 * first, stopping at the first that has other nodes: its ancestors do. */
static void dirs_note(struct map *m, struct map_node *n, int sign, bool is_max)
{
	struct map_node *prev = RB_PREV(map_tree, &m->tree, n);
	/* the greatest node's next is a walk up to the root for nothing */
	struct map_node *next = is_max ? NULL : RB_NEXT(map_tree, &m->tree, n);
	const char *key = NKEY(n);
	size_t end = map_node_is_dir(n) ? NKLEN(n) : last_slash(key, NKLEN(n));

	if (m->dirs.lost)
		return;
	while (end > 0) {
		size_t up;
		if ((prev != NULL && map_in_subtree(prev, key, end)) ||
		    (next != NULL && map_in_subtree(next, key, end)))
			break;
		up = last_slash(key, end);
		dirs_adjust(m, key, up, sign);
		end = up;
	}
}

uint32_t map_nlink(const struct map *m, const char *p, size_t plen)
{
	if (m->dirs.lost)
		return 1;
	if (plen == 0)
		return 2 + m->root_subdirs;
	return 2 + dircount_get(&m->dirs, p, plen, map_key_hash(p, plen, 0));
}

/* ---- changes ---- */

/* n's record is on a lease: put n in that lease's set of keys (sign >
 * 0) or take it out. A lease the table does not have (a damaged db: the
 * loader checks) leaves the node in no set. */
static void lease_link(struct map *m, struct map_node *n, int sign)
{
	struct lease *l = leases_find(&m->leases, kv_rec_lease(n->rec));

	if (l == NULL)
		return;
	if (sign > 0) {
		lease_keys_add(l, n);
		m->leases.nkeys++;
	} else if (lease_keys_del(l, n)) {
		m->leases.nkeys--;
	}
}

/* Count n's record in (sign > 0) or out of the counters, the hash and
 * its lease's keys. Every change to the tree goes through here. */
static void account(struct map *m, struct map_node *n, int sign)
{
	const struct kv_rec *rec = n->rec;

	if (kv_rec_lease(rec) != 0)
		lease_link(m, n, sign);

	if (sign > 0) {
		m->nodes++;
		m->hash += rec->hash;
	} else {
		m->nodes--;
		m->hash -= rec->hash;
	}
	if (S_ISDIR(rec->mode))
		return;
	if (sign > 0) {
		m->count++;
		m->bytes += rec->vlen;
	} else {
		m->count--;
		m->bytes -= rec->vlen;
	}
}

static void node_set(struct map_node *n, struct kv_rec *rec)
{
	/* Before the record is seen by any other thread: it is immutable
	 * from then on, and the hash is a function of what it holds. */
	if (rec->hash == 0) /* else taken in two steps (a prepared put) */
		rec->hash = map_rec_hash(rec);
	n->rec = rec;
	n->tail = S_ISDIR(rec->mode) ? '/' : 0;
}

/* Before the first change of n's key after a cut: its record then. */
static void cut_note(struct map *m, const struct map_node *n)
{
	if (m->stash != NULL)
		stash_note(m->stash, NKEY(n), NKLEN(n), n->tail, n->rec);
}

void map_replace(struct map *m, struct map_node *n, struct kv_rec *rec)
{
	cut_note(m, n);
	account(m, n, -1);
	kv_rec_unref(n->rec);
	node_set(n, rec);
	account(m, n, +1);
}

/* Insert n (set) into the tree and the index. parent, if not NULL, is
 * where n goes, as its left child if left, else its right one (a db's
 * load: the greatest node, n after it; a hinted put): no descent of
 * compares from the root. */
static void link_node(struct map *m, struct map_node *n,
		      struct map_node *parent, bool left)
{
	if (m->stash != NULL) /* a new key: it had no record at the cut */
		stash_note(m->stash, NKEY(n), NKLEN(n), n->tail, NULL);
	/* n the new greatest node: as the greatest one's right child */
	bool is_max = parent != NULL && !left && parent == m->last;
	m->last = NULL; /* map_append sets it again after its own */
	if (parent != NULL) {
		assert(left ? RB_LEFT(parent, link) == NULL
			    : RB_RIGHT(parent, link) == NULL);
		RB_SET(n, parent, link);
		if (left)
			RB_LEFT(parent, link) = n;
		else
			RB_RIGHT(parent, link) = n;
		map_tree_RB_INSERT_COLOR(&m->tree, n);
	} else {
		struct map_node *clash = RB_INSERT(map_tree, &m->tree, n);
		assert(clash == NULL);
		(void)clash;
	}
	account(m, n, +1);
	map_index_add(m, n);
	dirs_note(m, n, +1, is_max);
}

static void unlink_node(struct map *m, struct map_node *n)
{
	cut_note(m, n);
	new_gen(m); /* n may be freed: hints to it are void */
	m->last = NULL;
	dirs_note(m, n, -1, false);
	RB_REMOVE(map_tree, &m->tree, n);
	map_index_del(m, n);
	account(m, n, -1);
}

void map_set_root(struct map *m, struct kv_rec *rec)
{
	assert(rec->klen == 0 && S_ISDIR(rec->mode));
	m->hash -= m->root_hash;
	kv_rec_unref(m->root);
	m->root = rec;
	m->root_hash = map_rec_hash(rec);
	m->hash += m->root_hash;
}

const struct kv_rec *map_root(const struct map *m)
{
	return m->root;
}

/* Insert a node for rec (takes the reference), or replace the record of
 * the node already there. */
static int insert_rec(struct map *m, struct kv_rec *rec)
{
	struct map_node *n, *parent = NULL;
	char tail = S_ISDIR(rec->mode) ? '/' : 0;
	bool left = false;

	if (rec->klen == 0) {
		map_set_root(m, rec);
		return 0;
	}
	if (!hint_place(m, kv_rec_key(rec), rec->klen, tail, &parent, &left)) {
		n = map_find(m, kv_rec_key(rec), rec->klen, tail);
		if (n != NULL) {
			map_replace(m, n, rec);
			return 0;
		}
	}
	n = malloc(sizeof(*n));
	if (n == NULL)
		return -ENOMEM;
	node_set(n, rec);
	link_node(m, n, parent, left);
	return 0;
}

void map_remove_node(struct map *m, struct map_node *n)
{
	unlink_node(m, n);
	kv_rec_unref(n->rec);
	free(n);
}

void map_detach(struct map *m, struct map_node *n)
{
	unlink_node(m, n);
}

void map_attach(struct map *m, struct map_node *n, struct kv_rec *rec)
{
	node_set(n, rec);
	link_node(m, n, NULL, false);
}

/* ---- what a path is ---- */

enum map_kind map_lookup(const struct map *m, const char *p, size_t plen,
			 struct map_node **np)
{
	struct map_node *n;

	*np = NULL;
	if (plen == 0)
		return MAP_ROOT;
	n = map_find(m, p, plen, 0);
	if (n != NULL) {
		*np = n;
		return MAP_FILE;
	}
	/* map_subtree_first, leaving the hint of where p would go */
	n = map_lower_bound(m, p, plen, '/');
	hint_leave(m, n);
	if (n == NULL || !map_in_subtree(n, p, plen))
		return MAP_NONE;
	*np = n;
	return NKLEN(n) == plen ? MAP_DIR : MAP_IMPLICIT;
}

bool map_kind_is_dir(enum map_kind k)
{
	return k == MAP_DIR || k == MAP_IMPLICIT || k == MAP_ROOT;
}

bool map_has_children(const struct map *m, const char *p, size_t plen,
		      enum map_kind k, struct map_node *n)
{
	if (k == MAP_IMPLICIT)
		return true;
	if (k == MAP_ROOT)
		return m->nodes > 0;
	n = map_next(m, n);
	return n != NULL && map_in_subtree(n, p, plen);
}

int map_check_ancestors(const struct map *m, const char *key, size_t klen)
{
	for (size_t i = 1; i < klen; i++)
		if (key[i] == '/' && map_find(m, key, i, 0) != NULL)
			return -ENOTDIR;
	return 0;
}

struct kv_rec *map_get(const struct map *m, const char *key, size_t klen)
{
	struct map_node *n = map_find(m, key, klen, 0);

	if (n == NULL)
		n = map_find(m, key, klen, '/');
	return n != NULL ? n->rec : NULL;
}

int map_insert(struct map *m, struct kv_rec *rec)
{
	return insert_rec(m, rec);
}

int map_append(struct map *m, struct kv_rec *rec)
{
	/* a load appends 1M keys: the walk down the right spine each time
	 * was a tenth of the loader's thread */
	struct map_node *last =
	    m->last != NULL ? m->last : RB_MAX(map_tree, &m->tree);

	if (rec->klen == 0) /* the root comes first, once */
		return last != NULL || m->root != NULL ? -EINVAL
						       : insert_rec(m, rec);
	if (last != NULL &&
	    map_eff_cmp(NKEY(last), NKLEN(last), last->tail, kv_rec_key(rec),
			rec->klen, S_ISDIR(rec->mode) ? '/' : 0) >= 0)
		return -EINVAL;
	/* After every key: a new node, no lookup and no descent (a db's
	 * load is 1M of these) */
	struct map_node *n = malloc(sizeof(*n));
	if (n == NULL)
		return -ENOMEM;
	node_set(n, rec);
	link_node(m, n, last, false);
	m->last = n;
	return 0;
}

int map_cut_begin(struct map *m)
{
	if (m->stash == NULL)
		m->stash = stash_new(m->root);
	return m->stash != NULL ? 0 : -ENOMEM;
}

void map_cut_end(struct map *m)
{
	stash_free(m->stash);
	m->stash = NULL;
}

const struct map_stash *map_stash_of(const struct map *m)
{
	return m->stash;
}
