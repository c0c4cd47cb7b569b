/* peer_conn.c - a stream's connection: plain TCP, or TLS over it.
 *
 * Everything that writes to or reads from a stream's socket goes through
 * here, so the rest of the senders do not care whether the set has a TLS
 * identity (peer_tls.h). The TLS session is GnuTLS's, non-blocking, with
 * the chain and validity of the peer's certificate checked against the CA
 * in the handshake (no name check: peers are members by the CA). A frame
 * is handed to the session corked and flushed with gnutls_record_uncork:
 * when the socket is full, GnuTLS keeps the rest and the next uncork
 * resends the same record data, as a non-blocking session requires, so a
 * frame never mixes with another. One thread writes at a time (p->mu) and
 * only the sender thread reads, which a GnuTLS session allows; the
 * listener sends no session tickets (http_tls.c), so nothing arrives on a
 * stream before its answer. State and locks: peer_int.h. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <gnutls/gnutls.h>

#include "kv.h"
#include "peer_int.h"

int peer_wait_fd(struct peer *p, int fd, short events, uint64_t end_ms)
{
	for (;;) {
		if (atomic_load(&p->stop))
			return KV_ESHUTDOWN;
		uint64_t now = kv_mono_ms();
		if (now >= end_ms)
			return 0;
		struct pollfd pf[2] = {{.fd = fd, .events = events},
				       {.fd = p->wake_fd, .events = POLLIN}};
		uint64_t left = end_ms - now;
		int r = poll(pf, 2, left > 1000000 ? 1000000 : (int)left);
		if (r < 0 && errno != EINTR)
			return 0;
		if (r > 0 && pf[1].revents)
			peer_drain_wake(p);
		if (r > 0 && pf[0].revents)
			return 1;
	}
}

/* Why a handshake failed, with the certificate's status when that was
 * it. */
static void handshake_why(struct peer *p, gnutls_session_t s, int r, char *why,
			  size_t why_len)
{
	gnutls_datum_t txt = {NULL, 0};

	if (r == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR)
		gnutls_certificate_verification_status_print(
		    gnutls_session_get_verify_cert_status(s), GNUTLS_CRT_X509,
		    &txt, 0);
	snprintf(why, why_len, "TLS with %s: %s%s%s", p->addr,
		 gnutls_strerror(r), txt.data ? ": " : "",
		 txt.data ? (char *)txt.data : "");
	gnutls_free(txt.data);
}

int peer_conn_handshake(struct peer *p, int fd, char *why, size_t why_len)
{
	const struct peer_tls *t = p->set->opt.tls;
	uint64_t end = kv_mono_ms() + p->set->opt.timeout_ms;
	gnutls_session_t s;
	int r;

	if (!t)
		return 0;
	if (gnutls_init(&s, GNUTLS_CLIENT | GNUTLS_NONBLOCK |
				GNUTLS_NO_SIGNAL) < 0) {
		snprintf(why, why_len, "TLS with %s: no session", p->addr);
		return -EIO;
	}
	if ((r = gnutls_set_default_priority(s)) < 0 ||
	    (r = gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE,
					peer_tls_cred(t))) < 0) {
		handshake_why(p, s, r, why, why_len);
		gnutls_deinit(s);
		return -EIO;
	}
	/* the chain and its dates against the CA; no host name */
	gnutls_session_set_verify_cert(s, NULL, 0);
	gnutls_transport_set_int(s, fd);
	while ((r = gnutls_handshake(s)) < 0) {
		if (r != GNUTLS_E_AGAIN && r != GNUTLS_E_INTERRUPTED) {
			handshake_why(p, s, r, why, why_len);
			gnutls_deinit(s);
			return -EIO;
		}
		short ev = gnutls_record_get_direction(s) ? POLLOUT : POLLIN;
		int w = peer_wait_fd(p, fd, ev, end);
		if (w <= 0) {
			if (w == 0)
				snprintf(why, why_len,
					 "TLS with %s: no handshake in %u ms",
					 p->addr, p->set->opt.timeout_ms);
			gnutls_deinit(s);
			return w == 0 ? -EIO : w;
		}
	}
	pthread_mutex_lock(&p->mu);
	p->tls = s;
	pthread_mutex_unlock(&p->mu);
	return 0;
}

/* An error of a TLS session as an errno. */
static int tls_errno(ssize_t r)
{
	return r == GNUTLS_E_PUSH_ERROR || r == GNUTLS_E_PULL_ERROR
		   ? (errno ? -errno : -EIO)
		   : -EPROTO;
}

/* Hand buf[0..len) to a corked session. */
static int tls_put(gnutls_session_t s, const char *buf, size_t len)
{
	for (size_t off = 0; off < len;) {
		ssize_t r = gnutls_record_send(s, buf + off, len - off);
		if (r < 0)
			return tls_errno(r);
		off += (size_t)r;
	}
	return 0;
}

