"""POST /txn: concurrent transfers between accounts on every member of a
3-node cluster while members are killed (kill -9, the leader too) and
restarted; money is never created or lost and the history is
linearizable as multi-key transactions.

N accounts acct/0..N-1 start at 100 each (one txn). Clients (two per
member) loop: read two accounts in one read-only txn (both gets at one
revision), then try to move an amount from one to the other with a txn
that compares both mod_revs to what was read and, in its success branch,
puts both new balances; its failure branch gets both again. Every value
is "BALANCE|TAG" with a unique tag, so the linearizability checker
(linearizability.check_txns: the whole store as one object) knows which
write each read saw. A request that was refused before it was sent has
no effect; one that timed out or was answered 5xx may have applied
(outcome unknown). Meanwhile a nemesis kills a member with SIGKILL every
few seconds (every third time the leader) and starts it again.

Checked: every read of all the accounts at once (one client in five
does one now and then) sums to N x 100 (atomic snapshots);
a failure branch ran only when a compared mod_rev had really moved; the
history is linearizable; after healing, every member holds the same
balances, summing to N x 100; and the watch history of every member has,
at each successful transfer's revision, exactly its two puts (one entry,
two events, the txn's revision). Then the 400s: malformed bodies, too many
operations, bad keys, overlapping writes, unknown fields, "version".

Environment: KVFS_TXN_SECONDS (default 25), KVFS_TXN_ACCOUNTS (5),
KVFS_TXN_SEED (random, printed)."""
import json
import os
import random
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Cluster, TempDir, kvfs_binary, wait_for  # noqa: E402
import linearizability  # noqa: E402

START = 100
CLIENT_TIMEOUT = 8.0  # > --write-timeout: a timeout is "no answer"


def txn(node, body, timeout=CLIENT_TIMEOUT):
    """(status, answer or None); ('refused', None) if the connection was
    refused (nothing sent); ('lost', None) for no answer."""
    try:
        s, _, b = node.request("POST", "/txn", body=json.dumps(body),
                               timeout=timeout)
    except ConnectionRefusedError:
        return "refused", None
    except OSError:
        return "lost", None
    try:
        return s, json.loads(b)
    except ValueError:
        return s, None


class Recorder:
    def __init__(self):
        self.t0 = time.monotonic()
        self.lock = threading.Lock()
        self.ops = []
        self.problems = []
        self.acked = []  # (rev, {key: value}) of successful transfers

    def now(self):
        return time.monotonic() - self.t0

    def add(self, op):
        with self.lock:
            self.ops.append(op)

    def problem(self, text):
        with self.lock:
            self.problems.append(text)


def balances(results, keys):
    """{key: (value, mod_rev)} from a txn answer's gets."""
    out = {}
    for r in results:
        if r["op"] == "get" and r["key"] in keys:
            out[r["key"]] = (r.get("value") if r["found"] else None,
                             r.get("mod_rev", 0))
    return out


def snapshot(cid, node, accounts, rec, total):
    """All the accounts in one read-only txn: they must sum to total."""
    t0 = rec.now()
    s, ans = txn(node, {"success": [{"op": "get", "key": k}
                                    for k in accounts]})
    if s != 200:
        return
    vals = balances(ans["results"], accounts)
    if any(v[0] is None for v in vals.values()):
        rec.problem("client %d: an account is gone: %r" % (cid, vals))
        return
    rec.add({"client": cid, "reads": {k: v[0] for k, v in vals.items()},
             "writes": {}, "ok": True, "invoke": t0, "complete": rec.now()})
    got = sum(int(v[0].split("|")[0]) for v in vals.values())
    if got != total:
        rec.problem("client %d: the accounts sum to %d at rev %s, not %d: "
                    "%r" % (cid, got, ans["rev"], total, vals))


