/* lease_keys.c - the keys on each lease: a set of the map's nodes.
 *
 * Each lease holds its keys' nodes in an open-addressed hash set of
 * pointers (linear probing, deletion by shifting back, grown at half
 * full and shrunk at an eighth), so a key without a lease costs nothing:
 * the node has no links for it. Adding a key cannot fail: without memory
 * to grow, the set keeps what it has and is marked lost, and until the
 * lease has no key left a revoke finds its keys by a walk of the map
 * (leases_nodes). nkeys counts the keys either way. map.c calls these as
 * records join and leave a lease; leases.h says what the table is. */
#include <stdlib.h>

#include "leases.h"

/* Slots of a set's first table; it never shrinks below. */
#define KEYS_MIN 8

static size_t home(const struct map_node *n, size_t cap)
{
	uint64_t h = (uint64_t)(uintptr_t)n * 0x9e3779b97f4a7c15ull;
	return (size_t)(h ^ (h >> 29)) & (cap - 1);
}

static void put(struct map_node **keys, size_t cap, struct map_node *n)
{
	size_t i = home(n, cap);

	while (keys[i] != NULL)
		i = (i + 1) & (cap - 1);
	keys[i] = n;
}

/* The set in a table of cap slots (a power of two, > used): false
 * without memory, the set unchanged. */
static bool rehash(struct lease *l, size_t cap)
{
	struct map_node **nk = calloc(cap, sizeof(*nk));

	if (nk == NULL)
		return false;
	for (size_t i = 0; i < l->cap; i++)
		if (l->keys[i] != NULL)
			put(nk, cap, l->keys[i]);
	free(l->keys);
	l->keys = nk;
	l->cap = cap;
	return true;
}

void lease_keys_add(struct lease *l, struct map_node *n)
{
	l->nkeys++;
	if (l->lost)
		return;
	if ((l->used + 1) * 2 > l->cap &&
	    !rehash(l, l->cap ? l->cap * 2 : KEYS_MIN) &&
	    l->used + 1 >= l->cap) {
		l->lost = true; /* no room left: a revoke walks the map */
		return;
	}
	put(l->keys, l->cap, n);
	l->used++;
}

/* The slot of n, or cap if n is not in the set. */
static size_t slot_of(const struct lease *l, const struct map_node *n)
{
	if (l->cap == 0)
		return 0;
	for (size_t i = home(n, l->cap);; i = (i + 1) & (l->cap - 1)) {
		if (l->keys[i] == n)
			return i;
		if (l->keys[i] == NULL)
			return l->cap;
	}
}

/* Empty slot i, moving back every later node of its run that would no
 * longer be found past the hole. */
static void shift_back(struct lease *l, size_t i)
{
	size_t mask = l->cap - 1;

	for (size_t j = (i + 1) & mask; l->keys[j] != NULL;
	     j = (j + 1) & mask) {
		size_t k = home(l->keys[j], l->cap);
		/* k cyclically in (i, j]: it stays */
		if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
			continue;
		l->keys[i] = l->keys[j];
		i = j;
	}
	l->keys[i] = NULL;
}

bool lease_keys_del(struct lease *l, struct map_node *n)
{
	size_t i = slot_of(l, n);

	if (i < l->cap) {
		shift_back(l, i);
		l->used--;
	} else if (!l->lost) {
		return false; /* never on it */
	}
	if (l->nkeys > 0)
		l->nkeys--;
	if (l->nkeys == 0) {
		lease_keys_free(l);
		return true;
	}
	if (l->cap > KEYS_MIN && l->used * 8 < l->cap)
		rehash(l, l->cap / 2); /* without memory it stays as big */
	return true;
}

bool lease_keys_lost(const struct lease *l)
{
	return l->lost;
}

size_t lease_keys_get(const struct lease *l, struct map_node **out)
{
	size_t n = 0;

	for (size_t i = 0; i < l->cap; i++)
		if (l->keys[i] != NULL)
			out[n++] = l->keys[i];
	return n;
}

void lease_keys_free(struct lease *l)
{
	free(l->keys);
	l->keys = NULL;
	l->cap = l->used = 0;
	l->lost = false;
}
