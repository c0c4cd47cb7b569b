"""Leases and TTLs on a 3-node cluster (docs/http-api.md, "Leases").

1. Expiry: keys on a 2 s lease, kept alive through a follower for a few
   seconds, then left alone. Every member is polled (local reads, so each
   answers from its own map): no member loses a key before TTL after the
   last acknowledged keep-alive was sent (a read that finds it gone must
   have been answered after that), and no member still has one when asked
   later than TTL plus an election timeout after that keep-alive's answer.
2. Failover: keys on a 2 s lease kept alive late in their TTL (every
   1.5 s) through a follower; the leader is killed (kill -9) just before a
   keep-alive is due, so the election falls where the lease would run out;
   the keep-alives go on through the same follower, and the keys stay on
   every live member through the election and after (a new leader counts
   every lease from its office plus an election timeout). Once they stop,
   the keys go; the killed member, restarted, has none of them either.
2b. A client that kept alive through the leader itself, which dies; it
   reaches another member 2.3 s after the kill (past its TTL, within the
   TTL plus the election timeout a new leader gives every lease): its
   lease is still there.
3. Revoke: DELETE /lease/ID deletes its keys at once (gone in the answer's
   wake on the member that answered, and for linearizable reads on the
   others); unknown ids are 404, bad TTLs and ids 400.
3b. Last-moment keep-alives: 40 one-second leases, keep-alives streamed
   to the leader across the moment each runs out: an acknowledged
   keep-alive keeps its key (the expiry is conditional), a late one is
   404.
4. ?ttl sugar: PUT /kv/k?ttl=2 puts the key on a lease of its own (shown
   by GET /kv/k's X-Kvfs-Lease and GET /lease/ID), which expires as in 1.
5. The mount: setfattr user.kvfs.ttl puts a file on a fresh lease,
   getfattr user.kvfs.ttl shows what is left of it, a write through the
   mount keeps it, and with a 2 s TTL the file goes from every mount.
6. kvfsctl (the second argument): lease grant, put --lease and --ttl,
   lease ls, keep-alive --once, get, revoke.
Usage: test_lease.py KVFS [KVFSCTL]
"""
import errno
import json
import os
import subprocess
import sys
import threading
import time

from harness import Cluster, TempDir, kvfs_binary, wait_for

TTL = 2.0
ELECTION = 1.0  # the longest election timeout (NODE_ELECTION ticks * 2)


def leader_of(c, not_=None):
    """The leader every running member names (not not_, a dead one)."""
    def known():
        ids = set()
        for n in c.nodes.values():
            if n.running():
                ids.add(n.status()["leader"])
        if len(ids) != 1:
            return None
        i = ids.pop()
        return i if i not in (0, not_) and c[i].running() else None
    return wait_for(known, 30, "one leader known to every member")


def grant(node, ttl):
    s, _, b = node.request("POST", "/lease", body=json.dumps({"ttl": ttl}))
    assert s == 200, (s, b)
    d = json.loads(b)
    assert d["ttl"] == ttl, d
    return d["id"]


def keepalive(node, lease, timeout=10):
    """Send a keep-alive; (send time, answer time) if it was acknowledged,
    None if not."""
    t0 = time.monotonic()
    try:
        s, _, b = node.request("POST", "/lease/%d/keepalive" % lease,
                               timeout=timeout)
    except OSError:
        return None
    t1 = time.monotonic()
    if s == 200:
        return (t0, t1)
    assert s in (503, 404), (s, b)  # no leader yet; 404: the lease is gone
    return None


