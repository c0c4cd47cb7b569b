"""kvfsctl and the /cluster/members endpoints against real kvfs nodes.

One single-member node: status, members (table and --json), put/get
(a binary value through stdin), add of a learner that never comes up (a
one-voter cluster commits it alone), add again (409), remove, remove again
(404), usage errors (exit 2) and an unreachable node (exit 1). Then a
3-member cluster without mounts: a follower answers a membership change 421
naming the leader, and kvfsctl pointed at the follower follows it for add
and remove, also when the leader removes itself; `kvfsctl health` says
healthy, then names a stopped member, then healthy again; /status?pretty
is indented. Usage: test_kvfsctl.py KVFS KVFSCTL."""
import json
import os
import subprocess
import sys

from harness import Cluster, Node, TempDir, free_port, kvfs_binary, wait_for


def ctl(kvfsctl, node, *args, stdin=None, timeout_ms=10000):
    """Run kvfsctl; (exit code, stdout bytes, stderr text)."""
    argv = [kvfsctl, "--node=" + node, "--timeout=%d" % timeout_ms] + list(args)
    p = subprocess.run(argv, input=stdin, capture_output=True, timeout=60)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


def ok(kvfsctl, node, *args, stdin=None):
    rc, out, err = ctl(kvfsctl, node, *args, stdin=stdin)
    assert rc == 0, "kvfsctl %s: exit %d: %s" % (" ".join(args), rc, err)
    return out


def members(kvfsctl, node):
    """{id: role} from kvfsctl --json members."""
    doc = json.loads(ok(kvfsctl, node, "--json", "members"))
    return {m["id"]: m["role"] for m in doc["members"]}, doc


def single_node(binary, kvfsctl):
    with TempDir() as tmp:
        node = Node(binary, os.path.join(tmp, "data")).start()
        addr = "127.0.0.1:%d" % node.port
        try:
            # A lone member elects itself after an election timeout.
            st = wait_for(
                lambda: (lambda s: s if s["role"] == "leader" else None)(
                    json.loads(ok(kvfsctl, addr, "status"))),
                20, "the single member to lead")
            assert st["id"] == 1, st

            table = ok(kvfsctl, addr, "members").decode()
            assert "ID" in table and addr in table and "voter" in table \
                and "leader" in table, table
            have, doc = members(kvfsctl, addr)
            assert have == {1: "voter"} and doc["leader"] == 1, doc

            ok(kvfsctl, addr, "put", "dir/greeting", "hello world")
            assert ok(kvfsctl, addr, "get", "dir/greeting") == b"hello world"
            blob = bytes(range(256)) * 3 + b"\x00\n\xff"
            ok(kvfsctl, addr, "put", "bin ary/%key", "-", stdin=blob)
            assert ok(kvfsctl, addr, "get", "bin ary/%key") == blob
            s, _, body = node.request("GET", "/kv/bin%20ary/%25key")
            assert s == 200 and body == blob, s

            rc, _, err = ctl(kvfsctl, addr, "get", "no/such/key")
            assert rc == 1 and "404" in err, (rc, err)

            # ls, ls -r, del, del -r
            for k in ("t/a", "t/b/c", "t/b/d/e"):
                ok(kvfsctl, addr, "put", k, "v")
            assert ok(kvfsctl, addr, "ls", "t") == b"a\nb/\n"
            assert ok(kvfsctl, addr, "ls", "-r", "t") == b"a\nb/c\nb/d/e\n"
            assert b"dir/\n" in ok(kvfsctl, addr, "ls")
            ok(kvfsctl, addr, "del", "t/a")
            rc, _, err = ctl(kvfsctl, addr, "del", "t/b")
            assert rc == 1 and "409" in err, (rc, err)
            ok(kvfsctl, addr, "del", "-r", "t/b")
            rc, _, err = ctl(kvfsctl, addr, "ls", "t")
            assert rc == 1 and "404" in err, (rc, err)
            print("ok   - kvfsctl ls, ls -r, del, del -r")

            # A learner that never comes up: one voter commits it alone.
            # Membership changes need the cluster's token: a member
            # alone keeps it in its data directory.
            ghost = "127.0.0.1:%d" % free_port()
            rc, _, err = ctl(kvfsctl, addr, "add", "2", ghost)
            assert rc == 1 and "401" in err, (rc, err)
            tokfile = os.path.join(tmp, "data", "cluster-token")
            with open(tokfile) as f:
                node.headers = {"X-Kvfs-Token": f.read().strip()}
            tok = "--cluster-token=" + tokfile
            out = ok(kvfsctl, addr, tok, "--json", "add", "2", ghost)
            answer = json.loads(out)
            assert answer["id"] == 2 and answer["address"] == ghost, answer
            assert answer["cluster_id"] == st["cluster_id"], answer
            have, doc = members(kvfsctl, addr)
            assert have == {1: "voter", 2: "learner"}, doc
            rc, _, err = ctl(kvfsctl, addr, tok, "add", "2", ghost)
            assert rc == 1 and "409" in err, (rc, err)
            # The endpoint itself: 409 names the member's address.
            s, _, body = node.request(
                "POST", "/cluster/members",
                json.dumps({"id": 2, "address": ghost}).encode(),
                {"Content-Type": "application/json"})
            assert s == 409 and json.loads(body)["address"] == ghost, (s, body)
            ok(kvfsctl, addr, tok, "remove", "2")
            have, _ = members(kvfsctl, addr)
            assert have == {1: "voter"}, have
            rc, _, err = ctl(kvfsctl, addr, tok, "remove", "2")
            assert rc == 1 and "404" in err, (rc, err)

            # Strict bodies.
            for bad in (b"{}", b'{"id":0,"address":"h:1"}',
                        b'{"id":3,"address":"no port"}',
                        b'{"id":3,"address":"h:1","x":1}', b"junk"):
                s, _, body = node.request("POST", "/cluster/members", bad)
                assert s == 400, (bad, s, body)
                assert json.loads(body)["code"] == "bad_request", body
            s, _, _ = node.request("DELETE", "/cluster/members/abc")
            assert s == 400, s

            # Usage errors are 2, failures 1.
            for args in ((), ("add", "x", ghost), ("add", "3", "nohost"),
                         ("remove",), ("frobnicate",), ("put", "k")):
                rc, _, _ = ctl(kvfsctl, addr, *args)
                assert rc == 2, (args, rc)
            rc, _, _ = ctl(kvfsctl, "not-an-address", "status")
            assert rc == 2, rc
            # A port out of range is a usage error that says why.
            rc, _, err = ctl(kvfsctl, "127.0.0.1:99999", "status")
            assert rc == 2 and "at most 65535" in err, (rc, err)
            dead = "127.0.0.1:%d" % free_port()
            rc, _, err = ctl(kvfsctl, dead, "status", timeout_ms=500)
            assert rc == 1 and dead in err, (rc, err)
            rc, _, err = ctl(kvfsctl, dead, tok, "add", "3", ghost,
                             timeout_ms=500)
            assert rc == 1 and dead in err, (rc, err)
        finally:
            node.stop()


