/* peer_tls.c - loading and checking this process's TLS identity.
 *
 * The three PEM files are read once: their texts are kept for the
 * listener (libmicrohttpd takes them from memory), their paths for
 * libcurl, and GnuTLS certificate credentials are built from them for the
 * peer streams (peer_conn.c). Everything a misconfiguration would only
 * show at the first connection is checked here instead, at start: the CA
 * file holds certificates, the key matches the certificate, and the
 * certificate is valid now and issued by the CA. The public API is
 * peer_tls.h. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "peer_int.h"
#include "peer_tls.h"

/* A PEM file's text is small: a chain of a few certificates, or a key. */
#define PEM_MAX (1024 * 1024)

struct peer_tls {
	char *ca_file, *cert_file, *key_file;
	char *ca_pem, *cert_pem, *key_pem;
	gnutls_certificate_credentials_t cred;
};

static int fail(char **errmsg, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char **errmsg, int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(errmsg, fmt, ap) < 0)
		*errmsg = NULL;
	va_end(ap);
	return err;
}

/* The whole of file what (an option's name, for messages) into *out. */
static int read_pem(const char *what, const char *path, char **out,
		    char **errmsg)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return fail(errmsg, -errno, "%s %s: %s", what, path,
			    strerror(errno));
	char *buf = malloc(PEM_MAX + 1);
	size_t n = buf ? fread(buf, 1, PEM_MAX + 1, f) : 0;
	bool err = ferror(f);
	fclose(f);
	if (!buf)
		return -ENOMEM;
	if (err || n == 0 || n > PEM_MAX) {
		free(buf);
		return fail(errmsg, -EINVAL, "%s %s: %s", what, path,
			    err ? "cannot be read"
			    : n ? "larger than 1 MiB: not a PEM file"
				: "empty");
	}
	buf[n] = '\0';
	*out = buf;
	return 0;
}

/* The certificate's validity now, and its issuer the CA. */
static int check_cert(struct peer_tls *t, char **errmsg)
{
	gnutls_x509_trust_list_t tl = NULL;
	gnutls_x509_crt_t *crts = NULL;
	unsigned n = 0, status = 0;
	gnutls_datum_t pem = {(unsigned char *)t->cert_pem,
			      (unsigned)strlen(t->cert_pem)};
	int ret = gnutls_x509_crt_list_import2(&crts, &n, &pem,
					       GNUTLS_X509_FMT_PEM, 0);
	if (ret < 0 || n == 0)
		return fail(errmsg, -EINVAL, "--tls-cert %s: %s", t->cert_file,
			    ret < 0 ? gnutls_strerror(ret)
				    : "no certificate in it");
	time_t now = time(NULL);
	if (gnutls_x509_crt_get_activation_time(crts[0]) > now ||
	    gnutls_x509_crt_get_expiration_time(crts[0]) < now) {
		ret = fail(errmsg, -EINVAL,
			   "--tls-cert %s: the certificate is not valid now "
			   "(expired, or not yet active)",
			   t->cert_file);
		goto out;
	}
	gnutls_datum_t ca = {(unsigned char *)t->ca_pem,
			     (unsigned)strlen(t->ca_pem)};
	if (gnutls_x509_trust_list_init(&tl, 0) < 0 ||
	    gnutls_x509_trust_list_add_trust_mem(
		tl, &ca, NULL, GNUTLS_X509_FMT_PEM, 0, 0) <= 0 ||
	    gnutls_x509_trust_list_verify_crt(tl, crts, n, 0, &status, NULL) <
		0) {
		ret = fail(errmsg, -EINVAL, "--tls-ca %s: cannot be used",
			   t->ca_file);
		goto out;
	}
	if (status != 0) {
		gnutls_datum_t txt = {NULL, 0};
		gnutls_certificate_verification_status_print(
		    status, GNUTLS_CRT_X509, &txt, 0);
		ret = fail(errmsg, -EINVAL,
			   "--tls-cert %s is not a certificate of the CA in "
			   "--tls-ca %s: %s",
			   t->cert_file, t->ca_file,
			   txt.data ? (char *)txt.data : "not trusted");
		gnutls_free(txt.data);
		goto out;
	}
	ret = 0;
out:
	if (tl)
		gnutls_x509_trust_list_deinit(tl, 1);
	for (unsigned i = 0; i < n; i++)
		gnutls_x509_crt_deinit(crts[i]);
	gnutls_free(crts);
	return ret;
}

