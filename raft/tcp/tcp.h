/* tcp.h - the byte DB's protocol over TCP: the public header of raft/tcp/.
 *
 * The byte DB (one of the systems kvfs comes from) spoke a small binary
 * request/response protocol: SET, GET, DEL and ALL with 4-byte
 * little-endian sizes. One listener per process (--tcp-listen, off by
 * default) serves it on the node's keys, the same keys as HTTP and the
 * mount: writes go through the node's propose path (forwarded to the
 * leader from a follower, answered once committed and applied here),
 * reads pass the node's read barrier. It is started by whatever wires the
 * process together (fs/main.c), after node_open, and stopped after
 * node_stop and before node_close, as the HTTP listener is; the node
 * never knows it exists. The protocol, its answers and limits are in
 * docs/byte-protocol.md. */
#ifndef KV_TCP_H
#define KV_TCP_H

#include "node.h"

struct tcp_server;

/* How the listener serves. Every number 0 takes its default. */
struct tcp_options {
	const char *listen;	  /* "HOST:PORT" (port 0: the kernel picks) */
	unsigned max_connections; /* at once: 64; more are answered busy */
	unsigned idle_ms;	  /* between two requests: 30 s */
	unsigned frame_ms; /* one request's bytes, from its first: 10 s */
	unsigned stall_ms; /* a reply the client does not read: 30 s */
	/* The bytes of requests held at once, all connections: 256 MiB (a
	 * request is refused busy beyond it). */
	size_t budget;
};
#define TCP_DEFAULT_MAX_CONNECTIONS 64
#define TCP_DEFAULT_IDLE_MS	    30000
#define TCP_DEFAULT_FRAME_MS	    10000
#define TCP_DEFAULT_STALL_MS	    30000
#define TCP_DEFAULT_BUDGET	    (256u << 20)

/* Bind and start the listener's thread. 0, or -errno / -EINVAL with
 * *errmsg (malloc'd, may be NULL) saying why. Any thread. */
int tcp_start(struct kv_node *n, const struct tcp_options *opt,
	      struct tcp_server **out, char **errmsg);
/* The port it listens on (the kernel's pick for port 0). */
unsigned tcp_port(const struct tcp_server *s);
/* Close every connection and end the thread; free. After node_stop (so
 * every call the listener started is answered), before node_close. NULL
 * is fine. */
void tcp_stop(struct tcp_server *s);

#endif
