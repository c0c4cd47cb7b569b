/* jread.c - strict JSON checked once, then read in place (see jread.h). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "jread.h"

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void ws(struct jr *r)
{
	while (r->p < r->end && is_ws(*r->p))
		r->p++;
}

/* Four hex digits at p (p + 4 <= end checked by the caller): the code
 * unit, or -1. */
static long hex4(const char *p)
{
	long v = 0;

	for (int i = 0; i < 4; i++) {
		int h = kv_hex_val(p[i]);
		if (h < 0)
			return -1;
		v = v << 4 | h;
	}
	return v;
}

/* ---- checking ---- */

/* After the opening quote: through the closing one. */
static int check_string(struct jr *r)
{
	while (r->p < r->end) {
		r->p += kv_json_plain_span(r->p, (size_t)(r->end - r->p));
		if (r->p >= r->end)
			break;
		unsigned char c = (unsigned char)*r->p++;
		long u, lo;

		if (c == '"')
			return 0;
		if (c < 0x20)
			return -EINVAL;
		if (c != '\\')
			continue;
		if (r->p >= r->end)
			return -EINVAL;
		c = (unsigned char)*r->p++;
		if (strchr("\"\\/bfnrt", c) != NULL && c != '\0')
			continue;
		if (c != 'u' || r->end - r->p < 4 || (u = hex4(r->p)) < 0)
			return -EINVAL;
		r->p += 4;
		if (u >= 0xdc00 && u <= 0xdfff)
			return -EINVAL; /* a low surrogate alone */
		if (u < 0xd800 || u > 0xdbff)
			continue;
		/* A high surrogate: a low one must follow. */
		if (r->end - r->p < 6 || r->p[0] != '\\' || r->p[1] != 'u' ||
		    (lo = hex4(r->p + 2)) < 0xdc00 || lo > 0xdfff)
			return -EINVAL;
		r->p += 6;
	}
	return -EINVAL;
}

static bool digit(const struct jr *r)
{
	return r->p < r->end && *r->p >= '0' && *r->p <= '9';
}

static int check_digits(struct jr *r)
{
	if (!digit(r))
		return -EINVAL;
	while (digit(r))
		r->p++;
	return 0;
}

static int check_number(struct jr *r)
{
	if (*r->p == '-')
		r->p++;
	if (r->p < r->end && *r->p == '0')
		r->p++;
	else if (check_digits(r) < 0)
		return -EINVAL;
	if (r->p < r->end && *r->p == '.') {
		r->p++;
		if (check_digits(r) < 0)
			return -EINVAL;
	}
	if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
		r->p++;
		if (r->p < r->end && (*r->p == '+' || *r->p == '-'))
			r->p++;
		if (check_digits(r) < 0)
			return -EINVAL;
	}
	return 0;
}

static int check_word(struct jr *r, const char *w)
{
	size_t n = strlen(w);

	if ((size_t)(r->end - r->p) < n || memcmp(r->p, w, n) != 0)
		return -EINVAL;
	r->p += n;
	return 0;
}

static int check_value(struct jr *r, int depth);

/* After '{' or '[': the members or elements and the closing bracket. */
static int check_container(struct jr *r, char close, int depth)
{
	ws(r);
	if (r->p < r->end && *r->p == close) {
		r->p++;
		return 0;
	}
	for (;;) {
		if (close == '}') {
			ws(r);
			if (r->p >= r->end || *r->p++ != '"' ||
			    check_string(r) < 0)
				return -EINVAL;
			ws(r);
			if (r->p >= r->end || *r->p++ != ':')
				return -EINVAL;
		}
		if (check_value(r, depth + 1) < 0)
			return -EINVAL;
		ws(r);
		if (r->p >= r->end)
			return -EINVAL;
		char c = *r->p++;
		if (c == close)
			return 0;
		if (c != ',')
			return -EINVAL;
	}
}

