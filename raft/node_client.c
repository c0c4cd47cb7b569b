/* node_client.c - what other threads ask of the node: writes, read
 * barriers, peer messages.
 *
 * A write on the leader goes into the node thread's inbox and waits for
 * its entry to be applied here. On a follower it is forwarded to the
 * leader (POST /raft/propose, over one kept-alive libcurl connection per
 * calling thread); the leader answers once applied there, with the
 * entry's index, and the follower answers its client once it applied that
 * index too (read-your-writes on every node). A write is retried only when
 * it surely was not applied (no leader, not the leader, lost to another
 * leader's entry, a connection refused); once a forwarded write may have
 * reached the leader, a missing answer is reported as KV_ENOQUORUM with
 * the outcome unknown, never retried (a retry could apply it twice). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "codec.h"
#include "node_int.h"

/* ---- time ---- */

struct timespec node_deadline(int ms)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	t.tv_sec += ms / 1000;
	t.tv_nsec += (long)(ms % 1000) * 1000000;
	if (t.tv_nsec >= 1000000000) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000;
	}
	return t;
}

bool node_past(const struct timespec *d)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > d->tv_sec ||
	       (now.tv_sec == d->tv_sec && now.tv_nsec >= d->tv_nsec);
}

static long ms_left(const struct timespec *d)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	long ms = (d->tv_sec - now.tv_sec) * 1000 +
		  (d->tv_nsec - now.tv_nsec) / 1000000;
	return ms > 0 ? ms : 0;
}

int node_cond_init(pthread_cond_t *c)
{
	pthread_condattr_t a;
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	int ret = -pthread_cond_init(c, &a);
	pthread_condattr_destroy(&a);
	return ret;
}

/* Wait on state_cond until woken or the deadline; n->mu held. False once
 * the deadline passed or the node is stopping. */
static bool state_wait(struct kv_node *n, const struct timespec *deadline)
{
	if (n->stopping || node_past(deadline))
		return false;
	n->state_waiters++;
	pthread_cond_timedwait(&n->state_cond, &n->mu, deadline);
	n->state_waiters--;
	return !n->stopping;
}

/* Wait until this node applied index; n->mu held. The store's applied
 * callback wakes the waiters only when the smallest index one of them
 * waits for is reached (n->applied_wake), not at every entry: 64 writers
 * waiting on a follower would otherwise all wake for each entry. */
static int wait_applied(struct kv_node *n, uint64_t index,
			const struct timespec *deadline)
{
	while (n->applied < index) {
		if (n->fatal)
			return KV_EFAILED;
		if (n->stopping)
			return KV_ESHUTDOWN;
		if (node_past(deadline))
			return KV_ENOQUORUM;
		if (index < n->applied_wake)
			n->applied_wake = index;
		pthread_cond_timedwait(&n->applied_cond, &n->mu, deadline);
	}
	return 0;
}

/* ---- local proposals (this node leads) ---- */

static void unlink_prop(struct prop **head, struct prop **tail, struct prop *p)
{
	struct prop *prev = NULL;
	for (struct prop *q = *head; q; prev = q, q = q->next) {
		if (q != p)
			continue;
		if (prev)
			prev->next = p->next;
		else
			*head = p->next;
		if (*tail == p)
			*tail = prev;
		return;
	}
}

/* Propose json through the local core and wait until applied here. 0
 * (res set), NODE_RETRY, KV_ENOQUORUM (deadline: outcome unknown once
 * the core took it), KV_ESHUTDOWN, KV_EFAILED. n->mu held. */
static int propose_prop(struct kv_node *n, struct prop *pp,
			const struct timespec *deadline, struct kv_result *res,
			uint64_t *index)
{
	struct prop p = *pp;
	p.state = PROP_QUEUED;
	p.next = NULL;
	node_cond_init(&p.cond);
	if (n->props_tail)
		n->props_tail->next = &p;
	else
		n->props = &p;
	n->props_tail = &p;
	pthread_cond_signal(&n->cond);
	int ret;
	for (;;) {
		if (p.state == PROP_DONE) {
			ret = p.ret;
			break;
		}
		if (p.state == PROP_TAKEN) {
			/* the node thread holds it for a moment */
			pthread_cond_wait(&p.cond, &n->mu);
			continue;
		}
		if (n->stopping || node_past(deadline)) {
			if (p.state == PROP_QUEUED) {
				unlink_prop(&n->props, &n->props_tail, &p);
				ret = n->stopping ? KV_ESHUTDOWN : NODE_RETRY;
			} else {
				unlink_prop(&n->waiting, &n->waiting_tail, &p);
				ret = n->stopping ? KV_ESHUTDOWN : KV_ENOQUORUM;
			}
			break;
		}
		pthread_cond_timedwait(&p.cond, &n->mu, deadline);
	}
	pthread_cond_destroy(&p.cond);
	if (ret == 0) {
		*res = p.res;
		*index = p.index;
	}
	return ret;
}

