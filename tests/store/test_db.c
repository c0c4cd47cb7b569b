/* test_db.c - the db snapshot file (store/db.c): write and load round trip
 * of a map with binary values, directories, links, FIFOs, sockets, owners,
 * times, extended attributes and the root's record, a missing file, a
 * version 1 file (its defaults; version 2 fields refused in it), damage in
 * the middle (a structural byte: the exact line offset; a byte inside a
 * value: the checksum), bad records of each kind, every truncation, an
 * unknown version, a full disk (on a small tmpfs, when the test may mount
 * one), and a big map. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "db.h"
#include "leases.h"
#include "locks.h"
#include "map_impl.h"

struct fixture {
	char dir[64];
	char path[96];
	struct map *m;
	uint64_t index;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	strcpy(f->dir, "/tmp/kvfs-test-db-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/db.jsonl", f->dir);
	f->m = map_new();
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	umount(f->dir); /* if a test mounted a tmpfs there */
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	map_free(f->m);
	free(f);
	return 0;
}

static void put(struct fixture *f, const char *k, const void *v, size_t n)
{
	struct kv_cmd c = {.op = KV_OP_PUT,
			   .key = (char *)k,
			   .klen = strlen(k),
			   .val = (unsigned char *)v,
			   .vlen = n,
			   .mtime_ns = 1712345678123456789LL};
	struct kv_result res;

	assert_int_equal(map_apply(f->m, ++f->index, &c, &res, NULL, NULL), 0);
	assert_int_equal(res.err, 0);
}

static void mkdir_(struct fixture *f, const char *k)
{
	struct kv_cmd c = {.op = KV_OP_MKDIR,
			   .key = (char *)k,
			   .klen = strlen(k),
			   .mode = 0700,
			   .mtime_ns = -1};
	struct kv_result res;

	assert_int_equal(map_apply(f->m, ++f->index, &c, &res, NULL, NULL), 0);
	assert_int_equal(res.err, 0);
}

static int write_map(struct fixture *f, const char *conf)
{
	struct db_meta meta = {
	    .index = f->index, .term = 3, .conf = (char *)conf};
	struct kv_rec **recs;
	size_t n;
	int err;

	assert_int_equal(map_collect(f->m, &recs, &n), 0);
	err = db_write(f->dir, &meta, recs, n, NULL);
	map_collect_free(recs, n);
	return err;
}

static void apply_ok(struct fixture *f, struct kv_cmd *c)
{
	struct kv_result res;

	assert_int_equal(map_apply(f->m, ++f->index, c, &res, NULL, NULL), 0);
	assert_int_equal(res.err, 0);
}

/* Links, special files, owners, times, attributes, the root's record. */
static void fill_v2(struct fixture *f)
{
	struct kv_xattr xa[2] = {{"user.t", 6, (const unsigned char *)"v", 1},
				 {"user.b", 6, (const unsigned char *)"\0", 1}};
	struct kv_cmd c = {.op = KV_OP_PUT,
			   .key = "owned",
			   .klen = 5,
			   .val = (unsigned char *)"o",
			   .vlen = 1,
			   .mtime_ns = 10,
			   .time_ns = 20,
			   .atime_ns = 30,
			   .set_atime = true,
			   .uid = 1000,
			   .gid = 0,
			   .set_uid = true,
			   .set_gid = true,
			   .set_mode = true,
			   .mode = 04750,
			   .xattrs = xa,
			   .nxattr = 2,
			   .set_xattrs = true};

	apply_ok(f, &c);
	c = (struct kv_cmd){.op = KV_OP_PUT,
			    .key = "link",
			    .klen = 4,
			    .val = (unsigned char *)"../a b\xff",
			    .vlen = 7,
			    .mode = S_IFLNK | 0777,
			    .mtime_ns = 1};
	apply_ok(f, &c);
	c.key = "fifo";
	c.vlen = 0;
	c.mode = S_IFIFO | 0600;
	apply_ok(f, &c);
	c.key = "sock";
	c.mode = S_IFSOCK | 0755;
	apply_ok(f, &c);
	c = (struct kv_cmd){.op = KV_OP_SETATTR,
			    .key = "",
			    .mode = 01777,
			    .set_mode = true,
			    .time_ns = 5};
	apply_ok(f, &c);
	c = (struct kv_cmd){.op = KV_OP_SETXATTR,
			    .key = "d",
			    .klen = 1,
			    .xname = "user.dir",
			    .xnlen = 8,
			    .val = (unsigned char *)"yes",
			    .vlen = 3};
	apply_ok(f, &c);
}

