/* tcp_serve.c - the byte protocol's requests, served: SET and DEL as
 * node_propose_async calls, GET after a read barrier (node_read_now, else
 * node_read_barrier_async), ALL a page of keys at a time; and the replies,
 * in the connection's output buffer, bounded (tcp.c owns the connections
 * and the loop; docs/byte-protocol.md). */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tcp_conn.h"

/* ---- replies ---- */

static bool out_room(struct conn *c, size_t more)
{
	if (c->out_len + more <= c->out_cap)
		return true;
	size_t cap = c->out_cap ? c->out_cap : 256;
	while (cap < c->out_len + more)
		cap *= 2;
	unsigned char *p = realloc(c->out, cap);
	if (!p)
		return false;
	c->out = p;
	c->out_cap = cap;
	return true;
}

static void out_put(struct conn *c, const void *p, size_t n)
{
	if (!out_room(c, n)) {
		c->closing = true; /* no memory: the client sees the close */
		return;
	}
	memcpy(c->out + c->out_len, p, n);
	c->out_len += n;
}

void conn_reply_err(struct conn *c, const char *code, const char *msg)
{
	unsigned char buf[256];
	out_put(c, buf, tcp_reply_err(buf, sizeof(buf), code, msg));
}

/* An error the node or the store answered, as a reply (the connection
 * stays open: the request itself was well framed). */
static void reply_kv_err(struct conn *c, int err)
{
	switch (err) {
	case -ENOENT:
		conn_reply_err(c, "not_found", "no such key");
		return;
	case -EISDIR:
	case -ENOTDIR:
	case -ENOTEMPTY:
	case -EEXIST:
		conn_reply_err(
		    c, "conflict",
		    "the key conflicts with a directory: a key cannot "
		    "be both a value and a directory");
		return;
	case -EINVAL:
	case -ENAMETOOLONG:
		conn_reply_err(
		    c, "bad_key",
		    "bad key: it must be UTF-8 without NUL, at most "
		    "4096 bytes, with '/'-separated segments of at most "
		    "255 bytes that are not empty, '.' or '..'");
		return;
	case -EFBIG:
		conn_reply_err(c, "too_large",
			       "the value is larger than 16 MiB");
		return;
	case -ENOSPC:
	case -EDQUOT:
		conn_reply_err(c, "disk_full",
			       "the disk is full: nothing was written");
		return;
	case KV_ENOQUORUM:
	case KV_ENOTLEADER:
	case KV_ESHUTDOWN:
	case -EAGAIN:
	case -ETIMEDOUT:
	case -ENOMEM:
		conn_reply_err(
		    c, "unavailable",
		    err == KV_ENOQUORUM
			? "no leader or no quorum within the write "
			  "timeout (a write's outcome is unknown: it "
			  "may still apply)"
			: kv_strerror(err));
		return;
	default:
		conn_reply_err(c, "internal", kv_strerror(err));
	}
}

/* ---- serving a request ---- */

static void on_done(void *ctx, int ret, const struct kv_result *res)
{
	struct conn *c = ctx;
	struct tcp_server *s = c->s;
	uint64_t one = 1;

	pthread_mutex_lock(&s->mu);
	c->answered = true;
	c->ret = ret;
	if (res)
		c->res = *res;
	bool first = !s->done;
	c->next_done = s->done;
	s->done = c;
	pthread_mutex_unlock(&s->mu);
	/* One wake a batch: the answers the node thread settles in one turn
	 * make one write, not one each. The loop reads the eventfd before it
	 * takes the list (drain_done), so a list that is not empty always
	 * has a write after it became so that the loop has not read yet, or
	 * is taken whole by a drain that follows this push. */
	if (!first)
		return;
	ssize_t w = write(s->wake_fd, &one, sizeof(one));
	(void)w; /* the counter saturating is no loss: it is already set */
}

/* ALL: every key, in key order, a page of ALL_PAGE keys at a time (each
 * page one read of the map, so the applier is never held up long),
 * appended to the packet after its 5-byte header; the header is filled
 * in at the end. Over TCP_MAX_VALUE: too_large instead. */
#define ALL_PAGE 4096

