/* dotkvfs.c - the streams of .kvfs/events: one per open, the changes
 * under the mount as this node applies them (docs/mount.md, ".kvfs/").
 *
 * A stream is the bytes made for one open: a first line
 * {"progress":R} (every change up to R is before the stream), then one
 * line per event of the store's history under the mount's prefix, as
 * GET /kv/...?watch writes them without values. Lines are made from the
 * history (store_watch_read) into the stream's buffer, at most
 * DOT_UNREAD bytes ahead of what was read: a slow reader holds that much
 * and nothing else; the history is the backlog. If the history dropped
 * events the stream did not take yet, it gets a "compacted" line saying
 * from which revision on they were lost and where it goes on (the oldest
 * kept), never a silent gap. DOT_KEEP bytes already read stay, so a
 * reader may read back that far (tail -f reads its last lines backwards
 * from the end it is shown at the open, which is at most DOT_UNREAD and
 * a batch).
 *
 * The store's hook (the applier's thread: it only sets a flag) wakes
 * kvfs-events, which takes the new events into every stream, answers the
 * read parked on it if its data came, and notifies its poll handle. A
 * read with data answers at once; without, EAGAIN (O_NONBLOCK) or it is
 * parked (the FUSE worker returns, so a thousand blocked readers hold no
 * thread). The streams are under dot->mu; the history's lock is taken
 * inside it, never the other way round. The hook takes only kick_mu,
 * which nobody holds for longer than setting a flag, so however long
 * kvfs-events works on many streams under mu, the applier never waits
 * for it. */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "dotkvfs_int.h"

#define DOT_UNREAD (64u << 10)
#define DOT_KEEP   (256u << 10)
#define DOT_BATCH  64

struct fs_dot_stream {
	struct fs_dot_stream *prev, *next;
	uint64_t next_rev; /* the first revision not taken yet */
	struct kv_buf buf; /* the stream's bytes [base, base + buf.len) */
	uint64_t base;
	uint64_t rd; /* the end of the furthest read answered */
	/* a read parked for data: ready once its interrupt callback is in
	 * place (only then may the thread answer it) */
	fuse_req_t req;
	size_t req_size;
	uint64_t req_off;
	bool req_ready;
	struct fuse_pollhandle *ph;
};

struct fs_dot {
	struct fs *fs;
	struct store *st;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct fs_dot_stream *head;
	struct fs_dot_open *opens; /* every open file of .kvfs */
	uint64_t total;		   /* bytes made for every stream, ever */
	int64_t mtime_ns;	   /* when the last line was made */
	bool stop, started, hooked;
	pthread_t thread;
	pthread_mutex_t kick_mu; /* guards kick, and stop for the thread */
	bool kick;
	bool stopping;
	/* streams open: the store's hook wakes the thread only if any. It
	 * is raised before the new stream's first fill, and the hook reads
	 * it after the event is in the history, so an event the hook does
	 * not announce is one that fill finds. */
	atomic_uint streams;
};

static uint64_t end_of(const struct fs_dot_stream *s)
{
	return s->base + s->buf.len;
}

/* Drop what was read more than DOT_KEEP bytes ago. mu held. */
static void trim(struct fs_dot_stream *s)
{
	if (s->rd < s->base + DOT_KEEP)
		return;
	size_t drop = (size_t)(s->rd - DOT_KEEP - s->base);
	if (drop > s->buf.len)
		drop = s->buf.len;
	memmove(s->buf.p, s->buf.p + drop, s->buf.len - drop);
	s->buf.len -= drop;
	s->base += drop;
}

static void event_line(struct kv_buf *b, const struct store_event *e)
{
	store_event_line(b, e, false); /* as ?watch&values=0 */
}

/* One read of the history into s: false when there was nothing to take
 * (or no memory). mu held. */
