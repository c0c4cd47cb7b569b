/* map_hash.c - the hashes of the map: of a record, and of a key.
 *
 * map_rec_hash fingerprints everything a record holds; the map's state
 * hash is their sum, so it does not depend on the order the map was built
 * in (docs/map-and-db.md). map_key_hash places a key in the map's lookup
 * index and a directory in its table of sub-directory counts. Both read
 * bytes and numbers as little-endian words, the same on every host. */
#include <string.h>

#include "map_impl.h"

/* ---- the record hash ---- */

/* A bijective 64-bit mixer (the splitmix64 finalizer's shifts and
 * multipliers): every input bit affects every output bit. */
static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= UINT64_C(0xbf58476d1ce4e5b9);
	x ^= x >> 27;
	x *= UINT64_C(0x94d049bb133111eb);
	x ^= x >> 31;
	return x;
}

static uint64_t absorb(uint64_t h, uint64_t w)
{
	return mix64(h ^ w) + UINT64_C(0x9e3779b97f4a7c15);
}

/* Length first, then 8-byte little-endian words, the tail zero-padded:
 * the length makes the padding unambiguous, and the byte order makes the
 * hash the same on every host. */
static uint64_t absorb_bytes(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	size_t i = 0;

	kv_work.hash += n;
	h = absorb(h, (uint64_t)n);
	for (; i + 8 <= n; i += 8) {
		uint64_t w;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
		memcpy(&w, b + i, 8); /* one load: values are up to 16 MiB */
#else
		w = 0;
		for (int j = 7; j >= 0; j--)
			w = w << 8 | b[i + (size_t)j];
#endif
		h = absorb(h, w);
	}
	if (i < n) {
		uint64_t w = 0;
		for (size_t j = n; j > i; j--)
			w = w << 8 | b[j - 1];
		h = absorb(h, w);
	}
	return h;
}

/* A hash of everything a record holds. The state hash is the sum of these
 * over the map: order-independent, so a map built by applying commands and
 * one loaded from a db agree, and O(1) to update on every change. Meant to
 * make accidental divergence visible, not to resist a forger. Attributes
 * are in name order (the record keeps them so), each name and value
 * length-prefixed like the key and value. */
uint64_t map_rec_hash(const struct kv_rec *r)
{
	return map_rec_hash_rest(
	    map_rec_hash_kv(kv_rec_key(r), r->klen, kv_rec_val(r), r->vlen), r);
}

/* The two parts of map_rec_hash: its state after the key and the value
 * (all of its per-byte work but the attributes'), which a big put takes
 * on the thread that received it (store_cmd_prepare), and the rest, the
 * record's numbers and attributes, at apply. */
uint64_t map_rec_hash_kv(const char *key, size_t klen, const void *val,
			 size_t vlen)
{
	uint64_t h = UINT64_C(0x6b76667303);

	h = absorb_bytes(h, key, klen);
	return absorb_bytes(h, val, vlen);
}

uint64_t map_rec_hash_rest(uint64_t h, const struct kv_rec *r)
{
	h = absorb(h, r->mode);
	h = absorb(h, (uint64_t)r->uid << 32 | r->gid);
	h = absorb(h, r->create_rev);
	h = absorb(h, r->mod_rev);
	h = absorb(h, (uint64_t)r->mtime_ns);
	h = absorb(h, (uint64_t)r->ctime_ns);
	h = absorb(h, (uint64_t)r->atime_ns);
	h = absorb(h, r->nxattr);
	for (size_t i = 0; i < r->nxattr; i++) {
		h = absorb_bytes(h, kv_rec_xattrs(r)[i].name,
				 kv_rec_xattrs(r)[i].nlen);
		h = absorb_bytes(h, kv_rec_xattrs(r)[i].val,
				 kv_rec_xattrs(r)[i].vlen);
	}
	if (kv_rec_lease(r) != 0) /* so records without one hash as they did */
		h = absorb(h, kv_rec_lease(r) ^ UINT64_C(0x1ea5e));
	return mix64(h);
}

/* ---- the hash index ---- */

/* Not the record hash: the key and tail only, and fast for short keys. */
uint64_t map_key_hash(const char *key, size_t klen, char tail)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325); /* FNV-1a */

	for (size_t i = 0; i < klen; i++)
		h = (h ^ (unsigned char)key[i]) * UINT64_C(0x100000001b3);
	return mix64(h ^ (unsigned char)tail);
}
