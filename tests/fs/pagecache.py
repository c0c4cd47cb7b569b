#!/usr/bin/env python3
"""pagecache.py - the kernel keeps a file's pages only while they hold its value.

An open of a file that did not change since its pages were filled keeps
them (keep_cache, NFS's close-to-open rule), so reading it again asks the
mount for nothing; any change since (over HTTP, through the mount, a
write that never committed) makes the next open drop them
(docs/mount.md, "Cache and invalidation"). One node; the reads are
open+read+close, counted by the mount's read operations in /metrics:
- an unchanged file read again: its content, and no read reaches the mount;
- after a PUT over HTTP (same length, then another length), after an
  overwrite through the mount and after a chmod: the new content, read
  from the mount;
- a write into a cached file that overflowed (EFBIG) and so was never
  committed: the next open reads the committed value, not what the
  failed descriptor wrote into the pages;
- a file kept open and read while another descriptor rewrites it: a new
  open after that close reads the new value.

usage: pagecache.py path/to/kvfs
"""
import errno
import os
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mountlib import check, check_eq, run  # noqa: E402

MAX_VALUE = 16 << 20  # KV_MAX_VALUE


def reads(n):
    """Read operations the mount has served (/metrics)."""
    with urllib.request.urlopen(n.url("/metrics"), timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith('kvfs_fs_operations_total{op="read"}'):
                return int(float(line.split()[1]))
    raise AssertionError("no read count in /metrics")


def cat(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        out = b""
        while True:
            b = os.read(fd, 65536)
            if not b:
                return out
            out += b
    finally:
        os.close(fd)


def put(n, key, value):
    req = urllib.request.Request(n.url("/kv/" + key), data=value, method="PUT")
    with urllib.request.urlopen(req, timeout=30) as r:
        r.read()


def cached_read(n, path, want):
    """Read path twice: the first may ask the mount, the second must not."""
    first = cat(path)
    before = reads(n)
    second = cat(path)
    return first == want and second == want, reads(n) - before, first, second


def fresh_read(n, path, want):
    """Read path once: its content, and whether the mount served it."""
    before = reads(n)
    got = cat(path)
    return got, reads(n) - before


def main(h):
    n = h.node("one")
    n.start()
    f = n.path("f")
    with open(f, "wb") as w:
        w.write(b"one value\n")

    ok, asked, a, b = cached_read(n, f, b"one value\n")
    check("test_an_unchanged_file_reads_its_value_twice", ok, "%r, %r" % (a, b))
    check_eq("test_an_unchanged_file_read_again_asks_the_mount_nothing", 0, asked)

    for i, value in enumerate([b"two value\n", b"a longer third value\n", b"4\n"]):
        put(n, "f", value)
        got, asked = fresh_read(n, f, value)
        check_eq("test_after_a_put_over_http_%d_an_open_reads_the_new_value" % i, value, got)
        check("test_after_a_put_over_http_%d_the_read_reached_the_mount" % i, asked > 0,
              "%d reads" % asked)
        ok, asked, a, b = cached_read(n, f, value)
        check("test_after_a_put_over_http_%d_it_is_cached_again" % i, ok and asked == 0,
              "%r, %r, %d reads" % (a, b, asked))

    with open(f, "wb") as w:
        w.write(b"written here\n")
    got, _ = fresh_read(n, f, b"written here\n")
    check_eq("test_after_an_overwrite_through_the_mount_an_open_reads_it", b"written here\n", got)
    cached_read(n, f, b"written here\n")
    os.chmod(f, 0o600)
    got, asked = fresh_read(n, f, b"written here\n")
    check("test_after_a_chmod_the_open_reads_from_the_mount_again",
          got == b"written here\n" and asked > 0, "%r, %d reads" % (got, asked))

    # A write into the cached pages, then one past the largest value: the
    # descriptor is poisoned and commits nothing; the pages it wrote must
    # not be what the next open reads.
    ok, asked, a, b = cached_read(n, f, b"written here\n")
    check("test_before_the_failed_write_the_file_is_cached", ok and asked == 0,
          "%r, %r, %d reads" % (a, b, asked))
    fd = os.open(f, os.O_RDWR)
    os.pwrite(fd, b"XXXXXXX", 0)
    try:
        os.pwrite(fd, b"y", MAX_VALUE)
        overflow = "the write past the largest value succeeded"
    except OSError as e:
        overflow = errno.errorcode.get(e.errno, str(e.errno))
    check_eq("test_a_write_past_the_largest_value_is_efbig", "EFBIG", overflow)
    try:
        os.close(fd)
    except OSError:
        pass  # the close reports the failed commit; the test is below
    check_eq("test_the_failed_write_left_the_store_as_it_was", b"written here\n",
             n.http_get("f"))
    got, asked = fresh_read(n, f, b"written here\n")
    check_eq("test_after_a_failed_write_an_open_reads_the_committed_value",
             b"written here\n", got)

    # A reader holding the file open while another descriptor rewrites it.
    cached_read(n, f, b"written here\n")
    keep = os.open(f, os.O_RDONLY)
    try:
        check_eq("test_a_held_descriptor_reads_the_value", b"written here\n",
                 os.pread(keep, 100, 0))
        with open(f, "wb") as w:
            w.write(b"rewritten while held\n")
        got, _ = fresh_read(n, f, b"rewritten while held\n")
        check_eq("test_a_new_open_after_the_rewrite_reads_it", b"rewritten while held\n", got)
    finally:
        os.close(keep)
    got, _ = fresh_read(n, f, b"rewritten while held\n")
    check_eq("test_after_the_held_descriptor_closed_the_value_stays", b"rewritten while held\n",
             got)


if __name__ == "__main__":
    run(main)
