"""Three real kvfs nodes on 127.0.0.1, each with its own FUSE mount: the
cluster behaves as one store (issue 5, "what it must show").

Writes go in through mounts and HTTP on the leader and on followers and are
read at once on other nodes and on the same follower (read-your-writes);
a follower frozen with SIGSTOP past an election timeout thaws without
raising the term;
the leader is killed with SIGKILL, a new one is elected (the time is
printed), writes go on until the log is compacted past the old leader's,
which rejoins from a snapshot without raising the term (pre-vote); with two of three nodes stopped a write fails in bounded time
(503 + Retry-After, EIO on the mount) and works again once one returns;
at the end every acknowledged write is on every node. Also: a peer request
without the token is 401, a data dir is refused under another --id or
cluster, bytes 0..255 round-trip through mounts. The harness (harness.py)
owns the processes and mounts and prints the node logs on failure."""
import errno
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse

from harness import (Cluster, TempDir, call_with_deadline, free_port,
                     kvfs_binary, read_file, wait_for, write_file)

SKIP = 77
WRITE_TIMEOUT_MS = 2000
# Small snapshots, so that the leader compacts its log past a node that is
# down and that node can only catch up from a snapshot.
SNAPSHOT_EVERY = 25
EXTRA = ["--write-timeout=%d" % WRITE_TIMEOUT_MS, "--snapshot-every=%d" % SNAPSHOT_EVERY]
# A mount or HTTP call still running after this long is a hang, not a
# slow answer (the write timeout is 2 s).
CALL_DEADLINE = 30
T0 = time.monotonic()


def step(text):
    print("[%6.2fs] %s" % (time.monotonic() - T0, text), flush=True)


class Writes:
    """Every acknowledged write (key -> value) and every write whose outcome
    is unknown because it failed (key -> value it may have stored)."""

    def __init__(self):
        self.acked = {}
        self.maybe = {}

    def http(self, node, key, value):
        s, _, body = node.put(key, value, timeout=CALL_DEADLINE)
        assert s in (200, 201), "PUT %s on node %d: %d %r" % (key, node.id, s, body)
        self.acked[key] = value

    def mount(self, node, key, value):
        _, err = call_with_deadline(lambda: write_file(node.path(key), value),
                                    CALL_DEADLINE, "write %s on mount %d" % (key, node.id))
        if err is not None:
            raise AssertionError("write %s through node %d's mount: %r" %
                                 (key, node.id, err))
        self.acked[key] = value


class BackgroundWriter(threading.Thread):
    """HTTP PUTs of fresh keys, round robin over all members (down or not),
    one at a time, from the kill -9 of the leader until after the quorum
    returns: acknowledged ones must survive like the others."""

    def __init__(self, cluster):
        super().__init__(daemon=True, name="background writer")
        self.nodes = list(cluster.nodes.values())
        self.acked, self.maybe = {}, {}
        self.refused = 0
        self.longest_gap = 0.0
        self.done = threading.Event()

    def run(self):
        i, last = 0, time.monotonic()
        while not self.done.is_set():
            n = self.nodes[i % len(self.nodes)]
            key, val = "bg-%05d" % i, b"background write %d via node %d" % (i, n.id)
            i += 1
            try:
                s, _, _ = n.put(key, val, timeout=CALL_DEADLINE)
            except ConnectionRefusedError:
                self.refused += 1  # the node is down: nothing was sent
                continue
            except OSError:
                s = None
            if s in (200, 201):
                self.acked[key] = val
                now = time.monotonic()
                self.longest_gap = max(self.longest_gap, now - last)
                last = now
            else:
                self.maybe[key] = val

    def finish(self, w):
        """Stop, then add this writer's outcomes to w."""
        self.done.set()
        self.join(CALL_DEADLINE + 5)
        assert not self.is_alive(), "background writer hung"
        print("background writer: %d acknowledged, %d failed (outcome unknown), "
              "%d refused by a down node, longest gap between acknowledgements %.2f s" %
              (len(self.acked), len(self.maybe), self.refused, self.longest_gap), flush=True)
        assert self.acked, "no background write was acknowledged"
        w.acked.update(self.acked)
        w.maybe.update(self.maybe)


