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
