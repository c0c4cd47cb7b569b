/* http_kv.c - the client endpoints: /kv/, /status and mmapd's /set, /get.
 *
 * Each handler is short: decode and check the key (before the body, in a
 * check), build a command or read the store, and answer. Writes go through
 * node_propose_async, so they are answered only once committed and applied
 * here; reads pass node_read_barrier_async first (linearizable unless the
 * client asks for ?consistency=local). Both suspend the request and the
 * handler runs a second time with the node's answer (http.c). Routing and
 * bodies are in http.c, replies and the error mapping in http_reply.c. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "codec.h"
#include "http_int.h"

static bool is_listing(const struct http_req *r)
{
	size_t n = strlen(r->rest);
	return n == 0 || r->rest[n - 1] == '/';
}

/* Decode r->rest[0..len) into r->key and check it as a key. */
static bool decode_key(struct http_req *r, size_t len, bool allow_empty)
{
	int rc;
	if (len < sizeof r->key_buf) {
		r->key = r->key_buf;
		rc = http_unescape_to(r->rest, len, r->key_buf, &r->klen);
	} else {
		rc = http_unescape(r->rest, len, &r->key, &r->klen);
	}

	if (rc == -ENOMEM)
		return false;
	if (rc < 0) {
		http_fail(r, MHD_HTTP_BAD_REQUEST, "bad_key",
			  "malformed percent-encoding in the key");
		return false;
	}
	if (allow_empty && r->klen == 0)
		return true;
	rc = kv_key_check(r->key, r->klen);
	if (rc < 0) {
		http_fail(r, MHD_HTTP_BAD_REQUEST, "bad_key",
			  rc == -ENAMETOOLONG
			      ? "the key or one of its segments is too long"
			      : "bad key: it must be UTF-8 without NUL, with "
				"'/'-separated segments that are not empty, "
				"'.' or '..'");
		return false;
	}
	/* a write may not make one (a read or delete of an old one may) */
	if ((r->method & (HTTP_PUT | HTTP_POST)) &&
	    kv_key_reserved(r->key, r->klen)) {
		http_fail(r, MHD_HTTP_BAD_REQUEST, "bad_key",
			  "a key may not have a segment named .kvfs: every "
			  "mount keeps that name for its own directory");
		return false;
	}
	return true;
}

/* If-Match and If-None-Match on a write. */
static bool parse_conditions(struct http_req *r)
{
	const char *im = http_header(r, MHD_HTTP_HEADER_IF_MATCH);
	const char *inm = http_header(r, MHD_HTTP_HEADER_IF_NONE_MATCH);

	if (im && http_parse_etag(im, &r->if_rev) < 0) {
		http_fail(r, MHD_HTTP_BAD_REQUEST, "bad_request",
			  "If-Match takes one revision, as an ETag (\"12\")");
		return false;
	}
	if (inm) {
		const char *p = inm + strspn(inm, " \t");
		if (p[0] != '*' || p[1 + strspn(p + 1, " \t")] != '\0' ||
		    r->method == HTTP_DELETE) {
			http_fail(r, MHD_HTTP_BAD_REQUEST, "bad_request",
				  "a write takes only If-None-Match: *");
			return false;
		}
		r->if_absent = true;
	}
	return true;
}

bool http_kv_check(struct http_req *r)
{
	size_t len = strlen(r->rest);

	if (is_listing(r)) {
		if (r->method == HTTP_DELETE && http_query_has(r, "recursive"))
			return decode_key(r, len ? len - 1 : 0, true);
		if (!(r->method & (HTTP_GET | HTTP_HEAD))) {
			r->allow = HTTP_GET | HTTP_HEAD;
			http_fail(r, MHD_HTTP_METHOD_NOT_ALLOWED,
				  "method_not_allowed",
				  "a directory (a path ending in '/') is only "
				  "listed");
			return false;
		}
		return decode_key(r, len ? len - 1 : 0, true);
	}
	if (!decode_key(r, len, false))
		return false;
	if (r->method & (HTTP_PUT | HTTP_POST | HTTP_DELETE))
		return parse_conditions(r);
	return true;
}

bool http_mmapd_check(struct http_req *r)
{
	return decode_key(r, strlen(r->rest), false);
}

/* Does If-None-Match name the record's ETag (a cached copy is current)? */
static bool etag_matches(const char *inm, uint64_t rev)
{
	char tag[32];
	const char *p = inm;

	if (p[strspn(p, " \t")] == '*')
		return true;
	http_format_etag(rev, tag, sizeof tag);
	while (*p) {
		p += strspn(p, " \t,");
		size_t n = strcspn(p, ",");
		const char *q = p;
		if (strncmp(q, "W/", 2) == 0)
			q += 2;
		size_t tn = strlen(tag);
		if ((size_t)(p + n - q) >= tn && strncmp(q, tag, tn) == 0)
			return true;
		p += n;
	}
	return false;
}

