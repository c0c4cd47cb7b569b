"""GET /kv/<prefix>?watch: every change once, in order, from any member.

A 3-node cluster. A streaming watch of the prefix "w" on a follower sees
exactly the revisions that acknowledged writes under the prefix got
(PUTs and DELETEs through every member; writes outside the prefix, and
under "wx", which is not under "w", not at all), in increasing order,
with values (base64 for binary ones). Meanwhile the leader is killed and
restarted, twice: the watch goes on (started again on another member,
from the last revision it saw, when its own member was the one killed). The watch is cut, and resumed on
another member with since=last+1: together nothing is missing nor
repeated. The watching member is restarted and the watch resumed there.
Then: the long poll (?wait) answers at once with what there is, or after
its seconds with a progress line only; values=0; a bad since is 400; a
node with a history of 20 events answers 410 with the oldest revision it
keeps for a since before it; a node stopped while a watch streams ends
the stream with a progress line.
"""
import base64
import http.client
import json
import os
import subprocess
import sys
import threading
import time

from harness import Cluster, Node, TempDir, kvfs_binary, wait_for


class Watch:
    """A streaming watch in a thread: lines kept as they come."""

    def __init__(self, node, query):
        self.node, self.lines, self.done = node, [], threading.Event()
        self.conn = http.client.HTTPConnection("127.0.0.1", node.port,
                                               timeout=60)
        self.conn.request("GET", "/kv/w?watch&" + query)
        self.resp = self.conn.getresponse()
        assert self.resp.status == 200, (self.resp.status, self.resp.read())
        ctype = self.resp.getheader("Content-Type")
        assert ctype == "application/x-ndjson", ctype
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        try:
            while True:
                line = self.resp.readline()
                if not line:
                    break
                self.lines.append(json.loads(line))
        except Exception:  # the connection cut by close(): the end
            pass
        self.done.set()

    def events(self):
        return [x for x in list(self.lines) if "op" in x]

    def last_rev(self):
        revs = [x.get("revision", x.get("progress")) for x in list(self.lines)
                if "revision" in x or "progress" in x]
        return max(revs) if revs else 0

    def close(self):
        try:
            self.resp.fp.raw._sock.shutdown(2)
        except Exception:
            pass
        self.conn.close()
        self.done.wait(10)


def say(msg):
    print("ok   - " + msg, flush=True)


def put(node, key, value):
    s, _, b = node.put(key, value)
    assert s in (200, 201), (s, b)
    return json.loads(b)["rev"]


def delete(node, key):
    s, _, b = node.request("DELETE", "/kv/" + key)
    assert s in (200, 204), (s, b)
    return json.loads(b)["rev"] if b else None