def client(cid, nodes, accounts, rec, stop, seed, total):
    rnd = random.Random(seed)
    seq = 0
    while not stop.is_set():
        node = nodes[rnd.randrange(len(nodes))]
        a, b = rnd.sample(accounts, 2)
        t0 = rec.now()
        s, ans = txn(node, {"success": [{"op": "get", "key": a},
                                        {"op": "get", "key": b}]})
        t1 = rec.now()
        if s != 200:
            if s not in ("refused", "lost", 503, 500):
                rec.problem("client %d read: %s %r" % (cid, s, ans))
            time.sleep(0.05)  # a member down: try another soon
            continue
        seen = balances(ans["results"], (a, b))
        if any(v[0] is None for v in seen.values()):
            rec.problem("client %d: an account is gone: %r" % (cid, seen))
            return
        rec.add({"client": cid, "reads": {k: v[0] for k, v in seen.items()},
                 "writes": {}, "ok": True, "invoke": t0, "complete": t1})
        if rnd.random() < 0.2:
            snapshot(cid, node, accounts, rec, total)
        amt = rnd.randint(1, 20)
        va, vb = int(seen[a][0].split("|")[0]), int(seen[b][0].split("|")[0])
        if va < amt:
            continue
        seq += 1
        tag = "c%d-%d" % (cid, seq)
        new = {a: "%d|%s" % (va - amt, tag), b: "%d|%s" % (vb + amt, tag)}
        body = {"compare": [{"key": a, "target": "mod_rev", "op": "==",
                             "rev": seen[a][1]},
                            {"key": b, "target": "mod_rev", "op": "==",
                             "rev": seen[b][1]}],
                "success": [{"op": "put", "key": a, "value": new[a]},
                            {"op": "put", "key": b, "value": new[b]}],
                "failure": [{"op": "get", "key": a},
                            {"op": "get", "key": b}]}
        t0 = rec.now()
        s, ans = txn(node, body)
        t1 = rec.now()
        op = {"client": cid, "reads": {a: seen[a][0], b: seen[b][0]},
              "writes": new, "invoke": t0, "complete": t1}
        if s == 200 and ans["succeeded"]:
            op["ok"] = True
            with rec.lock:
                rec.acked.append((ans["rev"], new))
        elif s == 200:
            # the failure branch: it read both at its revision, and one
            # of the compared revisions must really have moved
            now = balances(ans["results"], (a, b))
            op = {"client": cid, "reads": {k: v[0] for k, v in now.items()},
                  "writes": {}, "ok": True, "invoke": t0, "complete": t1}
            if now[a][1] == seen[a][1] and now[b][1] == seen[b][1]:
                rec.problem("client %d: the failure branch ran though "
                            "neither mod_rev moved: %r then %r" %
                            (cid, seen, now))
        elif s == "refused":
            op["ok"] = False
        elif s in ("lost", 500, 503):
            op["ok"] = None
            op["complete"] = None
        else:
            rec.problem("client %d transfer: %s %r" % (cid, s, ans))
            op["ok"] = None
            op["complete"] = None
        rec.add(op)


def nemesis(cluster, rnd, stop, events, rec):
    """Kill -9 a member every 2-4 s (every third time the leader), start it
    again 0.5-1.5 s later; never two down at once."""
    k = 0
    while not stop.wait(rnd.uniform(2, 4)):
        k += 1
        victim = None
        if k % 3 == 0:
            victim = cluster.agreed_leader()
        if victim is None:
            victim = cluster[rnd.randint(1, len(cluster.nodes))]
        events.append("%.2f kill -9 node %d%s" % (
            rec.now(), victim.id, " (leader)" if k % 3 == 0 else ""))
        victim.kill9()
        stop.wait(rnd.uniform(0.5, 1.5))
        victim.start(wait=True)
        events.append("%.2f node %d back" % (rec.now(), victim.id))