static bool take_some(struct fs_dot *d, struct fs_dot_stream *s)
{
	struct store_event stack[DOT_BATCH], *ev = stack;
	size_t n = 0, cap = DOT_BATCH, before = s->buf.len;
	uint64_t next = s->next_rev, oldest = 0;
	int ret;
	/* one revision (an add of many counters) may need more room */
	while ((ret = store_watch_read(d->st, s->next_rev, d->fs->prefix,
				       d->fs->plen, ev, cap, &n, &next,
				       &oldest)) == -ENOBUFS) {
		if (ev != stack)
			free(ev);
		cap *= 2;
		if (!(ev = malloc(cap * sizeof(*ev))))
			return false;
	}
	if (ret == KV_EGONE) {
		kv_buf_printf(
		    &s->buf,
		    "{\"error\":\"the changes from revision %" PRIu64
		    " to %" PRIu64 " were dropped from the history "
		    "before this reader took them; read the keys "
		    "again\",\"code\":\"compacted\",\"lost_from\":%" PRIu64
		    ",\"oldest\":%" PRIu64 "}\n",
		    s->next_rev, oldest - 1, s->next_rev, oldest);
		s->next_rev = oldest;
	} else if (ret == 0) {
		for (size_t i = 0; i < n; i++)
			event_line(&s->buf, &ev[i]);
		store_events_free(ev, n);
		s->next_rev = next;
	}
	if (ev != stack)
		free(ev);
	if (s->buf.err) {
		s->buf.err = 0; /* what did not fit comes again */
		s->buf.len = before;
		return false;
	}
	d->total += s->buf.len - before;
	if (s->buf.len > before)
		d->mtime_ns = kv_wall_ns();
	return ret == KV_EGONE || n > 0;
}

/* Take what the history has into s, up to DOT_UNREAD unread. mu held. */
static void fill(struct fs_dot *d, struct fs_dot_stream *s)
{
	trim(s);
	while (end_of(s) - s->rd < DOT_UNREAD && take_some(d, s))
		;
}

/* Answer s's parked read if its data is there. mu held. */
static void serve(struct fs_dot_stream *s)
{
	if (s->ph && end_of(s) > s->rd) {
		fuse_lowlevel_notify_poll(s->ph);
		fuse_pollhandle_destroy(s->ph);
		s->ph = NULL;
	}
	if (!s->req || !s->req_ready || s->req_off >= end_of(s))
		return;
	size_t k = (size_t)(end_of(s) - s->req_off);
	if (k > s->req_size)
		k = s->req_size;
	fuse_reply_buf(s->req, s->buf.p + (s->req_off - s->base), k);
	if (s->req_off + k > s->rd)
		s->rd = s->req_off + k;
	s->req = NULL;
}

/* Wake kvfs-events: something may be there for a stream. */
static void kick(struct fs_dot *d)
{
	pthread_mutex_lock(&d->kick_mu);
	d->kick = true;
	pthread_cond_signal(&d->cond);
	pthread_mutex_unlock(&d->kick_mu);
}

/* The store's hook (the applier's thread, no store lock held). */
static void on_history(void *ctx, uint64_t first)
{
	(void)first;
	struct fs_dot *d = ctx;
	/* no stream, nothing to make: one wake-up a commit saved */
	if (atomic_load(&d->streams))
		kick(d);
}

static void *events_main(void *arg)
{
	struct fs_dot *d = arg;
	pthread_setname_np(pthread_self(), "kvfs-events");
	for (;;) {
		pthread_mutex_lock(&d->kick_mu);
		if (!d->kick && !d->stopping) {
			/* a second at most: a stream held back by DOT_UNREAD
			 * goes on once its reader read */
			struct timespec t = kv_deadline(1000);
			pthread_cond_timedwait(&d->cond, &d->kick_mu, &t);
		}
		bool stopping = d->stopping;
		d->kick = false;
		pthread_mutex_unlock(&d->kick_mu);
		if (stopping)
			return NULL;
		pthread_mutex_lock(&d->mu);
		for (struct fs_dot_stream *s = d->head; s; s = s->next) {
			fill(d, s);
			serve(s);
		}
		pthread_mutex_unlock(&d->mu);
	}
}

