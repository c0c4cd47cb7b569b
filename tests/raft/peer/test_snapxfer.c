/* test_snapxfer.c - the snapshot transfer (raft/peer/snapxfer.c, the
 * receiver, and raft/peer/snapxfer_send.c, the sender).
 *
 * The receiver is driven directly (chunks in order, a lost chunk, a bad
 * checksum, a newer snapshot, a restart of the receiving process, a
 * truncated or damaged final file) and through a tiny libmicrohttpd server
 * on 127.0.0.1 that does what the node's handler does (token, cluster,
 * query, CRC header, reply) and can lose, corrupt or hold a request, so the
 * sender is tested against real sockets (the daemon and a dead port come
 * from tests/lib/fakepeer.h). Waits poll with a deadline. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <microhttpd.h>

#include "fakepeer.h"
#include "kv.h"
#include "peer.h"
#include "snapxfer.h"

#define CLUSTER	    "test-cluster"
#define TOKEN	    "t0ken-Secret"
#define DEADLINE_MS FAKEPEER_DEADLINE_MS
#define CHUNK	    8192

/* ---- files ---- */

struct fixture {
	char src[64];	     /* the sender's data dir */
	char dst[64];	     /* the receiver's data dir */
	char db[128];	     /* src/db.jsonl */
	unsigned char *data; /* its content */
	size_t size;
	struct snapxfer_recv *r;
};

/* A db-like file: the header for (index, term), then n lines. */
static void make_db(struct fixture *f, uint64_t index, uint64_t term,
		    size_t lines)
{
	size_t cap = 128 + lines * 64, n;
	int fd;

	free(f->data);
	f->data = malloc(cap);
	assert_non_null(f->data);
	n = (size_t)snprintf((char *)f->data, cap,
			     "{\"kvfs\":\"db\",\"version\":1,\"index\":%" PRIu64
			     ",\"term\":%" PRIu64
			     ",\"count\":%zu,\"conf\":null}\n",
			     index, term, lines);
	for (size_t i = 0; i < lines; i++)
		n += (size_t)snprintf((char *)f->data + n, cap - n,
				      "{\"k\":\"key%06zu\",\"v\":\"%" PRIu64
				      "-%zu\",\"cr\":1,\"mr\":1}\n",
				      i, index, i * 7919 % 1000);
	f->size = n;
	fd = open(f->db, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, f->data, n), (ssize_t)n);
	close(fd);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->src, sizeof(f->src), "/tmp/test_snapxfer_s_XXXXXX");
	snprintf(f->dst, sizeof(f->dst), "/tmp/test_snapxfer_d_XXXXXX");
	assert_non_null(mkdtemp(f->src));
	assert_non_null(mkdtemp(f->dst));
	snprintf(f->db, sizeof(f->db), "%s/db.jsonl", f->src);
	make_db(f, 7, 2, 2000); /* about 90 KB: a dozen chunks */
	assert_int_equal(snapxfer_recv_new(f->dst, &f->r), 0);
	*state = f;
	return 0;
}

static void rm(const char *dir, const char *name)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	unlink(p);
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	snapxfer_recv_free(f->r);
	rm(f->src, "db.jsonl");
	rm(f->dst, SNAPXFER_INCOMING);
	rm(f->dst, SNAPXFER_META);
	rm(f->dst, SNAPXFER_READY);
	rmdir(f->src);
	rmdir(f->dst);
	free(f->data);
	free(f);
	return 0;
}