static void fill(struct fixture *f)
{
	unsigned char all[256];

	for (int i = 0; i < 256; i++)
		all[i] = (unsigned char)i;
	put(f, "text", "hello \"world\"\n", 14);
	put(f, "bin/all", all, sizeof(all));
	put(f, "bin/nul", "\0", 1);
	put(f, "bin/ff", "\xff", 1);
	put(f, "empty", "", 0);
	put(f, "d-e/x", "x", 1);
	put(f, "caf\xc3\xa9", "\xc3\xa9", 2);
	mkdir_(f, "d");
	mkdir_(f, "d/e");
	put(f, "d/e/f", "f", 1);
	put(f, "d/i/j", "implicit", 8);
	fill_v2(f);
}

/* Load the db into a fresh map: the result; *errmsg kept for checks. */
static int load(struct fixture *f, struct map **out, struct db_meta *meta,
		char **errmsg)
{
	*out = map_new();
	assert_non_null(*out);
	*errmsg = NULL;
	return db_load(f->dir, *out, meta, errmsg);
}

static void assert_maps_equal(struct map *a, struct map *b)
{
	struct kv_rec **ra, **rb;
	size_t na, nb;

	assert_int_equal(map_collect(a, &ra, &na), 0);
	assert_int_equal(map_collect(b, &rb, &nb), 0);
	assert_int_equal(na, nb);
	for (size_t i = 0; i < na; i++) {
		assert_string_equal(kv_rec_key(ra[i]), kv_rec_key(rb[i]));
		assert_int_equal(ra[i]->vlen, rb[i]->vlen);
		assert_memory_equal(kv_rec_val(ra[i]), kv_rec_val(rb[i]),
				    ra[i]->vlen);
		assert_int_equal(ra[i]->mode, rb[i]->mode);
		assert_int_equal(ra[i]->create_rev, rb[i]->create_rev);
		assert_int_equal(ra[i]->mod_rev, rb[i]->mod_rev);
		assert_int_equal(ra[i]->mtime_ns, rb[i]->mtime_ns);
		assert_int_equal(ra[i]->ctime_ns, rb[i]->ctime_ns);
		assert_int_equal(ra[i]->atime_ns, rb[i]->atime_ns);
		assert_int_equal(ra[i]->uid, rb[i]->uid);
		assert_int_equal(ra[i]->gid, rb[i]->gid);
		assert_int_equal(ra[i]->nxattr, rb[i]->nxattr);
		for (size_t j = 0; j < ra[i]->nxattr; j++) {
			const struct kv_xattr *x = &kv_rec_xattrs(ra[i])[j];
			const struct kv_xattr *y = &kv_rec_xattrs(rb[i])[j];
			assert_string_equal(x->name, y->name);
			assert_int_equal(x->vlen, y->vlen);
			assert_memory_equal(x->val, y->val, x->vlen);
		}
		if (S_ISDIR(ra[i]->mode)) { /* the derived link counts too */
			struct kv_stat sa, sb;
			assert_int_equal(
			    map_stat(a, kv_rec_key(ra[i]), ra[i]->klen, &sa),
			    0);
			assert_int_equal(
			    map_stat(b, kv_rec_key(rb[i]), rb[i]->klen, &sb),
			    0);
			assert_int_equal(sa.nlink, sb.nlink);
		}
	}
	assert_int_equal(map_count(a), map_count(b));
	assert_int_equal(map_bytes(a), map_bytes(b));
	assert_int_equal(map_state_hash(a), map_state_hash(b));
	map_collect_free(ra, na);
	map_collect_free(rb, nb);
}

static char *slurp(const char *path, size_t *n)
{
	FILE *fp = fopen(path, "rb");
	char *buf;
	long len;

	assert_non_null(fp);
	fseek(fp, 0, SEEK_END);
	len = ftell(fp);
	rewind(fp);
	buf = malloc((size_t)len + 1);
	assert_int_equal(fread(buf, 1, (size_t)len, fp), (size_t)len);
	buf[len] = '\0';
	fclose(fp);
	*n = (size_t)len;
	return buf;
}

static void spit(const char *path, const char *buf, size_t n)
{
	FILE *fp = fopen(path, "wb");
	assert_non_null(fp);
	assert_int_equal(fwrite(buf, 1, n, fp), n);
	fclose(fp);
}

static void test_missing_db_loads_as_empty(void **state)
{
	struct fixture *f = *state;
	struct db_meta meta = {.index = 99};
	struct map *m;
	char *msg;

	assert_int_equal(load(f, &m, &meta, &msg), 0);
	assert_int_equal(meta.index, 0);
	assert_null(meta.conf);
	assert_int_equal(map_count(m), 0);
	map_free(m);
}

