"""mem-db's word counter on a 3-node cluster (docs/http-api.md, "mem-db's
word counter"): POST /words/register and GET /words/occurences.

- Registers sent at the same time to all three members (several threads
  each): every count on every member equals the number of times the word
  was sent; no update is lost.
- One register is one replicated entry: every word it counted has the
  register's revision as its mod revision (GET /kv/.words/).
- Words as documented: ASCII letters folded to lower case, punctuation and
  spaces split; ?terms= folds the same way; the JSON body form; the
  correctly spelt alias.
- A register that meets a count that is not a number changes nothing
  (409), and the node keeps serving.
- Watches: .words/the's changes once each, in order, the last the
  count; a register's counters all at its revision.
- Durable: every member killed -9 at once and restarted, every count the
  same.
"""
import json
import os
import sys
import threading
import urllib.parse

from harness import Cluster, TempDir, kvfs_binary, wait_for

TEXTS = [
    "the quick brown fox jumps over the lazy dog",
    "The DOG barks; the fox runs. Fox!",
    "über straße, ÜBER café—café",
    "a a a a b",
]


def words_of(text):
    """The documented rule for these texts (ASCII fold, split on the rest)."""
    out, cur = [], ""
    for ch in text:
        if ch.isascii() and ch.isalnum() or (not ch.isascii() and
                                             ch not in "—"):
            cur += ch.lower() if ch.isascii() else ch
        else:
            if cur:
                out.append(cur)
            cur = ""
    if cur:
        out.append(cur)
    return out


def register(node, text, json_body=False):
    if json_body:
        body = json.dumps({"text": text}).encode()
        hdr = {"Content-Type": "application/json"}
    else:
        body, hdr = text.encode(), {"Content-Type": "text/plain"}
    s, _, b = node.request("POST", "/words/register", body=body, headers=hdr,
                           timeout=30)
    return s, json.loads(b)


def counts(node, terms=None, path="/words/occurences"):
    q = "?terms=" + urllib.parse.quote(",".join(terms)) if terms else ""
    s, _, b = node.request("GET", path + q, timeout=30)
    assert s == 200, (s, b)
    return json.loads(b)


def main():
    binary = kvfs_binary()
    with TempDir() as tmp, Cluster(binary, tmp, n=3, mounts=False) as c:
        c.start()
        c.leader()
        # one register, then its words read back on another member
        s, b = register(c[1], TEXTS[0])
        assert s == 200 and b["words"] == 9 and b["distinct"] == 8, (s, b)
        got = counts(c[2], ["the", "FOX", "cat"])
        assert got == {"the": 2, "fox": 1, "cat": 0}, got
        s, _, lst = c[3].request("GET", "/kv/.words/")
        ents = json.loads(lst)["entries"]
        assert {e["name"] for e in ents} == set(words_of(TEXTS[0])), ents
        assert all(e["rev"] == b["rev"] for e in ents), (b, ents)
        print("ok   - a register is one entry; its counts read on another member")

        # concurrent registers on all members
        expect = {}
        for w in words_of(TEXTS[0]):
            expect[w] = expect.get(w, 0) + 1
        rounds, per_node = 15, 2
        errors = []

        def worker(node, k):
            for i in range(rounds):
                text = TEXTS[(i + k) % len(TEXTS)]
                s, b = register(node, text, json_body=(i % 2 == 0))
                if s != 200:
                    errors.append((node.id, s, b))

        threads = []
        for k in range(per_node):
            for i in (1, 2, 3):
                for j in range(rounds):
                    for w in words_of(TEXTS[(j + k * 3 + i) % len(TEXTS)]):
                        expect[w] = expect.get(w, 0) + 1
                threads.append(threading.Thread(
                    target=worker, args=(c[i], k * 3 + i)))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        for i in (1, 2, 3):
            got = counts(c[i])
            assert got == expect, (i, got, expect)
            got = counts(c[i], ["The", "über", "zebra"],
                         path="/words/occurrences")
            assert got == {"the": expect["the"], "über": expect["über"],
                           "zebra": 0}, got
        print("ok   - %d concurrent registers on 3 members: every count exact"
              % (rounds * per_node * 3))

        # a watch sees each register's count of a word once, in order
        s, _, body = c[2].request(
            "GET", "/kv/.words/the?watch&since=1&wait=1", timeout=30)
        assert s == 200, (s, body)
        evs = [json.loads(l) for l in body.decode().splitlines()
               if l.startswith('{"revision"')]
        vals = [int(e["value"]) for e in evs]
        revs = [e["revision"] for e in evs]
        assert revs == sorted(set(revs)), revs
        assert vals == sorted(set(vals)) and vals[-1] == expect["the"], vals
        s, _, body = c[3].request(
            "GET", "/kv/.words/?watch&since=%d&wait=1" % revs[-1], timeout=30)
        lines = [json.loads(l) for l in body.decode().splitlines()
                 if l.startswith('{"revision"')]
        at = [e for e in lines if e["revision"] == revs[-1]]
        assert len(at) > 1 and all(e["op"] == "put" for e in at), lines
        print("ok   - a watch of .words/: one put per counter a register changed, in order")

        # a count that is not a number: the whole register changes nothing
        # (the bad count sorts last: the words before it must not count)
        s, _, _ = c[2].put(".words/zz", b"many")
        assert s == 201, s
        before = counts(c[1], ["fox", "quick"])
        s, b = register(c[3], "quick fox zz")
        assert s == 409 and "not a number" in b["error"], (s, b)
        assert counts(c[1], ["fox", "quick"]) == before
        assert counts(c[1], ["zz"]) == {"zz": None}
        s, b = register(c[3], "quick fox")
        assert s == 200, (s, b)
        assert counts(c[2], ["fox", "quick"]) == {
            "fox": before["fox"] + 1, "quick": before["quick"] + 1}
        print("ok   - a register meeting a non-number counts nothing; the node serves on")

        # bad requests
        for body, hdr in ((b"\xff\xfe", {}),
                          (b"{\"txt\":1}", {"Content-Type": "application/json"}),
                          (b"x" * 300, {})):
            s, _, b = c[1].request("POST", "/words/register", body=body,
                                   headers=hdr)
            assert s == 400, (body[:10], s, b)
        s, _, b = c[1].request("GET", "/words/occurences?term=a")
        assert s == 400 and b"term" in b, (s, b)
        s, _, b = c[1].request("GET", "/words/occurences?terms=a%20b")
        assert s == 400, (s, b)
        print("ok   - bad UTF-8, bad JSON, a 300-byte word, unknown or bad parameters: 400")

        # durable: every member killed at once, restarted, the same counts
        want = counts(c[1])
        for i in (1, 2, 3):
            c[i].kill9()
        c.start()
        c.leader()
        for i in (1, 2, 3):
            def read(i=i):
                s, _, b = c[i].request("GET", "/words/occurences", timeout=5)
                return json.loads(b) if s == 200 else None
            got = wait_for(read, 30, "counts on %d" % i)
            assert got == want, (i, got, want)
        print("ok   - every member killed -9 and restarted: the same counts")
    return 0


if __name__ == "__main__":
    sys.exit(main())
