/* prepare.c - the per-byte work on a big entry, for the thread that
 * received it.
 *
 * The node thread writes every entry into the log and applies it; its
 * turns hold up the heartbeats, and for a 16 MiB value reading the bytes
 * (two scans and a CRC for the log line, a copy and a hash for the
 * record) was most of a turn of several hundred milliseconds on a loaded
 * machine. These two functions do that reading where the bytes arrive
 * (the proposer's thread on the leader, the peer receiving thread on a
 * follower); store_append and store_apply then use what they computed
 * (store_entry.data_checked, kv_cmd.prep). docs/architecture.md, "Big
 * values", says which thread does what. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "map_impl.h"
#include "store_int.h"

bool store_data_check(const void *data, size_t len, uint32_t *crc)
{
	if (len && (memchr(data, '\n', len) || memchr(data, 0, len)))
		return false;
	*crc = kv_crc32c(0, data, len);
	return true;
}

/* The record of a put from the value bytes val[0..vlen) (cmd->val
 * itself, or the same bytes elsewhere), if the value has at least min
 * bytes. */
static int prepare(struct kv_cmd *cmd, const void *val, size_t vlen, size_t min)
{
	if (cmd->op != KV_OP_PUT || cmd->prep != NULL || vlen < min ||
	    vlen > KV_MAX_VALUE)
		return 0; /* too big: the apply refuses it */
	/* room for a lease id where one may come: the command's, or (the
	 * apply finds out) the old record's; 8 bytes are nothing beside a
	 * big value, and a small one without room is built again by the
	 * apply if its key turns out to be on a lease (put_prepared) */
	bool slot =
	    vlen >= STORE_PREPARE_BYTES || cmd->ttl != 0 || cmd->set_lease;
	struct kv_rec *rec =
	    kv_rec_new_l(cmd->key, cmd->klen, val, vlen, cmd->xattrs,
			 cmd->set_xattrs ? cmd->nxattr : 0, slot);
	if (rec == NULL)
		return -ENOMEM;
	cmd->prep_hash = map_rec_hash_kv(kv_rec_key(rec), rec->klen,
					 kv_rec_val(rec), rec->vlen);
	free(cmd->val); /* the record's copy serves the command from here */
	cmd->val = (unsigned char *)kv_rec_val(rec);
	cmd->vlen = vlen;
	cmd->prep = rec;
	return 0;
}

int store_cmd_prepare(struct kv_cmd *cmd)
{
	return prepare(cmd, cmd->val, cmd->vlen, STORE_PREPARE_BYTES);
}

int store_cmd_prepare_from(struct kv_cmd *cmd, const void *val, size_t vlen)
{
	return prepare(cmd, val, vlen, STORE_PREPARE_BYTES);
}

int store_prepare_rec(struct kv_cmd *cmd)
{
	return prepare(cmd, cmd->val, cmd->vlen, 0);
}