static int check_value(struct jr *r, int depth)
{
	if (depth > JR_MAX_DEPTH)
		return -EINVAL;
	ws(r);
	if (r->p >= r->end)
		return -EINVAL;
	switch (*r->p) {
	case '{':
		r->p++;
		return check_container(r, '}', depth);
	case '[':
		r->p++;
		return check_container(r, ']', depth);
	case '"':
		r->p++;
		return check_string(r);
	case 't':
		return check_word(r, "true");
	case 'f':
		return check_word(r, "false");
	case 'n':
		return check_word(r, "null");
	case '-':
	case '0':
	case '1':
	case '2':
	case '3':
	case '4':
	case '5':
	case '6':
	case '7':
	case '8':
	case '9':
		return check_number(r);
	default:
		return -EINVAL;
	}
}

int jr_check(const char *p, size_t n, const char **end)
{
	struct jr r = {p, p + n};

	if (check_value(&r, 1) < 0)
		return -EINVAL;
	*end = r.p;
	return 0;
}

/* ---- reading checked text ---- */

char jr_kind(struct jr *r)
{
	ws(r);
	switch (*r->p) {
	case '{':
	case '[':
	case '"':
	case 't':
	case 'f':
		return *r->p;
	case 'n':
		return 'z';
	default:
		return 'n';
	}
}

void jr_enter(struct jr *r)
{
	ws(r);
	r->p++;
}

bool jr_more(struct jr *r, bool *first)
{
	ws(r);
	if (*r->p == '}' || *r->p == ']') {
		r->p++;
		return false;
	}
	if (!*first) {
		r->p++; /* ',' */
		ws(r);
	}
	*first = false;
	return true;
}

/* The raw text of the next string (between the quotes); true if it holds
 * an escape. */
static bool str_span(struct jr *r, const char **s, size_t *n)
{
	bool esc = false;
	const char *q;

	ws(r);
	q = ++r->p;
	for (;;) {
		const char *e = memchr(q, '"', (size_t)(r->end - q));
		const char *b = memchr(q, '\\', (size_t)(e - q));
		if (b == NULL) {
			*s = r->p;
			*n = (size_t)(e - r->p);
			r->p = e + 1;
			return esc;
		}
		esc = true;
		q = b + 2; /* the escaped byte is never the closing quote */
	}
}

static size_t put_utf8(char *d, unsigned long c)
{
	if (c < 0x80) {
		d[0] = (char)c;
		return 1;
	}
	if (c < 0x800) {
		d[0] = (char)(0xc0 | c >> 6);
		d[1] = (char)(0x80 | (c & 0x3f));
		return 2;
	}
	if (c < 0x10000) {
		d[0] = (char)(0xe0 | c >> 12);
		d[1] = (char)(0x80 | (c >> 6 & 0x3f));
		d[2] = (char)(0x80 | (c & 0x3f));
		return 3;
	}
	d[0] = (char)(0xf0 | c >> 18);
	d[1] = (char)(0x80 | (c >> 12 & 0x3f));
	d[2] = (char)(0x80 | (c >> 6 & 0x3f));
	d[3] = (char)(0x80 | (c & 0x3f));
	return 4;
}

/* Unescape s[0..n) into d (room for n bytes: never longer): the length. */
static size_t unescape(const char *s, size_t n, char *d)
{
	const char *e = s + n;
	size_t len = 0;

	while (s < e) {
		if (*s != '\\') {
			const char *b = memchr(s, '\\', (size_t)(e - s));
			size_t run = (size_t)((b ? b : e) - s);
			memcpy(d + len, s, run);
			len += run;
			s += run;
			continue;
		}
		s++;
		switch (*s++) {
		case 'b':
			d[len++] = '\b';
			break;
		case 'f':
			d[len++] = '\f';
			break;
		case 'n':
			d[len++] = '\n';
			break;
		case 'r':
			d[len++] = '\r';
			break;
		case 't':
			d[len++] = '\t';
			break;
		case 'u': {
			unsigned long c = (unsigned long)hex4(s);
			s += 4;
			if (c >= 0xd800 && c <= 0xdbff) {
				unsigned long lo = (unsigned long)hex4(s + 2);
				c = 0x10000 + ((c - 0xd800) << 10) +
				    (lo - 0xdc00);
				s += 6;
			}
			len += put_utf8(d + len, c);
			break;
		}
		default: /* '"', '\\', '/' */
			d[len++] = s[-1];
			break;
		}
	}
	return len;
}

