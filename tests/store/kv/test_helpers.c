/* test_helpers.c - the one-home helpers of store/kv: HOST:PORT parsing
 * (addr.c), the monotonic deadlines (clock.c) and the durable files
 * (file.c: whole writes, the atomic replace and what a failure leaves). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "kv.h"
#include "rmtree.h"

static int parse(const char *s, bool zero, char *host, unsigned *port)
{
	return kv_addr_parse(s, zero, host, KV_ADDR_MAX + 1, port, NULL);
}

static void test_addresses_take_a_host_and_a_port_in_range(void **state)
{
	(void)state;
	char host[KV_ADDR_MAX + 1];
	unsigned port;
	assert_int_equal(parse("127.0.0.1:7001", false, host, &port), 0);
	assert_string_equal(host, "127.0.0.1");
	assert_int_equal(port, 7001);
	assert_int_equal(parse("node-2.example_x:1", false, host, &port), 0);
	assert_string_equal(host, "node-2.example_x");
	assert_int_equal(port, 1);
	assert_int_equal(parse("[::1]:65535", false, host, &port), 0);
	assert_string_equal(host, "::1");
	assert_int_equal(port, 65535);
	assert_int_equal(parse("[::ffff:10.0.0.1]:80", false, host, &port), 0);
	assert_string_equal(host, "::ffff:10.0.0.1");
	/* 0 only where the kernel may pick */
	assert_int_equal(parse("127.0.0.1:0", true, host, &port), 0);
	assert_int_equal(port, 0);
	assert_int_equal(parse("127.0.0.1:0", false, host, &port), -EINVAL);
}

static void test_bad_addresses_are_refused_with_a_reason(void **state)
{
	(void)state;
	static const char *const bad[] = {
	    "127.0.0.1:99999", /* was taken as 34463 */
	    "127.0.0.1:65536",
	    "127.0.0.1:0x10",
	    "127.0.0.1:-1",
	    "127.0.0.1:+80",
	    "127.0.0.1: 80",
	    "127.0.0.1:",
	    "127.0.0.1",
	    ":7001",
	    "::1:7001", /* IPv6 without brackets */
	    "[::1]7001",
	    "[::1:7001",
	    "[fe80::1%eth0]:80",
	    "a b:80",
	    "a/b:80",
	    "user@host:80",
	    "host\r\nX: y:80",
	    "",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *why = NULL;
		char host[KV_ADDR_MAX + 1];
		int r =
		    kv_addr_parse(bad[i], true, host, sizeof(host), NULL, &why);
		if (r != -EINVAL || why == NULL || !*why)
			fail_msg("\"%s\" was not refused with a reason",
				 bad[i]);
		assert_false(kv_addr_valid(bad[i]));
	}
	assert_false(kv_addr_valid(NULL));
	/* too long for a member address, and a host that does not fit */
	char longer[KV_ADDR_MAX + 8];
	memset(longer, 'a', sizeof(longer));
	memcpy(longer + sizeof(longer) - 6, ":7001", 6);
	assert_false(kv_addr_valid(longer));
	char small[4];
	assert_int_equal(
	    kv_addr_parse("abcd:1", false, small, sizeof(small), NULL, NULL),
	    -EINVAL);
}

static void test_deadlines_order_and_pass(void **state)
{
	(void)state;
	struct timespec now = kv_deadline(0), later = kv_deadline(60000);
	assert_true(kv_past(&now));
	assert_false(kv_past(&later));
	long left = kv_ms_left(&later);
	assert_true(left > 59000 && left <= 60000);
	assert_int_equal(kv_ms_left(&now), 0);
	/* a negative wait is no wait */
	struct timespec before = kv_deadline(-5);
	assert_true(kv_past(&before));
	uint64_t a = kv_mono_ms(), b = kv_mono_ms();
	assert_true(b >= a);
	assert_true(kv_wall_ns() > (int64_t)1600000000 * 1000000000);
	pthread_cond_t c;
	assert_int_equal(kv_cond_init(&c), 0);
	pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	pthread_mutex_lock(&mu);
	struct timespec soon = kv_deadline(20);
	assert_int_equal(pthread_cond_timedwait(&c, &mu, &soon), ETIMEDOUT);
	assert_true(kv_past(&soon)); /* waited on the monotonic clock */
	pthread_mutex_unlock(&mu);
	pthread_cond_destroy(&c);
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	static char buf[256];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return buf;
}

static void test_a_replaced_file_is_the_old_or_the_new_one(void **state)
{
	(void)state;
	char dir[] = "/tmp/kvfs-test-helpers-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[128], tmp[128];
	snprintf(path, sizeof(path), "%s/f", dir);
	snprintf(tmp, sizeof(tmp), "%s/f.tmp", dir);
	assert_int_equal(kv_file_replace(dir, "f", "one", 3, 0600), 0);
	assert_string_equal(slurp(path), "one");
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(kv_file_replace(dir, "f", "two", 3, 0600), 0);
	assert_string_equal(slurp(path), "two");
	assert_int_equal(access(tmp, F_OK), -1); /* nothing left beside it */

	/* a write that fails (a closed descriptor) leaves the old file and
	 * removes the temp file */
	struct kv_tmpfile t;
	assert_int_equal(kv_tmpfile_open(&t, dir, "f", 0600), 0);
	assert_int_equal(kv_write_all(t.fd, "thr", 3), 0);
	close(t.fd);
	assert_int_equal(kv_write_all(t.fd, "ee", 2), -EBADF);
	t.fd = -1;
	kv_tmpfile_abort(&t);
	assert_string_equal(slurp(path), "two");
	assert_int_equal(access(tmp, F_OK), -1);

	/* a directory that does not exist: an error, nothing created */
	char gone[160];
	snprintf(gone, sizeof(gone), "%s/missing", dir);
	assert_int_equal(kv_file_replace(gone, "f", "x", 1, 0600), -ENOENT);

	/* pwrite at an offset, whole */
	int fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(kv_pwrite_all(fd, "O", 1, 2), 0);
	close(fd);
	assert_string_equal(slurp(path), "twO");
	assert_int_equal(kv_sync_dir(dir), 0);
	assert_int_equal(kv_sync_dir(gone), -ENOENT);
	rmtree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_addresses_take_a_host_and_a_port_in_range),
	    cmocka_unit_test(test_bad_addresses_are_refused_with_a_reason),
	    cmocka_unit_test(test_deadlines_order_and_pass),
	    cmocka_unit_test(test_a_replaced_file_is_the_old_or_the_new_one),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
