#!/usr/bin/env python3
"""noleader.py - the mount of a node that has no leader.

A member of a 3-node cluster started alone can never have a leader. Its
mount must still answer what the kernel and shells need to look at a
mountpoint (stat of the root, statfs, the kernel's xattr questions), while
reads of keys wait for a leader and fail with EIO after the write timeout,
as documented. The check is on order, not speed: stat of the root returns
while a read started before it is still waiting.

usage: noleader.py path/to/kvfs
"""
import os
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mountlib import check, check_eq, run, wait_for  # noqa: E402

TIMEOUT_MS = 4000


sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from ports import free_port  # noqa: E402,F401


def barriers(n):
    """The node's read barriers so far (/metrics)."""
    with urllib.request.urlopen(n.url("/metrics"), timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("kvfs_raft_read_barriers_total "):
                return float(line.split()[1])
    return 0


def main(h):
    ports = [free_port() for _ in range(3)]
    peers = ",".join("%d=127.0.0.1:%d" % (i + 1, p) for i, p in enumerate(ports))
    n = h.node("alone", extra=["--id=1", "--peers=" + peers,
                               "--write-timeout=%d" % TIMEOUT_MS])
    n.start(listen="127.0.0.1:%d" % ports[0])
    # A read of a key, started first: it waits for a leader.
    reader = subprocess.Popen(["cat", n.path("key")], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    time.sleep(0.2)
    t0 = time.monotonic()
    st = os.stat(n.mnt)
    took = time.monotonic() - t0
    check("test_stat_of_the_mount_root_works_without_a_leader", st.st_nlink >= 2)
    check("test_it_answers_while_a_read_of_a_key_still_waits", reader.poll() is None,
          "the read ended first: %r" % reader.poll())
    print("# stat of the root took %.3f s (the reads' bound is %.1f s)" % (took, TIMEOUT_MS / 1000))
    check("test_mountpoint_sees_a_mountpoint",
          subprocess.run(["mountpoint", "-q", n.mnt]).returncode == 0)
    check("test_statfs_of_the_mount_works_without_a_leader", os.statvfs(n.mnt).f_bsize == 4096)
    check_eq("test_ls_dash_d_of_the_root_works", 0,
             subprocess.run(["ls", "-ld", n.mnt], stdout=subprocess.DEVNULL).returncode)
    err = wait_for(lambda: reader.poll() is not None and reader.stderr.read(), TIMEOUT_MS / 1000 + 30,
                   "the read to give up")
    check("test_a_read_of_a_key_fails_with_EIO_after_the_bound",
          b"Input/output error" in err, err)
    check("test_the_node_is_still_serving_after", n.status()["id"] == 1)
    # Stopped while a read waits for a leader. The wait holds no worker
    # (fs/ctx.c, fs_barrier_later): the stop waits for it to fail at its
    # bound before the session goes, and the node exits cleanly.
    before = barriers(n)
    reader = subprocess.Popen(["cat", n.path("other")], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    wait_for(lambda: barriers(n) > before, 10, "the read's barrier")
    check("test_a_second_read_waits_too", reader.poll() is None, reader.poll())
    t0 = time.monotonic()
    rc = n.stop()
    took = time.monotonic() - t0
    check_eq("test_a_node_stopped_while_a_read_waits_exits_cleanly", 0, rc)
    check("test_it_stops_within_the_bound_of_the_read",
          took < TIMEOUT_MS / 1000 + 5, "took %.1f s" % took)
    reader.wait(30)
    check("test_the_waiting_read_fails", reader.returncode != 0, reader.returncode)


if __name__ == "__main__":
    run(main)
