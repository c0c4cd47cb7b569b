/* msg_decode.c - reading a batch of Raft messages, strictly.
 *
 * The decoder checks the text as strict JSON once and then reads it in
 * place (store/kv's jread.h): no tree, one allocation per entry's data. It
 * walks every object's fields itself, so unknown, duplicate, mistyped and
 * out-of-range fields are all refused, and the version is read before any
 * other field. The field list is in docs/peer-protocol.md; the encoder is
 * msg_encode.c, the receiving side's checks on what decodes are in
 * peer_recv.c. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "jread.h"
#include "kv.h"
#include "msg_int.h"
#include "peer.h"

static void say(char *why, size_t why_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void say(char *why, size_t why_len, const char *fmt, ...)
{
	va_list ap;

	if (why == NULL || why_len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(why, why_len, fmt, ap);
	va_end(ap);
}

struct dec {
	char *why;
	size_t why_len;
	struct jr r; /* the checked text (jread.h), read in place */
};

#define BAD(d, ...)                                                            \
	do {                                                                   \
		say((d)->why, (d)->why_len, __VA_ARGS__);                      \
		return -EINVAL;                                                \
	} while (0)

/* Field names this long or longer are unknown: the longest is 10. */
#define NAME_CAP 24

static int get_u64(struct dec *d, const char *name, uint64_t *out)
{
	double v;

	if (jr_kind(&d->r) != 'n')
		BAD(d, "\"%s\" is not a number", name);
	v = jr_num(&d->r);
	if (!(v >= 0 && v <= (double)PEER_INT_MAX) || v != (double)(uint64_t)v)
		BAD(d, "\"%s\" is not an integer in [0, 2^53 - 1]", name);
	*out = (uint64_t)v;
	return 0;
}

static int get_bool(struct dec *d, const char *name, bool *out)
{
	char k = jr_kind(&d->r);

	if (k != 't' && k != 'f')
		BAD(d, "\"%s\" is not a boolean", name);
	*out = jr_bool(&d->r);
	return 0;
}

/* A string naming one of names[]: its index, or -1 (not a string, or no
 * such name). */
static int get_name(struct dec *d, const struct msg_names *names)
{
	char buf[NAME_CAP];
	size_t len;

	if (jr_kind(&d->r) != '"' ||
	    (len = jr_str(&d->r, buf, sizeof(buf))) != strlen(buf))
		return -1; /* too long, or a NUL inside */
	return msg_name_find(names, buf);
}

/* A field seen twice, or not at all when required. */
static int seen(struct dec *d, unsigned *mask, unsigned bit, const char *name)
{
	if (*mask & bit)
		BAD(d, "duplicate field \"%s\"", name);
	*mask |= bit;
	return 0;
}

/* The entry's data: p[0..n) (taken; none when empty). */
static void set_data(struct raft_entry *e, void *p, size_t n)
{
	if (n == 0) {
		free(p);
		p = NULL;
	}
	e->data = p;
	e->len = n;
}

/* "data": UTF-8 text without NUL, kept as is. */
static int get_data(struct dec *d, struct raft_entry *e)
{
	char *p;
	size_t n;
	int err;

	if (jr_kind(&d->r) != '"')
		BAD(d, "\"data\" is not a string");
	if ((err = jr_str_dup(&d->r, &p, &n)) < 0)
		return err;
	if (!kv_utf8_valid(p, n, false)) {
		free(p);
		BAD(d, "\"data\" is not UTF-8");
	}
	set_data(e, p, n);
	return 0;
}

/* "data64": any bytes, as canonical base64. */
static int get_data64(struct dec *d, struct raft_entry *e)
{
	unsigned char *p;
	char *text;
	size_t n;
	int err;

	if (jr_kind(&d->r) != '"')
		BAD(d, "\"data64\" is not a string");
	if ((err = jr_str_dup(&d->r, &text, &n)) < 0)
		return err;
	err = kv_base64_decode(text, n, &p, &n);
	free(text);
	if (err == -EINVAL)
		BAD(d, "\"data64\" is not canonical base64");
	if (err < 0)
		return err;
	set_data(e, p, n);
	return 0;
}

