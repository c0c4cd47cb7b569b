/* test_hardstate.c - raft-state.json: a saved term and vote load back,
 * a missing file is term 0 vote 0, and damage or an unknown version is
 * reported with the file name, never read as a state. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "hardstate.h"
#include "store.h"

static int dir_setup(void **state)
{
	char tmpl[] = "/tmp/kvfs-hs-XXXXXX";
	char *d = mkdtemp(tmpl);
	if (!d)
		return -1;
	*state = strdup(d);
	return 0;
}

static int dir_teardown(void **state)
{
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", (char *)*state);
	int r = system(cmd);
	free(*state);
	return r == 0 ? 0 : -1;
}

static void write_file(const char *dir, const char *text)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/raft-state.json", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_hardstate_missing_file_is_term_zero(void **state)
{
	uint64_t t = 7, v = 7;
	char *msg = NULL;
	assert_int_equal(hardstate_load(*state, &t, &v, &msg), 0);
	assert_int_equal(t, 0);
	assert_int_equal(v, 0);
	assert_null(msg);
}

static void test_hardstate_round_trips_and_replaces(void **state)
{
	uint64_t t, v;
	char *msg = NULL;
	assert_int_equal(hardstate_save(*state, 5, 3), 0);
	assert_int_equal(hardstate_load(*state, &t, &v, &msg), 0);
	assert_int_equal(t, 5);
	assert_int_equal(v, 3);
	assert_int_equal(hardstate_save(*state, 9007199254740992ull, 0), 0);
	assert_int_equal(hardstate_load(*state, &t, &v, &msg), 0);
	assert_int_equal(t, 9007199254740992ull);
	assert_int_equal(v, 0);
	char path[512];
	snprintf(path, sizeof(path), "%s/raft-state.json.tmp", (char *)*state);
	assert_int_equal(access(path, F_OK), -1);
}

static void test_hardstate_rejects_bad_checksum(void **state)
{
	uint64_t t = 1, v = 1;
	char *msg = NULL;
	/* a valid file for term 5 vote 3, with the term changed to 6 */
	assert_int_equal(hardstate_save(*state, 5, 3), 0);
	char path[512], buf[256];
	snprintf(path, sizeof(path), "%s/raft-state.json", (char *)*state);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	char *p = strstr(buf, "\"term\":5");
	assert_non_null(p);
	p[7] = '6';
	write_file(*state, buf);
	assert_int_equal(hardstate_load(*state, &t, &v, &msg), KV_ECORRUPT);
	assert_non_null(msg);
	assert_non_null(strstr(msg, "raft-state.json"));
	assert_non_null(strstr(msg, "checksum"));
	free(msg);
}

static void test_hardstate_rejects_garbage_and_truncation(void **state)
{
	uint64_t t, v;
	char *msg = NULL;
	write_file(*state, "{\"kvfs\":\"hardstate\",\"version\":1,\"te");
	assert_int_equal(hardstate_load(*state, &t, &v, &msg), KV_ECORRUPT);
	assert_non_null(strstr(msg, "raft-state.json"));
	free(msg);
	msg = NULL;
	write_file(*state, "");
	assert_int_equal(hardstate_load(*state, &t, &v, &msg), KV_ECORRUPT);
	free(msg);
	msg = NULL;
	write_file(*state, "{\"kvfs\":\"hardstate\",\"version\":1,\"term\":-1,"
			   "\"vote\":0,\"crc\":\"00000000\"}\n");
	assert_int_equal(hardstate_load(*state, &t, &v, &msg), KV_ECORRUPT);
	free(msg);
}

static void test_hardstate_rejects_unknown_version(void **state)
{
	uint64_t t, v;
	char *msg = NULL;
	write_file(*state, "{\"kvfs\":\"hardstate\",\"version\":2,\"term\":1,"
			   "\"vote\":1,\"crc\":\"00000000\"}\n");
	assert_int_equal(hardstate_load(*state, &t, &v, &msg), KV_EVERSION);
	assert_non_null(strstr(msg, "version"));
	free(msg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		test_hardstate_missing_file_is_term_zero, dir_setup,
		dir_teardown),
	    cmocka_unit_test_setup_teardown(
		test_hardstate_round_trips_and_replaces, dir_setup,
		dir_teardown),
	    cmocka_unit_test_setup_teardown(test_hardstate_rejects_bad_checksum,
					    dir_setup, dir_teardown),
	    cmocka_unit_test_setup_teardown(
		test_hardstate_rejects_garbage_and_truncation, dir_setup,
		dir_teardown),
	    cmocka_unit_test_setup_teardown(
		test_hardstate_rejects_unknown_version, dir_setup,
		dir_teardown),
	};
	return cmocka_run_group_tests_name("hardstate", tests, NULL, NULL);
}
