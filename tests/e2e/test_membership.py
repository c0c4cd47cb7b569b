"""Membership end to end (issue 6) on real kvfs nodes over HTTP, no mounts.

Three nodes get KVFS_MEMBERSHIP_KEYS keys (200,000) from forked loaders
with many keep-alive connections and compact their logs; then, under a
background writer, node 4 joins (--join, learner, snapshot, voter), a
follower is removed with kvfsctl, a follower is wiped and rejoins, the
leader removes itself, and node 5 comes in through kvfsctl add + --join.
The end: one state_hash at one applied_index on every member, every
acknowledged write readable, corrupt data dirs refused with advice. The
Cluster helper is harness.py; docs/cluster.md sums up what this shows.
Usage: test_membership.py KVFS [KVFSCTL]."""
import http.client
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

from harness import Cluster, ClusterNode, TempDir, free_port, kvfs_binary, \
    wait_for

KEYS = int(os.environ.get("KVFS_MEMBERSHIP_KEYS", "200000"))
# Loader processes x connections each (keep-alive, one request in flight).
PROCS = int(os.environ.get("KVFS_MEMBERSHIP_LOADERS", "4"))
CONNS = int(os.environ.get("KVFS_MEMBERSHIP_CONNS", "32"))
SNAP_EVERY = int(os.environ.get("KVFS_MEMBERSHIP_SNAPSHOT_EVERY",
                                str(max(500, KEYS // 4))))
# Values read back in full on every member (all keys are checked by
# listing: names and sizes). 0 = every key.
SAMPLE = int(os.environ.get("KVFS_MEMBERSHIP_SAMPLE", "3000"))
# Seconds of background writes measured before node 4 starts.
BEFORE_S = float(os.environ.get("KVFS_MEMBERSHIP_BEFORE_S", "3"))
CATCHUP_TIMEOUT = 60 + KEYS / 2000.0
# The leader keeps a trail of entries in memory (raft/node/trail.c,
# /status memory_first_index): a node that needs no older entry gets
# entries, not a snapshot. Only past it must catch-up be a snapshot.


def load_key(i):
    return "load/%03d/%07d" % (i % 1000, i)


def load_value(i):
    # Key-dependent length, so the listing's sizes check each key too.
    return (b"v%d-" % i) + b"x" * (i % 61)


def say(fmt, *args):
    print(fmt % args if args else fmt)
    sys.stdout.flush()


# --- a fast raw keep-alive client --------------------------------------------

class Conn:
    """One keep-alive HTTP/1.1 connection, one request at a time. Raw
    sockets: http.client costs too much CPU to load 200,000 keys quickly."""

    def __init__(self, port, timeout=30):
        self.port = port
        self.timeout = timeout
        self.sock = None
        self.f = None

    def _open(self):
        self.sock = socket.create_connection(("127.0.0.1", self.port),
                                             timeout=self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.f = self.sock.makefile("rb")

    def close(self):
        if self.sock:
            self.f.close()
            self.sock.close()
        self.sock = self.f = None

    def request(self, method, path, body=b""):
        """(status, body). OSError on a broken connection (closed first)."""
        if self.sock is None:
            self._open()
        try:
            head = "%s %s HTTP/1.1\r\nHost: kvfs\r\nContent-Length: %d\r\n\r\n" \
                % (method, path, len(body))
            self.sock.sendall(head.encode() + body)
            line = self.f.readline()
            if not line:
                raise ConnectionResetError("connection closed")
            status = int(line.split()[1])
            length, close = 0, False
            while True:
                h = self.f.readline()
                if h in (b"\r\n", b"\n", b""):
                    break
                name, _, value = h.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection" and b"close" in value.lower():
                    close = True
            data = self.f.read(length) if length else b""
            if close:
                self.close()
            return status, data
        except (OSError, ValueError, IndexError) as e:
            self.close()
            raise OSError("request failed: %r" % e)


def _kv_path(key, local=False):
    return "/kv/" + urllib.parse.quote(key) + ("?consistency=local"
                                                if local else "")


def _worker_put(port, idx, bad):
    c = Conn(port)
    for i in idx:
        for _ in range(5):
            try:
                s, _ = c.request("PUT", _kv_path(load_key(i)), load_value(i))
                if s in (200, 201):
                    break
            except OSError:
                pass
            time.sleep(0.2)
        else:
            bad.append(i)
    c.close()


def _worker_check(port, idx, bad):
    c = Conn(port)
    for i in idx:
        try:
            s, data = c.request("GET", _kv_path(load_key(i), local=True))
        except OSError:
            s, data = None, None
        if s != 200 or data != load_value(i):
            bad.append(i)
    c.close()


def parallel(worker, port, indexes, procs=PROCS, conns=CONNS):
    """Run worker(port, part, bad) on procs forked processes with conns
    threads in all, each thread on its own slice of indexes. Returns the
    indexes the workers put in bad (those that failed)."""
    indexes = list(indexes)
    pipes = []
    for p in range(procs):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: threads, then the failures on the pipe
            code = 0
            try:
                os.close(r)
                bad = []
                ts = [threading.Thread(target=worker,
                                       args=(port, indexes[t::conns], bad))
                      for t in range(p, conns, procs)]
                for t in ts:
                    t.start()
                for t in ts:
                    t.join()
                with os.fdopen(w, "w") as out:
                    json.dump(bad, out)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        os.close(w)
        pipes.append((pid, r))
    failed = []
    for pid, r in pipes:
        with os.fdopen(r) as f:
            text = f.read()
        _, st = os.waitpid(pid, 0)
        assert st == 0 and text, "a worker process failed (status %d)" % st
        failed += json.loads(text)
    return failed


# --- background writes ------------------------------------------------------------

class Writer(threading.Thread):
    """PUTs bg/N (unique keys) to whichever node leads, one at a time, and
    records (start time, latency, node id) for each acknowledged write. On a
    refused or failed request it asks the cluster for the leader again.
    Keys whose outcome is unknown are never checked."""

    def __init__(self, members):
        super().__init__(daemon=True, name="writer")
        self.members = members  # callable: the nodes to ask for a leader
        self.stop_flag = threading.Event()
        self.acked = {}  # key -> value
        self.samples = []  # (t0, latency s, node id)
        self.failures = 0
        self.seq = 0

    def find_leader(self):
        for n in self.members():
            try:
                st = n.status(timeout=1)
            except Exception:
                continue
            if st["role"] == "leader":
                return n
        return None

    def run(self):
        node, conn = None, None
        while not self.stop_flag.is_set():
            if node is None:
                node = self.find_leader()
                if node is None:
                    time.sleep(0.05)
                    continue
                conn = Conn(node.port, timeout=10)
            self.seq += 1
            key = "bg/%07d" % self.seq
            value = b"bg-%d" % self.seq
            t0 = time.monotonic()
            try:
                s, _ = conn.request("PUT", _kv_path(key), value)
            except OSError:
                s = None
            dt = time.monotonic() - t0
            if s in (200, 201):
                self.acked[key] = value
                self.samples.append((t0, dt, node.id))
            else:
                self.failures += 1
                conn.close()
                node = None
                time.sleep(0.05)
        if conn:
            conn.close()

    def stop(self):
        self.stop_flag.set()
        self.join(30)
        assert not self.is_alive(), "the background writer did not stop"

    def window(self, t_from, t_to, node_id=None):
        return sorted(dt for t0, dt, n in self.samples
                      if t_from <= t0 < t_to and
                      (node_id is None or n == node_id))


def pct(sorted_values, p):
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, int(round(p / 100.0 *
                                              (len(sorted_values) - 1))))
    return sorted_values[k]


def lat(values):
    return "n=%d p50 %.1f ms p99 %.1f ms max %.1f ms" % (
        len(values), pct(values, 50) * 1000, pct(values, 99) * 1000,
        (values[-1] if values else float("nan")) * 1000)


# --- members ------------------------------------------------------------------

# The cluster's token file (harness.Cluster writes it): joiners present it,
# membership changes need it.
TOKEN = {"file": None, "headers": {}}


def use_token(c):
    TOKEN["file"] = c.token_file
    with open(c.token_file) as f:
        TOKEN["headers"] = {"X-Kvfs-Token": f.read().strip()}
    for n in c.nodes.values():
        n.headers = TOKEN["headers"]


class JoinNode(ClusterNode):
    """A node started with --join=ADDR instead of --peers."""

    def __init__(self, binary, node_id, root, join_addr):
        super().__init__(binary, node_id, os.path.join(root, "node%d" %
                                                       node_id),
                         free_port(), None,
                         extra=["--cluster-token=" + TOKEN["file"]],
                         log_path=os.path.join(root, "node%d.log" % node_id))
        self.join_addr = join_addr
        self.headers = TOKEN["headers"]

    def command(self, mountpoint=None):
        return [self.binary, "-f", "--id=%d" % self.id, "--data=" + self.data,
                "--join=" + self.join_addr,
                "--listen=127.0.0.1:%d" % self.port] + self.extra


def addr(node):
    return "127.0.0.1:%d" % node.port


def members_of(node):
    """{id: role} and the leader from node's GET /cluster/members."""
    s, _, body = node.request("GET", "/cluster/members", timeout=2)
    assert s == 200, (s, body)
    doc = json.loads(body)
    return {m["id"]: m["role"] for m in doc["members"]}, doc["leader"]


def log_text(node):
    try:
        with open(node.log_path, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def log_lines(node, needle):
    return [l for l in log_text(node).splitlines() if needle in l]


def leader_among(c, ids, timeout=30, not_id=None):
    """Wait for a node of ids that says it leads and that a majority of ids
    name as leader in its term; return it."""
    def poll():
        st = c.statuses()
        for i in ids:
            s = st.get(i)
            if not s or s["role"] != "leader" or i == not_id:
                continue
            agree = sum(1 for j in ids if j in st and
                        st[j]["leader"] == i and st[j]["term"] == s["term"])
            if agree > len(ids) // 2:
                return c.nodes[i]
        return None
    try:
        return wait_for(poll, timeout, "a leader among %s" % sorted(ids))
    except AssertionError:
        raise AssertionError("no leader among %s in %ss: %s" %
                             (sorted(ids), timeout, c.brief_status()))


def wait_members(node, want, timeout=30):
    """Wait until node's GET /cluster/members lists exactly want {id: role}."""
    try:
        return wait_for(lambda: members_of(node)[0] == want, timeout,
                        "members %s on node %d" % (want, node.id))
    except AssertionError:
        raise AssertionError("node %d lists %s, not %s" %
                             (node.id, members_of(node)[0], want))


def ctl(kvfsctl, node, *args):
    p = subprocess.run([kvfsctl, "--node=" + addr(node), "--timeout=20000",
                        "--cluster-token=" + TOKEN["file"]] +
                       list(args), capture_output=True, timeout=60)
    assert p.returncode == 0, "kvfsctl %s: exit %d: %s" % (
        " ".join(args), p.returncode, p.stderr.decode(errors="replace"))
    return p.stdout


def must_snapshot(leader):
    """True if a node starting from nothing can only catch up from leader
    by a snapshot (it compacted its in-memory log past index 1)."""
    return leader.status()["memory_first_index"] > 1


def catch_up(c, node, leader, roles_seen, timeout, need_snap, t0=None):
    """Watch node catch up: poll the leader's members (recording each role
    seen for node) until node is a voter and, if need_snap, its log says it
    installed a snapshot. Returns (seconds to that log line or None, seconds
    to promotion), from t0 (default now)."""
    t0 = t0 or time.monotonic()
    t_inst = t_prom = None
    deadline = t0 + timeout
    while time.monotonic() < deadline:
        c.check_alive()
        try:
            have, _ = members_of(leader)
            role = have.get(node.id)
            if role:
                roles_seen.add(role)
            if t_inst is None and log_lines(node, "installed a snapshot"):
                t_inst = time.monotonic() - t0
            if role == "voter" and t_prom is None:
                t_prom = time.monotonic() - t0
            if t_prom is not None and (t_inst is not None or
                                       not need_snap):
                return t_inst, t_prom
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.02)
    raise AssertionError("node %d did not catch up (installed after %s s, "
                         "promoted after %s s) in %ss: roles seen %s; %s" %
                         (node.id, t_inst, t_prom, timeout, roles_seen,
                          c.brief_status()))


# --- the steps ------------------------------------------------------------------

def load(c, leader):
    say("loading %d keys into node %d (%d processes, %d keep-alive "
        "connections, --snapshot-every=%d)", KEYS, leader.id, PROCS, CONNS,
        SNAP_EVERY)
    t0 = time.monotonic()
    failed = parallel(_worker_put, leader.port, range(KEYS))
    dt = time.monotonic() - t0
    assert not failed, "%d loads were not acknowledged, first %s" % (
        len(failed), failed[:5])
    say("loaded %d keys in %.1f s: %.0f PUT/s", KEYS, dt, KEYS / dt)
    st = leader.status()
    assert st["keys"] == KEYS, st["keys"]
    say("leader after the load: applied_index %d snapshot_index %d "
        "first_index %d log_bytes %d", st["applied_index"],
        st["snapshot_index"], st["first_index"], st["log_bytes"])


def wait_compacted(c, ids):
    def poll():
        st = c.statuses()
        return all(i in st and st[i]["snapshot_index"] > 0 and
                   st[i]["first_index"] > 1 for i in ids) and st
    try:
        st = wait_for(poll, 60, "every member to compact its log")
    except AssertionError:
        raise AssertionError("the log was not compacted: %s" %
                             {i: (s["snapshot_index"], s["first_index"])
                              for i, s in c.statuses().items()})
    for i in sorted(ids):
        say("  node %d: snapshot_index %d first_index %d last_index %d",
            i, st[i]["snapshot_index"], st[i]["first_index"],
            st[i]["last_index"])


def join_node4(c, binary, root, writer, leader, followers):
    """Node 4 joins through a follower while the writer runs. The latency
    baseline is BEFORE_S seconds of writes in which the leader took no
    snapshot of its own (the first writes after the load often trigger
    one): the window starts again once when snapshot_index moves (with a
    small --snapshot-every it moves all the time: then only once)."""
    base = {"t": time.monotonic(), "snap": leader.status()["snapshot_index"]}
    restarts = []

    def baseline():
        snap = leader.status()["snapshot_index"]
        now = time.monotonic()
        if snap != base["snap"] and not restarts:
            restarts.append((base["snap"], snap))
            base.update(t=now, snap=snap)
        return (now - base["t"] >= BEFORE_S and
                len(writer.window(base["t"], now, leader.id)) >= 20)
    wait_for(baseline, BEFORE_S * 3 + 60, "background writes before the join")
    t_before, snap0 = base["t"], base["snap"]
    for a, b in restarts:
        say("(the leader took a snapshot, %d -> %d, as the writer started: "
            "the baseline starts after it)", a, b)
    n4 = JoinNode(binary, 4, root, addr(followers[0]))
    n4.extra += ["--snapshot-every=%d" % SNAP_EVERY]
    c.nodes[4] = n4
    snap1 = leader.status()["snapshot_index"]
    need = must_snapshot(leader)
    t_start = time.monotonic()
    n4.start(wait=False)
    roles = set()
    t_inst, t_prom = catch_up(c, n4, leader, roles, CATCHUP_TIMEOUT, need)
    if t_inst is None:  # caught up from the leader's in-memory trail
        c.wait_caught_up(n4, timeout=CATCHUP_TIMEOUT)
        t_inst = time.monotonic() - t_start
    t_end = t_start + t_inst
    say("node 4 (--join=%s): %s after %.1f s, promoted to voter after "
        "%.1f s; roles seen in GET /cluster/members: %s",
        addr(followers[0]), "installed a snapshot" if log_lines(
            n4, "installed a snapshot") else "caught up from the log",
        t_inst, t_prom, sorted(roles))
    promo = log_lines(leader, "node 4 caught up")
    say("  leader log: %s", promo[0] if promo else "(no promoting line)")
    assert "learner" in roles or promo, \
        "node 4 was never seen as a learner: %s" % roles
    inst = log_lines(n4, "installed a snapshot")
    say("  node 4 log: %s", inst[0] if inst else
        "(no snapshot: the leader still had every entry, its snapshot is "
        "at %d, its memory from index %d)" %
        (snap1, leader.status()["memory_first_index"]))
    sent = log_lines(leader, "sent to node 4")
    if sent:
        say("  leader log: %s", sent[0])
    if inst:
        # the receipt is logged from its first chunk to its end
        got = log_lines(n4, "receiving the snapshot at")
        done = log_lines(n4, "received the snapshot at")
        assert got and done, "node 4 did not log its snapshot's progress"
        say("  node 4 log: %s ... %s", got[0], done[-1])
    before = writer.window(t_before, t_start, leader.id)
    during = writer.window(t_start, t_end, leader.id)
    say("leader PUT latency before the join: %s%s", lat(before),
        " (the leader took a snapshot meanwhile: %d -> %d)" % (snap0, snap1)
        if snap1 != snap0 else "")
    say("leader PUT latency during the snapshot catch-up: %s", lat(during))
    assert during, "no write was acknowledged while node 4 caught up"
    return n4


def remove_follower(c, kvfsctl, leader, victim, via):
    """Remove victim with kvfsctl (asked of via, a follower: 421 followed)."""
    if kvfsctl:
        ctl(kvfsctl, via, "remove", str(victim.id))
        how = "kvfsctl --node=<node %d> remove %d" % (via.id, victim.id)
    else:
        s, _, body = leader.request("DELETE", "/cluster/members/%d" %
                                    victim.id)
        assert s == 200, (s, body)
        how = "DELETE /cluster/members/%d" % victim.id
    have, _ = members_of(leader)
    assert victim.id not in have, have
    victim.stop()
    say("removed follower %d (%s): members now %s", victim.id, how,
        sorted(have.items()))
    return have


def remove_leader(c, leader, rest):
    st0 = leader.status()
    t0 = time.monotonic()
    s, _, body = leader.request("DELETE", "/cluster/members/%d" % leader.id,
                                timeout=30)
    assert s == 200, (s, body)
    t_ans = time.monotonic() - t0
    new = leader_among(c, rest, timeout=30)
    t_new = time.monotonic() - t0
    st = new.status()
    assert new.id != leader.id
    assert leader.id not in {m["id"] for m in st["members"]}, st["members"]
    old = wait_for(lambda: (lambda s: s if s["role"] != "leader" else None)(
        leader.status()), 20, "the removed leader to step down")
    say("removed the leader %d (DELETE answered in %.2f s): node %d leads "
        "after %.2f s, term %d -> %d; the old leader is now %s",
        leader.id, t_ans, new.id, t_new, st0["term"], st["term"],
        old["role"])
    leader.stop()
    return new


def wipe(c, victim, leader):
    victim.kill9()
    shutil.rmtree(victim.data)
    earlier = len(log_lines(victim, "installed a snapshot"))
    need = must_snapshot(leader)
    t0 = time.monotonic()
    victim.start()
    target, applied = c.wait_caught_up(victim, timeout=CATCHUP_TIMEOUT)
    t_caught = time.monotonic() - t0
    inst = log_lines(victim, "installed a snapshot")[earlier:]
    assert inst or not need, "node %d caught up without a snapshot" % \
        victim.id
    say("node %d wiped (kill -9, data dir deleted) and restarted with the "
        "same --id and --peers: %s, applied %d (>= %d) after %.1f s",
        victim.id, "installed a snapshot" if inst else "from the log",
        applied, target, t_caught)
    if inst:
        say("  node %d log: %s", victim.id, inst[-1])


def add_node5(c, binary, root, kvfsctl, leader, via):
    """kvfsctl add first (the learner is listed before it runs), then the
    node itself with --join: its join is answered 409 at its own address,
    which counts as success."""
    n5 = JoinNode(binary, 5, root, addr(via))
    n5.extra += ["--snapshot-every=%d" % SNAP_EVERY]
    c.nodes[5] = n5
    if kvfsctl:
        ctl(kvfsctl, via, "add", "5", addr(n5))
    else:
        s, _, body = leader.request(
            "POST", "/cluster/members",
            json.dumps({"id": 5, "address": addr(n5)}).encode())
        assert s == 201, (s, body)
    have, _ = members_of(leader)
    assert have.get(5) == "learner", have
    roles = {"learner"}
    need = must_snapshot(leader)
    n5.start(wait=False)
    t_inst, t_prom = catch_up(c, n5, leader, roles, CATCHUP_TIMEOUT, need)
    say("node 5 added with kvfsctl add (listed as learner), then started "
        "with --join: %s, voter after %.1f s",
        "installed a snapshot after %.1f s" % t_inst if t_inst is not None
        else "from the log", t_prom)


def final_check(c, ids, writer):
    """Same state_hash at the same applied_index on every member (no writes
    are running; polled until they agree, twice: an entry the leader adds
    by itself may move the index between the polls, never split the hash);
    then every acknowledged write reads back on every member."""
    def poll():
        st = c.statuses()
        if any(i not in st for i in ids):
            return None
        got = {(st[i]["applied_index"], st[i]["commit_index"],
                st[i]["state_hash"], st[i]["keys"]) for i in ids}
        if len(got) != 1:
            return None
        (applied, commit, h, keys), = got
        return applied == commit and (applied, h, keys)
    try:
        first = wait_for(poll, 60, "applied_index to converge")
        second = wait_for(poll, 10, "applied_index to converge again")
    except AssertionError:
        st = c.statuses()
        raise AssertionError("members did not converge: %s" % {
            i: (s["applied_index"], s["commit_index"], s["state_hash"])
            for i, s in st.items() if i in ids})
    if first != second:
        say("(converged twice: %s, then %s)", first, second)
        assert first[0] != second[0] or first == second, (first, second)
    applied, h, keys = second
    bg = len(writer.acked)
    # A write whose answer was lost (leader removed) may have applied too.
    assert KEYS + bg <= keys <= KEYS + writer.seq, \
        "keys %d, expected %d loaded + %d..%d background" % (
            keys, KEYS, bg, writer.seq)
    say("every member %s: applied_index %d, state_hash %s, %d keys",
        sorted(ids), applied, h, keys)

    sample = list(range(KEYS)) if SAMPLE == 0 or SAMPLE >= KEYS else \
        random.Random(6).sample(range(KEYS), SAMPLE)
    for i in sorted(ids):
        n = c.nodes[i]
        check_listing(n)
        bad = parallel(_worker_check, n.port, sample, procs=2,
                       conns=min(CONNS, 16))
        assert not bad, "node %d: %d loaded values wrong, first %s" % (
            i, len(bad), [load_key(k) for k in bad[:5]])
        conn = Conn(n.port)
        for key, value in writer.acked.items():
            s, data = conn.request("GET", _kv_path(key, local=True))
            assert s == 200 and data == value, \
                "node %d: acknowledged %s reads %s %r" % (i, key, s, data[:40])
        conn.close()
    say("every member lists all %d loaded keys with their sizes, reads %d "
        "sampled values and all %d acknowledged background writes",
        KEYS, len(sample), bg)


def check_listing(node):
    """Page through load/NNN/ on node (local reads): every loaded key, with
    its value's size, and nothing else."""
    conn = Conn(node.port)
    seen = 0
    for d in range(min(1000, KEYS)):
        after = None
        while True:
            q = "?consistency=local&limit=10000"
            if after:
                q += "&after=" + urllib.parse.quote(after)
            s, body = conn.request("GET", "/kv/load/%03d/%s" % (d, q))
            assert s == 200, (node.id, d, s, body)
            doc = json.loads(body)
            for e in doc["entries"]:
                i = int(e["name"])
                assert i % 1000 == d and i < KEYS, e
                assert e["size"] == len(load_value(i)), (node.id, e)
                seen += 1
            after = doc["next"]
            if after is None:
                break
    conn.close()
    assert seen == KEYS, "node %d lists %d loaded keys, not %d" % (
        node.id, seen, KEYS)


def corrupt_dirs(binary, root, peers, node_id, good_dir):
    """A copy of a member's data dir with garbage in db.jsonl, another with
    garbage in the middle of a log segment: each start is refused (exit !=
    0) with advice to move the directory aside."""
    files = sorted(os.listdir(good_dir))
    assert "db.jsonl" in files, files
    # Segments are log-<first index>.jsonl; corrupt one with bytes in it
    # (the middle: a torn tail of the last segment is cut, not refused).
    segs = [f for f in files if f.startswith("log-") and
            os.path.getsize(os.path.join(good_dir, f)) > 1000]
    assert segs, "no log segment to corrupt in %s: %s" % (good_dir, files)
    cases = [("db.jsonl", "db.jsonl"), ("a log segment", segs[0])]
    for what, name in cases:
        d = os.path.join(root, "corrupt-%s" % name)
        shutil.copytree(good_dir, d)
        path = os.path.join(d, name)
        with open(path, "r+b") as f:
            # The middle of the records, not of a preallocated tail.
            used = len(f.read().rstrip(b"\0"))
            f.seek(used // 2)
            f.write(b"garbage{not json\n" * 4)
        p = subprocess.run([binary, "-f", "--id=%d" % node_id,
                            "--data=" + d,
                            "--peers=" + peers,
                            "--listen=127.0.0.1:%d" % free_port()],
                           capture_output=True, timeout=60)
        err = p.stderr.decode(errors="replace")
        assert p.returncode != 0, "%s: started on a corrupt dir" % what
        assert "move it aside" in err and d in err, (what, err)
        say("corrupt %s (%s): refused, exit %d: %s", what, name,
            p.returncode, " ".join(err.split())[:300])


def main():
    binary = kvfs_binary()
    kvfsctl = sys.argv[2] if len(sys.argv) > 2 else os.environ.get("KVFSCTL")
    if kvfsctl:
        kvfsctl = os.path.abspath(kvfsctl)
        assert os.access(kvfsctl, os.X_OK), kvfsctl
    t_all = time.monotonic()
    with TempDir() as root, Cluster(binary, root, n=3, mounts=False,
                                    extra=["--snapshot-every=%d" %
                                           SNAP_EVERY]) as c:
        use_token(c)
        c.start()
        leader = c.leader()
        load(c, leader)
        wait_compacted(c, [1, 2, 3])

        writer = Writer(lambda: [n for n in c.nodes.values() if n.running()])
        writer.start()
        try:
            followers = [n for n in c.nodes.values() if n.id != leader.id]
            join_node4(c, binary, root, writer, leader, followers)
            wait_members(leader, {1: "voter", 2: "voter", 3: "voter",
                                  4: "voter"})

            # A follower is removed (kvfsctl asked of the other follower).
            gone, other = followers
            remove_follower(c, kvfsctl, leader, gone, other)

            # The other bootstrap follower is wiped and rejoins.
            wipe(c, other, leader)

            # The leader removes itself; the other two elect a leader.
            rest = [other.id, 4]
            leader = remove_leader(c, leader, rest)

            # Back to three members: node 5 through kvfsctl add + --join.
            add_node5(c, binary, root, kvfsctl, leader, other)
            ids = rest + [5]
            want = {i: "voter" for i in ids}
            for i in ids:
                wait_members(c.nodes[i], want)
        finally:
            writer.stop()
        failures = writer.failures
        say("background writer: %d acknowledged writes, %d refused or "
            "failed (leader changes)", len(writer.acked), failures)
        final_check(c, ids, writer)
        corrupt_dirs(binary, root, c.peers, gone.id, gone.data)
    say("membership test: ok in %.0f s", time.monotonic() - t_all)


if __name__ == "__main__":
    main()
