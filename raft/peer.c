/* peer.c - the peer senders: one thread and one bounded queue per peer.
 *
 * peers_send copies messages into the destination's queue and returns at
 * once; the peer's thread takes everything queued (up to a batch size),
 * encodes it as one document (msg.c) and POSTs it over a libcurl handle
 * that it keeps, so the connection stays alive between batches. The POST
 * runs in a multi handle that peers_remove/peers_free can wake, so stopping
 * never waits for a network timeout. Raft tolerates loss, so a full queue
 * drops old messages and a failed batch is not retried (the core resends
 * appends); failures back off exponentially. Receiving is in msg.c and
 * http*.c; the protocol is in docs/peer-protocol.md. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "store.h"
#include "transport.h"

#define DEF_MAX_QUEUE	    1024
#define DEF_MAX_QUEUE_BYTES (64u * 1024u * 1024u)
#define DEF_BATCH_BYTES	    (4u * 1024u * 1024u)
#define DEF_CONNECT_MS	    1000
#define DEF_TIMEOUT_MS	    10000
#define DEF_BACKOFF_MIN_MS  10
#define DEF_BACKOFF_MAX_MS  1000
/* Bytes of an error response kept for last_err. */
#define RESP_KEEP 120

/* One queued message, a deep copy. */
struct qmsg {
	struct qmsg *next;
	size_t bytes; /* entry data it holds */
	struct raft_message m;
};

struct peer {
	struct peer_set *set;
	uint64_t id;
	char addr[RAFT_ADDR_MAX];
	char url[RAFT_ADDR_MAX + 32];
	pthread_t thread;
	CURLM *multi; /* outlives the thread, so a stopper may wake it */
	atomic_bool stop;

	pthread_mutex_t mu; /* guards everything below */
	pthread_cond_t cv;  /* a message arrived, or stop */
	struct qmsg *head, *tail;
	size_t queued, qbytes;
	struct peer_info info;
};

struct peer_set {
	char *cluster_id;
	char *token;
	uint64_t self;
	struct peer_options opt;

	pthread_mutex_t mu; /* guards the array; held while enqueueing */
	struct peer **peers;
	size_t n, cap;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static uint64_t now_ms(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* "host:port", "[v6]:port": no characters that could bend the URL. */
static bool addr_valid(const char *a)
{
	size_t n = strlen(a);

	if (n == 0 || n >= RAFT_ADDR_MAX || strchr(a, ':') == NULL)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((a[i] >= 'a' && a[i] <= 'z') ||
		      (a[i] >= 'A' && a[i] <= 'Z') ||
		      (a[i] >= '0' && a[i] <= '9') || strchr(".-:[]_", a[i])))
			return false;
	return true;
}

/* ---- The queue (peer->mu held) ---- */

static void qmsg_free(struct qmsg *q)
{
	for (size_t i = 0; i < q->m.n_entries; i++)
		free(q->m.entries[i].data);
	free(q->m.entries);
	free(q);
}

static struct qmsg *qmsg_copy(const struct raft_message *m)
{
	struct qmsg *q = calloc(1, sizeof(*q));

