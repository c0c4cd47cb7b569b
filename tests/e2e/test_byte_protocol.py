"""The byte DB's protocol (docs/byte-protocol.md) on a 3-node cluster, each
member with --tcp-listen, driven by a small client written from the byte
DB's README and its test client's framing:
b"SET " + ksize + b" " + vsize + b" " + key + b" " + value, sizes 4-byte
little-endian.

- SET on a follower, GET on the other two members sees it at once
  (linearizable), DEL on a third, ALL on every member; the same keys as
  HTTP (a key put over HTTP is read over TCP and the other way).
- Binary values (NULs, spaces, 0xff, 1 MiB of random bytes) come back
  byte for byte on another member.
- Hostile input: a VAL_SIZE over 16 MiB and a KEY_SIZE over 4096 get
  too_large and the connection closed before the bytes are sent; garbage
  gets bad_request and the close; a request cut short by the client's
  close, or too slow, gets an error and the close; an idle connection is
  closed; past --tcp-max-connections a client is told busy; a bad key is
  answered and the connection goes on. After all of it the member serves.
- Many clients on all members at once, requests pipelined.
- Durable: every member killed -9 and restarted, every key back.
- With --auth, --tcp-listen refuses to start without --tcp-insecure.
"""
import hashlib
import json
import os
import random
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.parse

from harness import Cluster, TempDir, free_port, kvfs_binary, wait_for

TIMEOUT_MS = 6000  # --tcp-timeout: idle 6 s, a request within 2 s
MAX_CONNS = 12


def u32(n):
    return struct.pack("<I", n)


class Client:
    """The byte DB's client, from its README."""

    def __init__(self, port, timeout=15):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)

    def close(self):
        self.s.close()

    def read(self, n):
        b = b""
        while len(b) < n:
            x = self.s.recv(n - len(b))
            if not x:
                raise EOFError("closed after %r" % b)
            b += x
        return b

    def reply(self):
        """True, ("ERR", code, message) or the bytes of a sized answer."""
        h = self.read(4)
        if h == b"true":
            return True
        if h == b"ERR ":
            n = struct.unpack("<I", self.read(4))[0]
            assert self.read(1) == b" "
            text = self.read(n).decode()
            code, _, msg = text.partition(": ")
            return ("ERR", code, msg)
        n = struct.unpack("<I", h)[0]
        assert self.read(1) == b" "
        return self.read(n)

    @staticmethod
    def frame_set(k, v):
        return b"SET " + u32(len(k)) + b" " + u32(len(v)) + b" " + k + b" " + v

    @staticmethod
    def frame_key(cmd, k):
        return cmd + b" " + u32(len(k)) + b" " + k

    def set(self, k, v):
        self.s.sendall(self.frame_set(k, v))
        return self.reply()

    def get(self, k):
        self.s.sendall(self.frame_key(b"GET", k))
        return self.reply()

    def delete(self, k):
        self.s.sendall(self.frame_key(b"DEL", k))
        return self.reply()

    def all(self):
        self.s.sendall(b"ALL")
        r = self.reply()
        if isinstance(r, tuple):
            return r
        keys, i = [], 0
        while i < len(r):
            n = struct.unpack("<I", r[i:i + 4])[0]
            assert r[i + 4:i + 5] == b" "
            keys.append(r[i + 5:i + 5 + n])
            i += 5 + n
            if i < len(r):
                assert r[i:i + 1] == b" "
                i += 1
        return keys

    def closed(self, timeout=10):
        """True once the server closed the connection (reads EOF)."""
        self.s.settimeout(timeout)
        try:
            while True:
                x = self.s.recv(65536)
                if not x:
                    return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False


def is_err(r, code):
    return isinstance(r, tuple) and r[0] == "ERR" and r[1] == code


def main():
    binary = kvfs_binary()
    with TempDir() as tmp:
        root = os.path.join(tmp, "c")
        os.mkdir(root)
        with Cluster(binary, root, n=3, mounts=False) as c:
            tcp = {}
            for i in (1, 2, 3):
                tcp[i] = free_port()
                c[i].extra += ["--tcp-listen=127.0.0.1:%d" % tcp[i],
                               "--tcp-timeout=%d" % TIMEOUT_MS,
                               "--tcp-max-connections=%d" % MAX_CONNS]
            c.start()
            leader = c.leader().id
            f1, f2 = [i for i in (1, 2, 3) if i != leader]
            cluster_part(c, tcp, leader, f1, f2)
            hostile_part(c, tcp, leader, f1)
            many_part(c, tcp)
            restart_part(c, tcp)
        auth_part(binary, tmp)
    return 0


