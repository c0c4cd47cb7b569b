/* codec.c - byte strings in JSON: a growable buffer, JSON string escaping,
 * base64 and a strict UTF-8 validator.
 *
 * Commands (cmd.c) and db snapshots (db.c) are written by hand through
 * struct kv_buf rather than through cJSON trees, so a 16 MiB value is copied
 * once. Errors are sticky in the buffer (b->err), so a writer checks once at
 * the end. Parsing is cJSON's job; this file only provides base64 decoding
 * and UTF-8 validation for it. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "codec.h"

void kv_buf_init(struct kv_buf *b)
{
	b->p = NULL;
	b->len = 0;
	b->cap = 0;
	b->err = 0;
}

void kv_buf_free(struct kv_buf *b)
{
	free(b->p);
	kv_buf_init(b);
}

/* Room for n more bytes plus a NUL; false (and b->err set) if not. */
static bool buf_reserve(struct kv_buf *b, size_t n)
{
	size_t cap;
	char *p;

	if (b->err)
		return false;
	if (n < b->cap - b->len && b->p != NULL)
		return true;
	if (n > SIZE_MAX / 2 - b->len) {
		b->err = -ENOMEM;
		return false;
	}
	cap = b->cap ? b->cap : 256;
	while (cap - b->len <= n)
		cap *= 2;
	p = realloc(b->p, cap);
	if (p == NULL) {
		b->err = -ENOMEM;
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

void kv_buf_put(struct kv_buf *b, const void *p, size_t n)
{
	if (!buf_reserve(b, n))
		return;
	if (n > 0)
		memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void kv_buf_puts(struct kv_buf *b, const char *s)
{
	kv_buf_put(b, s, strlen(s));
}

void kv_buf_printf(struct kv_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!buf_reserve(b, 64))
		return;
	va_start(ap, fmt);
	n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->err = -EINVAL;
		return;
	}
	if ((size_t)n >= b->cap - b->len) {
		if (!buf_reserve(b, (size_t)n))
			return;
		va_start(ap, fmt);
		vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
	}
	b->len += (size_t)n;
}

#define ONES  UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)

/* Does the word hold a byte below 0x20, a '"' or a '\\'? (The classic
 * "has a zero byte" and "has a byte less than n" tests, which may only
 * err towards yes, and then the caller looks byte by byte.) */
static bool word_special(uint64_t w)
{
	uint64_t q = w ^ (ONES * '"'), bs = w ^ (ONES * '\\');
	return (((w - ONES * 0x20) | (q - ONES) | (bs - ONES)) & ~w & HIGHS) !=
	       0;
}

size_t kv_json_plain_span(const void *p, size_t n)
{
	const unsigned char *s = p;
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t w;
		memcpy(&w, s + i, 8);
		if (word_special(w))
			break;
	}
	while (i < n && s[i] >= 0x20 && s[i] != '"' && s[i] != '\\')
		i++;
	return i;
}

/* The JSON escape of c (below 0x20, '"' or '\\') into o[0..6): its
 * length, 2 or 6. */
static size_t json_escape(unsigned char c, char *o)
{
	static const char hex[] = "0123456789abcdef";
	char e = c == '"' || c == '\\' ? (char)c
		 : c == '\n'	       ? 'n'
		 : c == '\r'	       ? 'r'
		 : c == '\t'	       ? 't'
		 : c == '\b'	       ? 'b'
		 : c == '\f'	       ? 'f'
				       : 0;
	o[0] = '\\';
	if (e) {
		o[1] = e;
		return 2;
	}
	o[1] = 'u';
	o[2] = '0';
	o[3] = '0';
	o[4] = hex[c >> 4];
	o[5] = hex[c & 15];
	return 6;
}

void kv_buf_json_str(struct kv_buf *b, const void *p, size_t n)
{
	const unsigned char *s = p;
	size_t run = 0; /* start of the bytes copied as they are */

	kv_buf_put(b, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		char esc[6];

		i += kv_json_plain_span(s + i, n - i);
		if (i == n)
			break;
		kv_buf_put(b, s + run, i - run);
		run = i + 1;
		kv_buf_put(b, esc, json_escape(s[i], esc));
	}
	kv_buf_put(b, s + run, n - run);
	kv_buf_put(b, "\"", 1);
}