def cluster(binary, kvfsctl):
    with TempDir() as tmp, Cluster(binary, tmp, n=3, mounts=False) as c:
        c.start()
        leader = c.leader()
        follower = next(n for n in c.nodes.values() if n.id != leader.id)
        faddr = "127.0.0.1:%d" % follower.port
        laddr = "127.0.0.1:%d" % leader.port
        ghost = "127.0.0.1:%d" % free_port()
        tok = "--cluster-token=" + c.token_file
        with open(c.token_file) as f:
            follower.headers = {"X-Kvfs-Token": f.read().strip()}

        # health: a table and a verdict, exit 0 healthy, 1 not
        def healthy():
            rc, out, err = ctl(kvfsctl, laddr, "health")
            return out.decode() if rc == 0 else None
        out = wait_for(healthy, 20, "kvfsctl health to say healthy")
        assert out.strip().endswith("healthy") and "PEER" in out, out
        assert "leader" in out.splitlines()[0], out
        # /status?pretty is indented JSON
        s, _, body = leader.request("GET", "/status?pretty")
        assert s == 200 and body.count(b"\n") > 10, body[:200]
        assert json.loads(body)["id"] == leader.id

        # The follower names the leader.
        s, _, body = follower.request(
            "POST", "/cluster/members",
            json.dumps({"id": 4, "address": ghost}).encode())
        answer = json.loads(body)
        assert s == 421, (s, body)
        assert answer["code"] == "not_leader", answer
        assert answer["leader"] == leader.id, answer
        assert answer["leader_address"] == laddr, answer

        # kvfsctl follows it, for add and for remove.
        ok(kvfsctl, faddr, tok, "add", "4", ghost)
        have, _ = members(kvfsctl, laddr)
        assert have.get(4) == "learner", have
        wait_for(lambda: members(kvfsctl, faddr)[0].get(4) == "learner", 20,
                 "the follower to learn of member 4")
        ok(kvfsctl, faddr, tok, "remove", "4")
        have, _ = members(kvfsctl, laddr)
        assert 4 not in have and len(have) == 3, have

        # A member down: the leader says so, and why.
        third = next(n for n in c.nodes.values()
                     if n.id not in (leader.id, follower.id))
        third.stop()
        def unhealthy():
            rc, out, _ = ctl(kvfsctl, laddr, "health")
            return out.decode() if rc == 1 else None
        out = wait_for(unhealthy, 20, "kvfsctl health to see the stopped member")
        assert "NOT healthy" in out and ("peer %d unreachable" % third.id) in out, out
        third.start()
        wait_for(healthy, 30, "healthy again once the member is back")

        # The leader removes itself (asked through a follower): it steps
        # down once the change commits and the other two elect a leader.
        ok(kvfsctl, faddr, tok, "remove", str(leader.id))
        rest = [n for n in c.nodes.values() if n.id != leader.id]
        def new_leader():
            have, doc = members(kvfsctl, faddr)
            return (leader.id not in have and len(have) == 2 and
                    doc["leader"] in [n.id for n in rest])
        wait_for(new_leader, 20, "a leader among the two left")
        ok(kvfsctl, faddr, "put", "after-removal", "yes")
        other = "127.0.0.1:%d" % next(n.port for n in rest
                                      if n.id != follower.id)
        assert ok(kvfsctl, other, "get", "after-removal") == b"yes"


def main():
    binary = kvfs_binary()
    kvfsctl = os.path.abspath(sys.argv[2]) if len(sys.argv) > 2 else \
        os.environ.get("KVFSCTL")
    if not kvfsctl or not os.access(kvfsctl, os.X_OK):
        sys.exit("usage: test_kvfsctl.py KVFS KVFSCTL")
    single_node(binary, kvfsctl)
    print("single node: ok")
    cluster(binary, kvfsctl)
    print("cluster: ok")


if __name__ == "__main__":
    main()