static int get_entry(struct dec *d, struct raft_entry *e)
{
	enum { F_TERM = 1, F_INDEX = 2, F_TYPE = 4, F_DATA = 8 };
	unsigned mask = 0;
	char k[NAME_CAP];
	bool first = true;
	int err;

	if (jr_kind(&d->r) != '{')
		BAD(d, "an entry is not an object");
	jr_enter(&d->r);
	while (jr_more(&d->r, &first)) {
		jr_name(&d->r, k, sizeof(k));
		if (strcmp(k, "term") == 0) {
			if ((err = seen(d, &mask, F_TERM, k)) < 0 ||
			    (err = get_u64(d, k, &e->term)) < 0)
				return err;
		} else if (strcmp(k, "index") == 0) {
			if ((err = seen(d, &mask, F_INDEX, k)) < 0 ||
			    (err = get_u64(d, k, &e->index)) < 0)
				return err;
		} else if (strcmp(k, "type") == 0) {
			int t;
			if ((err = seen(d, &mask, F_TYPE, k)) < 0)
				return err;
			if ((t = get_name(d, &msg_entry_types)) < 0)
				BAD(d, "unknown entry type");
			e->type = (enum raft_entry_type)t;
		} else if (strcmp(k, "data") == 0) {
			if ((err = seen(d, &mask, F_DATA, k)) < 0 ||
			    (err = get_data(d, e)) < 0)
				return err;
		} else if (strcmp(k, "data64") == 0) {
			if ((err = seen(d, &mask, F_DATA, k)) < 0 ||
			    (err = get_data64(d, e)) < 0)
				return err;
		} else {
			BAD(d, "unknown entry field \"%s\"", k);
		}
	}
	if ((mask & (F_TERM | F_INDEX | F_TYPE)) != (F_TERM | F_INDEX | F_TYPE))
		BAD(d, "an entry lacks term, index or type");
	return 0;
}

static int get_server(struct dec *d, struct raft_server *s)
{
	enum { F_ID = 1, F_ROLE = 2, F_ADDR = 4 };
	unsigned mask = 0;
	char k[NAME_CAP];
	bool first = true;
	int err;

	if (jr_kind(&d->r) != '{')
		BAD(d, "a server is not an object");
	jr_enter(&d->r);
	while (jr_more(&d->r, &first)) {
		jr_name(&d->r, k, sizeof(k));
		if (strcmp(k, "id") == 0) {
			if ((err = seen(d, &mask, F_ID, k)) < 0 ||
			    (err = get_u64(d, k, &s->id)) < 0)
				return err;
			if (s->id == RAFT_NONE)
				BAD(d, "server id 0");
		} else if (strcmp(k, "role") == 0) {
			int r;
			if ((err = seen(d, &mask, F_ROLE, k)) < 0)
				return err;
			if ((r = get_name(d, &msg_roles)) < 0)
				BAD(d, "unknown server role");
			s->role = (enum raft_server_role)r;
		} else if (strcmp(k, "addr") == 0) {
			size_t n;
			if ((err = seen(d, &mask, F_ADDR, k)) < 0)
				return err;
			if (jr_kind(&d->r) != '"')
				BAD(d, "\"addr\" is not a string");
			n = jr_str(&d->r, s->addr, sizeof(s->addr));
			if (n >= sizeof(s->addr) ||
			    !kv_utf8_valid(s->addr, n, false))
				BAD(d, "bad server address");
		} else {
			BAD(d, "unknown server field \"%s\"", k);
		}
	}
	if (mask != (F_ID | F_ROLE | F_ADDR))
		BAD(d, "a server lacks id, role or addr");
	return 0;
}

static int get_conf(struct dec *d, struct raft_config *c)
{
	bool first = true;
	int err;

	if (jr_kind(&d->r) != '[')
		BAD(d, "\"conf\" is not an array of at most %d servers",
		    RAFT_MAX_SERVERS);
	jr_enter(&d->r);
	while (jr_more(&d->r, &first)) {
		struct raft_server *x = &c->servers[c->n];
		if (c->n == RAFT_MAX_SERVERS)
			BAD(d, "\"conf\" is not an array of at most %d servers",
			    RAFT_MAX_SERVERS);
		if ((err = get_server(d, x)) < 0)
			return err;
		for (unsigned i = 0; i < c->n; i++)
			if (c->servers[i].id == x->id)
				BAD(d, "server %" PRIu64 " twice", x->id);
		c->n++;
	}
	return 0;
}