	if (q == NULL)
		return NULL;
	q->m = *m;
	q->m.entries = NULL;
	q->m.n_entries = 0;
	if (m->n_entries == 0)
		return q;
	q->m.entries = calloc(m->n_entries, sizeof(*m->entries));
	if (q->m.entries == NULL)
		goto err_free;
	for (size_t i = 0; i < m->n_entries; i++) {
		const struct raft_entry *e = &m->entries[i];
		struct raft_entry *c = &q->m.entries[i];

		*c = *e;
		c->data = NULL;
		q->m.n_entries = i + 1;
		if (e->len > 0) {
			c->data = malloc(e->len);
			if (c->data == NULL)
				goto err_free;
			memcpy(c->data, e->data, e->len);
			q->bytes += e->len;
		}
	}
	return q;

err_free:
	qmsg_free(q);
	return NULL;
}

/* Appends and heartbeats (and their answers) are superseded by the next
 * ones or resent by the core; votes, reads, snapshots and TimeoutNow are
 * rarer and worth keeping longer. */
static bool droppable(enum raft_msg_type t)
{
	return t == RAFT_MSG_APPEND || t == RAFT_MSG_HEARTBEAT ||
	       t == RAFT_MSG_APPEND_RESP || t == RAFT_MSG_HEARTBEAT_RESP;
}

/* Drop the oldest droppable message, else the oldest. */
static void queue_drop_one(struct peer *p)
{
	struct qmsg *prev = NULL, *q = p->head;

	while (q != NULL && !droppable(q->m.type)) {
		prev = q;
		q = q->next;
	}
	if (q == NULL) {
		prev = NULL;
		q = p->head;
	}
	if (prev == NULL)
		p->head = q->next;
	else
		prev->next = q->next;
	if (p->tail == q)
		p->tail = prev;
	p->queued--;
	p->qbytes -= q->bytes;
	p->info.dropped++;
	qmsg_free(q);
}

static void queue_push(struct peer *p, struct qmsg *q)
{
	const struct peer_options *o = &p->set->opt;

	while (p->queued > 0 && (p->queued >= o->max_queue ||
				 p->qbytes + q->bytes > o->max_queue_bytes))
		queue_drop_one(p);
	if (p->tail != NULL)
		p->tail->next = q;
	else
		p->head = q;
	p->tail = q;
	p->queued++;
	p->qbytes += q->bytes;
}

static void queue_clear(struct peer *p)
{
	while (p->head != NULL) {
		struct qmsg *q = p->head;
		p->head = q->next;
		qmsg_free(q);
	}
	p->tail = NULL;
	p->queued = 0;
	p->qbytes = 0;
}

/* A rough upper bound of q's encoded size. */
static size_t qmsg_wire_size(const struct qmsg *q)
{
	return 256 + q->m.n_entries * 96 + q->bytes / 3 * 4 + 4;
}

/* ---- One POST ---- */

struct resp {
	char text[RESP_KEEP + 1];
	size_t len;
};

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct resp *r = arg;
	size_t n = size * nmemb, room, take;

	if (r == NULL)
		return n;
	room = RESP_KEEP - r->len;
	take = n < room ? n : room;

	memcpy(r->text + r->len, ptr, take);
	r->len += take;
	r->text[r->len] = '\0';
	return n;
}

/* POST body on easy through p->multi. 0, or -EIO with why filled;
 * KV_ESHUTDOWN if stopped meanwhile. */
static int post(struct peer *p, CURL *easy, const char *body, size_t len,
		char *why, size_t why_len)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	struct resp resp = {.len = 0};
	CURLcode rc = CURLE_OK;
	CURLMsg *msg;
	long status = 0;
	int running = 1, left, err = 0;

	resp.text[0] = '\0';
	curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, &resp);
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, errbuf);
	if (curl_multi_add_handle(p->multi, easy) != CURLM_OK) {
		snprintf(why, why_len, "curl_multi_add_handle failed");
		return -EIO;
	}
	while (running) {
		CURLMcode mc = curl_multi_perform(p->multi, &running);
		if (mc != CURLM_OK) {
			snprintf(why, why_len, "curl: %s",
				 curl_multi_strerror(mc));
			err = -EIO;
			goto out_remove;
		}
		if (atomic_load(&p->stop)) {
			err = KV_ESHUTDOWN;
			goto out_remove;
		}
		if (running)
			curl_multi_poll(p->multi, NULL, 0, 1000, NULL);
	}
	while ((msg = curl_multi_info_read(p->multi, &left)) != NULL)
		if (msg->msg == CURLMSG_DONE && msg->easy_handle == easy)
			rc = msg->data.result;
	if (rc != CURLE_OK) {
		snprintf(why, why_len, "%s",
			 errbuf[0] ? errbuf : curl_easy_strerror(rc));
		err = -EIO;
		goto out_remove;
	}
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
	if (status < 200 || status > 299) {
		for (size_t i = 0; i < resp.len; i++)
			if (resp.text[i] < 0x20 || resp.text[i] > 0x7e)
				resp.text[i] = ' ';
		while (resp.len > 0 && resp.text[resp.len - 1] == ' ')
			resp.text[--resp.len] = '\0';
		snprintf(why, why_len, "HTTP %ld: %s", status, resp.text);
		err = -EIO;
	}
