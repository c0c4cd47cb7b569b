/* test_fs.c - unit tests of the mount's pure parts: path<->key mapping,
 * the errno mapping, an open file's state (buffer, attributes, extended
 * attributes), the inode table and the invalidation queue.
 *
 * These run without FUSE or a node; the end-to-end scripts beside this
 * file (shell.sh, tree.sh, lifecycle.sh) mount a real kvfs. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

/* A file over a record holding val (mode 0640, owner 7:8, times 1..3),
 * started as its first open would. */
static void file_over(struct fs_file *f, const char *val, size_t n)
{
	struct kv_rec *rec = kv_rec_new("k", 1, val, n);
	assert_non_null(rec);
	rec->mode = S_IFREG | 0640;
	rec->uid = 7;
	rec->gid = 8;
	rec->mtime_ns = 1;
	rec->ctime_ns = 2;
	rec->atime_ns = 3;
	rec->mod_rev = 5;
	assert_int_equal(fs_file_init(f), 0);
	fs_file_start(f, rec, NULL);
}

static void test_a_file_shows_its_record_until_changed(void **state)
{
	(void)state;
	struct fs_file f;
	char out[16];
	file_over(&f, "old\0value", 9);
	assert_false(fs_file_dirty(&f));
	assert_int_equal(fs_file_size(&f), 9);
	assert_int_equal(f.attr.mode, S_IFREG | 0640);
	assert_int_equal(f.attr.uid, 7);
	assert_int_equal(f.attr.atime_ns, 3);
	assert_int_equal(fs_file_read(&f, out, sizeof(out), 0), 9);
	assert_memory_equal(out, "old\0value", 9);
	assert_false(f.has_buf); /* reads need no copy */
	fs_file_close(&f);	 /* drops the reference: ASan checks the free */
}

static void test_writes_at_offsets_fill_holes_with_zeros(void **state)
{
	(void)state;
	struct fs_file f;
	char out[16];
	file_over(&f, "abc", 3);
	assert_int_equal(fs_file_write(&f, "XY", 2, 5, false, 100), 2);
	assert_true(fs_file_dirty(&f));
	assert_int_equal(f.dirty, FS_DIRTY_DATA);
	/* a write marks mtime and ctime, not atime */
	assert_int_equal(f.attr.mtime_ns, 100);
	assert_int_equal(f.attr.ctime_ns, 100);
	assert_int_equal(f.attr.atime_ns, 3);
	assert_int_equal(fs_file_size(&f), 7);
	assert_int_equal(fs_file_read(&f, out, sizeof(out), 0), 7);
	assert_memory_equal(out, "abc\0\0XY", 7);
	assert_int_equal(fs_file_read(&f, out, sizeof(out), 7), 0);
	assert_int_equal(fs_file_read(&f, out, 2, 1), 2);
	assert_memory_equal(out, "bc", 2);
	fs_file_close(&f);
}

static void test_append_writes_at_the_end_whatever_the_offset(void **state)
{
	(void)state;
	struct fs_file f;
	char out[8];
	file_over(&f, "abc", 3);
	assert_int_equal(fs_file_write(&f, "d", 1, 0, true, 1), 1);
	assert_int_equal(fs_file_read(&f, out, sizeof(out), 0), 4);
	assert_memory_equal(out, "abcd", 4);
	fs_file_close(&f);
}

static void test_truncate_shrinks_and_grows_with_zeros(void **state)
{
	(void)state;
	struct fs_file f;
	char out[8];
	file_over(&f, "abcdef", 6);
	f.max = 100;
	assert_int_equal(fs_file_truncate(&f, 2, 9), 0);
	assert_int_equal(f.attr.mtime_ns, 9);
	assert_int_equal(fs_file_truncate(&f, 4, 9), 0);
	assert_int_equal(fs_file_read(&f, out, sizeof(out), 0), 4);
	assert_memory_equal(out, "ab\0\0", 4);
	assert_int_equal(fs_file_truncate(&f, 101, 9), -EFBIG);
	assert_int_equal(fs_file_truncate(&f, -1, 9), -EINVAL);
	assert_int_equal(fs_file_size(&f), 4);
	fs_file_close(&f);
}

