/* http_gate.c - who gets a connection, and for how long (http_gate.h).
 *
 * libmicrohttpd's own timeout counts inactivity, so a client that sends a
 * byte now and then keeps its connection for ever, and at its connection
 * limit it stops accepting, so that newcomers (peers, /status) wait in
 * the kernel's queue behind whoever holds the slots. The gate keeps its
 * own deadline per connection instead: the request line and headers
 * within header_ms however they trickle, a body at body_rate after a
 * grace, the next request within idle_ms; a timer thread closes what is
 * past it (shutdown(2) of the socket, which libmicrohttpd then closes on
 * its own thread, with or without TLS). It admits at accept, before
 * libmicrohttpd's limit: at most per_address per client address, and once
 * the clients' slots are full the connection nearest its deadline among
 * those still waiting for a request is closed to make room; only when
 * every slot is busy with a request does a newcomer take the reserve,
 * which it keeps if it turns out a peer (the cluster's token) or
 * /status. Peers have no deadlines. Every state here is under mu. */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http_gate.h"
#include "peer.h"

/* Lines the listener may log per ten seconds (more are counted). */
#define GATE_LOG_BURST	   20
#define GATE_LOG_WINDOW_MS 10000u
/* The counters are summed up in the log this often, when they moved. */
#define GATE_SUMMARY_MS 60000u

enum phase {
	WAITING, /* for its request line and headers (list waiting) */
	IDLE,	 /* between two requests (list idle) */
	BODY,	 /* headers in, body arriving (list body) */
	BUSY,	 /* being answered, or a peer's: no deadline */
	CLOSING, /* closed by the gate, libmicrohttpd not done with it */
};

struct gate_conn {
	struct gate_conn *prev, *next; /* in its phase's list */
	struct MHD_Connection *conn;
	int fd;
	enum phase phase;
	uint64_t since; /* ms the phase began */
	uint64_t bytes; /* of this request's body */
	struct http_addr_key key;
	bool counted; /* held in its address's count */
	bool peer;    /* presented the cluster's token */
	bool reserve; /* admitted past max_connections */
};

struct gate_list {
	struct gate_conn *head, *tail; /* oldest phase start first */
};

struct http_gate {
	struct http_limits lim;
	http_gate_peer_fn is_peer; /* tells a peer by its token */
	void *peer_ctx;
	uint64_t tick_ms; /* longest sleep of the timer */
	pthread_mutex_t mu;
	pthread_cond_t cond;
	pthread_t timer;
	bool stopping;
	struct gate_list waiting, idle, body;
	/* Connections libmicrohttpd holds: clients and peers not closing,
	 * and those the gate closed that it has not let go yet. */
	unsigned clients, peers, closing;
	struct http_addrs *addrs;
	struct http_stats st;
	uint64_t log_window; /* start of the log's current window */
	unsigned log_lines;  /* lines logged in it */
	uint64_t summary_at; /* last summary in the log */
	struct http_stats summarized;
};

unsigned http_gate_mhd_limit(const struct http_gate *g)
{
	return g->lim.max_connections + g->lim.reserve + HTTP_GATE_PEERS +
	       HTTP_GATE_CLOSING;
}

unsigned http_gate_mhd_timeout(const struct http_gate *g)
{
	return (g->lim.stall_ms + 999) / 1000;
}

/* ---- phases ---- */

static struct gate_list *list_of(struct http_gate *g, enum phase p)
{
	switch (p) {
	case WAITING:
		return &g->waiting;
	case IDLE:
		return &g->idle;
	case BODY:
		return &g->body;
	default:
		return NULL;
	}
}

/* Move c to phase p, begun at now: to the tail of p's list, so that each
 * list stays in the order of its phases' starts. */
static void set_phase(struct http_gate *g, struct gate_conn *c, enum phase p,
		      uint64_t now)
{
	struct gate_list *l = list_of(g, c->phase);
	if (l) {
		*(c->prev ? &c->prev->next : &l->head) = c->next;
		*(c->next ? &c->next->prev : &l->tail) = c->prev;
		c->prev = c->next = NULL;
	}
	c->phase = p;
	c->since = now;
	l = list_of(g, p);
	if (l) {
		c->prev = l->tail;
		*(l->tail ? &l->tail->next : &l->head) = c;
		l->tail = c;
	}
}

/* When c's phase runs out (UINT64_MAX: never). A body earns a second per
 * body_rate bytes beyond its grace. */
static uint64_t deadline(const struct http_gate *g, const struct gate_conn *c)
{
	switch (c->phase) {
	case WAITING:
		return c->since + g->lim.header_ms;
	case IDLE:
		return c->since + g->lim.idle_ms;
	case BODY:
		return c->since + g->lim.body_grace_ms +
		       c->bytes * 1000u / g->lim.body_rate;
	default:
		return UINT64_MAX;
	}
}

