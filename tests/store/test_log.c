/* test_log.c - the on-disk log (store/log.c): replay after reopen, many
 * segments, conflict truncation, the torn-tail rule, corruption reports
 * that name file and offset, compaction, reset, and a full disk (a real
 * tmpfs) that gives -ENOSPC instead of SIGBUS. Damage is made by editing
 * the segment files by hand, as a crash or a bad disk would. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "store.h"

struct fx {
	char dir[64];
	struct log *log;
	char *msg;
};

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/kvfs-log-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;
	log_close(f->log);
	free(f->msg);
	umount2(f->dir, MNT_DETACH); /* if a tmpfs test failed half-way */
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	int r = system(cmd);
	free(f);
	return r == 0 ? 0 : -1;
}

/* The command text of entry i: a JSON object whose size varies. */
static size_t cmd_text(uint64_t i, char *buf, size_t n)
{
	size_t pad = (size_t)(i * 37 % 200);
	int len = snprintf(
	    buf, n, "{\"op\":\"put\",\"k\":\"key%" PRIu64 "\",\"v\":\"", i);
	for (size_t k = 0; k < pad; k++)
		buf[len++] = (char)('a' + (i + k) % 26);
	len += snprintf(buf + len, n - (size_t)len, "\"}");
	return (size_t)len;
}

static void append_range(struct log *log, uint64_t from, uint64_t to,
			 uint64_t term)
{
	char buf[512];
	for (uint64_t i = from; i <= to; i++) {
		struct log_entry e = {.index = i, .term = term, .type = 0};
		e.len = cmd_text(i, buf, sizeof(buf));
		e.data = buf;
		assert_int_equal(log_append(log, &e), 0);
	}
}

static void check_range(struct log *log, uint64_t from, uint64_t to,
			uint64_t term)
{
	char buf[512];
	for (uint64_t i = from; i <= to; i++) {
		struct log_entry e;
		assert_int_equal(log_get(log, i, &e), 0);
		assert_int_equal(e.index, i);
		assert_int_equal(e.term, term);
		assert_int_equal(log_term_at(log, i), term);
		size_t len = cmd_text(i, buf, sizeof(buf));
		assert_int_equal(e.len, len);
		assert_memory_equal(e.data, buf, len);
	}
}

static void reopen(struct fx *f, size_t seg_size)
{
	log_close(f->log);
	f->log = NULL;
	int ret = log_open(f->dir, seg_size, &f->log, &f->msg);
	if (ret)
		fail_msg("log_open: %d %s", ret, f->msg ? f->msg : "");
}

static int reopen_err(struct fx *f, size_t seg_size)
{
	log_close(f->log);
	f->log = NULL;
	free(f->msg);
	f->msg = NULL;
	return log_open(f->dir, seg_size, &f->log, &f->msg);
}

static int count_segments(const char *dir)
{
	DIR *d = opendir(dir);
	assert_non_null(d);
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		n += strncmp(de->d_name, "log-", 4) == 0;
	closedir(d);
	return n;
}

static void seg_path(const struct fx *f, uint64_t first, char *out, size_t n)
{
	snprintf(out, n, "%s/log-%020" PRIu64 ".jsonl", f->dir, first);
}

/* Read a whole file; *len gets its size. Caller frees. */
static char *slurp(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	struct stat sb;
	assert_int_equal(fstat(fd, &sb), 0);
	char *buf = malloc((size_t)sb.st_size + 1);
	assert_int_equal(pread(fd, buf, (size_t)sb.st_size, 0), sb.st_size);
	buf[sb.st_size] = 0;
	close(fd);
	*len = (size_t)sb.st_size;
	return buf;
}

static void poke(const char *path, size_t off, const void *bytes, size_t n)
{
	int fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, bytes, n, (off_t)off), (ssize_t)n);
	close(fd);
}

/* Offset of the line of entry i in the file at path. */
static size_t line_offset(const char *path, uint64_t i)
{
	size_t len;
	char *buf = slurp(path, &len);
	char pat[64];
	snprintf(pat, sizeof(pat), "\n{\"i\":%" PRIu64 ",", i);
	char *p = strstr(buf, pat);
	assert_non_null(p);
	size_t off = (size_t)(p - buf) + 1;
	free(buf);
	return off;
}