/* GET /kv/<key> and /get/<key>: the raw value with its revisions. */
static enum MHD_Result get_value(struct http_req *r)
{
	struct kv_rec *rec = NULL;
	struct MHD_Response *resp;
	int rc;

	enum http_barrier b = http_read_barrier(r);
	if (b != HTTP_BARRIER_PASSED)
		return http_barrier_held(r, b);
	rc = store_get(node_store(r->node), r->key, r->klen, &rec);
	if (rc == -ENOENT) {
		/* a directory made only by keys below it is no key either,
		 * but it is a conflict, not an absence */
		struct kv_stat st;
		if (store_stat(node_store(r->node), r->key, r->klen, &st) ==
			0 &&
		    st.is_dir)
			rc = -EISDIR;
	}
	if (rc < 0)
		return http_fail_err(r, rc,
				     rc == -ENOENT ? "no such key"
				     : rc == -EISDIR
					 ? "this path is a directory; "
					   "list it with a trailing "
					   "'/'"
					 : NULL);
	const char *inm = http_header(r, MHD_HTTP_HEADER_IF_NONE_MATCH);
	if (!inm && !r->offloaded) {
		/* the usual GET: the response built for this version */
		resp = http_value_cached(r->http->values, rec);
		if (resp)
			return http_queue_kept(r, MHD_HTTP_OK, resp);
	}
	bool not_modified = inm && etag_matches(inm, rec->mod_rev);
	resp = http_value_response(rec, not_modified);
	if (!resp) {
		kv_rec_unref(rec);
		return MHD_NO;
	}
	/* rec is released with the response, after it is sent. */
	return http_queue(r, not_modified ? MHD_HTTP_NOT_MODIFIED : MHD_HTTP_OK,
			  resp);
}

static enum MHD_Result reply_rev(struct http_req *r, unsigned status,
				 uint64_t rev)
{
	char body[48], tag[32];
	size_t n = sizeof("{\"rev\":") - 1;
	memcpy(body, "{\"rev\":", n);
	n += kv_u64_dec(body + n, rev);
	body[n++] = '}';
	struct MHD_Response *resp =
	    MHD_create_response_from_buffer(n, body, MHD_RESPMEM_MUST_COPY);

	if (!resp)
		return MHD_NO;
	http_format_etag(rev, tag, sizeof tag);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, tag);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				"application/json");
	return http_queue(r, status, resp);
}

/* Propose cmd (borrowed) for the request: suspended until the node
 * answered; the handler's second run finds the outcome in r->async_*. */
static enum MHD_Result propose(struct http_req *r, struct kv_cmd *cmd)
{
	if (!http_suspend(r))
		return http_fail_err(r, KV_ESHUTDOWN, NULL);
	http_propose(r, cmd); /* a big one on a thread of its own */
	return MHD_YES;
}

/* PUT /kv/KEY?lease=ID or ?ttl=N into cmd: etcd's rule, a put without
 * either takes the key off its lease. false after answering 400. */
static bool put_lease(struct http_req *r, struct kv_cmd *cmd)
{
	bool bad_l, bad_t;
	size_t ln = 0, tn = 0;
	char *l = http_query(r, "lease", &ln, &bad_l);
	char *t = http_query(r, "ttl", &tn, &bad_t);
	const char *why = NULL;

	cmd->set_lease = t == NULL; /* lease 0: none; ttl: one of its own */
	if ((l && t) || bad_l || bad_t)
		why = "a put takes ?lease=ID or ?ttl=SECONDS, not both";
	else if (l && http_lease_parse_id(l, ln, &cmd->lease) != 0)
		why = "a lease id is a whole number from 1 to 2^53 - 1";
	else if (t && http_lease_parse_ttl(t, tn, &cmd->ttl) != 0)
		why = "ttl is a whole number of seconds from 1 to 2592000 "
		      "(30 days)";
	free(l);
	free(t);
	if (why != NULL)
		http_fail(r, MHD_HTTP_BAD_REQUEST, "bad_request", why);
	return why == NULL;
}

/* Propose a put of the request's body under its key; 201 if this write
 * created the key, 200 if it replaced it. */
static enum MHD_Result put_value(struct http_req *r)
{
	unsigned status = MHD_HTTP_OK;