class Watch:
    """Polls keys on members with local reads: for each (member, key) the
    latest start time of a read that found the key, and the earliest answer
    time of one that found it gone."""

    def __init__(self, nodes, keys):
        """Starts once every key is on every member (a local read on a
        follower may not have applied the put yet)."""
        self.nodes, self.keys = nodes, keys
        for n in nodes:
            for k in keys:
                wait_for(lambda: n.get(k, local=True)[0] == 200, 30,
                         "%s on node %d" % (k, n.id))
        self.seen = {}  # (id, key) -> last start of a read that found it
        self.gone = {}  # (id, key) -> first answer of a read that did not
        self.stop = threading.Event()
        self.errors = []
        self.t = threading.Thread(target=self.run, daemon=True)

    def poll_once(self):
        for n in self.nodes:
            for k in self.keys:
                t0 = time.monotonic()
                s, _, _ = n.get(k, local=True, timeout=5)
                t1 = time.monotonic()
                if s == 200:
                    self.seen[(n.id, k)] = t0
                elif s == 404:
                    self.gone.setdefault((n.id, k), t1)
                else:
                    self.errors.append((n.id, k, s))

    def run(self):
        while not self.stop.is_set():
            try:
                self.poll_once()
            except OSError as e:
                self.errors.append(repr(e))
            time.sleep(0.02)

    def all_gone(self):
        return all((n.id, k) in self.gone for n in self.nodes
                   for k in self.keys)


def check_expiry(w, sent, acked, what):
    """No key gone anywhere before sent + TTL; none seen after acked + TTL
    + ELECTION; every key gone everywhere."""
    for (nid, k), t in w.gone.items():
        assert t >= sent + TTL, (
            "%s: %s was gone on node %d %.3f s after the last acknowledged "
            "keep-alive was sent (TTL %.1f s)" % (what, k, nid, t - sent, TTL))
    for (nid, k), t in w.seen.items():
        assert t <= acked + TTL + ELECTION, (
            "%s: %s still on node %d %.3f s after the last keep-alive's "
            "answer (TTL %.1f s + election timeout %.1f s)"
            % (what, k, nid, t - acked, TTL, ELECTION))
    assert w.all_gone(), (what, w.gone)
    latest = max(w.gone.values()) - acked
    return latest


def test_expiry(c):
    leader = leader_of(c)
    follower = c[1 + leader % 3]
    lease = grant(c[leader], int(TTL))
    keys = ["exp/k%d" % i for i in range(4)]
    for i, k in enumerate(keys):
        s, _, b = c[1 + i % 3].request(
            "PUT", "/kv/%s?lease=%d" % (k, lease), body=b"v")
        assert s in (200, 201), (s, b)
    w = Watch(list(c.nodes.values()), keys)
    w.t.start()
    last = None
    t_end = time.monotonic() + 3.0
    while time.monotonic() < t_end:
        last = keepalive(follower, lease) or last
        time.sleep(0.4)
    assert last, "no keep-alive was acknowledged"
    sent, acked = last
    wait_for(w.all_gone, TTL + ELECTION + 20, "the keys gone on every node")
    w.stop.set()
    w.t.join()
    assert not w.errors, w.errors[:3]
    assert leader_of(c) == leader, "the leader changed during the test"
    latest = check_expiry(w, sent, acked, "expiry")
    s, _, b = follower.request("GET", "/lease/%d" % lease)
    assert s == 404, (s, b)
    print("ok   - keys on a %.0f s lease: kept while kept alive, gone on "
          "every node %.2f s after the last keep-alive (bound %.1f s), "
          "none before %.1f s" % (TTL, latest, TTL + ELECTION, TTL))