static int propose_local(struct kv_node *n, const char *json, size_t len,
			 const struct timespec *deadline, struct kv_result *res,
			 uint64_t *index)
{
	struct prop p = {.json = json, .len = len};
	return propose_prop(n, &p, deadline, res, index);
}

int node_change_member(struct kv_node *n, enum node_member_op op, uint64_t id,
		       const char *addr)
{
	if (id == 0 || id > PEER_INT_MAX)
		return -EINVAL;
	if (op == NODE_MEMBER_ADD &&
	    (!addr || !*addr || strlen(addr) >= RAFT_ADDR_MAX ||
	     !strchr(addr, ':') || strpbrk(addr, " \t\r\n")))
		return -EINVAL;
	struct prop p = {.conf_op = op == NODE_MEMBER_ADD
					? RAFT_CONF_ADD_LEARNER
					: RAFT_CONF_REMOVE,
			 .conf_id = id,
			 .conf_addr = op == NODE_MEMBER_ADD ? addr : ""};
	struct timespec deadline = node_deadline(n->write_timeout_ms);
	struct kv_result res;
	uint64_t index;
	pthread_mutex_lock(&n->mu);
	int ret = n->role == RAFT_LEADER
		      ? propose_prop(n, &p, &deadline, &res, &index)
		      : KV_ENOTLEADER;
	pthread_mutex_unlock(&n->mu);
	/* not taken: no longer the leader, or still queued at the deadline
	 * (then a 503 to retry, not a 421 that may name this very node) */
	if (ret == NODE_RETRY)
		ret = node_past(&deadline) ? KV_ENOQUORUM : KV_ENOTLEADER;
	if (ret == RAFT_EINVAL)
		ret = -EINVAL;
	return ret;
}

/* ---- forwarding to the leader ---- */

struct fwd_body {
	char *buf;
	size_t len;
};

static size_t fwd_write(char *data, size_t size, size_t nmemb, void *arg)
{
	struct fwd_body *b = arg;
	size_t add = size * nmemb;
	if (b->len + add > 65536)
		return 0; /* an answer is small */
	char *nb = realloc(b->buf, b->len + add + 1);
	if (!nb)
		return 0;
	memcpy(nb + b->len, data, add);
	b->len += add;
	nb[b->len] = '\0';
	b->buf = nb;
	return add;
}

static pthread_key_t fwd_key;
static pthread_once_t fwd_once = PTHREAD_ONCE_INIT;

static void fwd_free(void *h)
{
	curl_easy_cleanup(h);
}

static void fwd_key_init(void)
{
	pthread_key_create(&fwd_key, fwd_free);
}

/* This thread's connection to the leader, kept alive between calls. */
static CURL *fwd_handle(void)
{
	pthread_once(&fwd_once, fwd_key_init);
	CURL *h = pthread_getspecific(fwd_key);
	if (!h) {
		h = curl_easy_init();
		if (h)
			pthread_setspecific(fwd_key, h);
	}
	return h;
}

void node_client_cleanup(void)
{
	pthread_once(&fwd_once, fwd_key_init);
	CURL *h = pthread_getspecific(fwd_key);
	if (h) {
		curl_easy_cleanup(h);
		pthread_setspecific(fwd_key, NULL);
	}
}

/* POST json to the leader at addr. 0 with res/index from its answer;
 * NODE_RETRY if it surely did not take the write; KV_ENOQUORUM if it may
 * have. */