int fs_dot_start(struct fs *fs)
{
	struct fs_dot *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->fs = fs;
	d->st = node_store(fs->node);
	pthread_mutex_init(&d->mu, NULL);
	pthread_mutex_init(&d->kick_mu, NULL);
	atomic_init(&d->streams, 0);
	kv_cond_init(&d->cond);
	int ret = d->st ? store_watch_hook(d->st, on_history, d) : -ENOSYS;
	if (ret != 0) {
		/* no history to read: .kvfs/events opens fail (EIO) */
		fprintf(stderr, "kvfs: .kvfs/events unavailable: %s\n",
			kv_strerror(ret));
		d->st = NULL;
	} else {
		d->hooked = true;
	}
	ret = -pthread_create(&d->thread, NULL, events_main, d);
	if (ret != 0) {
		if (d->hooked)
			store_watch_unhook(d->st, on_history, d);
		pthread_cond_destroy(&d->cond);
		pthread_mutex_destroy(&d->kick_mu);
		pthread_mutex_destroy(&d->mu);
		free(d);
		return ret;
	}
	d->started = true;
	fs->dot = d;
	return 0;
}

/* A parked read's interrupt (libfuse's thread, the request's lock held;
 * the request lives on until this returns). */
static void interrupted(fuse_req_t req, void *data)
{
	struct fs_dot *d = data;
	pthread_mutex_lock(&d->mu);
	for (struct fs_dot_stream *s = d->head; s; s = s->next)
		if (s->req == req && s->req_ready) {
			s->req = NULL;
			fuse_reply_err(req, EINTR);
		}
	pthread_mutex_unlock(&d->mu);
}

void fs_dot_stop(struct fs *fs)
{
	struct fs_dot *d = fs->dot;
	if (!d || !d->started)
		return;
	pthread_mutex_lock(&d->mu);
	d->stop = true; /* no read parks from now on */
	pthread_mutex_unlock(&d->mu);
	pthread_mutex_lock(&d->kick_mu);
	d->stopping = true;
	pthread_cond_signal(&d->cond);
	pthread_mutex_unlock(&d->kick_mu);
	pthread_join(d->thread, NULL);
	d->started = false;
	if (d->hooked)
		store_watch_unhook(d->st, on_history, d);
	d->hooked = false;
	pthread_mutex_lock(&d->mu);
	for (struct fs_dot_stream *s = d->head; s; s = s->next) {
		if (s->req && s->req_ready)
			fuse_reply_err(s->req, EINTR);
		s->req = NULL;
		if (s->ph)
			fuse_pollhandle_destroy(s->ph);
		s->ph = NULL;
	}
	pthread_mutex_unlock(&d->mu);
}

void fs_dot_open_add(struct fs *fs, struct fs_dot_open *o)
{
	struct fs_dot *d = fs->dot;
	pthread_mutex_lock(&d->mu);
	o->prev = NULL;
	o->next = d->opens;
	if (d->opens)
		d->opens->prev = o;
	d->opens = o;
	pthread_mutex_unlock(&d->mu);
}

void fs_dot_open_del(struct fs *fs, struct fs_dot_open *o)
{
	struct fs_dot *d = fs->dot;
	pthread_mutex_lock(&d->mu);
	if (o->prev)
		o->prev->next = o->next;
	else
		d->opens = o->next;
	if (o->next)
		o->next->prev = o->prev;
	pthread_mutex_unlock(&d->mu);
}

void fs_dot_free(struct fs *fs)
{
	struct fs_dot *d = fs->dot;
	if (!d)
		return;
	fs_dot_stop(fs);
	while (d->opens) {
		struct fs_dot_open *o = d->opens;
		fs_dot_open_del(fs, o);
		o->free(fs, o);
	}
	while (d->head)
		fs_dot_stream_close(fs, d->head);
	pthread_cond_destroy(&d->cond);
	pthread_mutex_destroy(&d->kick_mu);
	pthread_mutex_destroy(&d->mu);
	free(d);
	fs->dot = NULL;
}

struct fs_dot_stream *fs_dot_stream_open(struct fs *fs, uint64_t from)
{
	struct fs_dot *d = fs->dot;
	if (!d || !d->st)
		return NULL;
	struct fs_dot_stream *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	kv_buf_init(&s->buf);
	s->next_rev = from;
	kv_buf_puts(&s->buf, "{\"progress\":");
	kv_buf_u64(&s->buf, from - 1);
	kv_buf_puts(&s->buf, "}\n");
	if (s->buf.err) {
		kv_buf_free(&s->buf);
		free(s);
		return NULL;
	}
	pthread_mutex_lock(&d->mu);
	d->total += s->buf.len;
	d->mtime_ns = kv_wall_ns();
	s->next = d->head;
	if (d->head)
		d->head->prev = s;
	d->head = s;
	atomic_fetch_add(&d->streams, 1);
	fill(d, s);
	pthread_mutex_unlock(&d->mu);
	return s;
}