/* The content of dst/name, or NULL; *len its size. */
static unsigned char *slurp(const char *dir, const char *name, size_t *len)
{
	char p[256];
	struct stat st;
	unsigned char *buf;
	int fd;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	fd = open(p, O_RDONLY);
	if (fd < 0)
		return NULL;
	assert_int_equal(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	assert_non_null(buf);
	assert_int_equal(read(fd, buf, (size_t)st.st_size), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

static bool exists(const char *dir, const char *name)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return access(p, F_OK) == 0;
}

static void assert_ready_file_is(struct fixture *f)
{
	size_t len;
	unsigned char *got = slurp(f->dst, SNAPXFER_READY, &len);

	assert_non_null(got);
	assert_int_equal(len, f->size);
	assert_memory_equal(got, f->data, len);
	free(got);
	assert_false(exists(f->dst, SNAPXFER_INCOMING));
	assert_false(exists(f->dst, SNAPXFER_META));
}

/* ---- the receiver, driven directly ---- */

/* Give the receiver data[off, off+len) of snapshot (index, term); done
 * announces the whole of f->data. */
static int give(struct fixture *f, uint64_t index, uint64_t term, uint64_t off,
		size_t len, bool done, uint64_t *next,
		struct snapxfer_ready *ready)
{
	struct snapxfer_chunk c = {.index = index,
				   .term = term,
				   .offset = off,
				   .data = f->data + off,
				   .len = len,
				   .done = done,
				   .total = f->size,
				   .file_crc = kv_crc32c(0, f->data, f->size)};
	char why[200];

	c.crc = kv_crc32c(0, c.data, len);
	return snapxfer_recv_chunk(f->r, &c, next, ready, why, sizeof(why));
}

/* Send everything from off in CHUNK pieces; the last result. */
static int give_rest(struct fixture *f, uint64_t index, uint64_t term,
		     uint64_t off, struct snapxfer_ready *ready)
{
	uint64_t next;
	int err;

	for (;;) {
		size_t len = f->size - off < CHUNK ? f->size - off : CHUNK;
		bool done = off + len == f->size;

		err = give(f, index, term, off, len, done, &next, ready);
		if (err != 0 || done)
			return err;
		assert_int_equal(next, off + len);
		off = next;
	}
}

static void test_receiver_assembles_a_snapshot_from_chunks(void **state)
{
	struct fixture *f = *state;
	struct snapxfer_ready ready;
	uint64_t next = 99;

	assert_int_equal(give(f, 7, 2, 0, 0, false, &next, NULL), 0);
	assert_int_equal(next, 0);
	assert_true(exists(f->dst, SNAPXFER_META));
	assert_int_equal(give_rest(f, 7, 2, 0, &ready), 1);
	assert_int_equal(ready.index, 7);
	assert_int_equal(ready.term, 2);
	assert_int_equal(ready.size, f->size);
	assert_non_null(strstr(ready.path, SNAPXFER_READY));
	assert_ready_file_is(f);
}

static void
test_receiver_refuses_a_chunk_past_its_end_with_the_offset_it_expects(
    void **state)
{
	struct fixture *f = *state;
	struct snapxfer_ready ready;
	uint64_t next;

	assert_int_equal(give(f, 7, 2, 0, CHUNK, false, &next, NULL), 0);
	assert_int_equal(give(f, 7, 2, CHUNK, CHUNK, false, &next, NULL), 0);
	/* The third chunk is lost; the fourth is refused. */
	assert_int_equal(give(f, 7, 2, 3 * CHUNK, CHUNK, false, &next, NULL),
			 -ERANGE);
	assert_int_equal(next, 2 * CHUNK);
	/* A resent chunk overwrites itself, and the file ends after it. */
	assert_int_equal(give(f, 7, 2, 0, CHUNK, false, &next, NULL), 0);
	assert_int_equal(next, CHUNK);
	assert_int_equal(give_rest(f, 7, 2, CHUNK, &ready), 1);
	assert_ready_file_is(f);
}

static void test_receiver_refuses_a_chunk_whose_checksum_fails(void **state)
{
	struct fixture *f = *state;
	struct snapxfer_chunk c = {
	    .index = 7, .term = 2, .offset = 0, .data = f->data, .len = CHUNK};
	struct snapxfer_ready ready;
	uint64_t next;
	char why[200] = "";

	c.crc = kv_crc32c(0, f->data, CHUNK) ^ 1;
	assert_int_equal(
	    snapxfer_recv_chunk(f->r, &c, &next, NULL, why, sizeof(why)),
	    -EBADMSG);
	assert_non_null(strstr(why, "CRC"));
	assert_int_equal(next, 0);
	assert_int_equal(snapxfer_http_status(-EBADMSG), 400);
	/* Nothing was written: the same chunk, intact, starts the file. */
	assert_int_equal(give(f, 7, 2, 0, CHUNK, false, &next, NULL), 0);
	assert_int_equal(next, CHUNK);
	assert_int_equal(give_rest(f, 7, 2, CHUNK, &ready), 1);
	assert_ready_file_is(f);
}

static void test_a_chunk_for_another_snapshot_restarts_the_file(void **state)
{
	struct fixture *f = *state;
	struct snapxfer_ready ready;
	uint64_t next;

	assert_int_equal(give(f, 7, 2, 0, CHUNK, false, &next, NULL), 0);
	assert_int_equal(give(f, 7, 2, CHUNK, CHUNK, false, &next, NULL), 0);
	/* The leader moved on to a newer snapshot; it resumes at 0. */
	make_db(f, 12, 3, 2500);
	assert_int_equal(give(f, 12, 3, 2 * CHUNK, CHUNK, false, &next, NULL),
			 -ERANGE);
	assert_int_equal(next, 0);
	assert_int_equal(give_rest(f, 12, 3, 0, &ready), 1);
	assert_int_equal(ready.index, 12);
	assert_int_equal(ready.term, 3);
	assert_ready_file_is(f);
}

static void test_receiver_resumes_after_its_process_restarts(void **state)
{
	struct fixture *f = *state;
	struct snapxfer_ready ready;
	uint64_t next;

	assert_int_equal(give(f, 7, 2, 0, CHUNK, false, &next, NULL), 0);
	assert_int_equal(give(f, 7, 2, CHUNK, CHUNK, false, &next, NULL), 0);
	snapxfer_recv_free(f->r);
	assert_int_equal(snapxfer_recv_new(f->dst, &f->r), 0);
	assert_int_equal(give(f, 7, 2, 0, 0, false, &next, NULL), 0);
	assert_int_equal(next, 2 * CHUNK);
	assert_int_equal(give_rest(f, 7, 2, 2 * CHUNK, &ready), 1);
	assert_ready_file_is(f);
}

static void
test_a_restarted_receiver_without_its_sidecar_starts_over(void **state)
{
	struct fixture *f = *state;
	uint64_t next;

	assert_int_equal(give(f, 7, 2, 0, CHUNK, false, &next, NULL), 0);
	snapxfer_recv_free(f->r);
	rm(f->dst, SNAPXFER_META);
	assert_int_equal(snapxfer_recv_new(f->dst, &f->r), 0);
	assert_false(exists(f->dst, SNAPXFER_INCOMING));
	assert_int_equal(give(f, 7, 2, CHUNK, CHUNK, false, &next, NULL),
			 -ERANGE);
	assert_int_equal(next, 0);
}

static void test_final_call_refuses_a_truncated_or_damaged_file(void **state)
{
	struct fixture *f = *state;
	struct snapxfer_ready ready;
	uint64_t next, half = f->size / 2;
	char p[256];
	int fd;

	/* done while bytes are missing: resume where the file ends. */
	assert_int_equal(give(f, 7, 2, 0, CHUNK, false, &next, NULL), 0);
	assert_int_equal(give(f, 7, 2, CHUNK, 0, true, &next, &ready), -ERANGE);
	assert_int_equal(next, CHUNK);
	assert_false(exists(f->dst, SNAPXFER_READY));

	/* The file lost its tail behind the receiver's back (a crash):
	 * the whole-file check refuses it and the transfer starts over. */
	assert_int_equal(give(f, 7, 2, CHUNK, half - CHUNK, false, &next, NULL),
			 0);
	snapxfer_recv_free(f->r);
	snprintf(p, sizeof(p), "%s/%s", f->dst, SNAPXFER_INCOMING);
	assert_int_equal(truncate(p, (off_t)(half - 100)), 0);
	fd = open(p, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "garbage garbage garbage", 23), 23);
	close(fd);
	assert_int_equal(snapxfer_recv_new(f->dst, &f->r), 0);
	assert_int_equal(give(f, 7, 2, 0, 0, false, &next, NULL), 0);
	assert_int_equal(next, half - 100 + 23);
	assert_int_equal(
	    give(f, 7, 2, next, f->size - next, true, &next, &ready), -EBADMSG);
	assert_int_equal(next, 0);
	assert_false(exists(f->dst, SNAPXFER_READY));
	assert_int_equal(give_rest(f, 7, 2, 0, &ready), 1);
	assert_ready_file_is(f);
}

static void test_a_repeated_final_call_is_answered_again(void **state)
{
	struct fixture *f = *state;
	struct snapxfer_ready ready;
	uint64_t next;

	assert_int_equal(give_rest(f, 7, 2, 0, &ready), 1);
	/* The answer was lost; the sender probes, then repeats done. */
	assert_int_equal(give(f, 7, 2, 0, 0, false, &next, NULL), 0);
	assert_int_equal(next, f->size);
	assert_int_equal(give(f, 7, 2, f->size, 0, true, &next, &ready), 1);
	assert_int_equal(ready.size, f->size);
	assert_ready_file_is(f);
}

static void test_receiver_refuses_a_chunk_over_the_limit(void **state)
{
	struct fixture *f = *state;
	unsigned char *big = calloc(1, SNAPXFER_MAX_CHUNK + 1);
	struct snapxfer_chunk c = {
	    .index = 7, .term = 2, .data = big, .len = SNAPXFER_MAX_CHUNK + 1};
	uint64_t next;

	assert_non_null(big);
	c.crc = kv_crc32c(0, big, c.len);
	assert_int_equal(snapxfer_recv_chunk(f->r, &c, &next, NULL, NULL, 0),
			 -EFBIG);
	assert_int_equal(snapxfer_http_status(-EFBIG), 413);
	free(big);
}

static void test_parameters_are_parsed_strictly(void **state)
{
	struct snapxfer_params p = {
	    .index = "5", .term = "2", .offset = "0", .chunk_crc = "00000000"};
	struct snapxfer_chunk c;
	char why[120];

	(void)state;
	assert_int_equal(snapxfer_parse(&p, "", 0, &c, why, sizeof(why)), 0);
	assert_int_equal(c.index, 5);
	assert_false(c.done);
	p.done = "1";
	assert_int_equal(snapxfer_parse(&p, "", 0, &c, why, sizeof(why)),
			 -EINVAL);
	p.total = "10";
	p.crc = "DEADbeef";
	assert_int_equal(snapxfer_parse(&p, "", 0, &c, why, sizeof(why)), 0);
	assert_true(c.done);
	assert_int_equal(c.total, 10);
	assert_int_equal(c.file_crc, 0xdeadbeef);
	p.done = NULL;
	assert_int_equal(snapxfer_parse(&p, "", 0, &c, why, sizeof(why)),
			 -EINVAL);
	p.total = p.crc = NULL;
	p.index = "0";
	assert_int_equal(snapxfer_parse(&p, "", 0, &c, why, sizeof(why)),
			 -EINVAL);
	p.index = "-1";
	assert_int_equal(snapxfer_parse(&p, "", 0, &c, why, sizeof(why)),
			 -EINVAL);
	p.index = "5";
	p.offset = " 1";
	assert_int_equal(snapxfer_parse(&p, "", 0, &c, why, sizeof(why)),
			 -EINVAL);
	p.offset = "99999999999999999999";
	assert_int_equal(snapxfer_parse(&p, "", 0, &c, why, sizeof(why)),
			 -EINVAL);
	p.offset = "1";
	p.chunk_crc = "1234567";
	assert_int_equal(snapxfer_parse(&p, "", 0, &c, why, sizeof(why)),
			 -EINVAL);
	p.chunk_crc = NULL;
	assert_int_equal(snapxfer_parse(&p, "", 0, &c, why, sizeof(why)),
			 -EINVAL);
}

/* ---- the sender, against a receiver behind a real HTTP server ---- */

#define MAX_SEEN 1024

struct server {
	struct MHD_Daemon *d;
	unsigned port;
	struct snapxfer_recv *r;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	/* Faults, by the number of the data chunk (len > 0, from 1). */
	unsigned lose_before; /* never reaches the receiver: 503 */
	unsigned lose_after;  /* taken, but the answer is a 503 */
	unsigned corrupt;     /* a byte flipped on the way */
	bool hold;	      /* park every request until released */
	unsigned held;	      /* requests parked now */
	/* What arrived. */
	unsigned chunks;
	uint64_t offsets[MAX_SEEN]; /* of data chunks, in order */
	unsigned requests;
};

struct upload {
	unsigned char *p;
	size_t len, cap;
	bool too_big;
};

static const char *arg(struct MHD_Connection *c, const char *name)
{
	return MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status,
			     const char *text)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(
	    strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
	enum MHD_Result ret = MHD_queue_response(c, status, resp);

	MHD_destroy_response(resp);
	return ret;
}

/* What the node's handler for POST /raft/snapshot does. */
static enum MHD_Result handle(struct server *s, struct MHD_Connection *c,
			      struct upload *up)
{
	struct snapxfer_params p = {.index = arg(c, "index"),
				    .term = arg(c, "term"),
				    .offset = arg(c, "offset"),
				    .done = arg(c, "done"),
				    .total = arg(c, "total"),
				    .crc = arg(c, "crc"),
				    .chunk_crc = MHD_lookup_connection_value(
					c, MHD_HEADER_KIND, SNAPXFER_HDR_CRC)};
	const char *tok =
	    MHD_lookup_connection_value(c, MHD_HEADER_KIND, PEER_HDR_TOKEN);
	const char *cl =
	    MHD_lookup_connection_value(c, MHD_HEADER_KIND, PEER_HDR_CLUSTER);
	struct snapxfer_chunk chunk;
	char why[200] = "", body[400];
	uint64_t next = 0;
	unsigned n = 0;
	int err;

	if (!peer_token_equal(tok, TOKEN) || cl == NULL ||
	    strcmp(cl, CLUSTER) != 0)
		return reply(c, 403, "{\"error\":\"bad token\"}");
	if (up->too_big)
		return reply(c, 413, "{\"error\":\"too big\"}");
	pthread_mutex_lock(&s->mu);
	s->requests++;
	s->held++;
	pthread_cond_broadcast(&s->cv);
	while (s->hold)
		pthread_cond_wait(&s->cv, &s->mu);
	s->held--;
	if (up->len > 0) {
		n = ++s->chunks;
		if (n <= MAX_SEEN)
			s->offsets[n - 1] =
			    strtoull(p.offset ? p.offset : "0", NULL, 10);
		if (n == s->corrupt)
			up->p[up->len / 2] ^= 0x20;
	}
	pthread_mutex_unlock(&s->mu);
	if (n != 0 && n == s->lose_before)
		return reply(c, 503, "{\"error\":\"lost\"}");
	err = snapxfer_parse(&p, up->p, up->len, &chunk, why, sizeof(why));
	if (err == 0)
		err = snapxfer_recv_chunk(s->r, &chunk, &next, NULL, why,
					  sizeof(why));
	if (n != 0 && n == s->lose_after)
		return reply(c, 503, "{\"error\":\"answer lost\"}");
	snapxfer_reply(err, next, why, body, sizeof(body));
	return reply(c, (unsigned)snapxfer_http_status(err), body);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
				  const char *url, const char *method,
				  const char *version, const char *data,
				  size_t *size, void **con_cls)
{
	struct upload *up = *con_cls;

	(void)version;
	(void)method;
	(void)url;
	if (up == NULL) {
		up = calloc(1, sizeof(*up));
		if (up == NULL)
			return MHD_NO;
		*con_cls = up;
		return MHD_YES;
	}
	if (*size > 0) {
		if (up->len + *size > SNAPXFER_MAX_CHUNK)
			up->too_big = true;
		if (!up->too_big) {
			if (up->len + *size > up->cap) {
				size_t cap = (up->len + *size) * 2;
				unsigned char *q = realloc(up->p, cap);
				if (q == NULL)
					return MHD_NO;
				up->p = q;
				up->cap = cap;
			}
			memcpy(up->p + up->len, data, *size);
			up->len += *size;
		}
		*size = 0;
		return MHD_YES;
	}
	return handle(cls, c, up);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct upload *up = *con_cls;

	(void)cls;
	(void)c;
	(void)toe;
	if (up != NULL) {
		free(up->p);
		free(up);
	}
	*con_cls = NULL;
}

static struct server *server_start(struct snapxfer_recv *r)
{
	struct server *s = calloc(1, sizeof(*s));

	assert_non_null(s);
	s->r = r;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	s->d = fakepeer_mhd_start(-1, on_request, on_completed, s, &s->port);
	return s;
}

static void server_stop(struct server *s)
{
	pthread_mutex_lock(&s->mu);
	s->hold = false;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	MHD_stop_daemon(s->d);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s);
}

