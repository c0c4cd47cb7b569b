"""The Raft core's in-memory log is a bounded trail (raft/node/trail.c):
followers that miss more than the trail still catch up, and a restart
of a node whose db is older than the trail keeps only the trail.

Three nodes without mounts, --snapshot-every far away, so that dbs come
only when asked for (GET /snapshot) or when a follower needs one:
1. A follower is stopped while more than the trail's worth of entries
   commit and no db is written: the leader's memory starts after the
   follower's last entry and its db (none) is older still, so it must
   write a fresh db for the follower (its log says so) and send it; the
   follower installs it and all three agree on the state hash.
2. A follower is frozen (SIGSTOP, a partition: the leader's sends pile
   up) while more than the trail commits, a db is written in between
   (GET /snapshot), and a little more commits: the db in place is at or
   after the leader's memory, so it is sent as it is; the follower
   thaws, installs it and converges.
3. A node whose db is older than its trail (more than the trail written
   after the db of step 2) restarts: after its replay its memory starts
   within the trail, not at its db, and the cluster converges again.
Every acknowledged write is read back on every node at the end.
Planted bugs this catches: tests/README.md ("The bounded log trail")."""
import http.client
import json
import os
import signal
import sys
import threading
import time

from harness import Cluster, TempDir, kvfs_binary, wait_for

SKIP = 77
# raft/node/node_int.h: NODE_TRAIL_ENTRIES applied entries, compacted a
# step of NODE_TRAIL_STEP at a time
TRAIL = 10000
STEP = 1024
# more than the trail, so that a follower stopped now needs a snapshot
MISS = TRAIL + 3 * STEP
CLIENTS = 16
T0 = time.monotonic()


def say(text):
    print("[%6.2fs] %s" % (time.monotonic() - T0, text), flush=True)


