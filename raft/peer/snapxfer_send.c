/* snapxfer_send.c - the sending half of the snapshot transfer.
 *
 * One call moves one db snapshot file to one follower: it opens the file
 * once (a newer snapshot renamed over the path later does not matter),
 * checks its header names the snapshot Raft asked for, computes the whole
 * file's CRC-32C, then asks the receiver where it stands and POSTs chunks
 * from there, one chunk in memory at a time. Every answer says where to
 * go on, so lost chunks and restarts cost a resume. Requests run in a curl
 * multi handle polled every CANCEL_POLL_MS, so a cancel flag stops it
 * promptly. The receiving half is snapxfer.c; the protocol is in
 * docs/peer-protocol.md. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "join.h"
#include "kv.h"
#include "peer.h"
#include "peer_tls.h"
#include "snapxfer.h"

#define DEF_CONNECT_MS	   1000
#define DEF_TIMEOUT_MS	   10000
#define DEF_BACKOFF_MIN_MS 10
#define DEF_BACKOFF_MAX_MS 1000
#define DEF_MAX_FAILURES   8
#define CANCEL_POLL_MS	   50
/* The db header line is short (the conf has at most 16 servers). */
#define HEADER_MAX (64u * 1024u)
/* Bytes of a response kept: the JSON answer and a reason. */
#define RESP_KEEP 511

#define WHY(...)                                                               \
	do {                                                                   \
		if (x->why != NULL && x->why_len > 0)                          \
			snprintf(x->why, x->why_len, __VA_ARGS__);             \
	} while (0)

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* One transfer. */
struct xfer {
	int fd;
	uint64_t size, index, term;
	uint32_t crc;
	char base[RAFT_ADDR_MAX + 64]; /* http(s)://addr/raft/snapshot */
	struct snapxfer_send_options opt;
	const atomic_bool *cancel;
	struct snapxfer_send_stats *st;
	char *why;
	size_t why_len;
	CURL *easy;
	CURLM *multi;
	struct curl_slist *hdrs;
	unsigned char *buf; /* one chunk */
};

/* An answer: HTTP status and what its body says. */
struct answer {
	long status;
	bool parsed; /* the body had an offset */
	uint64_t offset;
	bool ready;
	char text[RESP_KEEP + 1];
	size_t len;
};

static bool cancelled(const struct xfer *x)
{
	return x->cancel != NULL && atomic_load(x->cancel);
}

/* ---- the file ---- */

