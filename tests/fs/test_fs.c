/* test_fs.c - unit tests of the mount's pure parts: path<->key mapping,
 * the errno mapping, the per-open buffer and the invalidation queue.
 *
 * These run without FUSE or a node; the end-to-end scripts beside this
 * file (shell.sh, tree.sh, lifecycle.sh) mount a real kvfs. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "fs_int.h"

static void test_root_maps_to_the_empty_key_without_a_prefix(void **state)
{
	(void)state;
	char key[64];
	size_t klen;
	assert_int_equal(fs_path_to_key("", 0, "/", key, sizeof(key), &klen),
			 0);
	assert_int_equal(klen, 0);
	assert_int_equal(fs_path_to_key("", 0, "/a/b", key, sizeof(key), &klen),
			 0);
	assert_string_equal(key, "a/b");
	assert_int_equal(klen, 3);
}

static void test_subdir_prefix_is_joined_with_one_slash(void **state)
{
	(void)state;
	char key[64];
	size_t klen;
	assert_int_equal(
	    fs_path_to_key("app", 3, "/x/y", key, sizeof(key), &klen), 0);
	assert_string_equal(key, "app/x/y");
	assert_int_equal(fs_path_to_key("app", 3, "/", key, sizeof(key), &klen),
			 0);
	assert_string_equal(key, "app");
	assert_int_equal(klen, 3);
}

static void test_a_key_that_does_not_fit_is_ENAMETOOLONG(void **state)
{
	(void)state;
	char key[8];
	size_t klen;
	assert_int_equal(
	    fs_path_to_key("app", 3, "/abcd", key, sizeof(key), &klen),
	    -ENAMETOOLONG);
	assert_int_equal(
	    fs_path_to_key("", 0, "/1234567", key, sizeof(key), &klen), 0);
}

static void test_keys_map_back_to_paths_only_under_the_prefix(void **state)
{
	(void)state;
	char path[64];
	assert_int_equal(fs_key_to_path("", 0, "a/b", 3, path, sizeof(path)),
			 0);
	assert_string_equal(path, "/a/b");
	assert_int_equal(
	    fs_key_to_path("app", 3, "app/x", 5, path, sizeof(path)), 0);
	assert_string_equal(path, "/x");
	assert_int_equal(fs_key_to_path("app", 3, "app", 3, path, sizeof(path)),
			 0);
	assert_string_equal(path, "/");
	assert_int_equal(
	    fs_key_to_path("app", 3, "apple/x", 7, path, sizeof(path)),
	    -ENOENT);
	assert_int_equal(
	    fs_key_to_path("app", 3, "other", 5, path, sizeof(path)), -ENOENT);
}

static void test_parent_of_a_path(void **state)
{
	(void)state;
	char out[64];
	assert_int_equal(fs_path_parent("/a/b/c", out, sizeof(out)), 0);
	assert_string_equal(out, "/a/b");
	assert_int_equal(fs_path_parent("/a", out, sizeof(out)), 0);
	assert_string_equal(out, "/");
	assert_int_equal(fs_path_parent("/", out, sizeof(out)), -ENOENT);
}

static void test_prefix_is_normalized_and_checked(void **state)
{
	(void)state;
	char *p;
	size_t len;
	assert_int_equal(fs_prefix_new("/app/conf/", &p, &len), 0);
	assert_string_equal(p, "app/conf");
	assert_int_equal(len, 8);
	free(p);
	assert_int_equal(fs_prefix_new(NULL, &p, &len), 0);
	assert_int_equal(len, 0);
	free(p);
	assert_int_equal(fs_prefix_new("a//b", &p, &len), -EINVAL);
	assert_int_equal(fs_prefix_new("a/../b", &p, &len), -EINVAL);
}

static void test_node_errors_become_the_errno_a_shell_expects(void **state)
{
	(void)state;
	assert_int_equal(fs_errno(0), 0);
	assert_int_equal(fs_errno(7), 7);
	assert_int_equal(fs_errno(KV_ENOQUORUM), -EIO);
	assert_int_equal(fs_errno(KV_ENOTLEADER), -EIO);
	assert_int_equal(fs_errno(KV_EFAILED), -EIO);
	assert_int_equal(fs_errno(KV_ECORRUPT), -EIO);
	assert_int_equal(fs_errno(KV_EPRECOND), -EEXIST);
	assert_int_equal(fs_errno(KV_ESHUTDOWN), -ESHUTDOWN);
	assert_int_equal(fs_errno(-ENOSPC), -ENOSPC);
	assert_int_equal(fs_errno(-EFBIG), -EFBIG);
	assert_int_equal(fs_errno(-ENOTEMPTY), -ENOTEMPTY);
	assert_int_equal(fs_errno(-100000), -EIO);
}

static void test_writes_at_offsets_fill_holes_with_zeros(void **state)
{
	(void)state;
	struct fs_handle h;
	assert_int_equal(
	    fs_handle_init_buf(&h, "abc", 3, 100, true, false, 0644), 0);
	assert_false(h.dirty);
	assert_int_equal(fs_handle_write(&h, "XY", 2, 5), 2);
	assert_true(h.dirty);
	char out[16];
	assert_int_equal(fs_handle_read(&h, out, sizeof(out), 0), 7);
	assert_memory_equal(out, "abc\0\0XY", 7);
	assert_int_equal(fs_handle_read(&h, out, sizeof(out), 7), 0);
	assert_int_equal(fs_handle_read(&h, out, 2, 1), 2);
	assert_memory_equal(out, "bc", 2);
	fs_handle_close(&h);
}

static void test_append_writes_at_the_end_whatever_the_offset(void **state)
{
	(void)state;
	struct fs_handle h;
	assert_int_equal(
	    fs_handle_init_buf(&h, "abc", 3, 100, true, true, 0644), 0);
	assert_int_equal(fs_handle_write(&h, "d", 1, 0), 1);
	char out[8];
	assert_int_equal(fs_handle_read(&h, out, sizeof(out), 0), 4);
	assert_memory_equal(out, "abcd", 4);
	fs_handle_close(&h);
}

static void test_truncate_shrinks_and_grows_with_zeros(void **state)
{
	(void)state;
	struct fs_handle h;
	assert_int_equal(
	    fs_handle_init_buf(&h, "abcdef", 6, 100, true, false, 0644), 0);
	assert_int_equal(fs_handle_truncate(&h, 2), 0);
	assert_int_equal(fs_handle_truncate(&h, 4), 0);
	char out[8];
	assert_int_equal(fs_handle_read(&h, out, sizeof(out), 0), 4);
	assert_memory_equal(out, "ab\0\0", 4);
	assert_int_equal(fs_handle_truncate(&h, 101), -EFBIG);
	assert_int_equal(fs_handle_truncate(&h, -1), -EINVAL);
	assert_int_equal(fs_handle_size(&h), 4);
	fs_handle_close(&h);
}

static void test_a_write_past_the_limit_poisons_the_handle(void **state)
{
	(void)state;
	struct fs_handle h;
	assert_int_equal(fs_handle_init_buf(&h, NULL, 0, 10, true, false, 0644),
			 0);
	assert_int_equal(fs_handle_write(&h, "12345678", 8, 0), 8);
	assert_int_equal(fs_handle_write(&h, "abc", 3, 8), -EFBIG);
	/* the buffer holds a half-written value: it never commits */
	assert_int_equal(h.poison, -EFBIG);
	assert_int_equal(fs_handle_write(&h, "a", 1, 0), -EFBIG);
	fs_handle_close(&h);
}

