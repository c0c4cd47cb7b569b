"""A leader whose disk fills (issue 20): the cluster keeps taking writes
through the other two, nothing acknowledged is lost, and the full member
says so and rejoins once space returns.

Node 1's data directory is a small tmpfs mounted by the test (root is
needed; the test skips with its reason where mounting fails for lack of
privilege); leadership is moved to node 1, then four clients write through
nodes 2 and 3 while a filler file takes the tmpfs's space. Within a few
election timeouts node 1 must have handed leadership over, /status of node
1 must show an "error" (disk_full, since when) and it must not stand for
election; writes then go on through the other two without a failure. The
filler is removed: node 1 clears the error, stays a follower, catches up,
and every member ends with the same state hash; every acknowledged write
reads back on every member; `kvfsctl health` asked of node 1 says why it
is not healthy meanwhile. Usage: test_cluster_disk_full.py KVFS KVFSCTL."""
import os
import subprocess
import sys
import time

from harness import Cluster, TempDir, WriteLoad, kvfs_binary, wait_for

SKIP = 77


def main():
    binary = kvfs_binary()
    with TempDir() as tmp:
        small = os.path.join(tmp, "node1")
        os.mkdir(small)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs",
                            small], capture_output=True, text=True)
        if r.returncode != 0:
            if os.geteuid() != 0:
                print("SKIP: mounting a tmpfs needs root: " + r.stderr.strip())
                sys.exit(SKIP)
            raise AssertionError("mount tmpfs failed: " + r.stderr)
        try:
            run(binary, sys.argv[2], tmp, small)
        finally:
            subprocess.run(["umount", "-l", small])


def run(binary, kvfsctl, tmp, small):
    extra = ["--segment-size=262144", "--snapshot-every=1000000"]
    with Cluster(binary, tmp, n=3, mounts=False, extra=extra) as c:
        c.start()
        leader = c.leader()
        h = {"X-Kvfs-Token": open(c.token_file).read().strip()}
        s, _, body = leader.request("POST", "/cluster/leader?id=1", headers=h)
        assert s == 200, (s, body)
        wait_for(lambda: (c.agreed_leader() or c[2]).id == 1, 10,
                 "node 1 to lead")
        term = c[1].status()["term"]
        load = WriteLoad(lambda: [c[2], c[3]], threads=4,
                         prefix="full").start()
        wait_for(lambda: load.count() > 50, 20, "the load to get going")

        filler = os.path.join(small, "filler")
        with open(filler, "wb") as f:  # leave ~600 KiB: no room for a segment
            st = os.statvfs(small)
            f.write(b"\0" * max(0, st.f_bavail * st.f_frsize - (600 << 10)))
        t_full = time.monotonic()
        print("ok   - node 1 leads in term %d; its disk filled (%d writes so far)"
              % (term, load.count()))

        def handed_over():
            l = c.agreed_leader()
            return l is not None and l.id != 1 and l
        new = wait_for(handed_over, 10, "a leader other than node 1")
        took = time.monotonic() - t_full
        st1 = c[1].status()
        err = st1.get("error")
        assert isinstance(err, dict) and err["code"] == "disk_full", st1
        assert err["since"] and err["for_ms"] >= 0 and "full" in err["what"], err
        assert st1["role"] != "leader", st1
        early = len(load.failures)
        # a write the full leader refused before it began to hand over
        # is a clear 507, never anything else
        assert all(f[2] == 507 for f in load.failures), load.failures[:5]
        print("ok   - node %d leads %.1f s after the disk filled; node 1's "
              "/status error: %s; %d write(s) refused in the hand-over"
              % (new.id, took, err, early))
        assert took < 5, "the hand-over took %.1f s" % took

        before = load.count()
        t0 = time.monotonic()
        while time.monotonic() - t0 < 3:
            assert c[1].status()["role"] != "leader", "node 1 leads again"
            time.sleep(0.2)
        assert load.count() > before + 30, (before, load.count())
        assert len(load.failures) == early, load.failures[early:early + 5]
        assert not load.unknown, load.unknown[:5]
        with open(c[1].log_path, "rb") as f:
            log = f.read().decode(errors="replace")
        assert "cannot write the log: the disk is full" in log, log[-3000:]
        r = subprocess.run([kvfsctl, "--node=127.0.0.1:%d" % c[1].port,
                            "health"], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 1 and "NOT healthy" in r.stdout, r
        assert "the disk is full since 20" in r.stdout, r.stdout
        print("ok   - %d writes through nodes 2 and 3 in 3 s, none failed; "
              "node 1 stays out of elections"
              % (load.count() - before))

        os.unlink(filler)
        wait_for(lambda: "error" not in c[1].status(), 15,
                 "node 1 to clear its error")
        before = load.count()
        wait_for(lambda: load.count() > before + 30, 20, "more writes")
        load.stop()
        assert len(load.failures) == early, load.failures[early:early + 5]
        assert not load.unknown, load.unknown[:5]
        c.wait_converged(30)
        st = c.statuses(timeout=5)
        assert st[1]["role"] == "follower", st[1]
        hashes = {s["state_hash"] for s in st.values()}
        assert len(hashes) == 1, st
        with open(c[1].log_path, "rb") as f:
            log = f.read().decode(errors="replace")
        assert "the log can be written again" in log, log[-3000:]
        checked = 0
        for n in c.nodes.values():
            checked = load.check(n)
        print("ok   - space back: node 1 cleared its error, follows and caught "
              "up (state hash %s everywhere); all %d acknowledged writes read "
              "back on every member" % (hashes.pop(), checked))


if __name__ == "__main__":
    main()
