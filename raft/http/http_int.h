/* http_int.h - what the files of the HTTP API share (not public).
 *
 * http.c owns the listener and its life (suspended and offloaded
 * requests); http_request.c routes a request by a table of path prefixes
 * and runs the route's handler once the request is complete; http_body.c
 * takes in the body (bounded); http_reply.c builds responses and maps
 * errors to statuses in one function; http_kv.c, http_peer.c and
 * http_cluster.c hold the endpoints. New endpoints are one more line in
 * the route table in http_request.c and a handler with this signature.
 * Everything here runs on the listener's one thread unless it says
 * otherwise. */
#ifndef KV_HTTP_INTERNAL_H
#define KV_HTTP_INTERNAL_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"
#include "kv.h"

/* Methods as bits, so a route can say which it allows. */
enum http_method {
	HTTP_GET = 1u << 0,
	HTTP_HEAD = 1u << 1,
	HTTP_PUT = 1u << 2,
	HTTP_POST = 1u << 3,
	HTTP_DELETE = 1u << 4,
	HTTP_OTHER = 1u << 5,
};

/* How a route takes its body. */
enum http_body {
	HTTP_BODY_NONE,	  /* ignored (drained, not kept) */
	HTTP_BODY_RAW,	  /* kept as bytes, up to the route's max_body */
	HTTP_BODY_FORM,	  /* form fields through MHD's post processor */
	HTTP_BODY_STREAM, /* handed to the route's stream callback piece by
			     piece as it arrives, never held whole */
};

struct http_req;

/* Who may call a route (http_auth.c has the rules). */
enum http_access {
	HTTP_ACCESS_CLIENT,  /* /kv/, /set/, /get/: read or write by method,
				within a token's prefix */
	HTTP_ACCESS_STATUS,  /* /status: read, or anyone (--status-public) */
	HTTP_ACCESS_MEMBERS, /* /cluster/members: GET read; changes admin */
	HTTP_ACCESS_PEER,    /* /raft/: members only */
	HTTP_ACCESS_ADMIN,   /* /snapshot: the cluster token, or with --auth
				an admin token (every method) */
};

/* A client token's role, each allowing what the one before does. */
enum http_role {
	HTTP_ROLE_NONE,
	HTTP_ROLE_READ,
	HTTP_ROLE_WRITE,
	HTTP_ROLE_ADMIN,
};

/* One entry of the route table. A request matches the first route whose
 * prefix starts its path (exact: the whole path). */
struct http_route {
	const char *prefix;
	bool exact;
	unsigned methods;      /* enum http_method bits allowed */
	unsigned body_methods; /* of those, the ones that carry a body */
	enum http_body body;
	size_t max_body; /* HTTP_BODY_RAW: largest body; FORM: largest
			    field value */
	/* Optional check right after the headers, before any body is read
	 * (bad key, bad headers): true to go on; false after queueing an
	 * error reply with http_fail* (or, if none was queued, to drop the
	 * connection). */
	bool (*check)(struct http_req *r);
	/* Called once the whole request is in; must queue a response, or
	 * suspend the request (http_suspend) and be called again once it is
	 * resumed. Runs on the listener's one thread: it must not block,
	 * unless the route is offloaded. */
	enum MHD_Result (*handle)(struct http_req *r);
	/* HTTP_BODY_STREAM: each piece of the body as it arrives (MHD_NO
	 * drops the connection); handle runs once the body ended. */
	enum MHD_Result (*stream)(struct http_req *r, const char *data,
				  size_t size);
	/* handle blocks (a membership change, a snapshot chunk to disk):
	 * it runs on a thread of its own while the request is suspended,
	 * and its reply is queued once the request is taken up again */
	bool offload;
	enum http_access access;
	/* The query parameters it takes, space-separated ("" none); any
	 * other is 400 naming it, so that ?ttl=5 is never silently
	 * ignored. NULL: not checked (the peers' routes). */
	const char *params;
};

/* Keys whose percent-encoded form is shorter than this are decoded into
 * the request itself (http_req's key_buf), not a buffer of their own. */
#define HTTP_KEY_INLINE 128u
/* Query arguments a request keeps a table of (http_req's qkey). */
#define HTTP_QUERY_KEPT 8u

/* One request, from its headers to its completion. */
struct http_req {
	struct http_server *http;
	struct kv_node *node;
	struct MHD_Connection *conn;
	const struct http_route *route;
	unsigned method;  /* one enum http_method bit */
	unsigned allow;	  /* methods named in a 405's Allow header */
	const char *path; /* raw (still percent-encoded) path, no query */
	const char *rest; /* path after the route's prefix, raw */

