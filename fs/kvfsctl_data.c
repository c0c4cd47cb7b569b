/* kvfsctl_data.c - the client's bulk commands: snapshot save (a backup,
 * GET /snapshot), export (every key and value of a backup as JSON lines)
 * and import (JSON lines as PUTs). All three read the whole backup into
 * memory; fine for what kvfs holds (values in memory on every node
 * already), and said in docs/operations.md. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "codec.h"
#include "kv.h"
#include "kvfsctl.h"

/* The backup in data[0..len) checks itself: a header with the revision,
 * and a trailer whose CRC-32C covers every byte before it. 0 and the
 * revision, or 1 with the reason printed. */
static int backup_check(const char *data, size_t len, uint64_t *rev)
{
	const char *nl = memchr(data, '\n', len);
	cJSON *h = nl ? kv_json_parse(data, (size_t)(nl - data)) : NULL;
	const cJSON *i = cJSON_GetObjectItemCaseSensitive(h, "index");
	bool head_ok =
	    cJSON_IsString(cJSON_GetObjectItemCaseSensitive(h, "kvfs")) &&
	    cJSON_IsNumber(i);
	*rev = head_ok ? (uint64_t)i->valuedouble : 0;
	cJSON_Delete(h);
	/* the trailer: the last line */
	size_t end = len && data[len - 1] == '\n' ? len - 1 : len;
	size_t start = end;
	while (start > 0 && data[start - 1] != '\n')
		start--;
	cJSON *t = kv_json_parse(data + start, end - start);
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(t, "crc");
	char want[9] = "";
	snprintf(want, sizeof want, "%08" PRIx32, kv_crc32c(0, data, start));
	bool tail_ok =
	    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(t, "end")) &&
	    cJSON_IsString(c) && strcmp(c->valuestring, want) == 0;
	cJSON_Delete(t);
	if (head_ok && tail_ok && end == len - 1)
		return 0;
	fprintf(stderr,
		"kvfsctl: snapshot: the node's answer is not a whole "
		"snapshot (%s)\n",
		!head_ok ? "no header" : "bad trailer or checksum");
	return 1;
}

/* GET /snapshot into path: checked, written to path.tmp, synced, renamed
 * over path, so path is a whole backup or untouched. */
int ctl_snapshot_save(const struct ctl *c, const char *path)
{
	char *resp = NULL;
	size_t len = 0;
	long status = 0;
	uint64_t rev = 0;
	int rc =
	    ctl_request(c, "GET", "/snapshot", NULL, 0, &status, &resp, &len);
	if (rc != 0)
		return rc;
	if (status != 200) {
		ctl_print_failure("snapshot", status, resp ? resp : "");
		free(resp);
		return 1;
	}
	rc = backup_check(resp, len, &rev);
	if (rc == 0) {
		char *dir = strdup(path),
		     *slash = dir ? strrchr(dir, '/') : NULL;
		const char *name = slash ? slash + 1 : path;
		if (slash)
			*slash = '\0';
		int err = dir ? kv_file_replace(slash ? dir : ".", name, resp,
						len, 0600)
			      : -ENOMEM;
		free(dir);
		if (err != 0) {
			fprintf(stderr,
				"kvfsctl: snapshot: cannot write %s: %s\n",
				path, kv_strerror(err));
			rc = 1;
		} else if (c->json) {
			printf("{\"revision\":%" PRIu64 ",\"bytes\":%zu}\n",
			       rev, len);
		} else {
			printf("saved revision %" PRIu64 " to %s (%zu bytes)\n",
			       rev, path, len);
		}
	}
	free(resp);
	return rc;
}

/* Progress on a terminal only: a line rewritten in place. */
static void progress(const char *what, size_t done, size_t total, bool end)
{
	if (!isatty(STDERR_FILENO))
		return;
	if (total)
		fprintf(stderr, "\r%s %zu/%zu keys", what, done, total);
	else
		fprintf(stderr, "\r%s %zu keys", what, done);
	if (end)
		fputc('\n', stderr);
	fflush(stderr);
}

/* One record line of a backup as an export line on out: regular files
 * only. 1 written, 0 skipped (not a file), 2 not a record (the lock
 * table's sessions and locks and the leases, which an export leaves
 * out: an imported key is on no lease), -1 malformed. */
static int export_rec(FILE *out, const char *line, size_t len)
{
	cJSON *r = kv_json_parse(line, len);
	if (cJSON_GetObjectItemCaseSensitive(r, "sess") ||
	    cJSON_GetObjectItemCaseSensitive(r, "lock") ||
	    cJSON_GetObjectItemCaseSensitive(r, "ttl")) {
		cJSON_Delete(r);
		return 2;
	}
	const cJSON *k = cJSON_GetObjectItemCaseSensitive(r, "k");
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(r, "mode");
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(r, "v");
	const cJSON *v64 = cJSON_GetObjectItemCaseSensitive(r, "v64");
	int ret = -1;
	if (cJSON_IsString(k) && cJSON_IsNumber(m)) {
		ret = 0;
		if (((unsigned)m->valuedouble & S_IFMT) == S_IFREG &&
		    k->valuestring[0]) {
			cJSON *o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "key", k->valuestring);
			if (cJSON_IsString(v64))
				cJSON_AddStringToObject(o, "value64",
							v64->valuestring);
			else
				cJSON_AddStringToObject(
				    o, "value",
				    cJSON_IsString(v) ? v->valuestring : "");
			char *s = cJSON_PrintUnformatted(o);
			cJSON_Delete(o);
			ret = s && fprintf(out, "%s\n", s) > 0 ? 1 : -1;
			cJSON_free(s);
		}
	}
	cJSON_Delete(r);
	return ret;
}