static void test_write_and_load_round_trip_binary_values_and_dirs(void **state)
{
	struct fixture *f = *state;
	struct db_meta meta;
	struct map *m;
	char *msg, *tmp;
	struct kv_stat st;

	fill(f);
	assert_int_equal(write_map(f, "{\"voters\": [1, 2, 3]}"), 0);
	assert_int_equal(load(f, &m, &meta, &msg), 0);
	assert_int_equal(meta.index, f->index);
	assert_int_equal(meta.term, 3);
	assert_string_equal(meta.conf, "{\"voters\":[1,2,3]}");
	assert_maps_equal(f->m, m);
	assert_int_equal(map_stat(m, "d/e", 3, &st), 0);
	assert_int_equal(st.mode, S_IFDIR | 0700);
	assert_int_equal(map_stat(m, "d", 1, &st), 0);
	assert_int_equal(st.nlink, 4); /* d/e and the implicit d/i */
	assert_int_equal(map_stat(m, "", 0, &st), 0);
	assert_int_equal(st.mode, S_IFDIR | 01777);
	free(meta.conf);
	map_free(m);
	assert_true(asprintf(&tmp, "%s/db.jsonl.tmp", f->dir) > 0);
	assert_int_equal(access(tmp, F_OK), -1); /* renamed away */
	free(tmp);

	/* A second snapshot replaces the first; conf may be null. */
	put(f, "later", "1", 1);
	assert_int_equal(write_map(f, NULL), 0);
	assert_int_equal(load(f, &m, &meta, &msg), 0);
	assert_null(meta.conf);
	assert_maps_equal(f->m, m);
	map_free(m);
	assert_int_equal(write_map(f, "{not json"), -EINVAL);
}

/* Offset of the first occurrence of s in the file. */
static size_t offset_of(const char *buf, const char *s)
{
	const char *p = strstr(buf, s);
	assert_non_null(p);
	return (size_t)(p - buf);
}

static void expect_corrupt(struct fixture *f, const char *where)
{
	struct db_meta meta;
	struct map *m;
	char *msg;

	assert_int_equal(load(f, &m, &meta, &msg), KV_ECORRUPT);
	assert_non_null(msg);
	assert_non_null(strstr(msg, f->path));
	if (where != NULL && strstr(msg, where) == NULL)
		fail_msg("message \"%s\" does not say \"%s\"", msg, where);
	free(msg);
	map_free(m);
}

static void test_damaged_line_is_corrupt_with_its_offset(void **state)
{
	struct fixture *f = *state;
	char *buf, want[64];
	size_t n, off;

	fill(f);
	assert_int_equal(write_map(f, NULL), 0);
	buf = slurp(f->path, &n);
	/* Break the structure of the line of "bin/nul". */
	off = offset_of(buf, "{\"k\":\"bin/nul\"");
	buf[off] = 'X';
	spit(f->path, buf, n);
	snprintf(want, sizeof(want), "offset %zu:", off);
	expect_corrupt(f, want);
	free(buf);
}

static void test_changed_value_byte_fails_the_checksum(void **state)
{
	struct fixture *f = *state;
	char *buf;
	size_t n, off;

	fill(f);
	assert_int_equal(write_map(f, NULL), 0);
	buf = slurp(f->path, &n);
	off = offset_of(buf, "hello");
	buf[off] = 'j'; /* still valid JSON, still valid UTF-8 */
	spit(f->path, buf, n);
	expect_corrupt(f, "checksum");
	free(buf);
}

static void test_every_truncation_is_corrupt(void **state)
{
	struct fixture *f = *state;
	char *buf;
	size_t n;

	fill(f);
	assert_int_equal(write_map(f, NULL), 0);
	buf = slurp(f->path, &n);
	for (size_t len = 0; len < n; len++) {
		spit(f->path, buf, len);
		expect_corrupt(f, NULL);
	}
	/* Trailing bytes after the trailer are damage too. */
	spit(f->path, buf, n);
	{
		FILE *fp = fopen(f->path, "ab");
		fputs("{}\n", fp);
		fclose(fp);
	}
	expect_corrupt(f, "after the trailer");
	free(buf);
}