static int pread_all(int fd, void *buf, size_t n, uint64_t off)
{
	char *p = buf;

	while (n > 0) {
		ssize_t r = pread(fd, p, n, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -EIO; /* shorter than fstat said */
		p += r;
		n -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

static bool json_u64(const cJSON *j, const char *name, uint64_t *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, name);

	if (!cJSON_IsNumber(v) || v->valuedouble < 0 ||
	    v->valuedouble >= 9007199254740992.0 ||
	    v->valuedouble != (double)(uint64_t)v->valuedouble)
		return false;
	*out = (uint64_t)v->valuedouble;
	return true;
}

/* The db header's index and term must be the ones asked for. */
static int check_header(struct xfer *x)
{
	size_t want = x->size < HEADER_MAX ? (size_t)x->size : HEADER_MAX;
	char *line = malloc(want + 1), *nl;
	uint64_t index, term;
	cJSON *j = NULL;
	int err;

	if (line == NULL)
		return -ENOMEM;
	if ((err = pread_all(x->fd, line, want, 0)) != 0)
		goto out_free;
	line[want] = '\0';
	nl = memchr(line, '\n', want);
	if (nl != NULL)
		*nl = '\0';
	j = nl != NULL ? cJSON_Parse(line) : NULL;
	if (j == NULL || !json_u64(j, "index", &index) ||
	    !json_u64(j, "term", &term)) {
		WHY("not a db snapshot: no header line with index and term");
		err = -EINVAL;
	} else if (index != x->index || term != x->term) {
		WHY("the snapshot is now at index %" PRIu64 " term %" PRIu64
		    ", not %" PRIu64 "/%" PRIu64,
		    index, term, x->index, x->term);
		err = -ESTALE;
	}
	cJSON_Delete(j);
out_free:
	free(line);
	return err;
}

static int whole_crc(struct xfer *x)
{
	uint32_t crc = 0;

	for (uint64_t off = 0; off < x->size;) {
		size_t n = x->size - off < x->opt.chunk
			       ? (size_t)(x->size - off)
			       : x->opt.chunk;
		int err = pread_all(x->fd, x->buf, n, off);
		if (err != 0)
			return err;
		crc = kv_crc32c(crc, x->buf, n);
		off += n;
	}
	x->crc = crc;
	return 0;
}

/* ---- one request ---- */

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct answer *a = ud;
	size_t n = size * nmemb, take = RESP_KEEP - a->len;

	if (take > n)
		take = n;
	memcpy(a->text + a->len, ptr, take);
	a->len += take;
	a->text[a->len] = '\0';
	return n;
}

static int setup_curl(struct xfer *x, const char *cluster_id, const char *token)
{
	char line[PEER_ID_MAX + 32];
	const char *fixed[] = {"Content-Type: application/octet-stream",
			       "Expect:"};
	struct curl_slist *t;

	x->easy = curl_easy_init();
	x->multi = curl_multi_init();
	if (x->easy == NULL || x->multi == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < 4; i++) {
		if (i < 2)
			snprintf(line, sizeof(line), "%s", fixed[i]);
		else
			snprintf(line, sizeof(line), "%s: %s",
				 i == 2 ? PEER_HDR_CLUSTER : PEER_HDR_TOKEN,
				 i == 2 ? cluster_id : token);
		if ((t = curl_slist_append(x->hdrs, line)) == NULL)
			return -ENOMEM;
		x->hdrs = t;
	}
	curl_easy_setopt(x->easy, CURLOPT_POST, 1L);
	curl_easy_setopt(x->easy, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(x->easy, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(x->easy, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(x->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(x->easy, CURLOPT_CONNECTTIMEOUT_MS,
			 (long)x->opt.connect_timeout_ms);
	curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, (long)x->opt.timeout_ms);
	curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, on_body);
	peer_tls_curl(x->easy, x->opt.tls);
	explicit_bzero(line, sizeof(line)); /* it held the token */
	return 0;
}

/* POST data[0..len) at off (done: the last chunk). 0 with *a filled (any
 * status), -EIO with why filled (no answer), -ECANCELED. */
static int post(struct xfer *x, uint64_t off, const void *data, size_t len,
		bool done, struct answer *a)
{
	char url[sizeof(x->base) + 160], hdr[64], errbuf[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdrs, *last;
	CURLcode rc = CURLE_OK;
	CURLMsg *msg;
	int running = 1, left, err = 0;
	cJSON *j;

	memset(a, 0, sizeof(*a));
	int n =
	    snprintf(url, sizeof(url),
		     "%s?index=%" PRIu64 "&term=%" PRIu64 "&offset=%" PRIu64,
		     x->base, x->index, x->term, off);
	if (done)
		snprintf(url + n, sizeof(url) - (size_t)n,
			 "&done=1&total=%" PRIu64 "&crc=%08" PRIx32, x->size,
			 x->crc);
	snprintf(hdr, sizeof(hdr), "%s: %08" PRIx32, SNAPXFER_HDR_CRC,
		 kv_crc32c(0, data, len));
	/* The per-chunk header goes last, off the shared list's tail. */
	for (last = x->hdrs; last->next != NULL; last = last->next)
		;
	if ((hdrs = curl_slist_append(NULL, hdr)) == NULL)
		return -ENOMEM;
	last->next = hdrs;
	curl_easy_setopt(x->easy, CURLOPT_URL, url);
	curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->hdrs);
	curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, len ? data : "");
	curl_easy_setopt(x->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, a);
	curl_easy_setopt(x->easy, CURLOPT_ERRORBUFFER, errbuf);
	x->st->posts++;
	if (curl_multi_add_handle(x->multi, x->easy) != CURLM_OK) {
		WHY("curl_multi_add_handle failed");
		err = -EIO;
		goto out_hdr;
	}
	while (running) {
		CURLMcode mc = curl_multi_perform(x->multi, &running);
		if (mc != CURLM_OK) {
			WHY("curl: %s", curl_multi_strerror(mc));
			err = -EIO;
			goto out_remove;
		}
		if (cancelled(x)) {
			err = -ECANCELED;
			goto out_remove;
		}
		if (running)
			curl_multi_poll(x->multi, NULL, 0, CANCEL_POLL_MS,
					NULL);
	}
	while ((msg = curl_multi_info_read(x->multi, &left)) != NULL)
		if (msg->msg == CURLMSG_DONE && msg->easy_handle == x->easy)
			rc = msg->data.result;
	if (rc != CURLE_OK) {
		WHY("%s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
		err = -EIO;
		goto out_remove;
	}
	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &a->status);
	j = cJSON_ParseWithLength(a->text, a->len);
	a->parsed = json_u64(j, "offset", &a->offset);
	a->ready = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "ready"));
	cJSON_Delete(j);
out_remove:
	curl_multi_remove_handle(x->multi, x->easy);
out_hdr:
	last->next = NULL;
	curl_slist_free_all(hdrs);
	curl_easy_setopt(x->easy, CURLOPT_ERRORBUFFER, NULL);
	curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, NULL);
	return err;
}

