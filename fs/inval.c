/* inval.c - invalidating the kernel's caches when a key changes.
 *
 * The node tells us of every applied change on its node thread, which
 * must not block, and the kernel must not be told from inside a
 * FUSE operation on the same inode (the notification waits for locks the
 * operation holds: a deadlock). So the callback only queues the key's
 * path, and one thread of ours empties the queue, invalidating the path
 * (pages and attributes) and its parent directory; fs.c wires it to
 * fuse_invalidate_path.
 *
 * The queue is a buffer of NUL-terminated paths, appended to under the
 * lock, and swapped with the thread's spare one when the thread takes
 * it: no allocation a change once the buffers have grown. The thread is
 * woken once for a chunk of applied entries (fs_inval_flush, after the
 * chunk and before its writers are answered), not for each change: woken
 * for each, it took every path as it came and slept again, one wake-up
 * a change on the node thread. A buffer past INVAL_WAKE_BYTES wakes it
 * by itself. The queue is unbounded (it holds only what the thread has
 * not taken yet), and a buffer a burst grew is freed once drained. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fs_int.h"

#define INVAL_WAKE_BYTES (64u * 1024u)
/* A spare buffer grown past this by a burst (an rmdir of a big tree) is
 * freed, not kept. */
#define INVAL_KEEP_BYTES (1024u * 1024u)

static void *inval_main(void *arg)
{
	pthread_setname_np(pthread_self(), "kvfs-inval");
	struct fs_inval *iv = arg;
	char parent[KV_MAX_KEY + 2];
	char last_parent[KV_MAX_KEY + 2] = "";
	char *mine = NULL; /* the spare buffer, drained */
	size_t mine_cap = 0;

	pthread_mutex_lock(&iv->lock);
	for (;;) {
		while (iv->len == 0 && !iv->stop)
			pthread_cond_wait(&iv->cond, &iv->lock);
		if (iv->stop)
			break;
		char *batch = iv->buf;
		size_t len = iv->len, cap = iv->cap;
		iv->buf = mine;
		iv->cap = mine_cap;
		iv->len = 0;
		pthread_mutex_unlock(&iv->lock);

		last_parent[0] = '\0';
		uint64_t n = 0;
		for (size_t off = 0; off < len; n++) {
			const char *path = batch + off;
			off += strlen(path) + 1;
			/* -ENOENT: the kernel does not know the path; fine. */
			iv->invalidate(iv->invalidate_ctx, path);
			if (fs_path_parent(path, parent, sizeof(parent)) == 0 &&
			    strcmp(parent, last_parent) != 0) {
				iv->invalidate(iv->invalidate_ctx, parent);
				strcpy(last_parent, parent);
			}
		}
		if (cap > INVAL_KEEP_BYTES) { /* a burst's: not kept */
			free(batch);
			batch = NULL;
			cap = 0;
		}
		mine = batch;
		mine_cap = cap;
		pthread_mutex_lock(&iv->lock);
		iv->done += n;
		pthread_cond_broadcast(&iv->cond);
	}
	pthread_mutex_unlock(&iv->lock);
	free(mine);
	return NULL;
}

int fs_inval_start(struct fs_inval *iv, const char *prefix, size_t plen,
		   int (*invalidate)(void *ctx, const char *path), void *ctx)
{
	memset(iv, 0, sizeof(*iv));
	iv->prefix = prefix;
	iv->plen = plen;
	iv->invalidate = invalidate;
	iv->invalidate_ctx = ctx;
	if (pthread_mutex_init(&iv->lock, NULL) != 0)
		return -ENOMEM;
	if (pthread_cond_init(&iv->cond, NULL) != 0)
		goto err_mutex;
	int ret = pthread_create(&iv->thread, NULL, inval_main, iv);
	if (ret != 0)
		goto err_cond;
	iv->started = true;
	return 0;

err_cond:
	pthread_cond_destroy(&iv->cond);
err_mutex:
	pthread_mutex_destroy(&iv->lock);
	return -ENOMEM;
}

void fs_inval_push(void *ctx, const char *key, size_t klen)
{
	struct fs_inval *iv = ctx;
	char path[KV_MAX_KEY + 2];
	if (fs_key_to_path(iv->prefix, iv->plen, key, klen, path,
			   sizeof(path)) != 0)
		return; /* outside this mount's subtree */
	size_t len = strlen(path) + 1;
	pthread_mutex_lock(&iv->lock);
	if (!iv->stop && iv->len + len > iv->cap) {
		size_t cap = iv->cap ? iv->cap : 4096;
		while (cap < iv->len + len)
			cap *= 2;
		char *p = realloc(iv->buf, cap);
		if (p) {
			iv->buf = p;
			iv->cap = cap;
		}
	}
	if (iv->stop || iv->len + len > iv->cap) {
		iv->dropped++;
		pthread_mutex_unlock(&iv->lock);
		return;
	}
	memcpy(iv->buf + iv->len, path, len);
	iv->len += len;
	iv->queued++;
	if (iv->len >= INVAL_WAKE_BYTES)
		pthread_cond_signal(&iv->cond);
	pthread_mutex_unlock(&iv->lock);
}

void fs_inval_flush(void *ctx)
{
	struct fs_inval *iv = ctx;
	pthread_mutex_lock(&iv->lock);
	if (iv->len > 0)
		pthread_cond_signal(&iv->cond);
	pthread_mutex_unlock(&iv->lock);
}

void fs_inval_stop(struct fs_inval *iv)
{
	if (!iv->started)
		return;
	pthread_mutex_lock(&iv->lock);
	iv->stop = true;
	pthread_cond_broadcast(&iv->cond);
	pthread_mutex_unlock(&iv->lock);
}

void fs_inval_join(struct fs_inval *iv)
{
	if (!iv->started)
		return;
	pthread_join(iv->thread, NULL);
	free(iv->buf);
	iv->buf = NULL;
	iv->len = iv->cap = 0;
	pthread_cond_destroy(&iv->cond);
	pthread_mutex_destroy(&iv->lock);
	iv->started = false;
}