static int forward(struct kv_node *n, const char *addr, const char *json,
		   size_t len, long timeout_ms, struct kv_result *res,
		   uint64_t *index)
{
	CURL *h = fwd_handle();
	if (!h)
		return -ENOMEM;
	char url[RAFT_ADDR_MAX + 32];
	snprintf(url, sizeof(url), "http://%s/raft/propose", addr);
	char hc[PEER_ID_MAX + 32], ht[PEER_ID_MAX + 32];
	snprintf(hc, sizeof(hc), PEER_HDR_CLUSTER ": %s", n->cluster_id);
	snprintf(ht, sizeof(ht), PEER_HDR_TOKEN ": %s", n->token);
	struct curl_slist *hdrs = NULL, *t;
	const char *list[] = {hc, ht, "Content-Type: application/json",
			      "Expect:"};
	for (size_t i = 0; i < sizeof(list) / sizeof(list[0]); i++) {
		t = curl_slist_append(hdrs, list[i]);
		if (!t) {
			curl_slist_free_all(hdrs);
			return -ENOMEM;
		}
		hdrs = t;
	}
	struct fwd_body body = {0};
	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, json);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, fwd_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
			 timeout_ms < 1000 ? timeout_ms : 1000L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
	CURLcode cc = curl_easy_perform(h);
	long status = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(hdrs);
	int ret;
	if (cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST) {
		ret = NODE_RETRY; /* never reached the leader */
	} else if (cc != CURLE_OK) {
		ret = KV_ENOQUORUM; /* sent, perhaps taken: unknown */
	} else if (status == 200) {
		cJSON *j = kv_json_parse(body.buf ? body.buf : "", body.len);
		double ix = 0, err = 0, rev = 0;
		const cJSON *it;
		ret = KV_ENOQUORUM;
		if (j && (it = cJSON_GetObjectItemCaseSensitive(j, "index")) &&
		    cJSON_IsNumber(it)) {
			ix = it->valuedouble;
			it = cJSON_GetObjectItemCaseSensitive(j, "err");
			err = cJSON_IsNumber(it) ? it->valuedouble : 0;
			it = cJSON_GetObjectItemCaseSensitive(j, "rev");
			rev = cJSON_IsNumber(it) ? it->valuedouble : 0;
			*index = (uint64_t)ix;
			res->err = (int)err;
			res->rev = (uint64_t)rev;
			ret = 0;
		}
		cJSON_Delete(j);
	} else if (status == 421) {
		ret = NODE_RETRY; /* not the leader (any more): it refused */
	} else if (status == 507) {
		ret = -ENOSPC; /* the leader refused it: its disk is full */
	} else if (status == 400 || status == 413) {
		ret = -EINVAL;
	} else {
		ret = KV_ENOQUORUM; /* 503 after taking it, or anything else */
	}
	free(body.buf);
	return ret;
}

/* ---- the calls ---- */

static int check_cmd(struct kv_cmd *cmd)
{
	int ret;
	if (cmd->op != KV_OP_NOOP) {
		ret = kv_key_check(cmd->key, cmd->klen);
		if (ret != 0)
			return ret;
	}
	if (cmd->op == KV_OP_RENAME) {
		ret = kv_key_check(cmd->key2, cmd->k2len);
		if (ret != 0)
			return ret;
	}
	if (cmd->op == KV_OP_PUT && cmd->vlen > KV_MAX_VALUE)
		return -EFBIG;
	return 0;
}

/* Room for an entry of len bytes (with its line's framing) in the log. */
static bool room_for(struct kv_node *n, size_t len)
{
	return store_room(n->store) >= (uint64_t)len + 256;
}

/* Propose json here or at the leader until applied on this node, a
 * definite failure, or the deadline. */
static int propose_json(struct kv_node *n, const char *json, size_t len,
			struct kv_result *res)
{
	struct timespec deadline = node_deadline(n->write_timeout_ms);
	if (!room_for(n, len))
		return -ENOSPC;
	pthread_mutex_lock(&n->mu);
	int ret;
	for (;;) {
		uint64_t index = 0;
		if (n->fatal) {
			ret = KV_EFAILED;
			break;
		}
		if (n->stopping) {
			ret = KV_ESHUTDOWN;
			break;
		}
		if (n->role == RAFT_LEADER) {
			ret =
			    propose_local(n, json, len, &deadline, res, &index);
		} else if (n->leader != RAFT_NONE && n->leader_addr[0]) {
			char addr[RAFT_ADDR_MAX];
			memcpy(addr, n->leader_addr, sizeof(addr));
			pthread_mutex_unlock(&n->mu);
			ret = forward(n, addr, json, len, ms_left(&deadline),
				      res, &index);
			pthread_mutex_lock(&n->mu);
			if (ret == 0)
				ret = wait_applied(n, index, &deadline);
		} else {
			ret = NODE_RETRY;
		}
		if (ret != NODE_RETRY)
			break;
		/* surely not applied: wait for a leader (or a moment), and
		 * try again within the deadline */
		struct timespec pause = node_deadline(20);
		if (node_past(&deadline)) {
			ret = KV_ENOQUORUM;
			break;
		}
		state_wait(n, ms_left(&deadline) < 20 ? &deadline : &pause);
	}
	pthread_mutex_unlock(&n->mu);
	return ret;
}

