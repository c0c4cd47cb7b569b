/* msg_int.h - what the two halves of the message codec share (private to
 * raft/peer/): the wire names of message types, entry types and server
 * roles. The names are in msg_names.c, the encoder in msg_encode.c, the
 * decoder in msg_decode.c; the public API is peer.h and the document is
 * described in docs/peer-protocol.md. Everything here is constant: any
 * thread. */
#ifndef KV_RAFT_MSG_INT_H
#define KV_RAFT_MSG_INT_H

#include <stddef.h>

/* A list of wire names indexed by an enum's values (NULL: no such value;
 * index 0 is never a name). */
struct msg_names {
	const char *const *names;
	size_t n;
};

/* enum raft_msg_type, enum raft_entry_type, enum raft_server_role. */
extern const struct msg_names msg_types, msg_entry_types, msg_roles;

/* The wire name of value v, or NULL if v has none. */
const char *msg_name_of(const struct msg_names *l, unsigned v);
/* The value whose wire name is name, or -1. */
int msg_name_find(const struct msg_names *l, const char *name);

#endif
