/* predecode.c - the commands of the log after the db, decoded on a
 * thread of their own ahead of the replay's applies.
 *
 * At a restart the entries after the db go to the Raft core
 * (store_recover) and come back to store_apply once committed, on the
 * node thread, which decoded each command (the JSON check, the fields,
 * the key's and value's copies) and built its record: for 390,000 entries
 * about half of that thread's time, and the node serves nothing new
 * until the last is applied. So store_recover starts kvfs-predec on its
 * copies of them (one allocation, shared with the copies it hands the
 * core): it decodes each command in log order into a ring of
 * PRE_WINDOW slots and builds a put's record with it (kv_cmd.prep, as
 * prepare.c does for a big value), while the node thread applies the
 * ones before. store_apply takes an entry's command from its slot when
 * the slot is that entry's: the same index and term (Log Matching: the
 * same entry) and the same length; otherwise (a follower's log cut by a
 * new leader, a decode that ran out of memory) it decodes its own, as
 * before. The outcome of a decode, a bad line's -EINVAL included, is
 * kv_cmd_decode's either way. The thread is done once the applies are
 * past its last entry, or at store_close; it waits while it is
 * PRE_WINDOW entries ahead, so what it holds is bounded. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "store_int.h"

#define PRE_WINDOW 4096 /* commands decoded ahead, at most */
#define PRE_BATCH  64	/* decoded between two hand-overs (wake-ups) */
#define PRE_NONE   1	/* a slot's err for an entry that is no command */

struct pre_arena {
	atomic_uint refs;
	char bytes[];
};

struct pre_slot {
	struct kv_cmd cmd;
	int err;
};

struct pre_ent {
	uint64_t term;
	size_t len;
	const char *data; /* in the arena; NULL: not a command */
};

struct predecode {
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct pre_arena *arena; /* the thread's reference, until it is done */
	struct pre_ent *ents;
	size_t n;
	uint64_t from; /* the index of ents[0] */
	/* Slots filled, in order (stored by the thread under mu, with
	 * release: the slots before it are written), and the applies past
	 * ents[0..taken) (stored by the applies, with release: those slots
	 * are read and may be filled again). A take reads both without mu
	 * when its slot is ready; mu and cond are for the waits. */
	atomic_size_t decoded;
	atomic_size_t taken;
	bool stop; /* under mu */
	struct pre_slot ring[PRE_WINDOW];
};

void *pre_arena_new(size_t bytes)
{
	struct pre_arena *a = malloc(sizeof(*a) + (bytes ? bytes : 1));
	if (a)
		atomic_init(&a->refs, 1);
	return a;
}

char *pre_arena_bytes(void *arena)
{
	return ((struct pre_arena *)arena)->bytes;
}

void pre_arena_ref(void *arena)
{
	atomic_fetch_add_explicit(&((struct pre_arena *)arena)->refs, 1,
				  memory_order_relaxed);
}

void pre_arena_unref(void *arena)
{
	struct pre_arena *a = arena;
	if (a &&
	    atomic_fetch_sub_explicit(&a->refs, 1, memory_order_acq_rel) == 1)
		free(a);
}

/* A put's record built here (else the apply's), and the command's key
 * then read from the record's copy, as its value is (kv_cmd_clear knows
 * both): the decoded copy is freed on this thread, which made it. Freed
 * by the node thread, the copies went back to this thread's heap as
 * fastbin chunks, and each time this thread's heap grew (the records it
 * builds stay in the map) malloc merged them all first: a fifth of this
 * thread's time at 700k entries. */
static void pre_build(struct kv_cmd *cmd)
{
	if (store_prepare_rec(cmd) != 0 || cmd->prep == NULL)
		return;
	free(cmd->key);
	cmd->key = (char *)kv_rec_key(cmd->prep);
}

static void *pre_main(void *arg)
{
	struct predecode *p = arg;

	pthread_setname_np(pthread_self(), "kvfs-predec");
	size_t i;

	for (i = 0; i < p->n; i++) {
		if (i % PRE_BATCH == 0) {
			pthread_mutex_lock(&p->mu);
			atomic_store_explicit(&p->decoded, i,
					      memory_order_release);
			pthread_cond_broadcast(&p->cond);
			while (!p->stop &&
			       i + PRE_BATCH -
				       atomic_load_explicit(
					   &p->taken, memory_order_acquire) >
				   PRE_WINDOW)
				pthread_cond_wait(&p->cond, &p->mu);
			bool stop = p->stop;
			pthread_mutex_unlock(&p->mu);
			if (stop)
				break;
		}
		struct pre_slot *s = &p->ring[i % PRE_WINDOW];
		const struct pre_ent *e = &p->ents[i];
		if (e->data == NULL) {
			memset(&s->cmd, 0, sizeof(s->cmd));
			s->err = PRE_NONE;
		} else {
			s->err = kv_cmd_decode(e->data, e->len, &s->cmd);
			if (s->err == 0)
				pre_build(&s->cmd);
		}
	}
	pthread_mutex_lock(&p->mu);
	/* every slot filled is counted, for the free */
	atomic_store_explicit(&p->decoded, i, memory_order_release);
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->mu);
	pre_arena_unref(p->arena); /* the data is read */
	p->arena = NULL;
	return NULL;
}

