"""POST /kv/<key>?add=N: an atomic counter, exact under concurrent adds
from every member.

A 3-node cluster; 12 threads (4 through each member) add random amounts
to one counter, 40 times each. Every add is answered with its revision
and the count it left: sorted by revision, each count is the previous one
plus that add's amount (no add lost, none applied twice, none answered
with another's count), and the final value, read on every member, is the
sum. Then: a counter at the top level (a watch sees it as a put of its key
with the new count), a key whose value is not a count
(400, nothing changed), ?add with PUT, add=0 and add=-1 (400).
"""
import json
import os
import random
import threading

from harness import Cluster, TempDir, kvfs_binary


def main():
    binary = kvfs_binary()
    with TempDir() as tmp:
        os.mkdir(os.path.join(tmp, "c"))
        with Cluster(binary, os.path.join(tmp, "c"), n=3, mounts=False) as c:
            c.start()
            answers, errors = [], []
            lock = threading.Lock()

            def adder(node, seed):
                rnd = random.Random(seed)
                for _ in range(40):
                    n = rnd.randint(1, 1000)
                    s, _, b = node.request("POST", "/kv/cnt/x?add=%d" % n)
                    with lock:
                        if s == 200:
                            d = json.loads(b)
                            answers.append((d["rev"], n, d["value"]))
                        else:
                            errors.append((s, b))
            ts = [threading.Thread(target=adder, args=(c[1 + i % 3], i))
                  for i in range(12)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            assert not errors, errors[:3]
            answers.sort()
            total = 0
            for rev, n, value in answers:
                total += n
                assert value == total, (rev, n, value, total)
            assert len({a[0] for a in answers}) == len(answers)
            for node in c.nodes.values():
                s, _, b = node.get("cnt/x")
                assert s == 200 and int(b) == total, (node.id, s, b, total)
            print("ok   - 480 concurrent adds through three members: each "
                  "answered the count it left, in revision order; %d on "
                  "every member" % total)
            node = c[1]
            s, _, b = node.request("POST", "/kv/top?add=3")
            assert s == 200 and json.loads(b)["value"] == 3, (s, b)
            rev = json.loads(b)["rev"]
            s, _, body = node.request("GET", "/kv/top?watch&since=%d&wait=2"
                                      % rev)
            evs = [json.loads(x) for x in body.splitlines() if b'"op"' in x]
            assert evs == [{"revision": rev, "op": "put", "key": "top",
                            "size": 1, "value": "3"}], evs
            s, _, b = node.put("cnt/text", b"abc")
            s, _, b = node.request("POST", "/kv/cnt/text?add=1")
            assert s == 400, (s, b)
            s, _, b = node.get("cnt/text")
            assert b == b"abc", b
            for path, method in (("/kv/cnt/x?add=1", "PUT"),
                                 ("/kv/cnt/x?add=0", "POST"),
                                 ("/kv/cnt/x?add=-1", "POST"),
                                 ("/kv/cnt/x?add=x", "POST")):
                s, _, b = node.request(method, path, body=b"")
                assert s == 400, (method, path, s, b)
            s, _, b = node.get("cnt/x")
            assert int(b) == total, b
            print("ok   - a counter at the top, a value that is no count "
                  "(400, unchanged), bad amounts and methods (400)")


if __name__ == "__main__":
    main()
