/* http_gate.h - the listener's gate: who gets a connection, and for how
 * long (not public).
 *
 * http_gate.c keeps every connection's phase (waiting for its request,
 * idle between requests, sending its body, busy being answered) and the
 * deadline of the phase, closes connections past it from a timer thread
 * of its own, and decides at accept who may connect: at most per_address
 * from one client address, and when the clients' slots are full the
 * connection nearest its deadline among those that only wait is closed to
 * make room, so a newcomer (a peer, /status) never queues behind slow
 * clients. http_addr.c counts connections per client address,
 * http_limits.c fills in the limits' defaults and fits them to the fd
 * limit. http_conn.c is what libmicrohttpd calls for a request: it tells
 * the gate each step, then hands the request to the router. The design
 * and its defaults are in docs/http-api.md ("Limits and hostile
 * clients"). */
#ifndef KV_HTTP_GATE_H
#define KV_HTTP_GATE_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "http.h"

/* Connections a peer, or one closed by the gate and not yet gone, may
 * hold beyond the clients' and the reserve's: what libmicrohttpd's own
 * limit adds, so that it never stops accepting (it would leave newcomers
 * in the kernel's queue, behind whoever holds the slots). */
#define HTTP_GATE_PEERS	  128u
#define HTTP_GATE_CLOSING 128u
/* File descriptors the rest of the process needs beside the listener's. */
#define HTTP_GATE_FD_OTHERS 256u

/* ---- http_addr.c: connections per client address ---- */

/* A client address as the per-address limit sees it: an IPv4 address
 * (as ::ffff:a.b.c.d), or the /64 an IPv6 address is in. */
struct http_addr_key {
	uint8_t b[16];
};
struct http_addrs;

/* The key of a socket address. 0, or -EAFNOSUPPORT (not IPv4/IPv6). */
int http_addr_key(const struct sockaddr *sa, socklen_t len,
		  struct http_addr_key *k);
/* A table for about n addresses at once (it grows by chaining). 0 or
 * -ENOMEM. */
int http_addrs_new(unsigned n, struct http_addrs **out);
void http_addrs_free(struct http_addrs *t);
/* Connections from k now (0 if unknown). */
unsigned http_addrs_count(const struct http_addrs *t,
			  const struct http_addr_key *k);
/* One more, or one fewer, connection from k. 0 or -ENOMEM (add). */
int http_addrs_add(struct http_addrs *t, const struct http_addr_key *k);
void http_addrs_del(struct http_addrs *t, const struct http_addr_key *k);
/* k is a member's host: a connection from it presented the cluster's
 * token. Remembered for HTTP_GATE_PEERS addresses at most (the first
 * ones); their connections are not held to the per-address limit. */
void http_addrs_mark_peer(struct http_addrs *t, const struct http_addr_key *k);
bool http_addrs_is_peer(const struct http_addrs *t,
			const struct http_addr_key *k);

/* ---- http_limits.c: the limits ---- */

/* Fill *out from lim (NULL: defaults; a field 0: its default), and fit
 * the connections to the fd limit, raising the soft RLIMIT_NOFILE up to
 * the hard one (http.h, http_start_with). Logs what it lowered. */
void http_gate_limits(const struct http_limits *lim, struct http_limits *out);

/* ---- http_gate.c: phases and deadlines ---- */

struct http_gate;

/* What the gate says of a request whose headers are in. */
enum http_gate_verdict {
	HTTP_GATE_GO,	/* route it */
	HTTP_GATE_BUSY, /* a client in the reserve: answer 503 busy */
	HTTP_GATE_DROP, /* the gate closed the connection already */
};

/* Is tok (an X-Kvfs-Token header) one of the cluster's tokens? Then its
 * bearer is a peer. Any thread, in constant time (node_token_check). */
typedef bool (*http_gate_peer_fn)(void *ctx, const char *tok);
/* A gate with these limits (as http_gate_limits filled them), telling
 * peers by is_peer(ctx, ...). Starts its timer thread. 0, -ENOMEM or
 * -errno. */
int http_gate_new(const struct http_limits *lim, http_gate_peer_fn is_peer,
		  void *ctx, struct http_gate **out);
/* What to give libmicrohttpd as its connection limit and timeout (s). */
unsigned http_gate_mhd_limit(const struct http_gate *g);
unsigned http_gate_mhd_timeout(const struct http_gate *g);
/* Stop the timer thread (before MHD_stop_daemon, which tells the gate of
 * every connection it closes), then free the gate (after it). */
void http_gate_stop(struct http_gate *g);
void http_gate_free(struct http_gate *g);

/* libmicrohttpd's accept policy, connection notifier and URI logger (cls
 * is the gate); the listener's thread. */
enum MHD_Result http_gate_accept(void *cls, const struct sockaddr *addr,
				 socklen_t addrlen);
void http_gate_notify(void *cls, struct MHD_Connection *conn,
		      void **socket_context,
		      enum MHD_ConnectionNotificationCode code);
void *http_gate_uri(void *cls, const char *uri, struct MHD_Connection *conn);

/* A request's steps, from http_conn.c on the listener's thread: its
 * headers are in (the peer's token, or the path /status, decide what it
 * may do); body bytes arrived (false: the gate closed the connection);
 * the whole request is in and its handler runs; it was answered. */
enum http_gate_verdict http_gate_headers(struct http_gate *g,
					 struct MHD_Connection *conn,
					 const char *method, const char *url);
bool http_gate_body(struct http_gate *g, struct MHD_Connection *conn,
		    size_t size);
void http_gate_busy(struct http_gate *g, struct MHD_Connection *conn);
void http_gate_done(struct http_gate *g, struct MHD_Connection *conn);

/* May the listener log one more line now? At most a burst of lines per
 * ten seconds, so that a hostile client cannot flood the log; the rest
 * are counted (log_dropped). Any thread. */
bool http_gate_log_ok(struct http_gate *g);
/* The counters (http_stats in http.h). Any thread. */
void http_gate_stats(struct http_gate *g, struct http_stats *out);

#endif
