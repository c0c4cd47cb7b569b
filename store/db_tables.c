/* db_tables.c - a db's table lines read back: the lock table's sessions
 * and locks (format version 3, after the records) and the lease table
 * (version 4, before them), each line into the map's table. db.c reads
 * the lines and says where one is damaged; this is what a line holds. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "codec.h"
#include "db_int.h"
#include "leases.h"
#include "locks.h"
#include "map.h"

static int get_num(const cJSON *o, const char *name, double max, uint64_t *out)
{
	return kv_json_uint(cJSON_GetObjectItemCaseSensitive(o, name), max,
			    out);
}

/* A decimal string: an offset (0 .. KV_LOCK_EOF) or any u64. */
static int get_dec(const cJSON *o, const char *name, bool offset, uint64_t *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	char *end;

	if (!cJSON_IsString(v) || v->valuestring[0] < '0' ||
	    v->valuestring[0] > '9')
		return -EINVAL;
	errno = 0;
	unsigned long long u = strtoull(v->valuestring, &end, 10);
	if (errno != 0 || *end != '\0' || (offset && u > KV_LOCK_EOF))
		return -EINVAL;
	*out = u;
	return 0;
}

/* A session or lock line (version 3) into the map's lock table: 0,
 * -EINVAL (damaged) or -ENOMEM. */
int db_load_lock_line(const cJSON *o, bool sess, struct map *m)
{
	const cJSON *it;
	size_t nf = 0;
	uint64_t a, b, c, d;

	cJSON_ArrayForEach(it, o) nf++;
	if (sess) {
		struct lock_sess s;
		if (nf != 3 || get_num(o, "sess", KV_JSON_INT_MAX, &s.sid) ||
		    get_num(o, "node", KV_JSON_INT_MAX, &s.node) ||
		    get_num(o, "rev", KV_JSON_INT_MAX, &s.rev))
			return -EINVAL;
		return locks_load_session(map_locks(m), &s);
	}
	const cJSON *k = cJSON_GetObjectItemCaseSensitive(o, "lock");
	struct lock_ent e = {0};
	if (nf != 8 || !cJSON_IsString(k) ||
	    get_num(o, "sid", KV_JSON_INT_MAX, &e.sid) ||
	    get_dec(o, "own", false, &e.owner) ||
	    get_num(o, "pid", (double)UINT32_MAX, &a) ||
	    get_num(o, "lt", KV_LOCK_WR, &b) ||
	    get_num(o, "lkind", KV_LOCK_POSIX, &c) ||
	    get_dec(o, "ls", true, &e.start) || get_dec(o, "le", true, &d))
		return -EINVAL;
	e.key = k->valuestring;
	e.klen = strlen(k->valuestring);
	e.pid = (uint32_t)a;
	e.type = (enum kv_lock_type)b;
	e.kind = (enum kv_lock_kind)c;
	e.end = d;
	return locks_load_lock(map_locks(m), &e);
}

/* A lease line (version 4): 0, -EINVAL (damaged) or -ENOMEM. */
int db_load_lease_line(const cJSON *o, struct map *m)
{
	uint64_t id, ttl, rev;
	int nf = cJSON_GetArraySize(o);

	if (nf != 3 || get_num(o, "lease", KV_JSON_INT_MAX, &id) ||
	    get_num(o, "ttl", KV_JSON_INT_MAX, &ttl) ||
	    get_num(o, "rev", KV_JSON_INT_MAX, &rev))
		return -EINVAL;
	if (leases_reserve(map_leases(m)) != 0)
		return -ENOMEM;
	return leases_add(map_leases(m), id, ttl, rev);
}