static int get_snapshot(struct dec *d, struct raft_snapshot_meta *s)
{
	enum { F_INDEX = 1, F_TERM = 2, F_CONF = 4 };
	unsigned mask = 0;
	char k[NAME_CAP];
	bool first = true;
	int err;

	if (jr_kind(&d->r) != '{')
		BAD(d, "\"snapshot\" is not an object");
	jr_enter(&d->r);
	while (jr_more(&d->r, &first)) {
		jr_name(&d->r, k, sizeof(k));
		if (strcmp(k, "index") == 0) {
			if ((err = seen(d, &mask, F_INDEX, k)) < 0 ||
			    (err = get_u64(d, k, &s->index)) < 0)
				return err;
		} else if (strcmp(k, "term") == 0) {
			if ((err = seen(d, &mask, F_TERM, k)) < 0 ||
			    (err = get_u64(d, k, &s->term)) < 0)
				return err;
		} else if (strcmp(k, "conf") == 0) {
			if ((err = seen(d, &mask, F_CONF, k)) < 0 ||
			    (err = get_conf(d, &s->conf)) < 0)
				return err;
		} else {
			BAD(d, "unknown snapshot field \"%s\"", k);
		}
	}
	if (mask != (F_INDEX | F_TERM | F_CONF))
		BAD(d, "\"snapshot\" lacks index, term or conf");
	return 0;
}

/* Make room for one more of n elements of size sz in *arr (capacity
 * *cap), the new one zeroed. 0 or -ENOMEM. */
static int grow(void **arr, size_t *cap, size_t n, size_t sz)
{
	if (n == *cap) {
		size_t c = *cap ? *cap * 2 : 16;
		void *p = realloc(*arr, c * sz);
		if (p == NULL)
			return -ENOMEM;
		*arr = p;
		*cap = c;
	}
	memset((char *)*arr + n * sz, 0, sz);
	return 0;
}

static int get_entries(struct dec *d, struct raft_message *m)
{
	size_t cap = 0;
	bool first = true;
	int err;

	if (jr_kind(&d->r) != '[')
		BAD(d, "\"entries\" is not an array");
	jr_enter(&d->r);
	while (jr_more(&d->r, &first)) {
		if ((err = grow((void **)&m->entries, &cap, m->n_entries,
				sizeof(*m->entries))) < 0)
			return err;
		/* Counted as it goes, so a failure frees what was decoded. */
		if ((err = get_entry(d, &m->entries[m->n_entries++])) < 0)
			return err;
	}
	return 0;
}

/* A message's fields, one bit each, and the integers among them. */
enum {
	M_TYPE = 1 << 0,
	M_TO = 1 << 1,
	M_TERM = 1 << 2,
	M_INDEX = 1 << 3,
	M_LOG_TERM = 1 << 4,
	M_COMMIT = 1 << 5,
	M_CTX = 1 << 6,
	M_HINT_INDEX = 1 << 7,
	M_HINT_TERM = 1 << 8,
	M_REJECT = 1 << 9,
	M_TRANSFER = 1 << 10,
	M_ENTRIES = 1 << 11,
	M_SNAPSHOT = 1 << 12,
};
static const struct {
	const char *name;
	unsigned bit;
	size_t off;
} msg_nums[] = {
    {"to", M_TO, offsetof(struct raft_message, to)},
    {"term", M_TERM, offsetof(struct raft_message, term)},
    {"index", M_INDEX, offsetof(struct raft_message, index)},
    {"log_term", M_LOG_TERM, offsetof(struct raft_message, log_term)},
    {"commit", M_COMMIT, offsetof(struct raft_message, commit)},
    {"ctx", M_CTX, offsetof(struct raft_message, ctx)},
    {"hint_index", M_HINT_INDEX, offsetof(struct raft_message, hint_index)},
    {"hint_term", M_HINT_TERM, offsetof(struct raft_message, hint_term)},
};
#define N_MSG_NUMS (sizeof(msg_nums) / sizeof(msg_nums[0]))

