"""test_security.py - nobody gets in who does not belong (docs/security.md).

Real kvfs processes on 127.0.0.1, certificates made here (certs.py):
  tls      a 3-node cluster over TLS: writes on every node (forwarded to the
           leader), linearizable reads, a fourth node that joins with the
           token and gets a snapshot, kvfsctl over https; a node of another
           CA cannot join nor send a Raft message; plain HTTP to the TLS
           port, an expired certificate and a peer without a certificate
           are refused cleanly (a bounded time, a log line, the node
           lives); the cluster token is rotated with SIGHUP, without a
           stop; --tls-client-auth asks every client for a certificate.
  auth     every endpoint (client, cluster, peer) with no token, a wrong
           token and each role, the status code and error code of each;
           forged peer messages (no token, the old derived token, another
           cluster's id); --auth reloaded on SIGHUP, a bad file kept out,
           and in mount mode too (the mount stays).
  refusals what refuses to start, and says how: a cluster without a token,
           an old data directory with a derived token, a public address
           without protection.
Every answer, log line and /status seen is checked for the secrets: none
may hold one. Usage: test_security.py KVFS KVFSCTL [PART...]."""
import hashlib
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import certs  # noqa: E402
from harness import (Cluster, ClusterNode, Node, TempDir, client_context,  # noqa: E402
                     free_port, kvfs_binary, wait_for, write_token)
from harness import is_mounted as harness_mounted  # noqa: E402
from harness import unmount as harness_unmount  # noqa: E402

SEEN = []  # every answer's headers and body, and the logs, for leak checks


def step(msg):
    print("--", msg, flush=True)