static const struct snapxfer_send_options fast = {
    .chunk = CHUNK, .backoff_min_ms = 1, .backoff_max_ms = 20};

static int send_to(struct fixture *f, struct server *s, uint64_t index,
		   uint64_t term, const char *token, const atomic_bool *cancel,
		   struct snapxfer_send_stats *st, char *why, size_t why_len)
{
	char addr[32];

	snprintf(addr, sizeof(addr), "127.0.0.1:%u", s->port);
	return snapxfer_send(f->db, index, term, addr, CLUSTER, token, &fast,
			     cancel, st, why, why_len);
}

static unsigned chunks_of(const struct fixture *f)
{
	return (unsigned)((f->size + CHUNK - 1) / CHUNK);
}

static void test_sender_moves_a_whole_snapshot(void **state)
{
	struct fixture *f = *state;
	struct server *s = server_start(f->r);
	struct snapxfer_send_stats st;
	char why[200];

	assert_int_equal(
	    send_to(f, s, 7, 2, TOKEN, NULL, &st, why, sizeof(why)), 0);
	assert_ready_file_is(f);
	assert_int_equal(st.size, f->size);
	assert_int_equal(st.sent, f->size);
	assert_int_equal(st.failures, 0);
	assert_int_equal(s->chunks, chunks_of(f));
	assert_int_equal(st.posts, chunks_of(f) + 1); /* and the probe */
	server_stop(s);
}