def test_failover(c, tmp):
    leader = leader_of(c)
    follower = c[1 + leader % 3]
    lease = grant(follower, int(TTL))
    keys = ["fo/k%d" % i for i in range(3)]
    for k in keys:
        s, _, b = follower.request("PUT", "/kv/%s?lease=%d" % (k, lease),
                                   body=b"v")
        assert s in (200, 201), (s, b)
    live = [n for n in c.nodes.values() if n.id != leader]
    stop = threading.Event()
    acks = []
    killed = threading.Event()

    def keeper():
        while not stop.is_set():
            r = keepalive(follower, lease, timeout=8)
            if r:
                acks.append(r)
            # late in the TTL: the next one 1.5 s after this one's answer;
            # the leader dies just before the second one is due
            if len(acks) == 2 and not killed.is_set():
                time.sleep(1.3)
                c[leader].kill9()
                killed.set()
                time.sleep(0.2)
            else:
                stop.wait(1.5)
    w = Watch(live, keys)
    kt = threading.Thread(target=keeper, daemon=True)
    kt.start()
    w.t.start()
    try:
        wait_for(killed.is_set, 30, "the leader killed")
        new = leader_of(c, not_=leader)
        # through the election and four more keep-alive rounds
        n0 = len(acks)
        wait_for(lambda: len(acks) >= n0 + 4, 60,
                 "four keep-alives answered after the failover")
    finally:
        stop.set()
        kt.join()
    assert not w.gone, (
        "keys kept alive were deleted across the failover: %s (node %d "
        "killed, node %d leads now)" % (sorted(w.gone), leader, new))
    sent, acked = acks[-1]
    wait_for(w.all_gone, TTL + ELECTION + 20, "the keys gone after the stop")
    w.stop.set()
    w.t.join()
    assert not w.errors, w.errors[:3]
    latest = check_expiry(w, sent, acked, "after the failover")
    c[leader].start()
    wait_for(lambda: all(c[leader].get(k, local=True)[0] == 404
                         for k in keys) and
             c[leader].status()["leased_keys"] == 0,
             60, "the restarted member without the keys")
    print("ok   - keys kept alive every 1.5 s of a 2 s TTL survive a kill "
          "-9 of the leader (node %d; node %d took over); gone %.2f s after "
          "the last keep-alive; the restarted member has none"
          % (leader, new, latest))


def test_last_moment_keepalives(c):
    """Keep-alives streamed to the leader as a TTL runs out, so that some
    are in the log, not yet applied, when the leader decides the lease has
    expired: the expiry is conditional, so the keep-alive wins and the key
    stays for TTL from when it was sent; once the expiry is in first, the
    keep-alives are 404. Lease i's stream starts a little later than lease
    i-1's (3 ms), across the moment its TTL runs out."""
    leader = c[leader_of(c)]
    n = 40
    leases = []
    for i in range(n):
        lid = grant(leader, 1)
        t1 = time.monotonic()
        s, _, b = leader.request("PUT", "/kv/race/k%d?lease=%d" % (i, lid),
                                 body=b"v")
        assert s in (200, 201), (s, b)
        leases.append((i, lid, t1))
    out = {}

    def one(i, lid, t1):
        start, end = t1 + 0.93 + 0.003 * i, t1 + 1.3
        time.sleep(max(0.0, start - time.monotonic()))
        acked, late = [], 0
        while time.monotonic() < end:
            r = keepalive(leader, lid)
            if r:
                acked.append(r[0])
            else:
                late += 1
        s, _, _ = leader.get("race/k%d" % i, local=True, timeout=5)
        out[i] = (acked, late, s, time.monotonic())
    ts = [threading.Thread(target=one, args=x) for x in leases]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    lost = [(i, round(t - max(acked), 3)) for i, (acked, _, s, t)
            in out.items() if s == 404 and acked and max(acked) + 1.0 > t]
    assert not lost, (
        "acknowledged keep-alives whose keys were deleted before TTL from "
        "their send (lease, seconds after the last one): %s" % lost)
    kept = sum(1 for v in out.values() if v[2] == 200)
    expired = sum(1 for v in out.values() if v[2] == 404)
    for i, lid, _ in leases:
        leader.request("DELETE", "/lease/%d" % lid)
    print("ok   - keep-alives streamed as 40 one-second TTLs ran out: %d "
          "leases kept, %d expired first (their later keep-alives 404), "
          "no acknowledged keep-alive lost its key" % (kept, expired))


