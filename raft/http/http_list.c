/* http_list.c - GET /kv/<dir>/: a directory's names, or with ?recursive
 * every key below it, paginated (?limit, ?after), as JSON, after the read
 * barrier (docs/http-api.md). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "http_int.h"

#define LIST_DEFAULT_LIMIT 1000
#define LIST_MAX_LIMIT	   10000

static cJSON *raw_u64(uint64_t v)
{
	char buf[24];
	snprintf(buf, sizeof buf, "%" PRIu64, v);
	return cJSON_CreateRaw(buf);
}

static cJSON *raw_i64(int64_t v)
{
	char buf[24];
	snprintf(buf, sizeof buf, "%" PRId64, v);
	return cJSON_CreateRaw(buf);
}

/* The listing as JSON text (malloc'd), or NULL without memory. Numbers go
 * in raw so that 64-bit values keep every digit. */
static char *list_json(const char *dir, const struct kv_list *list)
{
	cJSON *o = cJSON_CreateObject(), *ents;
	char *text = NULL;

	if (!o || !cJSON_AddStringToObject(o, "dir", dir))
		goto out;
	ents = cJSON_AddArrayToObject(o, "entries");
	if (!ents)
		goto out;
	for (size_t i = 0; i < list->n; i++) {
		const struct kv_dirent *d = &list->ents[i];
		cJSON *e = cJSON_CreateObject();
		if (!e)
			goto out;
		cJSON_AddItemToArray(ents, e);
		if (!cJSON_AddStringToObject(e, "name", d->name) ||
		    !cJSON_AddStringToObject(e, "type",
					     d->st.is_dir ? "dir" : "file"))
			goto out;
		cJSON_AddItemToObject(e, "size", raw_u64(d->st.size));
		cJSON_AddItemToObject(e, "rev", raw_u64(d->st.mod_rev));
		cJSON_AddItemToObject(e, "create_rev",
				      raw_u64(d->st.create_rev));
		cJSON_AddItemToObject(e, "mtime",
				      raw_i64(d->st.mtime_ns / 1000000000));
		cJSON_AddItemToObject(e, "mtime_ns", raw_i64(d->st.mtime_ns));
	}
	if (list->more && list->n > 0) {
		if (!cJSON_AddStringToObject(o, "next",
					     list->ents[list->n - 1].name))
			goto out;
	} else if (!cJSON_AddNullToObject(o, "next")) {
		goto out;
	}
	text = cJSON_PrintUnformatted(o);
out:
	cJSON_Delete(o);
	return text;
}

/* GET /kv/<dir>/ : children of dir, paginated by ?limit= and ?after=. */
enum MHD_Result http_list_dir(struct http_req *r)
{
	struct kv_list list = {0};
	size_t limit = LIST_DEFAULT_LIMIT, alen = 0;
	bool bad;
	char *after = http_query(r, "after", &alen, &bad);
	char *lim = NULL;
	enum MHD_Result ret;
	int rc;

	if (bad || (after && strlen(after) != alen)) {
		ret = http_fail(r, MHD_HTTP_BAD_REQUEST, "bad_request",
				"bad 'after' cursor");
		goto out_free;
	}
	lim = http_query(r, "limit", NULL, &bad);
	if (bad) {
		ret = http_fail(r, MHD_HTTP_BAD_REQUEST, "bad_request",
				"bad limit");
		goto out_free;
	}
	if (lim) {
		char *end;
		errno = 0;
		unsigned long long v = strtoull(lim, &end, 10);
		if (errno || end == lim || *end || lim[0] == '-' || v == 0) {
			ret = http_fail(r, MHD_HTTP_BAD_REQUEST, "bad_request",
					"limit is a number from 1 to 10000");
			goto out_free;
		}
		limit = v > LIST_MAX_LIMIT ? LIST_MAX_LIMIT : (size_t)v;
	}
	enum http_barrier b = http_read_barrier(r);
	if (b != HTTP_BARRIER_PASSED) {
		ret = http_barrier_held(r, b);
		goto out_free;
	}
	rc = (http_query_has(r, "recursive") ? store_list_all : store_list)(
	    node_store(r->node), r->key, r->klen,
	    after && after[0] ? after : NULL, limit, &list);
	if (rc < 0) {
		ret =
		    http_fail_err(r, rc,
				  rc == -ENOENT	   ? "no such directory"
				  : rc == -ENOTDIR ? "this path is a key, not "
						     "a directory"
						   : NULL);
		goto out_free;
	}
	char *text = list_json(r->key, &list);
	kv_list_clear(&list);
	if (!text) {
		ret = MHD_NO;
		goto out_free;
	}
	ret = http_reply_json(r, MHD_HTTP_OK, text, strlen(text));
	free(text);
out_free:
	free(lim);
	free(after);
	return ret;
}
