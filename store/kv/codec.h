/* codec.h - byte strings in JSON (part of the shared vocabulary, kv.h).
 *
 * Values are arbitrary bytes. In JSON they are strings when the bytes are
 * valid UTF-8 without NUL and base64 otherwise. A small growable buffer
 * writes JSON by hand, so that a 16 MiB value is copied once, not via a
 * cJSON tree. */
#ifndef KV_STORE_CODEC_H
#define KV_STORE_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kv_buf {
	char *p;
	size_t len, cap;
	int err; /* sticky -ENOMEM */
};

void kv_buf_init(struct kv_buf *b);
void kv_buf_free(struct kv_buf *b);
void kv_buf_put(struct kv_buf *b, const void *p, size_t n);
void kv_buf_puts(struct kv_buf *b, const char *s);
void kv_buf_printf(struct kv_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Append bytes as a quoted, escaped JSON string (must be valid UTF-8). */
void kv_buf_json_str(struct kv_buf *b, const void *p, size_t n);
/* If p[0..n) is UTF-8 without NUL (kv_utf8_valid), append it as
 * kv_buf_json_str does and return true; else append nothing and return
 * false. One pass over the bytes (a 1 MiB value was checked, scanned and
 * copied in three). True too when b ran out of memory (b->err). */
bool kv_buf_json_text(struct kv_buf *b, const void *p, size_t n);
/* Append base64 (standard alphabet, padded) without quotes. */
void kv_buf_base64(struct kv_buf *b, const void *p, size_t n);

/* The length of the longest prefix of p[0..n) that a JSON string holds
 * as it is: no byte below 0x20, no '"', no '\\'. Eight bytes a step. */
size_t kv_json_plain_span(const void *p, size_t n);
/* The value of hex digit c (either case), or -1. */
int kv_hex_val(char c);
/* True if p[0..n) is valid UTF-8 (no overlongs, no surrogates) with no NUL.
 */
bool kv_utf8_valid(const void *p, size_t n, bool allow_nul);
/* Decode base64; *out malloc'd. -EINVAL if malformed, -ENOMEM. */
int kv_base64_decode(const char *s, size_t n, unsigned char **out,
		     size_t *outlen);

/* Reading JSON parsed by cJSON (declared here so the header does not need
 * cJSON's). A number that is an integer in [0, max] (max at most 2^53,
 * where doubles stop being exact): 0 or -EINVAL. */
struct cJSON;
/* Parse exactly p[0..n) as one JSON value (trailing whitespace allowed,
 * anything else after the value is an error): the tree, or NULL. */
struct cJSON *kv_json_parse(const char *p, size_t n);
#define KV_JSON_INT_MAX 9007199254740992.0
int kv_json_uint(const struct cJSON *item, double max, uint64_t *out);
/* A signed 64-bit integer written as a decimal string (optional '-', then
 * digits): how nanosecond times travel, since they exceed 2^53. */
int kv_json_i64(const struct cJSON *item, int64_t *out);
/* The same two rules on a number already read, and a string already read
 * (for store/jread.h's readers). */
int kv_uint_of_double(double d, double max, uint64_t *out);
int kv_i64_parse(const char *s, int64_t *out);
void kv_buf_i64(struct kv_buf *b, int64_t v);  /* as "123", quoted */
void kv_buf_u64(struct kv_buf *b, uint64_t v); /* as 123 (no printf) */
/* v in decimal into out, no NUL; the digits written (1 to 20). For hot
 * paths where printf's cost shows (a log line's prefix, a reply). */
size_t kv_u64_dec(char out[20], uint64_t v);

#endif
