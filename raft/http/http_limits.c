/* http_limits.c - the listener's limits: their defaults, fitted to the
 * file descriptors the process may open, and GET /status/http, which says
 * what they are and how often they were hit.
 *
 * The limits (http.h, struct http_limits) are enforced by the gate
 * (http_gate.c); docs/http-api.md explains each default. A listener needs
 * a descriptor per connection, so the soft RLIMIT_NOFILE is raised to
 * what the limits need, and the client connections lowered to fit when
 * the hard limit is below it. */
#include <inttypes.h>
#include <stdio.h>
#include <sys/resource.h>

#include "http_gate.h"
#include "http_int.h"

/* Lower l->max_connections to what the fd limit allows, raising the soft
 * limit up to the hard one first. */
static void fit_fds(struct http_limits *l)
{
	rlim_t extra = (rlim_t)l->reserve + HTTP_GATE_PEERS +
		       HTTP_GATE_CLOSING + HTTP_GATE_FD_OTHERS;
	rlim_t need = l->max_connections + extra;
	struct rlimit r;

	if (getrlimit(RLIMIT_NOFILE, &r) != 0 || r.rlim_cur >= need)
		return;
	struct rlimit want = {need < r.rlim_max ? need : r.rlim_max,
			      r.rlim_max};
	if (setrlimit(RLIMIT_NOFILE, &want) == 0)
		r.rlim_cur = want.rlim_cur;
	if (r.rlim_cur >= need)
		return;
	unsigned fit =
	    r.rlim_cur > extra + 16 ? (unsigned)(r.rlim_cur - extra) : 16;
	kv_log(KV_LOG_WARN,
	       "the file descriptor limit (%llu) allows %u client "
	       "connections, not %u (raise it: ulimit -n %llu)",
	       (unsigned long long)r.rlim_cur, fit, l->max_connections,
	       (unsigned long long)need);
	l->max_connections = fit;
}

void http_gate_limits(const struct http_limits *lim, struct http_limits *out)
{
	static const struct http_limits def = HTTP_LIMITS_DEFAULT;

	*out = def;
	if (lim) {
#define TAKE(f)                                                                \
	if (lim->f)                                                            \
	out->f = lim->f
		TAKE(max_connections);
		TAKE(reserve);
		TAKE(per_address);
		TAKE(header_ms);
		TAKE(idle_ms);
		TAKE(body_grace_ms);
		TAKE(body_rate);
		TAKE(stall_ms);
#undef TAKE
	}
	fit_fds(out);
}

enum MHD_Result http_gate_status(struct http_req *r)
{
	const struct http_limits *l;
	struct http_stats s;
	char buf[1024];

	http_gate_stats(r->http->gate, &s);
	l = &s.limits;
	int n = snprintf(
	    buf, sizeof(buf),
	    "{\"connections\":{\"clients\":%u,\"peers\":%u},"
	    "\"accepted\":%" PRIu64 ",\"closed\":{\"headers\":%" PRIu64
	    ",\"idle\":%" PRIu64 ",\"body\":%" PRIu64 "},\"evicted\":%" PRIu64
	    ",\"refused\":{\"address\":%" PRIu64 ",\"full\":%" PRIu64
	    ",\"reserve\":%" PRIu64 "},\"log_dropped\":%" PRIu64
	    ",\"limits\":{\"max_connections\":%u,\"reserve\":%u,"
	    "\"per_address\":%u,\"header_ms\":%u,\"idle_ms\":%u,"
	    "\"body_grace_ms\":%u,\"body_rate\":%u,\"stall_ms\":%u}}",
	    s.clients, s.peers, s.accepted, s.closed_header, s.closed_idle,
	    s.closed_body, s.evicted, s.refused_address, s.refused_full,
	    s.refused_reserve, s.log_dropped, l->max_connections, l->reserve,
	    l->per_address, l->header_ms, l->idle_ms, l->body_grace_ms,
	    l->body_rate, l->stall_ms);
	return http_reply_json(r, MHD_HTTP_OK, buf, (size_t)n);
}
