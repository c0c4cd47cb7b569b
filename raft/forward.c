/* forward.c - the forwarder: a follower's writes go to the leader in
 * batches (interface and rules in forward.h).
 *
 * One thread owns a curl multi handle with FWD_INFLIGHT slots, each an
 * easy handle whose connection the multi keeps alive. Callers append to a
 * queue under f->mu and wake the thread (curl_multi_wakeup); the thread
 * fills every free slot with what is queued for one leader address and
 * sends it as one POST, so what arrives while a batch waits for its
 * commit goes in the next one. A command is answered NODE_RETRY only when
 * it surely was not applied (refused, never sent), and KV_ENOQUORUM once
 * it may have reached the leader: a write is never sent twice. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "codec.h"
#include "forward.h"
#include "node_int.h"

/* An answer is small: a few dozen bytes per command. */
#define FWD_MAX_ANSWER (64u * (size_t)FWD_MAX_CMDS + 4096u)
/* A leader that refused a batch whole (400) may run the version before
 * batches: send it single commands for this long. */
#define FWD_LEGACY_MS 10000

struct fwd_cmd {
	struct fwd_cmd *next;
	char addr[RAFT_ADDR_MAX];
	char *json;
	size_t len;
	struct timespec deadline;
	fwd_done_fn done;
	void *ctx;
	bool answered; /* in flight, answered already at its deadline */
};

/* One POST in flight (forwarder thread only). */
struct fwd_slot {
	CURL *easy;
	bool busy;
	struct fwd_cmd *cmds; /* in the order of the body */
	size_t n;
	struct kv_buf body;
	struct kv_buf answer;
	bool too_big; /* the answer passed FWD_MAX_ANSWER */
};

struct fwd {
	struct curl_slist *hdrs;
	CURLM *multi;
	pthread_t thread;
	struct fwd_slot slots[FWD_INFLIGHT];
	char legacy_addr[RAFT_ADDR_MAX]; /* thread only */
	struct timespec legacy_until;

	pthread_mutex_t mu;
	bool stopping; /* under mu */
	bool joined;   /* the thread is gone (fwd_stop's caller only) */
	struct fwd_cmd *queue, *queue_tail; /* under mu */
};

/* ---- the batch codec ---- */

static const char *skip_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
		p++;
	return p;
}

/* The end of the JSON object starting at p ('{'), or NULL: strings and
 * nesting are followed, the rest is left to kv_cmd_decode. */
static const char *object_end(const char *p, const char *end)
{
	int depth = 0;
	bool in_str = false;
	for (; p < end; p++) {
		char c = *p;
		if (in_str) {
			if (c == '\\')
				p++;
			else if (c == '"')
				in_str = false;
		} else if (c == '"') {
			in_str = true;
		} else if (c == '{' || c == '[') {
			depth++;
		} else if (c == '}' || c == ']') {
			if (--depth == 0)
				return p + 1;
		}
	}
	return NULL;
}

int fwd_batch_split(const char *body, size_t len, struct fwd_span *spans,
		    size_t max, size_t *n)
{
	const char *end = body + len;
	const char *p = skip_ws(body, end);
	*n = 0;
	if (p == end || *p != '[')
		return -EINVAL;
	p = skip_ws(p + 1, end);
	for (;;) {
		if (p == end || *p != '{')
			return -EINVAL;
		const char *e = object_end(p, end);
		if (!e)
			return -EINVAL;
		if (*n == max)
			return -E2BIG;
		spans[*n].p = p;
		spans[*n].len = (size_t)(e - p);
		(*n)++;
		p = skip_ws(e, end);
		if (p < end && *p == ',') {
			p = skip_ws(p + 1, end);
			continue;
		}
		if (p < end && *p == ']')
			break;
		return -EINVAL;
	}
	return skip_ws(p + 1, end) == end ? 0 : -EINVAL;
}