def mount_read(node, key):
    value, err = call_with_deadline(lambda: read_file(node.path(key)),
                                    CALL_DEADLINE, "read %s on mount %d" % (key, node.id))
    if err is not None:
        raise AssertionError("read %s through node %d's mount: %r" % (key, node.id, err))
    return value


def http_read(node, key, local=False):
    s, _, body = node.get(key, local=local, timeout=CALL_DEADLINE)
    assert s == 200, "GET %s%s on node %d: %d %r" % (
        key, " (local)" if local else "", node.id, s, body)
    return body


def expect_everywhere(nodes, key, value, mount=True):
    """key reads as value at once on each node, through HTTP (linearizable)
    and the mount."""
    for n in nodes:
        got = http_read(n, key)
        assert got == value, "node %d HTTP %s: %r, wrote %r" % (n.id, key, got, value)
        if mount:
            got = mount_read(n, key)
            assert got == value, "node %d mount %s: %r, wrote %r" % (n.id, key, got, value)


def followers(c, leader):
    return [n for n in c.running() if n.id != leader.id]


def check_replication(c, w):
    step("write through node 1's mount and over HTTP, read on nodes 2 and 3")
    w.mount(c[1], "m1", b"written through mount 1\n")
    expect_everywhere([c[2], c[3]], "m1", b"written through mount 1\n")
    w.http(c[1], "h1", b"written over HTTP on node 1")
    expect_everywhere([c[2], c[3]], "h1", b"written over HTTP on node 1")
    # an overwrite of another length on node 3 is seen at once by mounts
    # that read (and cached) the old value
    w.http(c[3], "m1", b"overwritten over HTTP on node 3, longer than before\n")
    expect_everywhere([c[1], c[2]], "m1", w.acked["m1"])
    w.mount(c[2], "m1", b"short")
    expect_everywhere([c[1], c[3]], "m1", b"short")

    leader = c.leader()
    for f in followers(c, leader):
        step("write on follower %d (mount, HTTP), read it back there at once" % f.id)
        key, val = "f%d-mount" % f.id, b"follower %d mount" % f.id
        w.mount(f, key, val)
        assert mount_read(f, key) == val
        assert http_read(f, key, local=True) == val, "read-your-writes (local GET)"
        key, val = "f%d-http" % f.id, b"follower %d http" % f.id
        w.http(f, key, val)
        assert http_read(f, key, local=True) == val, "read-your-writes (local GET)"
        assert mount_read(f, key) == val
        # an overwrite of another length, read at once on the same follower
        val = b"overwritten on follower %d, longer than before" % f.id
        w.mount(f, key, val)
        assert mount_read(f, key) == val
        assert http_read(f, key, local=True) == val


def check_binary(c, w):
    every_byte = bytes(range(256))
    a, b, d = c[2], c[3], c[1]
    step("bytes 0..255 written through mount %d, read through mount %d" % (a.id, b.id))
    w.mount(a, "bin-mount", every_byte)
    assert mount_read(b, "bin-mount") == every_byte
    assert http_read(d, "bin-mount") == every_byte
    step("bytes 0..255 written over HTTP on node %d, read through mount %d" % (b.id, d.id))
    w.http(b, "bin-http", every_byte[::-1])
    assert mount_read(d, "bin-http") == every_byte[::-1]
    assert mount_read(a, "bin-http") == every_byte[::-1]


