#!/usr/bin/env python3
"""follower_reads.py - reads through a follower's mount are never stale.

A 3-node cluster. Every read through the mount must see every write that
was acknowledged before the read began, on whichever node it was made
(docs/mount.md, "Reads through a follower"); the read barriers behind
that are asked and answered partly off the node threads (raft/node/
read_fast.c), and the checks here fail if a barrier a read needs is
dropped, answered with an old index, or served before its index is
applied:
- a PUT over HTTP to the leader while a follower's incoming messages are
  held back by a proxy (so it is behind), then at once open+read+close of the key through that
  follower's mount: the new value, every time;
- a key made over HTTP on the leader while a follower is behind, then
  at once its name looked up through that follower's mount: found (a
  negative lookup needs a barrier);
- 4 reader threads on a follower, a writer on the leader: each read sees
  at least the last value acknowledged before it began, and no reader
  goes backwards (shared rounds, the reader asking the leader itself,
  the leader answering on its receiving thread).

usage: follower_reads.py path/to/kvfs
"""
import os
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mountlib import check, check_eq, run, wait_for  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from ports import free_port  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "e2e"))
from faults import FaultProxy  # noqa: E402

ROUNDS = 30       # writes while a follower is behind, then a read there
NAMES = 30        # names made while a follower is behind, then looked up
DELAY = 0.3       # what reaches a follower that is behind is held this long
SECONDS = 6       # of concurrent readers


def put(node, key, value):
    req = urllib.request.Request(node.url("/kv/" + key), data=value, method="PUT")
    with urllib.request.urlopen(req, timeout=30) as r:
        r.read()


def value_of(i):
    return b"%010d" % i  # one length: the kernel's cached size never differs


def read(path):
    """open+read+close and nothing else (no fstat, which a barrier of its
    own would cover)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, 65536)
    finally:
        os.close(fd)


def main(h):
    try:
        checks(h)
    finally:
        for x in PROXIES:
            x.close()


PROXIES = []


def checks(h):
    ports = [free_port() for _ in range(3)]
    # the peers reach each node through a proxy in front of it
    # (tests/e2e/faults.py); clients use the node's own port
    proxies = [FaultProxy(p).start() for p in ports]
    PROXIES.extend(proxies)
    peers = ",".join("%d=127.0.0.1:%d" % (i + 1, x.port) for i, x in enumerate(proxies))
    nodes = [h.node("n%d" % (i + 1), extra=["--id=%d" % (i + 1), "--peers=" + peers,
                                            "--write-timeout=20000"])
             for i in range(3)]
    for n, p in zip(nodes, ports):
        n.start(listen="127.0.0.1:%d" % p)
    lid = wait_for(lambda: nodes[0].status().get("leader"), 60, "a leader")
    leader = nodes[lid - 1]
    followers = [n for n in nodes if n is not leader]
    put(leader, "fr/k", value_of(0))
    for f in followers:
        wait_for(lambda: os.path.exists(f.path("fr", "k")), 20, "fr/k on " + f.name)

    # A follower that is behind: what reaches it from its peers is held
    # DELAY s by its proxy, so the leader and the other follower commit a
    # write and the leader answers it before this follower has it. Its
    # kernel still holds the name and the attributes (read just before,
    # cached for a second), so only the node's read barrier can make a
    # read there wait for the entry.
    def behind(f, write):
        proxies[nodes.index(f)].delay(DELAY)
        try:
            write()
        finally:
            proxies[nodes.index(f)].delay(0)

    # ---- a PUT acknowledged, then a read through a follower behind ----
    stale = []
    for i in range(1, ROUNDS + 1):
        f = followers[i % 2]
        read(f.path("fr", "k"))
        behind(f, lambda: put(leader, "fr/k", value_of(i)))
        got = read(f.path("fr", "k"))
        if got != value_of(i):
            stale.append((i, f.name, got))
    check_eq("test_a_read_through_a_follower_sees_the_put_acknowledged_before_it",
             [], stale[:5])

    # ---- a name made on the leader, then looked up on a follower behind ----
    missing = []
    for i in range(NAMES):
        name = "n%d" % i
        f = followers[i % 2]
        os.listdir(f.path("fr"))
        behind(f, lambda: put(leader, "fr/" + name, b"x"))
        if not os.path.exists(f.path("fr", name)):
            missing.append((name, f.name))
    check_eq("test_a_name_made_elsewhere_is_found_through_a_follower_at_once",
             [], missing[:5])

    # ---- 4 readers on a follower while the leader is written ----
    acked = [(time.monotonic(), 0)]  # (when the PUT returned, its value)
    lock = threading.Lock()
    done = threading.Event()
    bad, counts = [], [0] * 4
    put(leader, "fr/c", value_of(0))
    f = followers[0]
    wait_for(lambda: os.path.exists(f.path("fr", "c")), 20, "fr/c")

    def writer():
        i = 0
        while not done.is_set():
            i += 1
            put(leader, "fr/c", value_of(i))
            with lock:
                acked.append((time.monotonic(), i))

    def reader(k):
        last = -1
        while not done.is_set():
            with lock:
                floor = acked[-1][1]  # acknowledged before this read began
            got = int(read(f.path("fr", "c")))
            counts[k] += 1
            if got < floor or got < last:
                bad.append((k, floor, last, got))
            last = got
    ts = [threading.Thread(target=writer)] + [threading.Thread(target=reader, args=(k,))
                                              for k in range(4)]
    for t in ts:
        t.start()
    time.sleep(SECONDS)  # the length of the run, not a synchronisation
    done.set()
    for t in ts:
        t.join()
    print("# %d writes, %s reads by the 4 readers" % (len(acked) - 1, counts))
    check("test_concurrent_readers_through_a_follower_see_what_was_acknowledged",
          not bad, "stale or backwards reads (reader, floor, last, got): %s" % bad[:5])
    check("test_the_readers_and_the_writer_made_progress",
          min(counts) > 10 and len(acked) > 10, "%d writes, reads %s" % (len(acked), counts))


if __name__ == "__main__":
    run(main)