static void test_a_write_past_the_limit_poisons_the_file(void **state)
{
	(void)state;
	struct fs_file f;
	file_over(&f, "", 0);
	f.max = 10;
	assert_int_equal(fs_file_write(&f, "12345678", 8, 0, false, 1), 8);
	assert_int_equal(fs_file_write(&f, "abc", 3, 8, false, 1), -EFBIG);
	/* the buffer holds a half-written value: it never commits */
	assert_int_equal(f.poison, -EFBIG);
	assert_int_equal(fs_file_write(&f, "a", 1, 0, false, 1), -EFBIG);
	fs_file_close(&f);
}

static void test_a_value_exactly_at_the_limit_is_accepted(void **state)
{
	(void)state;
	struct fs_file f;
	file_over(&f, "", 0);
	f.max = 10;
	assert_int_equal(fs_file_write(&f, "1234567890", 10, 0, false, 1), 10);
	assert_int_equal(f.poison, 0);
	assert_int_equal(fs_file_size(&f), 10);
	fs_file_close(&f);
}

static void test_a_new_file_is_pending_with_its_attributes(void **state)
{
	(void)state;
	struct fs_file f;
	struct fs_attr a = {S_IFREG, 1000, 1000, 5, 5, 5};
	assert_int_equal(fs_file_init(&f), 0);
	fs_file_start(&f, NULL, &a);
	assert_true(f.pending);
	assert_true(fs_file_dirty(&f));
	assert_int_equal(fs_file_size(&f), 0);
	assert_int_equal(f.attr.mode, S_IFREG); /* mode 0 stays 0 */
	fs_file_stop(&f);
	assert_false(fs_file_dirty(&f)); /* idle again */
	fs_file_close(&f);
}

static void
test_a_clean_file_follows_the_store_a_dirty_one_does_not(void **state)
{
	(void)state;
	struct fs_file f;
	char out[8];
	file_over(&f, "one", 3);
	struct kv_rec *newer = kv_rec_new("k", 1, "two!", 4);
	newer->mode = S_IFREG | 0600;
	newer->mod_rev = 6;
	fs_file_refresh(&f, newer);
	assert_int_equal(fs_file_size(&f), 4);
	assert_int_equal(f.attr.mode, S_IFREG | 0600);
	assert_int_equal(fs_file_write(&f, "X", 1, 0, false, 1), 1);
	struct kv_rec *newest = kv_rec_new("k", 1, "three", 5);
	newest->mod_rev = 7;
	fs_file_refresh(&f, newest); /* dropped: local changes win here */
	assert_int_equal(fs_file_read(&f, out, sizeof(out), 0), 4);
	assert_memory_equal(out, "Xwo!", 4);
	fs_file_close(&f);
}

/* keep_cache (fs_file_cache_open, fs_file_cache_settle): the pages are
 * kept only for the record and the local state they were filled from. */
static void test_pages_are_kept_only_for_the_record_they_hold(void **state)
{
	(void)state;
	struct fs_file f;
	struct fs_cache_mark a, b;
	file_over(&f, "one", 3); /* the record at revision 5 */
	/* nothing known: the first open drops them, its read settles */
	assert_false(fs_file_cache_open(&f, false, &a));
	assert_int_equal(a.rev, 5);
	assert_false(fs_file_cache_open(&f, false, &b)); /* not settled yet */
	fs_file_cache_settle(&f, &a);
	assert_int_equal(a.rev, 0); /* settled once */
	assert_true(fs_file_cache_open(&f, false, &b));
	assert_int_equal(b.rev, 0);
	/* an idle file keeps what its pages hold */
	fs_file_stop(&f);
	struct kv_rec *same = kv_rec_new("k", 1, "one", 3);
	same->mod_rev = 5;
	fs_file_start(&f, same, NULL);
	assert_true(fs_file_cache_open(&f, false, &b));
	/* a newer record: dropped, and its read settles that one */
	struct kv_rec *newer = kv_rec_new("k", 1, "two", 3);
	newer->mod_rev = 9;
	fs_file_refresh(&f, newer);
	assert_false(fs_file_cache_open(&f, false, &a));
	assert_int_equal(a.rev, 9);
	fs_file_cache_settle(&f, &a);
	assert_true(fs_file_cache_open(&f, false, &b));
	fs_file_close(&f);
}