static int get_msg(struct dec *d, struct raft_message *m)
{
	unsigned mask = 0;
	/* Where entries and snapshot start: read once the type is known. */
	struct jr entries, snapshot, end;
	char k[NAME_CAP];
	bool first = true;
	int err;

	if (jr_kind(&d->r) != '{')
		BAD(d, "a message is not an object");
	jr_enter(&d->r);
	while (jr_more(&d->r, &first)) {
		size_t i;

		jr_name(&d->r, k, sizeof(k));
		for (i = 0; i < N_MSG_NUMS; i++)
			if (strcmp(k, msg_nums[i].name) == 0)
				break;
		if (i < N_MSG_NUMS) {
			uint64_t *field =
			    (uint64_t *)((char *)m + msg_nums[i].off);
			if ((err = seen(d, &mask, msg_nums[i].bit, k)) < 0 ||
			    (err = get_u64(d, k, field)) < 0)
				return err;
		} else if (strcmp(k, "type") == 0) {
			int t;
			if ((err = seen(d, &mask, M_TYPE, k)) < 0)
				return err;
			if ((t = get_name(d, &msg_types)) < 0)
				BAD(d, "unknown message type");
			m->type = (enum raft_msg_type)t;
		} else if (strcmp(k, "reject") == 0) {
			if ((err = seen(d, &mask, M_REJECT, k)) < 0 ||
			    (err = get_bool(d, k, &m->reject)) < 0)
				return err;
		} else if (strcmp(k, "transfer") == 0) {
			if ((err = seen(d, &mask, M_TRANSFER, k)) < 0 ||
			    (err = get_bool(d, k, &m->transfer)) < 0)
				return err;
		} else if (strcmp(k, "entries") == 0) {
			if ((err = seen(d, &mask, M_ENTRIES, k)) < 0)
				return err;
			entries = d->r;
			jr_skip(&d->r);
		} else if (strcmp(k, "snapshot") == 0) {
			if ((err = seen(d, &mask, M_SNAPSHOT, k)) < 0)
				return err;
			snapshot = d->r;
			jr_skip(&d->r);
		} else {
			BAD(d, "unknown message field \"%s\"", k);
		}
	}
	if ((mask & (M_TYPE | M_TO | M_TERM)) != (M_TYPE | M_TO | M_TERM))
		BAD(d, "a message lacks type, to or term");
	if ((mask & M_ENTRIES) && m->type != RAFT_MSG_APPEND &&
	    m->type != RAFT_MSG_PROPOSE)
		BAD(d, "\"entries\" in a %s message",
		    peer_msg_type_name(m->type));
	if (!!(mask & M_SNAPSHOT) != (m->type == RAFT_MSG_SNAPSHOT))
		BAD(d, "\"snapshot\" goes with, and only with, a snapshot "
		       "message");
	end = d->r;
	if (mask & M_ENTRIES) {
		d->r = entries;
		if ((err = get_entries(d, m)) < 0)
			return err;
	}
	if (mask & M_SNAPSHOT) {
		d->r = snapshot;
		if ((err = get_snapshot(d, &m->snapshot)) < 0)
			return err;
	}
	d->r = end;
	return 0;
}

/* Only JSON whitespace in p[0..n). */
static bool blank(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != ' ' && p[i] != '\t' && p[i] != '\n' && p[i] != '\r')
			return false;
	return true;
}

/* The batch's own fields, in the order they came. A batch has five; a
 * sixth is surely unknown or a duplicate, so no more are kept. */
enum { F_KVFS = 1, F_VERSION = 2, F_CLUSTER = 4, F_FROM = 8, F_MSGS = 16 };
#define TOP_MAX 6
struct top {
	unsigned bit; /* 0: unknown */
	char name[NAME_CAP];
	struct jr at; /* its value */
};

/* Move the reader to a value found earlier: its kind. */
static char kind_at(struct dec *d, const struct jr *at)
{
	d->r = *at;
	return jr_kind(&d->r);
}

/* Everything before the messages: the version first (another version may
 * have other fields), then the fields, the cluster and the sender. The
 * messages' position in *list. */
static int get_envelope(struct dec *d, const char *cluster_id, uint64_t *sender,
			struct jr *list)
{
	struct top top[TOP_MAX];
	const struct jr *kvfs = NULL, *version = NULL, *cluster = NULL;
	char buf[PEER_ID_MAX + 1];
	size_t ntop = 0;
	unsigned mask = 0;
	bool first = true;
	uint64_t v;
	int err;

