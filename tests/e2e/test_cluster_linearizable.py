"""Fault injection: concurrent clients against a 3-node kvfs cluster while a
nemesis kills, pauses and isolates nodes; the recorded history must be
linearizable key by key, and every node must end with the same data.

Clients (threads) send PUT, If-Match/If-None-Match PUT (a cas), DELETE and
linearizable GET to random nodes over a few keys, every value unique, each
operation recorded with its invoke and complete times and its outcome; a
write answered 503, 500 or not at all is of unknown outcome (it may apply
later), never a failure. After the run every fault is healed, the test
waits for every node to apply the same index, reads every key on every node
(linearizable reads join the history; local reads must agree byte for
byte), and runs linearizability.py. The cluster, nemesis and clients are in
cluster_faults.py; docs/testing-notes.md says how to run it longer.

Environment: KVFS_FAULT_SECONDS (default 60), KVFS_FAULT_SEED (default:
random, printed), KVFS_FAULT_CLIENTS (8), KVFS_FAULT_KEYS (6),
KVFS_FAULT_NODES (3), KVFS_FAULT_RATE (operations a second per client at
most, 40; 0 = as fast as the cluster answers), KVFS_FAULT_KEEP (a
directory: keep the history, the fault log and the node logs there, even on
success; on a failure they are kept in /tmp anyway), KVFS_FAULT_KINDS (a
comma-separated subset of the nemesis's faults: kill, pause, isolate,
delay, no-quorum, kill-all), KVFS_FAULT_MIX (weights of read, write, cas,
delete; default 45,30,15,10), KVFS_FAULT_LOCAL_READS=1
(reads with ?consistency=local: not linearizable by design, to show the test
can fail), KVFS_FAULT_MAX_STEPS (checker budget per key, default 50000000)."""
import collections
import faulthandler
import json
import os
import random
import shutil
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster_faults import (FAULTS, Client, FaultCluster,  # noqa: E402
                            Nemesis, Recorder, outcome)
from harness import TempDir, kvfs_binary  # noqa: E402
import linearizability  # noqa: E402

WRITE_TIMEOUT_MS = 2000
CLIENT_TIMEOUT_S = 6.0  # > the write timeout: a timeout means "no answer"


def env_int(name, default):
    v = os.environ.get(name)
    return int(v) if v else default


def local_get(node, path):
    """(status, body) of GET path?consistency=local; (exception name, b"")
    when the node does not answer."""
    try:
        s, _, body = node.request("GET", path + "?consistency=local",
                                  timeout=10)
        return s, body
    except OSError as e:
        return type(e).__name__, b""


def final_reads(cluster, keys, rec):
    """Linearizable reads of every key on every node (into the history) and
    local reads compared across nodes. Returns a list of problems."""
    problems = []
    local = {}
    for i in range(cluster.n):
        node = cluster.nodes[i]
        for key in keys:
            op = {"client": "final", "key": key, "op": "read", "node": i + 1,
                  "invoke": rec.now()}
            try:
                s, _, body = node.request("GET", "/kv/" + key, timeout=10)
            except OSError as e:
                s, body = type(e).__name__, b""
            op["complete"] = rec.now()
            op["status"] = s
            if s in (200, 404):
                op["ok"] = True
                op["result"] = body.decode() if s == 200 else None
            else:
                op["ok"] = None
                problems.append("node %d: GET /kv/%s after healing: %s" %
                                (i + 1, key, s))
            rec.add(op)
            local[(i, key)] = local_get(node, "/kv/" + key)
        s, body = local_get(node, "/kv/")
        names = sorted(e["name"] for e in json.loads(body)["entries"]) \
            if s == 200 else body
        local[(i, "/")] = (s, names)
    for key in keys + ["/"]:
        seen = {i: local[(i, key)] for i in range(cluster.n)}
        if len(set(map(repr, seen.values()))) > 1:
            problems.append("nodes disagree on %s after converging: %s" % (
                key, "; ".join("node %d: %r" % (i + 1, v)
                               for i, v in seen.items())))
    return problems