def check_watch(node, first_rev, acked, accounts):
    """The watch history of node from first_rev: at each acknowledged
    transfer's revision exactly its two puts."""
    events = {}
    since = first_rev
    last = max(r for r, _ in acked)
    deadline = time.monotonic() + 60
    while since <= last and time.monotonic() < deadline:
        s, _, body = node.request(
            "GET", "/kv/acct?watch&since=%d&wait=1" % since, timeout=30)
        assert s == 200, (node.id, s, body[:200])
        for line in body.splitlines():
            e = json.loads(line)
            if "revision" in e:
                events.setdefault(e["revision"], []).append(e)
                since = max(since, e["revision"] + 1)
            elif "progress" in e:
                since = max(since, e["progress"] + 1)
    assert since > last, "node %d: watch stopped at %d of %d" % (
        node.id, since, last)
    for rev, new in acked:
        got = sorted((e["op"], e["key"], e.get("value")) for e in
                     events.get(rev, []))
        want = sorted(("put", k, v) for k, v in new.items())
        assert got == want, "node %d rev %d: events %r, the txn wrote %r" % (
            node.id, rev, got, want)
    return sum(len(v) for v in events.values())


def bad_requests(node):
    """400s naming what is wrong, and nothing changes."""
    big = [{"op": "get", "key": "k%d" % i} for i in range(129)]
    cases = [
        (b"not json", "JSON object"),
        (json.dumps([]), "JSON object"),
        (json.dumps({"succes": []}), 'unknown field "succes"'),
        (json.dumps({"success": big}), "more than 128"),
        (json.dumps({"compare": [{"key": "a", "target": "mod_rev",
                                  "op": "==", "rev": 1}] * 64,
                     "success": big[:65]}), "more than 128"),
        (json.dumps({"success": [{"op": "put", "key": "a//b",
                                  "value": "x"}]}), "success[0]"),
        (json.dumps({"success": [{"op": "put", "key": "d",
                                  "value": "x"},
                                 {"op": "delete_range", "key": "d"}]}),
         "success[1]"),
        (json.dumps({"failure": [{"op": "frob", "key": "x"}]}),
         "failure[0].op"),
        (json.dumps({"success": [{"op": "get", "key": "x",
                                  "value": "y"}]}), "only a put"),
        (json.dumps({"compare": [{"key": "x", "target": "version",
                                  "op": "==", "rev": 1}]}), "version"),
        (json.dumps({"compare": [{"key": "x", "target": "mod_rev",
                                  "op": "=", "rev": 1}]}), "compare[0].op"),
        (json.dumps({"compare": [{"key": "x", "target": "mod_rev",
                                  "op": "==", "rev": -1}]}), "compare[0]"),
        (json.dumps({"compare": [{"key": "x", "target": "exists",
                                  "op": "<", "value": True}]}), "exists"),
        (json.dumps({"success": [{"op": "put", "key": "x",
                                  "value_base64": "!!"}]}), "value_base64"),
        (json.dumps({"success": [{"op": "put", "key": "x",
                                  "value": "a\u0000b"}]}), "u0000"),
    ]
    for body, needle in cases:
        s, _, b = node.request("POST", "/txn", body=body)
        msg = json.loads(b).get("error", "") if s == 400 else ""
        assert s == 400 and needle in msg, (body[:80], s, b[:200], needle)
    s, _, b = node.request("POST", "/txn?x=1", body="{}")
    assert s == 400 and b"unknown query parameter: x" in b, (s, b)
    s, _, b = node.request("GET", "/txn")
    assert s == 405, (s, b)
    # a value over 16 MiB in all: 413 or 400, nothing written
    half = "x" * (9 << 20)
    s, _, b = node.request("POST", "/txn", body=json.dumps(
        {"success": [{"op": "put", "key": "big1", "value": half},
                     {"op": "put", "key": "big2", "value": half}]}),
        timeout=60)
    assert s == 400 and b"16 MiB" in b, (s, b[:200])
    for k in ("a", "d", "x", "big1"):
        s, _, _ = node.get(k)
        assert s == 404, (k, s)
    # a big body is read off the listener's thread: same answers
    big = "y" * (1 << 20)
    s, a = txn(node, {"compare": [{"key": "bigok", "target": "exists",
                                   "op": "==", "value": False}],
                      "success": [{"op": "put", "key": "bigok",
                                   "value": big},
                                  {"op": "get", "key": "bigok"}]},
               timeout=60)
    assert s == 200 and a["succeeded"] and \
        a["results"][1]["value"] == big, (s, str(a)[:200])
    s, _, b = node.request("POST", "/txn", body=json.dumps(
        {"success": [{"op": "put", "key": "bigok", "value": big},
                     {"op": "put", "key": "bigok/x", "value": "1"}]}),
        timeout=60)
    assert s == 400 and b"success[1]: two writes" in b, (s, b[:200])
    # binary values in and out, a conflict changes nothing
    s, a = txn(node, {"success": [{"op": "put", "key": "bin",
                                   "value_base64": "AP8A"},
                                  {"op": "get", "key": "bin"}]})
    assert s == 200 and a["results"][1]["value_base64"] == "AP8A", (s, a)
    s, a = txn(node, {"success": [{"op": "put", "key": "fresh",
                                   "value": "1"},
                                  {"op": "put", "key": "bin/under",
                                   "value": "1"}]})
    assert s == 409, (s, a)
    assert node.get("fresh")[0] == 404
    print("ok   - 400s name the item (bad JSON, unknown fields, > 128 items, "
          "bad keys, overlapping writes, version, > 16 MiB), 405, 409 "
          "changes nothing, binary values round-trip, a 1 MiB txn")