def test_failover_silent_client(c):
    """A client that kept its lease alive through the leader itself: the
    leader dies right after answering, and the client reaches another
    member only 2.3 s after the kill, past TTL from its last keep-alive.
    The new leader took office after the kill and counts every lease from
    its office plus an election timeout, so the lease is still there: the
    keep-alive is acknowledged and no member lost a key meanwhile."""
    leader = leader_of(c)
    lease = grant(c[leader], int(TTL))
    keys = ["fs/k%d" % i for i in range(2)]
    for k in keys:
        s, _, b = c[leader].request("PUT", "/kv/%s?lease=%d" % (k, lease),
                                    body=b"v")
        assert s in (200, 201), (s, b)
    live = [n for n in c.nodes.values() if n.id != leader]
    w = Watch(live, keys)
    assert keepalive(c[leader], lease), "keep-alive through the leader"
    c[leader].kill9()
    killed = time.monotonic()
    w.t.start()
    # the client's own failover: it tries another member later
    time.sleep(max(0.0, killed + 2.3 - time.monotonic()))
    r = keepalive(live[0], lease)
    late = time.monotonic() - killed
    w.stop.set()
    w.t.join()
    assert not w.errors, w.errors[:3]
    assert r, ("the keep-alive %.2f s after the kill found the lease gone: "
               "the new leader did not extend it" % late)
    assert not w.gone, ("keys deleted across the failover: %s"
                        % sorted(w.gone))
    s, _, b = live[1].request("DELETE", "/lease/%d" % lease)
    assert s == 200, (s, b)
    c[leader].start()
    wait_for(lambda: all(c[leader].get(k, local=True)[0] == 404
                         for k in keys), 60, "the restarted member caught up")
    print("ok   - a client silent for 2.3 s after the leader it talked to "
          "was killed (node %d) still finds its 2 s lease: the new leader "
          "extended it" % leader)


def test_revoke_and_errors(c):
    lease = grant(c[2], 60)
    for i in range(3):
        s, _, b = c[1 + i].request("PUT", "/kv/rv/k%d?lease=%d" % (i, lease),
                                   body=b"x")
        assert s in (200, 201), (s, b)
    s, _, b = c[3].request("PUT", "/kv/rv/free", body=b"y")
    assert s in (200, 201), (s, b)
    s, _, b = c[1].request("GET", "/lease/%d" % lease)
    assert s == 200, (s, b)
    d = json.loads(b)
    assert d["keys"] == ["rv/k0", "rv/k1", "rv/k2"], d
    assert d["ttl"] == 60 and 0 < d["remaining"] <= 61, d
    s, _, b = c[3].request("DELETE", "/lease/%d" % lease)
    assert s == 200, (s, b)
    rev = json.loads(b)["rev"]
    for i in range(3):
        s, _, _ = c[3].get("rv/k%d" % i, local=True)
        assert s == 404, ("revoked key still on the node that answered", s)
        for n in c.nodes.values():
            s, _, _ = n.get("rv/k%d" % i)
            assert s == 404, (n.id, s)
    s, h, _ = c[1].get("rv/free")
    assert s == 200 and "X-Kvfs-Lease" not in h, (s, h)
    # the revoke is one revision: a watch from it sees the three deletes
    s, _, body = c[2].request("GET", "/kv/rv?watch&since=%d&wait=1" % rev)
    evs = [json.loads(x) for x in body.splitlines() if b'"op"' in x]
    assert [(e["revision"], e["op"], e["key"]) for e in evs] == [
        (rev, "delete", "rv/k%d" % i) for i in range(3)], evs
    # unknown ids: 404; bad ids, TTLs and parameters: 400
    for method, path in (("POST", "/lease/%d/keepalive" % lease),
                         ("DELETE", "/lease/%d" % lease),
                         ("GET", "/lease/%d" % lease),
                         ("GET", "/lease/999999")):
        s, _, b = c[1].request(method, path)
        assert s == 404, (method, path, s, b)
    s, _, b = c[1].request("PUT", "/kv/rv/x?lease=999999", body=b"x")
    assert s == 404, (s, b)
    for body in (b'{"ttl":0}', b'{"ttl":2592001}', b'{"ttl":-1}',
                 b'{"ttl":"5"}', b'{"ttl":1.5}', b'x', b'{}',
                 b'{"ttl":5,"x":1}'):
        s, _, b = c[1].request("POST", "/lease", body=body)
        assert s == 400, (body, s, b)
    for method, path in (("PUT", "/kv/rv/x?ttl=0"),
                         ("PUT", "/kv/rv/x?ttl=2592001"),
                         ("PUT", "/kv/rv/x?ttl=abc"),
                         ("PUT", "/kv/rv/x?lease=0"),
                         ("PUT", "/kv/rv/x?lease=1&ttl=5"),
                         ("GET", "/kv/rv/free?ttl=5"),
                         ("DELETE", "/kv/rv/free?lease=1"),
                         ("GET", "/lease/abc"),
                         ("GET", "/lease/0"),
                         ("GET", "/lease?bogus=1")):
        s, _, b = c[1].request(method, path, body=b"x")
        assert s == 400, (method, path, s, b)
    s, _, b = c[1].request("POST", "/lease/1/other")
    assert s == 404, (s, b)
    s, _, b = c[1].get("rv/x")
    assert s == 404, ("a refused put wrote", s, b)
    print("ok   - a revoke deletes its keys at once (one revision, three "
          "deletes), other keys stay; 404 for unknown leases, 400 for bad "
          "ids, TTLs and parameters")


