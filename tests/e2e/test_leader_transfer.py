"""Leadership transfer (POST /cluster/leader, kvfsctl transfer-leader)
against a real 3-node cluster under a steady write load.

- To a named member, to each member in turn, and to "the most caught-up
  voter" (no id): the named member leads (every member agrees) within a
  second, and not one write of the load fails meanwhile (writes wait for
  the new leader rather than fail).
- kvfsctl transfer-leader ID pointed at a follower follows the 421 to the
  leader; kvfsctl transfer-leader with no ID moves it to another member.
- Refusals, each with its code: an unknown id (404 unknown_member), a
  learner (409 not_voter), a bad id (400), no cluster token (401), a
  follower asked (421 naming the leader), no quorum (503 no_leader); and
  kvfsctl says why and exits 1.
- With --auth: a read token is refused (403), an admin token may.
Afterwards every acknowledged write reads back on every member, and the
state hashes agree. Usage: test_leader_transfer.py KVFS KVFSCTL."""
import hashlib
import json
import os
import subprocess
import sys
import time

from harness import Cluster, TempDir, WriteLoad, free_port, kvfs_binary, wait_for


def ctl(kvfsctl, node, *args, timeout_ms=10000):
    argv = [kvfsctl, "--node=127.0.0.1:%d" % node.port,
            "--timeout=%d" % timeout_ms] + list(args)
    r = subprocess.run(argv, capture_output=True, timeout=60)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def transfer(node, target=None, headers=None):
    path = "/cluster/leader" + ("?id=%d" % target if target else "")
    s, _, body = node.request("POST", path, headers=headers, timeout=15)
    return s, json.loads(body) if body.startswith(b"{") else body


def agreed(c, want):
    def pred():
        l = c.agreed_leader()
        return l is not None and l.id == want
    wait_for(pred, 5, "every member to agree that node %d leads" % want)


def state_hashes_agree(c):
    c.wait_converged(30)
    hashes = {s["state_hash"] for s in c.statuses(timeout=5).values()}
    return len(hashes) == 1