def main():
    binary = kvfs_binary()
    kvfsctl = sys.argv[2]
    with TempDir() as tmp:
        os.mkdir(os.path.join(tmp, "c"))
        with Cluster(binary, os.path.join(tmp, "c"), n=3, mounts=False) as c:
            c.start()
            leader = c.leader()
            fid = next(i for i in (1, 2, 3) if i != leader.id)
            f = c[fid]
            start = put(leader, "w/first", b"0")
            w = Watch(f, "since=%d" % start)
            want = {start: ("put", "w/first", b"0")}
            other = [n for n in c.nodes.values()]
            # writes through every member; some outside the prefix
            for i in range(60):
                n = other[i % 3]
                k = "w/k%d" % (i % 20)
                v = b"v%d" % i if i % 7 else bytes([0, 255, i])
                want[put(n, k, v)] = ("put", k, v)
                put(n, "wx/%d" % i, b"no")
                put(n, "elsewhere/%d" % i, b"no")
                if i % 10 == 9:
                    r = delete(n, "w/k%d" % (i % 20))
                    if r is not None:
                        want[r] = ("delete", "w/k%d" % (i % 20), None)
            # twice: the leader dies, another is elected, writes go on,
            # the dead one comes back; a watch on a dead member is
            # started again elsewhere from the last revision it saw
            seen, watcher = [], f
            for rnd in range(2):
                old = c.leader()
                old.kill9()
                alive = [n for n in c.nodes.values() if n.running()]
                wait_for(lambda: any(n.status().get("role") == "leader"
                                     for n in alive), 30, "a new leader")
                for i in range(20):
                    n = alive[i % 2]
                    k = "w/after%d-%d" % (rnd, i)
                    want[put(n, k, b"a%d" % i)] = ("put", k, b"a%d" % i)
                if watcher is old:
                    wait_for(lambda: w.done.is_set() or w.last_rev() > 0, 5,
                             "the cut watch")
                    seen += w.events()
                    w.close()
                    watcher = alive[0]
                    w = Watch(watcher, "since=%d" % (w.last_rev() + 1))
                old.start()
            alive = list(c.nodes.values())
            wait_for(lambda: w.last_rev() >= max(want), 20,
                     "the watch to reach revision %d" % max(want))
            got = seen + w.events()
            revs = [e["revision"] for e in got]
            assert revs == sorted(set(revs)), "out of order or repeated"
            missing = sorted(set(want) - set(revs))
            extra = sorted(set(revs) - set(want))
            assert not missing and not extra, (missing[:5], extra[:5])
            for e in got:
                op, key, val = want[e["revision"]]
                assert (e["op"], e["key"]) == (op, key), (e, op, key)
                if val is not None:
                    v = (base64.b64decode(e["value_base64"])
                         if "value_base64" in e else e["value"].encode())
                    assert v == val and e["size"] == len(val), (e, val)
            say("a watch on a follower: %d changes under w, each once, in "
                "order, with values, across the leader killed and restarted "
                "twice" % len(got))

            # cut, and resume elsewhere with since=last+1
            last = w.last_rev()
            w.close()
            for i in range(10):
                want[put(alive[0], "w/r%d" % i, b"r")] = ("put", "w/r%d" % i, b"r")
            other_node = next(n for n in alive if n is not watcher)
            w2 = Watch(other_node, "since=%d" % (last + 1))
            wait_for(lambda: w2.last_rev() >= max(want), 20, "the resumed watch")
            both = revs + [e["revision"] for e in w2.events()]
            assert sorted(both) == sorted(set(both)) == sorted(want), \
                "resumed watch: missing %s, repeated %s" % (
                    sorted(set(want) - set(both))[:5],
                    [r for r in set(both) if both.count(r) > 1][:5])
            say("cut and resumed on another member with since=last+1: "
                "nothing missing, nothing repeated")

            # the watching member restarts; the watch resumes there
            last = w2.last_rev()
            w2.close()
            other_node.stop()
            for i in range(5):
                want[put(watcher, "w/s%d" % i, b"s")] = ("put", "w/s%d" % i, b"s")
            other_node.start()
            w3 = Watch(other_node, "since=%d" % (last + 1))
            wait_for(lambda: w3.last_rev() >= max(want), 30,
                     "the watch after a restart")
            got3 = [e["revision"] for e in w3.events()]
            assert got3 == sorted(r for r in want if r > last), got3
            say("the member restarted: the watch resumed there from "
                "since=last+1 with the %d changes made meanwhile" % len(got3))

            # the long poll
            s, _, body = other_node.request(
                "GET", "/kv/w?watch&since=%d&wait=5" % (last + 1))
            lines = [json.loads(x) for x in body.splitlines()]
            assert s == 200 and [x["revision"] for x in lines if "op" in x] \
                == got3, lines
            assert "progress" in lines[-1], lines[-1]
            t0 = time.monotonic()
            nxt = max(want) + 1
            s, _, body = other_node.request(
                "GET", "/kv/w?watch&since=%d&wait=1" % nxt, timeout=15)
            took = time.monotonic() - t0
            lines = [json.loads(x) for x in body.splitlines()]
            assert s == 200 and all("progress" in x for x in lines), lines
            assert took >= 0.9, took
            say("?wait: what there is at once; nothing: progress only after "
                "the seconds asked")

            s, _, body = other_node.request(
                "GET", "/kv/w?watch&since=%d&wait=1&values=0" % (last + 1))
            lines = [json.loads(x) for x in body.splitlines() if b'"op"' in x]
            assert lines and all("value" not in x and "value_base64" not in x
                                 and "size" in x for x in lines), lines[:2]
            for q in ("since=abc", "since=-1", "values=2", "wait=100000"):
                s, _, body = other_node.request("GET", "/kv/w?watch&" + q)
                assert s == 400, (q, s, body)
            say("values=0 leaves values out; a bad since, values or wait "
                "is 400")

            # many watches of one prefix: each change is encoded once and
            # its lines shared by every watch that reads from the same
            # revision; each watch must still get exactly its own events
            base = put(other_node, "w/share/0", b"s0")
            mid = put(other_node, "w/share/1", b"s1")
            group = ([(Watch(other_node, "since=%d" % base), base, True)
                      for _ in range(4)] +
                     [(Watch(other_node, "since=%d&values=0" % base), base,
                       False) for _ in range(4)] +
                     [(Watch(other_node, "since=%d" % mid), mid, True)
                      for _ in range(4)])
            sent = {base: ("w/share/0", "s0"), mid: ("w/share/1", "s1")}
            for i in range(2, 60):
                k, v = "w/share/%d" % (i % 9), "s%d" % i
                sent[put(other_node, k, v.encode())] = (k, v)
            top = max(sent)
            for g, _, _ in group:
                wait_for(lambda g=g: g.last_rev() >= top, 30,
                         "every watch of the group at %d" % top)
            for g, since, values in group:
                got = [(e["revision"], e["key"], e.get("value"))
                       for e in g.events()
                       if e["key"].startswith("w/share/")]
                want_g = [(r, k, v if values else None)
                          for r, (k, v) in sorted(sent.items())
                          if r >= since]
                revs = [e["revision"] for e in g.events()]
                assert revs == sorted(set(revs)), "a repeat or out of order"
                assert got == want_g, (since, values, got[:3], want_g[:3])
                g.close()
            say("12 watches of one prefix (with and without values, from two "
                "revisions): each gets its %d or %d changes once, in order"
                % (len([r for r in sent if r >= base]),
                   len([r for r in sent if r >= mid])))

        # a small history: 410 with the oldest revision kept
        n = Node(binary, os.path.join(tmp, "small"),
                 extra=["--watch-history=20"]).start()
        try:
            for i in range(40):
                s, _, _ = n.request("PUT", "/kv/w/%d" % i, b"x")
                assert s in (200, 201)
            s, _, body = n.request("GET", "/kv/w?watch&since=1&wait=1")
            doc = json.loads(body)
            assert s == 410 and doc["code"] == "compacted", (s, body)
            s, _, body = n.request(
                "GET", "/kv/w?watch&since=%d&wait=1" % doc["oldest"])
            evs = [json.loads(x) for x in body.splitlines() if b'"op"' in x]
            assert s == 200 and len(evs) == 20, (s, len(evs))
            say("a since older than the history (20 events): 410 naming "
                "the oldest revision %d, from which the watch works"
                % doc["oldest"])
            ctl = ["--node=127.0.0.1:%d" % n.port, "watch", "w"]
            r = subprocess.run([kvfsctl] + ctl + [str(doc["oldest"]), "20"],
                               capture_output=True, text=True, timeout=30)
            lines = r.stdout.splitlines()
            assert r.returncode == 0 and len(lines) == 20, (r.returncode,
                                                            r.stdout, r.stderr)
            assert lines[0] == "%d put w/20 (1 bytes)" % doc["oldest"], lines[0]
            r = subprocess.run([kvfsctl] + ctl + ["1", "1"], capture_output=True,
                               text=True, timeout=30)
            assert r.returncode == 1 and "410" in r.stderr, (r.returncode, r.stderr)
            # a change made while kvfsctl waits is printed when it comes
            # (from the next revision named, so that no sleep is needed to
            # be sure kvfsctl asked before the change was made)
            nxt = n.status()["applied_index"] + 1
            p = subprocess.Popen([kvfsctl] + ctl + [str(nxt), "1"],
                                 stdout=subprocess.PIPE, text=True)
            s, _, b = n.request("PUT", "/kv/w/late", b"late")
            out, _ = p.communicate(timeout=30)
            assert p.returncode == 0 and out == "%d put w/late (4 bytes)\n" % (
                json.loads(b)["rev"]), out
            say("kvfsctl watch: the changes as lines, a 410 as an error, "
                "a change that comes while it waits")
            # a recursive delete above a watched key is its change too
            s, _, b = n.request("PUT", "/kv/w/t/a", b"x")
            since = json.loads(b)["rev"] + 1
            s, _, b = n.request("DELETE", "/kv/w/t/?recursive")
            assert s == 200, (s, b)
            rev = json.loads(b)["rev"]
            s, _, body = n.request("GET", "/kv/w/t/a?watch&since=%d&wait=5"
                                   % since)
            evs = [json.loads(x) for x in body.splitlines() if b'"op"' in x]
            assert evs == [{"revision": rev, "op": "rmdir", "key": "w/t",
                            "recursive": True}], evs
            say("a recursive delete of w/t is a change of w/t/a for its "
                "watch")
            # a node stopped while a watch streams ends the stream cleanly
            w = Watch(n, "")  # the 200 and its headers are in
            wait_for(lambda: w.lines, 10, "the watch's first line")
            t0 = time.monotonic()
            n.stop(timeout=15)
            assert w.done.wait(10), "the stream did not end"
            assert "progress" in w.lines[-1], w.lines[-1:]
            say("the node stopped while a watch streamed: the stream ended "
                "with a progress line, the node in %.1f s"
                % (time.monotonic() - t0))
        finally:
            if n.proc and n.proc.poll() is None:
                n.stop()


if __name__ == "__main__":
    sys.exit(main())