int fwd_status_ret(long status)
{
	switch (status) {
	case 421:
		return NODE_RETRY; /* not the leader (any more): it refused */
	case 507:
		return -ENOSPC; /* the leader refused it: its disk is full */
	case 400:
	case 413:
		return -EINVAL;
	default:
		return KV_ENOQUORUM; /* 503 after taking it, or anything else */
	}
}

/* One result object: {"index","err","rev"} or {"status"}. */
static int result_decode(const cJSON *o, int *ret, uint64_t *index,
			 struct kv_result *res)
{
	const cJSON *ix = cJSON_GetObjectItemCaseSensitive(o, "index");
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(o, "status");
	uint64_t v;
	if (ix) {
		const cJSON *err = cJSON_GetObjectItemCaseSensitive(o, "err");
		const cJSON *rev = cJSON_GetObjectItemCaseSensitive(o, "rev");
		if (kv_json_uint(ix, KV_JSON_INT_MAX, index) != 0 ||
		    *index == 0 || (err && !cJSON_IsNumber(err)))
			return -EINVAL;
		res->err = err ? (int)err->valuedouble : 0;
		res->rev = 0;
		if (rev && kv_json_uint(rev, KV_JSON_INT_MAX, &res->rev) != 0)
			return -EINVAL;
		*ret = 0;
		return 0;
	}
	if (kv_json_uint(st, 999, &v) != 0 || v == 200)
		return -EINVAL;
	*ret = fwd_status_ret((long)v);
	return 0;
}

int fwd_answer_decode(const char *body, size_t len, size_t n, int *rets,
		      uint64_t *index, struct kv_result *res)
{
	cJSON *j = kv_json_parse(body, len);
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, "results");
	const cJSON *o;
	int ret = -EINVAL;
	size_t i = 0;
	if (!cJSON_IsObject(j) || !cJSON_IsArray(arr) ||
	    (size_t)cJSON_GetArraySize(arr) != n)
		goto out;
	cJSON_ArrayForEach(o, arr)
	{
		if (!cJSON_IsObject(o) ||
		    result_decode(o, &rets[i], &index[i], &res[i]) != 0)
			goto out;
		i++;
	}
	ret = 0;
out:
	cJSON_Delete(j);
	return ret;
}

/* ---- the thread ---- */

/* CLOCK_MONOTONIC helpers of our own, so this file builds alone (tests). */
static bool past(const struct timespec *d)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > d->tv_sec ||
	       (now.tv_sec == d->tv_sec && now.tv_nsec >= d->tv_nsec);
}

static struct timespec after_ms(long ms)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	t.tv_sec += ms / 1000;
	t.tv_nsec += (ms % 1000) * 1000000;
	if (t.tv_nsec >= 1000000000) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000;
	}
	return t;
}

static long ms_until(const struct timespec *d)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	long ms = (d->tv_sec - now.tv_sec) * 1000 +
		  (d->tv_nsec - now.tv_nsec) / 1000000;
	return ms > 0 ? ms : 0;
}

static void answer(struct fwd_cmd *c, int ret, uint64_t index,
		   const struct kv_result *res)
{
	if (!c->answered)
		c->done(c->ctx, ret, index, ret == 0 ? res : NULL);
	c->answered = true;
}

/* Answer every command of a list with ret and free them. */
static void answer_all(struct fwd_cmd *list, int ret)
{
	for (struct fwd_cmd *c = list, *next; c; c = next) {
		next = c->next;
		answer(c, ret, 0, NULL);
		free(c->json);
		free(c);
	}
}

static bool legacy(struct fwd *f, const char *addr)
{
	return strcmp(f->legacy_addr, addr) == 0 && !past(&f->legacy_until);
}

/* Move into s the queued commands for the first one's leader, up to the
 * batch bounds, keeping the others in order; commands past their deadline
 * go to *expired instead (never sent). f->mu held. */
