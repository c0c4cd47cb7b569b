/* peer_token.c - the cluster's secret: making one, reading its file.
 *
 * A token is PEER_TOKEN_BYTES random bytes from the kernel (getrandom),
 * written as lowercase hex: nothing public goes into it. A token file holds
 * one token a line, at most PEER_TOKENS of them: the first is the one a
 * node presents, every one is accepted, which is how a token is rotated
 * without downtime (docs/security.md). The file is read by the node
 * (raft/node/identity.c, again on SIGHUP) and by kvfsctl; the comparison
 * is in peer_recv.c. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "peer.h"

int peer_token_new(char *out)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char b[PEER_TOKEN_BYTES];
	size_t got = 0;

	while (got < sizeof(b)) {
		ssize_t r = getrandom(b + got, sizeof(b) - got, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		got += (size_t)r;
	}
	for (size_t i = 0; i < sizeof(b); i++) {
		out[2 * i] = hex[b[i] >> 4];
		out[2 * i + 1] = hex[b[i] & 15];
	}
	out[2 * sizeof(b)] = '\0';
	explicit_bzero(b, sizeof(b));
	return 0;
}

static int bad(char **errmsg, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int bad(char **errmsg, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(errmsg, fmt, ap) < 0)
		*errmsg = NULL;
	va_end(ap);
	return -EINVAL;
}

int peer_tokens_read(const char *path, char tokens[][PEER_ID_MAX + 1],
		     size_t *n, char **errmsg)
{
	char line[PEER_ID_MAX + 3];
	unsigned lineno = 0;
	int err = 0;

	*n = 0;
	*errmsg = NULL;
	FILE *f = fopen(path, "re");
	if (!f) {
		err = -errno;
		if (asprintf(errmsg, "cannot read the token file %s: %s", path,
			     strerror(errno)) < 0)
			*errmsg = NULL;
		return err;
	}
	while (err == 0 && fgets(line, sizeof(line), f)) {
		size_t len = strcspn(line, "\r\n");
		bool whole = line[len] != '\0' || feof(f);
		lineno++;
		line[len] = '\0';
		if (len == 0)
			continue;
		if (!whole || !peer_id_valid(line) || len < PEER_TOKEN_MIN_LEN)
			err =
			    bad(errmsg,
				"the token file %s, line %u: a token is %d "
				"to %d printable characters without spaces "
				"(kvfsctl new-token makes one)",
				path, lineno, PEER_TOKEN_MIN_LEN, PEER_ID_MAX);
		else if (*n == PEER_TOKENS)
			err = bad(errmsg,
				  "the token file %s holds more than %d tokens "
				  "(the one presented, and one more during a "
				  "rotation)",
				  path, PEER_TOKENS);
		else
			memcpy(tokens[(*n)++], line, len + 1);
	}
	if (err == 0 && ferror(f))
		err = bad(errmsg, "cannot read the token file %s", path);
	if (err == 0 && *n == 0)
		err = bad(errmsg,
			  "the token file %s holds no token (kvfsctl "
			  "new-token > FILE makes one)",
			  path);
	fclose(f);
	explicit_bzero(line, sizeof(line));
	if (err != 0) {
		for (size_t i = 0; i < *n; i++)
			explicit_bzero(tokens[i], PEER_ID_MAX + 1);
		*n = 0;
	}
	return err;
}
