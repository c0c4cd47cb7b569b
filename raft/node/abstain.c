/* abstain.c - a member that dropped a damaged log entry stays out of
 * elections until it has that entry again.
 *
 * The store cuts a damaged complete last log line and reports its index
 * (store_recovery.lost_index). The entry may have been acknowledged, so
 * this member must not vote or campaign until a leader gave it back
 * (raft_restore.abstain_until, raft.h). The cut line is gone after one
 * restart, so the index is kept in DATA_DIR/abstain until an entry at or
 * past it is durable here again. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "node_int.h"

#define ABSTAIN_FILE "abstain"

/* The index of an entry this node dropped (a damaged last log line, which
 * may have been acknowledged): from the store at this open, or kept from
 * an earlier one in DATA_DIR/abstain until the leader gave it back. The
 * core votes for nobody and does not campaign until its log reaches it
 * (raft.h, abstain_until): not voting is always safe. 0 if none. */
int node_abstain_open(struct kv_node *n, uint64_t lost, char **errmsg)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/" ABSTAIN_FILE, n->data_dir);
	uint64_t kept = 0;
	FILE *f = fopen(path, "re");
	if (f) {
		unsigned long long v = 0;
		if (fscanf(f, "%llu", &v) == 1)
			kept = v;
		fclose(f);
	}
	n->abstain_until = lost > kept ? lost : kept;
	if (lost > kept) {
		char text[32];
		int len = snprintf(text, sizeof(text), "%llu\n",
				   (unsigned long long)lost);
		int ret = kv_file_replace(n->data_dir, ABSTAIN_FILE, text,
					  (size_t)len, 0600);
		if (ret != 0) {
			*errmsg = node_msgf("cannot write %s: %s", path,
					    kv_strerror(ret));
			return ret;
		}
	}
	if (n->abstain_until)
		kv_log(KV_LOG_WARN,
		       "node %llu dropped a damaged log entry at %llu: "
		       "it votes for nobody and stands for nothing until a "
		       "leader gives that entry back",
		       (unsigned long long)n->id,
		       (unsigned long long)n->abstain_until);
	return 0;
}

void node_abstain_check(struct kv_node *n, uint64_t index)
{
	if (n->abstain_until == 0 || index < n->abstain_until)
		return;
	char path[4096];
	snprintf(path, sizeof(path), "%s/" ABSTAIN_FILE, n->data_dir);
	if (unlink(path) != 0 && errno != ENOENT) {
		kv_log(KV_LOG_WARN, "cannot remove %s: %s", path,
		       strerror(errno));
		return; /* again at the next report */
	}
	kv_sync_dir(n->data_dir);
	kv_log(KV_LOG_INFO,
	       "node %llu has the entry at %llu again: it votes and "
	       "stands for election again",
	       (unsigned long long)n->id, (unsigned long long)n->abstain_until);
	n->abstain_until = 0;
}
