/* jread.h - reading JSON text in place, without building a tree.
 *
 * For documents read on every write's path (the peer protocol's batches),
 * where cJSON's node-per-value allocations and string copies cost more
 * than the work itself. Two steps:
 *
 * 1. jr_check() validates the whole text as strict JSON (RFC 8259: no raw
 *    control characters in strings, valid escapes and surrogate pairs,
 *    the number grammar, nesting at most JR_MAX_DEPTH) and finds where the
 *    value ends.
 * 2. The reader functions then walk the checked text. They trust it: on
 *    text jr_check() did not accept, their behaviour is undefined.
 *
 * Strings come out unescaped: into a caller's small buffer (names,
 * enumerations) or a malloc'd copy (data). Numbers come out as the double
 * strtod() gives, the same value cJSON would have produced, so the integer
 * range checks callers make are unchanged. */
#ifndef KV_STORE_JREAD_H
#define KV_STORE_JREAD_H

#include <stdbool.h>
#include <stddef.h>

#define JR_MAX_DEPTH 64

struct jr {
	const char *p;	 /* next byte */
	const char *end; /* end of the text */
};

/* Check that p[0..n) starts with one JSON value (after whitespace); *end
 * is set to the byte after it. 0 or -EINVAL. */
int jr_check(const char *p, size_t n, const char **end);

/* The kind of the next value: '{', '[', '"', 'n' (number), 't', 'f' or
 * 'z' (null). Skips whitespace first. */
char jr_kind(struct jr *r);
/* Step into an object or array (the next value must be one). */
void jr_enter(struct jr *r);
/* Before each member or element: true if there is one (its separator
 * taken), false at the closing bracket (taken). *first starts true. */
bool jr_more(struct jr *r, bool *first);
/* A member's name into buf (NUL-terminated) and its ':'. A name of cap
 * bytes or more comes back as "" with the result cap (no known name is
 * that long); so does, with its length, a name holding a NUL ("\u0000").
 * The length otherwise. */
size_t jr_name(struct jr *r, char *buf, size_t cap);
/* Skip the next value. */
void jr_skip(struct jr *r);
/* A string value into buf (NUL-terminated): its length, or cap when it
 * does not fit (then buf holds ""). The next value must be a string. */
size_t jr_str(struct jr *r, char *buf, size_t cap);
/* jr_str for text that must hold no NUL: its length, or cap when it does
 * not fit or holds a NUL ("\u0000"; then buf holds ""). Only an escape
 * can make a NUL, so a string without one is not scanned again. */
size_t jr_str_nonul(struct jr *r, char *buf, size_t cap);
/* A string value as a malloc'd copy with a NUL after it (the bytes may
 * hold a NUL of their own, from "\u0000"): 0 or -ENOMEM. */
int jr_str_dup(struct jr *r, char **out, size_t *len);
/* A number value as a double. */
double jr_num(struct jr *r);
/* true or false. */
bool jr_bool(struct jr *r);

#endif
