/* addr.c - "HOST:PORT" addresses, parsed in one place.
 *
 * --listen, --peers, --join, the membership API and the peer senders all
 * take addresses; each used to parse them its own way, and one accepted
 * port 99999 (listening on 99999 mod 65536). This is the only parser: the
 * port is decimal digits in 1..65535 (0 only where the kernel may pick),
 * an IPv6 host goes in brackets, a host holds nothing that could bend a
 * URL or a Host header, and nothing else is guessed. */
#include <errno.h>
#include <string.h>

#include "kv.h"

/* A character of a host name (or IPv4 address). */
static bool is_host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

/* A character of a bracketed IPv6 address (with an IPv4 tail). */
static bool is_ip6_char(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
	       (c >= 'A' && c <= 'F') || c == ':' || c == '.';
}

static int fail(const char **why, const char *msg)
{
	if (why)
		*why = msg;
	return -EINVAL;
}

int kv_addr_parse(const char *s, bool allow_zero, char *host, size_t cap,
		  unsigned *port, const char **why)
{
	if (s == NULL || *s == '\0')
		return fail(why, "empty address; expected HOST:PORT");
	size_t len = strlen(s);
	if (len > KV_ADDR_MAX)
		return fail(why, "address too long");
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] == 0x7f)
			return fail(why, "address holds a space or control "
					 "character");
	const char *h = s, *colon;
	size_t hlen;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (!close || close[1] != ':')
			return fail(why, "bad IPv6 address; expected "
					 "[ADDRESS]:PORT");
		h = s + 1;
		hlen = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return fail(why, "no port; expected HOST:PORT");
		hlen = (size_t)(colon - s);
		if (memchr(s, ':', hlen))
			return fail(why, "an IPv6 address goes in brackets: "
					 "[ADDRESS]:PORT");
	}
	if (hlen == 0)
		return fail(why, "no host; expected HOST:PORT");
	for (size_t i = 0; i < hlen; i++)
		if (s[0] == '[' ? !is_ip6_char(h[i]) : !is_host_char(h[i]))
			return fail(why, "the host may hold letters, digits, "
					 "'.', '-' and '_' (an IPv6 address: "
					 "hex digits, ':' and '.')");
	const char *p = colon + 1;
	if (*p == '\0')
		return fail(why, "no port; expected HOST:PORT");
	unsigned long v = 0;
	for (const char *q = p; *q; q++) {
		if (*q < '0' || *q > '9')
			return fail(why, "the port must be a number");
		v = v * 10 + (unsigned long)(*q - '0');
		if (v > 65535)
			return fail(why, "the port must be at most 65535");
	}
	if (v == 0 && !allow_zero)
		return fail(why, "the port must be from 1 to 65535");
	if (hlen >= cap)
		return fail(why, "host name too long");
	if (host) {
		memcpy(host, h, hlen);
		host[hlen] = '\0';
	}
	if (port)
		*port = (unsigned)v;
	return 0;
}

bool kv_addr_valid(const char *s)
{
	char host[KV_ADDR_MAX + 1];
	return kv_addr_parse(s, false, host, sizeof(host), NULL, NULL) == 0;
}