static void
test_sender_resumes_after_a_lost_chunk_or_a_lost_answer(void **state)
{
	struct fixture *f = *state;
	struct server *s = server_start(f->r);
	struct snapxfer_send_stats st;
	char why[200];

	s->lose_before = 4;
	s->lose_after = 7;
	assert_int_equal(
	    send_to(f, s, 7, 2, TOKEN, NULL, &st, why, sizeof(why)), 0);
	assert_ready_file_is(f);
	assert_int_equal(st.failures, 2);
	/* Chunk 4 went again at its offset, not from the start... */
	assert_int_equal(s->offsets[3], 3 * CHUNK);
	assert_int_equal(s->offsets[4], 3 * CHUNK);
	/* ...and after the lost answer the probe found chunk 7 had landed. */
	assert_int_equal(s->offsets[6], 5 * CHUNK);
	assert_int_equal(s->offsets[7], 6 * CHUNK);
	assert_int_equal(s->chunks, chunks_of(f) + 1);
	server_stop(s);
}

static void test_sender_resends_a_chunk_corrupted_on_the_way(void **state)
{
	struct fixture *f = *state;
	struct server *s = server_start(f->r);
	struct snapxfer_send_stats st;
	char why[200];

	s->corrupt = 3;
	assert_int_equal(
	    send_to(f, s, 7, 2, TOKEN, NULL, &st, why, sizeof(why)), 0);
	assert_ready_file_is(f);
	assert_int_equal(st.failures, 1);
	assert_int_equal(s->offsets[2], 2 * CHUNK);
	assert_int_equal(s->offsets[3], 2 * CHUNK);
	server_stop(s);
}