/* Wait ms, or less if cancelled. */
static void backoff(const struct xfer *x, unsigned ms)
{
	for (unsigned waited = 0; waited < ms && !cancelled(x);
	     waited += CANCEL_POLL_MS) {
		unsigned step =
		    ms - waited < CANCEL_POLL_MS ? ms - waited : CANCEL_POLL_MS;
		struct timespec ts = {step / 1000,
				      (long)(step % 1000) * 1000000L};
		nanosleep(&ts, NULL);
	}
}

/* ---- the transfer ---- */

/* What the answer a means for the next offset. 0: go on from *off; 1:
 * complete; -EAGAIN: a failure worth retrying (with a probe); else fatal. */
static int judge(struct xfer *x, const struct answer *a, uint64_t *off)
{
	for (size_t i = 0; i < a->len; i++)
		if (a->text[i] < 0x20 || a->text[i] > 0x7e)
			((struct answer *)a)->text[i] = ' ';
	if (a->status == 200 && a->ready)
		return 1;
	if ((a->status == 200 || a->status == 409) && a->parsed) {
		/* More than this file holds: a different file under the
		 * same name; send from 0, which cuts it. */
		*off = a->offset <= x->size ? a->offset : 0;
		return 0;
	}
	WHY("HTTP %ld: %s", a->status, a->text);
	if (a->status == 403 || a->status == 401)
		return -EACCES;
	if (a->status == 413)
		return -EFBIG;
	return -EAGAIN;
}

static int run(struct xfer *x)
{
	unsigned failures = 0, wait = x->opt.backoff_min_ms;
	bool known = false, first = true;
	uint64_t off = 0;
	struct answer a;
	int err;

	for (;;) {
		size_t len = 0;
		bool done;

		if (cancelled(x))
			return -ECANCELED;
		if (known) {
			len = x->size - off < x->opt.chunk
				  ? (size_t)(x->size - off)
				  : x->opt.chunk;
			if ((err = pread_all(x->fd, x->buf, len, off)) != 0) {
				WHY("reading the snapshot: %s", strerror(-err));
				return err;
			}
		}
		/* The last chunk carries done; so does a probe when the
		 * receiver already has everything. */
		done = known && off + len == x->size;
		err = post(x, known ? off : 0, x->buf, len, done, &a);
		if (err == 0) {
			x->st->sent += len;
			err = judge(x, &a, &off);
		} else if (err == -EIO) {
			err = -EAGAIN;
		}
		if (err == 1)
			return 0;
		if (err == 0 && a.status == 200) {
			if (x->opt.progress)
				x->opt.progress(x->opt.progress_ctx, off,
						x->size);
			if (first)
				x->st->resumed_at = off;
			first = false;
			known = true;
			failures = 0;
			wait = x->opt.backoff_min_ms;
			continue;
		}
		if (err == 0) { /* 409: a chunk went missing; go on */
			known = true;
			if (++failures < x->opt.max_failures)
				continue;
			WHY("the receiver keeps expecting other offsets");
			return -EIO;
		}
		if (err != -EAGAIN)
			return err;
		x->st->failures++;
		if (++failures >= x->opt.max_failures)
			return -EIO;
		backoff(x, wait);
		wait = wait * 2 < x->opt.backoff_max_ms ? wait * 2
							: x->opt.backoff_max_ms;
		known = false; /* ask again where the receiver stands */
	}
}

