/* kvfsctl_keys.c - kvfsctl del KEY and ls [DIR] [-r]: the key commands
 * beside get and put.
 *
 * del deletes a key (DELETE /kv/KEY); with -r a directory and everything
 * below it, as one entry (DELETE /kv/DIR/?recursive). ls lists a
 * directory a page at a time (GET /kv/DIR/?after=...), one name a line,
 * directories with a trailing '/'; with -r every key below it at any
 * depth (?recursive), names relative to DIR. --json prints each page's
 * JSON as the node sent it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "kvfsctl.h"

int ctl_del(const struct ctl *c, const char *key, bool recursive)
{
	char *base = ctl_kv_path(key), *resp = NULL;
	long status = 0;
	if (!base)
		return 1;
	size_t n = strlen(base);
	char *path = malloc(n + 16);
	if (!path) {
		free(base);
		return 1;
	}
	/* a directory's path ends in '/' for the recursive form */
	snprintf(path, n + 16, "%s%s", base,
		 recursive
		     ? (n && base[n - 1] == '/' ? "?recursive" : "/?recursive")
		     : "");
	free(base);
	int rc = ctl_request(c, "DELETE", path, NULL, 0, &status, &resp, NULL);
	free(path);
	if (rc != 0)
		return rc;
	if (status == 200 || status == 204) {
		if (c->json)
			ctl_print_json(resp);
	} else {
		ctl_print_failure("del", status, resp);
		rc = 1;
	}
	free(resp);
	return rc;
}

int ctl_ls(const struct ctl *c, const char *dir, bool recursive)
{
	char *base = ctl_kv_path(dir);
	if (!base)
		return 1;
	size_t bl = strlen(base);
	char *after = NULL;
	int rc = 0;
	CURL *esc = curl_easy_init();
	for (;;) {
		char *a = after ? curl_easy_escape(esc, after, 0) : NULL;
		size_t cap = bl + 64 + (a ? strlen(a) : 0);
		char *path = malloc(cap);
		if (!path) {
			curl_free(a);
			rc = 1;
			break;
		}
		snprintf(path, cap, "%s%s?limit=1000%s%s%s", base,
			 bl > 4 && base[bl - 1] != '/' ? "/" : "",
			 recursive ? "&recursive" : "", a ? "&after=" : "",
			 a ? a : "");
		curl_free(a);
		long status = 0;
		char *resp = NULL;
		rc = ctl_request(c, "GET", path, NULL, 0, &status, &resp, NULL);
		free(path);
		if (rc != 0)
			break;
		if (status != 200) {
			ctl_print_failure("ls", status, resp);
			free(resp);
			rc = 1;
			break;
		}
		if (c->json)
			printf("%s\n", resp);
		cJSON *o = cJSON_Parse(resp);
		free(resp);
		const cJSON *ents =
		    cJSON_GetObjectItemCaseSensitive(o, "entries");
		const cJSON *e;
		cJSON_ArrayForEach(e, ents)
		{
			const cJSON *name = cJSON_GetObjectItem(e, "name");
			const cJSON *type = cJSON_GetObjectItem(e, "type");
			if (!c->json && cJSON_IsString(name))
				printf("%s%s\n", name->valuestring,
				       cJSON_IsString(type) &&
					       strcmp(type->valuestring,
						      "dir") == 0
					   ? "/"
					   : "");
		}
		const cJSON *next = cJSON_GetObjectItemCaseSensitive(o, "next");
		free(after);
		after = cJSON_IsString(next) ? strdup(next->valuestring) : NULL;
		cJSON_Delete(o);
		if (!after)
			break;
	}
	curl_easy_cleanup(esc);
	free(after);
	free(base);
	return rc;
}
