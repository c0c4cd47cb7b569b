"""A rolling restart of a 3-node cluster under a steady write load costs no
failed write (issue 24).

Six clients write fresh keys one after another through every member that
is up (as behind a load balancer that drains a member before its
restart). The members are restarted one after another by SIGTERM, the two
followers first and the leader last; each comes back, catches up and is reached by the
leader again before the next goes. The leader hands leadership to a caught-up voter before it
stops (its log says so), so no election timeout passes without a leader.
Not one write may fail or be cut off; afterwards every acknowledged write
reads back on every member and the state hashes agree. Usage:
test_rolling_restart.py KVFS."""
import os
import time

from harness import Cluster, TempDir, WriteLoad, kvfs_binary, wait_for


def restart(c, load, node, what):
    load.drain(node.id)
    t0 = time.monotonic()
    before = load.count()
    node.stop()
    node.start()
    c.wait_caught_up(node, timeout=30)
    # as an operator waits for `kvfsctl health` on the leader: the leader
    # reaches it again (its stream may wait out a reconnect backoff)
    def reached():
        l = c.agreed_leader()
        if l is None or l.id == node.id:
            return l is not None
        p = [p for p in l.status()["peers"] if p["id"] == node.id]
        return p and p[0].get("reachable") and p[0].get("active")
    wait_for(reached, 20, "the leader to reach node %d again" % node.id)
    load.undrain(node.id)
    wait_for(lambda: load.count() > before + 30, 30,
             "writes to go on after restarting node %d" % node.id)
    print("ok   - %s node %d restarted in %.1f s; %d writes so far, %d failed"
          % (what, node.id, time.monotonic() - t0, load.count(),
             len(load.failures) + len(load.unknown)))
    assert not load.failures, load.failures[:5]
    assert not load.unknown, load.unknown[:5]


def main():
    binary = kvfs_binary()
    with TempDir() as tmp, Cluster(binary, tmp, n=3, mounts=False) as c:
        c.start()
        leader = c.leader()
        load = WriteLoad(lambda: [n for n in c.nodes.values()
                                  if n.running()], threads=6,
                         prefix="roll").start()
        wait_for(lambda: load.count() > 100, 20, "the load to get going")
        for n in [n for n in c.nodes.values() if n.id != leader.id]:
            restart(c, load, n, "follower")
        term = leader.status()["term"]
        log_mark = os.path.getsize(leader.log_path)
        restart(c, load, leader, "leader")
        with open(leader.log_path, "rb") as f:
            f.seek(log_mark)
            log = f.read().decode(errors="replace")
        assert "stopping: handing leadership over first" in log, log[-3000:]
        assert "leadership handed to node" in log, log[-3000:]
        new = c.leader()
        assert new.id != leader.id or new.status()["term"] > term
        load.stop()
        assert not load.failures, load.failures[:5]
        assert not load.unknown, load.unknown[:5]
        lat = sorted(load.latencies)
        checked = 0
        for n in c.nodes.values():
            checked = load.check(n)
        c.wait_converged(30)
        hashes = {s["state_hash"] for s in c.statuses(timeout=5).values()}
        assert len(hashes) == 1, c.statuses()
        print("ok   - %d writes, none failed, through 3 restarts; all read "
              "back on every member; state hashes agree; write latency "
              "p50 %.0f ms, p99 %.0f ms, max %.0f ms"
              % (checked, 1000 * lat[len(lat) // 2],
                 1000 * lat[int(len(lat) * 0.99)], 1000 * lat[-1]))


if __name__ == "__main__":
    main()
