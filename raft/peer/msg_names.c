/* msg_names.c - the vocabulary of the peer wire format: the names of
 * message types, entry types and server roles, and what a cluster id or
 * token may hold.
 *
 * Names, not numbers, go on the wire, so that the C enums may be
 * renumbered without a new protocol version. The encoder (msg_encode.c)
 * and the decoder (msg_decode.c) both read these tables (msg_int.h); the
 * document is described in docs/peer-protocol.md. */
#include <string.h>

#include "msg_int.h"
#include "peer.h"

static const char *const type_names[] = {
    [RAFT_MSG_APPEND] = "append",
    [RAFT_MSG_APPEND_RESP] = "append_resp",
    [RAFT_MSG_VOTE] = "vote",
    [RAFT_MSG_VOTE_RESP] = "vote_resp",
    [RAFT_MSG_PREVOTE] = "prevote",
    [RAFT_MSG_PREVOTE_RESP] = "prevote_resp",
    [RAFT_MSG_HEARTBEAT] = "heartbeat",
    [RAFT_MSG_HEARTBEAT_RESP] = "heartbeat_resp",
    [RAFT_MSG_READ_INDEX] = "read_index",
    [RAFT_MSG_READ_INDEX_RESP] = "read_index_resp",
    [RAFT_MSG_SNAPSHOT] = "snapshot",
    [RAFT_MSG_TIMEOUT_NOW] = "timeout_now",
    [RAFT_MSG_PROPOSE] = "propose",
    [RAFT_MSG_PROPOSE_RESP] = "propose_resp",
};

static const char *const entry_type_names[] = {
    [RAFT_ENTRY_NORMAL] = "normal",
    [RAFT_ENTRY_NOOP] = "noop",
    [RAFT_ENTRY_CONFIG] = "config",
};

static const char *const role_names[] = {
    [RAFT_VOTER] = "voter",
    [RAFT_LEARNER] = "learner",
};

#define LIST(a)                                                                \
	{                                                                      \
		(a), sizeof(a) / sizeof((a)[0])                                \
	}
const struct msg_names msg_types = LIST(type_names);
const struct msg_names msg_entry_types = LIST(entry_type_names);
const struct msg_names msg_roles = LIST(role_names);
#undef LIST

const char *msg_name_of(const struct msg_names *l, unsigned v)
{
	return v < l->n ? l->names[v] : NULL;
}

int msg_name_find(const struct msg_names *l, const char *name)
{
	for (size_t i = 1; i < l->n; i++)
		if (l->names[i] != NULL && strcmp(l->names[i], name) == 0)
			return (int)i;
	return -1;
}

const char *peer_msg_type_name(enum raft_msg_type t)
{
	const char *name = msg_name_of(&msg_types, (unsigned)t);
	return name != NULL ? name : "none";
}

bool peer_id_valid(const char *s)
{
	size_t n = 0;

	if (s == NULL)
		return false;
	for (; s[n] != '\0'; n++)
		if (s[n] < 0x21 || s[n] > 0x7e || n >= PEER_ID_MAX)
			return false;
	return n > 0;
}
