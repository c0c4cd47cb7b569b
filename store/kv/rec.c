/* rec.c - the immutable, reference-counted record of one key.
 *
 * Key, value and header live in one allocation, so a record is one malloc
 * and one free. A record never changes once the map publishes it: a change
 * makes a new record, and readers on other threads (store_get, the snapshot
 * writer) keep the old one alive with their reference. A listing's
 * entries are released here too. */
#include <stdlib.h>
#include <string.h>

#include "kv.h"

struct kv_rec *kv_rec_new(const char *key, size_t klen, const void *val,
			  size_t vlen)
{
	struct kv_rec *rec;
	char *kp;
	unsigned char *vp;

	if (klen > SIZE_MAX / 2 || vlen > SIZE_MAX / 2 - sizeof(*rec) - klen)
		return NULL;
	rec = malloc(sizeof(*rec) + klen + 1 + vlen);
	if (rec == NULL)
		return NULL;
	kp = (char *)(rec + 1);
	vp = (unsigned char *)kp + klen + 1;
	if (klen > 0)
		memcpy(kp, key, klen);
	kp[klen] = '\0';
	if (vlen > 0)
		memcpy(vp, val, vlen);
	atomic_init(&rec->refs, 1);
	rec->mode = 0;
	rec->create_rev = 0;
	rec->mod_rev = 0;
	rec->mtime_ns = 0;
	rec->klen = klen;
	rec->vlen = vlen;
	rec->key = kp;
	rec->val = vp;
	return rec;
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

void kv_list_clear(struct kv_list *list)
{
	for (size_t i = 0; i < list->n; i++)
		free(list->ents[i].name);
	free(list->ents);
	memset(list, 0, sizeof(*list));
}