	if (jr_kind(&d->r) != '{')
		BAD(d, "not a JSON object");
	jr_enter(&d->r);
	while (jr_more(&d->r, &first)) {
		struct top t = {0};
		jr_name(&d->r, t.name, sizeof(t.name));
		t.bit = strcmp(t.name, "kvfs") == 0	 ? F_KVFS
			: strcmp(t.name, "version") == 0 ? F_VERSION
			: strcmp(t.name, "cluster") == 0 ? F_CLUSTER
			: strcmp(t.name, "from") == 0	 ? F_FROM
			: strcmp(t.name, "msgs") == 0	 ? F_MSGS
							 : 0;
		t.at = d->r;
		jr_skip(&d->r);
		if (ntop < TOP_MAX)
			top[ntop++] = t;
	}
	for (size_t i = 0; i < ntop; i++) { /* the first of each counts */
		if (top[i].bit == F_KVFS && kvfs == NULL)
			kvfs = &top[i].at;
		if (top[i].bit == F_VERSION && version == NULL)
			version = &top[i].at;
	}
	if (kvfs == NULL || version == NULL || kind_at(d, kvfs) != '"' ||
	    jr_str(&d->r, buf, sizeof(buf)) != 4 || strcmp(buf, "raft") != 0)
		BAD(d, "not a kvfs raft batch (no kvfs/version)");
	d->r = *version;
	if ((err = get_u64(d, "version", &v)) < 0)
		return err;
	if (v != PEER_PROTOCOL_VERSION) {
		say(d->why, d->why_len,
		    "peer protocol version %" PRIu64 ", this node speaks %d", v,
		    PEER_PROTOCOL_VERSION);
		return KV_EVERSION;
	}
	for (size_t i = 0; i < ntop; i++) {
		if (top[i].bit == 0)
			BAD(d, "unknown field \"%s\"", top[i].name);
		if ((err = seen(d, &mask, top[i].bit, top[i].name)) < 0)
			return err;
		d->r = top[i].at;
		if (top[i].bit == F_CLUSTER)
			cluster = &top[i].at;
		else if (top[i].bit == F_MSGS)
			*list = top[i].at;
		else if (top[i].bit == F_FROM &&
			 (err = get_u64(d, "from", sender)) < 0)
			return err;
	}
	if (cluster == NULL || kind_at(d, cluster) != '"')
		BAD(d, "no cluster id");
	if (cluster_id == NULL ||
	    jr_str(&d->r, buf, sizeof(buf)) != strlen(cluster_id) ||
	    strcmp(buf, cluster_id) != 0) {
		say(d->why, d->why_len, "from another cluster");
		return -EPERM;
	}
	if (!(mask & F_FROM) || *sender == RAFT_NONE || !(mask & F_MSGS) ||
	    kind_at(d, list) != '[')
		BAD(d, "no sender or no message list");
	return 0;
}

int peer_msgs_decode(const char *body, size_t len, const char *cluster_id,
		     uint64_t *from, struct raft_message **msgs, size_t *n,
		     char *why, size_t why_len)
{
	struct dec d = {why, why_len, {body, body}};
	struct raft_message *out = NULL;
	size_t count = 0, cap = 0;
	uint64_t sender = 0;
	struct jr list;
	const char *end;
	bool first = true;
	int err;

	say(why, why_len, "ok");
	if (body == NULL) {
		say(why, why_len, "no body");
		return -EINVAL;
	}
	if (jr_check(body, len, &end) < 0) {
		say(why, why_len, "not JSON");
		return -EINVAL;
	}
	if (!blank(end, len - (size_t)(end - body))) {
		say(why, why_len, "bytes after the JSON document");
		return -EINVAL;
	}
	d.r.end = end;
	if ((err = get_envelope(&d, cluster_id, &sender, &list)) < 0)
		return err;
	d.r = list;
	jr_enter(&d.r);
	while (jr_more(&d.r, &first)) {
		if (count == PEER_MAX_MSGS) {
			say(why, why_len, "more than %d messages in one batch",
			    PEER_MAX_MSGS);
			err = -EINVAL;
			goto err_msgs;
		}
		if ((err = grow((void **)&out, &cap, count, sizeof(*out))) < 0)
			goto err_msgs;
		struct raft_message *m = &out[count++];
		if ((err = get_msg(&d, m)) < 0)
			goto err_msgs;
		m->from = sender;
	}
	if (from != NULL)
		*from = sender;
	*msgs = out;
	*n = count;
	say(why, why_len, "ok");
	return 0;

err_msgs:
	peer_msgs_free(out, count);
	return err;
}

void peer_msgs_free(struct raft_message *msgs, size_t n)
{
	if (msgs == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < msgs[i].n_entries; j++)
			raft_entry_release(&msgs[i].entries[j]);
		free(msgs[i].entries);
	}
	free(msgs);
}
