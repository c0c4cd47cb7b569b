/* tcp_proto.c - the byte DB's framing: requests parsed, replies made.
 *
 * A request is a command word and a space, then each size as a 4-byte
 * little-endian unsigned integer followed by a space, then the key, and
 * for SET a space and the value: "SET " KS " " VS " " KEY " " VAL,
 * "GET " KS " " KEY, "DEL " KS " " KEY, and "ALL" alone, exactly as the
 * byte DB's own client framed them. The sizes make it binary-safe: a key
 * or value may hold any byte. tcp_parse is called again with more bytes
 * until a request is whole, and refuses what cannot become one as soon as
 * the offending byte or size is in (a size over the store's limits before
 * the key or value is sent). The listener is tcp.c. */
#include <stdio.h>
#include <string.h>

#include "tcp_int.h"

void tcp_put_u32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16);
	p[3] = (unsigned char)(v >> 24);
}

uint32_t tcp_get_u32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static bool blank(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* The command of the word at p[0..n) (n <= 3 bytes in): 0 while it may
 * still become one, -1 if it cannot, else the command. */
static int command_of(const unsigned char *p, size_t n)
{
	static const struct {
		char word[4];
		enum tcp_cmd cmd;
	} words[] = {{"SET", TCP_SET},
		     {"GET", TCP_GET},
		     {"DEL", TCP_DEL},
		     {"ALL", TCP_ALL}};
	bool maybe = false;

	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		if (memcmp(p, words[i].word, n < 3 ? n : 3) != 0)
			continue;
		if (n >= 3)
			return (int)words[i].cmd;
		maybe = true;
	}
	return maybe ? 0 : -1;
}

long tcp_parse(const unsigned char *buf, size_t len, struct tcp_frame *f,
	       size_t *need)
{
	size_t s = 0, p;
	uint32_t ks, vs = 0;

	*need = 0;
	while (s < len && blank(buf[s]))
		s++;
	const unsigned char *b = buf + s;
	size_t n = len - s;
	int c = command_of(b, n);
	if (c < 0)
		return TCP_EBAD;
	if (c == 0)
		return TCP_MORE;
	memset(f, 0, sizeof(*f));
	f->cmd = (enum tcp_cmd)c;
	if (f->cmd == TCP_ALL)
		return (long)(s + 3);
	/* "CMD " KS " " [VS " "] */
	size_t hdr = f->cmd == TCP_SET ? 14 : 9;
	if (n > 3 && b[3] != ' ')
		return TCP_EBAD;
	if (n > 8 && b[8] != ' ')
		return TCP_EBAD;
	if (n >= 8 && (ks = tcp_get_u32(b + 4)) > TCP_MAX_KEY)
		return TCP_EKEYBIG;
	if (f->cmd == TCP_SET) {
		if (n > 13 && b[13] != ' ')
			return TCP_EBAD;
		if (n >= 13 && (vs = tcp_get_u32(b + 9)) > TCP_MAX_VALUE)
			return TCP_EVALBIG;
	}
	if (n < hdr)
		return TCP_MORE;
	ks = tcp_get_u32(b + 4);
	/* SET: the key, a space, the value */
	size_t total = hdr + ks + (f->cmd == TCP_SET ? 1 + (size_t)vs : 0);
	*need = s + total;
	p = hdr + ks;
	if (f->cmd == TCP_SET && n > p && b[p] != ' ')
		return TCP_EBAD;
	if (n < total)
		return TCP_MORE;
	f->key = b + hdr;
	f->klen = ks;
	if (f->cmd == TCP_SET) {
		f->val = b + p + 1;
		f->vlen = vs;
	}
	return (long)(s + total);
}

void tcp_size_header(unsigned char buf[5], uint32_t size)
{
	tcp_put_u32(buf, size);
	buf[4] = ' ';
}

size_t tcp_reply_err(unsigned char *buf, size_t cap, const char *code,
		     const char *msg)
{
	int n = snprintf((char *)buf + 9, cap > 9 ? cap - 9 : 0, "%s: %s", code,
			 msg);
	size_t m = n < 0 ? 0 : (size_t)n;
	if (cap < 10)
		return 0;
	if (m > cap - 10)
		m = cap - 10; /* truncated by snprintf */
	memcpy(buf, "ERR ", 4);
	tcp_put_u32(buf + 4, (uint32_t)m);
	buf[8] = ' ';
	return 9 + m;
}
