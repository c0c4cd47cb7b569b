/* inval.c - invalidating the kernel's caches when a key changes.
 *
 * The node tells us of every applied change on its node thread, which
 * must not block, and the kernel must not be told from inside a
 * FUSE operation on the same inode (the notification waits for locks the
 * operation holds: a deadlock). So the callback only queues the key's
 * path, and one thread of ours empties the queue, invalidating the path
 * (pages and attributes) and its parent directory. The queue is unbounded
 * (a malloc per change); fs.c wires it to fuse_invalidate_path. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fs_int.h"

struct fs_inval_item {
	struct fs_inval_item *next;
	char path[]; /* FUSE path, NUL-terminated */
};

static void *inval_main(void *arg)
{
	pthread_setname_np(pthread_self(), "kvfs-inval");
	struct fs_inval *iv = arg;
	char parent[KV_MAX_KEY + 2];
	char last_parent[KV_MAX_KEY + 2] = "";

	pthread_mutex_lock(&iv->lock);
	for (;;) {
		while (!iv->head && !iv->stop)
			pthread_cond_wait(&iv->cond, &iv->lock);
		if (iv->stop)
			break;
		struct fs_inval_item *batch = iv->head;
		iv->head = iv->tail = NULL;
		pthread_mutex_unlock(&iv->lock);

		last_parent[0] = '\0';
		uint64_t n = 0;
		while (batch) {
			struct fs_inval_item *it = batch;
			batch = it->next;
			/* -ENOENT: the kernel does not know the path; fine. */
			iv->invalidate(iv->invalidate_ctx, it->path);
			if (fs_path_parent(it->path, parent, sizeof(parent)) ==
				0 &&
			    strcmp(parent, last_parent) != 0) {
				iv->invalidate(iv->invalidate_ctx, parent);
				strcpy(last_parent, parent);
			}
			free(it);
			n++;
		}
		pthread_mutex_lock(&iv->lock);
		iv->done += n;
		pthread_cond_broadcast(&iv->cond);
	}
	pthread_mutex_unlock(&iv->lock);
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
	size_t len = strlen(path);
	struct fs_inval_item *it = malloc(sizeof(*it) + len + 1);
	pthread_mutex_lock(&iv->lock);
	if (!it || iv->stop) {
		iv->dropped++;
		pthread_mutex_unlock(&iv->lock);
		free(it);
		return;
	}
	memcpy(it->path, path, len + 1);
	it->next = NULL;
	if (iv->tail)
		iv->tail->next = it;
	else
		iv->head = it;
	iv->tail = it;
	iv->queued++;
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
	struct fs_inval_item *it = iv->head;
	while (it) {
		struct fs_inval_item *next = it->next;
		free(it);
		it = next;
	}
	iv->head = iv->tail = NULL;
	pthread_cond_destroy(&iv->cond);
	pthread_mutex_destroy(&iv->lock);
	iv->started = false;
}