static void test_log_replays_synced_entries_after_reopen(void **state)
{
	struct fx *f = *state;
	reopen(f, 0);
	assert_int_equal(log_first_index(f->log), 1);
	assert_int_equal(log_last_index(f->log), 0);
	append_range(f->log, 1, 100, 1);
	append_range(f->log, 101, 200, 3);
	struct log_entry noop = {.index = 201, .term = 3, .type = 1};
	assert_int_equal(log_append(f->log, &noop), 0);
	assert_int_equal(log_sync(f->log), 0);
	reopen(f, 0);
	assert_int_equal(log_first_index(f->log), 1);
	assert_int_equal(log_last_index(f->log), 201);
	check_range(f->log, 1, 100, 1);
	check_range(f->log, 101, 200, 3);
	struct log_entry e;
	assert_int_equal(log_get(f->log, 201, &e), 0);
	assert_int_equal(e.type, 1);
	assert_int_equal(e.len, 0);
	assert_int_equal(log_get(f->log, 202, &e), -ENOENT);
	assert_int_equal(log_get(f->log, 0, &e), -ENOENT);
	assert_int_equal(count_segments(f->dir), 1);
	assert_true(log_bytes(f->log) > 200 * 40);
}

/* KiB of this process's resident pages mapped from files in dir (the
 * log's segments), from /proc/self/smaps. */
static long mapped_kib(const char *dir)
{
	FILE *fp = fopen("/proc/self/smaps", "r");
	char line[512];
	long kib = 0, v;
	bool in = false;

	assert_non_null(fp);
	while (fgets(line, sizeof(line), fp) != NULL) {
		/* a mapping's line starts with its address (lower-case hex),
		 * its fields with a capital */
		if ((line[0] >= '0' && line[0] <= '9') ||
		    (line[0] >= 'a' && line[0] <= 'f'))
			in = strstr(line, dir) != NULL;
		else if (in && sscanf(line, "Rss: %ld kB", &v) == 1)
			kib += v;
	}
	fclose(fp);
	return kib;
}

/* The pages the replay and later reads map are given back by
 * log_release each time, not only the first: the recovery reads the
 * log again after the replay released it (issue 25: 87 MiB of a 1M-key
 * node's resident memory were such pages). */
static void test_log_gives_back_pages_read_after_a_release(void **state)
{
	struct fx *f = *state;
	reopen(f, 0);
	append_range(f->log, 1, 20000, 1); /* about 3 MiB */
	assert_int_equal(log_sync(f->log), 0);
	reopen(f, 0); /* the replay reads it all, then releases */
	assert_true(mapped_kib(f->dir) < 512);
	check_range(f->log, 1, 20000, 1);
	assert_true(mapped_kib(f->dir) > 2048);
	log_release(f->log);
	assert_true(mapped_kib(f->dir) < 512);
	check_range(f->log, 1, 20000, 1); /* and again */
	log_release(f->log);
	assert_true(mapped_kib(f->dir) < 512);
}

static void test_log_rejects_bad_appends(void **state)
{
	struct fx *f = *state;
	reopen(f, 0);
	append_range(f->log, 1, 5, 2);
	struct log_entry e = {.index = 7, .term = 2, .data = "{}", .len = 2};
	assert_int_equal(log_append(f->log, &e), -EINVAL); /* gap */
	e.index = 6;
	e.term = 1;
	assert_int_equal(log_append(f->log, &e), -EINVAL); /* term goes back */
	e.term = 2;
	e.data = "{\n}";
	e.len = 3;
	assert_int_equal(log_append(f->log, &e), -EINVAL); /* newline */
	e.data = "{\0}";
	assert_int_equal(log_append(f->log, &e), -EINVAL); /* NUL */
	assert_int_equal(log_last_index(f->log), 5);
	assert_int_equal(log_truncate(f->log, 0), -EINVAL);
	assert_int_equal(log_truncate(f->log, 9), -EINVAL);
}

static void test_log_spreads_over_many_segments(void **state)
{
	struct fx *f = *state;
	reopen(f, 4096);
	append_range(f->log, 1, 1000, 1);
	/* an entry bigger than a segment gets a segment of its own size */
	size_t big = 3 * 4096;
	char *data = malloc(big);
	memset(data, 'x', big);
	memcpy(data, "{\"v\":\"", 6);
	memcpy(data + big - 2, "\"}", 2);
	struct log_entry e = {
	    .index = 1001, .term = 2, .data = data, .len = big};
	assert_int_equal(log_append(f->log, &e), 0);
	append_range(f->log, 1002, 1010, 2);
	assert_int_equal(log_sync(f->log), 0);
	int nseg = count_segments(f->dir);
	assert_true(nseg > 20);
	reopen(f, 4096);
	assert_int_equal(count_segments(f->dir), nseg);
	assert_int_equal(log_last_index(f->log), 1010);
	check_range(f->log, 1, 1000, 1);
	assert_int_equal(log_get(f->log, 1001, &e), 0);
	assert_int_equal(e.len, big);
	assert_memory_equal(e.data, data, big);
	check_range(f->log, 1002, 1010, 2);
	free(data);
}

/* Entries past LOG_PWRITE_BYTES go into the segment by pwrite, not
 * through the mapping: read back through the mapping at once, between
 * small ones, and after a reopen. */
