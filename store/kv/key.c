/* key.c - the key rules (kv_key_check).
 *
 * A key is a path: valid UTF-8, '/'-separated segments, none empty, "." or
 * "..", no NUL, at most KV_MAX_KEY bytes and KV_MAX_SEGMENT bytes a segment,
 * so every key is also a legal relative file name for the mount. The UTF-8
 * check is the strict one of codec.c (no overlongs, no surrogates).
 * kv_key_reserved names the segment the mounts keep for themselves
 * (".kvfs"), which new writes may not use (kv.h). */
#include <errno.h>
#include <string.h>

#include "codec.h"
#include "kv.h"

int kv_key_check(const char *key, size_t len)
{
	size_t seg = 0; /* start of the current segment */

	if (key == NULL || len == 0)
		return -EINVAL;
	if (len > KV_MAX_KEY)
		return -ENAMETOOLONG;
	if (!kv_utf8_valid(key, len, false))
		return -EINVAL;
	for (size_t i = 0; i <= len; i++) {
		size_t n;

		if (i < len && key[i] != '/')
			continue;
		n = i - seg;
		if (n == 0)
			return -EINVAL;
		if ((n == 1 && key[seg] == '.') ||
		    (n == 2 && key[seg] == '.' && key[seg + 1] == '.'))
			return -EINVAL;
		if (n > KV_MAX_SEGMENT)
			return -ENAMETOOLONG;
		seg = i + 1;
	}
	return 0;
}

bool kv_key_reserved(const char *key, size_t len)
{
	const size_t rlen = sizeof(KV_RESERVED_SEGMENT) - 1;
	size_t seg = 0;

	for (size_t i = 0; key && i <= len; i++) {
		if (i < len && key[i] != '/')
			continue;
		if (i - seg == rlen &&
		    memcmp(key + seg, KV_RESERVED_SEGMENT, rlen) == 0)
			return true;
		seg = i + 1;
	}
	return false;
}