/* Write lines (the header's version, then records) as a complete db. */
static void write_lines(struct fixture *f, int version, const char *const *recs,
			size_t n)
{
	char *buf = NULL, trailer[96];
	size_t len = 0;
	FILE *fp = open_memstream(&buf, &len);
	size_t nrec = 0; /* the record lines; the rest are table lines */

	for (size_t i = 0; i < n; i++)
		nrec += strncmp(recs[i], "{\"k\"", 4) == 0;
	assert_non_null(fp);
	fprintf(fp,
		"{\"kvfs\":\"db\",\"version\":%d,\"index\":9,\"term\":1,"
		"\"count\":%zu,\"conf\":null}\n",
		version, nrec);
	for (size_t i = 0; i < n; i++)
		fprintf(fp, "%s\n", recs[i]);
	fclose(fp);
	snprintf(trailer, sizeof(trailer),
		 "{\"end\":true,\"count\":%zu,\"crc\":\"%08x\"}\n", nrec,
		 (unsigned)kv_crc32c(0, buf, len));
	fp = fopen(f->path, "wb");
	assert_non_null(fp);
	fwrite(buf, 1, len, fp);
	fputs(trailer, fp);
	fclose(fp);
	free(buf);
}

static void test_a_version_1_db_loads_with_the_defaults(void **state)
{
	struct fixture *f = *state;
	const char *recs[] = {
	    "{\"k\":\"d\",\"v\":\"\",\"cr\":1,\"mr\":1,\"mt\":\"5\","
	    "\"mode\":16877}",
	    "{\"k\":\"d/f\",\"v\":\"x\",\"cr\":2,\"mr\":3,\"mt\":\"7\","
	    "\"mode\":33188}",
	};
	struct db_meta meta;
	struct map *m;
	struct kv_rec *r;
	char *msg;

	write_lines(f, 1, recs, 2);
	assert_int_equal(load(f, &m, &meta, &msg), 0);
	r = map_get(m, "d/f", 3);
	assert_non_null(r);
	assert_int_equal(r->mode, S_IFREG | 0644);
	assert_int_equal(r->mtime_ns, 7);
	assert_int_equal(r->ctime_ns, 7); /* absent times: the mtime */
	assert_int_equal(r->atime_ns, 7);
	assert_int_equal(r->uid, KV_NO_OWNER);
	assert_int_equal(r->gid, KV_NO_OWNER);
	assert_int_equal(r->nxattr, 0);
	assert_null(map_root(m));
	map_free(m);
	free(meta.conf);
}

static void test_bad_records_are_corrupt(void **state)
{
	struct fixture *f = *state;
	static const struct {
		int version;
		const char *rec, *why;
	} bad[] = {
	    /* version 2 fields and kinds are not version 1's */
	    {1,
	     "{\"k\":\"f\",\"v\":\"\",\"cr\":1,\"mr\":1,\"mt\":\"1\","
	     "\"mode\":33188,\"uid\":0}",
	     "bad record"},
	    {1,
	     "{\"k\":\"l\",\"v\":\"t\",\"cr\":1,\"mr\":1,\"mt\":\"1\","
	     "\"mode\":41471}",
	     "bad mode"},
	    {1,
	     "{\"k\":\"\",\"v\":\"\",\"cr\":1,\"mr\":1,\"mt\":\"1\","
	     "\"mode\":16877}",
	     "bad key"},
	    /* kinds and what they may hold */
	    {2,
	     "{\"k\":\"l\",\"v\":\"\",\"cr\":1,\"mr\":1,\"mt\":\"1\","
	     "\"mode\":41471}",
	     "bad symbolic link target"},
	    {2,
	     "{\"k\":\"p\",\"v\":\"x\",\"cr\":1,\"mr\":1,\"mt\":\"1\","
	     "\"mode\":4480}",
	     "special file with a value"},
	    {2,
	     "{\"k\":\"c\",\"v\":\"\",\"cr\":1,\"mr\":1,\"mt\":\"1\","
	     "\"mode\":8630}",
	     "bad mode"},
	    {2,
	     "{\"k\":\"\",\"v\":\"\",\"cr\":1,\"mr\":1,\"mt\":\"1\","
	     "\"mode\":33188}",
	     "the root is not a directory"},
	    /* owners and times */
	    {2,
	     "{\"k\":\"f\",\"v\":\"\",\"cr\":1,\"mr\":1,\"mt\":\"1\","
	     "\"mode\":33188,\"uid\":4294967295}",
	     "bad record"},
	    {2,
	     "{\"k\":\"f\",\"v\":\"\",\"cr\":1,\"mr\":1,\"mt\":\"1\","
	     "\"ct\":2,\"mode\":33188}",
	     "bad record"},
	    /* attributes: the user namespace, not reserved, each once */
	    {2,
	     "{\"k\":\"f\",\"v\":\"\",\"cr\":1,\"mr\":1,\"mt\":\"1\","
	     "\"mode\":33188,\"x\":[{\"n\":\"security.x\",\"v\":\"1\"}]}",
	     "bad extended attribute"},
	    {2,
	     "{\"k\":\"f\",\"v\":\"\",\"cr\":1,\"mr\":1,\"mt\":\"1\","
	     "\"mode\":33188,\"x\":[{\"n\":\"user.kvfs.rev\",\"v\":\"1\"}]}",
	     "bad extended attribute"},
	    {2,
	     "{\"k\":\"f\",\"v\":\"\",\"cr\":1,\"mr\":1,\"mt\":\"1\","
	     "\"mode\":33188,\"x\":[{\"n\":\"user.a\",\"v\":\"1\"},"
	     "{\"n\":\"user.a\",\"v\":\"2\"}]}",
	     "bad extended attribute"},
	    {2,
	     "{\"k\":\"f\",\"v\":\"\",\"cr\":1,\"mr\":1,\"mt\":\"1\","
	     "\"mode\":33188,\"x\":[]}",
	     "bad extended attribute"},
	};
	const char *good =
	    "{\"k\":\"a\",\"v\":\"\",\"cr\":1,\"mr\":1,\"mt\":\"1\","
	    "\"mode\":33188}";

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *recs[2] = {good, bad[i].rec};
		write_lines(f, bad[i].version, recs, 2);
		expect_corrupt(f, bad[i].why);
	}
	/* The root's record comes first or not at all. */
	{
		const char *recs[2] = {
		    good,
		    "{\"k\":\"\",\"v\":\"\",\"cr\":0,\"mr\":1,\"mt\":\"1\","
		    "\"mode\":16877}"};
		write_lines(f, 2, recs, 2);
		expect_corrupt(f, "out of order");
		write_lines(f, 2, (const char *[]){recs[1], recs[0]}, 2);
		struct db_meta meta;
		struct map *m;
		char *msg;
		assert_int_equal(load(f, &m, &meta, &msg), 0);
		assert_non_null(map_root(m));
		map_free(m);
	}
}