static void test_sender_picks_up_where_a_receiver_left_off(void **state)
{
	struct fixture *f = *state;
	struct server *s;
	struct snapxfer_send_stats st;
	uint64_t next;
	char why[200];

	/* A previous transfer got 3 chunks in before the receiver's
	 * process restarted. */
	for (unsigned i = 0; i < 3; i++)
		assert_int_equal(
		    give(f, 7, 2, i * CHUNK, CHUNK, false, &next, NULL), 0);
	snapxfer_recv_free(f->r);
	assert_int_equal(snapxfer_recv_new(f->dst, &f->r), 0);
	s = server_start(f->r);
	assert_int_equal(
	    send_to(f, s, 7, 2, TOKEN, NULL, &st, why, sizeof(why)), 0);
	assert_ready_file_is(f);
	assert_int_equal(st.resumed_at, 3 * CHUNK);
	assert_int_equal(s->offsets[0], 3 * CHUNK);
	assert_int_equal(st.sent, f->size - 3 * CHUNK);
	server_stop(s);
}

static void test_sender_restarts_the_receiver_for_a_newer_snapshot(void **state)
{
	struct fixture *f = *state;
	struct server *s = server_start(f->r);
	struct snapxfer_send_stats st;
	struct snapxfer_ready ready;
	uint64_t next;
	char why[200];

	for (unsigned i = 0; i < 3; i++)
		assert_int_equal(
		    give(f, 7, 2, i * CHUNK, CHUNK, false, &next, NULL), 0);
	make_db(f, 20, 4, 3000);
	assert_int_equal(
	    send_to(f, s, 20, 4, TOKEN, NULL, &st, why, sizeof(why)), 0);
	assert_ready_file_is(f);
	assert_int_equal(st.resumed_at, 0);
	assert_int_equal(s->offsets[0], 0);
	/* It is the newer one that is ready. */
	assert_int_equal(give(f, 20, 4, f->size, 0, true, &next, &ready), 1);
	assert_int_equal(ready.index, 20);
	server_stop(s);
}