static void test_pages_are_not_kept_across_changes_here(void **state)
{
	(void)state;
	struct fs_file f;
	struct fs_cache_mark a, b;
	file_over(&f, "one", 3);
	/* a record settled, then a writable open: forgotten, even if the
	 * writer never writes (a shared mapping writes into the pages) */
	assert_false(fs_file_cache_open(&f, false, &a));
	fs_file_cache_settle(&f, &a);
	assert_false(fs_file_cache_open(&f, true, &b));
	assert_int_equal(b.rev, 0);
	f.writers = 1;
	assert_false(fs_file_cache_open(&f, false, &a)); /* a writer is open */
	assert_int_equal(a.rev, 0);
	f.writers = 0;
	/* a drop seen, then a writer opens before the read: not settled */
	assert_false(fs_file_cache_open(&f, false, &a));
	f.writers = 1;
	fs_file_cache_settle(&f, &a);
	f.writers = 0;
	assert_false(fs_file_cache_open(&f, false, &a));
	/* a change here between the drop and the read: not settled */
	assert_int_equal(fs_file_write(&f, "X", 1, 0, false, 1), 1);
	fs_file_cache_settle(&f, &a);
	assert_false(fs_file_cache_open(&f, false, &b));
	assert_int_equal(b.rev, 0); /* dirty: nothing to settle either */
	/* settled, then a write that never commits: the file is the record
	 * again once idle, but what the pages held before is not kept */
	fs_file_stop(&f);
	struct kv_rec *same = kv_rec_new("k", 1, "one", 3);
	same->mod_rev = 5;
	fs_file_start(&f, same, NULL);
	assert_false(fs_file_cache_open(&f, false, &a));
	fs_file_cache_settle(&f, &a);
	assert_true(fs_file_cache_open(&f, false, &b));
	assert_int_equal(fs_file_write(&f, "X", 1, 0, false, 1), 1);
	fs_file_stop(&f);
	same = kv_rec_new("k", 1, "one", 3);
	same->mod_rev = 5;
	fs_file_start(&f, same, NULL);
	assert_false(fs_file_cache_open(&f, false, &a));
	assert_int_equal(a.rev, 5);
	fs_file_close(&f);
}

static void test_xattrs_fold_into_the_file_with_their_flags(void **state)
{
	(void)state;
	struct fs_file f;
	size_t n;
	const struct kv_xattr *xa;
	file_over(&f, "v", 1);
	assert_int_equal(fs_file_setxattr(&f, "user.a", "1", 1, 0, 4), 0);
	assert_true(f.dirty & FS_DIRTY_XATTR);
	assert_int_equal(f.attr.ctime_ns, 4);
	assert_int_equal(
	    fs_file_setxattr(&f, "user.a", "2", 1, KV_XATTR_CREATE, 4),
	    -EEXIST);
	assert_int_equal(
	    fs_file_setxattr(&f, "user.b", "2", 1, KV_XATTR_REPLACE, 4),
	    -ENODATA);
	assert_int_equal(
	    fs_file_setxattr(&f, "user.a", "22", 2, KV_XATTR_REPLACE, 4), 0);
	xa = fs_file_xattrs(&f, &n);
	assert_int_equal(n, 1);
	assert_int_equal(xa[0].vlen, 2);
	assert_int_equal(fs_file_setxattr(&f, "user.a", NULL, 0, 0, 4), 0);
	assert_int_equal(fs_file_setxattr(&f, "user.a", NULL, 0, 0, 4),
			 -ENODATA);
	fs_file_xattrs(&f, &n);
	assert_int_equal(n, 0);
	static char big[KV_MAX_XATTR_VALUE + 1];
	assert_int_equal(
	    fs_file_setxattr(&f, "user.big", big, sizeof(big), 0, 4), -E2BIG);
	fs_file_close(&f);
}

/* ---- the inode table ---- */

