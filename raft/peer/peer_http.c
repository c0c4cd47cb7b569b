/* peer_http.c - the HTTP/1.1 a stream speaks, written and read by hand.
 *
 * A stream is one POST whose body has no known length: it goes chunked,
 * each chunk one frame (peer_frame_header's length line and a batch), and
 * a zero-length chunk ends it. The peer answers "100 Continue" when it
 * takes the stream and a final answer only when the stream ends or fails;
 * only enough of it is read to judge it (its status, and the start of its
 * body for the reason). No HTTP library: these few rules are all the
 * sender needs. The connection itself is peer_stream.c's. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "kv.h"
#include "peer_int.h"

int peer_http_request(struct peer *p, char *buf, size_t cap)
{
	struct peer_set *s = p->set;
	pthread_mutex_lock(&s->token_mu);
	int n = snprintf(buf, cap,
			 "POST %s HTTP/1.1\r\n"
			 "Host: %s\r\n"
			 "Content-Type: application/x-kvfs-raft-stream\r\n"
			 "Transfer-Encoding: chunked\r\n"
			 "Expect: 100-continue\r\n"
			 "%s: %s\r\n%s: %s\r\n%s: %d\r\n\r\n",
			 PEER_STREAM_PATH, p->addr, PEER_HDR_CLUSTER,
			 s->cluster_id, PEER_HDR_TOKEN, s->token,
			 PEER_HDR_PROTOCOL, PEER_PROTOCOL_VERSION);
	pthread_mutex_unlock(&s->token_mu);
	return n < 0 || (size_t)n >= cap ? -ENOSPC : n;
}

void peer_chunk_set(struct chunk *c, char *body, size_t blen, size_t msgs,
		    uint64_t *proposes, size_t n_proposes)
{
	*c = (struct chunk){.active = true,
			    .body = body,
			    .blen = blen,
			    .msgs = msgs,
			    .proposes = proposes,
			    .n_proposes = n_proposes,
			    .moved_ms = kv_mono_ms()};
	if (body == NULL) {
		memcpy(c->head, "0\r\n\r\n", 5);
		c->hlen = 5;
		return;
	}
	char fh[PEER_FRAME_HDR_MAX];
	size_t fl = peer_frame_header(blen, fh);
	c->hlen =
	    (size_t)snprintf(c->head, sizeof(c->head), "%zx\r\n", fl + blen);
	memcpy(c->head + c->hlen, fh, fl);
	c->hlen += fl;
}

void peer_chunk_clear(struct chunk *c)
{
	free(c->body);
	free(c->proposes);
	*c = (struct chunk){.active = false};
}

int peer_answer_read(struct peer *p, struct answer *a)
{
	size_t got = 0;

	if (a->len == PEER_ANSWER_MAX) {
		a->eof = true; /* enough to judge it */
		return 0;
	}
	int r =
	    peer_conn_recv(p, a->buf + a->len, PEER_ANSWER_MAX - a->len, &got);
	a->len += got;
	if (r == 1)
		a->eof = true;
	return r < 0 ? r : 0;
}

/* The value of header name (lower case, with its ':') in head[0..n), or
 * NULL. */
static const char *header_value(const char *head, size_t n, const char *name)
{
	size_t nl = strlen(name);

	for (const char *l = head; l < head + n;) {
		const char *e = memchr(l, '\n', (size_t)(head + n - l));
		if (e == NULL)
			break;
		if ((size_t)(e - l) > nl && strncasecmp(l, name, nl) == 0) {
			l += nl;
			while (*l == ' ' || *l == '\t')
				l++;
			return l;
		}
		l = e + 1;
	}
	return NULL;
}

/* The status line of head s: its code, or -1 if it is not HTTP/1.x. */
static int status_code(const char *s)
{
	if (strncmp(s, "HTTP/1.", 7) != 0 || s[8] != ' ' || s[9] < '1' ||
	    s[9] > '5' || s[10] < '0' || s[10] > '9' || s[11] < '0' ||
	    s[11] > '9')
		return -1;
	return (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
}

int peer_answer_parse(struct answer *a, int *status, char *text, size_t cap)
{
	a->buf[a->len] = '\0';
	const char *end = memmem(a->buf, a->len, "\r\n\r\n", 4);
	if (end == NULL)
		return a->eof ? -1 : 0;
	size_t hlen = (size_t)(end - a->buf) + 4;
	if ((*status = status_code(a->buf)) < 0)
		return -1;
	text[0] = '\0';
	if (*status < 200) {
		memmove(a->buf, a->buf + hlen, a->len - hlen);
		a->len -= hlen;
		return 1;
	}
	const char *body = a->buf + hlen;
	size_t have = a->len - hlen, want = PEER_RESP_KEEP;
	const char *cl = header_value(a->buf, hlen, "content-length:");
	const char *te = header_value(a->buf, hlen, "transfer-encoding:");
	if (*status == 204 || *status == 304) {
		want = 0;
	} else if (cl != NULL) {
		unsigned long long v = strtoull(cl, NULL, 10);
		want = v < PEER_RESP_KEEP ? (size_t)v : PEER_RESP_KEEP;
	} else if (te != NULL && strncasecmp(te, "chunked", 7) == 0) {
		const char *nl = memchr(body, '\n', have);
		if (nl == NULL)
			return a->eof ? -1 : 0;
		unsigned long long v = strtoull(body, NULL, 16);
		want = v < PEER_RESP_KEEP ? (size_t)v : PEER_RESP_KEEP;
		have -= (size_t)(nl + 1 - body);
		body = nl + 1;
	}
	if (have < want && !a->eof && a->len < PEER_ANSWER_MAX)
		return 0;
	size_t n = have < want ? have : want;
	if (n >= cap)
		n = cap - 1;
	for (size_t i = 0; i < n; i++)
		text[i] = body[i] < 0x20 || body[i] > 0x7e ? ' ' : body[i];
	while (n > 0 && text[n - 1] == ' ')
		n--;
	text[n] = '\0';
	return 1;
}
