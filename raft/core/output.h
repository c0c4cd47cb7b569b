/* output.h - the pending output of the core (output.c).
 *
 * Rule files leave their effects here while an event runs; raft_update_get
 * (raft.h) hands all of it out at once. Nothing here is sent or answered
 * yet: the caller does that after persisting (raft.h, THE CALLER'S ORDER).
 * Allocation failures drop the message or read, as the network might; the
 * sender's retries and the caller's time-outs cover it. */
#ifndef KV_RAFT_OUTPUT_H
#define KV_RAFT_OUTPUT_H

#include "raft.h"

struct raft;

/* A new message of type t to `to`, from us in our current term, all other
 * fields zero, for the caller to fill; NULL if out of memory (then the
 * message is dropped). Valid until the next out_msg. */
struct raft_message *out_msg(struct raft *r, enum raft_msg_type t, uint64_t to);
/* A local ReadIndex answer (§6.4): the read with ctx may be served once
 * applied >= index (err 0), or failed with err. 0 or RAFT_ENOMEM (then
 * it is dropped and the caller's read times out). */
int out_read(struct raft *r, uint64_t ctx, uint64_t index, int err);
/* Free the pending output (raft_free). */
void out_close(struct raft *r);

#endif