static void test_inodes_map_numbers_names_and_keys(void **state)
{
	(void)state;
	struct fs_itable t;
	char key[KV_MAX_KEY + 1];
	size_t klen;
	assert_int_equal(fs_itable_init(&t, S_IFDIR), 0);
	struct fs_inode *d = fs_inode_link(&t, &t.root, "d", S_IFDIR);
	struct fs_inode *f = fs_inode_link(&t, d, "f", S_IFREG);
	assert_non_null(d);
	assert_non_null(f);
	assert_int_equal(fs_inode_key(&t, "", 0, f, key, &klen), 0);
	assert_string_equal(key, "d/f");
	assert_int_equal(fs_inode_key(&t, "pre", 3, f, key, &klen), 0);
	assert_string_equal(key, "pre/d/f");
	assert_int_equal(fs_inode_key(&t, "pre", 3, &t.root, key, &klen), 0);
	assert_string_equal(key, "pre");
	assert_int_equal(fs_inode_child_key(&t, "", 0, d, "g", key, &klen), 0);
	assert_string_equal(key, "d/g");
	assert_int_equal(
	    fs_inode_child_key(&t, "", 0, d, "bad\xff", key, &klen), -EINVAL);
	assert_ptr_equal(fs_inode_get(&t, f->ino), f);
	fs_inode_put(&t, f);
	/* The same name and kind: the same inode, one more lookup. */
	assert_ptr_equal(fs_inode_link(&t, d, "f", S_IFREG), f);
	assert_int_equal(f->nlookup, 2);
	fs_inode_put(&t, f);
	/* A directory rename moves what is below it: one move here. */
	fs_inode_move(&t, &t.root, "d", &t.root, "e", false);
	assert_int_equal(fs_inode_key(&t, "", 0, f, key, &klen), 0);
	assert_string_equal(key, "e/f");
	fs_inode_put(&t, f);
	fs_inode_put(&t, d);
	fs_itable_close(&t);
}

static void test_an_unlinked_inode_lives_until_forgotten(void **state)
{
	(void)state;
	struct fs_itable t;
	char key[KV_MAX_KEY + 1];
	size_t klen;
	assert_int_equal(fs_itable_init(&t, S_IFDIR), 0);
	struct fs_inode *f = fs_inode_link(&t, &t.root, "f", S_IFREG);
	uint64_t ino = f->ino;
	fs_inode_put(&t, f);
	fs_inode_unlink(&t, &t.root, "f");
	assert_null(fs_inode_child(&t, &t.root, "f"));
	f = fs_inode_get(&t, ino); /* the kernel still holds it */
	assert_non_null(f);
	assert_int_equal(fs_inode_key(&t, "", 0, f, key, &klen), -ENOENT);
	fs_inode_put(&t, f);
	fs_inode_forget(&t, ino, 1);
	assert_null(fs_inode_get(&t, ino)); /* gone: ASan checks the free */
	/* A name replaced by another kind gets a new inode. */
	f = fs_inode_link(&t, &t.root, "x", S_IFREG);
	struct fs_inode *d = fs_inode_link(&t, &t.root, "x", S_IFDIR);
	assert_ptr_not_equal(f, d);
	assert_int_not_equal(f->ino, d->ino);
	assert_int_equal(fs_inode_key(&t, "", 0, f, key, &klen), -ENOENT);
	fs_inode_put(&t, f);
	fs_inode_put(&t, d);
	fs_itable_close(&t);
}