struct predecode *predecode_start(const struct store_entry *e, size_t n,
				  void *arena)
{
	struct predecode *p = calloc(1, sizeof(*p));
	if (p == NULL || n == 0)
		goto err;
	p->ents = malloc(n * sizeof(*p->ents));
	if (p->ents == NULL)
		goto err;
	for (size_t i = 0; i < n; i++)
		p->ents[i] = (struct pre_ent){
		    e[i].term, e[i].len,
		    e[i].type == STORE_ENTRY_CMD ? e[i].data : NULL};
	p->n = n;
	p->from = e[0].index;
	p->arena = arena;
	atomic_init(&p->decoded, 0);
	atomic_init(&p->taken, 0);
	atomic_fetch_add_explicit(&((struct pre_arena *)arena)->refs, 1,
				  memory_order_relaxed);
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cond, NULL);
	if (pthread_create(&p->th, NULL, pre_main, p) == 0)
		return p;
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cond);
	pre_arena_unref(arena);
err:
	if (p)
		free(p->ents);
	free(p);
	return NULL; /* the applies decode their own */
}

/* Wait until slot i is filled, dropping the slots before it that no
 * apply takes (the node applies from elsewhere: a cut log). */
static void take_wait(struct predecode *p, size_t i)
{
	pthread_mutex_lock(&p->mu);
	for (;;) {
		/* the decoded entries before i are not applied here: dropped,
		 * so that the thread has room to reach i */
		size_t t =
		    atomic_load_explicit(&p->taken, memory_order_relaxed);
		size_t d =
		    atomic_load_explicit(&p->decoded, memory_order_acquire);
		for (; t < i && t < d; t++)
			kv_cmd_clear(&p->ring[t % PRE_WINDOW].cmd);
		atomic_store_explicit(&p->taken, t, memory_order_release);
		if (d > i)
			break;
		pthread_cond_broadcast(&p->cond); /* it may wait for room */
		pthread_cond_wait(&p->cond, &p->mu);
	}
	pthread_mutex_unlock(&p->mu);
}

bool predecode_take(struct predecode *p, const struct store_entry *e,
		    struct kv_cmd *cmd, int *err)
{
	if (e->index < p->from || e->index - p->from >= p->n)
		return false;
	size_t i = (size_t)(e->index - p->from);
	/* only the applies (this thread) store taken */
	size_t t = atomic_load_explicit(&p->taken, memory_order_relaxed);
	if (i < t)
		return false;
	/* in order and decoded already (the usual case): no lock */
	if (t != i ||
	    atomic_load_explicit(&p->decoded, memory_order_acquire) <= i)
		take_wait(p, i);
	struct pre_slot *s = &p->ring[i % PRE_WINDOW];
	bool ok = s->err != PRE_NONE && s->err != -ENOMEM &&
		  p->ents[i].term == e->term && p->ents[i].len == e->len;
	if (ok) {
		*cmd = s->cmd; /* the slot is refilled by the next decode */
		*err = s->err;
	} else {
		kv_cmd_clear(&s->cmd);
	}
	atomic_store_explicit(&p->taken, i + 1, memory_order_release);
	/* the thread waits for room for a batch: a wake-up a batch */
	if (i / PRE_BATCH != (i + 1) / PRE_BATCH) {
		pthread_mutex_lock(&p->mu);
		pthread_cond_broadcast(&p->cond);
		pthread_mutex_unlock(&p->mu);
	}
	return ok;
}

bool predecode_done(struct predecode *p)
{
	return atomic_load_explicit(&p->taken, memory_order_acquire) == p->n;
}

void predecode_free(struct predecode *p)
{
	if (p == NULL)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->mu);
	pthread_join(p->th, NULL);
	size_t d = atomic_load_explicit(&p->decoded, memory_order_relaxed);
	for (size_t k = atomic_load_explicit(&p->taken, memory_order_relaxed);
	     k < d; k++)
		kv_cmd_clear(&p->ring[k % PRE_WINDOW].cmd);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cond);
	free(p->ents);
	free(p);
}
