/* peer_tls.h - this process's TLS identity: the cluster's CA, and the
 * certificate and key it presents.
 *
 * One identity per process, loaded once from PEM files (--tls-cert,
 * --tls-key, --tls-ca) and then read-only, so every thread may use it at
 * once: the peer streams' GnuTLS sessions (peer_conn.c), libcurl's
 * requests (snapshot transfer, joining, kvfsctl: the same files), and the
 * HTTP listener (raft/http/http_tls.c, which gives the same PEM texts to
 * libmicrohttpd). Peers are members by the CA: a certificate's chain and
 * validity are checked, never its names against a member's address
 * (docs/security.md says why). */
#ifndef KV_RAFT_PEER_TLS_H
#define KV_RAFT_PEER_TLS_H

#include <stdbool.h>
#include <stddef.h>

struct peer_tls;

/* The files of an identity: ca is required; cert and key go together (a
 * client such as kvfsctl may have neither). */
struct peer_tls_files {
	const char *cert, *key, *ca;
};

/* Load and check an identity: the CA file must hold at least one
 * certificate; the certificate must match the key, be valid now and be
 * issued by the CA. 0 and *out (free with peer_tls_free), or -EINVAL /
 * -errno with *errmsg (malloc'd) naming the file and what is wrong. The
 * key's text is never put in a message. Any thread; initializes GnuTLS. */
int peer_tls_new(const struct peer_tls_files *f, struct peer_tls **out,
		 char **errmsg);
void peer_tls_free(struct peer_tls *t);

/* The files it was loaded from (cert and key NULL without them), for
 * libcurl. Valid until peer_tls_free. Any thread. */
const char *peer_tls_ca_file(const struct peer_tls *t);
const char *peer_tls_cert_file(const struct peer_tls *t);
const char *peer_tls_key_file(const struct peer_tls *t);

/* The PEM texts (NUL-terminated; NULL without a certificate), for the
 * listener. Valid until peer_tls_free. Any thread. */
const char *peer_tls_ca_pem(const struct peer_tls *t);
const char *peer_tls_cert_pem(const struct peer_tls *t);
const char *peer_tls_key_pem(const struct peer_tls *t);

/* Make libcurl's easy handle (a CURL *) use identity t for an https://
 * request to a member: the CA to check the server's chain (not its name),
 * and this process's certificate and key when it has them. NULL t: nothing.
 * The peer module's libcurl users (join.c, snapxfer_send.c, kvfsctl). */
void peer_tls_curl(void *easy, const struct peer_tls *t);

/* The scheme of a URL to a member: "https" with an identity, else
 * "http". */
const char *peer_tls_scheme(const struct peer_tls *t);

#endif
