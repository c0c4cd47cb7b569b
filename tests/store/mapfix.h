/* mapfix.h - the fixture the state machine's tests share (test_map,
 * test_locks, test_leases, test_txn): an empty map, the index of the last
 * entry applied, and the keys on_change reported. */
#ifndef KVFS_TESTS_STORE_MAPFIX_H
#define KVFS_TESTS_STORE_MAPFIX_H

#include <stddef.h>
#include <stdint.h>

struct map;
struct kv_cmd;
struct kv_result;

struct fixture {
	struct map *m;
	uint64_t index;
	char changes[1 << 19]; /* keys reported by on_change, ' '-separated */
};

/* cmocka's setup and teardown: *state is a struct fixture. */
int setup(void **state);
int teardown(void **state);
/* map_apply's change callback, ctx a struct fixture: appends the key to
 * changes (a space between keys). The caller empties changes first. */
void on_change(void *ctx, const char *key, size_t klen);
/* Apply c to m as the entry at index, through the codec as the log
 * carries it (encoded, then decoded), reporting changes to f; asserts the
 * entry's rev is index. The command's error (its result in *out if out is
 * not NULL). */
int apply_to(struct fixture *f, struct map *m, uint64_t index,
	     const struct kv_cmd *c, struct kv_result *out);

#endif
