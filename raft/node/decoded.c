/* decoded.c - big commands decoded before the node thread applies them.
 *
 * Applying an entry decodes its command (JSON, a value escaped or in
 * base64): 50 to 200 ms of the node thread for a 16 MiB value, during
 * which no heartbeat goes out. So commands of NODE_PREDECODE_BYTES or more
 * are decoded where they arrive instead: the caller's thread for a write
 * made here (propose.c), the listener's thread for a leader's append or a
 * follower's forwarded write (deliver.c, forward.c). The decoded command
 * waits here under its entry's index and term (by the Log Matching
 * property, the same index and term are the same entry, so it is what
 * decoding the entry at apply would give), and update.c hands it to
 * store_apply. A forwarded write's is kept under its entry's data until
 * the leader proposed it and knows its index. Anything not found is
 * decoded at apply, as before: this is a cache, bounded by bytes, and
 * losing an item costs time only. The decoding thread also prepares a
 * big put's record (store_cmd_prepare: the value copied and hashed
 * there, not at apply), and the thread that shares a big entry checks and
 * checksums its bytes for the log line (decoded_note), so that the node
 * thread reads a big value only to write it into the log. */
#include <stdlib.h>

#include "node_int.h"

struct dec_item {
	struct dec_item *next;
	uint64_t index, term; /* 0: pending under data */
	const void *data;
	size_t bytes;
	struct kv_cmd cmd;
};

static void item_free(struct dec_item *d)
{
	kv_cmd_clear(&d->cmd);
	free(d);
}

/* Unlink the item after prev (NULL: the head). mu held. */
static struct dec_item *unlink_next(struct node_decoded *dc,
				    struct dec_item *prev)
{
	struct dec_item **at = prev ? &prev->next : &dc->head;
	struct dec_item *d = *at;
	*at = d->next;
	dc->bytes -= d->bytes;
	return d;
}

/* Is (index, term) held? mu held. */
static bool held(const struct node_decoded *dc, uint64_t index, uint64_t term)
{
	for (const struct dec_item *d = dc->head; d; d = d->next)
		if (d->index == index && d->term == term)
			return true;
	return false;
}

/* Keep cmd (taken) under index/term or pending under data. */
static void keep(struct kv_node *n, uint64_t index, uint64_t term,
		 const void *data, size_t bytes, struct kv_cmd *cmd)
{
	struct node_decoded *dc = &n->dec;
	struct dec_item *d = malloc(sizeof(*d));
	if (!d) {
		kv_cmd_clear(cmd);
		return;
	}
	*d = (struct dec_item){
	    .index = index, .term = term, .data = data, .bytes = bytes};
	d->cmd = *cmd;
	pthread_mutex_lock(&dc->mu);
	if (dc->bytes + bytes > NODE_DECODED_MAX_BYTES ||
	    (index && held(dc, index, term))) {
		pthread_mutex_unlock(&dc->mu);
		item_free(d);
		return;
	}
	d->next = dc->head;
	dc->head = d;
	dc->bytes += bytes;
	pthread_mutex_unlock(&dc->mu);
}

bool decoded_wanted(struct kv_node *n, uint64_t index, uint64_t term,
		    size_t len)
{
	struct node_decoded *dc = &n->dec;
	if (len < NODE_PREDECODE_BYTES)
		return false;
	pthread_mutex_lock(&dc->mu);
	bool want = dc->bytes + len <= NODE_DECODED_MAX_BYTES &&
		    !(index && held(dc, index, term));
	pthread_mutex_unlock(&dc->mu);
	return want;
}

void decoded_put(struct kv_node *n, uint64_t index, uint64_t term,
		 const void *data, size_t len)
{
	if (!decoded_wanted(n, index, term, len))
		return;
	struct kv_cmd cmd;
	if (kv_cmd_decode(data, len, &cmd) != 0)
		return;		       /* the apply finds it so too */
	(void)store_cmd_prepare(&cmd); /* else the apply copies and hashes */
	keep(n, index, term, index ? NULL : data, len, &cmd);
}

void decoded_put_cmd(struct kv_node *n, uint64_t index, uint64_t term,
		     struct kv_cmd *cmd, size_t len)
{
	keep(n, index, term, NULL, len, cmd);
}

void decoded_rekey(struct kv_node *n, const void *data, uint64_t index,
		   uint64_t term)
{
	struct node_decoded *dc = &n->dec;
	pthread_mutex_lock(&dc->mu);
	for (struct dec_item *d = dc->head; d; d = d->next)
		if (!d->index && d->data == data) {
			d->index = index;
			d->term = term;
			d->data = NULL;
			break;
		}
	pthread_mutex_unlock(&dc->mu);
}

void decoded_forget(struct kv_node *n, const void *data)
{
	struct node_decoded *dc = &n->dec;
	struct dec_item *gone = NULL;
	pthread_mutex_lock(&dc->mu);
	for (struct dec_item *prev = NULL, *d = dc->head; d;) {
		if (!d->index && d->data == data) {
			gone = unlink_next(dc, prev);
			break;
		}
		prev = d;
		d = d->next;
	}
	pthread_mutex_unlock(&dc->mu);
	if (gone)
		item_free(gone);
}

bool decoded_take(struct kv_node *n, uint64_t index, uint64_t term,
		  struct kv_cmd *out)
{
	struct node_decoded *dc = &n->dec;
	struct dec_item *found = NULL, *stale = NULL;
	pthread_mutex_lock(&dc->mu);
	if (!dc->head) {
		pthread_mutex_unlock(&dc->mu);
		return false;
	}
	/* what is at or before index is applied now, or never will be */
	for (struct dec_item *prev = NULL, *d = dc->head; d;) {
		if (d->index && d->index <= index) {
			struct dec_item *x = unlink_next(dc, prev);
			d = x->next;
			if (x->index == index && x->term == term && !found) {
				found = x;
			} else {
				x->next = stale;
				stale = x;
			}
			continue;
		}
		prev = d;
		d = d->next;
	}
	pthread_mutex_unlock(&dc->mu);
	while (stale) {
		struct dec_item *next = stale->next;
		item_free(stale);
		stale = next;
	}
	if (!found)
		return false;
	*out = found->cmd;
	free(found);
	return true;
}

void decoded_clear(struct kv_node *n)
{
	struct node_decoded *dc = &n->dec;
	pthread_mutex_lock(&dc->mu);
	struct dec_item *d = dc->head;
	dc->head = NULL;
	dc->bytes = 0;
	pthread_mutex_unlock(&dc->mu);
	while (d) {
		struct dec_item *next = d->next;
		item_free(d);
		d = next;
	}
}

/* The note: this bit set once checked, the CRC in the low 32 bits. */
#define NOTE_CHECKED (UINT64_C(1) << 32)

void decoded_note(struct raft_entry *e)
{
	uint32_t crc;
	if (e->buf && e->len >= NODE_PREDECODE_BYTES &&
	    store_data_check(e->data, e->len, &crc))
		raft_entry_set_note(e, NOTE_CHECKED | crc);
}

bool decoded_checked(const struct raft_entry *e, uint32_t *crc)
{
	uint64_t note = raft_entry_note(e);
	if (!(note & NOTE_CHECKED))
		return false;
	*crc = (uint32_t)note;
	return true;
}