	/* Who it is from (http_auth.c): a member, or a client token's
	 * role, name and key prefix (owned; NULL: every key). */
	bool peer;
	enum http_role role;
	char who[72];
	char *prefix;
	int cert; /* TLS: 1 a good client certificate, -1 a bad one, 0 not
		     looked at yet or none */

	/* Decoded key (or directory) from rest, owned unless it is key_buf
	 * (a short one); set by a check. */
	char *key;
	size_t klen;
	char key_buf[HTTP_KEY_INLINE];

	/* Conditions from If-Match / If-None-Match, parsed by a check. */
	uint64_t if_rev;
	bool if_absent;

	/* The body (HTTP_BODY_RAW) or the form field "value" (FORM). */
	unsigned char *body;
	size_t len, cap;
	uint64_t received; /* body bytes seen, kept or not */
	size_t reserved;   /* bytes of the listener's body budget held */
	bool too_large;	   /* the body or value went over max_body */
	bool busy;	   /* the listener's body budget was exhausted */
	bool has_value;	   /* FORM: a "value" field was present */
	bool value_done;   /* FORM: later "value" fields are ignored */
	bool bad_form;	   /* FORM: the post processor refused the body */
	struct MHD_PostProcessor *pp;

	/* A handler's own state for the request, freed with ctx_free. */
	void *ctx;
	void (*ctx_free)(void *ctx);

	bool answered; /* a response was queued */

	/* An asynchronous call (http_suspend, then http_done from whatever
	 * thread answers): its outcome, read by the handler's second run. */
	bool held;	 /* suspended, not taken up again yet */
	bool async_done; /* the outcome is in */
	int async_ret;
	struct kv_result async_res;

	/* An offloaded handler's reply, queued by the listener's thread. */
	bool offloaded; /* handle runs on its own thread now */
	bool drop;	/* it asked for the connection to be dropped */
	struct MHD_Response *reply;
	unsigned reply_status; /* the status answered (every reply) */
	uint64_t t0_ns;	       /* its headers arrived (kv_mono_ns) */

	/* The query's arguments (their value NULL if none), as the route's
	 * parameter check met them, for http_query and http_query_has to
	 * look up without walking libmicrohttpd's list again; nq past
	 * HTTP_QUERY_KEPT, or q_kept false (a route whose parameters are
	 * not checked): they ask libmicrohttpd. */
	bool q_kept;
	unsigned nq;
	const char *qkey[HTTP_QUERY_KEPT], *qval[HTTP_QUERY_KEPT];
};

/* Client certificates found good (http_tls.c), by the SHA-256 of the
 * leaf: a client pays the check about once a minute, not per request. */
#define HTTP_CERT_SLOTS 64
#define HTTP_CERT_FP	32
struct http_cert_cache {
	pthread_mutex_t mu;
	struct {
		unsigned char fp[HTTP_CERT_FP];
		uint64_t until_ms; /* CLOCK_MONOTONIC; 0: empty */
	} slot[HTTP_CERT_SLOTS];
	unsigned next;
};

struct http_auth;

/* The listener: one per node. */
/* Big peer frames waiting to be decoded off the listener's thread
 * (http_peerdec.c). */
#define HTTP_PEERDEC_MAX_BYTES (256u << 20)
struct peerdec_item;
struct http_peerdec {
	pthread_mutex_t mu; /* guards the rest but thread and started */
	pthread_cond_t cond;
	struct peerdec_item *head, *tail;
	size_t bytes;
	bool stop;
	pthread_t thread;
	bool started; /* http_start and http_stop's */
};

struct http_server {
	struct kv_node *node;
	struct http_peerdec dec;
	struct MHD_Daemon *daemon;
	struct http_gate *gate; /* deadlines and admission (http_gate.h) */
	int listen_fd;
	unsigned port;
	atomic_size_t body_bytes; /* bodies held by all requests */
	/* Suspended requests not taken up again, and offloaded handlers
	 * running (under mu): the listener stops only once both are 0. */
	pthread_mutex_t mu;
	pthread_cond_t cond;
	unsigned held, workers;
	bool closing; /* no more suspending */
	/* Security, fixed once started (http_start_with): */
	const struct peer_tls *tls; /* NULL: plain HTTP */
	bool tls_client_auth;	    /* every client needs a certificate */
	bool status_public;	    /* /status without a token */
	struct http_auth *auth;	    /* --auth's table; NULL: no tokens */
	struct http_cert_cache certs;
	struct MHD_OptionItem tls_opts[8];
	struct http_watches *watches;	 /* http_watch.c */
	struct http_value_cache *values; /* http_value.c; listener's thread */
};