def main_part(binary, kvfsctl, tmp):
    with Cluster(binary, tmp, n=3, mounts=False) as c:
        c.start()
        leader = c.leader()
        tok = open(c.token_file).read().strip()
        h = {"X-Kvfs-Token": tok}
        load = WriteLoad(lambda: list(c.nodes.values()), threads=4,
                         prefix="xfer").start()
        wait_for(lambda: load.count() > 50, 20, "the load to get going")

        # to each member in turn, named
        moves = 0
        for target in (2, 3, 1, 3):
            leader = c.leader()
            before = load.count()
            t0 = time.monotonic()
            s, b = transfer(leader, target, h)
            took = time.monotonic() - t0
            assert s == 200, (target, s, b)
            assert b["leader"] == target and b["previous"] == leader.id, b
            agreed(c, target)
            assert took < 2, "transfer to %d took %.2fs" % (target, took)
            moves += b["previous"] != target
            wait_for(lambda: load.count() > before + 20, 20,
                     "writes to go on after the transfer")
        print("ok   - %d named transfers under load, each under 2 s; "
              "%d writes so far, none failed" % (moves, load.count()))

        # to the most caught-up voter
        leader = c.leader()
        s, b = transfer(leader, None, h)
        assert s == 200 and b["leader"] != leader.id, (s, b)
        agreed(c, b["leader"])
        print("ok   - no id: node %d took over from node %d" %
              (b["leader"], leader.id))

        # kvfsctl, through a follower: it follows the 421
        leader = c.leader()
        follower = next(n for n in c.nodes.values() if n.id != leader.id)
        rc, out, err = ctl(kvfsctl, follower, "--cluster-token=" +
                           c.token_file, "transfer-leader", str(follower.id))
        assert rc == 0, (rc, out, err)
        assert ("node %d leads now" % follower.id) in out, out
        agreed(c, follower.id)
        rc, out, err = ctl(kvfsctl, follower, "--cluster-token=" +
                           c.token_file, "transfer-leader")
        assert rc == 0 and "leads now" in out, (rc, out, err)
        new = int(out.split()[1])
        assert new != follower.id, out
        agreed(c, new)
        print("ok   - kvfsctl transfer-leader ID through a follower, and "
              "with no ID: %s" % out.strip())

        # refusals
        leader = c.leader()
        follower = next(n for n in c.nodes.values() if n.id != leader.id)
        s, b = transfer(leader, 9, h)
        assert s == 404 and b["code"] == "unknown_member", (s, b)
        s, _, body = leader.request("POST", "/cluster/leader?id=x", headers=h)
        assert s == 400, (s, body)
        s, _, body = leader.request("POST", "/cluster/leader",
                                    body=b'{"id":"2"}', headers=h)
        assert s == 400, (s, body)
        s, _, body = leader.request("POST", "/cluster/leader?id=2&x=1",
                                    headers=h)
        assert s == 400 and b"x" in body, (s, body)
        s, b = transfer(leader, 2)  # no token
        assert s == 401, (s, b)
        s, b = transfer(follower, leader.id, h)
        assert s == 421 and b["code"] == "not_leader", (s, b)
        assert b["leader"] == leader.id, b
        ghost = "127.0.0.1:%d" % free_port()
        s, _, body = leader.request(
            "POST", "/cluster/members",
            json.dumps({"id": 4, "address": ghost}).encode(), headers=h)
        assert s == 201, (s, body)
        s, b = transfer(leader, 4, h)
        assert s == 409 and b["code"] == "not_voter", (s, b)
        assert "learner" in b["error"], b
        rc, out, err = ctl(kvfsctl, leader, "--cluster-token=" + c.token_file,
                           "transfer-leader", "4")
        assert rc == 1 and "learner" in err, (rc, out, err)
        rc, out, err = ctl(kvfsctl, leader, "--cluster-token=" + c.token_file,
                           "transfer-leader", "9")
        assert rc == 1 and "not a member" in err, (rc, out, err)
        rc, out, err = ctl(kvfsctl, leader, "transfer-leader", "2")
        assert rc == 1 and "cluster token" in err, (rc, out, err)
        rc, out, err = ctl(kvfsctl, leader, "transfer-leader", "0")
        assert rc == 2, (rc, out, err)
        s, _, body = leader.request("DELETE", "/cluster/members/4", headers=h)
        assert s == 200, (s, body)
        print("ok   - refused: unknown id 404, bad id 400, no token 401, "
              "follower 421, learner 409; kvfsctl exits 1 saying why")

        load.stop()
        assert not load.failures, load.failures[:5]
        assert not load.unknown, load.unknown[:5]
        checked = 0
        for n in c.nodes.values():
            checked = load.check(n)
        assert state_hashes_agree(c), c.statuses()
        print("ok   - %d writes under 6 transfers, none failed; every one "
              "reads back on every member; state hashes agree" % checked)

        # no quorum: two members stopped, the survivor leads no more
        leader = c.leader()
        others = [n for n in c.nodes.values() if n.id != leader.id]
        for n in others:
            n.stop()
        wait_for(lambda: leader.status()["role"] != "leader", 10,
                 "the lone member to step down")
        s, b = transfer(leader, others[0].id, h)
        assert s == 503 and b["code"] in ("no_leader", "no_quorum"), (s, b)
        rc, out, err = ctl(kvfsctl, leader, "--cluster-token=" + c.token_file,
                           "transfer-leader", timeout_ms=1500)
        assert rc == 1 and ("no leader" in err or "quorum" in err), (rc, err)
        print("ok   - no quorum: 503 %s (%s); kvfsctl: %s" %
              (b["code"], b["error"], err.strip()))


def auth_part(binary, tmp):
    toks = {"reader": ("read", "reader-token-0123456789abcdef0123"),
            "boss": ("admin", "admin-token-0123456789abcdef01234")}
    auth = os.path.join(tmp, "auth")
    with open(auth, "w") as f:
        for name, (role, t) in toks.items():
            f.write("%s %s sha256:%s\n" %
                    (name, role, hashlib.sha256(t.encode()).hexdigest()))
    root = os.path.join(tmp, "auth-cluster")
    os.mkdir(root)
    with Cluster(binary, root, n=3, mounts=False,
                 extra=["--auth=" + auth, "--status-public"]) as c:
        c.start()
        leader = c.leader()
        target = next(n.id for n in c.nodes.values() if n.id != leader.id)
        bearer = lambda name: {"Authorization": "Bearer " + toks[name][1]}
        s, b = transfer(leader, target, bearer("reader"))
        assert s == 403, (s, b)
        s, b = transfer(leader, target, bearer("boss"))
        assert s == 200 and b["leader"] == target, (s, b)
        print("ok   - with --auth: a read token 403, an admin token 200")


def main():
    binary = kvfs_binary()
    kvfsctl = sys.argv[2]
    with TempDir() as tmp:
        os.mkdir(os.path.join(tmp, "c"))
        main_part(binary, kvfsctl, os.path.join(tmp, "c"))
        auth_part(binary, tmp)


if __name__ == "__main__":
    main()
