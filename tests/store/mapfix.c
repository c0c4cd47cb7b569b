/* mapfix.c - the state machine tests' shared fixture (mapfix.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "map_impl.h"
#include "mapfix.h"

int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->m = map_new();
	assert_non_null(f->m);
	*state = f;
	return 0;
}

int teardown(void **state)
{
	struct fixture *f = *state;
	map_free(f->m);
	free(f);
	return 0;
}

void on_change(void *ctx, const char *key, size_t klen)
{
	struct fixture *f = ctx;
	size_t n = strlen(f->changes);
	snprintf(f->changes + n, sizeof(f->changes) - n, "%s%.*s", n ? " " : "",
		 (int)klen, key);
}

int apply_to(struct fixture *f, struct map *m, uint64_t index,
	     const struct kv_cmd *c, struct kv_result *out)
{
	char *json;
	size_t len;
	struct kv_cmd d;
	struct kv_result res;

	assert_int_equal(kv_cmd_encode(c, &json, &len), 0);
	assert_int_equal(kv_cmd_decode(json, len, &d), 0);
	free(json);
	assert_int_equal(map_apply(m, index, &d, &res, on_change, f), 0);
	kv_cmd_clear(&d);
	assert_int_equal(res.rev, index);
	if (out != NULL)
		*out = res;
	return res.err;
}