int snapxfer_send(const char *path, uint64_t index, uint64_t term,
		  const char *addr, const char *cluster_id, const char *token,
		  const struct snapxfer_send_options *opt,
		  const atomic_bool *cancel, struct snapxfer_send_stats *stats,
		  char *why, size_t why_len)
{
	struct snapxfer_send_stats local;
	struct xfer xs = {.fd = -1,
			  .index = index,
			  .term = term,
			  .cancel = cancel,
			  .why = why,
			  .why_len = why_len},
		    *x = &xs;
	struct stat st;
	int err;

	x->st = stats != NULL ? stats : &local;
	memset(x->st, 0, sizeof(*x->st));
	if (why != NULL && why_len > 0)
		why[0] = '\0';
	if (opt != NULL)
		x->opt = *opt;
	if (x->opt.chunk == 0 || x->opt.chunk > SNAPXFER_MAX_CHUNK)
		x->opt.chunk =
		    x->opt.chunk ? SNAPXFER_MAX_CHUNK : SNAPXFER_CHUNK;
	if (x->opt.connect_timeout_ms == 0)
		x->opt.connect_timeout_ms = DEF_CONNECT_MS;
	if (x->opt.timeout_ms == 0)
		x->opt.timeout_ms = DEF_TIMEOUT_MS;
	if (x->opt.backoff_min_ms == 0)
		x->opt.backoff_min_ms = DEF_BACKOFF_MIN_MS;
	if (x->opt.backoff_max_ms == 0)
		x->opt.backoff_max_ms = DEF_BACKOFF_MAX_MS;
	if (x->opt.max_failures == 0)
		x->opt.max_failures = DEF_MAX_FAILURES;
	if (!cluster_addr_valid(addr) || !peer_id_valid(cluster_id) ||
	    !peer_id_valid(token) || index == 0) {
		WHY("bad address, cluster id, token or index");
		return -EINVAL;
	}
	snprintf(x->base, sizeof(x->base), "%s://%s%s",
		 peer_tls_scheme(x->opt.tls), addr, SNAPXFER_PATH);
	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != CURLE_OK) {
		WHY("curl_global_init failed");
		return -EIO;
	}
	x->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (x->fd < 0) {
		err = -errno;
		WHY("%s: %s", path, strerror(errno));
		return err;
	}
	if (fstat(x->fd, &st) != 0) {
		err = -errno;
		goto out_close;
	}
	x->size = x->st->size = (uint64_t)st.st_size;
	x->buf = malloc(x->opt.chunk);
	if (x->buf == NULL) {
		err = -ENOMEM;
		goto out_close;
	}
	if ((err = check_header(x)) != 0 || (err = whole_crc(x)) != 0)
		goto out_free;
	if ((err = setup_curl(x, cluster_id, token)) != 0)
		goto out_curl;
	err = run(x);
out_curl:
	curl_slist_free_all(x->hdrs);
	if (x->multi != NULL)
		curl_multi_cleanup(x->multi);
	if (x->easy != NULL)
		curl_easy_cleanup(x->easy);
out_free:
	free(x->buf);
out_close:
	close(x->fd);
	return err;
}