static void test_a_value_exactly_at_the_limit_is_accepted(void **state)
{
	(void)state;
	struct fs_handle h;
	assert_int_equal(fs_handle_init_buf(&h, NULL, 0, 10, true, false, 0644),
			 0);
	assert_int_equal(fs_handle_write(&h, "1234567890", 10, 0), 10);
	assert_int_equal(h.poison, 0);
	assert_int_equal(fs_handle_size(&h), 10);
	fs_handle_close(&h);
}

static void test_a_read_only_handle_refuses_writes(void **state)
{
	(void)state;
	struct fs_handle h;
	assert_int_equal(fs_handle_init_buf(&h, "x", 1, 10, false, false, 0644),
			 0);
	assert_int_equal(fs_handle_write(&h, "a", 1, 0), -EBADF);
	assert_int_equal(fs_handle_truncate(&h, 0), -EBADF);
	fs_handle_close(&h);
}

static void test_a_read_handle_keeps_the_value_it_opened(void **state)
{
	(void)state;
	struct kv_rec *rec = kv_rec_new("k", 1, "old\0value", 9);
	assert_non_null(rec);
	rec->mode = 0100640;
	struct fs_handle h;
	assert_int_equal(fs_handle_init_read(&h, rec), 0);
	assert_int_equal(h.mode, 0640);
	char out[16];
	assert_int_equal(fs_handle_read(&h, out, sizeof(out), 0), 9);
	assert_memory_equal(out, "old\0value", 9);
	fs_handle_close(&h); /* drops the reference: ASan checks the free */
}