def kvfsctl_txn(kvfsctl, node):
    """kvfsctl txn: the body from stdin or a file, the answer printed; exit
    0 (success branch), 3 (failure branch), 1 (a 400, its message)."""
    def run(args, body):
        return subprocess.run([kvfsctl, "--node=127.0.0.1:%d" % node.port,
                               "txn"] + args, input=body.encode(),
                              capture_output=True, timeout=30)
    body = {"compare": [{"key": "ctl/k", "target": "exists", "op": "==",
                         "value": False}],
            "success": [{"op": "put", "key": "ctl/k", "value": "v1"}],
            "failure": [{"op": "get", "key": "ctl/k"}]}
    p = run([], json.dumps(body))
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    assert json.loads(p.stdout)["succeeded"] is True, p.stdout
    path = os.path.join(os.environ.get("TMPDIR", "/tmp"),
                        "kvfs-txn-%d.json" % os.getpid())
    with open(path, "w") as f:
        json.dump(body, f)
    try:
        p = run([path], "")
    finally:
        os.unlink(path)
    assert p.returncode == 3, (p.returncode, p.stdout, p.stderr)
    ans = json.loads(p.stdout)
    assert ans["succeeded"] is False and \
        ans["results"][0]["value"] == "v1", ans
    p = run(["-"], '{"success":[{"op":"put","key":"ctl/x"}]}')
    assert p.returncode == 1 and b"success[0]: a put takes" in p.stderr, (
        p.returncode, p.stderr)
    # the word form
    p = run(["if", "ctl/k", "value", "==", "v1", "then", "put", "ctl/k",
             "v2", "get", "ctl/k", "else", "get", "ctl/k"], "")
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    ans = json.loads(p.stdout)
    assert ans["results"][1]["value"] == "v2", ans
    p = run(["if", "ctl/k", "mod_rev", "<", "1", "put", "ctl/k", "v3",
             "else", "del", "ctl/k", "del-range", "ctl/d"], "")
    assert p.returncode == 3, (p.returncode, p.stdout, p.stderr)
    assert json.loads(p.stdout)["results"][0]["deleted"] == 1, p.stdout
    p = run(["get", "ctl/k", "frob"], "")
    assert p.returncode == 2 and b'unknown word "frob"' in p.stderr, (
        p.returncode, p.stderr)
    p = run(["if", "ctl/k", "exists", "=="], "")
    assert p.returncode == 2 and b"too few words" in p.stderr, p.stderr
    print("ok   - kvfsctl txn: stdin or a file, or words; exit 0 on "
          "success, 3 for the failure branch, 1 and the message for a 400, "
          "2 for bad words")