static int load(struct peer_tls *t, const struct peer_tls_files *f,
		char **errmsg)
{
	int ret;

	if (!(t->ca_file = strdup(f->ca)) ||
	    (f->cert && !(t->cert_file = strdup(f->cert))) ||
	    (f->key && !(t->key_file = strdup(f->key))))
		return -ENOMEM;
	if ((ret = read_pem("--tls-ca", f->ca, &t->ca_pem, errmsg)) != 0 ||
	    (f->cert && (ret = read_pem("--tls-cert", f->cert, &t->cert_pem,
					errmsg)) != 0) ||
	    (f->key &&
	     (ret = read_pem("--tls-key", f->key, &t->key_pem, errmsg)) != 0))
		return ret;
	if ((ret = gnutls_certificate_allocate_credentials(&t->cred)) < 0)
		return -ENOMEM;
	gnutls_datum_t ca = {(unsigned char *)t->ca_pem,
			     (unsigned)strlen(t->ca_pem)};
	ret = gnutls_certificate_set_x509_trust_mem(t->cred, &ca,
						    GNUTLS_X509_FMT_PEM);
	if (ret <= 0)
		return fail(errmsg, -EINVAL,
			    "--tls-ca %s: no certificate in it%s%s", f->ca,
			    ret < 0 ? ": " : "",
			    ret < 0 ? gnutls_strerror(ret) : "");
	if (!f->cert)
		return 0;
	gnutls_datum_t crt = {(unsigned char *)t->cert_pem,
			      (unsigned)strlen(t->cert_pem)};
	gnutls_datum_t key = {(unsigned char *)t->key_pem,
			      (unsigned)strlen(t->key_pem)};
	ret = gnutls_certificate_set_x509_key_mem(t->cred, &crt, &key,
						  GNUTLS_X509_FMT_PEM);
	if (ret < 0)
		return fail(errmsg, -EINVAL,
			    "--tls-cert %s and --tls-key %s: %s (not a "
			    "certificate and its key, in PEM)",
			    f->cert, f->key, gnutls_strerror(ret));
	return check_cert(t, errmsg);
}

int peer_tls_new(const struct peer_tls_files *f, struct peer_tls **out,
		 char **errmsg)
{
	*errmsg = NULL;
	if (!f->ca)
		return fail(errmsg, -EINVAL,
			    "TLS needs --tls-ca (the cluster's CA)");
	if (!f->cert != !f->key)
		return fail(errmsg, -EINVAL,
			    "--tls-cert and --tls-key go together");
	if (gnutls_global_init() < 0)
		return fail(errmsg, -EIO, "GnuTLS did not initialise");
	struct peer_tls *t = calloc(1, sizeof(*t));
	if (!t) {
		gnutls_global_deinit();
		return -ENOMEM;
	}
	int ret = load(t, f, errmsg);
	if (ret != 0) {
		peer_tls_free(t);
		return ret;
	}
	*out = t;
	return 0;
}

void peer_tls_free(struct peer_tls *t)
{
	if (!t)
		return;
	if (t->cred)
		gnutls_certificate_free_credentials(t->cred);
	free(t->ca_file);
	free(t->cert_file);
	free(t->key_file);
	free(t->ca_pem);
	free(t->cert_pem);
	if (t->key_pem) /* the secret does not stay in freed memory */
		explicit_bzero(t->key_pem, strlen(t->key_pem));
	free(t->key_pem);
	free(t);
	gnutls_global_deinit();
}

const char *peer_tls_ca_file(const struct peer_tls *t)
{
	return t->ca_file;
}

const char *peer_tls_cert_file(const struct peer_tls *t)
{
	return t->cert_file;
}

const char *peer_tls_key_file(const struct peer_tls *t)
{
	return t->key_file;
}

const char *peer_tls_ca_pem(const struct peer_tls *t)
{
	return t->ca_pem;
}

const char *peer_tls_cert_pem(const struct peer_tls *t)
{
	return t->cert_pem;
}

const char *peer_tls_key_pem(const struct peer_tls *t)
{
	return t->key_pem;
}

void peer_tls_curl(void *easy, const struct peer_tls *t)
{
	CURL *c = easy;

	if (!t)
		return;
	curl_easy_setopt(c, CURLOPT_CAINFO, t->ca_file);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	/* members are members by the CA, not by name (peer_tls.h) */
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
	if (t->cert_file) {
		curl_easy_setopt(c, CURLOPT_SSLCERT, t->cert_file);
		curl_easy_setopt(c, CURLOPT_SSLCERTTYPE, "PEM");
		curl_easy_setopt(c, CURLOPT_SSLKEY, t->key_file);
		curl_easy_setopt(c, CURLOPT_SSLKEYTYPE, "PEM");
	}
}

const char *peer_tls_scheme(const struct peer_tls *t)
{
	return t ? "https" : "http";
}

gnutls_certificate_credentials_t peer_tls_cred(const struct peer_tls *t)
{
	return t->cred;
}
