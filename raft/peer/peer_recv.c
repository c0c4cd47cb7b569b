/* peer_recv.c - the receiving side of the peer protocol, for the HTTP
 * handlers of POST /raft/stream and /raft/message.
 *
 * It decodes a batch with the codec (msg_decode.c), then refuses what no
 * correct peer sends this node (messages for another node, an append whose
 * entries are not numbered after its prev index), so the Raft core only
 * sees well-formed input. The token check runs in constant time; one function
 * maps results to HTTP statuses. A stream's body is cut into frames here
 * too, whatever pieces the network delivers it in. Protocol:
 * docs/peer-protocol.md. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv.h"
#include "peer.h"

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
	bool termless = m->type == RAFT_MSG_READ_INDEX ||
			m->type == RAFT_MSG_READ_INDEX_RESP ||
			m->type == RAFT_MSG_PROPOSE ||
			m->type == RAFT_MSG_PROPOSE_RESP;
	if (m->term == 0 && !termless)
		BAD(why, why_len, "a %s message with term 0",
		    peer_msg_type_name(m->type));
	if (m->n_entries > 0 && m->type != RAFT_MSG_APPEND &&
	    m->type != RAFT_MSG_PROPOSE)
		BAD(why, why_len, "a %s message with entries",
		    peer_msg_type_name(m->type));
	if (m->type == RAFT_MSG_PROPOSE) {
		/* commands only; the leader numbers them */
		for (size_t i = 0; i < m->n_entries; i++)
			if (m->entries[i].type != RAFT_ENTRY_NORMAL ||
			    m->entries[i].term || m->entries[i].index)
				BAD(why, why_len,
				    "a propose entry with a term, an index "
				    "or a type other than normal");
		return 0;
	}
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

bool peer_token_any(const char *got, const char *const *want, size_t n)
{
	bool any = false;

	for (size_t i = 0; i < n; i++)
		if (want[i] != NULL)
			any |= peer_token_equal(got, want[i]);
	return any;
}

int peer_http_status(int err)
{
	switch (err) {
	case 0:
		return 204;
	case -EINVAL:
		return 400;
	case -EACCES:
		return 401;
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

/* ---- Frames of a stream ---- */

size_t peer_frame_header(size_t len, char *buf)
{
	return (size_t)snprintf(buf, PEER_FRAME_HDR_MAX, "%zx\n", len);
}

/* The length line in f->line: 0 and *len, or -EINVAL. */
static int frame_length(const struct peer_frames *f, uint64_t *len, char *why,
			size_t why_len)
{
	uint64_t v = 0;

	if (f->line_len == 0)
		BAD(why, why_len, "a stream frame without a length");
	for (size_t i = 0; i < f->line_len; i++) {
		char c = f->line[i];
		int d = c >= '0' && c <= '9'   ? c - '0'
			: c >= 'a' && c <= 'f' ? c - 'a' + 10
					       : -1;
		if (d < 0)
			BAD(why, why_len,
			    "a stream frame length that is not lowercase hex");
		v = v << 4 | (uint64_t)d;
	}
	*len = v;
	return 0;
}

/* A payload is complete: hand it over and start the next frame. */
static int frame_done(struct peer_frames *f, const char *p, size_t len,
		      peer_frame_fn fn, void *ctx)
{
	f->in_payload = false;
	f->len = 0;
	int r = fn(ctx, p, len);
	if (f->cap > 1024 * 1024) { /* not kept for the next small ones */
		free(f->buf);
		f->buf = NULL;
		f->cap = 0;
	}
	return r;
}

int peer_frames_feed(struct peer_frames *f, const char *data, size_t n,
		     size_t max, peer_frame_fn fn, void *ctx, char *why,
		     size_t why_len)
{
	while (n > 0) {
		if (!f->in_payload) {
			const char *nl = memchr(data, '\n', n);
			size_t take = nl ? (size_t)(nl - data) : n;
			if (f->line_len + take > PEER_FRAME_HDR_MAX - 2)
				BAD(why, why_len,
				    "a stream frame length longer than 16 "
				    "digits");
			memcpy(f->line + f->line_len, data, take);
			f->line_len += take;
			data += take;
			n -= take;
			if (!nl)
				return 0;
			data++; /* the '\n' */
			n--;
			uint64_t len;
			int err = frame_length(f, &len, why, why_len);
			f->line_len = 0;
			if (err != 0)
				return err;
			if (len > max) {
				if (why != NULL && why_len > 0)
					snprintf(why, why_len,
						 "a stream frame of %" PRIu64
						 " bytes, over the limit of "
						 "%zu",
						 len, max);
				return -EFBIG;
			}
			/* an empty frame keeps an idle stream alive */
			f->in_payload = len > 0;
			f->need = (size_t)len;
			f->len = 0;
			continue;
		}
		if (f->len == 0 && n >= f->need) { /* whole: no copy */
			size_t len = f->need;
			int r = frame_done(f, data, len, fn, ctx);
			data += len;
			n -= len;
			if (r != 0)
				return r;
			continue;
		}
		if (f->cap < f->need) {
			char *b = realloc(f->buf, f->need);
			if (b == NULL)
				return -ENOMEM;
			f->buf = b;
			f->cap = f->need;
		}
		size_t take = f->need - f->len < n ? f->need - f->len : n;
		memcpy(f->buf + f->len, data, take);
		f->len += take;
		data += take;
		n -= take;
		if (f->len == f->need) {
			int r = frame_done(f, f->buf, f->len, fn, ctx);
			if (r != 0)
				return r;
		}
	}
	return 0;
}

void peer_frames_free(struct peer_frames *f)
{
	free(f->buf);
	*f = (struct peer_frames){0};
}
