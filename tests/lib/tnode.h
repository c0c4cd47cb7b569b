/* tnode.h - a test's node: a kvfs node with its HTTP listener, wired as
 * fs/main.c wires them, for the tests of raft/node and raft/http. Also
 * the small fixtures those tests share: free ports and temp dirs. */
#ifndef KVFS_TESTS_TNODE_H
#define KVFS_TESTS_TNODE_H

#include "http.h"
#include "node.h"
#include "rmtree.h"

struct tnode {
	struct kv_node *node;
	struct http_server *http;
	unsigned port; /* the listener's */
};

/* node_open(opt), then http_start on node_listen. 0, or the error with
 * *err (malloc'd, may be NULL) saying why; t is then zeroed. A member of
 * several members without a cluster_token_file gets a test token in
 * DATA_DIR/test-token, the same for every such node of the test. */
int tnode_open(const struct node_options *opt, struct tnode *t, char **err);
/* tnode_open for a test's setup: on failure it says why on stderr. 0 or
 * -1. */
int tnode_start(const struct node_options *opt, struct tnode *t);
/* A node that can never lead, for tests of waiting requests: member 1 of
 * a three-member cluster whose other two do not exist, on data_dir, with
 * its listener; its writes and linearizable reads wait write_timeout_ms
 * and fail. 0 or -1, as tnode_start. */
int tnode_start_leaderless(const char *data_dir, int write_timeout_ms,
			   struct tnode *t);
/* node_stop, http_stop, node_close (as fs/main.c does). */
void tnode_close(struct tnode *t);
/* A TCP port on 127.0.0.1 that nothing listened on a moment ago. */
unsigned tnode_free_port(void);
/* Poll, up to ms from now, until n knows a leader; its id or 0. */
uint64_t tnode_wait_leader(struct kv_node *n, int ms);

#endif
