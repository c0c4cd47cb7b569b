/* http_tls.c - TLS on the listener: libmicrohttpd's options, and the
 * certificates clients and peers present.
 *
 * The listener takes the process's identity (raft/peer/peer_tls.h) from
 * memory: its certificate and key, and the cluster's CA as the trust that
 * makes it ask every client for a certificate (optional in the handshake:
 * a client without one is refused per request, where the rules need one,
 * http_auth.c). libmicrohttpd does not check a client's certificate: it is
 * checked here, against the CA, with GnuTLS. A check costs a signature;
 * the fingerprints of certificates found good are kept a minute, so a
 * client sending many requests pays it about once (the handshake proved
 * the key; the chain is all that is checked). No session tickets are
 * sent: nothing reaches a peer's stream before its answer (peer_conn.c).
 * The server's cipher order wins and puts AES-128-GCM first: per request
 * the cost is the records, and the cheaper cipher still is 128-bit.
 * The listener itself is http.c's. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "http_int.h"
#include "peer_tls.h"

#define CACHE_MS 60000

unsigned http_tls_options(struct http_server *h, const struct peer_tls *t,
			  bool client_auth, struct MHD_OptionItem *opts,
			  size_t cap)
{
	size_t k = 0;

	h->tls = t;
	h->tls_client_auth = t && client_auth;
	if (t && cap >= 5) {
		opts[k++] = (struct MHD_OptionItem){
		    MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)peer_tls_key_pem(t)};
		opts[k++] = (struct MHD_OptionItem){
		    MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)peer_tls_cert_pem(t)};
		opts[k++] = (struct MHD_OptionItem){
		    MHD_OPTION_HTTPS_MEM_TRUST, 0, (void *)peer_tls_ca_pem(t)};
		opts[k++] = (struct MHD_OptionItem){
		    MHD_OPTION_HTTPS_PRIORITIES, 0,
		    (void *)"PERFORMANCE:%SERVER_PRECEDENCE:%NO_TICKETS"};
	}
	opts[k] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
	return t ? MHD_USE_TLS : 0;
}

static bool cache_has(struct http_cert_cache *c, const unsigned char *fp,
		      uint64_t now)
{
	bool hit = false;

	pthread_mutex_lock(&c->mu);
	for (unsigned i = 0; i < HTTP_CERT_SLOTS && !hit; i++)
		hit = c->slot[i].until_ms > now &&
		      memcmp(c->slot[i].fp, fp, HTTP_CERT_FP) == 0;
	pthread_mutex_unlock(&c->mu);
	return hit;
}

static void cache_add(struct http_cert_cache *c, const unsigned char *fp,
		      uint64_t until)
{
	pthread_mutex_lock(&c->mu);
	unsigned i = c->next++ % HTTP_CERT_SLOTS;
	memcpy(c->slot[i].fp, fp, HTTP_CERT_FP);
	c->slot[i].until_ms = until;
	pthread_mutex_unlock(&c->mu);
}

int http_tls_client_cert(struct http_req *r)
{
	if (!r->http->tls)
		return 0;
	if (r->cert != 0)
		return r->cert;
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(
	    r->conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	gnutls_session_t s = ci ? (gnutls_session_t)ci->tls_session : NULL;
	unsigned n = 0, status = 0;
	const gnutls_datum_t *crt =
	    s ? gnutls_certificate_get_peers(s, &n) : NULL;
	unsigned char fp[HTTP_CERT_FP];
	uint64_t now = kv_mono_ms();

	if (!crt || n == 0)
		return 0; /* none presented */
	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, crt[0].data, crt[0].size, fp) <
	    0)
		return r->cert = -1;
	if (cache_has(&r->http->certs, fp, now))
		return r->cert = 1;
	if (gnutls_certificate_verify_peers2(s, &status) < 0 || status != 0) {
		gnutls_datum_t txt = {NULL, 0};
		char from[80];
		gnutls_certificate_verification_status_print(
		    status, GNUTLS_CRT_X509, &txt, 0);
		http_remote(r, from, sizeof(from));
		kv_log(KV_LOG_WARN, "refused the certificate of %s: %s", from,
		       txt.data ? (char *)txt.data : "cannot be checked");
		gnutls_free(txt.data);
		return r->cert = -1;
	}
	cache_add(&r->http->certs, fp, now + CACHE_MS);
	return r->cert = 1;
}