	if (!r->async_done) {
		static unsigned char empty[1]; /* never a NULL value */
		struct kv_cmd cmd = {
		    .op = KV_OP_PUT,
		    .key = r->key,
		    .klen = r->klen,
		    .val = r->body ? r->body : empty,
		    .vlen = r->len,
		    .mode = 0, /* a new key gets 0644, a replaced one keeps
				  its mode */
		    .if_rev = r->if_rev,
		    .if_absent = r->if_absent,
		};
		/* /kv/ follows etcd; mmapd's /set keeps a key's lease */
		if (r->route->handle == http_kv_handle && !put_lease(r, &cmd))
			return r->answered ? MHD_YES : MHD_NO;
		return propose(r, &cmd);
	}
	int rc = r->async_ret;
	struct kv_result res = r->async_res;
	if (rc == 0 && res.err == -EEXIST && r->if_absent)
		res.err = KV_EPRECOND;
	if (rc == 0 && res.err == 0) {
		/* The key's create revision is ours only if this entry made
		 * it (a later delete and re-create is reported as 200). */
		struct kv_rec *rec = NULL;
		if (store_get(node_store(r->node), r->key, r->klen, &rec) ==
			0 &&
		    rec->create_rev == res.rev)
			status = MHD_HTTP_CREATED;
		kv_rec_unref(rec);
	}
	if (rc < 0)
		return http_fail_err(r, rc, NULL);
	if (res.err < 0)
		return http_fail_err(
		    r, res.err,
		    res.err == -EISDIR || res.err == -ENOTDIR
			? "the key conflicts with a directory: a key "
			  "cannot be both a value and a directory"
		    : res.err == -ENOENT ? "no such lease"
					 : NULL);
	return reply_rev(r, status, res.rev);
}

static enum MHD_Result delete_value(struct http_req *r)
{
	if (!r->async_done) {
		struct kv_cmd cmd = {.op = KV_OP_DEL,
				     .key = r->key,
				     .klen = r->klen,
				     .if_rev = r->if_rev};
		return propose(r, &cmd);
	}
	int rc = r->async_ret;
	struct kv_result res = r->async_res;
	if (rc < 0)
		return http_fail_err(r, rc, NULL);
	if (res.err < 0)
		return http_fail_err(r, res.err,
				     res.err == -ENOENT ? "no such key" : NULL);
	return reply_rev(r, MHD_HTTP_OK, res.rev);
}

/* POST /kv/<key>?add=N: the counter at key grows by N, applied by the
 * state machine (an add of one counter), so increments from every member
 * at once are never lost; answers the count it left. */
static enum MHD_Result add_value(struct http_req *r)
{
	if (!r->async_done) {
		bool bad;
		size_t n = 0;
		char *v = http_query(r, "add", &n, &bad);
		char *end = NULL;
		errno = 0;
		unsigned long long x = v ? strtoull(v, &end, 10) : 0;
		bool ok = v && !bad && n > 0 && end == v + n && !errno &&
			  v[0] != '-' && x >= 1 && x <= (1ull << 53);
		free(v);
		if (!ok)
			return http_fail(r, MHD_HTTP_BAD_REQUEST, "bad_request",
					 "add is a whole number from 1 to "
					 "2^53");
		const char *slash = memrchr(r->key, '/', r->klen);
		size_t dlen = slash ? (size_t)(slash - r->key) : 0;
		struct kv_add a = {.name = slash ? (char *)slash + 1 : r->key,
				   .nlen = slash ? r->klen - dlen - 1 : r->klen,
				   .n = x};
		struct kv_cmd cmd = {.op = KV_OP_ADD,
				     .key = r->key,
				     .klen = dlen,
				     .adds = &a,
				     .nadd = 1,
				     .time_ns = kv_wall_ns()};
		char *dir = strndup(r->key, dlen); /* NUL-terminated */
		if (!dir)
			return http_fail_err(r, -ENOMEM, NULL);
		cmd.key = dir;
		enum MHD_Result ret = propose(r, &cmd);
		free(dir);
		return ret;
	}
	int rc = r->async_ret;
	struct kv_result res = r->async_res;
	if (rc < 0)
		return http_fail_err(r, rc, NULL);
	if (res.err < 0)
		return http_fail_err(
		    r, res.err,
		    res.err == -EINVAL	    ? "the key's value is not a count"
		    : res.err == -EOVERFLOW ? "the count would pass 2^64 - 1"
					    : NULL);
	char body[80];
	int len = snprintf(body, sizeof body,
			   "{\"rev\":%" PRIu64 ",\"value\":%" PRIu64 "}",
			   res.rev, res.count);
	return http_reply_json(r, MHD_HTTP_OK, body, (size_t)len);
}

/* DELETE /kv/<dir>/?recursive: the directory and every key below it, one
 * entry (an rmdir with KV_RMDIR_RECURSIVE). */