def check_peer_auth(c):
    step("/raft/message without the right token is refused")
    n = c[1]
    cluster_id = n.status().get("cluster_id", "")
    body = json.dumps({"kvfs": "raft", "version": 2, "cluster": cluster_id,
                       "from": 2, "msgs": []}).encode()
    s, _, reply = n.request("POST", "/raft/message", body=body,
                            headers={"Content-Type": "application/json",
                                     "X-Kvfs-Cluster": cluster_id})
    assert s == 401, "no token: %d %r" % (s, reply)
    s, _, reply = n.request("POST", "/raft/message", body=body,
                            headers={"Content-Type": "application/json",
                                     "X-Kvfs-Cluster": cluster_id,
                                     "X-Kvfs-Token": "not-the-token"})
    assert s == 401, "wrong token: %d %r" % (s, reply)
    step("/raft/stream without the right token, or in another version, is "
         "refused; a malformed frame ends the stream, not the node")
    s, _, reply = n.request("POST", "/raft/stream", body=b"0\n",
                            headers={"X-Kvfs-Cluster": cluster_id,
                                     "X-Kvfs-Token": "not-the-token",
                                     "X-Kvfs-Protocol": "2"})
    assert s == 401, "stream, wrong token: %d %r" % (s, reply)
    # the cluster's token, the file every member was given
    with open(c.token_file) as f:
        token = f.read().strip()
    hdrs = {"X-Kvfs-Cluster": cluster_id, "X-Kvfs-Token": token}
    s, _, reply = n.request("POST", "/raft/stream", body=b"0\n",
                            headers=dict(hdrs, **{"X-Kvfs-Protocol": "1"}))
    assert s == 409 and b"peer protocol version 1" in reply, \
        "stream, version 1: %d %r" % (s, reply)
    frame = b"%x\n" % len(body) + body
    s, _, reply = n.request("POST", "/raft/stream", body=frame + b"0\n",
                            headers=dict(hdrs, **{"X-Kvfs-Protocol": "2"}))
    assert s == 204, "stream of an empty batch: %d %r" % (s, reply)
    try:
        n.request("POST", "/raft/stream", body=b"zz\n{}",
                  headers=dict(hdrs, **{"X-Kvfs-Protocol": "2"}))
    except (ConnectionError, http.client.HTTPException):
        pass  # the stream is closed on the bad frame
    assert n.status()["role"] in ("leader", "follower")


def check_paused_follower(c, w):
    """A follower frozen (SIGSTOP) for longer than any election timeout
    (at most 1 s) comes back without raising the term: its pre-vote is
    refused while the leader is alive, so it never stands as a candidate."""
    leader = c.leader()
    term = leader.status()["term"]
    f = followers(c, leader)[-1]
    step("freeze follower %d (SIGSTOP) until the leader has not heard from it "
         "for 2 s" % f.id)
    f.proc.send_signal(signal.SIGSTOP)
    try:
        def silent():
            for p in leader.status()["peers"]:
                if p["id"] == f.id:
                    return p["last_contact_ms"] > 2000
            return False
        wait_for(silent, 30, "node %d to be silent for 2 s" % f.id)
        w.http(leader, "while-frozen", b"written while node %d was frozen" % f.id)
    finally:
        f.proc.send_signal(signal.SIGCONT)
    c.wait_caught_up(f)
    assert http_read(f, "while-frozen", local=True) == w.acked["while-frozen"]
    w.http(f, "after-frozen", b"written through node %d after it thawed" % f.id)
    for n in c.running():
        s = n.status()
        assert s["term"] == term and s["leader"] == leader.id, \
            "node %d: term %d leader %d after node %d thawed; was term %d leader %d" % (
                n.id, s["term"], s["leader"], f.id, term, leader.id)


