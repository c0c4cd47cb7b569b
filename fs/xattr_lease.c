/* xattr_lease.c - a file's lease through its extended attributes:
 * setfattr -n user.kvfs.ttl -v 30 FILE puts the file on a new lease of
 * 30 s (one lease_grant entry naming the key); getfattr -n user.kvfs.ttl
 * shows what is left of its lease's TTL in whole seconds (rounded up, as
 * this node counts it), user.kvfs.lease the lease's id. A file on no
 * lease has neither (ENODATA). The file keeps its lease when written
 * through the mount or renamed; its lease's revoke or expiry deletes it
 * (docs/mount.md). Called by ops_xattr.c. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "fs_int.h"

bool fs_lease_attr_name(const char *name)
{
	return strcmp(name, KV_XATTR_RESERVED "ttl") == 0 ||
	       strcmp(name, KV_XATTR_RESERVED "lease") == 0;
}

int fs_lease_attr(struct fs *fs, struct fs_inode *in, const char *name,
		  char *out, size_t cap)
{
	char key[KV_MAX_KEY + 1];
	size_t klen;
	struct kv_rec *rec = NULL;
	int ret;

	if ((ret = fs_key_of(fs, in, key, &klen)) != 0 ||
	    (ret = fs_barrier(fs)) != 0)
		return ret;
	ret = store_get(node_store(fs->node), key, klen, &rec);
	if (ret != 0)
		return ret == -ENOENT || ret == -EISDIR ? -ENODATA
							: fs_errno(ret);
	uint64_t id = kv_rec_lease(rec);
	kv_rec_unref(rec);
	if (id == 0)
		return -ENODATA;
	if (strcmp(name, KV_XATTR_RESERVED "lease") == 0)
		return snprintf(out, cap, "%" PRIu64, id);
	struct store_lease l;
	if (store_lease_get(node_store(fs->node), id, &l, NULL) != 0)
		return -ENODATA; /* revoked meanwhile */
	int64_t ms = node_lease_remaining_ms(fs->node, &l);
	return snprintf(out, cap, "%" PRId64, (ms + 999) / 1000);
}

int fs_lease_set(struct fs *fs, struct fs_inode *in, const char *name,
		 const char *value, size_t size)
{
	char key[KV_MAX_KEY + 1], buf[16];
	size_t klen;
	uint64_t ttl = 0;
	int ret;

	if (strcmp(name, KV_XATTR_RESERVED "ttl") != 0)
		return -EPERM; /* user.kvfs.lease is read-only */
	if (value == NULL)
		return -EPERM; /* no removal: revoke the lease over HTTP */
	/* a decimal number of seconds, 1 .. KV_LEASE_TTL_MAX; a newline
	 * after it (echo) is allowed */
	if (size > 0 && value[size - 1] == '\n')
		size--;
	if (size == 0 || size >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, value, size);
	buf[size] = '\0';
	for (size_t i = 0; i < size; i++) {
		if (buf[i] < '0' || buf[i] > '9')
			return -EINVAL;
		ttl = ttl * 10 + (uint64_t)(buf[i] - '0');
	}
	if (ttl < 1 || ttl > KV_LEASE_TTL_MAX)
		return -EINVAL;
	if (in->kind == S_IFDIR)
		return -EISDIR;
	if ((ret = fs_key_of(fs, in, key, &klen)) != 0)
		return ret;
	struct kv_cmd cmd = {.op = KV_OP_LEASE_GRANT,
			     .ttl = (uint32_t)ttl,
			     .key = key,
			     .klen = klen};
	ret = fs_propose(fs, &cmd, NULL);
	/* not committed yet (a new file still open): nothing to put on it */
	return ret == -ENOENT ? -ENODATA : ret;
}
