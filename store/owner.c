/* owner.c - what every thread of the store uses to reach the owner: its
 * request queue, the sticky failure, the snapshot trigger, and the JSON
 * form of configuration entries.
 *
 * These sit below the files of the store's threads (append.c, applier.c,
 * snapshot.c, recovery.c, store.c), so that each of them can ask the
 * owner for a turn, fail the store or write a configuration without
 * calling back into a file above it. The state is described in
 * store_int.h. */
#include <errno.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "store_int.h"

void owner_complete(struct req *r, int ret)
{
	r->ret = ret;
	sem_post(&r->done);
}

void owner_push_locked(struct store *st, struct req *r)
{
	r->next = NULL;
	if (st->tail)
		st->tail->next = r;
	else
		st->head = r;
	st->tail = r;
	pthread_cond_signal(&st->cond);
}

void owner_wake(struct store *st)
{
	pthread_mutex_lock(&st->mu);
	pthread_cond_signal(&st->cond);
	pthread_mutex_unlock(&st->mu);
}

void store_fail(struct store *st, int err, const char *what)
{
	int none = 0;
	if (!atomic_compare_exchange_strong(&st->failed, &none, err))
		return;
	st->failed_ms = kv_mono_ms();
	kv_log(KV_LOG_ERROR, "%s: %s; refusing writes", what, kv_strerror(err));
}

void owner_kick_if_due(struct store *st)
{
	if (st->pub_applied < st->due_applied &&
	    st->pub_log_bytes < st->due_bytes)
		return;
	if (atomic_exchange(&st->kicked, true))
		return; /* a turn is asked for already */
	owner_wake(st);
}

char *store_conf_to_json(const void *text, size_t len)
{
	char *t = strndup(text, len);
	if (!t)
		return NULL;
	cJSON *j = cJSON_CreateString(t);
	free(t);
	char *out = j ? cJSON_PrintUnformatted(j) : NULL;
	cJSON_Delete(j);
	return out;
}

char *store_conf_from_json(const char *json, size_t len, size_t *out_len)
{
	cJSON *j = cJSON_ParseWithLength(json, len);
	char *out = NULL;
	if (cJSON_IsString(j)) {
		out = strdup(j->valuestring);
		if (out)
			*out_len = strlen(out);
	}
	cJSON_Delete(j);
	return out;
}
