/* test_db_fields.c - the db's in-place record reader (store/db_read.c):
 * its field names by length and first byte. Every field of a version 4
 * record line is read (into the record's own place), and a near-miss
 * name (a byte changed, added or dropped, another case), a duplicate, a
 * NUL in a name or a cut line is left to db.c's reader (0), as before;
 * a name spelled with an escape is still its field. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "db_read.h"

static const char *const m[] = {
    "\"k\":\"a/b\"", "\"v\":\"xy\"",   "\"cr\":3",     "\"mr\":4",
    "\"mt\":\"5\"",  "\"mode\":33188", "\"ct\":\"6\"", "\"at\":\"7\"",
    "\"uid\":8",     "\"gid\":9",      "\"lease\":10", NULL};
static char line[1024];

static size_t join(int dup, int ren, const char *name)
{
	size_t n = 0;
	line[n++] = '{';
	for (int i = 0; m[i]; i++)
		for (int k = 0; k < 1 + (i == dup); k++) {
			if (n > 1)
				line[n++] = ',';
			if (i == ren)
				n += (size_t)snprintf(
				    line + n, sizeof(line) - n, "\"%s\"%s",
				    name, strchr(m[i] + 1, '"') + 1);
			else
				n += (size_t)snprintf(
				    line + n, sizeof(line) - n, "%s", m[i]);
		}
	line[n++] = '}';
	line[n] = '\0';
	return n;
}

static int read_line(size_t n, struct kv_rec **rec)
{
	struct db_scratch sc = {0};
	int r = db_read_rec(line, n, 4, &sc, rec);
	db_scratch_free(&sc);
	return r;
}

static void test_every_field_lands(void **state)
{
	(void)state;
	struct kv_rec *rec;
	assert_int_equal(read_line(join(-1, -1, NULL), &rec), 1);
	assert_int_equal(rec->klen, 3);
	assert_memory_equal(kv_rec_key(rec), "a/b", 3);
	assert_int_equal(rec->vlen, 2);
	assert_int_equal(rec->create_rev, 3);
	assert_int_equal(rec->mod_rev, 4);
	assert_int_equal(rec->mtime_ns, 5);
	assert_int_equal(rec->mode, 33188);
	assert_int_equal(rec->ctime_ns, 6);
	assert_int_equal(rec->atime_ns, 7);
	assert_int_equal(rec->uid, 8);
	assert_int_equal(rec->gid, 9);
	assert_int_equal(kv_rec_lease(rec), 10);
	kv_rec_unref(rec);
}

static void test_names_refused_or_read(void **state)
{
	(void)state;
	struct kv_rec *rec;
	for (int i = 0; m[i]; i++) {
		char name[16], bad[40];
		size_t len = (size_t)(strchr(m[i] + 1, '"') - (m[i] + 1));
		memcpy(name, m[i] + 1, len);
		name[len] = '\0';
		for (int how = 0; how < 7; how++) {
			strcpy(bad, name);
			if (how == 0)
				bad[len - 1]++;
			else if (how == 1)
				bad[0]++;
			else if (how == 2)
				strcat(bad, "x");
			else if (how == 3 && len > 1)
				bad[len - 1] = '\0';
			else if (how == 4)
				bad[0] = (char)(bad[0] - 'a' + 'A');
			else if (how == 5)
				snprintf(bad, sizeof(bad), "%s\\u0000", name);
			else if (how == 6)
				bad[len / 2]--;
			else
				continue;
			int r = read_line(join(-1, i, bad), &rec);
			if (r != 0)
				fail_msg("read (%s for %s): %s", bad, name,
					 line);
		}
		snprintf(bad, sizeof(bad), "\\u%04x%s", (unsigned char)name[0],
			 name + 1);
		if (read_line(join(-1, i, bad), &rec) != 1)
			fail_msg("escaped name not read: %s", line);
		kv_rec_unref(rec);
		if (read_line(join(i, -1, NULL), &rec) != 0)
			fail_msg("a duplicate read: %s", line);
	}
	size_t n = join(-1, -1, NULL);
	for (size_t cut = 0; cut < n; cut++)
		if (read_line(cut, &rec) != 0)
			fail_msg("cut at %zu read", cut);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_field_lands),
	    cmocka_unit_test(test_names_refused_or_read),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