static void take_batch(struct fwd *f, struct fwd_slot *s,
		       struct fwd_cmd **expired)
{
	struct fwd_cmd **pp = &f->queue, *last = NULL, **tail = &s->cmds;
	const char *addr = NULL;
	size_t bytes = 0, max = FWD_BATCH_CMDS;
	s->cmds = NULL;
	s->n = 0;
	while (*pp) {
		struct fwd_cmd *c = *pp;
		bool take = false;
		if (past(&c->deadline)) {
			*pp = c->next;
			c->next = *expired;
			*expired = c;
			continue;
		}
		if (!addr) {
			addr = c->addr;
			if (legacy(f, addr))
				max = 1;
		}
		if (s->n < max && strcmp(c->addr, addr) == 0 &&
		    (s->n == 0 || bytes + c->len <= FWD_BATCH_BYTES))
			take = true;
		if (!take) {
			last = c;
			pp = &c->next;
			continue;
		}
		*pp = c->next;
		c->next = NULL;
		*tail = c;
		tail = &c->next;
		s->n++;
		bytes += c->len;
	}
	f->queue_tail = last;
}

static size_t on_answer(char *data, size_t size, size_t nmemb, void *arg)
{
	struct fwd_slot *s = arg;
	size_t add = size * nmemb;
	if (s->answer.len + add > FWD_MAX_ANSWER) {
		s->too_big = true;
		return 0;
	}
	kv_buf_put(&s->answer, data, add);
	return s->answer.err ? 0 : add;
}

/* Build s's body and hand its request to the multi handle. A single
 * command goes in the form before batches (a JSON object), which every
 * leader version takes; more go as a JSON array. */
static int start_slot(struct fwd *f, struct fwd_slot *s)
{
	struct timespec latest = s->cmds->deadline;
	kv_buf_free(&s->body);
	kv_buf_free(&s->answer);
	kv_buf_init(&s->body);
	kv_buf_init(&s->answer);
	s->too_big = false;
	if (s->n > 1)
		kv_buf_put(&s->body, "[", 1);
	for (struct fwd_cmd *c = s->cmds; c; c = c->next) {
		if (c != s->cmds)
			kv_buf_put(&s->body, ",", 1);
		kv_buf_put(&s->body, c->json, c->len);
		if (c->deadline.tv_sec > latest.tv_sec ||
		    (c->deadline.tv_sec == latest.tv_sec &&
		     c->deadline.tv_nsec > latest.tv_nsec))
			latest = c->deadline;
	}
	if (s->n > 1)
		kv_buf_put(&s->body, "]", 1);
	if (s->body.err)
		return s->body.err;
	char url[RAFT_ADDR_MAX + 32];
	snprintf(url, sizeof(url), "http://%s/raft/propose", s->cmds->addr);
	long timeout = ms_until(&latest);
	if (timeout < 1)
		timeout = 1;
	CURL *h = s->easy;
	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, f->hdrs);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, s->body.p);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
			 (curl_off_t)s->body.len);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_answer);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
			 timeout < 1000 ? timeout : 1000L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout);
	if (curl_multi_add_handle(f->multi, h) != CURLM_OK)
		return -ENOMEM;
	s->busy = true;
	return 0;
}

/* Put s's commands back at the head of the queue, in order. */
static void requeue(struct fwd *f, struct fwd_slot *s)
{
	pthread_mutex_lock(&f->mu);
	struct fwd_cmd *last = s->cmds;
	while (last->next)
		last = last->next;
	last->next = f->queue;
	if (!f->queue)
		f->queue_tail = last;
	f->queue = s->cmds;
	pthread_mutex_unlock(&f->mu);
	s->cmds = NULL;
	s->n = 0;
}