/* Record lines as any writer may lay them out (escapes, members in
 * another order, spaces, numbers with an exponent, base64, a NUL escaped
 * in a text value) load with the same meaning whichever reader takes them
 * (store/db_read.c reads most in place, db.c's cJSON reader the rest). */
static void test_record_lines_mean_the_same_to_both_readers(void **state)
{
	struct fixture *f = *state;
	const char *recs[] = {
	    "{\"k\":\"a\\\"\\\\\\u00e9\",\"v\":\"x\\ny\\t\\u00e9\",\"cr\":1,"
	    "\"mr\":2,\"mt\":\"-5\",\"ct\":\"6\",\"at\":\"7\",\"mode\":33188,"
	    "\"uid\":10,\"gid\":20}",
	    "{\"k\":\"b\" , \"mode\":33152 ,\"mt\":\"9\",\"mr\":3e0,\"cr\":3,"
	    "\"v64\":\"AP8=\"}",
	    "{\"k\":\"c\",\"v\":\"p\\u0000q\",\"cr\":4,\"mr\":4,\"mt\":\"1\","
	    "\"mode\":33188}",
	    "{\"k\":\"d\",\"v\":\"\",\"cr\":5,\"mr\":5,\"mt\":\"1\","
	    "\"mode\":16877,\"x\":[{\"n\":\"user.a\",\"v\":\"1\"}]}",
	};
	struct db_meta meta;
	struct map *m;
	char *msg;

	write_lines(f, 2, recs, 4);
	assert_int_equal(load(f, &m, &meta, &msg), 0);
	struct kv_rec *a = map_get(m, "a\"\\\xc3\xa9", 5);
	assert_non_null(a);
	assert_int_equal(a->vlen, 6);
	assert_memory_equal(kv_rec_val(a), "x\ny\t\xc3\xa9", 6);
	assert_int_equal(a->create_rev, 1);
	assert_int_equal(a->mod_rev, 2);
	assert_int_equal(a->mtime_ns, -5);
	assert_int_equal(a->ctime_ns, 6);
	assert_int_equal(a->atime_ns, 7);
	assert_int_equal(a->uid, 10);
	assert_int_equal(a->gid, 20);
	struct kv_rec *b = map_get(m, "b", 1);
	assert_non_null(b);
	assert_int_equal(b->vlen, 2);
	assert_memory_equal(kv_rec_val(b), "\x00\xff", 2);
	assert_int_equal(b->mode, 33152);
	assert_int_equal(b->mod_rev, 3);
	assert_int_equal(b->ctime_ns, 9); /* ct and at default to mt */
	assert_int_equal(b->atime_ns, 9);
	assert_int_equal(b->uid, KV_NO_OWNER);
	struct kv_rec *c = map_get(m, "c", 1); /* as cJSON reads it */
	assert_non_null(c);
	assert_int_equal(c->vlen, 1);
	struct kv_rec *d = map_get(m, "d", 1);
	assert_non_null(d);
	assert_int_equal(d->nxattr, 1);
	map_free(m);
	free(meta.conf);
}

