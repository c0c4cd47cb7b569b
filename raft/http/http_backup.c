/* http_backup.c - GET /snapshot: a backup of the whole store, as one db
 * snapshot file (docs/map-and-db.md: a header with the revision, a line a
 * record, a trailer with a CRC-32C of every byte before it, so the file
 * checks itself).
 *
 * The handler runs on a thread of its own (an offloaded route). It first
 * passes a read barrier, so the backup holds every write acknowledged
 * before the request, then has the store write a snapshot of what it has
 * applied, and streams that file from an open descriptor: a later
 * snapshot replacing the file does not change what is sent. The revision
 * and term are in the answer's headers (X-Kvfs-Revision,
 * X-Kvfs-Snapshot-Term). It needs the cluster token, or with --auth an
 * admin token: it is every key at once. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http_int.h"
#include "store.h"

/* index and term from the db header, the first line of fd. */
static int read_header(int fd, uint64_t *index, uint64_t *term)
{
	char buf[8192];
	ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
	if (n <= 0)
		return -EIO;
	buf[n] = '\0';
	char *nl = strchr(buf, '\n');
	if (!nl)
		return KV_ECORRUPT; /* a conf too long to read here is fine */
	*nl = '\0';
	cJSON *h = cJSON_Parse(buf);
	const cJSON *i = cJSON_GetObjectItemCaseSensitive(h, "index");
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(h, "term");
	int ret = cJSON_IsNumber(i) && cJSON_IsNumber(t) ? 0 : KV_ECORRUPT;
	if (ret == 0) {
		*index = (uint64_t)i->valuedouble;
		*term = (uint64_t)t->valuedouble;
	}
	cJSON_Delete(h);
	return ret;
}

enum MHD_Result http_snapshot_handle(struct http_req *r)
{
	int ret = node_read_barrier(r->node, true);
	if (ret == 0)
		ret = store_snapshot(node_store(r->node));
	if (ret != 0)
		return http_fail_err(r, ret, NULL);
	char path[4096];
	snprintf(path, sizeof path, "%s/db.jsonl", node_data_dir(r->node));
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	uint64_t index = 0, term = 0;
	ret = fd < 0 ? -errno : fstat(fd, &st) != 0 ? -errno : 0;
	if (ret == 0)
		ret = read_header(fd, &index, &term);
	if (ret != 0) {
		if (fd >= 0)
			close(fd);
		return http_fail_err(r, ret, "the snapshot cannot be read");
	}
	struct MHD_Response *resp =
	    MHD_create_response_from_fd64((uint64_t)st.st_size, fd);
	if (!resp) {
		close(fd);
		return http_fail_err(r, -ENOMEM, NULL);
	}
	char v[32], disp[96];
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				"application/jsonl");
	snprintf(v, sizeof v, "%" PRIu64, index);
	MHD_add_response_header(resp, "X-Kvfs-Revision", v);
	snprintf(disp, sizeof disp, "attachment; filename=\"kvfs-%s-%s.db\"",
		 node_cluster_id(r->node), v);
	MHD_add_response_header(resp, "Content-Disposition", disp);
	snprintf(v, sizeof v, "%" PRIu64, term);
	MHD_add_response_header(resp, "X-Kvfs-Snapshot-Term", v);
	return http_queue(r, MHD_HTTP_OK, resp);
}