def req(node, method, path, body=None, headers=None, timeout=10, ctx=None):
    """One request to node (its own TLS context unless ctx): (status, body
    bytes, the JSON body or None); the answer is kept for the leak check."""
    if ctx is not None or node.tls:
        c = http.client.HTTPSConnection("127.0.0.1", node.port, timeout=timeout,
                                        context=ctx or node.tls)
    else:
        c = http.client.HTTPConnection("127.0.0.1", node.port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        SEEN.append(repr(r.getheaders()).encode() + data)
        try:
            doc = json.loads(data)
        except ValueError:
            doc = None
        return r.status, data, doc
    finally:
        c.close()


def token_of(path):
    with open(path) as f:
        return f.read().split()[0]


def no_secret_anywhere(secrets, logs):
    for p in logs:
        with open(p, "rb") as f:
            SEEN.append(f.read())
    for s in secrets:
        for blob in SEEN:
            assert s.encode() not in blob, "a secret leaked: %r" % blob[:300]


def cmdline_has_no_secret(proc, secrets):
    with open("/proc/%d/cmdline" % proc.pid, "rb") as f:
        cmd = f.read()
    for s in secrets:
        assert s.encode() not in cmd, "a secret on the command line"


# --- tls -------------------------------------------------------------------

def bulk(node, count, threads=4):
    """count PUTs to node over a few kept-alive connections."""
    import threading

    def run(k):
        c = http.client.HTTPSConnection("127.0.0.1", node.port, timeout=30,
                                        context=node.tls)
        for i in range(k, count, threads):
            c.request("PUT", "/kv/bulk/%d" % i, body=b"x" * 100)
            r = c.getresponse()
            r.read()
            assert r.status in (200, 201), r.status
        c.close()
    ts = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def tls_args(c, name):
    return ["--tls-cert=" + c.path(name + ".pem"),
            "--tls-key=" + c.path(name + ".key"),
            "--tls-ca=" + c.path("main-ca.pem")]


def peer_headers(cluster_id, token):
    return {"X-Kvfs-Cluster": cluster_id, "X-Kvfs-Token": token,
            "Content-Type": "application/json"}


def empty_batch(cluster_id):
    return json.dumps({"kvfs": "raft", "version": 2, "cluster": cluster_id,
                       "from": 99, "msgs": []}).encode()


def part_tls(binary, kvfsctl, tmp):
    ca = certs.Certs(os.path.join(tmp, "certs"))
    ca.ca("main")
    ca.ca("other")
    ca.cert("main", "node")
    ca.cert("other", "stranger")
    ca.cert("main", "expired", expired=True)
    ctx = client_context(ca.path("main-ca.pem"))
    root = os.path.join(tmp, "tls")
    os.makedirs(root)
    step("a node refuses to start on an expired certificate, another CA's, "
         "or a key that is not the certificate's")
    for cert, key, want in (("expired", "expired", "not valid now"),
                            ("stranger", "stranger", "not a certificate of"),
                            ("node", "stranger", "--tls-key")):
        refused(binary, ["--data=" + os.path.join(root, "x"),
                         "--tls-cert=" + ca.path(cert + ".pem"),
                         "--tls-key=" + ca.path(key + ".key"),
                         "--tls-ca=" + ca.path("main-ca.pem")], [want])
    with Cluster(binary, root, n=3, mounts=False, tls=ctx,
                 extra=tls_args(ca, "node") + ["--snapshot-every=100"]) as c:
        token = token_of(c.token_file)
        c.start()
        leader = c.leader()
        cid = leader.status()["cluster_id"]
        step("writes on every node over TLS, forwarded to the leader")
        for n in c.nodes.values():
            for i in range(80):
                s, body, _ = req(n, "PUT", "/kv/n%d/k%d" % (n.id, i),
                                 body=b"v%d" % i)
                assert s in (200, 201), (s, body)
        step("linearizable reads on every node see every write")
        for n in c.nodes.values():
            for m in c.nodes.values():
                s, body, _ = req(n, "GET", "/kv/n%d/k79" % m.id)
                assert s == 200 and body == b"v79", (n.id, m.id, s, body)
        # the leader's core keeps a trail of 10,000 applied entries in
        # memory (raft/node/trail.c): past it, a new node can only catch
        # up by a snapshot
        step("past the entries a leader keeps in memory (10,000)")
        bulk(leader, 12000)
        wait_for(lambda: all(n.status()["first_index"] > 1
                             for n in c.nodes.values()), 60,
                 "the logs to be compacted")
        wait_for(lambda: leader.status()["memory_first_index"] > 1, 60,
                 "the leader's in-memory log to be compacted")

        step("kvfsctl speaks https with the CA")
        p = subprocess.run([kvfsctl, "--node=127.0.0.1:%d" % leader.port,
                            "--tls-ca=" + ca.path("main-ca.pem"), "members"],
                           capture_output=True, timeout=30)
        assert p.returncode == 0 and b"voter" in p.stdout, p

        step("node 4 joins with the token over TLS and gets a snapshot")
        n4 = ClusterNode(binary, 4, os.path.join(root, "node4"), free_port(),
                         None, extra=tls_args(ca, "node") +
                         ["--cluster-token=" + c.token_file],
                         log_path=os.path.join(root, "node4.log"), tls=ctx)
        n4.command = lambda mountpoint=None: [
            binary, "-f", "--id=4", "--data=" + n4.data,
            "--join=127.0.0.1:%d" % leader.port,
            "--listen=127.0.0.1:%d" % n4.port] + n4.extra
        c.nodes[4] = n4
        n4.start()
        wait_for(lambda: "installed a snapshot" in n4.read_log(), 60,
                 "node 4 to install a snapshot")
        c.wait_caught_up(n4, timeout=60)
        s, body, _ = req(n4, "GET", "/kv/n1/k79")
        assert s == 200 and body == b"v79", (s, body)
        s, _, _ = req(n4, "PUT", "/kv/from4", body=b"x")
        assert s in (200, 201), s
        cmdline_has_no_secret(n4.proc, [token])

        step("a node of another CA cannot join")
        t0 = time.monotonic()
        p = subprocess.run([binary, "-f", "--id=5",
                            "--data=" + os.path.join(root, "node5"),
                            "--listen=127.0.0.1:%d" % free_port(),
                            "--join=127.0.0.1:%d" % leader.port,
                            "--cluster-token=" + c.token_file,
                            "--tls-cert=" + ca.path("stranger.pem"),
                            "--tls-key=" + ca.path("stranger.key"),
                            "--tls-ca=" + ca.path("other-ca.pem")],
                           capture_output=True, timeout=60)
        assert p.returncode != 0 and b"cannot join" in p.stderr, p
        assert time.monotonic() - t0 < 30, "the refusal took too long"
        SEEN.append(p.stderr)

        step("a client with another CA's certificate, the right token: 401")
        stranger = client_context(ca.path("main-ca.pem"),
                                  ca.path("stranger.pem"),
                                  ca.path("stranger.key"))
        for path in ("/raft/message", "/cluster/members"):
            body = (empty_batch(cid) if path == "/raft/message" else
                    b'{"id":9,"address":"127.0.0.1:9"}')
            s, _, doc = req(leader, "POST", path, body=body,
                            headers=peer_headers(cid, token), ctx=stranger)
            assert s == 401 and doc["code"] == "unauthenticated", (path, s)
        step("an expired certificate and no certificate: 401, logged")
        expired = client_context(ca.path("main-ca.pem"),
                                 ca.path("expired.pem"), ca.path("expired.key"))
        s, _, doc = req(leader, "POST", "/raft/message", body=empty_batch(cid),
                        headers=peer_headers(cid, token), ctx=expired)
        assert s == 401 and doc["code"] == "unauthenticated", s
        s, _, doc = req(leader, "POST", "/raft/message", body=empty_batch(cid),
                        headers=peer_headers(cid, token))
        assert s == 401 and "certificate" in doc["error"], (s, doc)
        member = client_context(ca.path("main-ca.pem"), ca.path("node.pem"),
                                ca.path("node.key"))
        s, _, _ = req(leader, "POST", "/raft/message", body=empty_batch(cid),
                      headers=peer_headers(cid, token), ctx=member)
        assert s == 204, s
        wait_for(lambda: "refused the certificate" in leader.read_log(), 10,
                 "a log line for the refused certificate")

        step("plain HTTP to the TLS port fails cleanly, in bounded time")
        t0 = time.monotonic()
        with socket.create_connection(("127.0.0.1", leader.port), 5) as sk:
            sk.settimeout(10)
            sk.sendall(b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n")
            got = b""
            try:
                while True:
                    b = sk.recv(4096)
                    if not b:
                        break
                    got += b
            except (ConnectionResetError, socket.timeout):
                pass
        assert time.monotonic() - t0 < 10, "plain HTTP hung"
        assert not got.startswith(b"HTTP/"), got[:100]
        assert leader.status()["role"] in ("leader", "follower")
        wait_for(lambda: "handshake" in leader.read_log(), 10,
                 "a log line for the plain request")

        step("the cluster token is rotated with SIGHUP, writes go on")
        new = write_token(os.path.join(root, "new-token"))
        newtok = token_of(new)
        steps = ("%s\n%s\n" % (token, newtok), "%s\n%s\n" % (newtok, token),
                 "%s\n" % newtok)
        for k, text in enumerate(steps):
            with open(c.token_file, "w") as f:
                f.write(text)
            for n in c.running():
                n.proc.send_signal(signal.SIGHUP)
            for n in c.running():
                wait_for(lambda n=n: n.read_log().count(
                    "SIGHUP: cluster tokens read") > k, 10, "the reload")
            for n in c.running():
                s, _, _ = req(n, "PUT", "/kv/rotated", body=b"step %d" % k)
                assert s in (200, 201), (n.id, s)
        s, _, _ = req(leader, "POST", "/raft/message", body=empty_batch(cid),
                      headers=peer_headers(cid, token), ctx=member)
        assert s == 401, "the old token after the rotation: %d" % s
        s, _, _ = req(leader, "POST", "/raft/message", body=empty_batch(cid),
                      headers=peer_headers(cid, newtok), ctx=member)
        assert s == 204, s
        for n in c.running():
            s, body, _ = req(n, "GET", "/kv/rotated")
            assert s == 200 and body == b"step 2", (s, body)
        c.wait_converged(timeout=30)
        for n in c.running():
            s, body, _ = req(n, "GET", "/status")
            SEEN.append(body)
        logs = [n.log_path for n in c.nodes.values()]
        no_secret_anywhere([token, newtok], logs)
        SEEN.clear()

    step("--tls-client-auth: a client needs a certificate of the CA")
    one = Node(binary, os.path.join(root, "one"), tls=member,
               extra=tls_args(ca, "node") + ["--tls-client-auth"]).start()
    try:
        s, _, doc = req(one, "GET", "/status", ctx=ctx)
        assert s == 401 and doc["code"] == "unauthenticated", (s, doc)
        s, _, doc = req(one, "GET", "/status", ctx=stranger)
        assert s == 401, (s, doc)
        s, _, _ = req(one, "GET", "/status")
        assert s == 200, s
    finally:
        one.stop()


# --- auth ------------------------------------------------------------------

def write_auth(path, entries):
    with open(path, "w") as f:
        f.write("# name role hash [prefix]\n")
        for name, role, tok, prefix in entries:
            f.write("%s %s sha256:%s%s\n" % (
                name, role, hashlib.sha256(tok.encode()).hexdigest(),
                " " + prefix if prefix else ""))


# (method, path, body, what it needs: read, write, admin, peer, members-read)
ENDPOINTS = [
    ("GET", "/kv/app/k", None, "read"),
    ("HEAD", "/kv/app/k", None, "read"),
    ("GET", "/kv/app/", None, "read"),
    ("GET", "/kv/", None, "read"),
    ("GET", "/kv/other", None, "read"),
    ("PUT", "/kv/app/k", b"v", "write"),
    ("POST", "/kv/app/k2", b"v", "write"),
    ("PUT", "/kv/other", b"v", "write"),
    ("DELETE", "/kv/app/k2", None, "write"),
    ("GET", "/get/app/k", None, "read"),
    ("POST", "/set/app/k?value=x", b"", "write"),
    ("GET", "/status", None, "status"),
    ("GET", "/cluster/members", None, "read"),
    ("POST", "/cluster/members", b"{}", "admin"),
    ("DELETE", "/cluster/members/9", None, "admin"),
    # a transaction that only reads needs the read role, one that writes
    # the write role; its keys are checked against a token's prefix
    ("POST", "/txn", b'{"success":[{"op":"get","key":"app/k"}]}', "read"),
    ("POST", "/txn", b'{"compare":[{"key":"other","target":"exists",'
     b'"op":"==","value":true}]}', "read"),
    ("POST", "/txn", b'{"success":[{"op":"put","key":"app/t","value":"v"}]}',
     "write"),
    ("POST", "/txn", b'{"failure":[{"op":"delete","key":"app/t"}]}', "write"),
    ("POST", "/raft/message", b"{}", "peer"),
    ("POST", "/raft/stream", b"0\n", "peer"),
    ("POST", "/raft/snapshot", b"", "peer"),
]
RANK = {"read": 1, "write": 2, "admin": 3}


def expect(ident, need, path, status_public, body=None):
    """401, 403 or None (allowed) for identity ident on an endpoint."""
    if ident in ("none", "wrong"):
        if need == "status" and status_public and ident == "none":
            return None
        return 401
    if ident == "peer":
        return None
    if need == "peer":
        return 401
    if need == "status":
        need = "read"
    role, prefix = {"reader": ("read", None), "writer": ("write", None),
                    "admin": ("admin", None),
                    "app": ("write", "app/")}[ident]
    if RANK[role] < RANK[need]:
        return 403
    if prefix and (path.startswith("/kv/") or path.startswith("/set/") or
                   path.startswith("/get/")):
        key = path.split("/", 2)[2].split("?")[0]
        if not key.startswith(prefix):
            return 403
    if prefix and path == "/txn":
        doc = json.loads(body)
        keys = [c["key"] for c in doc.get("compare", [])] + \
            [o["key"] for b in ("success", "failure") for o in doc.get(b, [])]
        if any(not k.startswith(prefix) for k in keys):
            return 403
    return None


def sighup_in_mount_mode(binary, tmp, auth, admin):
    """The mount's own signal handling leaves SIGHUP to the reloader: the
    node rereads --auth and keeps its mount."""
    mnt = os.path.join(tmp, "mnt")
    os.makedirs(mnt)
    n = Node(binary, os.path.join(tmp, "mounted"), extra=["--auth=" + auth])
    n.headers = {"Authorization": "Bearer " + admin}
    n.start(mountpoint=mnt)
    try:
        wait_for(lambda: harness_mounted(mnt), 20, "the mount")
        with open(os.path.join(mnt, "f"), "wb") as f:
            f.write(b"x")
        n.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "--auth reloaded" in n.read_log(), 10, "the reload")
        assert n.proc.poll() is None, "SIGHUP ended the mounted node"
        with open(os.path.join(mnt, "f"), "rb") as f:
            assert f.read() == b"x"
    finally:
        n.stop()
        harness_unmount(mnt)


def part_auth(binary, kvfsctl, tmp):
    toks = {"reader": "reader-" + os.urandom(16).hex(),
            "writer": "writer-" + os.urandom(16).hex(),
            "admin": "admin-" + os.urandom(16).hex(),
            "app": "app-" + os.urandom(16).hex()}
    auth = os.path.join(tmp, "auth")
    write_auth(auth, [("reader", "read", toks["reader"], None),
                      ("writer", "write", toks["writer"], None),
                      ("admin", "admin", toks["admin"], None),
                      ("app", "write", toks["app"], "app/")])
    for status_public in (False, True):
        data = os.path.join(tmp, "auth-node-%d" % status_public)
        extra = ["--auth=" + auth] + (["--status-public"] if status_public
                                      else [])
        node = Node(binary, data, extra=extra)
        node.headers = {"Authorization": "Bearer " + toks["admin"]}
        node.start()
        try:
            cid = node.status()["cluster_id"]
            peer = token_of(os.path.join(data, "cluster-token"))
            idents = {"none": {}, "wrong": {"Authorization": "Bearer nope"},
                      "peer": {"X-Kvfs-Token": peer, "X-Kvfs-Cluster": cid}}
            for k, t in toks.items():
                idents[k] = {"Authorization": "Bearer " + t}
            step("every endpoint, every identity (status public: %s)" %
                 status_public)
            req(node, "PUT", "/kv/app/k", b"v", idents["admin"])
            for ident, hdrs in idents.items():
                for method, path, body, need in ENDPOINTS:
                    req(node, "PUT", "/kv/app/k2", b"v", idents["admin"])
                    want = expect(ident, need, path, status_public, body)
                    s, raw, doc = req(node, method, path, body, hdrs)
                    if want is None:
                        assert s not in (401, 403) and s < 500, \
                            (ident, method, path, s, raw)
                    else:
                        assert s == want, (ident, method, path, s, raw)
                        if method != "HEAD":
                            assert doc["code"] == ("unauthenticated" if
                                                   want == 401 else
                                                   "forbidden"), doc
            step("a member adds and removes a member: no token in the answers")
            s, _, doc = req(node, "POST", "/cluster/members",
                            b'{"id":7,"address":"127.0.0.1:1"}',
                            idents["peer"])
            assert s == 201 and doc["cluster_id"] == cid, (s, doc)
            s, _, doc = req(node, "POST", "/cluster/members",
                            b'{"id":7,"address":"127.0.0.1:1"}',
                            idents["admin"])
            assert s == 409, (s, doc)
            s, _, _ = req(node, "DELETE", "/cluster/members/7", None,
                          idents["admin"])
            assert s == 200, s
            step("forged peer messages are refused")
            batch = empty_batch(cid)
            derived = "dt-%016x" % fnv64("token\n", "1=127.0.0.1:%d" %
                                          node.port)
            for hdrs, want in (({"X-Kvfs-Cluster": cid}, 401),
                               ({"X-Kvfs-Cluster": cid,
                                 "X-Kvfs-Token": derived}, 401),
                               ({"X-Kvfs-Cluster": "kv-0123456789abcdef",
                                 "X-Kvfs-Token": peer}, 403)):
                s, _, doc = req(node, "POST", "/raft/message", batch, hdrs)
                assert s == want, (hdrs, s, doc)
            s, _, _ = req(node, "POST", "/raft/message", batch,
                          idents["peer"])
            assert s == 204, s
            assert "refused POST /raft/message from 127.0.0.1:" in \
                node.read_log(), "no log line names the remote address"
            step("--auth is reread on SIGHUP; a bad file is kept out")
            later = "later-" + os.urandom(16).hex()
            write_auth(auth + ".new", [("admin", "admin", toks["admin"], None),
                                       ("later", "read", later, None)])
            os.replace(auth + ".new", auth)
            node.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: req(node, "GET", "/kv/app/k", None,
                                 {"Authorization": "Bearer " + later})[0] ==
                     200, 10, "the new token to work")
            s, _, _ = req(node, "GET", "/kv/app/k", None, idents["reader"])
            assert s == 401, s
            with open(auth, "a") as f:
                f.write("broken line\n")
            node.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: "kept the client tokens" in node.read_log(), 10,
                     "the bad reload to be logged")
            assert "line 4" in node.read_log(), node.read_log()[-500:]
            s, _, _ = req(node, "GET", "/kv/app/k", None,
                          {"Authorization": "Bearer " + later})
            assert s == 200, s
            write_auth(auth, [("reader", "read", toks["reader"], None),
                              ("writer", "write", toks["writer"], None),
                              ("admin", "admin", toks["admin"], None),
                              ("app", "write", toks["app"], "app/")])
            req(node, "GET", "/status")
            cmdline_has_no_secret(node.proc, [peer])
        finally:
            node.stop()
        no_secret_anywhere(list(toks.values()) + [later, peer],
                           [node.log_path])
        SEEN.clear()
    step("SIGHUP in mount mode rereads --auth and keeps the mount")
    sighup_in_mount_mode(binary, tmp, auth, toks["admin"])