void fs_dot_stream_close(struct fs *fs, struct fs_dot_stream *s)
{
	struct fs_dot *d = fs->dot;
	pthread_mutex_lock(&d->mu);
	if (s->prev)
		s->prev->next = s->next;
	else
		d->head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	atomic_fetch_sub(&d->streams, 1);
	if (s->ph)
		fuse_pollhandle_destroy(s->ph);
	if (s->req && s->req_ready)
		fuse_reply_err(s->req,
			       EINTR); /* cannot be: the read holds it */
	pthread_mutex_unlock(&d->mu);
	kv_buf_free(&s->buf);
	free(s);
}

uint64_t fs_dot_stream_size(struct fs *fs, struct fs_dot_stream *s)
{
	struct fs_dot *d = fs->dot;
	pthread_mutex_lock(&d->mu);
	fill(d, s);
	uint64_t n = end_of(s);
	pthread_mutex_unlock(&d->mu);
	return n;
}

uint64_t fs_dot_total(struct fs *fs, int64_t *mtime_ns)
{
	struct fs_dot *d = fs->dot;
	if (!d)
		return *mtime_ns = fs->mount_ns, 0;
	pthread_mutex_lock(&d->mu);
	for (struct fs_dot_stream *s = d->head; s; s = s->next)
		fill(d, s);
	uint64_t n = d->total;
	*mtime_ns = d->mtime_ns ? d->mtime_ns : fs->mount_ns;
	pthread_mutex_unlock(&d->mu);
	return n;
}

void fs_dot_stream_read(fuse_req_t req, struct fs *fs, struct fs_dot_stream *s,
			size_t size, uint64_t off, bool nonblock)
{
	struct fs_dot *d = fs->dot;
	int err = 0;
	pthread_mutex_lock(&d->mu);
	fill(d, s);
	if (off < s->base) {
		err = EINVAL; /* read and dropped */
	} else if (off < end_of(s) || size == 0) {
		size_t k = (size_t)(end_of(s) > off ? end_of(s) - off : 0);
		if (k > size)
			k = size;
		fuse_reply_buf(req, s->buf.p + (off - s->base), k);
		if (off + k > s->rd)
			s->rd = off + k;
		pthread_mutex_unlock(&d->mu);
		return;
	} else if (nonblock) {
		err = EAGAIN;
	} else if (s->req || d->stop) {
		err = s->req ? EBUSY : EINTR;
	} else {
		s->req = req;
		s->req_size = size;
		s->req_off = off;
		s->req_ready = false;
	}
	pthread_mutex_unlock(&d->mu);
	if (err) {
		fuse_reply_err(req, err);
		return;
	}
	/* with s->req set (an interrupt that came first calls it at once and
	 * finds it not ready: nothing), then ready, and the thread looks */
	fuse_req_interrupt_func(req, interrupted, d);
	pthread_mutex_lock(&d->mu);
	if (fuse_req_interrupted(req) || d->stop) {
		s->req = NULL;
		fuse_reply_err(req, EINTR);
	} else {
		s->req_ready = true;
	}
	pthread_mutex_unlock(&d->mu);
	kick(d); /* a line that came meanwhile answers it */
}

void fs_dot_stream_poll(fuse_req_t req, struct fs *fs, struct fs_dot_stream *s,
			struct fuse_pollhandle *ph)
{
	struct fs_dot *d = fs->dot;
	unsigned revents = 0;
	pthread_mutex_lock(&d->mu);
	fill(d, s);
	if (end_of(s) > s->rd) {
		revents = POLLIN | POLLRDNORM;
		if (ph)
			fuse_pollhandle_destroy(ph);
	} else if (ph) {
		if (s->ph)
			fuse_pollhandle_destroy(s->ph);
		s->ph = ph; /* kvfs-events notifies it */
	}
	pthread_mutex_unlock(&d->mu);
	fuse_reply_poll(req, revents);
}
