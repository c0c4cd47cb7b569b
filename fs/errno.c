/* errno.c - the one place where node and store errors become errno.
 *
 * The store and node return negative errnos for the world's errors and
 * their own codes (store.h, enum kv_error) for the rest; FUSE speaks
 * -errno only, and a shell user expects the errno a local disk would give:
 * EIO when the cluster cannot commit, EEXIST when create-exclusive loses,
 * ENOSPC and EFBIG as they are. docs/mount.md has the table. */
#include <errno.h>

#include "fs_int.h"

int fs_errno(int err)
{
	if (err >= 0)
		return err;
	switch (err) {
	case KV_ENOTLEADER: /* the node forwards; if it still fails: EIO */
	case KV_ENOQUORUM:
	case KV_EFAILED:
	case KV_ECORRUPT:
	case KV_EVERSION:
		return -EIO;
	case KV_EPRECOND:
		return -EEXIST;
	case KV_ESHUTDOWN:
		return -ESHUTDOWN;
	default:
		break;
	}
	/* A plain errno passes through; FUSE accepts 1..511 only. */
	if (err > -512)
		return err;
	return -EIO;
}