static void test_log_big_entries_read_back_now_and_after_reopen(void **state)
{
	struct fx *f = *state;
	reopen(f, 0);
	append_range(f->log, 1, 5, 1);
	size_t big = (3u << 20) + 11;
	char *data = malloc(big);
	for (size_t k = 0; k < big; k++)
		data[k] = (char)('a' + k % 23);
	memcpy(data, "{\"v\":\"", 6);
	memcpy(data + big - 2, "\"}", 2);
	struct log_entry e = {.index = 6, .term = 1, .data = data, .len = big};
	assert_int_equal(log_append(f->log, &e), 0);
	append_range(f->log, 7, 9, 1);
	struct log_entry got;
	assert_int_equal(log_get(f->log, 6, &got), 0);
	assert_int_equal(got.len, big);
	assert_memory_equal(got.data, data, big);
	check_range(f->log, 7, 9, 1);
	assert_int_equal(log_sync(f->log), 0);
	reopen(f, 0);
	assert_int_equal(log_last_index(f->log), 9);
	check_range(f->log, 1, 5, 1);
	assert_int_equal(log_get(f->log, 6, &got), 0);
	assert_int_equal(got.len, big);
	assert_memory_equal(got.data, data, big);
	check_range(f->log, 7, 9, 1);
	free(data);
}

/* A big entry's whole line (prefix, data, "}\n") goes in by one pwritev,
 * the mapping untouched: big lines back to back with no small one
 * between them, of sizes about the pwrite threshold (256 KiB) and ending
 * at every few bytes of a page, some of them past the end of a segment,
 * read back byte for byte at once and after a reopen; then a byte
 * flipped in one of them, and a trailer damaged in another, are
 * reported, not read. */
static char *big_data(size_t len, uint64_t i)
{
	char *d = malloc(len);
	assert_non_null(d);
	for (size_t k = 0; k < len; k++)
		d[k] = (char)('a' + (k * 7 + i) % 26);
	memcpy(d, "{\"v\":\"", 6);
	memcpy(d + len - 2, "\"}", 2);
	return d;
}

static size_t big_len(uint64_t i)
{
	return (256u << 10) - 3 + (size_t)(i * 1361 % 4099);
}

static void check_big(struct log *log, uint64_t from, uint64_t to)
{
	for (uint64_t i = from; i <= to; i++) {
		struct log_entry got;
		char *d = big_data(big_len(i), i);
		assert_int_equal(log_get(log, i, &got), 0);
		assert_int_equal(got.len, big_len(i));
		assert_memory_equal(got.data, d, got.len);
		free(d);
	}
}

static void test_log_big_lines_back_to_back_round_trip(void **state)
{
	struct fx *f = *state;
	enum { N = 24 };
	reopen(f, 2u << 20); /* a segment holds about 7 of them */
	for (uint64_t i = 1; i <= N; i++) {
		char *d = big_data(big_len(i), i);
		struct log_entry e = {
		    .index = i, .term = 1, .data = d, .len = big_len(i)};
		assert_int_equal(log_append(f->log, &e), 0);
		free(d);
	}
	check_big(f->log, 1, N);
	assert_true(count_segments(f->dir) >= 3);
	assert_int_equal(log_sync(f->log), 0);
	reopen(f, 2u << 20);
	assert_int_equal(log_last_index(f->log), N);
	check_big(f->log, 1, N);

	char path[128];
	seg_path(f, 1, path, sizeof(path));
	size_t off = line_offset(path, 3);
	size_t len;
	char *file = slurp(path, &len);
	char was = file[off + 200000];
	free(file);
	poke(path, off + 200000, "#", 1); /* inside entry 3's data */
	struct log_entry e;
	assert_int_equal(log_get(f->log, 3, &e), KV_ECORRUPT);
	assert_int_equal(reopen_err(f, 2u << 20), KV_ECORRUPT);
	assert_non_null(f->msg);
	assert_non_null(strstr(f->msg, "checksum"));
	poke(path, off + 200000, &was, 1);
	reopen(f, 2u << 20);
	check_big(f->log, 1, N);
	/* the "}" of entry 4's "}\n", with whole lines after it */
	poke(path, line_offset(path, 5) - 2, "]", 1);
	assert_int_equal(reopen_err(f, 2u << 20), KV_ECORRUPT);
	assert_non_null(f->msg);
}

