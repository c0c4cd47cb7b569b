/* log_format.c - the lines of a log segment: header, entries, checksums.
 *
 * Fields are in a fixed order with no spaces, so reading a line is a scan
 * of a known prefix and one CRC, never a JSON parse: a 16 MiB command costs
 * a memchr and a checksum. The formats are specified in docs/log-format.md;
 * the segments that hold these lines are in log.c, their replay in
 * log_replay.c. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "codec.h"
#include "kv.h"
#include "log_int.h"

static void put_le64(unsigned char *b, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char)(v >> (8 * i));
}

uint32_t logfmt_crc(uint64_t index, uint64_t term, uint8_t type,
		    const char *data, size_t len)
{
	unsigned char b[17];
	put_le64(b, index);
	put_le64(b + 8, term);
	b[16] = type;
	return kv_crc32c(kv_crc32c(0, b, sizeof(b)), data, len);
}

static char *put_str(char *p, const char *s)
{
	size_t n = strlen(s);
	memcpy(p, s, n);
	return p + n;
}

/* Every entry appended writes one: by hand, as printf cost a PUT about
 * 800 instructions of its 38,000 (issue 25's profile). */
int logfmt_prefix(char *buf, size_t n, const struct log_entry *e)
{
	/* {"i":20 digits,"t":20,"y":3,"crc":"8","c": and a NUL */
	enum { MAX = 6 + 20 + 5 + 20 + 5 + 3 + 8 + 8 + 6 + 1 };
	char tmp[MAX], *p = tmp;
	uint32_t crc;
	if (e->data_checked && e->len) {
		/* the data's own CRC, taken where it arrived, extended */
		unsigned char b[17];
		put_le64(b, e->index);
		put_le64(b + 8, e->term);
		b[16] = e->type;
		crc = kv_crc32c_combine(kv_crc32c(0, b, sizeof(b)), e->data_crc,
					e->len);
	} else {
		crc = logfmt_crc(e->index, e->term, e->type, e->data, e->len);
	}
	static const char hex[] = "0123456789abcdef";

	p = put_str(p, "{\"i\":");
	p += kv_u64_dec(p, e->index);
	p = put_str(p, ",\"t\":");
	p += kv_u64_dec(p, e->term);
	p = put_str(p, ",\"y\":");
	p += kv_u64_dec(p, e->type);
	p = put_str(p, ",\"crc\":\"");
	for (int i = 7; i >= 0; i--)
		*p++ = hex[(crc >> (4 * i)) & 0xf];
	p = put_str(p, "\",\"c\":");
	*p = '\0';
	size_t len = (size_t)(p - tmp);
	if (n > 0) {
		size_t w = len < n ? len : n - 1;
		memcpy(buf, tmp, w);
		buf[w] = '\0';
	}
	return (int)len;
}

/* Parse an unsigned decimal at *p (no sign, no leading zeros, no
 * overflow); advances *p. */
static bool scan_u64(const unsigned char **p, const unsigned char *end,
		     uint64_t *out)
{
	const unsigned char *s = *p;
	uint64_t v = 0;
	if (s >= end || *s < '0' || *s > '9')
		return false;
	if (*s == '0' && s + 1 < end && s[1] >= '0' && s[1] <= '9')
		return false;
	while (s < end && *s >= '0' && *s <= '9') {
		unsigned d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
		s++;
	}
	*p = s;
	*out = v;
	return true;
}

static bool scan_lit(const unsigned char **p, const unsigned char *end,
		     const char *lit)
{
	size_t n = strlen(lit);
	if ((size_t)(end - *p) < n || memcmp(*p, lit, n) != 0)
		return false;
	*p += n;
	return true;
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

bool logfmt_all_zero(const unsigned char *p, size_t n)
{
	while (n && ((uintptr_t)p & 7)) {
		if (*p++)
			return false;
		n--;
	}
	for (; n >= 8; n -= 8, p += 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		if (w)
			return false;
	}
	while (n--)
		if (*p++)
			return false;
	return true;
}

/* The fields of an entry line, its checksum in *crc_out unchecked. */
static const char *parse_fields(const unsigned char *p, size_t n,
				struct log_line *out, uint32_t *crc_out)
{
	const unsigned char *end = p + n;
	uint64_t type;
	uint32_t crc = 0;
	if (!scan_lit(&p, end, "{\"i\":") || !scan_u64(&p, end, &out->index) ||
	    !scan_lit(&p, end, ",\"t\":") || !scan_u64(&p, end, &out->term) ||
	    !scan_lit(&p, end, ",\"y\":") || !scan_u64(&p, end, &type) ||
	    type > 255 || !scan_lit(&p, end, ",\"crc\":\""))
		return "unparsable entry";
	if (end - p < 8)
		return "unparsable entry";
	for (int i = 0; i < 8; i++) {
		int h = hexval(*p++);
		if (h < 0)
			return "unparsable entry";
		crc = crc << 4 | (uint32_t)h;
	}
	if (!scan_lit(&p, end, "\",\"c\":") || end - p < 2 || end[-1] != '}')
		return "unparsable entry";
	out->type = (uint8_t)type;
	out->data = (const char *)p;
	out->len = (size_t)(end - 1 - p);
	if (out->len == 4 && memcmp(out->data, "null", 4) == 0)
		out->len = 0;
	*crc_out = crc;
	return NULL;
}

const char *logfmt_parse_line(const unsigned char *p, size_t n,
			      struct log_line *out)
{
	uint32_t crc;
	const char *why = parse_fields(p, n, out, &crc);
	if (!why && logfmt_crc(out->index, out->term, out->type, out->data,
			       out->len) != crc)
		return "entry checksum mismatch";
	return why;
}

const char *logfmt_parse_checked_line(const unsigned char *p, size_t n,
				      struct log_line *out)
{
	uint32_t crc;
	return parse_fields(p, n, out, &crc);
}

int logfmt_header(char *buf, size_t n, uint64_t first, uint64_t prev_term)
{
	return snprintf(buf, n,
			"{\"kvfs\":\"log\",\"version\":%d,\"first\":%" PRIu64
			",\"prev_term\":%" PRIu64 "}\n",
			LOG_VERSION, first, prev_term);
}

int logfmt_parse_header(const unsigned char *p, size_t n, uint64_t *first,
			uint64_t *prev_term)
{
	const unsigned char *end = p + n;
	uint64_t version;
	if (!scan_lit(&p, end, "{\"kvfs\":\"log\",\"version\":") ||
	    !scan_u64(&p, end, &version))
		return KV_ECORRUPT;
	if (version != LOG_VERSION)
		return KV_EVERSION;
	if (!scan_lit(&p, end, ",\"first\":") || !scan_u64(&p, end, first) ||
	    !scan_lit(&p, end, ",\"prev_term\":") ||
	    !scan_u64(&p, end, prev_term) || !scan_lit(&p, end, "}") ||
	    p != end || *first == 0)
		return KV_ECORRUPT;
	return 0;
}
