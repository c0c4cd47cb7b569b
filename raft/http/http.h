/* http.h - the HTTP API of a node: the public header of raft/http/.
 *
 * One listener per process serves the client endpoints (/kv/, /status,
 * mmapd's /set and /get), the membership endpoints (/cluster/) and the
 * peers' (/raft/). It is started by whatever wires the process together
 * (fs/main.c), after node_open, and stopped after node_stop and before
 * node_close: the node never knows it exists. Endpoints and statuses are
 * in docs/http-api.md. */
#ifndef KV_HTTP_H
#define KV_HTTP_H

#include "node.h"

struct http_server;

/* Listen on listen ("HOST:PORT", checked by kv_addr_parse; port 0 picks
 * one; NULL: 127.0.0.1:7001) and serve node n (borrowed: it must outlive
 * the server). The listener runs every connection on one thread of its
 * own, and the few handlers that block on threads of their own. On
 * failure *errmsg (malloc'd, may be NULL) says why: a bad address, a port
 * in use. 0, -EINVAL, -ENOMEM, -EIO, -errno. Any thread. */
int http_start(struct kv_node *n, const char *listen, struct http_server **out,
	       char **errmsg);
/* Stop serving and free h: waits until every suspended request was
 * answered (call node_stop first, so that the node answers them at once)
 * and every offloaded handler returned. NULL is fine. Any thread but the
 * listener's, its handlers' and the node's (it waits for all three): the
 * thread that started it, in practice. */
void http_stop(struct http_server *h);
/* The port the listener is bound to (0 for NULL). Any thread. */
unsigned http_port(const struct http_server *h);

#endif