out_remove:
	curl_multi_remove_handle(p->multi, easy);
	/* Both point into this frame; curl must not keep them. */
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, NULL);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, NULL);
	return err;
}

static CURL *easy_new(struct peer *p, struct curl_slist **hdrs)
{
	const struct peer_set *s = p->set;
	struct curl_slist *h = NULL, *t;
	char line[PEER_ID_MAX + 32];
	CURL *easy = curl_easy_init();

	if (easy == NULL)
		return NULL;
	snprintf(line, sizeof(line), "%s: %s", PEER_HDR_CLUSTER, s->cluster_id);
	if ((t = curl_slist_append(h, "Content-Type: application/json")) ==
	    NULL)
		goto err_easy;
	h = t;
	/* No "Expect: 100-continue" round trip before large bodies. */
	if ((t = curl_slist_append(h, "Expect:")) == NULL)
		goto err_easy;
	h = t;
	if ((t = curl_slist_append(h, line)) == NULL)
		goto err_easy;
	h = t;
	snprintf(line, sizeof(line), "%s: %s", PEER_HDR_TOKEN, s->token);
	if ((t = curl_slist_append(h, line)) == NULL)
		goto err_easy;
	h = t;
	curl_easy_setopt(easy, CURLOPT_URL, p->url);
	curl_easy_setopt(easy, CURLOPT_POST, 1L);
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(easy, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(easy, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
			 (long)s->opt.connect_timeout_ms);
	curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long)s->opt.timeout_ms);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
	*hdrs = h;
	return easy;

err_easy:
	curl_slist_free_all(h);
	curl_easy_cleanup(easy);
	return NULL;
}

/* ---- The sender thread ---- */

/* Take the front of the queue, up to the batch size (at least one). */
static struct qmsg *batch_take(struct peer *p, size_t *count)
{
	struct qmsg *first = p->head, *last = NULL, *q;
	size_t size = 0, n = 0;

	for (q = p->head; q != NULL; q = q->next) {
		size_t w = qmsg_wire_size(q);
		if (n > 0 && (size + w > p->set->opt.batch_bytes ||
			      n == PEER_BATCH_MSGS))
			break;
		size += w;
		n++;
		last = q;
		p->queued--;
		p->qbytes -= q->bytes;
	}
	p->head = q;
	if (q == NULL)
		p->tail = NULL;
	if (last != NULL)
		last->next = NULL;
	*count = n;
	return first;
}

static int batch_encode(struct peer *p, struct qmsg *batch, size_t n,
			char **body, size_t *len)
{
	struct raft_message *msgs = malloc(n * sizeof(*msgs));
	size_t i = 0;
	int err;

	if (msgs == NULL)
		return -ENOMEM;
	for (struct qmsg *q = batch; q != NULL; q = q->next)
		msgs[i++] = q->m; /* shallow: the qmsgs keep ownership */
	err = peer_msgs_encode(p->set->cluster_id, p->set->self, msgs, n, body,
			       len);
	free(msgs);
	return err;
}

/* Wait up to ms, or until stopped. mu held. */
static void backoff_wait(struct peer *p, unsigned ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	while (!atomic_load(&p->stop))
		if (pthread_cond_timedwait(&p->cv, &p->mu, &ts) == ETIMEDOUT)
			break;
}