def summary(ops, nemesis, elapsed):
    table = collections.defaultdict(collections.Counter)
    statuses = collections.defaultdict(collections.Counter)
    for op in ops:
        table[op["op"]][outcome(op)] += 1
        if op["ok"] is not True:
            statuses[op["op"]][str(op["status"])] += 1
    lines = ["%d operations in %.1fs:" % (len(ops), elapsed)]
    for kind in ("read", "write", "cas", "delete"):
        c = table.get(kind)
        if c:
            lines.append("  %-6s ok %6d  failed %5d  unknown %5d   (%s)" % (
                kind, c["ok"], c["failed"], c["unknown"],
                ", ".join("%s x%d" % kv for kv in
                          statuses[kind].most_common(4)) or "-"))
    lines.append("faults injected: %s" % (
        ", ".join("%s x%d" % kv for kv in sorted(nemesis.counts.items()))
        or "none"))
    return "\n".join(lines), table


def keep(dest, cluster, ops, nemesis):
    os.makedirs(dest, exist_ok=True)
    with open(os.path.join(dest, "history.jsonl"), "w") as f:
        for op in ops:
            f.write(json.dumps(op) + "\n")
    with open(os.path.join(dest, "faults.txt"), "w") as f:
        for start, end, text in nemesis.events:
            f.write("%9.3f %9.3f  %s\n" % (start, end, text))
    for node in cluster.nodes:
        if os.path.exists(node.log_path):
            shutil.copy(node.log_path, dest)


def excerpt(ops, result, before=0.1, limit=40):
    """The raw records (with the node each went to) of the first violating
    key from `before` seconds before its stuck operation to its end."""
    bad = result.failed[0]
    stuck = bad.stuck
    if stuck is None:
        return ""
    lo = stuck.invoke - before
    hi = stuck.complete if stuck.complete != float("inf") else \
        stuck.invoke + 1.0
    rows = [(n, op) for n, op in enumerate(ops, 1)
            if op["key"] == bad.key and op["invoke"] <= hi and
            op["complete"] >= lo]
    lines = ["history excerpt (key %s, %.3f..%.3f; history line: record):"
             % (json.dumps(bad.key), lo, hi)]
    for n, op in rows[-limit:]:
        lines.append("  %d: %s" % (n, json.dumps(op)))
    return "\n".join(lines)


def log_tails(cluster, n=15):
    out = []
    for i, node in enumerate(cluster.nodes):
        lines = node.read_log().splitlines()[-n:]
        out.append("--- node %d log (last %d lines, %s) ---" %
                   (i + 1, len(lines), node.log_path))
        out.extend(lines)
    return "\n".join(out)


def watchdog(cluster, seconds, done):
    """If the run is not over after `seconds`: print every thread's stack,
    kill -9 the nodes (never leave them behind) and exit 3."""
    if done.wait(seconds):
        return
    print("\nWATCHDOG: the run did not end within %.0fs; stacks:" % seconds,
          flush=True)
    faulthandler.dump_traceback(all_threads=True)
    for node in cluster.nodes:
        if node.proc and node.proc.poll() is None:
            node.proc.send_signal(signal.SIGCONT)
            node.proc.kill()
    print(log_tails(cluster), flush=True)
    os._exit(3)