def fnv64(salt, s):
    h = 0xcbf29ce484222325
    for ch in (salt + s).encode():
        h = ((h ^ ch) * 0x100000001b3) & 0xffffffffffffffff
    return h


# --- refusals ----------------------------------------------------------------

def refused(binary, args, words):
    p = subprocess.run([binary, "-f"] + args, capture_output=True, timeout=30)
    err = p.stderr.decode(errors="replace")
    assert p.returncode != 0, (args, err)
    for w in words:
        assert w in err, "%s: the message does not say %r: %s" % (args, w, err)


def part_refusals(binary, kvfsctl, tmp):
    step("a cluster of several members without a token is refused")
    p = ["1=127.0.0.1:%d" % free_port(), "2=127.0.0.1:%d" % free_port()]
    refused(binary, ["--id=1", "--data=" + os.path.join(tmp, "r1"),
                     "--peers=" + ",".join(p)],
            ["kvfsctl new-token", "--cluster-token"])
    step("a data directory holding a derived token is refused, with the fix")
    data = os.path.join(tmp, "old")
    n = Node(binary, data).start()
    n.stop()
    with open(os.path.join(data, "cluster.json")) as f:
        doc = json.load(f)
    doc["token"] = "dt-0123456789abcdef"
    with open(os.path.join(data, "cluster.json"), "w") as f:
        json.dump(doc, f)
    refused(binary, ["--data=" + data, "--listen=127.0.0.1:%d" % n.port],
            ["derived", "kvfsctl new-token"])
    step("a public address without TLS or --auth is refused unless "
         "--insecure")
    refused(binary, ["--data=" + os.path.join(tmp, "pub"),
                     "--listen=0.0.0.0:%d" % free_port()],
            ["--insecure", "--tls-cert"])
    assert not os.path.exists(os.path.join(tmp, "pub")), "data dir made"
    pub = Node(binary, os.path.join(tmp, "pub2"),
               extra=["--insecure"])
    pub.command = lambda mountpoint=None: [
        binary, "-f", "--data=" + pub.data,
        "--listen=0.0.0.0:%d" % pub.port, "--insecure"]
    pub.start()
    pub.stop()
    assert "warning" in pub.read_log(), pub.read_log()
    step("a bad token file names its line")
    bad = os.path.join(tmp, "bad-token")
    with open(bad, "w") as f:
        f.write("short\n")
    refused(binary, ["--data=" + os.path.join(tmp, "b"),
                     "--cluster-token=" + bad], ["line 1"])


PARTS = {"tls": part_tls, "auth": part_auth, "refusals": part_refusals}


def main():
    binary = kvfs_binary()
    kvfsctl = os.path.abspath(sys.argv[2]) if len(sys.argv) > 2 else None
    parts = sys.argv[3:] or list(PARTS)
    with TempDir() as tmp:
        for name in parts:
            if name == "tls":
                try:
                    certs.Certs(os.path.join(tmp, "probe"))
                except certs.Unavailable as e:
                    print("SKIP tls: %s (scripts/deps installs gnutls-bin)"
                          % e)
                    sys.exit(77)
            PARTS[name](binary, kvfsctl, tmp)
            print("%s: ok" % name, flush=True)


if __name__ == "__main__":
    main()
