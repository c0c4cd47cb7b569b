/* http_conn.c - what libmicrohttpd calls for a request: the gate, then the
 * router.
 *
 * Each call of the access handler is one step of a request: its headers
 * are in (the first call), a piece of its body, the whole request is in
 * (or it was taken up again after a suspension). The gate (http_gate.c)
 * hears of each step first, so that its deadlines follow the request, and
 * may refuse it; the router (http_request.c) then does the work. Kept
 * apart from both so that neither calls the other. */
#include "http_gate.h"
#include "http_int.h"

/* A client took a reserved slot for something else than /status: 503, and
 * the gate closes the connection once it is answered. */
static enum MHD_Result refuse_busy(struct http_server *h,
				   struct MHD_Connection *conn)
{
	struct http_req r = {.http = h, .node = h->node, .conn = conn};
	return http_fail(&r, MHD_HTTP_SERVICE_UNAVAILABLE, "busy",
			 "every connection of this node is busy; retry");
}

enum MHD_Result http_conn_request(void *cls, struct MHD_Connection *conn,
				  const char *url, const char *method,
				  const char *version, const char *upload_data,
				  size_t *upload_data_size, void **con_cls)
{
	struct http_server *h = cls;

	if (!*con_cls) {
		switch (http_gate_headers(h->gate, conn, method, url)) {
		case HTTP_GATE_DROP:
			return MHD_NO;
		case HTTP_GATE_BUSY:
			return refuse_busy(h, conn);
		case HTTP_GATE_GO:
			break;
		}
	} else if (*upload_data_size) {
		if (!http_gate_body(h->gate, conn, *upload_data_size))
			return MHD_NO;
	} else {
		http_gate_busy(h->gate, conn);
	}
	return http_on_request(cls, conn, url, method, version, upload_data,
			       upload_data_size, con_cls);
}

void http_conn_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct http_server *h = cls;

	http_gate_done(h->gate, conn);
	http_on_completed(cls, conn, con_cls, toe);
}