/* ---- http_peerdec.c: peer batches into the node ---- */

/* Start and stop the decoder (stopping drops what it still holds). */
int http_peerdec_start(struct http_server *h);
void http_peerdec_stop(struct http_server *h);
/* A frame of len bytes for the decoder: true if taken (copied), false
 * for the caller to decode (a small one, the queue full, or no memory).
 * The listener's thread. */
bool http_peerdec_take(struct http_server *h, const char *p, size_t len);
/* Decode a batch (a /raft/message body or a stream's frame) for node
 * and hand it to the node thread. 0, the decoder's error (why filled and
 * logged) or -EBUSY (the node thread could not take it, behind or out of
 * memory: dropped, as a network would). Any thread. */
int http_peer_take_batch(struct kv_node *node, const char *p, size_t len,
			 char *why, size_t why_len);

/* ---- http_auth.c: who a request is from, what it may do ---- */

/* Load an --auth file (http_auth.c's top comment has the format). 0 or
 * -EINVAL / -errno with *errmsg (malloc'd) naming the line. */
int http_auth_new(const char *file, struct http_auth **out, char **errmsg);
/* Read the file again; a bad file keeps the table as it was (the error,
 * with *errmsg). *count: the tokens now. Any thread. */
int http_auth_reload(struct http_auth *a, size_t *count, char **errmsg);
void http_auth_free(struct http_auth *a);
/* Right after routing: who r is from and whether its route and method
 * are allowed; false after queueing 401 (unauthenticated: no, a wrong or
 * an unknown token or certificate; logged with the remote address) or
 * 403 (forbidden: the role does not allow it). */
bool http_auth_check(struct http_req *r);
/* After the route's check decoded the key: a token with a prefix reaches
 * only keys under it (403 forbidden otherwise). */
bool http_auth_key_check(struct http_req *r);

/* ---- http_tls.c: TLS on the listener ---- */

/* The MHD flags and options (into opts[0..cap), ended by MHD_OPTION_END,
 * cap >= 5) for identity t (NULL: plain: no option, 0); sets h->tls and
 * h->tls_client_auth. */
unsigned http_tls_options(struct http_server *h, const struct peer_tls *t,
			  bool client_auth, struct MHD_OptionItem *opts,
			  size_t cap);
/* The certificate r's client presented: 1 good (the cluster's CA, valid
 * now), -1 bad (logged), 0 none or plain HTTP. Kept in r->cert. */
int http_tls_client_cert(struct http_req *r);

/* ---- http_call.c: offloading and holds ---- */

/* Run r's route's handler on a thread of its own, r suspended meanwhile;
 * its reply is queued once r is taken up again. */
enum MHD_Result http_offload(struct http_req *r);
/* A suspended request is taken up again (or ends): it no longer holds
 * the listener open. */
void http_release_hold(struct http_req *r);

/* ---- http_request.c: routing and the life of a request ---- */

/* libmicrohttpd's access handler and completion callback (cls is the
 * struct http_server). */
enum MHD_Result http_on_request(void *cls, struct MHD_Connection *conn,
				const char *url, const char *method,
				const char *version, const char *upload_data,
				size_t *upload_data_size, void **con_cls);
void http_on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
		       enum MHD_RequestTerminationCode toe);

/* ---- http_conn.c: a request's steps, the gate's then the router's ---- */

/* libmicrohttpd's access handler and completion callback as the listener
 * registers them: the gate (http_gate.h) hears of each step, then
 * http_on_request and http_on_completed run (cls is the server). */
enum MHD_Result http_conn_request(void *cls, struct MHD_Connection *conn,
				  const char *url, const char *method,
				  const char *version, const char *upload_data,
				  size_t *upload_data_size, void **con_cls);
void http_conn_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe);

/* ---- http_limits.c: GET /status/http, the listener's counters ---- */

enum MHD_Result http_gate_status(struct http_req *r);

/* ---- http_body.c: bodies ---- */

/* Content-Length and Transfer-Encoding decide, before the body, whether a
 * body is acceptable at all: true to go on, false after queueing an error
 * reply (or, if none was queued, to drop the connection). */