static void *sender_main(void *arg)
{
	pthread_setname_np(pthread_self(), "kvfs-peer");
	struct peer *p = arg;
	const struct peer_options *o = &p->set->opt;
	struct curl_slist *hdrs = NULL;
	CURL *easy = easy_new(p, &hdrs);

	pthread_mutex_lock(&p->mu);
	for (;;) {
		struct qmsg *batch;
		char why[sizeof(p->info.last_err)] = "";
		char *body = NULL;
		size_t n, len = 0;
		int err;

		while (!atomic_load(&p->stop) && p->head == NULL)
			pthread_cond_wait(&p->cv, &p->mu);
		if (atomic_load(&p->stop))
			break;
		batch = batch_take(p, &n);
		p->info.queued = p->queued;
		pthread_mutex_unlock(&p->mu);

		err = batch_encode(p, batch, n, &body, &len);
		if (err < 0)
			snprintf(why, sizeof(why), "encoding the batch: %s",
				 strerror(-err));
		else if (easy == NULL) {
			err = -ENOMEM;
			snprintf(why, sizeof(why), "no curl handle");
		} else
			err = post(p, easy, body, len, why, sizeof(why));
		free(body);
		while (batch != NULL) {
			struct qmsg *q = batch;
			batch = q->next;
			qmsg_free(q);
		}

		pthread_mutex_lock(&p->mu);
		if (err == KV_ESHUTDOWN)
			break;
		if (err == 0) {
			p->info.sent += n;
			p->info.batches++;
			p->info.last_ok_ms = now_ms(CLOCK_REALTIME);
			p->info.reachable = true;
			p->info.failures = 0;
			p->info.backoff_ms = 0;
			continue;
		}
		p->info.dropped += n;
		p->info.last_err_ms = now_ms(CLOCK_REALTIME);
		snprintf(p->info.last_err, sizeof(p->info.last_err), "%s", why);
		p->info.reachable = false;
		p->info.failures++;
		if (p->info.backoff_ms == 0)
			p->info.backoff_ms = o->backoff_min_ms;
		else if (p->info.backoff_ms < o->backoff_max_ms / 2)
			p->info.backoff_ms *= 2;
		else
			p->info.backoff_ms = o->backoff_max_ms;
		backoff_wait(p, p->info.backoff_ms);
	}
	pthread_mutex_unlock(&p->mu);
	if (easy != NULL)
		curl_easy_cleanup(easy);
	curl_slist_free_all(hdrs);
	return NULL;
}

/* ---- The set ---- */

int peers_new(const char *cluster_id, const char *token, uint64_t self_id,
	      const struct peer_options *opt, struct peer_set **out)
{
	struct peer_set *s;

	if (!peer_id_valid(cluster_id) || !peer_id_valid(token) ||
	    self_id == RAFT_NONE)
		return -EINVAL;
	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != CURLE_OK)
		return -ENOMEM;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return -ENOMEM;
	s->cluster_id = strdup(cluster_id);
	s->token = strdup(token);
	if (s->cluster_id == NULL || s->token == NULL)
		goto err_free;
	s->self = self_id;
	if (opt != NULL)
		s->opt = *opt;
#define DEF(f, v) (s->opt.f = s->opt.f ? s->opt.f : (v))
	DEF(max_queue, DEF_MAX_QUEUE);
	DEF(max_queue_bytes, DEF_MAX_QUEUE_BYTES);
	DEF(batch_bytes, DEF_BATCH_BYTES);
	DEF(connect_timeout_ms, DEF_CONNECT_MS);
	DEF(timeout_ms, DEF_TIMEOUT_MS);
	DEF(backoff_min_ms, DEF_BACKOFF_MIN_MS);
	DEF(backoff_max_ms, DEF_BACKOFF_MAX_MS);
#undef DEF
	if (s->opt.backoff_max_ms < s->opt.backoff_min_ms)
		s->opt.backoff_max_ms = s->opt.backoff_min_ms;
	pthread_mutex_init(&s->mu, NULL);
	*out = s;
	return 0;

err_free:
	free(s->cluster_id);
	free(s->token);
	free(s);
	return -ENOMEM;
}

/* Index of peer id in s->peers, or -1. s->mu held. */
static ssize_t peer_find(struct peer_set *s, uint64_t id)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->peers[i]->id == id)
			return (ssize_t)i;
	return -1;
}

