/* map_index.c - the map's hash index: every node by its key and tail.
 *
 * A chained table beside the tree (map_int.h), so the exact lookups a
 * write and a read make (is this key a file, an explicit directory; is an
 * ancestor a file) cost a hash and one or two compares instead of a walk
 * down the tree. It only speeds lookups up: without memory to grow it, a
 * longer chain still finds the node, and without a table at all
 * map_find walks the tree (map.c). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "map_int.h"

static struct map_node **bucket_of(const struct map *m, uint64_t kh)
{
	return &m->index[kh & (m->nbuckets - 1)];
}

/* Rehash every node into a table of nb buckets (a power of two above
 * the present one). Without memory the table stays as it is: chains get
 * longer, lookups stay right. */
static void index_resize(struct map *m, size_t nb)
{
	struct map_node **nt;

	if (nb <= m->nbuckets || (nt = calloc(nb, sizeof(*nt))) == NULL)
		return;
	for (size_t i = 0; i < m->nbuckets; i++) {
		struct map_node *n = m->index[i], *next;
		for (; n != NULL; n = next) {
			next = n->hnext;
			n->hnext = nt[n->kh & (nb - 1)];
			nt[n->kh & (nb - 1)] = n;
		}
	}
	free(m->index);
	m->index = nt;
	m->nbuckets = nb;
}

/* Double the table when the nodes outnumber the buckets. */
static void index_grow(struct map *m)
{
	if (m->nodes > m->nbuckets && m->nbuckets * 2 != 0)
		index_resize(m, m->nbuckets * 2);
}

void map_reserve(struct map *m, uint64_t nodes)
{
	size_t nb = m->nbuckets;

	if (nb == 0 || nodes > SIZE_MAX / 2 / sizeof(*m->index))
		return;
	while (nb < nodes)
		nb *= 2;
	index_resize(m, nb);
}

void map_index_add(struct map *m, struct map_node *n)
{
	if (m->nbuckets == 0)
		return;
	n->kh = (uint32_t)map_key_hash(NKEY(n), NKLEN(n), n->tail);
	index_grow(m);
	struct map_node **b = bucket_of(m, n->kh);
	n->hnext = *b;
	*b = n;
}

void map_index_del(struct map *m, struct map_node *n)
{
	if (m->nbuckets == 0)
		return;
	struct map_node **p = bucket_of(m, n->kh);
	while (*p != n)
		p = &(*p)->hnext;
	*p = n->hnext;
}

struct map_node *map_index_find(const struct map *m, const char *key,
				size_t klen, char tail)
{
	uint32_t kh = (uint32_t)map_key_hash(key, klen, tail);

	for (struct map_node *n = *bucket_of(m, kh); n != NULL; n = n->hnext)
		if (n->kh == kh && n->tail == tail && NKLEN(n) == klen &&
		    memcmp(NKEY(n), key, klen) == 0)
			return n;
	return NULL;
}

uint32_t map_prefetch_key(const struct map *m, const char *key, size_t klen)
{
	uint32_t kh = (uint32_t)map_key_hash(key, klen, 0);

	if (m->nbuckets != 0)
		__builtin_prefetch(bucket_of(m, kh));
	return kh;
}

void map_prefetch_chain(const struct map *m, uint32_t kh)
{
	if (m->nbuckets == 0)
		return;
	const struct map_node *n = *bucket_of(m, kh);
	if (n != NULL)
		__builtin_prefetch(&n->kh);
}