static void test_pending_children_are_counted_and_named(void **state)
{
	(void)state;
	struct fs_itable t;
	char **names;
	size_t n;
	assert_int_equal(fs_itable_init(&t, S_IFDIR), 0);
	struct fs_inode *d = fs_inode_link(&t, &t.root, "d", S_IFDIR);
	struct fs_inode *a = fs_inode_link(&t, d, "a", S_IFREG);
	struct fs_inode *b = fs_inode_link(&t, d, "b", S_IFREG);
	fs_inode_set_pending(&t, a, true);
	fs_inode_set_pending(&t, b, true);
	assert_int_equal(fs_inode_pending_kids(&t, d), 2);
	fs_inode_set_pending(&t, b, false); /* committed */
	assert_int_equal(fs_inode_pending_names(&t, d, &names, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(names[0], "a");
	fs_names_free(names, n);
	/* Moved to another directory, its count moves with it. */
	struct fs_inode *e = fs_inode_link(&t, &t.root, "e", S_IFDIR);
	fs_inode_move(&t, d, "a", e, "a2", false);
	assert_int_equal(fs_inode_pending_kids(&t, d), 0);
	assert_int_equal(fs_inode_pending_kids(&t, e), 1);
	fs_inode_unlink(&t, e, "a2");
	assert_int_equal(fs_inode_pending_kids(&t, e), 0);
	fs_inode_put(&t, a);
	fs_inode_put(&t, b);
	fs_inode_put(&t, d);
	fs_inode_put(&t, e);
	fs_itable_close(&t);
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
	fs_inval_flush(&iv);
	assert_true(wait_done(&iv, 1));
	fs_inval_stop(&iv);
	fs_inval_join(&iv);
	assert_int_equal(r.n, 2);
	assert_string_equal(r.seen[0], "/a/b");
	assert_string_equal(r.seen[1], "/a");
}

static uint64_t done_now(struct fs_inval *iv)
{
	pthread_mutex_lock(&iv->lock);
	uint64_t n = iv->done;
	pthread_mutex_unlock(&iv->lock);
	return n;
}

static void test_queued_changes_wait_for_the_flush(void **state)
{
	(void)state;
	struct recorder r = {.lock = PTHREAD_MUTEX_INITIALIZER};
	struct fs_inval iv;
	assert_int_equal(fs_inval_start(&iv, "", 0, record, &r), 0);
	/* a first chunk: once it is done, the thread waits (it held the
	 * lock from counting it to its wait) */
	fs_inval_push(&iv, "x", 1);
	fs_inval_flush(&iv);
	assert_true(wait_done(&iv, 1));
	fs_inval_push(&iv, "d/a", 3);
	fs_inval_push(&iv, "d/b", 3);
	fs_inval_push(&iv, "e", 1);
	usleep(100 * 1000);
	assert_int_equal(done_now(&iv), 1); /* one wake-up for the chunk */
	fs_inval_flush(&iv);
	assert_true(wait_done(&iv, 4));
	fs_inval_stop(&iv);
	fs_inval_join(&iv);
	/* in order, each parent once while it repeats */
	assert_int_equal(r.n, 7);
	assert_string_equal(r.seen[2], "/d/a");
	assert_string_equal(r.seen[3], "/d");
	assert_string_equal(r.seen[4], "/d/b");
	assert_string_equal(r.seen[5], "/e");
	assert_string_equal(r.seen[6], "/");
}

static void test_a_long_queue_wakes_the_thread_by_itself(void **state)
{
	(void)state;
	struct recorder r = {.lock = PTHREAD_MUTEX_INITIALIZER};
	struct fs_inval iv;
	char key[128];
	assert_int_equal(fs_inval_start(&iv, "", 0, record, &r), 0);
	/* 1,000 paths of 101 bytes: past the 64 KiB that wakes it, and
	 * past the buffers' first sizes (each growth keeps what it held) */
	for (int i = 0; i < 1000; i++) {
		int n = snprintf(key, sizeof(key), "%0100d", i);
		fs_inval_push(&iv, key, (size_t)n);
	}
	assert_true(wait_done(&iv, 600));
	fs_inval_flush(&iv);
	assert_true(wait_done(&iv, 1000));
	assert_int_equal(iv.queued, 1000);
	assert_int_equal(iv.dropped, 0);
	fs_inval_stop(&iv);
	fs_inval_join(&iv);
	/* the first path whole, as far as the recorder keeps it */
	assert_int_equal(r.seen[0][0], '/');
	assert_int_equal(strspn(r.seen[0] + 1, "0"), 62);
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
	    cmocka_unit_test(test_a_file_shows_its_record_until_changed),
	    cmocka_unit_test(test_writes_at_offsets_fill_holes_with_zeros),
	    cmocka_unit_test(test_append_writes_at_the_end_whatever_the_offset),
	    cmocka_unit_test(test_truncate_shrinks_and_grows_with_zeros),
	    cmocka_unit_test(test_a_write_past_the_limit_poisons_the_file),
	    cmocka_unit_test(test_a_value_exactly_at_the_limit_is_accepted),
	    cmocka_unit_test(test_a_new_file_is_pending_with_its_attributes),
	    cmocka_unit_test(
		test_a_clean_file_follows_the_store_a_dirty_one_does_not),
	    cmocka_unit_test(test_pages_are_kept_only_for_the_record_they_hold),
	    cmocka_unit_test(test_pages_are_not_kept_across_changes_here),
	    cmocka_unit_test(test_xattrs_fold_into_the_file_with_their_flags),
	    cmocka_unit_test(test_inodes_map_numbers_names_and_keys),
	    cmocka_unit_test(test_an_unlinked_inode_lives_until_forgotten),
	    cmocka_unit_test(test_pending_children_are_counted_and_named),
	    cmocka_unit_test(
		test_changed_keys_are_invalidated_with_their_parent),
	    cmocka_unit_test(test_queued_changes_wait_for_the_flush),
	    cmocka_unit_test(test_a_long_queue_wakes_the_thread_by_itself),
	    cmocka_unit_test(test_a_stopped_queue_drops_new_changes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
