"""The stalls of 1 MiB writes (scripts/bench-stall).

A 3-node cluster on 127.0.0.1 (tests/e2e/harness.py), one client: COUNT
PUTs of 1 MiB text values (printable, with the characters JSON escapes),
then COUNT of 1 MiB binary ones (random bytes: base64 inside), one at a
time to the leader. Prints each kind's PUT latency (p50, p99, max), each
member's longest node-thread turn and slow turns (/status max_turn_ms,
slow_turns), the CPU time of each member's node thread per PUT (from
/proc: the machine's load inflates the turns, much less this), whether
the term changed, and the load average before and after (the machine's
other work shows in the figures).
  python3 tests/bench/stall.py KVFS_BINARY [--count N] [--size BYTES]
"""
import argparse
import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "e2e"))
from harness import Cluster, TempDir  # noqa: E402

TEXT_CHARS = (b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 "
              b"\"\\\n\t/{}[],:")
TEXT_TABLE = bytes(TEXT_CHARS[i % len(TEXT_CHARS)] for i in range(256))


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def node_thread_cpu_ms(pid):
    """CPU time (user + system) of the kvfs-node thread of pid, in ms: a
    figure of the work on the node thread that the machine's load does not
    inflate as it does the turns' wall time."""
    tick = os.sysconf("SC_CLK_TCK")
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                st = f.read()
        except OSError:
            continue
        name = st[st.index("(") + 1:st.rindex(")")]
        if name == "kvfs-node":
            fields = st[st.rindex(")") + 2:].split()
            return (int(fields[11]) + int(fields[12])) * 1000.0 / tick
    return float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kvfs")
    ap.add_argument("--count", type=int, default=50)
    ap.add_argument("--size", type=int, default=1 << 20)
    a = ap.parse_args()
    rnd = random.Random(1)
    load0 = os.getloadavg()
    with TempDir() as root, Cluster(os.path.abspath(a.kvfs), root, n=3,
                                    mounts=False) as c:
        c.start()
        leader = c.leader()
        c.wait_converged()
        term0 = leader.status()["term"]
        cpu0 = {i: node_thread_cpu_ms(c[i].proc.pid) for i in c.nodes}
        for kind in ("text", "binary"):
            lat = []
            for i in range(a.count):
                v = rnd.randbytes(a.size)
                if kind == "text":
                    v = v.translate(TEXT_TABLE)
                t0 = time.monotonic()
                s, _, body = leader.put("stall/%s/%d" % (kind, i % 8), v,
                                        timeout=60)
                lat.append(time.monotonic() - t0)
                if s not in (200, 201):
                    sys.exit("PUT %s: %s %r" % (kind, s, body[:200]))
            print("%d PUTs of %d KiB %-6s p50 %4.0f ms  p99 %4.0f ms  max "
                  "%4.0f ms" % (a.count, a.size // 1024, kind,
                                pct(lat, 0.5) * 1000, pct(lat, 0.99) * 1000,
                                max(lat) * 1000))
        cpu = {i: node_thread_cpu_ms(c[i].proc.pid) - cpu0[i]
               for i in c.nodes}
        st = c.statuses(timeout=5)
        terms = {s["term"] for s in st.values()}
        for i in sorted(st):
            print("node %d (%s): max turn %s ms, slow turns %s, node thread "
                  "CPU %.1f ms a PUT" %
                  (i, st[i]["role"], st[i].get("max_turn_ms", "?"),
                   st[i].get("slow_turns", "?"), cpu[i] / (2 * a.count)))
        print("term %s" % ("unchanged (%d)" % term0 if terms == {term0}
                           else "changed: %d -> %s" % (term0, sorted(terms))))
    load1 = os.getloadavg()
    print("load average before %.2f %.2f %.2f, after %.2f %.2f %.2f" %
          (load0 + load1))


if __name__ == "__main__":
    main()
