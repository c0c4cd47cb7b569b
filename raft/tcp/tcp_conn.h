/* tcp_conn.h - what the listener (tcp.c) and the serving of requests
 * (tcp_serve.c) share: a connection and the server (not public). The
 * loop's thread alone touches a connection, but for its answer, queued
 * under the server's mu by the node thread. */
#ifndef KV_TCP_CONN_H
#define KV_TCP_CONN_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tcp.h"
#include "tcp_int.h"

#define IN_CHUNK (64u * 1024u)

struct conn {
	struct tcp_server *s;
	int fd; /* -1 once closed (then freed when its call is answered) */
	unsigned char *in;
	size_t in_len, in_cap;
	unsigned char *out;
	size_t out_len, out_off, out_cap;
	size_t reserved;	 /* of the server's budget */
	uint64_t frame_start_ms; /* a request's first byte came; 0: none */
	uint64_t last_ms;	 /* last progress, reading or writing */
	bool busy;		 /* a node call in flight */
	bool closing;		 /* close once out is written */
	/* the request being served */
	struct tcp_frame fr;
	long fr_len;
	char key[KV_MAX_KEY + 1];
	size_t klen;
	/* its call's answer (under s->mu), queued on s->done */
	bool answered;
	int ret;
	struct kv_result res;
	struct conn *next_done;
};

struct tcp_server {
	struct kv_node *node;
	struct tcp_options opt;
	int listen_fd, wake_fd;
	unsigned port;
	pthread_t thread;
	bool started;
	/* the loop's own */
	struct conn **conns;
	size_t nconns;
	size_t held; /* bytes of requests reserved, all connections */
	/* answers from the node thread, and the stop flag */
	pthread_mutex_t mu;
	struct conn *done;
	bool stop;
};

/* ---- tcp_serve.c: replies and the serving of one request ---- */

/* Queue an error reply with code and msg on c's output. */
void conn_reply_err(struct conn *c, const char *code, const char *msg);
/* Serve c's parsed request (c->fr): a reply queued, or a node call made
 * (c->busy). */
void conn_serve(struct conn *c, uint64_t now);
/* A node call of c was answered: its reply. */
void conn_finish(struct conn *c, int ret, const struct kv_result *res);

#endif
