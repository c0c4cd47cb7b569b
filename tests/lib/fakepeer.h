/* fakepeer.h - hand-made peers for the tests that talk to a kvfs node's
 * peer transport (raft/peer/): a recording stream receiver built on
 * libmicrohttpd, ports that refuse connections, listeners that never
 * answer, and a way to take a stream by hand. Everything is on 127.0.0.1
 * with ports the kernel picks. Setup failures fail the calling cmocka test
 * (call these from the test's thread); the receiver's own threads never
 * assert. Waits poll with a deadline. */
#ifndef KVFS_TESTS_FAKEPEER_H
#define KVFS_TESTS_FAKEPEER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <microhttpd.h>

#include "peer.h"

/* How long a fixture waits for what must come: generous, since a shared
 * machine may be slow, and only reached when something is broken. */
#define FAKEPEER_DEADLINE_MS 10000

/* Wait briefly between two polls of a condition (never a test's timing). */
void fakepeer_nap(void);

/* ---- Ports and sockets ---- */

/* A port on 127.0.0.1 bound but not listening yet: connections to it are
 * refused until fakepeer_start_fd(fd) serves it. Returns the socket. */
int fakepeer_reserved_port(unsigned *port);
/* A port on 127.0.0.1 with nothing listening (bound, then closed). */
unsigned fakepeer_dead_port(void);
/* A socket listening on 127.0.0.1 that never answers: a hung peer. Returns
 * the listening socket; its port in *port. */
int fakepeer_hung_listener(unsigned *port);
/* Accept one connection on listener fd and read until a request's head is
 * in. Returns the connection (the caller closes it). */
int fakepeer_accept_request(int fd);
/* The same, then answer "100 Continue", as a peer taking a stream does. */
int fakepeer_accept_stream(int fd);

/* A libmicrohttpd daemon on 127.0.0.1, a thread per connection, serving
 * listening socket fd (-1: a new one on a free port), calling on_request
 * with cls and on_done (may be NULL) with the same cls. Its port in *port.
 * Stop it with MHD_stop_daemon. */
struct MHD_Daemon *fakepeer_mhd_start(int fd, MHD_AccessHandlerCallback on_req,
				      MHD_RequestCompletedCallback on_done,
				      void *cls, unsigned *port);

/* ---- The recording peer ---- */

#define FAKEPEER_MAX_FRAMES 4096

/* One frame received, with what its stream's request carried. */
struct fakepeer_frame {
	char method[8];
	char url[64];
	char ctype[64];
	char cluster[64];
	char token[64];
	char protocol[16];
	unsigned client_port;
	char *body; /* the payload, NUL-terminated */
	size_t len;
};

/* A peer that takes every stream (POST of frames, answered 204 at its end)
 * and records each frame in order, or refuses every stream before its body
 * when status is set. mu guards the counters and frames; the test may read
 * them without it once the sender is quiet. */
struct fakepeer {
	struct MHD_Daemon *d;
	unsigned port;
	pthread_mutex_t mu;
	unsigned status;  /* refuse every stream with this (0: take it) ... */
	const char *text; /* ... and this body */
	unsigned streams; /* requests that began */
	/* Set: a stream's body is not read (the handler waits), so the
	 * sender's socket fills up, as with a peer that stalls. */
	atomic_bool paused;
	struct fakepeer_frame frames[FAKEPEER_MAX_FRAMES];
	unsigned n;
};

/* A recording peer on a free port, or on listening socket fd (from
 * fakepeer_reserved_port). */
struct fakepeer *fakepeer_start(void);
struct fakepeer *fakepeer_start_fd(int fd);
/* Stop it and free what it recorded. */
void fakepeer_stop(struct fakepeer *fp);
/* Every recorded frame decoded in order (peer_handle_body for node self of
 * cluster; a frame that does not decode fails the test) into one array of
 * *count messages: free it with peer_msgs_free. */
struct raft_message *fakepeer_msgs(struct fakepeer *fp, const char *cluster,
				   uint64_t self, size_t *count);
/* fakepeer_msgs once at least want messages arrived, or the deadline
 * passed (a sender counts a frame sent when its connection took it, a
 * moment before the peer has read it). */
struct raft_message *fakepeer_wait_msgs(struct fakepeer *fp,
					const char *cluster, uint64_t self,
					size_t want, size_t *count);

#endif