int ctl_export(const struct ctl *c, const char *path)
{
	char *resp = NULL;
	size_t len = 0;
	long status = 0;
	uint64_t rev = 0;
	int rc =
	    ctl_request(c, "GET", "/snapshot", NULL, 0, &status, &resp, &len);
	if (rc != 0)
		return rc;
	if (status != 200 || backup_check(resp, len, &rev) != 0) {
		if (status != 200)
			ctl_print_failure("export", status, resp ? resp : "");
		free(resp);
		return 1;
	}
	FILE *out = strcmp(path, "-") == 0 ? stdout : fopen(path, "w");
	if (!out) {
		fprintf(stderr, "kvfsctl: export: %s: %s\n", path,
			strerror(errno));
		free(resp);
		return 1;
	}
	size_t off = (size_t)((char *)memchr(resp, '\n', len) - resp) + 1;
	size_t files = 0, other = 0;
	for (;;) {
		char *nl = memchr(resp + off, '\n', len - off);
		if (!nl || (size_t)(nl - resp) + 1 == len)
			break; /* the trailer */
		int w = export_rec(out, resp + off, (size_t)(nl - resp) - off);
		if (w < 0) {
			rc = 1;
			break;
		}
		files += w == 1; /* 2 (the lock table) counts as neither */
		other += w == 0;
		if (files % 1000 == 0)
			progress("exported", files, 0, false);
		off = (size_t)(nl - resp) + 1;
	}
	progress("exported", files, 0, true);
	if ((out != stdout && fclose(out) != 0) ||
	    (out == stdout && fflush(out) != 0))
		rc = 1;
	free(resp);
	if (rc == 0)
		fprintf(stderr,
			"kvfsctl: exported %zu keys at revision %" PRIu64
			" (%zu directories, links and special files are "
			"not exported)\n",
			files, rev, other ? other - 1 : 0);
	else
		fprintf(stderr, "kvfsctl: export failed after %zu keys\n",
			files);
	return rc;
}

/* One export line as a PUT. 0, or 1 with the reason printed. */
static int import_line(const struct ctl *c, const char *line, size_t lineno)
{
	cJSON *o = cJSON_Parse(line);
	const cJSON *k = cJSON_GetObjectItemCaseSensitive(o, "key");
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "value");
	const cJSON *v64 = cJSON_GetObjectItemCaseSensitive(o, "value64");
	unsigned char *bytes = NULL;
	size_t n = 0;
	int rc = 1;
	if (!cJSON_IsString(k) || (!cJSON_IsString(v) && !cJSON_IsString(v64)))
		fprintf(stderr,
			"kvfsctl: import: line %zu: not {\"key\": ..., "
			"\"value\"|\"value64\": ...}\n",
			lineno);
	else if (cJSON_IsString(v64) &&
		 kv_base64_decode(v64->valuestring, strlen(v64->valuestring),
				  &bytes, &n) != 0)
		fprintf(stderr, "kvfsctl: import: line %zu: bad base64\n",
			lineno);
	else
		rc = 0;
	char *path = rc == 0 ? ctl_kv_path(k->valuestring) : NULL;
	if (path) {
		const char *body = bytes ? (const char *)bytes : v->valuestring;
		size_t blen = bytes ? n : strlen(v->valuestring);
		long status = 0;
		char *resp = NULL;
		rc = ctl_request(c, "PUT", path, body, blen, &status, &resp,
				 NULL);
		if (rc == 0 && status != 200 && status != 201) {
			char what[64];
			snprintf(what, sizeof what, "import: line %zu", lineno);
			ctl_print_failure(what, status, resp ? resp : "");
			rc = 1;
		}
		free(resp);
		free(path);
	} else if (rc == 0) {
		rc = 1;
	}
	free(bytes);
	cJSON_Delete(o);
	return rc;
}

int ctl_import(const struct ctl *c, const char *path)
{
	FILE *in = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
	if (!in) {
		fprintf(stderr, "kvfsctl: import: %s: %s\n", path,
			strerror(errno));
		return 1;
	}
	char *line = NULL;
	size_t cap = 0, lineno = 0, done = 0;
	ssize_t n;
	int rc = 0;
	while (rc == 0 && (n = getline(&line, &cap, in)) > 0) {
		lineno++;
		if (line[n - 1] == '\n')
			line[n - 1] = '\0';
		if (line[0] == '\0')
			continue;
		rc = import_line(c, line, lineno);
		done += rc == 0;
		if (done % 100 == 0)
			progress("imported", done, 0, false);
	}
	if (rc == 0 && ferror(in)) {
		fprintf(stderr, "kvfsctl: import: cannot read %s\n", path);
		rc = 1;
	}
	progress("imported", done, 0, true);
	free(line);
	if (in != stdin)
		fclose(in);
	fprintf(stderr, "kvfsctl: imported %zu keys%s\n", done,
		rc ? " before the failure above" : "");
	return rc;
}