def cluster_part(c, tcp, leader, f1, f2):
    a, b, l = Client(tcp[f1]), Client(tcp[f2]), Client(tcp[leader])
    assert a.set(b"greeting", b"hello") is True
    assert b.get(b"greeting") == b"hello"
    assert l.get(b"greeting") == b"hello"
    print("ok   - SET on follower %d, GET on %d and on the leader sees it"
          % (f1, f2))
    assert b.set(b"dir/sub/k", b"v2") is True
    s, _, body = c[leader].get("dir/sub/k")
    assert s == 200 and body == b"v2", (s, body)
    s, _, _ = c[f1].put("from/http", b"h")
    assert s in (200, 201), s
    assert l.get(b"from/http") == b"h"
    print("ok   - the same keys as HTTP, both ways")
    for cl in (a, b, l):
        keys = cl.all()
        assert keys == [b"dir/sub/k", b"from/http", b"greeting"], keys
    print("ok   - ALL on every member: every key, nested ones too")
    assert l.delete(b"greeting") is True
    for cl in (a, b, l):
        assert is_err(cl.get(b"greeting"), "not_found")
    assert is_err(a.delete(b"greeting"), "not_found")
    assert is_err(a.get(b"dir/sub"), "conflict")
    print("ok   - DEL on the leader: not_found on every member; a directory is a conflict")
    vals = [b"\x00", b"a b\x00c\xff ", bytes(range(256)) * 4,
            random.Random(7).randbytes(1 << 20), b""]
    for n, v in enumerate(vals):
        k = b"bin/%d" % n
        assert a.set(k, v) is True
        assert b.get(k) == v, n
        s, _, body = c[leader].get(k.decode())
        assert s == 200 and body == v, (n, s)
    print("ok   - binary values (NULs, spaces, 0xff, 1 MiB random, empty) exact on other members")
    # a key that breaks the key rules is answered; the connection goes on
    for bad in (b"a//b", b"\xff", b"", b"x\x00y", b"../up"):
        assert is_err(a.set(bad, b"v"), "bad_key"), bad
    assert a.get(b"dir/sub/k") == b"v2"
    # pipelined: three requests in one send, three replies in order
    a.s.sendall(Client.frame_set(b"p", b"1") + Client.frame_key(b"GET", b"p") +
                b"\r\n" + Client.frame_key(b"DEL", b"p"))
    assert a.reply() is True and a.reply() == b"1" and a.reply() is True
    print("ok   - bad keys answered bad_key, the connection goes on; pipelined requests in order")
    for cl in (a, b, l):
        cl.close()


