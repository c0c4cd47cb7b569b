/* msg_encode.c - a batch of Raft messages as one versioned JSON
 * document.
 *
 * The encoder writes JSON by hand into a growable buffer (store/kv's
 * codec.h), so a batch of large entries is copied once, never built as a
 * cJSON tree; entry data goes in as a JSON string when it is valid UTF-8
 * without NUL ("data") and as base64 otherwise ("data64"), and fields at
 * their default (zero, false) are left out. The field list is in
 * docs/peer-protocol.md; the decoder is msg_decode.c. */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "codec.h"
#include "kv.h"
#include "msg_int.h"
#include "peer.h"

/* ,"name":v when v is not zero (zero is the default on the wire). */
static int put_u64(struct kv_buf *b, const char *name, uint64_t v)
{
	if (v > PEER_INT_MAX)
		return -ERANGE;
	if (v != 0) {
		kv_buf_puts(b, ",\"");
		kv_buf_puts(b, name);
		kv_buf_puts(b, "\":");
		kv_buf_u64(b, v);
	}
	return 0;
}

static int put_entry(struct kv_buf *b, const struct raft_entry *e)
{
	const char *type = msg_name_of(&msg_entry_types, (unsigned)e->type);

	if (e->term > PEER_INT_MAX || e->index > PEER_INT_MAX)
		return -ERANGE;
	if (type == NULL)
		return -EINVAL;
	if (e->len > 0 && e->data == NULL)
		return -EINVAL;
	kv_buf_puts(b, "{\"term\":");
	kv_buf_u64(b, e->term);
	kv_buf_puts(b, ",\"index\":");
	kv_buf_u64(b, e->index);
	kv_buf_puts(b, ",\"type\":\"");
	kv_buf_puts(b, type);
	kv_buf_puts(b, "\"");
	if (e->len > 0 && kv_utf8_valid(e->data, e->len, false)) {
		kv_buf_puts(b, ",\"data\":");
		kv_buf_json_str(b, e->data, e->len);
	} else if (e->len > 0) {
		kv_buf_puts(b, ",\"data64\":\"");
		kv_buf_base64(b, e->data, e->len);
		kv_buf_puts(b, "\"");
	}
	kv_buf_puts(b, "}");
	return 0;
}

static int put_snapshot(struct kv_buf *b, const struct raft_snapshot_meta *s)
{
	const struct raft_config *c = &s->conf;

	if (s->index > PEER_INT_MAX || s->term > PEER_INT_MAX ||
	    c->n > RAFT_MAX_SERVERS)
		return -ERANGE;
	kv_buf_printf(b,
		      ",\"snapshot\":{\"index\":%" PRIu64 ",\"term\":%" PRIu64
		      ",\"conf\":[",
		      s->index, s->term);
	for (unsigned i = 0; i < c->n; i++) {
		const struct raft_server *sv = &c->servers[i];
		size_t alen = strnlen(sv->addr, RAFT_ADDR_MAX);
		const char *role = msg_name_of(&msg_roles, (unsigned)sv->role);

		if (sv->id > PEER_INT_MAX)
			return -ERANGE;
		if (role == NULL || alen == RAFT_ADDR_MAX ||
		    !kv_utf8_valid(sv->addr, alen, false))
			return -EINVAL;
		kv_buf_printf(b,
			      "%s{\"id\":%" PRIu64 ",\"role\":\"%s\",\"addr\":",
			      i ? "," : "", sv->id, role);
		kv_buf_json_str(b, sv->addr, alen);
		kv_buf_puts(b, "}");
	}
	kv_buf_puts(b, "]}");
	return 0;
}

static int put_msg(struct kv_buf *b, const struct raft_message *m)
{
	const char *type = msg_name_of(&msg_types, (unsigned)m->type);
	int err;

	if (type == NULL)
		return -EINVAL;
	if (m->n_entries > 0 &&
	    ((m->type != RAFT_MSG_APPEND && m->type != RAFT_MSG_PROPOSE) ||
	     m->entries == NULL))
		return -EINVAL;
	if (m->to > PEER_INT_MAX || m->term > PEER_INT_MAX)
		return -ERANGE;
	kv_buf_puts(b, "{\"type\":\"");
	kv_buf_puts(b, type);
	kv_buf_puts(b, "\",\"to\":");
	kv_buf_u64(b, m->to);
	kv_buf_puts(b, ",\"term\":");
	kv_buf_u64(b, m->term);
	if ((err = put_u64(b, "index", m->index)) < 0 ||
	    (err = put_u64(b, "log_term", m->log_term)) < 0 ||
	    (err = put_u64(b, "commit", m->commit)) < 0 ||
	    (err = put_u64(b, "ctx", m->ctx)) < 0 ||
	    (err = put_u64(b, "hint_index", m->hint_index)) < 0 ||
	    (err = put_u64(b, "hint_term", m->hint_term)) < 0)
		return err;
	if (m->reject)
		kv_buf_puts(b, ",\"reject\":true");
	if (m->transfer)
		kv_buf_puts(b, ",\"transfer\":true");
	if (m->n_entries > 0) {
		kv_buf_puts(b, ",\"entries\":[");
		for (size_t i = 0; i < m->n_entries; i++) {
			if (i > 0)
				kv_buf_puts(b, ",");
			if ((err = put_entry(b, &m->entries[i])) < 0)
				return err;
		}
		kv_buf_puts(b, "]");
	}
	if (m->type == RAFT_MSG_SNAPSHOT &&
	    (err = put_snapshot(b, &m->snapshot)) < 0)
		return err;
	kv_buf_puts(b, "}");
	return 0;
}

int peer_msgs_encode(const char *cluster_id, uint64_t from,
		     const struct raft_message *msgs, size_t n, char **out,
		     size_t *len)
{
	struct kv_buf b;
	int err = 0;

	if (!peer_id_valid(cluster_id) || from == RAFT_NONE)
		return -EINVAL;
	if (from > PEER_INT_MAX)
		return -ERANGE;
	kv_buf_init(&b);
	/* The cluster id is printable ASCII: it needs escaping of '"' and
	 * '\\' only, which kv_buf_json_str does. */
	kv_buf_puts(&b, "{\"kvfs\":\"raft\",\"version\":");
	kv_buf_u64(&b, PEER_PROTOCOL_VERSION);
	kv_buf_puts(&b, ",\"cluster\":");
	kv_buf_json_str(&b, cluster_id, strlen(cluster_id));
	kv_buf_puts(&b, ",\"from\":");
	kv_buf_u64(&b, from);
	kv_buf_puts(&b, ",\"msgs\":[");
	for (size_t i = 0; i < n; i++) {
		if (msgs[i].from != from) {
			err = -EINVAL;
			goto err_free;
		}
		if (i > 0)
			kv_buf_puts(&b, ",");
		if ((err = put_msg(&b, &msgs[i])) < 0)
			goto err_free;
	}
	kv_buf_puts(&b, "]}");
	if (b.err) {
		err = b.err;
		goto err_free;
	}
	*out = b.p;
	*len = b.len;
	return 0;

err_free:
	kv_buf_free(&b);
	return err;
}