/* Close c: shut its socket down, which libmicrohttpd notices on its own
 * thread and closes (the fd stays open until it has told the gate).
 * counter, if not NULL, counts why. */
static void close_conn(struct http_gate *g, struct gate_conn *c,
		       uint64_t *counter)
{
	shutdown(c->fd, SHUT_RDWR);
	if (c->peer)
		g->peers--;
	else
		g->clients--;
	g->closing++;
	set_phase(g, c, CLOSING, c->since);
	if (counter)
		(*counter)++;
}

/* Close the waiting or idle connection nearest its deadline, to admit a
 * newcomer. False if there is none (every slot is busy) or too many
 * closes are still under way. */
static bool make_room(struct http_gate *g)
{
	struct gate_conn *w = g->waiting.head, *i = g->idle.head;
	struct gate_conn *victim = w;

	if (!w || (i && deadline(g, i) < deadline(g, w)))
		victim = i;
	if (!victim || g->closing >= HTTP_GATE_CLOSING)
		return false;
	close_conn(g, victim, &g->st.evicted);
	return true;
}

static struct gate_conn *conn_of(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *i =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return i ? i->socket_context : NULL;
}

/* ---- what libmicrohttpd calls ---- */

enum MHD_Result http_gate_accept(void *cls, const struct sockaddr *addr,
				 socklen_t addrlen)
{
	struct http_gate *g = cls;
	struct http_addr_key k;
	bool keyed = http_addr_key(addr, addrlen, &k) == 0;
	enum MHD_Result ok = MHD_NO;

	pthread_mutex_lock(&g->mu);
	unsigned held = g->clients + g->peers + g->closing;
	if (keyed && !http_addrs_is_peer(g->addrs, &k) &&
	    http_addrs_count(g->addrs, &k) >= g->lim.per_address)
		g->st.refused_address++;
	else if (held + 1 >= http_gate_mhd_limit(g))
		g->st.refused_full++;
	else if (g->clients < g->lim.max_connections || make_room(g) ||
		 g->clients < g->lim.max_connections + g->lim.reserve)
		ok = MHD_YES;
	else
		g->st.refused_full++;
	pthread_mutex_unlock(&g->mu);
	return ok;
}

static void conn_started(struct http_gate *g, struct MHD_Connection *conn,
			 void **socket_context)
{
	const union MHD_ConnectionInfo *fd =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	const union MHD_ConnectionInfo *ad =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	struct gate_conn *c = calloc(1, sizeof(*c));

	if (!c || !fd) {
		/* one the gate cannot watch is not served */
		free(c);
		if (fd)
			shutdown(fd->connect_fd, SHUT_RDWR);
		return;
	}
	c->conn = conn;
	c->fd = fd->connect_fd;
	c->phase = BUSY;
	const struct sockaddr *sa = ad ? ad->client_addr : NULL;
	socklen_t len = sa && sa->sa_family == AF_INET6
			    ? sizeof(struct sockaddr_in6)
			    : sizeof(struct sockaddr_in);
	bool keyed = sa && http_addr_key(sa, len, &c->key) == 0;
	pthread_mutex_lock(&g->mu);
	c->counted = keyed && http_addrs_add(g->addrs, &c->key) == 0;
	c->reserve = g->clients >= g->lim.max_connections;
	g->clients++;
	g->st.accepted++;
	set_phase(g, c, WAITING, kv_mono_ms());
	pthread_mutex_unlock(&g->mu);
	*socket_context = c;
}

static void conn_closed(struct http_gate *g, void **socket_context)
{
	struct gate_conn *c = *socket_context;

	if (!c)
		return;
	pthread_mutex_lock(&g->mu);
	if (c->phase == CLOSING)
		g->closing--;
	else if (c->peer)
		g->peers--;
	else
		g->clients--;
	set_phase(g, c, BUSY, 0); /* out of its list */
	if (c->counted)
		http_addrs_del(g->addrs, &c->key);
	pthread_mutex_unlock(&g->mu);
	free(c);
	*socket_context = NULL;
}

void http_gate_notify(void *cls, struct MHD_Connection *conn,
		      void **socket_context,
		      enum MHD_ConnectionNotificationCode code)
{
	if (code == MHD_CONNECTION_NOTIFY_STARTED)
		conn_started(cls, conn, socket_context);
	else
		conn_closed(cls, socket_context);
}

void *http_gate_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
	struct http_gate *g = cls;
	struct gate_conn *c = conn_of(conn);

	(void)uri;
	if (!c || c->peer)
		return NULL;
	/* a request begins on a kept-alive connection: its headers now
	 * have header_ms (a new connection's count from its accept) */
	pthread_mutex_lock(&g->mu);
	if (c->phase == IDLE)
		set_phase(g, c, WAITING, kv_mono_ms());
	pthread_mutex_unlock(&g->mu);
	return NULL; /* the request's first con_cls, as without a logger */
}