static void peer_free(struct peer *p)
{
	queue_clear(p);
	curl_multi_cleanup(p->multi);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

static void peer_signal_stop(struct peer *p)
{
	pthread_mutex_lock(&p->mu);
	atomic_store(&p->stop, true);
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	curl_multi_wakeup(p->multi);
}

int peers_add(struct peer_set *s, uint64_t id, const char *addr)
{
	pthread_condattr_t ca;
	struct peer *p;
	int err;

	if (id == RAFT_NONE || id == s->self || addr == NULL ||
	    !addr_valid(addr))
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return -ENOMEM;
	p->set = s;
	p->id = id;
	snprintf(p->addr, sizeof(p->addr), "%s", addr);
	snprintf(p->url, sizeof(p->url), "http://%s%s", addr, PEER_PATH);
	snprintf(p->info.addr, sizeof(p->info.addr), "%s", addr);
	atomic_init(&p->stop, false);
	p->multi = curl_multi_init();
	if (p->multi == NULL) {
		free(p);
		return -ENOMEM;
	}
	pthread_mutex_init(&p->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->cv, &ca);
	pthread_condattr_destroy(&ca);

	pthread_mutex_lock(&s->mu);
	if (peer_find(s, id) >= 0) {
		err = -EEXIST;
		goto err_unlock;
	}
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 8;
		struct peer **a = realloc(s->peers, cap * sizeof(*a));
		if (a == NULL) {
			err = -ENOMEM;
			goto err_unlock;
		}
		s->peers = a;
		s->cap = cap;
	}
	err = -pthread_create(&p->thread, NULL, sender_main, p);
	if (err < 0)
		goto err_unlock;
	s->peers[s->n++] = p;
	pthread_mutex_unlock(&s->mu);
	return 0;

err_unlock:
	pthread_mutex_unlock(&s->mu);
	peer_free(p);
	return err;
}

int peers_remove(struct peer_set *s, uint64_t id)
{
	struct peer *p;
	ssize_t i;

	pthread_mutex_lock(&s->mu);
	i = peer_find(s, id);
	if (i < 0) {
		pthread_mutex_unlock(&s->mu);
		return -ENOENT;
	}
	p = s->peers[i];
	s->peers[i] = s->peers[--s->n];
	pthread_mutex_unlock(&s->mu);

	peer_signal_stop(p);
	pthread_join(p->thread, NULL);
	peer_free(p);
	return 0;
}

int peers_send(struct peer_set *s, const struct raft_message *msgs, size_t n)
{
	int queued = 0;

	pthread_mutex_lock(&s->mu);
	for (size_t i = 0; i < n; i++) {
		const struct raft_message *m = &msgs[i];
		struct qmsg *q;
		struct peer *p;
		ssize_t k;

		if (m->type == RAFT_MSG_NONE || m->from != s->self ||
		    (k = peer_find(s, m->to)) < 0)
			continue;
		p = s->peers[k];
		q = qmsg_copy(m);
		if (q == NULL) {
			pthread_mutex_unlock(&s->mu);
			return -ENOMEM;
		}
		pthread_mutex_lock(&p->mu);
		queue_push(p, q);
		p->info.queued = p->queued;
		pthread_cond_signal(&p->cv);
		pthread_mutex_unlock(&p->mu);
		queued++;
	}
	pthread_mutex_unlock(&s->mu);
	return queued;
}

int peers_info(struct peer_set *s, uint64_t id, struct peer_info *out)
{
	ssize_t i;

	pthread_mutex_lock(&s->mu);
	i = peer_find(s, id);
	if (i >= 0) {
		struct peer *p = s->peers[i];
		pthread_mutex_lock(&p->mu);
		*out = p->info;
		out->queued = p->queued;
		pthread_mutex_unlock(&p->mu);
	}
	pthread_mutex_unlock(&s->mu);
	return i < 0 ? -ENOENT : 0;
}

void peers_free(struct peer_set *s)
{
	if (s == NULL)
		return;
	/* Stop them all first, then wait: one slow stop does not add up. */
	for (size_t i = 0; i < s->n; i++)
		peer_signal_stop(s->peers[i]);
	for (size_t i = 0; i < s->n; i++) {
		pthread_join(s->peers[i]->thread, NULL);
		peer_free(s->peers[i]);
	}
	free(s->peers);
	pthread_mutex_destroy(&s->mu);
	free(s->cluster_id);
	free(s->token);
	free(s);
}
