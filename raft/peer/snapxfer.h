/* snapxfer.h - moving a db snapshot file from the leader to a follower.
 *
 * InstallSnapshot's data travels out of band from the Raft messages: the
 * leader POSTs its db.jsonl in chunks to /raft/snapshot on the follower,
 * each chunk with its offset and a CRC-32C, the last one with the whole
 * file's length and CRC. The receiver appends to DATA_DIR/snapshot.incoming
 * (a sidecar says which snapshot it is) and answers with the offset it
 * expects next, so a lost chunk, a dropped connection or a restarted
 * receiver costs a resume, not a restart. Memory is one chunk on each side.
 * The receiving half (snapxfer_recv_*) is called by the HTTP handler; the
 * sending half (snapxfer_send) runs on a thread of its own per follower.
 * The protocol is in docs/peer-protocol.md, "Snapshot transfer". */
#ifndef KV_RAFT_SNAPXFER_H
#define KV_RAFT_SNAPXFER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct peer_tls; /* peer_tls.h */

/* The path chunks are POSTed to (query: index, term, offset, and on the
 * last chunk done=1, total, crc) and the header carrying a chunk's
 * CRC-32C (8 hex digits). The usual X-Kvfs-Cluster / X-Kvfs-Token headers
 * (peer.h) go with every request. */
#define SNAPXFER_PATH	 "/raft/snapshot"
#define SNAPXFER_HDR_CRC "X-Kvfs-Crc32c"
/* The largest chunk a receiver accepts (the HTTP route's max_body), and
 * the chunk a sender makes by default. */
#define SNAPXFER_MAX_CHUNK (4u * 1024u * 1024u)
#define SNAPXFER_CHUNK	   (1u * 1024u * 1024u)
/* Files in the data directory. */
#define SNAPXFER_INCOMING "snapshot.incoming"
#define SNAPXFER_META	  "snapshot.incoming.meta"
#define SNAPXFER_READY	  "snapshot.ready"

/* ---- The receiving side: for the HTTP handler, any thread ---- */

struct snapxfer_recv;

/* One request, as the handler found it: the query arguments and the CRC
 * header as strings (NULL when absent), for snapxfer_parse. */
struct snapxfer_params {
	const char *index, *term, *offset; /* query: required */
	const char *done, *total, *crc;	   /* query: "1", bytes, 8 hex */
	const char *chunk_crc;		   /* header SNAPXFER_HDR_CRC */
};

/* One chunk, parsed. */
struct snapxfer_chunk {
	uint64_t index, term; /* the snapshot it belongs to (index >= 1) */
	uint64_t offset;      /* where data goes in the file */
	const void *data;     /* borrowed; len may be 0 (a probe) */
	size_t len;
	uint32_t crc;	   /* CRC-32C of data[0..len) */
	bool done;	   /* the last call: the file is complete */
	uint64_t total;	   /* done: the whole file's length */
	uint32_t file_crc; /* done: the whole file's CRC-32C */
};

/* A complete, verified snapshot file waiting to be installed. */
struct snapxfer_ready {
	uint64_t index, term;
	uint64_t size;
	char path[4096]; /* DATA_DIR/snapshot.ready */
};

/* Parse p and body[0..len) into *c (c->data points into body). Every
 * number must be plain decimal without sign or spaces, index >= 1;
 * done, if present, must be "1" and then total and crc are required (and
 * only then allowed); chunk_crc is required. -EINVAL with why filled
 * (may be NULL) otherwise. Pure; any thread. */
int snapxfer_parse(const struct snapxfer_params *p, const void *body,
		   size_t len, struct snapxfer_chunk *c, char *why,
		   size_t why_len);

/* The receiver for data directory dir (copied). Picks up a transfer left
 * by an earlier process: the sidecar names its snapshot and the file's
 * size is the offset to resume from (its content is checked at the end by
 * the whole-file CRC). A sidecar that cannot be read drops the partial
 * file. 0, -ENOMEM, -errno. Any thread; one per data directory. */
int snapxfer_recv_new(const char *dir, struct snapxfer_recv **out);
/* Close files and free (the partial file stays for a later process). */
void snapxfer_recv_free(struct snapxfer_recv *r);