def main():
    binary = kvfs_binary()
    seconds = float(os.environ.get("KVFS_FAULT_SECONDS") or 60)
    seed = env_int("KVFS_FAULT_SEED", random.SystemRandom().randrange(1 << 32))
    n_clients = env_int("KVFS_FAULT_CLIENTS", 8)
    n_keys = env_int("KVFS_FAULT_KEYS", 6)
    n_nodes = env_int("KVFS_FAULT_NODES", 3)
    max_steps = env_int("KVFS_FAULT_MAX_STEPS", 50000000)
    rate = float(os.environ.get("KVFS_FAULT_RATE") or 40)
    mix = [float(x) for x in
           (os.environ.get("KVFS_FAULT_MIX") or "45,30,15,10").split(",")]
    if len(mix) != 4 or sum(mix) <= 0:
        sys.exit("KVFS_FAULT_MIX: four weights: read,write,cas,delete")
    mix = [x / sum(mix) for x in mix]
    local_reads = os.environ.get("KVFS_FAULT_LOCAL_READS") == "1"
    keep_dir = os.environ.get("KVFS_FAULT_KEEP")
    kinds = [k for k in os.environ.get("KVFS_FAULT_KINDS", "").split(",")
             if k]
    for k in kinds:
        if k not in FAULTS:
            sys.exit("KVFS_FAULT_KINDS: %r is not one of %s" %
                     (k, ",".join(FAULTS)))
    print("seed %d (KVFS_FAULT_SEED=%d repeats the random choices, not the "
          "threads' timing); %gs, "
          "%d nodes, %d clients at <= %g op/s, %d keys%s" %
          (seed, seed, seconds, n_nodes, n_clients, rate, n_keys,
           ", LOCAL READS (expect a violation)" if local_reads else ""),
          flush=True)
    rng = random.Random(seed)
    keys = ["k%d" % k for k in range(n_keys)]
    failures = []

    with TempDir() as tmp:
        cluster = FaultCluster(binary, tmp, n_nodes, rng,
                               ["--write-timeout=%d" % WRITE_TIMEOUT_MS])
        t0 = time.monotonic()
        rec = Recorder(t0)
        stop = threading.Event()
        faults = dict(FAULTS)
        if kinds:
            faults = {k: faults[k] for k in kinds}
        if n_nodes < 3:
            faults.pop("no-quorum", None)
        nemesis = Nemesis(cluster, random.Random(rng.random()), stop, t0,
                          faults)
        clients = [Client(c, cluster, keys, random.Random(rng.random()), rec,
                          stop, CLIENT_TIMEOUT_S, local_reads, rate, mix)
                   for c in range(1, n_clients + 1)]
        done = threading.Event()
        threading.Thread(target=watchdog, daemon=True,
                         args=(cluster, seconds + 200, done)).start()
        try:
            print("time 0 = %.6f on CLOCK_MONOTONIC (for node logs)" % t0)
            cluster.start()
            cluster.wait_converged(30)
            print("cluster up: nodes on %s, peers through proxies on %s" % (
                cluster.ports(), [p.port for p in cluster.proxies]),
                flush=True)
            for c in clients:
                c.thread.start()
            nemesis.thread.start()
            stop.wait(seconds)
            stop.set()
            for c in clients:
                c.thread.join()
                c.close()
            if nemesis.thread.is_alive():
                nemesis.thread.join()
            elapsed = time.monotonic() - t0
            for c in clients:
                if c.error:
                    failures.append("client %d crashed: %r" % (c.cid, c.error))
            if nemesis.error:
                failures.append("nemesis: %s" % nemesis.error)
            for i, rc, log in cluster.check_alive():
                failures.append("node %d exited on its own (status %s); "
                                "log tail:\n%s" % (i + 1, rc, log[-2000:]))
            cluster.heal_all()
            t_heal = time.monotonic()
            cluster.wait_converged(60)
            print("converged %.1fs after healing" %
                  (time.monotonic() - t_heal), flush=True)
            failures.extend(final_reads(cluster, keys, rec))
        except AssertionError as e:
            failures.append(str(e))
            elapsed = time.monotonic() - t0
        finally:
            stop.set()
            cluster.stop()
            done.set()

        ops = sorted(rec.ops, key=lambda o: o["invoke"])
        text, table = summary(ops, nemesis, elapsed)
        print(text)
        for start, end, what in nemesis.events:
            print("  fault %7.2f-%7.2f  %s" % (start, end, what))
        if rec.unexpected:
            print("unexpected answers (%d), e.g.:" % len(rec.unexpected))
            for op in rec.unexpected[:5]:
                print("  " + json.dumps(op))
        if not failures and sum(table[k]["ok"] for k in
                                ("write", "cas", "delete")) < 10:
            failures.append("fewer than 10 successful writes: the run "
                            "checked almost nothing")

        t = time.monotonic()
        try:
            result = linearizability.check_history(ops, max_steps=max_steps)
            verdict = result.explain()
            if not result.ok:
                failures.append("NOT LINEARIZABLE (seed %d)\n%s\n%s" %
                                (seed, verdict, excerpt(ops, result)))
        except linearizability.Inconclusive as e:
            verdict = "inconclusive: %s" % e
            failures.append("checker: %s (raise KVFS_FAULT_MAX_STEPS)" % e)
        print("checker (%.1fs): %s" % (time.monotonic() - t,
                                        verdict.splitlines()[0]))

        dest = keep_dir
        if failures and not dest:
            dest = os.path.join("/tmp", "kvfs-faults-%d-%d" %
                                (seed, os.getpid()))
        if dest:
            keep(dest, cluster, ops, nemesis)
            print("history, faults and node logs kept in %s (line numbers "
                  "in the checker's explanation are lines of "
                  "history.jsonl)" % dest)
        if failures:
            print("\nFAILED (seed %d):" % seed)
            for f in failures:
                print(f + "\n")
            print(log_tails(cluster))
            return 1
    print("ok: linearizable, %d nodes converged to the same data (seed %d)"
          % (n_nodes, seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
