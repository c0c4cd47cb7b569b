/* peer_recv.c - the receiving side of the peer protocol, for the HTTP
 * handler of POST /raft/message.
 *
 * It decodes a batch with the codec (msg.c), then refuses what no correct
 * peer sends this node (messages for another node, an append whose entries
 * are not numbered after its prev index), so the Raft core only sees
 * well-formed input. The token check runs in constant time; one function
 * maps results to HTTP statuses. Protocol: docs/peer-protocol.md. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "store.h"
#include "transport.h"

/* Write a reason and return -EINVAL. */
#define BAD(why, why_len, ...)                                                 \
	do {                                                                   \
		if ((why) != NULL && (why_len) > 0)                            \
			snprintf((why), (why_len), __VA_ARGS__);               \
		return -EINVAL;                                                \
	} while (0)

/* Does m make sense for node self, sent by from? */
static int check_msg(const struct raft_message *m, uint64_t self, char *why,
		     size_t why_len)
{
	if (self != RAFT_NONE && m->to != self)
		BAD(why, why_len,
		    "a %s message for node %" PRIu64 ", this is node %" PRIu64,
		    peer_msg_type_name(m->type), m->to, self);
	if (m->term == 0 && m->type != RAFT_MSG_READ_INDEX &&
	    m->type != RAFT_MSG_READ_INDEX_RESP)
		BAD(why, why_len, "a %s message with term 0",
		    peer_msg_type_name(m->type));
	for (size_t i = 0; i < m->n_entries; i++) {
		const struct raft_entry *e = &m->entries[i];
		uint64_t prev_term = i ? m->entries[i - 1].term : m->log_term;

		if (m->index > PEER_INT_MAX - 1 - i ||
		    e->index != m->index + 1 + i)
			BAD(why, why_len,
			    "entry %zu has index %" PRIu64 ", not %" PRIu64, i,
			    e->index, m->index + 1 + i);
		if (e->term == 0 || e->term < prev_term || e->term > m->term)
			BAD(why, why_len,
			    "entry %" PRIu64 " has term %" PRIu64
			    " out of order",
			    e->index, e->term);
	}
	return 0;
}

int peer_handle_body(const char *body, size_t len, const char *cluster_id,
		     uint64_t self_id, struct raft_message **msgs, size_t *n,
		     char *why, size_t why_len)
{
	struct raft_message *out;
	uint64_t from;
	size_t count;
	int err;

	err = peer_msgs_decode(body, len, cluster_id, &from, &out, &count, why,
			       why_len);
	if (err < 0)
		return err;
	if (from == self_id) {
		if (why != NULL && why_len > 0)
			snprintf(why, why_len,
				 "a batch from this node's own id");
		err = -EINVAL;
		goto err_free;
	}
	for (size_t i = 0; i < count; i++)
		if ((err = check_msg(&out[i], self_id, why, why_len)) < 0)
			goto err_free;
	*msgs = out;
	*n = count;
	return 0;

err_free:
	peer_msgs_free(out, count);
	return err;
}

bool peer_token_equal(const char *got, const char *want)
{
	size_t glen, wlen;
	unsigned char diff;

	if (got == NULL || want == NULL)
		return false;
	glen = strlen(got);
	wlen = strlen(want);
	/* Every byte of want is compared, whatever got holds; a shorter
	 * got is read as NULs past its end (and differs by length). */
	diff = glen != wlen;
	for (size_t i = 0; i < wlen; i++) {
		unsigned char g = i < glen ? (unsigned char)got[i] : 0;
		diff |= g ^ (unsigned char)want[i];
	}
	return diff == 0 && wlen > 0;
}

int peer_http_status(int err)
{
	switch (err) {
	case 0:
		return 204;
	case -EINVAL:
		return 400;
	case -EACCES:
	case -EPERM:
		return 403;
	case KV_EVERSION:
		return 409;
	case -ENOMEM:
		return 503;
	default:
		return 500;
	}
}