def test_ttl_sugar(c):
    t0 = time.monotonic()
    s, _, b = c[2].request("PUT", "/kv/sugar/k?ttl=%d" % TTL, body=b"v")
    t1 = time.monotonic()
    assert s == 201, (s, b)
    rev = json.loads(b)["rev"]
    s, h, _ = c[3].get("sugar/k")
    assert s == 200 and h.get("X-Kvfs-Lease") == str(rev), (s, h)
    s, _, b = c[1].request("GET", "/lease/%d" % rev)
    assert s == 200 and json.loads(b)["keys"] == ["sugar/k"], (s, b)
    w = Watch(list(c.nodes.values()), ["sugar/k"])
    w.t.start()
    wait_for(w.all_gone, TTL + ELECTION + 20, "the ?ttl key gone everywhere")
    w.stop.set()
    w.t.join()
    assert not w.errors, w.errors[:3]
    latest = check_expiry(w, t0, t1, "?ttl")
    print("ok   - PUT ?ttl=2: a lease of its own (id = the put's revision), "
          "gone on every node %.2f s after the put" % latest)


def test_mount(c):
    a, b = c[1], c[2]
    path = a.path("m/file")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"hello")
    for bad in (b"0", b"abc", b"", b"2592001"):
        try:
            os.setxattr(path, "user.kvfs.ttl", bad)
            raise AssertionError("setfattr ttl=%r accepted" % bad)
        except OSError as e:
            assert e.errno == errno.EINVAL, (bad, e)
    try:
        os.getxattr(path, "user.kvfs.ttl")
        raise AssertionError("a file on no lease has a ttl")
    except OSError as e:
        assert e.errno == errno.ENODATA, e
    os.setxattr(path, "user.kvfs.ttl", b"30")
    left = int(os.getxattr(path, "user.kvfs.ttl"))
    assert 1 <= left <= 31, left
    lease = int(os.getxattr(path, "user.kvfs.lease"))
    s, _, body = b.request("GET", "/lease/%d" % lease)
    assert s == 200 and json.loads(body)["keys"] == ["m/file"], (s, body)
    # seen from the other mount, and kept by a write through the mount
    assert int(os.getxattr(b.path("m/file"), "user.kvfs.lease")) == lease
    with open(path, "ab") as f:
        f.write(b" world")
    assert int(os.getxattr(path, "user.kvfs.lease")) == lease
    assert open(b.path("m/file"), "rb").read() == b"hello world"
    # a 2 s lease: the file goes from every mount
    t0 = time.monotonic()
    os.setxattr(path, "user.kvfs.ttl", b"%d" % TTL)
    t1 = time.monotonic()
    s, _, _ = b.request("GET", "/lease/%d" % lease)
    assert s == 200, "the old lease is still there, now empty"
    w = Watch(list(c.nodes.values()), ["m/file"])
    w.t.start()
    wait_for(w.all_gone, TTL + ELECTION + 20, "the file's key gone")
    w.stop.set()
    w.t.join()
    assert not w.errors, w.errors[:3]
    latest = check_expiry(w, t0, t1, "setfattr")
    for n in c.nodes.values():
        wait_for(lambda: not os.path.exists(n.path("m/file")), 10,
                 "m/file gone from mount %d" % n.id)
    print("ok   - setfattr user.kvfs.ttl puts a file on a lease (getfattr "
          "shows %d s of 30 left, a write keeps it); with 2 s it is gone "
          "from every node %.2f s later and from every mount" % (left, latest))