static void test_log_truncates_conflicting_suffix_then_appends(void **state)
{
	struct fx *f = *state;
	reopen(f, 4096);
	append_range(f->log, 1, 300, 1);
	assert_int_equal(log_sync(f->log), 0);
	int before = count_segments(f->dir);
	/* a new leader's entry 150 at term 2 replaces 150..300 */
	append_range(f->log, 150, 160, 2);
	assert_int_equal(log_last_index(f->log), 160);
	assert_true(count_segments(f->dir) < before);
	assert_int_equal(log_sync(f->log), 0);
	reopen(f, 4096);
	assert_int_equal(log_last_index(f->log), 160);
	check_range(f->log, 1, 149, 1);
	check_range(f->log, 150, 160, 2);
	/* and explicit truncation down to one entry */
	assert_int_equal(log_truncate(f->log, 2), 0);
	assert_int_equal(log_last_index(f->log), 1);
	assert_int_equal(log_term_at(f->log, 1), 1);
	reopen(f, 4096);
	assert_int_equal(log_last_index(f->log), 1);
	assert_int_equal(count_segments(f->dir), 1);
	append_range(f->log, 2, 3, 4);
	reopen(f, 4096);
	check_range(f->log, 2, 3, 4);
}

/* Run reopen(f, seg_size) with stderr going to a buffer; what was said. */
static char *reopen_capturing_stderr(struct fx *f, size_t seg_size)
{
	char path[96];
	snprintf(path, sizeof(path), "%s.stderr", f->dir);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	fflush(stderr);
	int saved = dup(2);
	assert_true(saved >= 0);
	assert_int_equal(dup2(fd, 2), 2);
	int ret = reopen_err(f, seg_size);
	fflush(stderr);
	assert_int_equal(dup2(saved, 2), 2); /* before any assertion fails */
	close(saved);
	close(fd);
	size_t len;
	char *said = slurp(path, &len);
	unlink(path);
	if (ret)
		fail_msg("log_open: %d %s (said: %s)", ret,
			 f->msg ? f->msg : "", said);
	return said;
}

static void test_log_cuts_torn_last_line(void **state)
{
	struct fx *f = *state;
	reopen(f, 0);
	append_range(f->log, 1, 10, 1);
	assert_int_equal(log_sync(f->log), 0);
	uint64_t bytes = log_bytes(f->log);
	log_close(f->log);
	f->log = NULL;
	char path[128];
	seg_path(f, 1, path, sizeof(path));
	size_t len;
	char *buf = slurp(path, &len);
	size_t used = strlen(buf); /* the end of the last line */
	free(buf);
	const char torn[] = "{\"i\":11,\"t\":1,\"y\":0,\"crc\":\"12";
	poke(path, used, torn, sizeof(torn) - 1);
	char *said = reopen_capturing_stderr(f, 0);
	assert_int_equal(log_last_index(f->log), 10);
	assert_int_equal(log_bytes(f->log), bytes);
	/* torn: cut without a word, nothing reported lost */
	assert_int_equal(log_lost_index(f->log), 0);
	assert_string_equal(said, "");
	free(said);
	/* the torn bytes are gone from the file, not just skipped */
	buf = slurp(path, &len);
	for (size_t k = used; k < len; k++)
		assert_int_equal(buf[k], 0);
	free(buf);
	append_range(f->log, 11, 12, 1);
	assert_int_equal(log_sync(f->log), 0);
	reopen(f, 0);
	check_range(f->log, 1, 12, 1);
}

/* A complete last line (it ends in its newline, no zero byte in it) with
 * one flipped byte was written whole, maybe synced and acknowledged: it
 * is cut like a torn one, but said on stderr with file, offset and index,
 * and reported by log_lost_index. */
static void test_log_cuts_a_damaged_last_line_and_reports_it(void **state)
{
	struct fx *f = *state;
	reopen(f, 0);
	append_range(f->log, 1, 12, 1);
	assert_int_equal(log_sync(f->log), 0);
	char path[128];
	seg_path(f, 1, path, sizeof(path));
	size_t off = line_offset(path, 12);
	poke(path, off + 50, "#", 1);
	char *said = reopen_capturing_stderr(f, 0);
	assert_int_equal(log_last_index(f->log), 11);
	assert_int_equal(log_lost_index(f->log), 12);
	check_range(f->log, 1, 11, 1);
	char want[64];
	snprintf(want, sizeof(want), "offset %zu", off);
	assert_non_null(strstr(said, path));
	assert_non_null(strstr(said, want));
	assert_non_null(strstr(said, "checksum"));
	assert_non_null(strstr(said, "entry 12 "));
	free(said);
	/* the cut is durable: the entry is written again in its place, and
	 * the next open has nothing to report */
	append_range(f->log, 12, 13, 1);
	assert_int_equal(log_sync(f->log), 0);
	reopen(f, 0);
	assert_int_equal(log_lost_index(f->log), 0);
	check_range(f->log, 1, 13, 1);

	/* a flipped byte in the syntax of the line is damage of the same
	 * kind: the index it held is the one after the previous entry */
	off = line_offset(path, 13);
	poke(path, off + 2, "j", 1); /* {"i": becomes {"j": */
	said = reopen_capturing_stderr(f, 0);
	assert_int_equal(log_lost_index(f->log), 13);
	assert_non_null(strstr(said, "entry 13 "));
	free(said);
}

