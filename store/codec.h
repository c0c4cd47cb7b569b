/* codec.h - byte strings in JSON (internal to the store module).
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
/* Append base64 (standard alphabet, padded) without quotes. */
void kv_buf_base64(struct kv_buf *b, const void *p, size_t n);

/* True if p[0..n) is valid UTF-8 (no overlongs, no surrogates) with no NUL.
 */
bool kv_utf8_valid(const void *p, size_t n, bool allow_nul);
/* Decode base64; *out malloc'd. -EINVAL if malformed, -ENOMEM. */
int kv_base64_decode(const char *s, size_t n, unsigned char **out,
		     size_t *outlen);

#endif