/* The invalidation queue, with a recorder in place of FUSE. */
struct recorder {
	pthread_mutex_t lock;
	char seen[64][64];
	int n;
};

static int record(void *ctx, const char *path)
{
	struct recorder *r = ctx;
	pthread_mutex_lock(&r->lock);
	if (r->n < 64)
		strncpy(r->seen[r->n++], path, 63);
	pthread_mutex_unlock(&r->lock);
	return 0;
}

static bool wait_done(struct fs_inval *iv, uint64_t n)
{
	struct timespec deadline;
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 10;
	pthread_mutex_lock(&iv->lock);
	int ret = 0;
	while (iv->done < n && ret == 0)
		ret = pthread_cond_timedwait(&iv->cond, &iv->lock, &deadline);
	bool ok = iv->done >= n;
	pthread_mutex_unlock(&iv->lock);
	return ok;
}

static void test_changed_keys_are_invalidated_with_their_parent(void **state)
{
	(void)state;
	struct recorder r = {.lock = PTHREAD_MUTEX_INITIALIZER};
	struct fs_inval iv;
	assert_int_equal(fs_inval_start(&iv, "app", 3, record, &r), 0);
	fs_inval_push(&iv, "app/a/b", 7);
	fs_inval_push(&iv, "other/x", 7); /* outside the subtree: ignored */
	assert_true(wait_done(&iv, 1));
	fs_inval_stop(&iv);
	fs_inval_join(&iv);
	assert_int_equal(r.n, 2);
	assert_string_equal(r.seen[0], "/a/b");
	assert_string_equal(r.seen[1], "/a");
}

static void test_a_stopped_queue_drops_new_changes(void **state)
{
	(void)state;
	struct recorder r = {.lock = PTHREAD_MUTEX_INITIALIZER};
	struct fs_inval iv;
	assert_int_equal(fs_inval_start(&iv, "", 0, record, &r), 0);
	fs_inval_stop(&iv);
	fs_inval_push(&iv, "k", 1);
	assert_int_equal(iv.dropped, 1);
	fs_inval_join(&iv);
	assert_int_equal(r.n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_root_maps_to_the_empty_key_without_a_prefix),
	    cmocka_unit_test(test_subdir_prefix_is_joined_with_one_slash),
	    cmocka_unit_test(test_a_key_that_does_not_fit_is_ENAMETOOLONG),
	    cmocka_unit_test(test_keys_map_back_to_paths_only_under_the_prefix),
	    cmocka_unit_test(test_parent_of_a_path),
	    cmocka_unit_test(test_prefix_is_normalized_and_checked),
	    cmocka_unit_test(test_node_errors_become_the_errno_a_shell_expects),
	    cmocka_unit_test(test_writes_at_offsets_fill_holes_with_zeros),
	    cmocka_unit_test(test_append_writes_at_the_end_whatever_the_offset),
	    cmocka_unit_test(test_truncate_shrinks_and_grows_with_zeros),
	    cmocka_unit_test(test_a_write_past_the_limit_poisons_the_handle),
	    cmocka_unit_test(test_a_value_exactly_at_the_limit_is_accepted),
	    cmocka_unit_test(test_a_read_only_handle_refuses_writes),
	    cmocka_unit_test(test_a_read_handle_keeps_the_value_it_opened),
	    cmocka_unit_test(
		test_changed_keys_are_invalidated_with_their_parent),
	    cmocka_unit_test(test_a_stopped_queue_drops_new_changes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