/* jr_str; *nul set if the string holds a NUL (only an escape makes
 * one: raw control bytes are not JSON). */
static size_t str_into(struct jr *r, char *buf, size_t cap, bool *nul)
{
	const char *s;
	size_t n;
	bool esc = str_span(r, &s, &n);

	*nul = false;
	/* Unescaped text is never longer than its escaped form. */
	if (n < cap) {
		if (esc) {
			n = unescape(s, n, buf);
			*nul = memchr(buf, '\0', n) != NULL;
		} else {
			memcpy(buf, s, n);
		}
		buf[n] = '\0';
		return n;
	}
	/* Long: only worth unescaping if it could fit then. */
	char *tmp = esc ? malloc(n) : NULL;
	if (tmp != NULL) {
		size_t m = unescape(s, n, tmp);
		if (m < cap) {
			memcpy(buf, tmp, m);
			buf[m] = '\0';
			*nul = memchr(buf, '\0', m) != NULL;
			free(tmp);
			return m;
		}
		free(tmp);
	}
	if (cap > 0)
		buf[0] = '\0';
	return cap;
}

size_t jr_str(struct jr *r, char *buf, size_t cap)
{
	bool nul;

	return str_into(r, buf, cap, &nul);
}

size_t jr_str_nonul(struct jr *r, char *buf, size_t cap)
{
	bool nul;
	size_t n = str_into(r, buf, cap, &nul);

	if (!nul)
		return n;
	buf[0] = '\0';
	return cap;
}

size_t jr_name(struct jr *r, char *buf, size_t cap)
{
	bool nul;
	size_t n = str_into(r, buf, cap, &nul);

	ws(r);
	r->p++; /* ':' */
	if (nul)
		buf[0] = '\0'; /* a NUL inside: no known name */
	return n;
}

int jr_str_dup(struct jr *r, char **out, size_t *len)
{
	const char *s;
	size_t n;
	bool esc = str_span(r, &s, &n);
	char *d = malloc(n + 1);

	if (d == NULL)
		return -ENOMEM;
	if (esc)
		n = unescape(s, n, d);
	else
		memcpy(d, s, n);
	d[n] = '\0';
	*out = d;
	*len = n;
	return 0;
}

static bool num_byte(char c)
{
	return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' ||
	       c == 'e' || c == 'E';
}

double jr_num(struct jr *r)
{
	const char *s;
	size_t n = 0;
	bool plain = true;
	double v;

	ws(r);
	s = r->p;
	while (s + n < r->end && num_byte(s[n])) {
		plain = plain && s[n] >= '0' && s[n] <= '9';
		n++;
	}
	r->p = s + n;
	if (plain && n <= 15) { /* exact in a double, as strtod would give */
		uint64_t u = 0;
		for (size_t i = 0; i < n; i++)
			u = u * 10 + (uint64_t)(s[i] - '0');
		return (double)u;
	}
	char small[64], *t = n < sizeof(small) ? small : malloc(n + 1);
	if (t == NULL)
		return -1; /* not an integer anyone asks for */
	memcpy(t, s, n);
	t[n] = '\0';
	v = strtod(t, NULL);
	if (t != small)
		free(t);
	return v;
}

bool jr_bool(struct jr *r)
{
	ws(r);
	if (*r->p == 't') {
		r->p += 4;
		return true;
	}
	r->p += 5;
	return false;
}

void jr_skip(struct jr *r)
{
	const char *s;
	size_t n;
	int depth = 0;

	switch (jr_kind(r)) {
	case '"':
		str_span(r, &s, &n);
		return;
	case 'n':
		while (r->p < r->end && num_byte(*r->p))
			r->p++;
		return;
	case 't':
	case 'z':
		r->p += 4;
		return;
	case 'f':
		r->p += 5;
		return;
	default:
		break;
	}
	for (;;) {
		char c = *r->p;
		if (c == '"') {
			str_span(r, &s, &n);
			continue;
		}
		r->p++;
		if (c == '{' || c == '[')
			depth++;
		else if ((c == '}' || c == ']') && --depth == 0)
			return;
	}
}