/* The single form's answer: {"index":I,"err":E,"rev":R}. */
static int answer_one(const char *body, size_t len, int *ret, uint64_t *index,
		      struct kv_result *res)
{
	cJSON *j = kv_json_parse(body, len);
	int r = -EINVAL;
	if (cJSON_IsObject(j) && cJSON_GetObjectItemCaseSensitive(j, "index"))
		r = result_decode(j, ret, index, res);
	cJSON_Delete(j);
	return r;
}

/* s's request ended with cc: answer its commands and free the slot. */
static void finish_slot(struct fwd *f, struct fwd_slot *s, CURLcode cc)
{
	long status = 0;
	curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
	curl_multi_remove_handle(f->multi, s->easy);
	s->busy = false;
	if (cc == CURLE_OK && status == 400 && s->n > 1) {
		/* refused whole before anything was proposed: a leader of the
		 * version before batches; it takes them one by one */
		snprintf(f->legacy_addr, sizeof(f->legacy_addr), "%s",
			 s->cmds->addr);
		f->legacy_until = after_ms(FWD_LEGACY_MS);
		fprintf(stderr,
			"kvfs: the leader at %s refused a batch of writes; "
			"sending them one by one\n",
			s->cmds->addr);
		requeue(f, s);
		return;
	}
	int all = 0;
	int *rets = NULL;
	uint64_t *index = NULL;
	struct kv_result *res = NULL;
	if (cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST) {
		all = NODE_RETRY; /* never reached the leader */
	} else if (cc != CURLE_OK || s->too_big) {
		all = KV_ENOQUORUM; /* sent, perhaps taken: unknown */
	} else if (status != 200) {
		all = fwd_status_ret(status);
	} else {
		rets = calloc(s->n, sizeof(*rets));
		index = calloc(s->n, sizeof(*index));
		res = calloc(s->n, sizeof(*res));
		all = KV_ENOQUORUM;
		if (rets && index && res) {
			const char *b = s->answer.p ? s->answer.p : "";
			if (s->n == 1) /* the single form's answer */
				all = answer_one(b, s->answer.len, rets, index,
						 res);
			else
				all = fwd_answer_decode(b, s->answer.len, s->n,
							rets, index, res);
			if (all != 0)
				all = KV_ENOQUORUM;
		}
	}
	size_t i = 0;
	for (struct fwd_cmd *c = s->cmds, *next; c; c = next, i++) {
		next = c->next;
		if (all != 0)
			answer(c, all, 0, NULL);
		else
			answer(c, rets[i], index[i], &res[i]);
		free(c->json);
		free(c);
	}
	free(rets);
	free(index);
	free(res);
	s->cmds = NULL;
	s->n = 0;
}

/* Answer in-flight commands whose deadline passed (KV_ENOQUORUM: they
 * were sent) and return the ms until the next deadline, at most cap. */
static long expire_inflight(struct fwd *f, long cap)
{
	long next = cap;
	for (int i = 0; i < FWD_INFLIGHT; i++) {
		if (!f->slots[i].busy)
			continue;
		for (struct fwd_cmd *c = f->slots[i].cmds; c; c = c->next) {
			if (c->answered)
				continue;
			long ms = ms_until(&c->deadline);
			if (ms == 0)
				answer(c, KV_ENOQUORUM, 0, NULL);
			else if (ms < next)
				next = ms;
		}
	}
	return next;
}

/* Queued commands past their deadline go to *expired; the ms until the
 * next queued deadline, at most cap. f->mu held. */
static long expire_queued(struct fwd *f, struct fwd_cmd **expired, long cap)
{
	struct fwd_cmd **pp = &f->queue, *last = NULL;
	long next = cap;
	while (*pp) {
		struct fwd_cmd *c = *pp;
		long ms = ms_until(&c->deadline);
		if (ms == 0) {
			*pp = c->next;
			c->next = *expired;
			*expired = c;
			continue;
		}
		if (ms < next)
			next = ms;
		last = c;
		pp = &c->next;
	}
	f->queue_tail = last;
	return next;
}