static void test_log_drops_torn_new_segment(void **state)
{
	struct fx *f = *state;
	reopen(f, 4096);
	append_range(f->log, 1, 5, 1);
	assert_int_equal(log_sync(f->log), 0);
	log_close(f->log);
	f->log = NULL;
	/* the next segment was created and sized, its header never written */
	char path[128];
	seg_path(f, 6, path, sizeof(path));
	int fd = open(path, O_CREAT | O_WRONLY, 0644);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 4096), 0);
	close(fd);
	reopen(f, 4096);
	assert_int_equal(log_last_index(f->log), 5);
	assert_int_equal(access(path, F_OK), -1);
	append_range(f->log, 6, 7, 1);
	assert_int_equal(log_sync(f->log), 0);
	/* or created and not even preallocated */
	seg_path(f, 8, path, sizeof(path));
	fd = open(path, O_CREAT | O_WRONLY, 0644);
	assert_true(fd >= 0);
	close(fd);
	reopen(f, 4096);
	assert_int_equal(access(path, F_OK), -1);
	check_range(f->log, 1, 7, 1);
}

static void test_log_reports_bad_checksum_in_the_middle(void **state)
{
	struct fx *f = *state;
	reopen(f, 0);
	append_range(f->log, 1, 10, 1);
	assert_int_equal(log_sync(f->log), 0);
	char path[128];
	seg_path(f, 1, path, sizeof(path));
	size_t off = line_offset(path, 5);
	/* a flipped byte inside the value of entry 5 */
	poke(path, off + 50, "#", 1);
	/* the mapping is the page cache: log_get sees it too */
	struct log_entry e;
	assert_int_equal(log_get(f->log, 5, &e), KV_ECORRUPT);
	assert_int_equal(log_get(f->log, 4, &e), 0);
	assert_int_equal(reopen_err(f, 0), KV_ECORRUPT);
	assert_non_null(f->msg);
	char want[64];
	snprintf(want, sizeof(want), "offset %zu", off);
	assert_non_null(strstr(f->msg, path));
	assert_non_null(strstr(f->msg, want));
	assert_non_null(strstr(f->msg, "checksum"));
	assert_null(f->log);
}

static void
test_log_reports_unparsable_line_followed_by_valid_ones(void **state)
{
	struct fx *f = *state;
	reopen(f, 0);
	append_range(f->log, 1, 10, 1);
	assert_int_equal(log_sync(f->log), 0);
	char path[128];
	seg_path(f, 1, path, sizeof(path));
	size_t off = line_offset(path, 7);
	poke(path, off, "garbage", 7);
	assert_int_equal(reopen_err(f, 0), KV_ECORRUPT);
	char want[64];
	snprintf(want, sizeof(want), "offset %zu", off);
	assert_non_null(strstr(f->msg, want));
	assert_non_null(strstr(f->msg, "log-00000000000000000001.jsonl"));

	/* zeros in the middle with entries after them are damage too */
	poke(path, off, "\0\0\0\0\0\0\0", 7);
	assert_int_equal(reopen_err(f, 0), KV_ECORRUPT);
	assert_non_null(strstr(f->msg, want));
}

static void test_log_reports_torn_line_in_an_earlier_segment(void **state)
{
	struct fx *f = *state;
	reopen(f, 4096);
	append_range(f->log, 1, 100, 1);
	assert_int_equal(log_sync(f->log), 0);
	assert_true(count_segments(f->dir) >= 3);
	log_close(f->log);
	f->log = NULL;
	/* a partial line after the last entry of the first segment: only the
	 * last segment may end torn (a full one is synced before the next) */
	char path[128];
	seg_path(f, 1, path, sizeof(path));
	size_t len;
	char *buf = slurp(path, &len);
	size_t end = strlen(buf);
	free(buf);
	assert_true(end < len);
	poke(path, end, "{\"i\":", 5);
	assert_int_equal(reopen_err(f, 4096), KV_ECORRUPT);
	char want[64];
	snprintf(want, sizeof(want), "offset %zu", end);
	assert_non_null(strstr(f->msg, want));
	assert_non_null(strstr(f->msg, path));
}

