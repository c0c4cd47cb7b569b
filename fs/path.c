/* path.c - FUSE paths to store keys and back.
 *
 * A FUSE path "/a/b" is the key "a/b", or "PREFIX/a/b" when the mount
 * serves only a subtree (-o subdir=PREFIX); the mount's root is the prefix
 * itself ("" without one). Everything here is pure string work on caller
 * buffers, so every operation maps its path without allocating; the key
 * rules themselves are the store's (kv_key_check, applied in fs_key). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fs_int.h"

int fs_prefix_new(const char *subdir, char **out, size_t *outlen)
{
	const char *s = subdir ? subdir : "";
	while (*s == '/')
		s++;
	size_t len = strlen(s);
	while (len > 0 && s[len - 1] == '/')
		len--;
	if (len > 0) {
		int ret = kv_key_check(s, len);
		if (ret != 0)
			return ret;
	}
	char *p = malloc(len + 1);
	if (!p)
		return -ENOMEM;
	memcpy(p, s, len);
	p[len] = '\0';
	*out = p;
	*outlen = len;
	return 0;
}

int fs_path_to_key(const char *prefix, size_t plen, const char *path, char *out,
		   size_t outsz, size_t *klen)
{
	while (*path == '/')
		path++;
	size_t rlen = strlen(path);
	size_t need = plen + (plen && rlen ? 1 : 0) + rlen;
	if (need + 1 > outsz)
		return -ENAMETOOLONG;
	size_t n = 0;
	memcpy(out, prefix, plen);
	n += plen;
	if (plen && rlen)
		out[n++] = '/';
	memcpy(out + n, path, rlen);
	n += rlen;
	out[n] = '\0';
	*klen = n;
	return 0;
}

int fs_key_to_path(const char *prefix, size_t plen, const char *key,
		   size_t klen, char *out, size_t outsz)
{
	const char *rest = key;
	size_t rlen = klen;
	if (plen > 0) {
		if (klen < plen || memcmp(key, prefix, plen) != 0)
			return -ENOENT;
		if (klen == plen) {
			rlen = 0;
		} else if (key[plen] == '/') {
			rest = key + plen + 1;
			rlen = klen - plen - 1;
		} else {
			return -ENOENT; /* "prefixx/..." is not under "prefix"
					 */
		}
	}
	if (rlen + 2 > outsz)
		return -ENAMETOOLONG;
	out[0] = '/';
	memcpy(out + 1, rest, rlen);
	out[rlen + 1] = '\0';
	return 0;
}

int fs_path_parent(const char *path, char *out, size_t outsz)
{
	size_t len = strlen(path);
	while (len > 1 && path[len - 1] == '/')
		len--;
	if (len <= 1)
		return -ENOENT;
	const char *slash = memrchr(path, '/', len);
	size_t plen = slash ? (size_t)(slash - path) : 0;
	if (plen == 0)
		plen = 1; /* the root */
	if (plen + 1 > outsz)
		return -ENAMETOOLONG;
	memcpy(out, path, plen);
	out[plen] = '\0';
	return 0;
}
