/* http_peer.c - the endpoints peers call on a node's listener.
 *
 * POST /raft/stream is a peer's sender: one long request whose body is
 * a sequence of frames, each a batch of Raft messages (raft/peer/peer.h,
 * docs/peer-protocol.md) handed to the node thread as soon as it is in
 * (a big one through the frame decoder's thread, http_peerdec.c);
 * Raft's answers travel on the stream the other way. POST /raft/message
 * carries one batch, answered 204 once it is handed over.
 * POST /raft/snapshot brings a leader's db file in chunks (snapxfer.h);
 * a verified file waits for the snapshot message that installs it.
 * All refuse, before reading a body, a request without this cluster's id
 * and token (http_auth.c checks the token, and the certificate with TLS:
 * 401; another cluster's id is 403). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_int.h"
#include "peer.h"
#include "snapxfer.h"

bool http_peer_check(struct http_req *r)
{
	/* the token (and certificate) were checked by http_auth_check */
	const char *cid = http_header(r, PEER_HDR_CLUSTER);
	if (!cid || strcmp(cid, node_cluster_id(r->node)) != 0) {
		char from[80];
		http_remote(r, from, sizeof(from));
		kv_log(KV_LOG_WARN,
		       "refused a peer request from %s for cluster "
		       "%.64s: this node is in cluster %s",
		       from, peer_id_valid(cid ? cid : "") ? cid : "(none)",
		       node_cluster_id(r->node));
		http_fail(r, MHD_HTTP_FORBIDDEN, "other_cluster",
			  "this node belongs to another cluster");
		return false;
	}
	return true;
}

static enum MHD_Result no_content(struct http_req *r)
{
	struct MHD_Response *resp =
	    MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
	if (!resp)
		return MHD_NO;
	return http_queue(r, MHD_HTTP_NO_CONTENT, resp);
}

enum MHD_Result http_peer_message(struct http_req *r)
{
	char why[160] = "";
	int err = http_peer_take_batch(r->node, (const char *)r->body, r->len,
				       why, sizeof(why));
	if (err == -EBUSY)
		return http_fail(r, MHD_HTTP_SERVICE_UNAVAILABLE, "not_ready",
				 "the node is behind; messages dropped");
	if (err != 0)
		return http_fail(r, (unsigned)peer_http_status(err),
				 err == KV_EVERSION ? "version" : "bad_request",
				 why[0] ? why : kv_strerror(err));
	return no_content(r);
}

/* ---- POST /raft/stream ---- */

bool http_peer_stream_check(struct http_req *r)
{
	if (!http_peer_check(r))
		return false;
	const char *v = http_header(r, PEER_HDR_PROTOCOL);
	char want[16], why[120];
	snprintf(want, sizeof(want), "%d", PEER_PROTOCOL_VERSION);
	if (v && strcmp(v, want) == 0)
		return true;
	snprintf(why, sizeof(why),
		 "peer protocol version %.16s, this node speaks %d",
		 v ? v : "(none)", PEER_PROTOCOL_VERSION);
	kv_log(KV_LOG_WARN,
	       "refused a peer stream in another format version: %s", why);
	http_fail(r, MHD_HTTP_CONFLICT, "version", why);
	return false;
}

/* A frame's batch; a bad one closes the stream, a node thread that is
 * behind only drops it. A big one goes to the frame decoder, so that the
 * listener reads on (http_peerdec.c); a bad big one is only logged. */
static int on_frame(void *ctx, const char *p, size_t len)
{
	struct http_req *r = ctx;
	if (http_peerdec_take(r->http, p, len))
		return 0;
	char why[160] = "";
	int err = http_peer_take_batch(r->node, p, len, why, sizeof(why));
	return err == -EBUSY ? 0 : err;
}

static void frames_free(void *ctx)
{
	peer_frames_free(ctx);
	free(ctx);
}

enum MHD_Result http_peer_stream_data(struct http_req *r, const char *data,
				      size_t size)
{
	struct peer_frames *f = r->ctx;
	if (f == NULL) {
		f = calloc(1, sizeof(*f));
		if (f == NULL)
			return MHD_NO;
		r->ctx = f;
		r->ctx_free = frames_free;
	}
	char why[160] = "";
	int err = peer_frames_feed(f, data, size, r->route->max_body, on_frame,
				   r, why, sizeof(why));
	if (err == -EINVAL || err == -EFBIG)
		kv_log(KV_LOG_WARN, "closed a peer stream: %s", why);
	/* a bad frame ends the stream: the sender opens a new one */
	return err == 0 ? MHD_YES : MHD_NO;
}

enum MHD_Result http_peer_stream_end(struct http_req *r)
{
	return no_content(r);
}

/* A raw query argument: the snapshot's are plain numbers. */
static const char *arg(struct http_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND,
					   name);
}

enum MHD_Result http_peer_snapshot(struct http_req *r)
{
	struct snapxfer_params p = {.index = arg(r, "index"),
				    .term = arg(r, "term"),
				    .offset = arg(r, "offset"),
				    .done = arg(r, "done"),
				    .total = arg(r, "total"),
				    .crc = arg(r, "crc"),
				    .chunk_crc =
					http_header(r, SNAPXFER_HDR_CRC)};
	struct snapxfer_chunk c;
	char why[200] = "", body[400];
	uint64_t next = 0;
	int err = snapxfer_parse(&p, r->body, r->len, &c, why, sizeof(why));
	if (err == 0)
		err = node_snapshot_chunk(r->node, &c, &next, why, sizeof(why));
	size_t len = snapxfer_reply(err, next, why, body, sizeof(body));
	return http_reply_json(r, (unsigned)snapxfer_http_status(err), body,
			       len);
}
