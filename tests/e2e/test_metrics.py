"""GET /metrics: the Prometheus text format, checked by promtool, and
counters that move as they should.

A 3-node cluster under a steady write load: /metrics of the leader and a
follower scraped during the load, each accepted by `promtool check
metrics` (Debian's prometheus package) and parsed here: every histogram's
buckets rise, its +Inf bucket equals its _count. Then, with the load
stopped: one PUT to the leader raises kvfs_raft_proposals_total there by
exactly one; one PUT through a follower raises it on the leader by one and
the follower's kv_write request count by one; a linearizable GET on the
follower raises its read barrier count; the role gauges name one leader.
Through the follower's mount: a `cat` of a key raises the mount's open
counter by exactly one and its read counter and read-latency count, a
`cat` of a missing name raises the ENOENT error counter.
"""
import json
import re
import shutil
import subprocess
import sys
import os
import threading
import time

from harness import Cluster, Node, TempDir, kvfs_binary, wait_for

LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')


def scrape(node):
    s, h, body = node.request("GET", "/metrics", timeout=15)
    assert s == 200, (s, body[:200])
    ctype = {k.lower(): v for k, v in h.items()}.get("content-type", "")
    assert ctype.startswith("text/plain; version=0.0.4"), ctype
    return body.decode()


def promtool(text):
    r = subprocess.run(["promtool", "check", "metrics"], input=text,
                       capture_output=True, text=True)
    assert r.returncode == 0, "promtool: " + r.stdout + r.stderr