static void test_log_reports_unknown_version(void **state)
{
	struct fx *f = *state;
	reopen(f, 0);
	append_range(f->log, 1, 3, 1);
	assert_int_equal(log_sync(f->log), 0);
	char path[128];
	seg_path(f, 1, path, sizeof(path));
	const char *v = "\"version\":";
	size_t len;
	char *buf = slurp(path, &len);
	size_t off = (size_t)(strstr(buf, v) - buf) + strlen(v);
	free(buf);
	poke(path, off, "7", 1);
	assert_int_equal(reopen_err(f, 0), KV_EVERSION);
	assert_non_null(strstr(f->msg, "version"));
	assert_non_null(strstr(f->msg, path));
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_log_reports_missing_segment_as_gap(void **state)
{
	struct fx *f = *state;
	reopen(f, 4096);
	append_range(f->log, 1, 200, 1);
	assert_int_equal(log_sync(f->log), 0);
	log_close(f->log);
	f->log = NULL;
	/* remove a segment in the middle */
	DIR *d = opendir(f->dir);
	char *names[256];
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)) && n < 256)
		if (strncmp(de->d_name, "log-", 4) == 0)
			names[n++] = strdup(de->d_name);
	closedir(d);
	assert_true(n >= 3);
	qsort(names, (size_t)n, sizeof(char *), cmp_str);
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", f->dir, names[1]);
	assert_int_equal(unlink(path), 0);
	for (int i = 0; i < n; i++)
		free(names[i]);
	assert_int_equal(reopen_err(f, 4096), KV_ECORRUPT);
	assert_non_null(strstr(f->msg, "gap"));
}

static void
test_log_compaction_deletes_segments_and_survives_reopen(void **state)
{
	struct fx *f = *state;
	reopen(f, 4096);
	append_range(f->log, 1, 150, 1);
	append_range(f->log, 151, 300, 2);
	assert_int_equal(log_sync(f->log), 0);
	int before = count_segments(f->dir);
	uint64_t bytes = log_bytes(f->log);
	assert_int_equal(log_compact(f->log, 200, 3), -EINVAL); /* wrong term */
	assert_int_equal(log_compact(f->log, 200, 2), 0);
	assert_int_equal(log_first_index(f->log), 201);
	assert_int_equal(log_term_at(f->log, 200), 2);
	assert_int_equal(log_term_at(f->log, 100), 0);
	struct log_entry e;
	assert_int_equal(log_get(f->log, 200, &e), -ENOENT);
	check_range(f->log, 201, 300, 2);
	int after = count_segments(f->dir);
	assert_true(after < before);
	assert_true(log_bytes(f->log) < bytes / 2);
	reopen(f, 4096);
	/* the log may keep a few entries before 201 (the rest of a
	 * segment), never lose one after it */
	uint64_t first = log_first_index(f->log);
	assert_true(first <= 201 && first > 150);
	assert_int_equal(log_term_at(f->log, first - 1),
			 first - 1 > 150 ? 2 : 1);
	check_range(f->log, 201, 300, 2);
	assert_int_equal(count_segments(f->dir), after);

	/* compacting everything keeps the log usable */
	assert_int_equal(log_compact(f->log, 300, 2), 0);
	assert_int_equal(log_first_index(f->log), 301);
	assert_int_equal(log_last_index(f->log), 300);
	assert_int_equal(log_term_at(f->log, 300), 2);
	assert_int_equal(log_bytes(f->log), 0);
	append_range(f->log, 301, 310, 2);
	assert_int_equal(log_sync(f->log), 0);
	reopen(f, 4096);
	assert_true(log_first_index(f->log) <= 301);
	assert_int_equal(log_last_index(f->log), 310);
	check_range(f->log, 301, 310, 2);
}

static void test_log_reset_discards_everything(void **state)
{
	struct fx *f = *state;
	reopen(f, 4096);
	append_range(f->log, 1, 100, 1);
	assert_int_equal(log_sync(f->log), 0);
	assert_int_equal(log_reset(f->log, 1000, 7), 0);
	assert_int_equal(log_first_index(f->log), 1001);
	assert_int_equal(log_last_index(f->log), 1000);
	assert_int_equal(log_term_at(f->log, 1000), 7);
	struct log_entry e;
	assert_int_equal(log_get(f->log, 50, &e), -ENOENT);
	assert_int_equal(log_sync(f->log), 0);
	/* the reset point survives a restart before any append */
	reopen(f, 4096);
	assert_int_equal(log_first_index(f->log), 1001);
	assert_int_equal(log_term_at(f->log, 1000), 7);
	append_range(f->log, 1001, 1100, 7);
	assert_int_equal(log_sync(f->log), 0);
	reopen(f, 4096);
	assert_int_equal(log_first_index(f->log), 1001);
	assert_int_equal(log_last_index(f->log), 1100);
	check_range(f->log, 1001, 1100, 7);
	char path[128];
	seg_path(f, 1, path, sizeof(path));
	assert_int_equal(access(path, F_OK), -1);
}

struct sync_arg {
	struct log_sync *s;
	int ret;
};

static void *sync_thread(void *p)
{
	struct sync_arg *a = p;
	a->ret = log_sync_run(a->s);
	return NULL;
}