/* ---- a request's steps ---- */

static bool is_status(const char *method, const char *url)
{
	return (strcmp(method, MHD_HTTP_METHOD_GET) == 0 ||
		strcmp(method, MHD_HTTP_METHOD_HEAD) == 0) &&
	       (strcmp(url, "/status") == 0 ||
		strcmp(url, "/status/http") == 0 ||
		strcmp(url, "/health") == 0 || strcmp(url, "/readyz") == 0 ||
		strcmp(url, "/metrics") == 0);
}

enum http_gate_verdict http_gate_headers(struct http_gate *g,
					 struct MHD_Connection *conn,
					 const char *method, const char *url)
{
	struct gate_conn *c = conn_of(conn);
	enum http_gate_verdict v = HTTP_GATE_GO;

	if (!c)
		return HTTP_GATE_GO;
	const char *tok =
	    MHD_lookup_connection_value(conn, MHD_HEADER_KIND, PEER_HDR_TOKEN);
	bool peer = !c->peer && tok && g->is_peer(g->peer_ctx, tok);
	pthread_mutex_lock(&g->mu);
	uint64_t now = kv_mono_ms();
	if (c->phase == CLOSING) {
		v = HTTP_GATE_DROP;
	} else if (peer) {
		/* a member: out of the clients' slots and its address's
		 * count, for the connection's life */
		c->peer = true;
		c->reserve = false;
		g->clients--;
		g->peers++;
		if (c->counted)
			http_addrs_del(g->addrs, &c->key);
		c->counted = false;
		http_addrs_mark_peer(g->addrs, &c->key);
		set_phase(g, c, BUSY, now);
	} else if (c->peer) {
		set_phase(g, c, BUSY, now);
	} else if (c->reserve && !is_status(method, url)) {
		g->st.refused_reserve++;
		set_phase(g, c, BUSY, now);
		v = HTTP_GATE_BUSY;
	} else {
		c->bytes = 0;
		set_phase(g, c, BODY, now);
	}
	pthread_mutex_unlock(&g->mu);
	return v;
}

bool http_gate_body(struct http_gate *g, struct MHD_Connection *conn,
		    size_t size)
{
	struct gate_conn *c = conn_of(conn);
	bool open = true;

	/* a peer's stream, its hottest path, takes no lock: only this
	 * thread changes a peer's state */
	if (!c || c->peer)
		return true;
	pthread_mutex_lock(&g->mu);
	if (c->phase == CLOSING)
		open = false;
	c->bytes += size;
	pthread_mutex_unlock(&g->mu);
	return open;
}

void http_gate_busy(struct http_gate *g, struct MHD_Connection *conn)
{
	struct gate_conn *c = conn_of(conn);

	if (!c || c->peer)
		return;
	pthread_mutex_lock(&g->mu);
	if (c->phase == BODY)
		set_phase(g, c, BUSY, kv_mono_ms());
	pthread_mutex_unlock(&g->mu);
}

void http_gate_done(struct http_gate *g, struct MHD_Connection *conn)
{
	struct gate_conn *c = conn_of(conn);

	if (!c || c->peer)
		return;
	pthread_mutex_lock(&g->mu);
	if (c->phase != CLOSING) {
		/* the reserve holds one request, /status or a refusal */
		if (c->reserve)
			close_conn(g, c, NULL);
		else
			set_phase(g, c, IDLE, kv_mono_ms());
	}
	pthread_mutex_unlock(&g->mu);
}

/* ---- the timer ---- */

/* Close every connection past its deadline. Waiting and idle ones are in
 * the order of their deadlines; a body's deadline moves with its bytes,
 * so the bodies past their grace are each looked at. */
static void expire(struct http_gate *g, uint64_t now)
{
	while (g->waiting.head && deadline(g, g->waiting.head) <= now)
		close_conn(g, g->waiting.head, &g->st.closed_header);
	while (g->idle.head && deadline(g, g->idle.head) <= now)
		close_conn(g, g->idle.head, &g->st.closed_idle);
	struct gate_conn *c = g->body.head, *next;
	for (; c && c->since + g->lim.body_grace_ms <= now; c = next) {
		next = c->next;
		if (deadline(g, c) <= now)
			close_conn(g, c, &g->st.closed_body);
	}
}