static void serve_all(struct conn *c)
{
	struct store *st = node_store(c->s->node);
	size_t at = c->out_len, size = 0, count = 0;
	char *after = NULL;
	unsigned char h[6] = {0};
	int rc = 0;
	bool big = false;

	out_put(c, h, 5); /* the size, filled in once known */
	for (;;) {
		struct kv_list list = {0};
		rc = store_list_all(st, "", 0, after, ALL_PAGE, &list);
		if (rc == -ENOENT) { /* an empty store */
			rc = 0;
			break;
		}
		if (rc < 0)
			break;
		for (size_t i = 0; i < list.n && !big; i++) {
			const char *k = list.ents[i].name;
			size_t kl = strlen(k), hn = 0;
			size_t add = (count ? 1 : 0) + 5 + kl;
			if (size + add > TCP_MAX_VALUE) {
				big = true;
				break;
			}
			if (count)
				h[hn++] = ' ';
			tcp_size_header(h + hn, (uint32_t)kl);
			out_put(c, h, hn + 5);
			out_put(c, k, kl);
			size += add;
			count++;
		}
		bool more = list.more && list.n > 0 && !big;
		free(after);
		after = more ? strdup(list.ents[list.n - 1].name) : NULL;
		kv_list_clear(&list);
		if (!more)
			break;
		if (!after) {
			rc = -ENOMEM;
			break;
		}
	}
	free(after);
	if (big || rc < 0) {
		c->out_len = at;
		if (big)
			conn_reply_err(
			    c, "too_large",
			    "the keys take more than 16 MiB: list them "
			    "over HTTP (GET /kv/DIR/?recursive, paginated)");
		else
			reply_kv_err(c, rc);
	} else if (c->out_len >= at + 5) {
		tcp_size_header(c->out + at, (uint32_t)size);
	}
}

static void serve_get(struct conn *c)
{
	struct kv_rec *rec = NULL;
	struct store *st = node_store(c->s->node);
	int rc = store_get(st, c->key, c->klen, &rec);
	if (rc == -ENOENT) {
		struct kv_stat sb;
		if (store_stat(st, c->key, c->klen, &sb) == 0 && sb.is_dir)
			rc = -EISDIR;
	}
	if (rc < 0) {
		reply_kv_err(c, rc);
		return;
	}
	unsigned char h[5];
	tcp_size_header(h, (uint32_t)rec->vlen);
	if (out_room(c, 5 + rec->vlen)) {
		out_put(c, h, 5);
		out_put(c, kv_rec_val(rec), rec->vlen);
	} else {
		c->closing = true;
	}
	kv_rec_unref(rec);
}

/* The read (after the barrier) or the write's outcome. */
void conn_finish(struct conn *c, int ret, const struct kv_result *res)
{
	if (ret < 0) {
		reply_kv_err(c, ret);
	} else if (c->fr.cmd == TCP_GET) {
		serve_get(c);
	} else if (c->fr.cmd == TCP_ALL) {
		serve_all(c);
	} else if (res->err < 0) {
		reply_kv_err(c, res->err);
	} else {
		out_put(c, TCP_TRUE, 4);
	}
}

/* Start serving the parsed request c->fr: answered now, or c->busy
 * until its call answers. */
void conn_serve(struct conn *c, uint64_t now)
{
	struct kv_node *n = c->s->node;
	struct tcp_frame *f = &c->fr;
	int rc;

	(void)now;
	if (f->cmd != TCP_ALL) {
		memcpy(c->key, f->key, f->klen);
		c->key[f->klen] = '\0';
		c->klen = f->klen;
		if ((rc = kv_key_check(c->key, c->klen)) != 0) {
			reply_kv_err(c, rc);
			return;
		}
	}
	if (f->cmd == TCP_GET || f->cmd == TCP_ALL) {
		if (node_read_now(n)) {
			conn_finish(c, 0, NULL);
			return;
		}
		c->busy = true;
		rc = node_read_barrier_async(n, on_done, c);
	} else {
		static unsigned char empty[1];
		struct kv_cmd cmd = {.op = f->cmd == TCP_SET ? KV_OP_PUT
							     : KV_OP_DEL,
				     .key = c->key,
				     .klen = c->klen};
		if (f->cmd == TCP_SET) {
			cmd.val = f->vlen ? (unsigned char *)f->val : empty;
			cmd.vlen = f->vlen;
		}
		c->busy = true;
		rc = node_propose_async(n, &cmd, on_done, c);
	}
	if (rc < 0) {
		c->busy = false;
		reply_kv_err(c, rc);
	}
}