int node_propose(struct kv_node *n, struct kv_cmd *cmd, struct kv_result *res)
{
	int ret = check_cmd(cmd);
	if (ret != 0)
		return ret;
	if (cmd->mtime_ns == 0 &&
	    (cmd->op == KV_OP_PUT || cmd->op == KV_OP_MKDIR ||
	     cmd->op == KV_OP_RENAME || cmd->op == KV_OP_SETATTR)) {
		struct timespec now;
		clock_gettime(CLOCK_REALTIME, &now);
		cmd->mtime_ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
	}
	char *json;
	size_t len;
	ret = kv_cmd_encode(cmd, &json, &len);
	if (ret != 0)
		return ret;
	res->err = 0;
	res->rev = 0;
	ret = propose_json(n, json, len, res);
	free(json);
	return ret;
}

int node_propose_forwarded(struct kv_node *n, const char *json, size_t len,
			   struct kv_result *res, uint64_t *index)
{
	struct kv_cmd cmd;
	int ret = kv_cmd_decode(json, len, &cmd);
	if (ret != 0)
		return ret == -ENOMEM ? ret : -EINVAL;
	ret = check_cmd(&cmd);
	char *canon = NULL;
	size_t clen = 0;
	if (ret == 0)
		ret = kv_cmd_encode(&cmd, &canon, &clen);
	kv_cmd_clear(&cmd);
	if (ret != 0)
		return ret;
	if (!room_for(n, clen)) {
		free(canon);
		return -ENOSPC;
	}
	/* answer a little before the follower gives up on us */
	int ms = n->write_timeout_ms > 400 ? n->write_timeout_ms - 200
					   : n->write_timeout_ms;
	struct timespec deadline = node_deadline(ms);
	pthread_mutex_lock(&n->mu);
	if (n->role != RAFT_LEADER)
		ret = KV_ENOTLEADER;
	else
		ret = propose_local(n, canon, clen, &deadline, res, index);
	if (ret == NODE_RETRY)
		ret = KV_ENOTLEADER; /* surely not applied: the follower
					retries */
	pthread_mutex_unlock(&n->mu);
	free(canon);
	return ret;
}

int node_read_barrier(struct kv_node *n, bool linearizable)
{
	if (!linearizable)
		return 0;
	struct timespec deadline = node_deadline(n->write_timeout_ms);
	pthread_mutex_lock(&n->mu);
	uint64_t need = n->read_issued + 1;
	if (need > n->read_need)
		n->read_need = need;
	pthread_cond_signal(&n->cond);
	int ret = 0;
	while (n->read_answered < need) {
		if (!state_wait(n, &deadline)) {
			ret = n->stopping ? KV_ESHUTDOWN : KV_ENOQUORUM;
			break;
		}
	}
	if (ret == 0)
		ret = wait_applied(n, n->read_index, &deadline);
	pthread_mutex_unlock(&n->mu);
	return ret;
}

int node_deliver(struct kv_node *n, struct raft_message *msgs, size_t count)
{
	struct inmsg *m = malloc(sizeof(*m));
	if (!m) {
		peer_msgs_free(msgs, count);
		return -ENOMEM;
	}
	m->next = NULL;
	m->msgs = msgs;
	m->n = count;
	pthread_mutex_lock(&n->mu);
	if (n->stopping || n->inbox_msgs + count > NODE_MAX_INBOX_MSGS) {
		/* the node thread is behind: drop, as a network would */
		pthread_mutex_unlock(&n->mu);
		peer_msgs_free(msgs, count);
		free(m);
		return -EBUSY;
	}
	if (n->msgs_tail)
		n->msgs_tail->next = m;
	else
		n->msgs = m;
	n->msgs_tail = m;
	n->inbox_msgs += count;
	pthread_cond_signal(&n->cond);
	pthread_mutex_unlock(&n->mu);
	return 0;
}