/* The length of the UTF-8 sequence at s[0..n) whose first byte is at
 * least 0x80, by the rules of kv_utf8_valid, or 0 if it is not one. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	uint32_t cp;
	size_t len;

	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07;
	} else {
		return 0; /* continuation, 0xc0/0xc1 or > 0xf4 */
	}
	if (n < len)
		return 0;
	for (size_t k = 1; k < len; k++) {
		if ((s[k] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[k] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* One byte below 0x20, '"' or '\\' as its JSON escape, at the end of b
 * (which has room for it). */
static void put_escape(struct kv_buf *b, unsigned char c)
{
	b->len += json_escape(c, b->p + b->len);
}

/* kv_utf8_valid (no NUL) and kv_buf_json_str in one pass: each 8-byte
 * word of plain ASCII is checked and stored at once; a word with a byte
 * to escape or above 0x7f is taken byte by byte. The output has room for
 * the text as it is from the start, and grows only for escapes. */
bool kv_buf_json_text(struct kv_buf *b, const void *p, size_t n)
{
	const unsigned char *s = p;
	size_t start = b->len, i = 0;

	if (!buf_reserve(b, n + 2))
		return true; /* b->err says so */
	b->p[b->len++] = '"';
	while (i < n) {
		uint64_t w;
		if (i + 8 <= n) {
			memcpy(&w, s + i, 8);
			if (!(w & HIGHS) && !word_special(w)) {
				memcpy(b->p + b->len, &w, 8);
				b->len += 8;
				i += 8;
				continue;
			}
		}
		unsigned char c = s[i];
		if (c >= 0x80) {
			size_t len = utf8_seq(s + i, n - i);
			if (len == 0)
				goto not_text;
			memcpy(b->p + b->len, s + i, len);
			b->len += len;
			i += len;
		} else if (c >= 0x20 && c != '"' && c != '\\') {
			b->p[b->len++] = (char)c;
			i++;
		} else {
			if (c == 0)
				goto not_text;
			/* room for the rest as it is, and this escape */
			if (!buf_reserve(b, n - i + 7))
				return true;
			put_escape(b, c);
			i++;
		}
	}
	b->p[b->len++] = '"';
	b->p[b->len] = '\0';
	return true;

not_text:
	b->len = start;
	b->p[start] = '\0';
	return false;
}

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void kv_buf_base64(struct kv_buf *b, const void *p, size_t n)
{
	const unsigned char *s = p;
	size_t full = n / 3 * 3;
	char *o;

	if (!buf_reserve(b, (n + 2) / 3 * 4))
		return;
	o = b->p + b->len;
	for (size_t i = 0; i < full; i += 3) {
		uint32_t v =
		    (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
		*o++ = b64[v >> 18];
		*o++ = b64[(v >> 12) & 63];
		*o++ = b64[(v >> 6) & 63];
		*o++ = b64[v & 63];
	}
	if (n - full == 1) {
		uint32_t v = (uint32_t)s[full] << 16;
		*o++ = b64[v >> 18];
		*o++ = b64[(v >> 12) & 63];
		*o++ = '=';
		*o++ = '=';
	} else if (n - full == 2) {
		uint32_t v = (uint32_t)s[full] << 16 | (uint32_t)s[full + 1]
							   << 8;
		*o++ = b64[v >> 18];
		*o++ = b64[(v >> 12) & 63];
		*o++ = b64[(v >> 6) & 63];
		*o++ = '=';
	}
	b->len = (size_t)(o - b->p);
	b->p[b->len] = '\0';
}

int kv_hex_val(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* One more than the value of each base64 character; 0 for any other
 * byte. */
static const unsigned char b64_dec1[256] = {
    ['A'] = 1,	['B'] = 2,  ['C'] = 3,	['D'] = 4,  ['E'] = 5,	['F'] = 6,
    ['G'] = 7,	['H'] = 8,  ['I'] = 9,	['J'] = 10, ['K'] = 11, ['L'] = 12,
    ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16, ['Q'] = 17, ['R'] = 18,
    ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24,
    ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30,
    ['e'] = 31, ['f'] = 32, ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36,
    ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40, ['o'] = 41, ['p'] = 42,
    ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48,
    ['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54,
    ['2'] = 55, ['3'] = 56, ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60,
    ['8'] = 61, ['9'] = 62, ['+'] = 63, ['/'] = 64,
};

/* A character's value, -1 if it is not base64: no branch, since a value
 * is up to 16 MiB decoded on the node thread's apply. */
static int b64_val(unsigned char c)
{
	return (int)b64_dec1[c] - 1;
}

int kv_base64_decode(const char *s, size_t n, unsigned char **out,
		     size_t *outlen)
{
	unsigned char *o;
	size_t pad = 0, len;

	/* Canonical form only: padded to a multiple of 4, no whitespace, and
	 * the unused bits of the last group zero, so every value has exactly
	 * one encoding. */
	if (n % 4 != 0)
		return -EINVAL;
	if (n > 0 && s[n - 1] == '=')
		pad = (n > 1 && s[n - 2] == '=') ? 2 : 1;
	len = n / 4 * 3 - pad;
	o = malloc(len + 1);
	if (o == NULL)
		return -ENOMEM;
	/* every group but the last: one lookup a character, one test a
	 * group */
	size_t i = 0, j = 0;
	const unsigned char *u = (const unsigned char *)s;
	for (; n >= 4 && i < n - 4; i += 4, j += 3) {
		int a = b64_val(u[i]), b = b64_val(u[i + 1]);
		int c = b64_val(u[i + 2]), d = b64_val(u[i + 3]);
		if ((a | b | c | d) < 0)
			goto err_free;
		uint32_t w = (uint32_t)a << 18 | (uint32_t)b << 12 |
			     (uint32_t)c << 6 | (uint32_t)d;
		o[j] = (unsigned char)(w >> 16);
		o[j + 1] = (unsigned char)(w >> 8);
		o[j + 2] = (unsigned char)w;
	}
	for (; i < n; i += 4) {
		int v[4];
		uint32_t w;
		bool last = i + 4 == n;

		for (int k = 0; k < 4; k++) {
			unsigned char c = (unsigned char)s[i + (size_t)k];
			if (last && c == '=' && k >= 4 - (int)pad)
				v[k] = 0;
			else if ((v[k] = b64_val(c)) < 0)
				goto err_free;
		}
		w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 |
		    (uint32_t)v[2] << 6 | (uint32_t)v[3];
		if (last && pad == 2 && (w & 0xffff) != 0)
			goto err_free;
		if (last && pad == 1 && (w & 0xff) != 0)
			goto err_free;
		o[j++] = (unsigned char)(w >> 16);
		if (!last || pad < 2)
			o[j++] = (unsigned char)(w >> 8);
		if (!last || pad < 1)
			o[j++] = (unsigned char)w;
	}
	o[len] = '\0';
	*out = o;
	*outlen = len;
	return 0;

err_free:
	free(o);
	return -EINVAL;
}

bool kv_utf8_valid(const void *p, size_t n, bool allow_nul)
{
	const unsigned char *s = p;
	size_t i = 0;

	while (i < n) {
		unsigned char c = s[i];
		uint32_t cp;
		size_t len;

		if (i + 8 <= n) { /* eight ASCII bytes, none of them NUL */
			uint64_t w;
			memcpy(&w, s + i, 8);
			if (!(w & HIGHS) &&
			    (allow_nul || !((w - ONES) & HIGHS))) {
				i += 8;
				continue;
			}
		}
		if (c < 0x80) {
			if (c == 0 && !allow_nul)
				return false;
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			len = 2;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			len = 3;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			len = 4;
			cp = c & 0x07;
		} else {
			return false; /* continuation, 0xc0/0xc1 or > 0xf4 */
		}
		if (n - i < len)
			return false;
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += len;
	}
	return true;
}

/* ---- reading cJSON values ---- */

struct cJSON *kv_json_parse(const char *p, size_t n)
{
	const char *end = NULL;
	cJSON *j = cJSON_ParseWithLengthOpts(p, n, &end, false);

	if (j == NULL)
		return NULL;
	while (end < p + n && strchr(" \t\r\n", *end) != NULL && *end)
		end++;
	if (end != p + n) {
		cJSON_Delete(j);
		return NULL;
	}
	return j;
}

/* A JSON number that is an integer in [0, max]. */
int kv_json_uint(const cJSON *item, double max, uint64_t *out)
{
	if (!cJSON_IsNumber(item))
		return -EINVAL;
	return kv_uint_of_double(item->valuedouble, max, out);
}

int kv_uint_of_double(double d, double max, uint64_t *out)
{
	if (!(d >= 0 && d <= max) || d != (double)(uint64_t)d)
		return -EINVAL;
	*out = (uint64_t)d;
	return 0;
}

/* A decimal int64 in a JSON string: optional '-', 1 to 19 digits. */
int kv_json_i64(const cJSON *item, int64_t *out)
{
	if (!cJSON_IsString(item))
		return -EINVAL;
	return kv_i64_parse(item->valuestring, out);
}

int kv_i64_parse(const char *s, int64_t *out)
{
	const char *p = s + (s[0] == '-'), *d = p;
	uint64_t u = 0;
	char *end;
	long long v;
	size_t i = 0;

	/* Up to 19 digits (a time in nanoseconds has 19) fit in a u64:
	 * read at once, then held to int64's range as strtoll holds them.
	 * Longer, or anything else, takes strtoll's rule below. */
	while (*d >= '0' && *d <= '9' && d - p < 19)
		u = u * 10 + (uint64_t)(*d++ - '0');
	if (d > p && *d == '\0') {
		if (u > (uint64_t)INT64_MAX + (s[0] == '-'))
			return -EINVAL; /* strtoll's ERANGE */
		*out = s[0] == '-' ? (int64_t)(0 - u) : (int64_t)u;
		return 0;
	}
	if (s[0] == '-')
		i++;
	if (s[i] == '\0' || strspn(s + i, "0123456789") != strlen(s + i))
		return -EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return -EINVAL;
	*out = (int64_t)v;
	return 0;
}

size_t kv_u64_dec(char out[20], uint64_t v)
{
	char t[20];
	size_t n = 0;

	do {
		t[sizeof(t) - ++n] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	memcpy(out, t + sizeof(t) - n, n);
	return n;
}

void kv_buf_u64(struct kv_buf *b, uint64_t v)
{
	char t[20];
	kv_buf_put(b, t, kv_u64_dec(t, v));
}

void kv_buf_i64(struct kv_buf *b, int64_t v)
{
	kv_buf_puts(b, v < 0 ? "\"-" : "\"");
	kv_buf_u64(b, v < 0 ? -(uint64_t)v : (uint64_t)v);
	kv_buf_puts(b, "\"");
}
