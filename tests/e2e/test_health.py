"""GET /health and GET /readyz, as a service manager or a load balancer
uses them: 200 or 503, each with a JSON body that says why.

- A 3-node cluster: every member healthy and ready; with two members
  stopped, the last one is still healthy (it can write its disk) but not
  ready (no quorum: 503 with a reason, within its write timeout); ready
  again once a member is back.
- A node whose data directory is a small tmpfs: healthy; once the disk is
  full and a write failed, /health is 503 naming the full disk or the
  failed write, and 200 again once space is freed and a write went
  through.
- With --auth, both need a token of any role, unless --status-public.
"""
import hashlib
import json
import os
import subprocess
import sys
import time

from harness import Cluster, Node, TempDir, kvfs_binary, wait_for

SKIP = 77


def get(node, path, headers=None):
    s, _, body = node.request("GET", path, headers=headers, timeout=15)
    return s, (json.loads(body) if body.startswith(b"{") else body)


def cluster_part(binary, tmp):
    os.mkdir(os.path.join(tmp, "c"))
    with Cluster(binary, os.path.join(tmp, "c"), n=3, mounts=False,
                 extra=["--write-timeout=1500"]) as c:
        c.start()
        c.leader()
        for i in (1, 2, 3):
            wait_for(lambda: get(c[i], "/readyz")[0] == 200, 20,
                     "node %d ready" % i)
            s, b = get(c[i], "/health")
            assert s == 200 and b["ok"] is True, (i, s, b)
            s, b = get(c[i], "/readyz")
            assert s == 200 and b["ok"] is True and b["leader"] > 0, (i, s, b)
        print("ok   - every member of a healthy cluster: /health and /readyz 200")
        c[2].stop()
        c[3].stop()
        # the survivor may still believe in a leader for a moment: then the
        # read barrier fails within --write-timeout
        t0 = time.monotonic()
        s, rb = get(c[1], "/readyz")
        assert s == 503 and rb["ok"] is False and rb.get("reason"), (s, rb)
        assert time.monotonic() - t0 < 10, "readyz took too long"
        s, b = get(c[1], "/health")
        assert s == 200 and b["ok"] is True, (s, b)
        print("ok   - without a quorum: /readyz 503 (%s), /health 200" % rb["reason"])
        c[2].start()
        wait_for(lambda: get(c[1], "/readyz")[0] == 200, 30, "node 1 ready again")
        print("ok   - a quorum back: /readyz 200 again")


def disk_part(binary, tmp):
    mnt = os.path.join(tmp, "small")
    os.mkdir(mnt)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", mnt],
                       capture_output=True, text=True)
    if r.returncode != 0:
        if os.geteuid() != 0:
            print("SKIP: mounting a tmpfs needs root: " + r.stderr.strip())
            sys.exit(SKIP)
        raise AssertionError("mount tmpfs failed: " + r.stderr)
    node = None
    try:
        node = Node(binary, os.path.join(mnt, "data"),
                    extra=["--segment-size=262144", "--snapshot-every=1000000"])
        node.log_path = os.path.join(tmp, "node.log")
        node.start()
        s, b = get(node, "/health")
        assert s == 200 and b["ok"] and b["disk_available_bytes"] > 0, (s, b)
        filler = os.path.join(mnt, "filler")
        with open(filler, "wb") as f:
            st = os.statvfs(mnt)
            f.write(b"\0" * max(0, st.f_bavail * st.f_frsize - (1 << 20)))
        for i in range(2000):
            st, _, body = node.request("PUT", "/kv/h%05d" % i, body=b"x" * 10000)
            if st == 507:
                break
            assert st in (200, 201), (st, body)
        else:
            raise AssertionError("the disk never filled")
        s, b = get(node, "/health")
        assert s == 503 and b["ok"] is False, (s, b)
        assert "cannot be written" in b["reason"] or "full" in b["reason"], b
        print("ok   - a full disk: /health 503 (%s)" % b["reason"])
        os.unlink(filler)

        def wrote():
            st, _, _ = node.request("PUT", "/kv/after", body=b"v")
            return st in (200, 201)
        wait_for(wrote, 30, "a write after space came back")
        wait_for(lambda: get(node, "/health")[0] == 200, 10, "/health 200 again")
        print("ok   - space back and a write through: /health 200")
    finally:
        if node:
            node.stop()
        subprocess.run(["umount", "-l", mnt])


def auth_part(binary, tmp):
    token = "health-test-token-0123456789abcdef"
    auth = os.path.join(tmp, "auth")
    with open(auth, "w") as f:
        f.write("reader read sha256:%s\n" % hashlib.sha256(token.encode()).hexdigest())
    for public in (False, True):
        extra = ["--auth=" + auth] + (["--status-public"] if public else [])
        node = Node(binary, os.path.join(tmp, "a%d" % public), extra=extra)
        node.log_path = os.path.join(tmp, "a%d.log" % public)
        # Node.start polls /status without a token: not with --auth
        def up(node=node):
            assert node.proc.poll() is None, node.read_log()
            try:
                return node.request("GET", "/status", timeout=1)[0] in (200, 401)
            except OSError:
                return False
        node.ready = up
        node.start()
        try:
            wait_for(lambda: get(node, "/readyz",
                                 {"Authorization": "Bearer " + token})[0] == 200,
                     20, "ready with a token")
            for path in ("/health", "/readyz"):
                s, _ = get(node, path)
                want = 200 if public else 401
                assert s == want, (path, public, s)
                s, _ = get(node, path, {"Authorization": "Bearer " + token})
                assert s == 200, (path, s)
        finally:
            node.stop()
    print("ok   - with --auth: a token needed unless --status-public")


def main():
    binary = kvfs_binary()
    with TempDir() as tmp:
        cluster_part(binary, tmp)
        disk_part(binary, tmp)
        auth_part(binary, tmp)


if __name__ == "__main__":
    main()