def check_leader_crash(c, w):
    old = c.leader()
    st_old = old.status()
    term_old, applied_old = st_old["term"], st_old["applied_index"]
    f = followers(c, old)[0]
    step("kill -9 the leader, node %d (term %d), and write at once on node %d, "
         "which still takes it for the leader" % (old.id, term_old, f.id))
    t = time.monotonic()
    old.kill9()
    at_kill = {}
    put = threading.Thread(target=lambda: at_kill.update(r=f.put(
        "forwarded-at-kill", b"sent to a dead leader", timeout=CALL_DEADLINE)))
    put.start()
    new = c.leader(timeout=30)
    elapsed = time.monotonic() - t
    st = new.status()
    print("new leader: node %d, term %d, %.2f s after kill -9 of node %d" %
          (new.id, st["term"], elapsed, old.id), flush=True)
    assert new.id != old.id and st["term"] > term_old, st
    put.join()
    s, _, body = at_kill["r"]
    print("the write made on node %d at the kill: %d %r" % (f.id, s, body), flush=True)
    if s in (200, 201):
        w.acked["forwarded-at-kill"] = b"sent to a dead leader"
    else:
        w.maybe["forwarded-at-kill"] = b"sent to a dead leader"
    # Its propose never reached the dead node (the connection was refused),
    # so the follower may, and must, propose it again at the new leader
    # rather than fail with the outcome unknown. Only an election slower
    # than the write timeout (2 s) excuses a failure.
    if elapsed < 1.5:
        assert s in (200, 201), "write at the kill on node %d: %d %r" % (f.id, s, body)

    step("writes go on with node %d down" % old.id)
    up = c.running()
    for n in up:
        w.http(n, "after-kill-http-%d" % n.id, b"http on %d, %d down" % (n.id, old.id))
        w.mount(n, "after-kill-mount-%d" % n.id, b"mount on %d, %d down" % (n.id, old.id))
    for n in up:
        for m in up:
            expect_everywhere([m], "after-kill-mount-%d" % n.id,
                              b"mount on %d, %d down" % (n.id, old.id))

    for i in range(3 * SNAPSHOT_EVERY):
        w.http(up[i % len(up)], "while-down-%03d" % i, b"%d while node %d is down" % (i, old.id))
    st = wait_for(lambda: (lambda s: s["first_index"] > applied_old + 1 and s)(new.status()),
                  30, "the leader to compact its log past node %d's" % old.id)
    print("leader's log starts at %d (snapshot %d); node %d had applied %d: "
          "it needs a snapshot" % (st["first_index"], st["snapshot_index"], old.id, applied_old),
          flush=True)
    term = new.status()["term"]
    step("restart node %d; it catches up without disturbing (term stays %d)" %
         (old.id, term))
    old.start()
    target, applied = c.wait_caught_up(old, timeout=30)
    print("node %d caught up: applied %d >= the others' commit index %d when it "
          "started: %s" % (old.id, applied, target, c.brief_status()), flush=True)
    for n in c.running():
        s = n.status()
        assert s["term"] == term, \
            "node %d is in term %d after node %d rejoined, was %d (no pre-vote?)" % (
                n.id, s["term"], old.id, term)
        assert s["leader"] == new.id, (n.id, s)
    for key, val in list(w.acked.items()):
        got = http_read(old, key, local=True)
        assert got == val, "rejoined node %d: %s is %r, acked %r" % (old.id, key, got, val)
    assert mount_read(old, "after-kill-mount-%d" % new.id) == \
        b"mount on %d, %d down" % (new.id, old.id)


def check_no_quorum(c, w):
    leader = c.leader()
    survivor = followers(c, leader)[0]
    stopped = [n for n in c.running() if n is not survivor]
    step("stop nodes %s; node %d is alone" % ([n.id for n in stopped], survivor.id))
    for n in stopped:
        n.stop()

    key, val = "no-quorum-http", b"may or may not apply"
    t = time.monotonic()
    s, h, body = survivor.put(key, val, timeout=CALL_DEADLINE)
    elapsed = time.monotonic() - t
    w.maybe[key] = val
    hdr = {k.lower(): v for k, v in h.items()}
    print("HTTP PUT on node %d alone: %d after %.2f s, Retry-After %s, %s" %
          (survivor.id, s, elapsed, hdr.get("retry-after"), body.decode(errors="replace")),
          flush=True)
    assert s == 503, (s, body)
    assert "retry-after" in hdr, h

    key, val = "no-quorum-mount", b"may or may not apply either"
    t = time.monotonic()
    _, err = call_with_deadline(lambda: write_file(survivor.path(key), val),
                                CALL_DEADLINE, "write on the lone node's mount")
    elapsed = time.monotonic() - t
    w.maybe[key] = val
    print("mount write on node %d alone: %r after %.2f s" % (survivor.id, err, elapsed),
          flush=True)
    assert isinstance(err, OSError) and err.errno == errno.EIO, err

    t = time.monotonic()
    s, h, body = survivor.get("m1", timeout=CALL_DEADLINE)
    print("linearizable GET on node %d alone: %d after %.2f s" %
          (survivor.id, s, time.monotonic() - t), flush=True)
    assert s == 503 and "retry-after" in {k.lower() for k in h}, (s, h, body)
    assert http_read(survivor, "m1", local=True) == w.acked["m1"]

    back = stopped[0]
    step("restart node %d: writes succeed again" % back.id)
    back.start()
    c.leader(timeout=30)
    w.http(survivor, "quorum-back-http", b"back")
    w.mount(survivor, "quorum-back-mount", b"back too")
    expect_everywhere([back], "quorum-back-mount", b"back too")
    step("restart node %d" % stopped[1].id)
    stopped[1].start()


