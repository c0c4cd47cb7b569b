/* hardstate.c - Raft's term and vote in raft-state.json.
 *
 * One JSON line with a format version and a CRC-32C, replaced atomically
 * by kv_file_replace (a temporary file, fsync, rename over the old one,
 * fsync of the directory). A crash leaves the old state or the new one.
 * The format is in docs/log-format.md. */
#include "hardstate.h"
#include "store.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HS_FILE	   "raft-state.json"
#define HS_VERSION 1
#define HS_MAX	   4096 /* a valid file is far smaller */

static uint32_t hs_crc(uint64_t term, uint64_t vote)
{
	unsigned char b[16];
	for (int i = 0; i < 8; i++) {
		b[i] = (unsigned char)(term >> (8 * i));
		b[8 + i] = (unsigned char)(vote >> (8 * i));
	}
	return kv_crc32c(0, b, sizeof(b));
}

static int hs_fail(char **errmsg, const char *dir, const char *why, int ret)
{
	if (errmsg) {
		free(*errmsg);
		if (asprintf(errmsg, "%s/" HS_FILE ": offset 0: %s", dir, why) <
		    0)
			*errmsg = NULL;
	}
	return ret;
}

/* An exact non-negative integer from a JSON number (cJSON keeps doubles,
 * exact up to 2^53, far beyond any term or node id). */
static bool hs_uint(const cJSON *j, uint64_t *out)
{
	if (!cJSON_IsNumber(j))
		return false;
	double d = j->valuedouble;
	if (!(d >= 0 && d <= 9007199254740992.0) || d != (double)(uint64_t)d)
		return false;
	*out = (uint64_t)d;
	return true;
}

int hardstate_load(const char *dir, uint64_t *term, uint64_t *vote,
		   char **errmsg)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/" HS_FILE, dir);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT)
			return -errno;
		*term = *vote = 0;
		return 0;
	}
	char buf[HS_MAX + 1];
	size_t n = 0;
	ssize_t r;
	while (n < HS_MAX && (r = read(fd, buf + n, HS_MAX - n)) != 0) {
		if (r < 0) {
			if (errno == EINTR)
				continue;
			int ret = -errno;
			close(fd);
			return ret;
		}
		n += (size_t)r;
	}
	close(fd);
	buf[n] = 0;

	int ret = KV_ECORRUPT;
	const char *why = "unparsable hard state";
	cJSON *j = cJSON_ParseWithLength(buf, n);
	if (!j)
		goto out;
	const cJSON *kind = cJSON_GetObjectItemCaseSensitive(j, "kvfs");
	const cJSON *ver = cJSON_GetObjectItemCaseSensitive(j, "version");
	uint64_t v, t, vo, crc;
	if (!cJSON_IsString(kind) || strcmp(kind->valuestring, "hardstate") ||
	    !hs_uint(ver, &v))
		goto out;
	if (v != HS_VERSION) {
		why = "unknown hard state format version";
		ret = KV_EVERSION;
		goto out;
	}
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "crc");
	char *end;
	if (!hs_uint(cJSON_GetObjectItemCaseSensitive(j, "term"), &t) ||
	    !hs_uint(cJSON_GetObjectItemCaseSensitive(j, "vote"), &vo) ||
	    !cJSON_IsString(c) || strlen(c->valuestring) != 8)
		goto out;
	crc = strtoull(c->valuestring, &end, 16);
	if (*end)
		goto out;
	if (crc != hs_crc(t, vo)) {
		why = "hard state checksum mismatch";
		goto out;
	}
	*term = t;
	*vote = vo;
	ret = 0;
out:
	cJSON_Delete(j);
	if (ret)
		return hs_fail(errmsg, dir, why, ret);
	return 0;
}

int hardstate_save(const char *dir, uint64_t term, uint64_t vote)
{
	char buf[256];
	int len =
	    snprintf(buf, sizeof(buf),
		     "{\"kvfs\":\"hardstate\",\"version\":%d,\"term\":%" PRIu64
		     ",\"vote\":%" PRIu64 ",\"crc\":\"%08" PRIx32 "\"}\n",
		     HS_VERSION, term, vote, hs_crc(term, vote));
	/* invariant 10 of docs/log-format.md: kv_file_replace writes
	 * HS_FILE ".tmp", syncs it, renames it, syncs the directory */
	return kv_file_replace(dir, HS_FILE, buf, (size_t)len, 0644);
}