bool http_body_begin(struct http_req *r);
/* Body bytes as they arrive: kept within the route's limit, counted past
 * it, handed to the route's stream callback for a stream. MHD_NO cuts the
 * connection. */
enum MHD_Result http_body_piece(struct http_req *r, const char *data,
				size_t size);
/* The whole body is in: true, with *ret from the reply queued, if it was
 * too large, over the budget or a malformed form. */
bool http_body_refused(struct http_req *r, enum MHD_Result *ret);
/* Release the form parser (the body itself stays for the handler). */
void http_body_done(struct http_req *r);
/* Release the body and its share of the listener's budget. */
void http_body_drop(struct http_req *r);

/* ---- http_call.c: a handler's helpers ---- */

/* Percent-decode src[0..len) into a malloc'd, NUL-terminated buffer; *out
 * and *outlen get it. '+' stays '+' (paths are not forms). -EINVAL for a
 * malformed escape, -ENOMEM. */
int http_unescape(const char *src, size_t len, char **out, size_t *outlen);
/* http_unescape into dst, which has room for len + 1 bytes. */
int http_unescape_to(const char *src, size_t len, char *dst, size_t *outlen);
/* A query argument, percent-decoded (malloc'd, caller frees) or NULL if
 * absent. *bad is set when present but malformed. */
char *http_query(struct http_req *r, const char *name, size_t *len, bool *bad);
/* Is the query argument there at all (?name, ?name=, ?name=x)? */
bool http_query_has(struct http_req *r, const char *name);
/* A request header or NULL. */
const char *http_header(struct http_req *r, const char *name);
/* The client's address as "HOST:PORT" into buf, for a log line. */
void http_remote(struct http_req *r, char *buf, size_t cap);
/* A method bit's name ("GET", ...; "?" for HTTP_OTHER). */
const char *http_method_name(unsigned method);

/* ---- http_call.c: suspending ---- */

/* Suspend r until http_done: the route's handler runs again then, with
 * r->async_done set. Call it before starting the call that answers
 * (which may answer at once). False, and r is not suspended, once the
 * listener is stopping: answer at once then (KV_ESHUTDOWN). The
 * listener's thread. */
bool http_suspend(struct http_req *r);
/* A node_done_fn (node.h) for a suspended request (ctx): keep the
 * outcome and resume it. Any thread, once per http_suspend. */
void http_done(void *ctx, int ret, const struct kv_result *res);
/* After http_suspend: rc is what the call that answers returned; if it
 * failed (done will not be called), answer with rc now. */
void http_started(struct http_req *r, int rc);
/* node_propose_async(cmd, http_done, r) for a suspended r, then
 * http_started; for a command of HTTP_PROPOSE_THREAD_BYTES or more of
 * value on a thread of its own, since encoding it (and decoding it again
 * for the node's apply) takes the listener's one thread 100 ms and more
 * for 16 MiB. cmd is copied (its pointers must live as long as r). */
#define HTTP_PROPOSE_THREAD_BYTES (256u * 1024u)
void http_propose(struct http_req *r, const struct kv_cmd *cmd);

/* ---- http_watch.c: GET /kv/...?watch ---- */

struct http_watches;
/* The server's watches: a hook on n's store, a ticker thread. */
int http_watches_new(struct kv_node *n, struct http_watches **out);
/* End every watch (each sends its last progress line) and stop the
 * ticker and the hook: before MHD is stopped. */
void http_watches_stop(struct http_watches *ws);
void http_watches_free(struct http_watches *ws);
unsigned http_watches_count(struct http_watches *ws);
/* After r's read barrier passed: answer with the stream (or 400, 410). */
enum MHD_Result http_watch_start(struct http_req *r);

/* ---- http_reply.c: responses ---- */

/* Map an error (negative errno or kv code) to an HTTP status and a stable
 * code string. The one place this mapping lives. */
void http_error_status(int err, unsigned *status, const char **code);
/* Queue {"error":msg,"code":code} with status (and Retry-After for 503,
 * Allow for 405 from the route). */
enum MHD_Result http_fail(struct http_req *r, unsigned status, const char *code,
			  const char *msg);
/* http_fail with the status and code of err and kv_strerror's message
 * (or msg if not NULL). */
enum MHD_Result http_fail_err(struct http_req *r, int err, const char *msg);
/* Queue a JSON body (text is copied). */
enum MHD_Result http_reply_json(struct http_req *r, unsigned status,
				const char *json, size_t len);
/* Queue a response, adding the headers every reply carries; destroys it. */
enum MHD_Result http_queue(struct http_req *r, unsigned status,
			   struct MHD_Response *resp);