def list_local(node):
    names, after = [], None
    while True:
        q = "?consistency=local&limit=10000"
        if after is not None:
            q += "&after=" + urllib.parse.quote(after, safe="")
        s, _, body = node.request("GET", "/kv/" + q, timeout=CALL_DEADLINE)
        assert s == 200, (s, body)
        page = json.loads(body)
        names += [e["name"] for e in page["entries"]]
        after = page.get("next")
        if after is None:
            return names


def check_nothing_lost(c, w):
    step("every acknowledged write on every node")
    idx = c.wait_converged(timeout=60)
    listings = {}
    for n in c.running():
        for key, val in w.acked.items():
            got = http_read(n, key, local=True)
            assert got == val, "node %d: %s is %r, acked %r" % (n.id, key, got, val)
        for key, val in w.maybe.items():
            s, _, got = n.get(key, local=True)
            assert s == 404 or (s == 200 and got == val), (n.id, key, s, got)
        listings[n.id] = list_local(n)
    first = next(iter(listings.values()))
    for nid, names in listings.items():
        assert names == first, "node %d lists %s, another node %s" % (nid, names, first)
    assert set(w.acked) <= set(first) <= set(w.acked) | set(w.maybe), first
    print("ok: %d acknowledged keys identical on %d nodes at applied index %d" %
          (len(w.acked), len(listings), idx), flush=True)


def check_refused_data_dir(c, binary):
    n = c[3]
    step("node 3's data dir under --id=2, then under another cluster")
    n.stop()
    other_peers = "1=127.0.0.1:%d,2=127.0.0.1:%d,3=127.0.0.1:%d" % (
        free_port(), free_port(), free_port())
    for what, node_id, peers in (("another --id", 2, c.peers),
                                 ("another cluster", 3, other_peers)):
        args = [binary, "-f", "--id=%d" % node_id, "--data=" + n.data,
                "--peers=" + peers, "--listen=127.0.0.1:%d" % free_port()]
        try:
            r = subprocess.run(args, capture_output=True, text=True, timeout=20)
        except subprocess.TimeoutExpired:
            raise AssertionError("kvfs started on node 3's data dir under %s" % what)
        print("%s: exit %d: %s" % (what, r.returncode, r.stderr.strip()), flush=True)
        assert r.returncode != 0, "kvfs accepted node 3's data dir under %s" % what
        assert r.stderr.strip(), "refused without a message"
    step("node 3 still starts on its own data dir")
    n.start()
    c.wait_converged(timeout=30)


def main():
    binary = kvfs_binary()
    if not os.path.exists("/dev/fuse"):
        print("SKIP: /dev/fuse is absent: cannot mount")
        sys.exit(SKIP)
    w = Writes()
    with TempDir() as tmp, Cluster(binary, tmp, n=3, mounts=True, extra=EXTRA) as c:
        step("start 3 nodes: %s" % c.peers)
        c.start()
        leader = c.leader(timeout=30)
        step("leader: node %d" % leader.id)
        check_replication(c, w)
        check_binary(c, w)
        check_peer_auth(c)
        check_paused_follower(c, w)
        bg = BackgroundWriter(c)
        bg.start()
        check_leader_crash(c, w)
        check_no_quorum(c, w)
        bg.finish(w)
        check_nothing_lost(c, w)
        check_refused_data_dir(c, binary)
    print("ok: cluster end-to-end")


if __name__ == "__main__":
    main()
