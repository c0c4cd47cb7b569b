/* error.c - one message for every error kvfs returns.
 *
 * Functions return negative errno values for the world's errors and codes
 * from a reserved range (kv.h, enum kv_error) for kvfs's own; this is the
 * single place that names them. The FUSE and HTTP boundaries each map them
 * in one function of their own. */
#include <string.h>

#include "kv.h"

const char *kv_strerror(int err)
{
	switch (err) {
	case 0:
		return "success";
	case KV_ENOTLEADER:
		return "this node is not the leader";
	case KV_ENOQUORUM:
		return "no leader or no quorum within the deadline";
	case KV_ECORRUPT:
		return "a data file is damaged";
	case KV_ESHUTDOWN:
		return "the node is shutting down";
	case KV_EPRECOND:
		return "the write's condition does not hold";
	case KV_EFAILED:
		return "an earlier sync to disk failed; writes are refused";
	case KV_EVERSION:
		return "unknown format version";
	case KV_EGONE:
		return "the revision is older than the history of changes kept";
	default:
		break;
	}
	if (err < 0 && err > KV_ERR_FIRST)
		return strerror(-err);
	return "unknown error";
}