/* http_queue of a response someone else keeps (http_value.c's): not
 * destroyed, and nothing added to it. The listener's thread only. */
enum MHD_Result http_queue_kept(struct http_req *r, unsigned status,
				struct MHD_Response *resp);
/* Parse an entity tag as kvfs writes it ("12", also bare 12 or W/"12").
 * 0 and the revision, or -EINVAL. */
int http_parse_etag(const char *s, uint64_t *rev);
/* Format a revision as a quoted ETag into buf (at least 24 bytes). */
void http_format_etag(uint64_t rev, char *buf, size_t size);
/* v in decimal into buf (NUL-terminated, cut to size); the digits it
 * needs (as snprintf's return, without printf's cost on a hot path). */
size_t http_format_u64(uint64_t v, char *buf, size_t size);
size_t http_format_i64(int64_t v, char *buf, size_t size);
/* Format ns since the epoch as an HTTP date (IMF-fixdate) into buf (at
 * least 30 bytes). */
void http_format_date(int64_t ns, char *buf, size_t size);

/* ?consistency=local|linearizable, then the node's read barrier: a
 * linearizable read suspends the request until the node may serve it and
 * passes on the handler's second run (http_call.c). */
enum http_barrier {
	HTTP_BARRIER_PASSED, /* read the store now */
	HTTP_BARRIER_WAIT, /* suspended until the node says (handler returns) */
	HTTP_BARRIER_FAILED, /* answered, or the connection is to be dropped */
};
enum http_barrier http_read_barrier(struct http_req *r);
/* What a handler returns when http_read_barrier did not pass. */
enum MHD_Result http_barrier_held(struct http_req *r, enum http_barrier b);

/* ---- http_value.c: the response to a GET of a key ---- */

/* Slots of the table of built responses (a power of two), and the
 * largest value one is kept for. 4096 slots hold at most about 7 MiB
 * (a value of up to 1 KiB, its record and its response each): a hot set
 * gains as much as with more, and memory is issue 25's other budget. */
#define HTTP_VALUE_CACHE_SLOTS 4096u
#define HTTP_VALUE_CACHE_MAX   1024u
struct http_value_cache;
/* A response with rec's value and headers (ETag, Last-Modified, the
 * X-Kvfs- revisions, mtime and lease); no_body: none (a 304). It
 * takes the caller's reference on rec, which it drops once sent. NULL if
 * out of memory (rec still the caller's). */
struct MHD_Response *http_value_response(struct kv_rec *rec, bool no_body);
int http_value_cache_new(struct http_value_cache **out);
void http_value_cache_free(struct http_value_cache *c);
/* The kept response of rec, built now if it is not the slot's: queue it
 * with http_queue_kept. It takes the caller's reference on rec. NULL if
 * rec's value is too big to keep or memory ran out (rec still the
 * caller's). */
struct MHD_Response *http_value_cached(struct http_value_cache *c,
				       struct kv_rec *rec);
/* GETs answered with a kept response, and responses built for the table. */
void http_value_cache_counts(const struct http_value_cache *c, uint64_t *hits,
			     uint64_t *misses);

/* ---- http_list.c: GET /kv/<dir>/ ---- */
enum MHD_Result http_list_dir(struct http_req *r);

/* ---- http_kv.c: the handlers ---- */

bool http_kv_check(struct http_req *r);
enum MHD_Result http_kv_handle(struct http_req *r);
bool http_mmapd_check(struct http_req *r);
enum MHD_Result http_mmapd_set(struct http_req *r);
enum MHD_Result http_mmapd_get(struct http_req *r);
enum MHD_Result http_status_handle(struct http_req *r);

/* ---- http_words.c: mem-db's word counter ---- */

/* Where the counts live: HTTP_WORDS_DIR/WORD holds WORD's count. */
#define HTTP_WORDS_DIR	   ".words"
#define HTTP_WORD_MAX	   255	      /* bytes: one key segment */
#define HTTP_WORDS_BODY	   (1u << 20) /* a register's largest body */
#define HTTP_WORDS_ALL_MAX 100000     /* words answered without terms */
/* The words of a text: adds[0..n) each word once (sorted bytewise) with
 * its count, names pointing into lower (the text with ASCII letters
 * lowercased); total the words counted. */
