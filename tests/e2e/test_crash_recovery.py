"""Acknowledged writes survive kill -9.

Concurrent clients PUT thousands of keys (a fifth of them binary) into one
node; the node is killed with SIGKILL mid-stream and restarted on the same
data directory; every key whose PUT was acknowledged must be there with its
exact bytes, and a key whose PUT was in flight holds either nothing or the
bytes that were sent. Run twice: once with a small --snapshot-every so that
snapshots and compaction happen during the stream."""
import http.client
import os
import random
import threading
import time

from harness import Node, TempDir, kvfs_binary, wait_for

CLIENTS = 16
KEYS_PER_CLIENT = 400


def value_for(client, i):
    rnd = random.Random(client * 100003 + i)
    if i % 5 == 0:  # binary: NUL, invalid UTF-8, newlines
        return bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 300))) + b"\x00\xff\n"
    return ("v-%d-%d-" % (client, i) + "x" * rnd.randrange(0, 200)).encode()


def client_loop(port, client, acked, inflight, stop):
    conn = None
    for i in range(KEYS_PER_CLIENT):
        if stop.is_set():
            return
        key = "c%02d/k%05d" % (client, i)
        val = value_for(client, i)
        inflight[key] = val
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("PUT", "/kv/" + key, body=val)
            r = conn.getresponse()
            r.read()
            if r.status in (200, 201):
                acked[key] = val
        except (OSError, http.client.HTTPException):
            return  # the node died: stop this client


def run(binary, extra):
    with TempDir() as tmp:
        data = os.path.join(tmp, "data")
        node = Node(binary, data, extra=extra).start()
        acked, inflight = {}, {}
        stop = threading.Event()
        threads = [threading.Thread(target=client_loop,
                                    args=(node.port, c, acked, inflight, stop))
                   for c in range(CLIENTS)]
        for t in threads:
            t.start()
        total = CLIENTS * KEYS_PER_CLIENT
        # kill once about half of the writes were acknowledged
        wait_for(lambda: len(acked) >= total // 2, 120, "half the writes")
        node.kill9()
        stop.set()
        for t in threads:
            t.join()
        n_acked = len(acked)
        assert n_acked >= total // 2

        node = Node(binary, data, port=node.port, extra=extra).start()
        try:
            missing = wrong = 0
            for key, val in acked.items():
                s, h, body = node.request("GET", "/kv/" + key)
                if s != 200:
                    missing += 1
                elif body != val:
                    wrong += 1
            assert missing == 0 and wrong == 0, \
                "%d acknowledged keys missing, %d wrong" % (missing, wrong)
            # in-flight writes: absent or exactly what was sent
            for key, val in inflight.items():
                if key in acked:
                    continue
                s, h, body = node.request("GET", "/kv/" + key)
                assert s == 404 or (s == 200 and body == val), key
            st = node.status()
            assert st["keys"] >= n_acked, st
            print("ok: %d acknowledged keys survived kill -9 (%s), "
                  "status keys=%d applied=%d snapshot=%d" %
                  (n_acked, " ".join(extra) or "defaults", st["keys"],
                   st["applied_index"], st["snapshot_index"]))
        finally:
            node.stop()


def main():
    binary = kvfs_binary()
    run(binary, [])
    run(binary, ["--snapshot-every=500", "--segment-size=65536"])


if __name__ == "__main__":
    main()
