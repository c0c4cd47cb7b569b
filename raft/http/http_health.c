/* http_health.c - GET /health and GET /readyz, for service managers,
 * load balancers and monitoring.
 *
 * /health: the process answers and can write: 200, or 503 when the log's
 * last write failed (the store's sticky write error: a full disk, an I/O
 * error) or the data directory's filesystem has less than a MiB left.
 * /readyz: this node can serve linearizable reads now: a leader is known
 * and a read barrier passed, so the node has applied everything that was
 * committed when the request arrived (a node that has just started and
 * is still catching up is not ready). 503 at once without a leader, else
 * after the barrier fails (within --write-timeout).
 * Both answer a small JSON object, {"ok": bool, ...} with a "reason" when
 * not ok, and are readable with the role /status needs. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "http_int.h"
#include "store.h"

#define HEALTH_MIN_FREE (1024 * 1024)

static enum MHD_Result reply_obj(struct http_req *r, cJSON *j, bool ok)
{
	cJSON_AddBoolToObject(j, "ok", ok);
	char *s = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	if (!s)
		return http_fail_err(r, -ENOMEM, NULL);
	enum MHD_Result ret = http_reply_json(
	    r, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, s, strlen(s));
	free(s);
	return ret;
}

enum MHD_Result http_health_handle(struct http_req *r)
{
	cJSON *j = cJSON_CreateObject();
	if (!j)
		return http_fail_err(r, -ENOMEM, NULL);
	char reason[160] = "";
	uint64_t since = 0;
	int werr = node_write_error(r->node, &since);
	if (werr != 0) {
		snprintf(reason, sizeof reason, "the log cannot be written: %s",
			 kv_strerror(werr));
		if (since != 0)
			cJSON_AddNumberToObject(j, "write_error_since_ms",
						(double)since);
	}
	struct statvfs sv;
	if (statvfs(node_data_dir(r->node), &sv) == 0) {
		double avail = (double)sv.f_bavail * (double)sv.f_frsize;
		cJSON_AddNumberToObject(j, "disk_available_bytes", avail);
		if (!reason[0] && avail < HEALTH_MIN_FREE)
			snprintf(reason, sizeof reason,
				 "the data directory's disk is full "
				 "(%.0f bytes left)",
				 avail);
	} else if (!reason[0]) {
		snprintf(reason, sizeof reason,
			 "the data directory cannot be examined: %s",
			 strerror(errno));
	}
	if (reason[0])
		cJSON_AddStringToObject(j, "reason", reason);
	return reply_obj(r, j, reason[0] == '\0');
}

enum MHD_Result http_readyz_handle(struct http_req *r)
{
	cJSON *j;
	if (r->async_done) {
		j = cJSON_CreateObject();
		if (!j)
			return http_fail_err(r, -ENOMEM, NULL);
		cJSON_AddNumberToObject(j, "leader",
					(double)node_leader(r->node, NULL, 0));
		if (r->async_ret != 0)
			cJSON_AddStringToObject(j, "reason",
						kv_strerror(r->async_ret));
		return reply_obj(r, j, r->async_ret == 0);
	}
	if (node_leader(r->node, NULL, 0) == 0) {
		j = cJSON_CreateObject();
		if (!j)
			return http_fail_err(r, -ENOMEM, NULL);
		cJSON_AddNumberToObject(j, "leader", 0);
		cJSON_AddStringToObject(j, "reason", "no leader known");
		return reply_obj(r, j, false);
	}
	if (!http_suspend(r))
		return http_fail_err(r, KV_ESHUTDOWN, NULL);
	http_started(r, node_read_barrier_async(r->node, http_done, r));
	return MHD_YES;
}