static void test_sender_refuses_a_file_that_is_another_snapshot(void **state)
{
	struct fixture *f = *state;
	struct server *s = server_start(f->r);
	char why[200];

	assert_int_equal(
	    send_to(f, s, 6, 2, TOKEN, NULL, NULL, why, sizeof(why)), -ESTALE);
	assert_non_null(strstr(why, "index 7"));
	assert_int_equal(s->requests, 0);
	server_stop(s);
}

/* The address is a member address (cluster_addr_valid): a port out of
 * range or a host that would bend the URL is refused before any request. */
static void test_sender_refuses_a_bad_address(void **state)
{
	static const char *const bad[] = {"127.0.0.1:99999", "127.0.0.1:0",
					  "127.0.0.1", "h@127.0.0.1:80",
					  "h/x:80"};
	struct fixture *f = *state;
	struct snapxfer_send_stats st;
	char why[200];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(snapxfer_send(f->db, 7, 2, bad[i], CLUSTER,
					       TOKEN, &fast, NULL, &st, why,
					       sizeof(why)),
				 -EINVAL);
		assert_int_equal(st.posts, 0);
		assert_non_null(strstr(why, "bad address"));
	}
}

static void test_sender_gives_up_at_once_on_a_wrong_token(void **state)
{
	struct fixture *f = *state;
	struct server *s = server_start(f->r);
	struct snapxfer_send_stats st;
	char why[200];

	assert_int_equal(
	    send_to(f, s, 7, 2, "wrong", NULL, &st, why, sizeof(why)), -EACCES);
	assert_int_equal(st.posts, 1);
	assert_non_null(strstr(why, "403"));
	server_stop(s);
}