def put_many(node, prefix, count, acked):
    """count PUTs of fresh keys through node on CLIENTS keep-alive
    connections; every acknowledged one goes into acked."""
    errors = []
    mu = threading.Lock()

    def run(t):
        c = http.client.HTTPConnection("127.0.0.1", node.port, timeout=30)
        try:
            for i in range(t, count, CLIENTS):
                key = "%s/%02d/%06d" % (prefix, t, i)
                value = ("v-%s-%d" % (prefix, i)).encode()
                c.request("PUT", "/kv/" + key, body=value)
                r = c.getresponse()
                r.read()
                if r.status not in (200, 201):
                    raise AssertionError("PUT %s on node %d: %d" %
                                         (key, node.id, r.status))
                with mu:
                    acked[key] = value
        except Exception as e:  # reported by the caller
            errors.append(e)
        finally:
            c.close()

    threads = [threading.Thread(target=run, args=(t,)) for t in range(CLIENTS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, "writes failed: %r" % errors[:3]


def converge(c, what):
    """Wait until every running member applied the same index and reports
    the same state hash there; returns that index."""
    def same():
        idx = c.converged()
        if idx is None:
            return None
        st = c.statuses()
        hashes = {s["state_hash"] for s in st.values()}
        applied = {s["applied_index"] for s in st.values()}
        if len(st) == len(c.running()) and len(hashes) == 1 and \
                applied == {idx}:
            return (idx, hashes.pop())
        return None
    try:
        idx, h = wait_for(same, 120, what)
    except AssertionError:
        raise AssertionError("%s: no agreement: %s" % (what, {
            i: (s["applied_index"], s["state_hash"])
            for i, s in c.statuses().items()}))
    say("%s: applied %d everywhere, state hash %s" % (what, idx, h))
    return idx


def log_has(node, text):
    with open(node.log_path, "rb") as f:
        return f.read().decode(errors="replace").count(text)


def check_trail_bounded(node, what):
    """The node's in-memory log holds at most the trail (plus the step it
    is compacted by) of applied entries."""
    s = node.status()
    held = s["applied_index"] - s["memory_first_index"] + 1
    say("%s: node %d keeps entries %d..%d in memory (%d applied, %d bytes), "
        "db at %d" % (what, node.id, s["memory_first_index"],
                      s["last_index"], held, s["memory_log_bytes"],
                      s["snapshot_index"]))
    assert held <= TRAIL + STEP, \
        "%s: node %d keeps %d applied entries in memory, more than %d" % (
            what, node.id, held, TRAIL + STEP)
    return s


def follower_of(c, leader):
    return next(n for n in c.nodes.values() if n.id != leader.id)


def get_db(node, token):
    """GET /snapshot: the node writes a db of what it applied."""
    s, h, body = node.request("GET", "/snapshot",
                              headers={"X-Kvfs-Token": token}, timeout=60)
    assert s == 200, "GET /snapshot: %d %r" % (s, body[:200])
    return int(h.get("X-Kvfs-Revision", "0"))


def main():
    binary = kvfs_binary()
    if not binary:
        return SKIP
    acked = {}
    with TempDir() as root, Cluster(binary, root, n=3, mounts=False,
                                    extra=["--snapshot-every=100000000"]) as c:
        with open(c.token_file) as f:
            token = f.read().strip()
        c.start()
        leader = c.leader()
        put_many(leader, "warm", 200, acked)
        converge(c, "warm-up")

        # 1. a follower down while more than the trail commits, no db
        f1 = follower_of(c, leader)
        f1_applied = f1.status()["applied_index"]
        f1.stop()
        say("node %d stopped at applied %d; %d writes through node %d" %
            (f1.id, f1_applied, MISS, leader.id))
        put_many(leader, "down", MISS, acked)
        s = check_trail_bounded(leader, "step 1, leader")
        assert s["memory_first_index"] > f1_applied + 1, \
            "the leader still holds what node %d needs: %r" % (f1.id, s)
        assert s["snapshot_index"] < s["memory_first_index"] - 1, \
            "a db was written meanwhile: %r" % s
        f1.start()
        converge(c, "step 1, node %d rejoined" % f1.id)
        assert log_has(leader, "node %d needs entries before" % f1.id), \
            "the leader did not write a db for node %d" % f1.id
        assert log_has(f1, "installed a snapshot"), \
            "node %d caught up without a snapshot" % f1.id
        for n in c.nodes.values():
            check_trail_bounded(n, "step 1, after")

        # 2. a follower partitioned (frozen) while more than the trail
        # commits, with a db in between
        leader = c.leader()
        f2 = next(n for n in c.nodes.values()
                  if n.id not in (leader.id, f1.id))
        f2_applied = f2.status()["applied_index"]
        installs = log_has(f2, "installed a snapshot")
        asked = log_has(leader, "needs entries before")
        f2.proc.send_signal(signal.SIGSTOP)
        try:
            say("node %d frozen at applied %d" % (f2.id, f2_applied))
            put_many(leader, "frozen", MISS, acked)
            db = get_db(leader, token)
            put_many(leader, "after-db", STEP, acked)
            s = check_trail_bounded(leader, "step 2, leader")
            assert s["memory_first_index"] > f2_applied + 1, s
            assert s["snapshot_index"] >= s["memory_first_index"] - 1, \
                "the db (%d) is older than the leader's memory: %r" % (db, s)
        finally:
            f2.proc.send_signal(signal.SIGCONT)
        converge(c, "step 2, node %d thawed" % f2.id)
        assert log_has(f2, "installed a snapshot") > installs, \
            "node %d caught up without a snapshot" % f2.id
        assert log_has(leader, "needs entries before") == asked, \
            "the leader wrote a db although the one in place was fresh"

        # 3. a node whose db is older than its trail restarts
        r = c.leader()
        db = r.status()["snapshot_index"]
        put_many(r, "restart", MISS, acked)
        s = r.status()
        assert s["snapshot_index"] == db and \
            s["applied_index"] - db > TRAIL + STEP, s
        r.stop()
        say("node %d stopped with its db at %d and %d entries after it" %
            (r.id, db, s["applied_index"] - db))
        r.start()
        converge(c, "step 3, node %d restarted" % r.id)
        s = check_trail_bounded(r, "step 3, restarted")
        assert s["memory_first_index"] > db + 1, s
        put_many(c.leader(), "end", 500, acked)
        converge(c, "the end")

        # every acknowledged write on every node
        for n in c.nodes.values():
            cn = http.client.HTTPConnection("127.0.0.1", n.port, timeout=30)
            for key, value in acked.items():
                cn.request("GET", "/kv/" + key + "?consistency=local")
                resp = cn.getresponse()
                body = resp.read()
                assert resp.status == 200 and body == value, \
                    "node %d: %s: %d %r" % (n.id, key, resp.status, body[:80])
            cn.close()
        say("%d acknowledged writes read back on all three nodes" % len(acked))
    return 0


if __name__ == "__main__":
    sys.exit(main())