static void *fwd_main(void *arg)
{
	pthread_setname_np(pthread_self(), "kvfs-forward");
	struct fwd *f = arg;
	for (;;) {
		struct fwd_cmd *expired = NULL, *rest = NULL;
		struct fwd_slot *fresh[FWD_INFLIGHT];
		int nfresh = 0;
		long wait = 1000;
		pthread_mutex_lock(&f->mu);
		bool stop = f->stopping;
		if (stop) {
			rest = f->queue;
			f->queue = f->queue_tail = NULL;
		}
		for (int i = 0; !stop && i < FWD_INFLIGHT && f->queue; i++) {
			struct fwd_slot *s = &f->slots[i];
			if (s->busy)
				continue;
			take_batch(f, s, &expired);
			if (s->n > 0)
				fresh[nfresh++] = s;
		}
		if (!stop)
			wait = expire_queued(f, &expired, wait);
		pthread_mutex_unlock(&f->mu);
		answer_all(expired, NODE_RETRY); /* never sent */
		if (stop) {
			answer_all(rest, KV_ESHUTDOWN);
			break;
		}
		for (int i = 0; i < nfresh; i++) {
			struct fwd_slot *s = fresh[i];
			if (start_slot(f, s) != 0) {
				answer_all(s->cmds, NODE_RETRY); /* not sent */
				s->cmds = NULL;
				s->n = 0;
			}
		}
		int running = 0;
		curl_multi_perform(f->multi, &running);
		CURLMsg *m;
		int left;
		while ((m = curl_multi_info_read(f->multi, &left))) {
			if (m->msg != CURLMSG_DONE)
				continue;
			for (int i = 0; i < FWD_INFLIGHT; i++)
				if (f->slots[i].busy &&
				    f->slots[i].easy == m->easy_handle)
					finish_slot(f, &f->slots[i],
						    m->data.result);
		}
		wait = expire_inflight(f, wait);
		/* finished slots take new work at once */
		bool again = false;
		pthread_mutex_lock(&f->mu);
		for (int i = 0; i < FWD_INFLIGHT; i++)
			if (!f->slots[i].busy && f->queue)
				again = true;
		if (f->stopping)
			again = true;
		pthread_mutex_unlock(&f->mu);
		if (!again)
			curl_multi_poll(f->multi, NULL, 0, (int)wait, NULL);
	}
	/* stopping: what was sent may have been taken */
	for (int i = 0; i < FWD_INFLIGHT; i++) {
		struct fwd_slot *s = &f->slots[i];
		if (!s->busy)
			continue;
		curl_multi_remove_handle(f->multi, s->easy);
		s->busy = false;
		answer_all(s->cmds, KV_ENOQUORUM);
		s->cmds = NULL;
	}
	return NULL;
}

/* ---- the calls ---- */

int fwd_new(const char *cluster_id, const char *token, struct fwd **out)
{
	struct fwd *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	int ret = -ENOMEM;
	char hc[PEER_ID_MAX + 32], ht[PEER_ID_MAX + 32];
	snprintf(hc, sizeof(hc), PEER_HDR_CLUSTER ": %s", cluster_id);
	snprintf(ht, sizeof(ht), PEER_HDR_TOKEN ": %s", token);
	const char *list[] = {hc, ht, "Content-Type: application/json",
			      "Expect:"};
	for (size_t i = 0; i < sizeof(list) / sizeof(list[0]); i++) {
		struct curl_slist *t = curl_slist_append(f->hdrs, list[i]);
		if (!t)
			goto err_free;
		f->hdrs = t;
	}
	f->multi = curl_multi_init();
	if (!f->multi)
		goto err_free;
	for (int i = 0; i < FWD_INFLIGHT; i++) {
		kv_buf_init(&f->slots[i].body);
		kv_buf_init(&f->slots[i].answer);
		f->slots[i].easy = curl_easy_init();
		if (!f->slots[i].easy)
			goto err_free;
	}
	pthread_mutex_init(&f->mu, NULL);
	if (pthread_create(&f->thread, NULL, fwd_main, f) != 0) {
		ret = -EAGAIN;
		pthread_mutex_destroy(&f->mu);
		goto err_free;
	}
	*out = f;
	return 0;

err_free:
	for (int i = 0; i < FWD_INFLIGHT; i++)
		if (f->slots[i].easy)
			curl_easy_cleanup(f->slots[i].easy);
	if (f->multi)
		curl_multi_cleanup(f->multi);
	curl_slist_free_all(f->hdrs);
	free(f);
	return ret;
}