/* Once a minute, what the limits did, if they did anything. */
static void summarize(struct http_gate *g, uint64_t now)
{
	const struct http_stats *s = &g->st, *o = &g->summarized;

	if (now - g->summary_at < GATE_SUMMARY_MS)
		return;
	g->summary_at = now;
	if (s->closed_header == o->closed_header &&
	    s->closed_idle == o->closed_idle &&
	    s->closed_body == o->closed_body && s->evicted == o->evicted &&
	    s->refused_address == o->refused_address &&
	    s->refused_full == o->refused_full &&
	    s->refused_reserve == o->refused_reserve &&
	    s->log_dropped == o->log_dropped)
		return;
	kv_log(KV_LOG_WARN,
	       "in the last minute: closed %" PRIu64
	       " connections with slow headers, %" PRIu64 " idle, %" PRIu64
	       " with slow bodies; %" PRIu64 " to make room; refused %" PRIu64
	       " over the per-address limit, %" PRIu64
	       " for want of room, %" PRIu64 " in the reserve; %" PRIu64
	       " log lines dropped",
	       s->closed_header - o->closed_header,
	       s->closed_idle - o->closed_idle, s->closed_body - o->closed_body,
	       s->evicted - o->evicted, s->refused_address - o->refused_address,
	       s->refused_full - o->refused_full,
	       s->refused_reserve - o->refused_reserve,
	       s->log_dropped - o->log_dropped);
	g->summarized = *s;
}

static void *timer_main(void *arg)
{
	struct http_gate *g = arg;

	pthread_mutex_lock(&g->mu);
	while (!g->stopping) {
		uint64_t now = kv_mono_ms();
		expire(g, now);
		summarize(g, now);
		/* until the next waiting or idle deadline; bodies, whose
		 * deadlines move, are looked at every tick */
		uint64_t next = now + g->tick_ms;
		if (g->waiting.head && deadline(g, g->waiting.head) < next)
			next = deadline(g, g->waiting.head);
		if (g->idle.head && deadline(g, g->idle.head) < next)
			next = deadline(g, g->idle.head);
		struct timespec t = kv_deadline((int)(next - now) + 1);
		pthread_cond_timedwait(&g->cond, &g->mu, &t);
	}
	pthread_mutex_unlock(&g->mu);
	return NULL;
}

/* ---- life ---- */

int http_gate_new(const struct http_limits *lim, http_gate_peer_fn is_peer,
		  void *ctx, struct http_gate **out)
{
	struct http_gate *g = calloc(1, sizeof(*g));
	int rc;

	if (!g)
		return -ENOMEM;
	g->lim = *lim;
	g->is_peer = is_peer;
	g->peer_ctx = ctx;
	unsigned shortest = lim->header_ms;
	if (lim->idle_ms < shortest)
		shortest = lim->idle_ms;
	if (lim->body_grace_ms < shortest)
		shortest = lim->body_grace_ms;
	g->tick_ms = shortest / 4 < 1000 ? shortest / 4 + 1 : 1000;
	g->summary_at = kv_mono_ms();
	rc = http_addrs_new(lim->max_connections + lim->reserve, &g->addrs);
	if (rc < 0)
		goto err_free;
	pthread_mutex_init(&g->mu, NULL);
	rc = kv_cond_init(&g->cond);
	if (rc < 0)
		goto err_addrs;
	rc = -pthread_create(&g->timer, NULL, timer_main, g);
	if (rc < 0)
		goto err_cond;
	*out = g;
	return 0;

err_cond:
	pthread_cond_destroy(&g->cond);
err_addrs:
	pthread_mutex_destroy(&g->mu);
	http_addrs_free(g->addrs);
err_free:
	free(g);
	return rc;
}

void http_gate_stop(struct http_gate *g)
{
	pthread_mutex_lock(&g->mu);
	g->stopping = true;
	pthread_cond_signal(&g->cond);
	pthread_mutex_unlock(&g->mu);
	pthread_join(g->timer, NULL);
}

void http_gate_free(struct http_gate *g)
{
	if (!g)
		return;
	pthread_cond_destroy(&g->cond);
	pthread_mutex_destroy(&g->mu);
	http_addrs_free(g->addrs);
	free(g);
}

/* ---- what the gate tells ---- */

bool http_gate_log_ok(struct http_gate *g)
{
	bool ok = true;

	pthread_mutex_lock(&g->mu);
	uint64_t now = kv_mono_ms();
	if (now - g->log_window >= GATE_LOG_WINDOW_MS) {
		g->log_window = now;
		g->log_lines = 0;
	}
	if (g->log_lines < GATE_LOG_BURST)
		g->log_lines++;
	else {
		g->st.log_dropped++;
		ok = false;
	}
	pthread_mutex_unlock(&g->mu);
	return ok;
}

void http_gate_stats(struct http_gate *g, struct http_stats *out)
{
	pthread_mutex_lock(&g->mu);
	*out = g->st;
	out->clients = g->clients;
	out->peers = g->peers;
	out->limits = g->lim;
	pthread_mutex_unlock(&g->mu);
}