/* Version 4's lease on a record line (read in place, like the rest:
 * store/db_read.c): the key is on its lease, its times as written (equal
 * or not). A lease of 0, on a directory, on a lease the table lacks, or
 * before version 4, is damage. */
static void test_a_leased_record_line_loads_on_its_lease(void **state)
{
	struct fixture *f = *state;
	const char *lease = "{\"lease\":7,\"ttl\":30,\"rev\":8}";
	const char *recs[] = {
	    lease,
	    "{\"k\":\"a\",\"v\":\"x\",\"cr\":1,\"mr\":1,\"mt\":\"3\","
	    "\"mode\":33188,\"ct\":\"3\",\"at\":\"4\",\"lease\":7}",
	    "{\"k\":\"b\",\"v\":\"y\",\"cr\":2,\"mr\":2,\"mt\":\"5\","
	    "\"mode\":33188,\"ct\":\"6\",\"at\":\"5\"}",
	};
	struct db_meta meta;
	struct map *m;
	char *msg;

	write_lines(f, 4, recs, 3);
	assert_int_equal(load(f, &m, &meta, &msg), 0);
	const struct kv_rec *a = map_get(m, "a", 1), *b = map_get(m, "b", 1);
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(kv_rec_lease(a), 7);
	assert_int_equal(a->mtime_ns, 3);
	assert_int_equal(a->ctime_ns, 3);
	assert_int_equal(a->atime_ns, 4);
	assert_int_equal(kv_rec_lease(b), 0);
	assert_int_equal(b->ctime_ns, 6);
	assert_int_equal(b->atime_ns, 5);
	assert_int_equal(leases_find(map_leases_c(m), 7)->nkeys, 1);
	map_free(m);
	free(meta.conf);

	static const struct {
		int version;
		const char *rec, *why;
	} bad[] = {
	    {4,
	     "{\"k\":\"a\",\"v\":\"x\",\"cr\":1,\"mr\":1,\"mt\":\"3\","
	     "\"mode\":33188,\"lease\":0}",
	     "bad record"},
	    {4,
	     "{\"k\":\"d\",\"v\":\"\",\"cr\":1,\"mr\":1,\"mt\":\"3\","
	     "\"mode\":16877,\"lease\":7}",
	     "bad record"},
	    {4,
	     "{\"k\":\"a\",\"v\":\"x\",\"cr\":1,\"mr\":1,\"mt\":\"3\","
	     "\"mode\":33188,\"lease\":9}",
	     "a key on no lease"},
	    {3,
	     "{\"k\":\"a\",\"v\":\"x\",\"cr\":1,\"mr\":1,\"mt\":\"3\","
	     "\"mode\":33188,\"lease\":7}",
	     "bad record"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *lines[2] = {lease, bad[i].rec};
		if (bad[i].version < 4)
			write_lines(f, bad[i].version, lines + 1, 1);
		else
			write_lines(f, bad[i].version, lines, 2);
		expect_corrupt(f, bad[i].why);
	}
}

static void test_unknown_version_is_a_version_error(void **state)
{
	struct fixture *f = *state;
	struct db_meta meta;
	struct map *m;
	char *buf, *msg, *v;
	size_t n;

	put(f, "k", "v", 1);
	assert_int_equal(write_map(f, NULL), 0);
	buf = slurp(f->path, &n);
	v = strstr(buf, "\"version\":4");
	assert_non_null(v);
	v[10] = '5';
	spit(f->path, buf, n);
	assert_int_equal(load(f, &m, &meta, &msg), KV_EVERSION);
	assert_non_null(msg);
	assert_non_null(strstr(msg, "version 5"));
	free(msg);
	map_free(m);
	free(buf);
}

static void test_full_disk_fails_and_keeps_the_old_db(void **state)
{
	struct fixture *f = *state;
	struct db_meta meta;
	struct map *m, *old;
	char *msg, *tmp, big[4096];

	if (mount("tmpfs", f->dir, "tmpfs", 0, "size=256k") != 0) {
		skip(); /* not allowed to mount here */
		return;
	}
	put(f, "small", "1", 1);
	assert_int_equal(write_map(f, NULL), 0);
	assert_int_equal(load(f, &old, &meta, &msg), 0);
	memset(big, 'b', sizeof(big));
	for (int i = 0; i < 200; i++) {
		char k[32];
		snprintf(k, sizeof(k), "big/%d", i);
		put(f, k, big, sizeof(big));
	}
	assert_int_equal(write_map(f, NULL), -ENOSPC);
	assert_true(asprintf(&tmp, "%s/db.jsonl.tmp", f->dir) > 0);
	assert_int_equal(access(tmp, F_OK), -1);
	free(tmp);
	assert_int_equal(load(f, &m, &meta, &msg), 0);
	assert_maps_equal(old, m);
	map_free(m);
	map_free(old);
}

/* n record lines k00000.. into text[] (lines[] pointing at them), in
 * order: those at x1 and x2 with an attribute (value "x", revisions 1),
 * the others a value of 80 digits and revisions i + 1. */
static void record_lines(char text[][200], const char **lines, int n, int x1,
			 int x2)
{
	for (int i = 0; i < n; i++) {
		if (i == x1 || i == x2)
			snprintf(
			    text[i], 200,
			    "{\"k\":\"k%05d\",\"v\":\"x\",\"cr\":1,\"mr\":1,"
			    "\"mt\":\"1\",\"mode\":33188,\"x\":[{\"n\":"
			    "\"user.a\",\"v\":\"%d\"}]}",
			    i, i);
		else
			snprintf(text[i], 200,
				 "{\"k\":\"k%05d\",\"v\":\"%080d\",\"cr\":%d,"
				 "\"mr\":%d,\"mt\":\"%d\",\"mode\":33188}",
				 i, i, i + 1, i + 1, i);
		lines[i] = text[i];
	}
}

/* Two record lines of a test's table trade places. */
static void swap_lines(char a[200], char b[200])
{
	char tmp[200];
	memcpy(tmp, a, sizeof(tmp));
	memcpy(a, b, sizeof(tmp));
	memcpy(b, tmp, sizeof(tmp));
}

/* A db big enough that its records are read on a second thread
 * (store/db_stream.c): a record with attributes in the middle (a line
 * the in-place reader leaves to cJSON) and the reading goes on past it;
 * a record out of order far in is damage at its own offset, as the
 * one-thread loop says it. */
static void test_a_streamed_load_is_the_same_load(void **state)
{
	struct fixture *f = *state;
	enum { N = 3000 };
	static char text[N][200];
	const char *lines[N];
	char head[128];

	record_lines(text, lines, N, N / 2, -1);
	write_lines(f, 2, lines, N);
	struct db_meta meta;
	struct map *m;
	char *msg;
	assert_int_equal(load(f, &m, &meta, &msg), 0);
	assert_int_equal(map_count(m), N);
	for (int i = 0; i < N; i += 7) {
		char k[16];
		snprintf(k, sizeof(k), "k%05d", i);
		const struct kv_rec *r = map_get(m, k, 6);
		assert_non_null(r);
		assert_int_equal(r->create_rev, i == N / 2 ? 1 : i + 1);
		assert_int_equal(r->vlen, i == N / 2 ? 1 : 80);
	}
	assert_int_equal(map_get(m, "k01500", 6)->nxattr, 1);
	map_free(m);
	free(meta.conf);

	/* k02500 swapped with k02501: out of order at the second */
	swap_lines(text[2500], text[2501]);
	write_lines(f, 2, lines, N);
	size_t off =
	    (size_t)snprintf(head, sizeof(head),
			     "{\"kvfs\":\"db\",\"version\":2,\"index\":"
			     "9,\"term\":1,\"count\":%d,\"conf\":null}\n",
			     N);
	for (int i = 0; i < 2501; i++)
		off += strlen(text[i]) + 1;
	char want[64];
	snprintf(want, sizeof(want), "offset %zu: record out of order", off);
	expect_corrupt(f, want);
}

/* A db past 256 KiB is read in two halves on two threads, cut at a
 * newline (store/db_stream.c), their checksums joined: the same map as
 * one reader makes, with records with attributes in either half (the
 * loader's own reader, on the stream's threads); a table line in the
 * first half stops it there and the load goes on past it (the second
 * half's work dropped, nothing lost or read twice); damage in either half
 * is reported at its own offset. */
#define HALVES_N 6000
static char halves[HALVES_N][200];
static const char *halves_lines[HALVES_N];

static void halves_make(void)
{
	record_lines(halves, halves_lines, HALVES_N, 100, 4500);
}

/* The offset of line i of halves_lines in write_lines's file. */
static size_t halves_off(int version, int i)
{
	char head[128];
	size_t off = (size_t)snprintf(
	    head, sizeof(head),
	    "{\"kvfs\":\"db\",\"version\":%d,\"index\":9,\"term\":1,"
	    "\"count\":%d,\"conf\":null}\n",
	    version, HALVES_N);
	for (int j = 0; j < i; j++)
		off += strlen(halves_lines[j]) + 1;
	return off;
}

static void halves_check(struct map *m, int xattr_at)
{
	assert_int_equal(map_count(m), HALVES_N);
	for (int i = 0; i < HALVES_N; i++) {
		char k[16];
		snprintf(k, sizeof(k), "k%05d", i);
		const struct kv_rec *r = map_get(m, k, 6);
		assert_non_null(r);
		bool x = i == 100 || i == xattr_at;
		assert_int_equal(r->create_rev, x ? 1 : i + 1);
		assert_int_equal(r->vlen, x ? 1 : 80);
		assert_int_equal(r->nxattr, x ? 1 : 0);
	}
}

static void test_a_load_in_two_halves_is_the_same_load(void **state)
{
	struct fixture *f = *state;
	struct db_meta meta;
	struct map *m;
	char *msg, want[64];

	halves_make();
	write_lines(f, 2, halves_lines, HALVES_N);
	assert_int_equal(load(f, &m, &meta, &msg), 0);
	halves_check(m, 4500);
	map_free(m);
	free(meta.conf);

	/* a session line (a table line) at 1000, records on both sides */
	static const char sess[] = "{\"sess\":7,\"node\":2,\"rev\":9}";
	const char *with_sess[HALVES_N + 1];
	for (int i = 0, j = 0; i < HALVES_N; i++) {
		if (i == 1000)
			with_sess[j++] = sess;
		with_sess[j++] = halves_lines[i];
	}
	write_lines(f, 3, with_sess, HALVES_N + 1);
	assert_int_equal(load(f, &m, &meta, &msg), 0);
	halves_check(m, 4500);
	assert_non_null(locks_session(map_locks_c(m), 7));
	map_free(m);
	free(meta.conf);

	/* out of order in the first half: at the second of the pair */
	swap_lines(halves[1000], halves[1001]);
	write_lines(f, 2, halves_lines, HALVES_N);
	snprintf(want, sizeof(want), "offset %zu: record out of order",
		 halves_off(2, 1001));
	expect_corrupt(f, want);
	halves_make();

	/* a record line no reader takes in the second half: bad record */
	snprintf(halves[5000], sizeof(halves[5000]),
		 "{\"k\":\"k05000\",\"v\":\"x\",\"cr\":1,\"mr\":1,\"mt\":\"1\","
		 "\"mode\":33188,\"what\":1}");
	write_lines(f, 2, halves_lines, HALVES_N);
	snprintf(want, sizeof(want), "offset %zu: bad record",
		 halves_off(2, 5000));
	expect_corrupt(f, want);
}

static void test_big_map_round_trips(void **state)
{
	struct fixture *f = *state;
	const char *env = getenv("KV_TEST_DB_KEYS");
	long keys = env ? atol(env) : 100000;
	struct timespec t0, t1, t2;
	struct db_meta meta;
	struct map *m;
	char *msg, k[64], v[100];

	memset(v, 'v', sizeof(v));
	for (long i = 0; i < keys; i++) {
		snprintf(k, sizeof(k), "dir%ld/key%08ld", i % 100, i);
		v[0] = (char)(i & 0xff); /* some values binary */
		put(f, k, v, sizeof(v));
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(write_map(f, NULL), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_int_equal(load(f, &m, &meta, &msg), 0);
	clock_gettime(CLOCK_MONOTONIC, &t2);
	print_message("%ld keys: write %.2f s, load %.2f s\n", keys,
		      (double)(t1.tv_sec - t0.tv_sec) +
			  (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
		      (double)(t2.tv_sec - t1.tv_sec) +
			  (double)(t2.tv_nsec - t1.tv_nsec) / 1e9);
	assert_maps_equal(f->m, m);
	map_free(m);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_missing_db_loads_as_empty),
	    T(test_write_and_load_round_trip_binary_values_and_dirs),
	    T(test_damaged_line_is_corrupt_with_its_offset),
	    T(test_changed_value_byte_fails_the_checksum),
	    T(test_every_truncation_is_corrupt),
	    T(test_a_version_1_db_loads_with_the_defaults),
	    T(test_bad_records_are_corrupt),
	    T(test_record_lines_mean_the_same_to_both_readers),
	    T(test_a_leased_record_line_loads_on_its_lease),
	    T(test_a_streamed_load_is_the_same_load),
	    T(test_a_load_in_two_halves_is_the_same_load),
	    T(test_unknown_version_is_a_version_error),
	    T(test_full_disk_fails_and_keeps_the_old_db),
	    T(test_big_map_round_trips),
	};
	return cmocka_run_group_tests_name("db", tests, NULL, NULL);
}