/* Flush what a corked session holds: 1 all went, 0 the socket is full
 * (call again with nothing new), -errno. *moved says bytes went. */
static int tls_flush(gnutls_session_t s, bool *moved)
{
	size_t before = gnutls_record_check_corked(s);
	ssize_t r = gnutls_record_uncork(s, 0);
	*moved = gnutls_record_check_corked(s) < before;
	if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
		return 0;
	return r < 0 ? tls_errno(r) : 1;
}

int peer_conn_send(struct peer *p, const char *buf, size_t len, char *why,
		   size_t why_len)
{
	uint64_t end = kv_mono_ms() + p->set->opt.timeout_ms;
	size_t off = 0;
	int r = 0;
	bool moved;

	if (p->tls) {
		gnutls_record_cork(p->tls);
		r = tls_put(p->tls, buf, len);
	}
	while (r == 0) {
		if (p->tls) {
			r = tls_flush(p->tls, &moved);
			if (r == 1)
				return 0;
		} else {
			ssize_t n = send(p->fd, buf + off, len - off,
					 MSG_DONTWAIT | MSG_NOSIGNAL);
			if (n > 0 && (off += (size_t)n) == len)
				return 0;
			if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
			    errno != EINTR)
				r = -errno;
		}
		if (r < 0)
			break;
		int w = peer_wait_fd(p, p->fd, POLLOUT, end);
		if (w == KV_ESHUTDOWN)
			return w;
		if (w == 0) {
			snprintf(why, why_len,
				 "the peer took nothing for %u ms",
				 p->set->opt.timeout_ms);
			return -EIO;
		}
	}
	snprintf(why, why_len, "writing to %s: %s", p->addr, strerror(-r));
	return -EIO;
}

/* The plain socket's part of peer_conn_push: one sendmsg of what is
 * left of head, payload and CRLF, as often as the socket takes it. */
static int push_plain(struct peer *p, struct chunk *c)
{
	static const char crlf[2] = {'\r', '\n'};

	for (;;) {
		const char *seg[3] = {c->head, c->body, crlf};
		size_t len[3] = {c->hlen, c->blen, c->body ? 2 : 0};
		size_t skip = c->off;
		struct iovec iov[3];
		int k = 0;

		for (int i = 0; i < 3; i++) {
			if (skip >= len[i]) {
				skip -= len[i];
				continue;
			}
			iov[k].iov_base = (void *)(seg[i] + skip);
			iov[k++].iov_len = len[i] - skip;
			skip = 0;
		}
		if (k == 0)
			return 1;
		struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)k};
		ssize_t r = sendmsg(p->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return -errno;
		}
		c->off += (size_t)r;
		c->moved_ms = kv_mono_ms();
	}
}

int peer_conn_push(struct peer *p, struct chunk *c)
{
	static const char crlf[2] = {'\r', '\n'};
	bool moved = false;
	int r;

	if (!p->tls)
		return push_plain(p, c);
	if (!c->corked) {
		gnutls_record_cork(p->tls);
		if ((r = tls_put(p->tls, c->head, c->hlen)) < 0 ||
		    (c->body && (r = tls_put(p->tls, c->body, c->blen)) < 0) ||
		    (c->body && (r = tls_put(p->tls, crlf, 2)) < 0))
			return r;
		c->corked = true;
		c->off = c->hlen + c->blen + (c->body ? 2 : 0);
	}
	r = tls_flush(p->tls, &moved);
	if (moved)
		c->moved_ms = kv_mono_ms();
	return r;
}

int peer_conn_recv(struct peer *p, char *buf, size_t cap, size_t *got)
{
	*got = 0;
	if (!p->tls) {
		ssize_t r = recv(p->fd, buf, cap, MSG_DONTWAIT);
		if (r > 0)
			*got = (size_t)r;
		if (r >= 0)
			return r == 0;
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR
			   ? 0
			   : -errno;
	}
	/* What GnuTLS has decrypted already is not seen by poll: take it
	 * all while there is room. */
	while (*got < cap) {
		ssize_t r = gnutls_record_recv(p->tls, buf + *got, cap - *got);
		if (r > 0) {
			*got += (size_t)r;
			if (gnutls_record_check_pending(p->tls) == 0)
				return 0;
			continue;
		}
		if (r == 0 || r == GNUTLS_E_PREMATURE_TERMINATION)
			return 1;
		if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
			return 0;
		return r == GNUTLS_E_PULL_ERROR ? -ECONNRESET : -EPROTO;
	}
	return 0;
}

void peer_conn_close(struct peer *p, bool clean)
{
	if (p->tls) {
		if (clean) /* close_notify, if the socket takes it now */
			gnutls_bye(p->tls, GNUTLS_SHUT_WR);
		gnutls_deinit(p->tls);
		p->tls = NULL;
	}
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
}
