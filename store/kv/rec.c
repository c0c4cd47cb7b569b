/* rec.c - the immutable, reference-counted record of one key.
 *
 * Header, a lease id (only in a record made with room for one), extended
 * attributes, key and value live in one allocation, in that order, so a
 * record is one malloc and one free, and the key, the value and the
 * attributes need no pointer of their own (kv_rec_key, kv_rec_val,
 * kv_rec_xattrs): 72 bytes of header on x86-64 (sizeof(struct kv_rec)). A
 * record never changes once the map publishes it: a change makes a new record,
 * and readers on other threads (store_get, the snapshot writer) keep the old
 * one alive with their reference. Attributes are kept sorted by name, so
 * equal records have equal bytes whatever order their attributes were set
 * in. A listing's entries are released here too. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "codec.h"
#include "kv.h"

_Static_assert(KV_MAX_KEY <= UINT16_MAX, "kv_rec.klen is 16 bits");
_Static_assert(KV_MAX_XATTR_TOTAL / 6 <= UINT16_MAX,
	       "kv_rec.nxattr is 16 bits");
_Static_assert(KV_MAX_VALUE <= UINT32_MAX, "kv_rec.vlen is 32 bits");
_Static_assert(sizeof(void *) != 8 || sizeof(struct kv_rec) == 72,
	       "the record header is 72 bytes (docs/operations.md)");
_Static_assert(sizeof(struct kv_rec) % _Alignof(struct kv_xattr) == 0,
	       "the attributes after the header are aligned");
_Static_assert(S_IFMT + 07777 <= UINT16_MAX, "kv_rec.mode is 16 bits");

static int xattr_cmp(const void *a, const void *b)
{
	const struct kv_xattr *x = a, *y = b;
	size_t n = x->nlen < y->nlen ? x->nlen : y->nlen;
	int c = memcmp(x->name, y->name, n);

	if (c != 0)
		return c;
	return x->nlen < y->nlen ? -1 : x->nlen > y->nlen;
}

struct kv_rec *kv_rec_new_l(const char *key, size_t klen, const void *val,
			    size_t vlen, const struct kv_xattr *xa, size_t n,
			    bool lease_slot)
{
	size_t slot = lease_slot ? sizeof(uint64_t) : 0, extra = 0, size;
	struct kv_rec *rec;
	struct kv_xattr *xv;
	char *kp;
	unsigned char *vp;

	/* the header's narrow counts (kv.h); the store's limits are far
	 * inside them, so this refuses only what no caller may ask */
	if (klen > UINT16_MAX || vlen > UINT32_MAX || vlen > SIZE_MAX / 4 ||
	    n > UINT16_MAX)
		return NULL;
	for (size_t i = 0; i < n; i++)
		extra += xa[i].nlen + 1 + xa[i].vlen;
	size = sizeof(*rec) + slot + n * sizeof(*xv) + klen + 1 + vlen + extra;
	rec = malloc(size);
	if (rec == NULL)
		return NULL;
	rec->flags = lease_slot ? KV_REC_LEASE_SLOT : 0;
	rec->nxattr = (uint16_t)n;
	xv = (struct kv_xattr *)kv_rec_xattrs(rec);
	kp = (char *)(xv + n);
	vp = (unsigned char *)kp + klen + 1;
	if (klen > 0)
		memcpy(kp, key, klen);
	kp[klen] = '\0';
	if (vlen > 0)
		memcpy(vp, val, vlen);
	kv_work.copy += vlen;
	unsigned char *p = vp + vlen;
	for (size_t i = 0; i < n; i++) {
		char *name = (char *)p;
		memcpy(name, xa[i].name, xa[i].nlen);
		name[xa[i].nlen] = '\0';
		p += xa[i].nlen + 1;
		if (xa[i].vlen > 0)
			memcpy(p, xa[i].val, xa[i].vlen);
		xv[i] = (struct kv_xattr){name, xa[i].nlen, p, xa[i].vlen};
		p += xa[i].vlen;
	}
	if (n > 1)
		qsort(xv, n, sizeof(*xv), xattr_cmp);
	atomic_init(&rec->refs, 1);
	rec->mode = 0;
	rec->uid = KV_NO_OWNER;
	rec->gid = KV_NO_OWNER;
	rec->create_rev = 0;
	rec->mod_rev = 0;
	rec->mtime_ns = 0;
	rec->ctime_ns = 0;
	rec->atime_ns = 0;
	kv_rec_set_lease(rec, 0);
	rec->hash = 0;
	rec->klen = (uint16_t)klen;
	rec->vlen = (uint32_t)vlen;
	return rec;
}

struct kv_rec *kv_rec_new_x(const char *key, size_t klen, const void *val,
			    size_t vlen, const struct kv_xattr *xa, size_t n)
{
	return kv_rec_new_l(key, klen, val, vlen, xa, n, false);
}

struct kv_rec *kv_rec_new(const char *key, size_t klen, const void *val,
			  size_t vlen)
{
	return kv_rec_new_x(key, klen, val, vlen, NULL, 0);
}

void kv_rec_ref(struct kv_rec *rec)
{
	atomic_fetch_add_explicit(&rec->refs, 1, memory_order_relaxed);
}

void kv_rec_unref(struct kv_rec *rec)
{
	if (rec == NULL)
		return;
	/* acq_rel: the thread that frees sees every other holder's reads. */
	if (atomic_fetch_sub_explicit(&rec->refs, 1, memory_order_acq_rel) == 1)
		free(rec);
}

const struct kv_xattr *kv_rec_xattr(const struct kv_rec *rec, const char *name,
				    size_t nlen)
{
	struct kv_xattr k = {.name = name, .nlen = nlen};

	if (rec->nxattr == 0)
		return NULL;
	return bsearch(&k, kv_rec_xattrs(rec), rec->nxattr, sizeof(k),
		       xattr_cmp);
}

size_t kv_xattrs_size(const struct kv_xattr *xa, size_t n)
{
	size_t total = 0;

	for (size_t i = 0; i < n; i++)
		total += xa[i].nlen + xa[i].vlen;
	return total;
}

int kv_xattr_name_check(const char *name, size_t nlen)
{
	const size_t ul = sizeof(KV_XATTR_USER) - 1;
	const size_t rl = sizeof(KV_XATTR_RESERVED) - 1;

	if (nlen == 0 || !kv_utf8_valid(name, nlen, false))
		return -EINVAL;
	if (nlen > KV_MAX_XATTR_NAME)
		return -ERANGE;
	if (nlen < ul || memcmp(name, KV_XATTR_USER, ul) != 0)
		return -EOPNOTSUPP;
	if (nlen == ul)
		return -EINVAL; /* "user." alone names nothing */
	if (nlen >= rl && memcmp(name, KV_XATTR_RESERVED, rl) == 0)
		return -EPERM;
	return 0;
}

void kv_list_clear(struct kv_list *list)
{
	for (size_t i = 0; i < list->n; i++)
		free(list->ents[i].name);
	free(list->ents);
	kv_rec_unref(list->self);
	memset(list, 0, sizeof(*list));
}