void fwd_stop(struct fwd *f)
{
	if (!f || f->joined)
		return;
	pthread_mutex_lock(&f->mu);
	f->stopping = true;
	pthread_mutex_unlock(&f->mu);
	curl_multi_wakeup(f->multi);
	pthread_join(f->thread, NULL);
	f->joined = true;
}

void fwd_free(struct fwd *f)
{
	if (!f)
		return;
	fwd_stop(f);
	for (int i = 0; i < FWD_INFLIGHT; i++) {
		curl_easy_cleanup(f->slots[i].easy);
		kv_buf_free(&f->slots[i].body);
		kv_buf_free(&f->slots[i].answer);
	}
	curl_multi_cleanup(f->multi);
	curl_slist_free_all(f->hdrs);
	pthread_mutex_destroy(&f->mu);
	free(f);
}

int fwd_submit(struct fwd *f, const char *addr, const char *json, size_t len,
	       const struct timespec *deadline, fwd_done_fn done, void *ctx)
{
	if (strlen(addr) >= RAFT_ADDR_MAX)
		return -EINVAL;
	struct fwd_cmd *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->json = malloc(len ? len : 1);
	if (!c->json) {
		free(c);
		return -ENOMEM;
	}
	memcpy(c->json, json, len);
	c->len = len;
	snprintf(c->addr, sizeof(c->addr), "%s", addr);
	c->deadline = *deadline;
	c->done = done;
	c->ctx = ctx;
	pthread_mutex_lock(&f->mu);
	if (f->stopping) {
		pthread_mutex_unlock(&f->mu);
		free(c->json);
		free(c);
		return KV_ESHUTDOWN;
	}
	if (f->queue_tail)
		f->queue_tail->next = c;
	else
		f->queue = c;
	f->queue_tail = c;
	pthread_mutex_unlock(&f->mu);
	curl_multi_wakeup(f->multi);
	return 0;
}

/* fwd_propose's rendezvous with the forwarder's thread. */
struct fwd_wait {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	bool done;
	int ret;
	uint64_t index;
	struct kv_result res;
};

static void wait_done(void *ctx, int ret, uint64_t index,
		      const struct kv_result *res)
{
	struct fwd_wait *w = ctx;
	pthread_mutex_lock(&w->mu);
	w->ret = ret;
	w->index = index;
	if (res)
		w->res = *res;
	w->done = true;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->mu); /* w may be gone after this */
}

int fwd_propose(struct fwd *f, const char *addr, const char *json, size_t len,
		const struct timespec *deadline, struct kv_result *res,
		uint64_t *index)
{
	struct fwd_wait w = {.done = false};
	pthread_mutex_init(&w.mu, NULL);
	pthread_cond_init(&w.cond, NULL);
	int ret = fwd_submit(f, addr, json, len, deadline, wait_done, &w);
	if (ret == 0) {
		pthread_mutex_lock(&w.mu);
		while (!w.done)
			pthread_cond_wait(&w.cond, &w.mu);
		pthread_mutex_unlock(&w.mu);
		ret = w.ret;
		if (ret == 0) {
			*res = w.res;
			*index = w.index;
		}
	}
	pthread_cond_destroy(&w.cond);
	pthread_mutex_destroy(&w.mu);
	return ret;
}