def hostile_part(c, tcp, leader, f1):
    port = tcp[f1]
    # sizes over the limits: refused before the bytes, then closed
    x = Client(port)
    x.s.sendall(b"SET " + u32(1) + b" " + u32(16 * 1024 * 1024 + 1) + b" ")
    r = x.reply()
    assert is_err(r, "too_large") and "VAL_SIZE" in r[2], r
    assert x.closed()
    x = Client(port)
    x.s.sendall(b"GET " + u32(5000) + b" ")
    assert is_err(x.reply(), "too_large")
    assert x.closed()
    x = Client(port)
    x.s.sendall(b"GET " + u32(0xffffffff) + b" ")
    assert is_err(x.reply(), "too_large")
    assert x.closed()
    print("ok   - KEY_SIZE over 4096 and VAL_SIZE over 16 MiB: too_large and closed")
    for junk in (b"HELLO", b"GET\n", b"get " + u32(1) + b" k",
                 b"GET " + u32(1) + b"Xk", b"\x16\x03\x01\x02\x00",
                 b"POST / HTTP/1.1\r\n\r\n"):
        x = Client(port)
        x.s.sendall(junk)
        assert is_err(x.reply(), "bad_request"), junk
        assert x.closed(), junk
    print("ok   - garbage: bad_request and closed")
    # cut short: the client closes its side inside a request
    x = Client(port)
    x.s.sendall(b"SET " + u32(3) + b" " + u32(10) + b" key 12345")
    x.s.shutdown(socket.SHUT_WR)
    assert is_err(x.reply(), "bad_request")
    assert x.closed()
    assert Client(port).get(b"key") is not None
    # too slow: a request must arrive within a third of --tcp-timeout
    x = Client(port)
    t0 = time.monotonic()
    x.s.sendall(b"SET " + u32(3) + b" " + u32(10) + b" key 1")
    r = x.reply()
    took = time.monotonic() - t0
    assert is_err(r, "timeout") and 1.5 < took < 8, (r, took)
    assert x.closed()
    # idle: closed after --tcp-timeout
    x = Client(port)
    t0 = time.monotonic()
    assert x.closed(timeout=30)
    took = time.monotonic() - t0
    assert 5 < took < 20, took
    print("ok   - a request cut short or too slow: an error and closed; idle: closed after %.1fs" % took)
    # the connection cap: the next one is told busy; room again after
    held = [Client(port) for _ in range(MAX_CONNS)]
    for h in held:
        h.s.sendall(b"ALL")
        assert isinstance(h.reply(), bytes)
    x = Client(port)
    r = x.reply()
    assert is_err(r, "busy"), r
    assert x.closed()
    held.pop().close()
    def room():
        y = Client(port, timeout=2)
        try:
            return y.set(b"after/cap", b"1") is True
        finally:
            y.close()
    wait_for(room, 10, "room after a connection closed")
    for h in held:
        h.close()
    wait_for(room, 10, "room once every connection closed")
    print("ok   - past %d connections: busy and closed; room again once one closes" % MAX_CONNS)
    # after all of it, the member and its peers serve
    y = Client(port)
    r = y.set(b"still/serving", b"yes")
    assert r is True, r
    assert Client(tcp[leader]).get(b"still/serving") == b"yes"
    c.check_alive()
    print("ok   - after the hostile clients every member serves")


def many_part(c, tcp):
    errors = []
    def worker(w):
        try:
            cl = Client(tcp[1 + w % 3])
            other = Client(tcp[1 + (w + 1) % 3])
            for i in range(25):
                k = b"many/%d/%d" % (w, i)
                v = os.urandom(random.randint(0, 3000))
                assert cl.set(k, v) is True
                assert other.get(k) == v
            cl.close()
            other.close()
        except Exception as e:  # noqa: BLE001
            errors.append((w, repr(e)))
    threads = [threading.Thread(target=worker, args=(w,)) for w in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    keys = Client(tcp[2]).all()
    assert len([k for k in keys if k.startswith(b"many/")]) == 125, len(keys)
    print("ok   - 5 clients on all members at once: every write read on another member")


def restart_part(c, tcp):
    before = Client(tcp[1]).all()
    v = Client(tcp[2]).get(b"bin/3")
    for i in (1, 2, 3):
        c[i].kill9()
    c.start()
    c.leader()
    for i in (1, 2, 3):
        def ready(i=i):
            r = Client(tcp[i], timeout=5).all()
            return r if isinstance(r, list) else None
        assert wait_for(ready, 30, "ALL on %d" % i) == before, i
    assert Client(tcp[3]).get(b"bin/3") == v
    print("ok   - every member killed -9 and restarted: every key and value back")


def auth_part(binary, tmp):
    auth = os.path.join(tmp, "auth")
    with open(auth, "w") as f:
        f.write("w write sha256:%s\n" % hashlib.sha256(b"t" * 32).hexdigest())
    args = [binary, "-f", "--data=" + os.path.join(tmp, "a"),
            "--listen=127.0.0.1:%d" % free_port(), "--auth=" + auth,
            "--tcp-listen=127.0.0.1:%d" % free_port()]
    p = subprocess.run(args, capture_output=True, timeout=30)
    err = p.stderr.decode()
    assert p.returncode != 0 and "--tcp-insecure" in err, (p.returncode, err)
    assert not os.path.exists(os.path.join(tmp, "a")), "data dir made"
    p = subprocess.run([binary, "-f", "--data=" + os.path.join(tmp, "b"),
                        "--listen=127.0.0.1:%d" % free_port(),
                        "--tcp-listen=0.0.0.0:%d" % free_port()],
                       capture_output=True, timeout=30)
    assert p.returncode != 0 and "--tcp-insecure" in p.stderr.decode()
    print("ok   - --tcp-listen with --auth, or on a non-loopback address: refused without --tcp-insecure")


if __name__ == "__main__":
    sys.exit(main())