/* Take chunk c. Serialized inside (the handler may call it from several
 * threads at once). *next is always set to the offset the receiver
 * expects next for c's snapshot (the sender resumes there). In order:
 * - c->len > SNAPXFER_MAX_CHUNK: -EFBIG.
 * - c->crc does not match the data: -EBADMSG, nothing written.
 * - c is for another snapshot (index, term) than the partial file: the
 *   file restarts empty for c's snapshot (then the rules below).
 * - c->offset beyond the end of the file: -ERANGE (a chunk was lost).
 * - otherwise the data is written at c->offset and the file ends after it
 *   (a resent chunk overwrites itself); a probe (len 0) writes nothing.
 * - c->done: the file must be c->total bytes (shorter: -ERANGE, resume
 *   at *next; longer: -EBADMSG) and its CRC c->file_crc (else -EBADMSG
 *   and the file restarts: *next is 0). Then it is synced, renamed to
 *   snapshot.ready, the directory synced, and 1 returned with *ready
 *   filled (may be NULL). A done repeated for the snapshot just completed
 *   (its answer was lost) returns 1 again.
 * Returns 0 (taken), 1 (complete), or the errors above, -ENOSPC, -EIO,
 * -errno. */
int snapxfer_recv_chunk(struct snapxfer_recv *r, const struct snapxfer_chunk *c,
			uint64_t *next, struct snapxfer_ready *ready, char *why,
			size_t why_len);

/* The HTTP status for a result of snapxfer_parse / snapxfer_recv_chunk:
 * 0, 1 -> 200; -ERANGE -> 409; -EBADMSG, -EINVAL -> 400; -EFBIG -> 413;
 * -ENOSPC -> 507; -ENOMEM -> 503; else 500. */
int snapxfer_http_status(int err);

/* The response body for a result: {"offset":N,"ready":true|false} and,
 * on an error, "error":"<why>". Written into buf (NUL-terminated,
 * truncated reasons); returns the length. Any thread. */
size_t snapxfer_reply(int err, uint64_t next, const char *why, char *buf,
		      size_t size);

/* ---- The sending side: one call per transfer, on its own thread ---- */

/* Tunables; zero fields take the defaults in brackets. */
struct snapxfer_send_options {
	size_t chunk;		     /* bytes per POST [SNAPXFER_CHUNK] */
	unsigned connect_timeout_ms; /* [1000] */
	unsigned timeout_ms;	     /* one POST [10000] */
	unsigned backoff_min_ms;     /* first wait after a failure [10] */
	unsigned backoff_max_ms;     /* cap of the doubling [1000] */
	unsigned max_failures;	     /* consecutive failures to give up [8] */
	/* The TLS identity (peer_tls.h; borrowed), NULL: plain HTTP. */
	const struct peer_tls *tls;
	/* Called on the sending thread after each chunk the receiver took:
	 * the bytes it has of the file's size. NULL: none. */
	void (*progress)(void *ctx, uint64_t have, uint64_t size);
	void *progress_ctx;
};

/* What a transfer did (for logs and /status). */
struct snapxfer_send_stats {
	uint64_t size;	     /* the file's length */
	uint64_t sent;	     /* data bytes POSTed, resends included */
	uint64_t resumed_at; /* offset the receiver first reported */
	unsigned posts;	     /* requests made */
	unsigned failures;   /* requests that failed or were refused */
};

/* Send the db snapshot at path (DATA_DIR/db.jsonl) to the follower at addr
 * ("host:port"), presenting cluster_id and token. The file is opened once
 * and read with pread, so a newer snapshot renamed over it meanwhile does
 * not disturb this transfer; its header must say index and term (else
 * -ESTALE: the caller should start over with the newer one). First a
 * probe asks where the receiver stands, then chunks go from there; every
 * answer carries the offset to go on from. A failure (network, timeout,
 * 5xx, a refused checksum) is retried after a backoff, with a probe, up
 * to opt->max_failures in a row (then -EIO); 401 (wrong token or
 * certificate) or 403 (another cluster) is -EACCES at once. *cancel (may be
 * NULL) stops it within about 50 ms: -ECANCELED. 0 once the receiver reported
 * the file complete and verified. why (may be NULL) gets a one-line reason on
 * failure; stats (may be NULL) is filled in any case. -EINVAL, before any
 * request, for an addr cluster_addr_valid (join.h) refuses, a bad cluster id or
 * token, or index 0. Initializes libcurl once. Any thread; several transfers
 * may run at once. */
int snapxfer_send(const char *path, uint64_t index, uint64_t term,
		  const char *addr, const char *cluster_id, const char *token,
		  const struct snapxfer_send_options *opt,
		  const atomic_bool *cancel, struct snapxfer_send_stats *stats,
		  char *why, size_t why_len);

#endif
