/* store_locks.c - reading the lock table, for the mount's lock
 * operations and its sessions.
 *
 * Reads like store_get: on the caller's thread under the map's read lock,
 * seeing every entry applied so far. The rules that change the table are
 * locks.c's (applied with the map, store_apply); these only look. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "locks.h"
#include "store_int.h"

int store_lock_test(struct store *st, const char *key, size_t klen,
		    enum kv_lock_kind kind, uint64_t sid, uint64_t owner,
		    enum kv_lock_type type, uint64_t start, uint64_t end,
		    struct store_lock *conflict)
{
	pthread_rwlock_rdlock(&st->map_lock);
	const struct lock_ent *e =
	    locks_conflict(map_locks_c(st->map), key, klen, kind, sid, owner,
			   type, start, end);
	if (e != NULL && conflict != NULL)
		*conflict = (struct store_lock){
		    .sid = e->sid,
		    .owner = e->owner,
		    .start = e->start,
		    .end = e->end,
		    .pid = e->pid,
		    .type = e->type,
		};
	pthread_rwlock_unlock(&st->map_lock);
	return e != NULL;
}

size_t store_locks_held(struct store *st, const char *key, size_t klen,
			enum kv_lock_kind kind, uint64_t sid, uint64_t owner)
{
	pthread_rwlock_rdlock(&st->map_lock);
	size_t n =
	    locks_held(map_locks_c(st->map), key, klen, kind, sid, owner);
	pthread_rwlock_unlock(&st->map_lock);
	return n;
}

int store_sessions(struct store *st, struct store_session **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	pthread_rwlock_rdlock(&st->map_lock);
	const struct locks *l = map_locks_c(st->map);
	struct store_session *v = NULL;
	int ret = 0;
	if (l->ns > 0 && (v = calloc(l->ns, sizeof(*v))) == NULL)
		ret = -ENOMEM;
	for (size_t i = 0; v != NULL && i < l->ns; i++)
		v[i] = (struct store_session){l->s[i].sid, l->s[i].node,
					      l->s[i].rev};
	if (ret == 0) {
		*out = v;
		*n = l->ns;
	}
	pthread_rwlock_unlock(&st->map_lock);
	return ret;
}