def test_kvfsctl(c, kvfsctl):
    node = "127.0.0.1:%d" % c[2].port

    def ctl(*args):
        p = subprocess.run([kvfsctl, "--node=" + node] + list(args),
                           capture_output=True, timeout=30)
        return p.returncode, p.stdout.decode(), p.stderr.decode()
    rc, out, err = ctl("lease", "grant", "60")
    assert rc == 0, (rc, out, err)
    lease = int(out)
    rc, out, err = ctl("put", "--lease=%d" % lease, "ctl/a", "va")
    assert rc == 0, (rc, out, err)
    rc, out, err = ctl("put", "--ttl=60", "ctl/b", "vb")
    assert rc == 0, (rc, out, err)
    s, h, _ = c[1].get("ctl/b")
    assert s == 200 and "X-Kvfs-Lease" in h, (s, h)
    rc, out, err = ctl("lease", "ls")
    assert rc == 0 and ("%d " % lease) in out, (rc, out, err)
    rc, out, err = ctl("lease", "keep-alive", "--once", str(lease))
    assert rc == 0 and "kept alive, ttl 60" in out, (rc, out, err)
    rc, out, err = ctl("lease", "get", str(lease))
    assert rc == 0 and json.loads(out)["keys"] == ["ctl/a"], (rc, out)
    rc, out, err = ctl("lease", "revoke", str(lease))
    assert rc == 0, (rc, out, err)
    assert c[1].get("ctl/a")[0] == 404
    rc, out, err = ctl("lease", "keep-alive", str(lease))
    assert rc == 1 and "no such lease" in err, (rc, out, err)
    rc, out, err = ctl("lease", "grant", "0")
    assert rc == 2, (rc, out, err)
    rc, out, err = ctl("lease", "grant", "2592001")
    assert rc == 1, (rc, out, err)
    rc, out, err = ctl("lease", "revoke", h["X-Kvfs-Lease"])
    assert rc == 0 and c[3].get("ctl/b")[0] == 404, (rc, out, err)
    print("ok   - kvfsctl lease grant, put --lease and --ttl, lease ls, "
          "keep-alive --once, get, revoke; a gone lease and bad TTLs fail")


def main():
    binary = kvfs_binary()
    with TempDir() as tmp:
        os.mkdir(os.path.join(tmp, "c"))
        with Cluster(binary, os.path.join(tmp, "c"), n=3, mounts=True) as c:
            c.start()
            leader_of(c)
            test_revoke_and_errors(c)
            if len(sys.argv) > 2:
                test_kvfsctl(c, sys.argv[2])
            test_expiry(c)
            test_last_moment_keepalives(c)
            test_ttl_sugar(c)
            test_mount(c)
            test_failover(c, tmp)
            test_failover_silent_client(c)
            wait_for(lambda: all(n.status()["leased_keys"] == 0 and
                                 n.status()["applied_index"] > 0
                                 for n in c.nodes.values()), 30,
                     "no key on a lease on any member")


if __name__ == "__main__":
    main()
