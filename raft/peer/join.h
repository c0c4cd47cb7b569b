/* join.h - the client side of membership: asking a cluster to add a node.
 *
 * A node started with --join=HOST:PORT calls cluster_join before it starts
 * its Raft node: it POSTs /cluster/members to any member, follows a 421 to
 * the leader and retries a busy or leaderless cluster until a deadline.
 * kvfsctl uses the same one-shot request helper. The server side is
 * raft/http/http_cluster.c; the endpoints are in docs/http-api.md. */
#ifndef KV_RAFT_JOIN_H
#define KV_RAFT_JOIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest cluster id carried in an answer (peer.h's PEER_ID_MAX) and
 * longest member address (raft.h's RAFT_ADDR_MAX - 1). */
#define JOIN_ID_MAX   256
#define JOIN_ADDR_MAX 63

struct peer_tls; /* peer_tls.h */

/* Who a request is from, all borrowed and each optional (NULL): the TLS
 * identity (https:// with the CA, certificate and key; NULL: http://),
 * the cluster token to present as X-Kvfs-Token (a member, or an operator
 * holding the cluster's token file), a client token to present as
 * "Authorization: Bearer". Secrets go in headers only, never in a message
 * or a URL. */
struct cluster_auth {
	const struct peer_tls *tls;
	const char *token;
	const char *bearer;
};

/* What the cluster answered a join with. The token is never in an
 * answer: the joiner was given the cluster's token file and presented
 * it. */
struct join_answer {
	char cluster_id[JOIN_ID_MAX + 1];
};

/* True if a is a member address kvfs accepts: kv_addr_valid (kv.h: port
 * 1..65535, at most KV_ADDR_MAX bytes, a host of letters, digits and
 * ".-_" or a bracketed IPv6 address: nothing that could bend a URL or a
 * Host header). The one rule for the module: the peer senders, the snapshot
 * sender, the joining client and (through this function) the membership API and
 * kvfsctl use it. NULL is false. Pure; any thread. */
bool cluster_addr_valid(const char *a);

/* True if the host of a (HOST:PORT) is a loopback address: 127.0.0.0/8,
 * [::1] or "localhost". Pure; any thread. */
bool cluster_addr_loopback(const char *a);

/* Ask the cluster that member (HOST:PORT) belongs to to add this node,
 * id at self_addr, as a learner. A 421 is followed to the leader it names,
 * a 503 (no leader, another change under way, no quorum yet) or an
 * unreachable member is retried with backoff (20 ms doubling to 1 s) until
 * timeout_ms has passed. 201 is success; so is 409 when the answer shows
 * id is already a member at self_addr (this node asked before and was
 * restarted, or an earlier answer was lost): the join is idempotent. On
 * success out is filled. auth must carry the cluster's token. Errors:
 * -EINVAL (bad arguments), -EACCES (401: the token or the certificate was
 * refused), -EEXIST (id is a member at another address, or the cluster
 * refused: 4xx), -ETIMEDOUT
 * (no success before the deadline), -EPROTO (an answer we cannot read),
 * -ENOMEM; *errmsg (malloc'd, the caller frees; may be NULL) then says why
 * in one line. Blocks; any thread; uses libcurl (curl_global_init is done
 * once, thread-safely, here). */
int cluster_join(const char *member, const struct cluster_auth *auth,
		 uint64_t id, const char *self_addr, int timeout_ms,
		 struct join_answer *out, char **errmsg);

/* A request for the leader (a membership change): send method path body
 * to member; a 421 is followed to the leader_address it names, a 503 or
 * an unreachable node is retried with backoff (20 ms doubling to 1 s),
 * starting over at member (a leader it sent us to may be gone), until
 * timeout_ms. 0 with the final answer's *status
 * (neither 421 nor 503) and *resp (malloc'd, the caller frees); *retried
 * (may be NULL) says whether it was sent again after a 503 or a
 * transport failure, so an earlier attempt may have applied. Errors:
 * -ETIMEDOUT, -EINVAL (bad member or timeout), -ENOMEM, with *errmsg
 * (malloc'd; may be NULL) naming the last answer. Blocks; any thread. */
int cluster_leader_request(const char *member, const struct cluster_auth *auth,
			   const char *method, const char *path,
			   const char *body, int timeout_ms, long *status,
			   char **resp, bool *retried, char **errmsg);

/* One HTTP request to http://addr/path (https:// with auth->tls; auth
 * may be NULL: nothing presented) (method "GET", "POST", "PUT",
 * "DELETE"; body may be NULL, sent as application/json otherwise) with a
 * total timeout. On success (any HTTP status) returns 0 with *status, the
 * response body in *resp (malloc'd, NUL-terminated, the caller frees; its
 * length in *resp_len if not NULL: a value may hold NULs) and,
 * if retry_after is not NULL, the Retry-After seconds (0 if none). A
 * transport failure returns -ECONNREFUSED, -ETIMEDOUT, -EACCES (TLS: the
 * node's certificate is not the CA's, or ours cannot be used; never
 * retried) or -EIO with *errmsg (malloc'd) saying why; -ENOMEM. Blocks; any
 * thread. */
int cluster_http(const char *addr, const struct cluster_auth *auth,
		 const char *method, const char *path, const char *body,
		 size_t len, int timeout_ms, long *status, char **resp,
		 size_t *resp_len, unsigned *retry_after, char **errmsg);

#endif