static void test_log_syncs_on_another_thread_while_appending(void **state)
{
	struct fx *f = *state;
	reopen(f, 8192);
	uint64_t next = 1;
	for (int round = 0; round < 20; round++) {
		append_range(f->log, next, next + 9, 1);
		next += 10;
		struct sync_arg a = {0};
		assert_int_equal(log_sync_prepare(f->log, &a.s), 0);
		pthread_t t;
		assert_int_equal(pthread_create(&t, NULL, sync_thread, &a), 0);
		/* the owner goes on appending, into new segments too */
		append_range(f->log, next, next + 9, 1);
		next += 10;
		pthread_join(t, NULL);
		assert_int_equal(a.ret, 0);
		log_sync_done(a.s);
	}
	assert_int_equal(log_sync(f->log), 0);
	reopen(f, 8192);
	check_range(f->log, 1, next - 1, 1);
}

/* ---- a full disk: a 512 KiB tmpfs ---- */

static void test_log_fails_with_enospc_and_recovers(void **state)
{
	struct fx *f = *state;
	if (mount("kvfs-test", f->dir, "tmpfs", 0, "size=512k") != 0) {
		if (errno == EPERM) {
			print_message("skipped: mounting a tmpfs needs root "
				      "(CAP_SYS_ADMIN)\n");
			skip();
		}
		fail_msg("mount tmpfs: %s", strerror(errno));
	}
	/* a filler file to delete later, freeing space */
	char filler[128];
	snprintf(filler, sizeof(filler), "%s/filler", f->dir);
	int fd = open(filler, O_CREAT | O_WRONLY, 0644);
	assert_true(fd >= 0);
	assert_int_equal(posix_fallocate(fd, 0, 160 * 1024), 0);
	close(fd);

	int ret = log_open(f->dir, 64 * 1024, &f->log, &f->msg);
	assert_int_equal(ret, 0);
	char buf[512];
	uint64_t i = 1;
	for (;; i++) {
		struct log_entry e = {.index = i, .term = 1};
		e.len = cmd_text(i, buf, sizeof(buf));
		e.data = buf;
		ret = log_append(f->log, &e);
		if (ret)
			break;
		if (i % 50 == 0)
			assert_int_equal(log_sync(f->log), 0);
		assert_true(i < 100000);
	}
	assert_int_equal(ret, -ENOSPC);
	uint64_t last = i - 1;
	assert_true(last > 100);
	assert_int_equal(log_last_index(f->log), last);
	/* still refused, still no harm */
	struct log_entry e = {.index = i, .term = 1, .data = buf};
	e.len = cmd_text(i, buf, sizeof(buf));
	assert_int_equal(log_append(f->log, &e), -ENOSPC);
	assert_int_equal(log_sync(f->log), 0);
	check_range(f->log, 1, last, 1);

	/* space comes back: appends work again */
	assert_int_equal(unlink(filler), 0);
	append_range(f->log, i, i + 99, 1);
	assert_int_equal(log_sync(f->log), 0);
	reopen(f, 64 * 1024);
	assert_int_equal(log_last_index(f->log), i + 99);
	check_range(f->log, 1, i + 99, 1);
	log_close(f->log);
	f->log = NULL;
	assert_int_equal(umount(f->dir), 0);
}

/* The line on disk is exactly docs/log-format.md's: fields in order, the
 * CRC-32C of index, term, type and command in 8 lowercase hex digits.
 * The prefix is written by hand (no printf); checked against printf. */
static void test_entry_line_is_the_documented_format(void **state)
{
	struct fx *f = *state;
	static const char cmd[] = "{\"op\":\"put\"}";
	const uint64_t index = 1, term = 18446744073709551615u;
	struct log_entry e = {.index = index,
			      .term = term,
			      .type = 2,
			      .data = cmd,
			      .len = sizeof(cmd) - 1};
	unsigned char b[17];
	for (int i = 0; i < 8; i++) {
		b[i] = (unsigned char)(index >> (8 * i));
		b[8 + i] = (unsigned char)(term >> (8 * i));
	}
	b[16] = 2;
	uint32_t crc = kv_crc32c(kv_crc32c(0, b, sizeof(b)), cmd, e.len);
	char want[256], path[512], got[256] = {0};
	snprintf(want, sizeof want,
		 "{\"i\":%" PRIu64 ",\"t\":%" PRIu64
		 ",\"y\":2,\"crc\":\"%08" PRIx32 "\",\"c\":%s}\n",
		 index, term, crc, cmd);

	reopen(f, 1 << 20);
	assert_int_equal(log_append(f->log, &e), 0);
	assert_int_equal(log_sync(f->log), 0);
	seg_path(f, 1, path, sizeof path);
	FILE *fp = fopen(path, "r");
	assert_non_null(fp);
	while (fgets(got, sizeof got, fp))
		if (strncmp(got, "{\"i\":", 5) == 0)
			break;
	fclose(fp);
	assert_string_equal(got, want);
}

