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

#include <stdbool.h>

#include "node.h"

struct http_server;
struct peer_tls; /* raft/peer/peer_tls.h */
struct http_limits;

/* How a listener serves (docs/security.md). */
struct http_options {
	const char *listen; /* "HOST:PORT"; NULL: 127.0.0.1:7001 */
	/* TLS with this identity (borrowed; it must outlive the server):
	 * https only, members must present a certificate of its CA.
	 * NULL: plain HTTP. */
	const struct peer_tls *tls;
	bool tls_client_auth; /* every client must present one too */
	/* Client tokens with roles (the file's format: http_auth.c),
	 * reread by http_reload. NULL: clients need no token. */
	const char *auth_file;
	bool status_public; /* /status without a token, even with auth */
	/* What each connection is allowed (below); NULL: the defaults.
	 * The listener raises the process's soft RLIMIT_NOFILE, up to the
	 * hard limit, to what its connections need (max_connections +
	 * reserve + 256 for peers and in-flight closes + 256 for the rest
	 * of the process), and lowers max_connections to fit if the hard
	 * limit is lower (logged). */
	const struct http_limits *limits;
};

/* What the listener allows each connection, so that slow, idle or many
 * clients cannot lock the others (or the peers) out. Every field 0 takes
 * its default (HTTP_LIMITS_DEFAULT below); docs/http-api.md has the
 * reasoning. Times in milliseconds. */
struct http_limits {
	unsigned max_connections; /* clients' connections at once: 4096 */
	unsigned reserve;	  /* more, kept for peers and /status: 64 */
	unsigned per_address;	  /* from one client address (IPv6: one /64),
				     members' hosts exempt: 256 */
	unsigned header_ms;	  /* the whole request line and headers, from
				     the connection or the request line: 10 s */
	unsigned idle_ms;	/* between two requests of a connection: 30 s */
	unsigned body_grace_ms; /* a body may start slowly for: 10 s */
	unsigned body_rate;	/* then bytes/s on average at least: 16 KiB */
	unsigned stall_ms;	/* a reply the client does not read, or a
				   peer's stream without a byte: 60 s */
};
#define HTTP_LIMITS_DEFAULT                                                    \
	{                                                                      \
		.max_connections = 4096, .reserve = 64, .per_address = 256,    \
		.header_ms = 10000, .idle_ms = 30000, .body_grace_ms = 10000,  \
		.body_rate = 16384, .stall_ms = 60000                          \
	}

/* How often the listener's limits were hit since it started, and its
 * connections now: what /status/http answers (docs/http-api.md). */
struct http_stats {
	unsigned clients, peers;   /* connections now */
	struct http_limits limits; /* in force (fitted to the fd limit) */
	uint64_t accepted;
	uint64_t closed_header;	  /* request line and headers too slow */
	uint64_t closed_idle;	  /* idle between requests too long */
	uint64_t closed_body;	  /* body slower than body_rate */
	uint64_t evicted;	  /* waiting or idle, closed to admit another */
	uint64_t refused_address; /* over per_address */
	uint64_t refused_full;	  /* every slot busy with a request */
	uint64_t refused_reserve; /* 503 busy: a client in the reserve */
	uint64_t log_dropped;	  /* listener log lines over the rate */
};

/* Listen on listen ("HOST:PORT", checked by kv_addr_parse; port 0 picks
 * one; NULL: 127.0.0.1:7001) and serve node n (borrowed: it must outlive
 * the server). The listener runs every connection on one thread of its
 * own, and the few handlers that block on threads of their own. On
 * failure *errmsg (malloc'd, may be NULL) says why: a bad address, a port
 * in use. 0, -EINVAL, -ENOMEM, -EIO, -errno. Any thread. */
int http_start(struct kv_node *n, const char *listen, struct http_server **out,
	       char **errmsg);
/* http_start with every option (o is read during the call only). The
 * same errors, and -EINVAL with *errmsg for an --auth file that does not
 * parse (naming the line). Any thread. */
int http_start_with(struct kv_node *n, const struct http_options *o,
		    struct http_server **out, char **errmsg);
/* Read the --auth file again (SIGHUP): the new tokens serve the next
 * requests; a file that does not parse keeps the old table and returns
 * -EINVAL with *errmsg (malloc'd) naming the line. 0 without a file. Any
 * thread but the listener's. */
int http_reload(struct http_server *h, char **errmsg);
/* Stop serving and free h: waits until every suspended request was
 * answered (call node_stop first, so that the node answers them at once)
 * and every offloaded handler returned. NULL is fine. Any thread but the
 * listener's, its handlers' and the node's (it waits for all three): the
 * thread that started it, in practice. */
void http_stop(struct http_server *h);
/* The port the listener is bound to (0 for NULL). Any thread. */
unsigned http_port(const struct http_server *h);
/* The listener's counters (zeros for NULL): what /status/http answers,
 * for whatever reports the node's state. Any thread. */
void http_stats(struct http_server *h, struct http_stats *out);

#endif