def parse(text):
    """{(name, labels): value} of every sample."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = LINE.match(line)
        assert m, "not a sample line: %r" % line
        out[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return out


def check_histograms(samples):
    groups = {}
    for (name, labels), v in samples.items():
        if name.endswith("_bucket"):
            le = re.search(r'le="([^"]+)"', labels).group(1)
            rest = re.sub(r',?le="[^"]+"', "", labels)
            groups.setdefault((name[:-7], rest), []).append(
                (float("inf") if le == "+Inf" else float(le), v))
    assert groups, "no histograms"
    for (base, rest), buckets in groups.items():
        buckets.sort()
        counts = [v for _, v in buckets]
        assert counts == sorted(counts), (base, rest, "buckets fall")
        assert buckets[-1][0] == float("inf"), (base, "no +Inf bucket")
        cnt = samples[(base + "_count", rest.replace("{}", ""))]
        assert cnt == counts[-1], (base, rest, cnt, counts[-1])


def value(node, name, labels=""):
    return parse(scrape(node)).get((name, labels), 0.0)


def main():
    if shutil.which("promtool") is None:
        sys.exit("promtool is missing: scripts/deps installs Debian's prometheus")
    binary = kvfs_binary()
    with TempDir() as tmp:
        os.mkdir(os.path.join(tmp, "c"))
        with Cluster(binary, os.path.join(tmp, "c"), n=3, mounts=True) as c:
            c.start()
            leader = c.leader()
            lid = leader.id
            fid = next(i for i in (1, 2, 3) if i != lid)
            follower = c[fid]
            stop = threading.Event()
            errors = []

            def load():
                i = 0
                while not stop.is_set():
                    node = leader if i % 2 else follower
                    s, _, b = node.put("load/%d" % (i % 500), b"v%d" % i)
                    if s not in (200, 201):
                        errors.append((s, b))
                    i += 1
            t = threading.Thread(target=load)
            t.start()
            try:
                time.sleep(1.0)
                for _ in range(3):
                    for node in (leader, follower):
                        text = scrape(node)
                        promtool(text)
                        check_histograms(parse(text))
                    time.sleep(0.3)
            finally:
                stop.set()
                t.join()
            assert not errors, errors[:3]
            print("ok   - /metrics under load: promtool accepts leader's and "
                  "follower's, histograms consistent")

            samples = parse(scrape(leader))
            assert samples[("kvfs_raft_role", '{role="leader"}')] == 1
            assert samples[("kvfs_raft_leader_id", "")] == lid
            assert samples[("kvfs_raft_proposals_total", "")] > 0
            fs = parse(scrape(follower))
            assert fs[("kvfs_raft_role", '{role="follower"}')] == 1
            print("ok   - role gauges: one leader, the follower a follower")

            sent = ("kvfs_peer_sent_bytes_total", '{peer="%d"}' % fid)
            got = ("kvfs_peer_received_bytes_total", '{peer="%d"}' % lid)
            frames = ("kvfs_peer_frames_received_total", '{peer="%d"}' % lid)
            assert samples[sent] > 0 and fs[got] > 0 and fs[frames] > 0, (
                samples.get(sent), fs.get(got), fs.get(frames))
            # a 64 KiB value crosses to the follower: both sides count it
            s, _, _ = leader.put("big", b"x" * 65536)
            assert s in (200, 201)
            wait_for(lambda: parse(scrape(follower))[got] >= fs[got] + 65536,
                     10, "the follower counting the value's bytes")
            assert parse(scrape(leader))[sent] >= samples[sent] + 65536
            print("ok   - peer bytes: the leader's sent and the follower's "
                  "received count a 64 KiB value")

            before = value(leader, "kvfs_raft_proposals_total")
            s, _, _ = leader.put("one", b"1")
            assert s in (200, 201)
            after = value(leader, "kvfs_raft_proposals_total")
            assert after == before + 1, (before, after)
            print("ok   - a PUT to the leader: proposals +1 there")

            kw = '{class="kv_write",code="201"}'
            before = value(leader, "kvfs_raft_proposals_total")
            fbefore = value(follower, "kvfs_http_requests_total", kw)
            s, _, _ = follower.put("two", b"2")
            assert s == 201, s
            after = value(leader, "kvfs_raft_proposals_total")
            fafter = value(follower, "kvfs_http_requests_total", kw)
            assert after == before + 1, (before, after)
            assert fafter == fbefore + 1, (fbefore, fafter)
            print("ok   - a PUT through a follower: proposals +1 on the leader, "
                  "kv_write 201 +1 on the follower")

            rb = value(follower, "kvfs_raft_read_barriers_total")
            s, _, body = follower.get("two")
            assert s == 200 and body == b"2", (s, body)
            assert value(follower, "kvfs_raft_read_barriers_total") == rb + 1
            s, _, body = follower.get("two", local=True)
            assert value(follower, "kvfs_raft_read_barriers_total") == rb + 1
            print("ok   - a linearizable GET: a read barrier +1; a local one: none")

            mnt = follower.mountpoint
            op = 'kvfs_fs_operations_total'
            before = parse(scrape(follower))
            r = subprocess.run(["cat", os.path.join(mnt, "two")],
                               capture_output=True)
            assert r.returncode == 0 and r.stdout == b"2", r
            after = parse(scrape(follower))

            def moved(name, labels):
                return after.get((name, labels), 0) - before.get(
                    (name, labels), 0)
            assert moved(op, '{op="open"}') == 1, moved(op, '{op="open"}')
            assert moved(op, '{op="read"}') >= 1, moved(op, '{op="read"}')
            assert moved("kvfs_fs_operation_seconds_count",
                         '{kind="read"}') >= 1
            before = parse(scrape(follower))
            r = subprocess.run(["cat", os.path.join(mnt, "nope")],
                               capture_output=True)
            assert r.returncode != 0
            after = parse(scrape(follower))
            assert moved("kvfs_fs_errors_total", '{errno="ENOENT"}') >= 1
            assert moved(op, '{op="lookup"}') >= 1
            promtool(scrape(follower))
            print("ok   - cat through the mount: open +1, read and its "
                  "latency count up; a missing name: ENOENT counted")

        # one node, the only voter: a linearizable read needs no round
        n = Node(binary, os.path.join(tmp, "one")).start()
        try:
            assert n.request("PUT", "/kv/k", b"v")[0] in (200, 201)
            before = parse(scrape(n))
            s, _, body = n.request("GET", "/kv/k")
            assert s == 200 and body == b"v", (s, body)
            after = parse(scrape(n))

            def moved(name):
                return after.get((name, ""), 0) - before.get((name, ""), 0)
            assert moved("kvfs_raft_read_barriers_total") == 1
            assert moved("kvfs_raft_read_barriers_local_total") == 1
            assert moved("kvfs_raft_read_index_rounds_total") == 0
            print("ok   - one node: a linearizable GET passes its barrier "
                  "at once, without a ReadIndex round")
        finally:
            n.stop()


if __name__ == "__main__":
    main()