/* The terms of one segment are kept as runs (log_seg.c): many terms in
 * one segment, a truncation inside a run and at a run's start, appends of
 * new terms after it, and all of it again after a reopen. */
static void test_log_terms_change_inside_one_segment(void **state)
{
	struct fx *f = *state;
	reopen(f, 1u << 20); /* one segment holds everything below */
	uint64_t term_of[301] = {0};
	uint64_t i = 1;
	/* runs of 1, 2, 3, 5, 8 ... entries, the term one higher each time */
	for (uint64_t t = 1, len = 1, prev = 1; i <= 300; t++) {
		uint64_t to = i + len - 1 > 300 ? 300 : i + len - 1;
		append_range(f->log, i, to, t);
		for (uint64_t k = i; k <= to; k++)
			term_of[k] = t;
		i = to + 1;
		uint64_t next = len + prev;
		prev = len;
		len = next;
	}
	assert_int_equal(count_segments(f->dir), 1);
	for (int pass = 0; pass < 2; pass++) {
		for (uint64_t k = 1; k <= 300; k++)
			assert_int_equal(log_term_at(f->log, k), term_of[k]);
		assert_int_equal(log_sync(f->log), 0);
		reopen(f, 1u << 20);
	}
	/* cut inside a run (entry 100 is in the run of 55 from 89), then
	 * append the old term again and a new one */
	assert_int_equal(term_of[99], term_of[100]);
	assert_int_equal(log_truncate(f->log, 100), 0);
	append_range(f->log, 100, 100, term_of[99]);
	append_range(f->log, 101, 120, 50);
	/* cut at a run's start: entries 101.. of term 50 go entirely */
	assert_int_equal(log_truncate(f->log, 101), 0);
	assert_int_equal(log_term_at(f->log, 100), term_of[99]);
	assert_int_equal(log_term_at(f->log, 101), 0);
	append_range(f->log, 101, 110, 60);
	for (int pass = 0; pass < 2; pass++) {
		check_range(f->log, 1, 1, term_of[1]);
		for (uint64_t k = 1; k <= 100; k++)
			assert_int_equal(log_term_at(f->log, k), term_of[k]);
		check_range(f->log, 101, 110, 60);
		assert_int_equal(log_last_index(f->log), 110);
		assert_int_equal(log_sync(f->log), 0);
		reopen(f, 1u << 20);
	}
}

/* Entry offsets are 32 bits: a segment size over LOG_MAX_SEGMENT is
 * refused at open, and so is a segment file of 4 GiB or more (which no
 * log writes), each with a message; neither changes the directory. */
static void test_log_refuses_segments_too_big_to_index(void **state)
{
	struct fx *f = *state;
	assert_int_equal(reopen_err(f, (size_t)(1u << 30) + 4096), -EINVAL);
	assert_non_null(f->msg);
	assert_non_null(strstr(f->msg, "over the largest"));
	reopen(f, 4096);
	append_range(f->log, 1, 3, 1);
	assert_int_equal(log_sync(f->log), 0);
	log_close(f->log);
	f->log = NULL;
	char path[128];
	seg_path(f, 1, path, sizeof(path));
	assert_int_equal(truncate(path, (off_t)1 << 32), 0); /* sparse */
	assert_int_equal(reopen_err(f, 4096), KV_ECORRUPT);
	assert_non_null(f->msg);
	assert_non_null(strstr(f->msg, "4 GiB or more"));
	assert_int_equal(count_segments(f->dir), 1);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
	const struct CMUnitTest tests[] = {
	    T(test_entry_line_is_the_documented_format),
	    T(test_log_replays_synced_entries_after_reopen),
	    T(test_log_gives_back_pages_read_after_a_release),
	    T(test_log_rejects_bad_appends),
	    T(test_log_spreads_over_many_segments),
	    T(test_log_big_entries_read_back_now_and_after_reopen),
	    T(test_log_big_lines_back_to_back_round_trip),
	    T(test_log_truncates_conflicting_suffix_then_appends),
	    T(test_log_terms_change_inside_one_segment),
	    T(test_log_refuses_segments_too_big_to_index),
	    T(test_log_cuts_torn_last_line),
	    T(test_log_cuts_a_damaged_last_line_and_reports_it),
	    T(test_log_drops_torn_new_segment),
	    T(test_log_reports_bad_checksum_in_the_middle),
	    T(test_log_reports_unparsable_line_followed_by_valid_ones),
	    T(test_log_reports_torn_line_in_an_earlier_segment),
	    T(test_log_reports_unknown_version),
	    T(test_log_reports_missing_segment_as_gap),
	    T(test_log_compaction_deletes_segments_and_survives_reopen),
	    T(test_log_reset_discards_everything),
	    T(test_log_syncs_on_another_thread_while_appending),
	    T(test_log_fails_with_enospc_and_recovers),
	};
	return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