def main():
    binary = kvfs_binary()
    kvfsctl = sys.argv[2] if len(sys.argv) > 2 else os.path.join(
        os.path.dirname(binary), "kvfsctl")
    seconds = float(os.environ.get("KVFS_TXN_SECONDS") or 25)
    n_acc = int(os.environ.get("KVFS_TXN_ACCOUNTS") or 5)
    seed = int(os.environ.get("KVFS_TXN_SEED") or
               random.SystemRandom().randrange(1 << 32))
    print("seed %d, %gs, %d accounts" % (seed, seconds, n_acc), flush=True)
    rnd = random.Random(seed)
    accounts = ["acct/%d" % i for i in range(n_acc)]
    total = n_acc * START
    with TempDir() as tmp:
        os.mkdir(os.path.join(tmp, "c"))
        with Cluster(binary, os.path.join(tmp, "c"), n=3, mounts=False,
                     extra=["--write-timeout=3000"]) as c:
            c.start()
            c.leader()
            rec = Recorder()
            init = {k: "%d|init" % START for k in accounts}
            t0 = rec.now()
            s, ans = txn(c[1], {"success": [{"op": "put", "key": k,
                                             "value": v}
                                            for k, v in init.items()]})
            assert s == 200 and ans["succeeded"], (s, ans)
            first_rev = ans["rev"]
            rec.add({"client": 0, "reads": {}, "writes": init, "ok": True,
                     "invoke": t0, "complete": rec.now()})
            stop = threading.Event()
            nodes = list(c.nodes.values())
            threads = [threading.Thread(
                target=client, args=(i, nodes, accounts, rec, stop,
                                     rnd.random(), total))
                for i in range(1, 7)]
            events = []
            nem = threading.Thread(target=nemesis, args=(
                c, random.Random(rnd.random()), stop, events, rec))
            for t in threads:
                t.start()
            nem.start()
            stop.wait(seconds)
            stop.set()
            for t in threads:
                t.join()
            nem.join()
            for e in events:
                print("  " + e)
            c.check_alive()
            c.wait_converged(60)
            ok = sum(1 for o in rec.ops if o["writes"] and o["ok"] and
                     o["client"] != 0)
            unknown = sum(1 for o in rec.ops if o["ok"] is None)
            reads = sum(1 for o in rec.ops if not o["writes"])
            print("%d transfers acknowledged, %d of unknown outcome, %d "
                  "reads and failure branches; %d kills" % (
                      ok, unknown, reads,
                      sum("kill" in e for e in events)), flush=True)
            assert not rec.problems, "\n".join(rec.problems[:5])
            assert ok >= 20, "too few transfers went through: %d" % ok
            assert sum("kill" in e for e in events) >= max(1, seconds // 8), \
                events
            # every read (a snapshot of two accounts) fits the sum: the
            # other accounts' money is elsewhere, so only a final read of
            # all of them says it exactly
            for node in nodes:
                s, ans = txn(node, {"success": [{"op": "get", "key": k}
                                                for k in accounts]})
                assert s == 200, (node.id, s, ans)
                vals = balances(ans["results"], accounts)
                got = sum(int(v[0].split("|")[0]) for v in vals.values())
                assert got == total, (node.id, got, total, vals)
                rec.add({"client": "final", "reads":
                         {k: v[0] for k, v in vals.items()}, "writes": {},
                         "ok": True, "invoke": rec.now() - 0.5,
                         "complete": rec.now()})
                local = {}
                for k in accounts:
                    s, _, b = node.get(k, local=True)
                    local[k] = b.decode()
                assert local == {k: v[0] for k, v in vals.items()}, (
                    node.id, local, vals)
            print("ok   - the accounts sum to %d on every member, local "
                  "reads agree" % total)
            t = time.monotonic()
            r = linearizability.check_txns(rec.ops, max_steps=20000000)
            print("checker (%.1fs, %d steps): %s" % (
                time.monotonic() - t, r.steps, r.explain().splitlines()[0]))
            assert r.ok, r.explain()
            print("ok   - %d transactions linearizable (the store as one "
                  "object)" % len(rec.ops))
            for node in nodes:
                n = check_watch(node, first_rev, rec.acked, accounts)
                print("ok   - node %d's watch: each of the %d transfers' "
                      "two puts at its revision (%d events)" % (
                          node.id, len(rec.acked), n))
            bad_requests(wait_for(c.agreed_leader, 20, "a leader"))
            kvfsctl_txn(kvfsctl, c[2])


if __name__ == "__main__":
    main()