static enum MHD_Result delete_tree(struct http_req *r)
{
	if (!r->async_done) {
		if (r->klen == 0)
			return http_fail(r, MHD_HTTP_BAD_REQUEST, "bad_request",
					 "the root cannot be deleted; delete "
					 "its directories and keys");
		struct kv_cmd cmd = {.op = KV_OP_RMDIR,
				     .key = r->key,
				     .klen = r->klen,
				     .flags = KV_RMDIR_RECURSIVE,
				     .time_ns = kv_wall_ns()};
		return propose(r, &cmd);
	}
	int rc = r->async_ret;
	struct kv_result res = r->async_res;
	if (rc < 0)
		return http_fail_err(r, rc, NULL);
	if (res.err < 0)
		return http_fail_err(r, res.err,
				     res.err == -ENOENT	   ? "no such directory"
				     : res.err == -ENOTDIR ? "this path is a "
							     "key, not a "
							     "directory"
							   : NULL);
	return reply_rev(r, MHD_HTTP_OK, res.rev);
}

enum MHD_Result http_kv_handle(struct http_req *r)
{
	bool watch = http_query_has(r, "watch");
	static const char *const watch_only[] = {"since", "values", "wait"};
	for (size_t i = 0; !watch && i < 3; i++)
		if (http_query_has(r, watch_only[i])) {
			char msg[96];
			snprintf(msg, sizeof msg,
				 "unknown query parameter: %s (it goes with "
				 "?watch)",
				 watch_only[i]);
			return http_fail(r, MHD_HTTP_BAD_REQUEST, "bad_request",
					 msg);
		}
	if (watch && r->method != HTTP_GET)
		return http_fail(r, MHD_HTTP_BAD_REQUEST, "bad_request",
				 "?watch is for GET");
	if ((http_query_has(r, "lease") || http_query_has(r, "ttl")) &&
	    (!(r->method & (HTTP_PUT | HTTP_POST)) || is_listing(r) ||
	     http_query_has(r, "add")))
		return http_fail(
		    r, MHD_HTTP_BAD_REQUEST, "bad_request",
		    "?lease and ?ttl are for a PUT (or POST) of a key");
	if (r->method == HTTP_DELETE && http_query_has(r, "recursive"))
		return delete_tree(r);
	if (http_query_has(r, "add")) {
		if (r->method != HTTP_POST)
			return http_fail(r, MHD_HTTP_BAD_REQUEST, "bad_request",
					 "?add is for POST");
		return add_value(r);
	}
	if (watch) {
		enum http_barrier b = http_read_barrier(r);
		if (b != HTTP_BARRIER_PASSED)
			return http_barrier_held(r, b);
		return http_watch_start(r);
	}
	if (is_listing(r))
		return http_list_dir(r);
	switch (r->method) {
	case HTTP_GET:
	case HTTP_HEAD:
		return get_value(r);
	case HTTP_PUT:
	case HTTP_POST:
		return put_value(r);
	case HTTP_DELETE:
		return delete_value(r);
	default:
		return http_fail(r, MHD_HTTP_METHOD_NOT_ALLOWED,
				 "method_not_allowed", "method not allowed");
	}
}

/* mmapd's POST /set/<key>: the value is the form field "value", from the
 * body or, as Go's FormValue allows, from the query. */
enum MHD_Result http_mmapd_set(struct http_req *r)
{
	if (!r->has_value && !r->async_done) {
		bool bad;
		size_t n = 0;
		char *v = http_query(r, "value", &n, &bad);
		if (!v)
			return http_fail(r, MHD_HTTP_BAD_REQUEST, "bad_request",
					 "the form field 'value' is missing");
		if (n > KV_MAX_VALUE) {
			free(v);
			return http_fail(r, MHD_HTTP_CONTENT_TOO_LARGE,
					 "too_large",
					 "the value is larger than the limit");
		}
		free(r->body);
		r->body = (unsigned char *)v;
		r->len = n;
	}
	r->if_rev = 0;
	r->if_absent = false;
	return put_value(r);
}

enum MHD_Result http_mmapd_get(struct http_req *r)
{
	return get_value(r);
}

enum MHD_Result http_status_handle(struct http_req *r)
{
	char *json = NULL;
	enum MHD_Result ret;
	int rc = node_status_json(r->node, &json);

	if (rc < 0)
		return http_fail_err(r, rc, NULL);
	/* ?pretty: indented, for people with curl */
	if (http_query_has(r, "pretty")) {
		cJSON *o = cJSON_Parse(json);
		char *p = o ? cJSON_Print(o) : NULL;
		cJSON_Delete(o);
		if (p) {
			free(json);
			json = p;
		}
	}
	ret = http_reply_json(r, MHD_HTTP_OK, json, strlen(json));
	free(json);
	return ret;
}