struct http_words {
	struct kv_add *adds;
	size_t n;
	uint64_t total;
	char *lower;
};
/* Split text[0..len) into words: maximal runs of word characters (ASCII
 * letters and digits, and characters outside the punctuation, symbol and
 * space blocks docs/http-api.md lists), ASCII letters lowercased. 0,
 * -EILSEQ (not UTF-8), -ENAMETOOLONG (a word over HTTP_WORD_MAX bytes),
 * -E2BIG (over KV_MAX_ADDS different words), -ENOMEM; release with
 * http_words_free (also after an error). Pure. */
int http_words_split(const char *text, size_t len, struct http_words *out);
void http_words_free(struct http_words *w);
bool http_words_check(struct http_req *r);
enum MHD_Result http_words_register(struct http_req *r);
enum MHD_Result http_words_occurences(struct http_req *r);

/* ---- http_lease.c: /lease ---- */

/* A lease id (decimal, 1 .. 2^53 - 1, no leading zero) and a TTL
 * (decimal seconds, 1 .. KV_LEASE_TTL_MAX) from s[0..len): 0 or -EINVAL.
 * Pure. */
int http_lease_parse_id(const char *s, size_t len, uint64_t *id);
int http_lease_parse_ttl(const char *s, size_t len, uint32_t *ttl);
bool http_lease_check(struct http_req *r);
enum MHD_Result http_lease_handle(struct http_req *r);
/* ---- http_txn.c, http_txn_parse.c: POST /txn ---- */

/* A txn's largest body: its values (16 MiB in all) escaped or base64. */
#define HTTP_TXN_BODY (3u * KV_MAX_VALUE + (64u << 10))
/* The body[0..len) as a transaction (*out, kv_txn_free), or -EINVAL with
 * a message for a 400 in msg[0..cap) naming the item; -ENOMEM. Pure. */
int http_txn_parse(const unsigned char *body, size_t len, struct kv_txn **out,
		   char *msg, size_t cap);
enum MHD_Result http_txn_handle(struct http_req *r);

/* ---- http_health.c: /health and /readyz ---- */

enum MHD_Result http_health_handle(struct http_req *r);
enum MHD_Result http_readyz_handle(struct http_req *r);

/* ---- http_backup.c: GET /snapshot ---- */

enum MHD_Result http_snapshot_handle(struct http_req *r);

/* ---- http_page.c: GET / and /status/cluster ---- */

enum MHD_Result http_page_handle(struct http_req *r);
enum MHD_Result http_status_cluster(struct http_req *r);

/* ---- http_metrics.c: GET /metrics, the listener's own counts ---- */

void http_metrics_register(void);
/* Count a completed request (its class, code and time). */
void http_metrics_done(const struct http_req *r);
enum MHD_Result http_metrics_handle(struct http_req *r);

/* ---- http_peer.c: what peers call ---- */

bool http_peer_check(struct http_req *r);
enum MHD_Result http_peer_message(struct http_req *r);
/* POST /raft/stream: the check (http_peer_check and the protocol version
 * header), each piece of the body, and its end. */
bool http_peer_stream_check(struct http_req *r);
enum MHD_Result http_peer_stream_data(struct http_req *r, const char *data,
				      size_t size);
enum MHD_Result http_peer_stream_end(struct http_req *r);
enum MHD_Result http_peer_snapshot(struct http_req *r);

/* ---- http_cluster.c: membership (/cluster/members) ---- */

/* Parse a POST body {"id":N,"address":"H:P"} strictly: an object with
 * exactly those fields, id an integer in [1, 2^53 - 1], address as
 * cluster_addr_valid (join.h) and shorter than cap. 0 with *id and addr,
 * or -EINVAL with *why a static message fit for a 400. Pure. */
int http_cluster_parse_member(const char *body, size_t len, uint64_t *id,
			      char *addr, size_t cap, const char **why);
/* Parse the ID of /cluster/members/ID: decimal digits, 1..2^53 - 1. 0 or
 * -EINVAL. Pure. */
int http_cluster_parse_id(const char *s, uint64_t *id);
/* A membership change's error as a status and code: KV_ENOTLEADER 421
 * not_leader, -EBUSY 503 busy, the rest as http_error_status. Pure. */
void http_cluster_status(int err, unsigned *status, const char **code);
/* GET and POST /cluster/members; DELETE /cluster/members/ID. */
enum MHD_Result http_cluster_members(struct http_req *r);
enum MHD_Result http_cluster_member(struct http_req *r);

/* ---- http_leader.c: POST /cluster/leader (offloaded) ---- */
enum MHD_Result http_cluster_leader(struct http_req *r);

#endif