static void test_sender_gives_up_on_a_peer_that_is_down(void **state)
{
	struct fixture *f = *state;
	struct snapxfer_send_options o = fast;
	struct snapxfer_send_stats st;
	char why[200];

	char addr[32];

	/* Nothing listens there: connections are refused. */
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", fakepeer_dead_port());
	o.max_failures = 3;
	assert_int_equal(snapxfer_send(f->db, 7, 2, addr, CLUSTER, TOKEN, &o,
				       NULL, &st, why, sizeof(why)),
			 -EIO);
	assert_int_equal(st.failures, 3);
	assert_int_equal(st.posts, 3);
}

struct bg {
	struct fixture *f;
	struct server *s;
	atomic_bool cancel;
	int result;
};

static void *bg_send(void *arg)
{
	struct bg *b = arg;
	char why[200];

	b->result = send_to(b->f, b->s, 7, 2, TOKEN, &b->cancel, NULL, why,
			    sizeof(why));
	return NULL;
}

static void test_sender_stops_when_cancelled_mid_request(void **state)
{
	struct fixture *f = *state;
	struct server *s = server_start(f->r);
	struct bg b = {.f = f, .s = s, .result = 1};
	uint64_t deadline = kv_mono_ms() + DEADLINE_MS;
	pthread_t t;

	atomic_init(&b.cancel, false);
	s->hold = true;
	assert_int_equal(pthread_create(&t, NULL, bg_send, &b), 0);
	pthread_mutex_lock(&s->mu);
	while (s->held == 0 && kv_mono_ms() < deadline) {
		pthread_mutex_unlock(&s->mu);
		fakepeer_nap();
		pthread_mutex_lock(&s->mu);
	}
	assert_int_equal(s->held, 1);
	pthread_mutex_unlock(&s->mu);
	atomic_store(&b.cancel, true);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(b.result, -ECANCELED);
	assert_false(exists(f->dst, SNAPXFER_READY));
	server_stop(s);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_receiver_assembles_a_snapshot_from_chunks),
	    T(test_receiver_refuses_a_chunk_past_its_end_with_the_offset_it_expects),
	    T(test_receiver_refuses_a_chunk_whose_checksum_fails),
	    T(test_a_chunk_for_another_snapshot_restarts_the_file),
	    T(test_receiver_resumes_after_its_process_restarts),
	    T(test_a_restarted_receiver_without_its_sidecar_starts_over),
	    T(test_final_call_refuses_a_truncated_or_damaged_file),
	    T(test_a_repeated_final_call_is_answered_again),
	    T(test_receiver_refuses_a_chunk_over_the_limit),
	    T(test_parameters_are_parsed_strictly),
	    T(test_sender_moves_a_whole_snapshot),
	    T(test_sender_resumes_after_a_lost_chunk_or_a_lost_answer),
	    T(test_sender_resends_a_chunk_corrupted_on_the_way),
	    T(test_sender_picks_up_where_a_receiver_left_off),
	    T(test_sender_restarts_the_receiver_for_a_newer_snapshot),
	    T(test_sender_refuses_a_file_that_is_another_snapshot),
	    T(test_sender_refuses_a_bad_address),
	    T(test_sender_gives_up_at_once_on_a_wrong_token),
	    T(test_sender_gives_up_on_a_peer_that_is_down),
	    T(test_sender_stops_when_cancelled_mid_request),
	};
	return cmocka_run_group_tests_name("snapxfer", tests, NULL, NULL);
}
