"""A kvfs cluster with a FaultProxy in front of every node, a nemesis that
kills, pauses and isolates nodes, and recording clients, for the
fault-injection test (test_cluster_linearizable.py).

Each node listens on its own port, but the --peers list (the same on every
node) names a proxy in front of it, so every byte another node sends to
node j (Raft messages, forwarded writes) passes through proxy j; clients use
the nodes' own ports. Dropping proxy j is an incoming blackhole for j: its
own messages still leave, so the partition is asymmetric (SIGSTOP is the
full one). Ports are taken below the kernel's ephemeral range, so a node
restarted after kill -9 never finds its port taken by some client socket.
Node comes from harness.py; the checker is linearizability.py."""
import http.client
import json
import os
import random
import signal
import threading
import time
import traceback

from faults import FaultProxy
from harness import Node, free_port, write_token

# --- ports -----------------------------------------------------------------


def pick_ports(n, rng):
    """n distinct free ports of 127.0.0.1 below the ephemeral range (so no
    outgoing connection is ever given one), through the ledger every test
    shares (tests/lib/ports.py); rng is not needed for them."""
    del rng
    return [free_port() for _ in range(n)]


# --- the cluster -----------------------------------------------------------


class FaultCluster:
    """n kvfs nodes (ids 1..n, index i is id i+1), proxy i in front of node
    i. Methods are called by the test's main thread and its nemesis thread;
    `lock` serializes the ones that change a node's process."""

    def __init__(self, binary, root, n=3, rng=None, extra=()):
        rng = rng or random.Random()
        ports = pick_ports(2 * n, rng)
        self.n = n
        self.lock = threading.RLock()
        self.proxies = [FaultProxy(ports[i], port=ports[n + i])
                        for i in range(n)]
        peers = ",".join("%d=127.0.0.1:%d" % (i + 1, self.proxies[i].port)
                         for i in range(n))
        token = write_token(os.path.join(root, "cluster-token"))
        self.nodes = [Node(binary, os.path.join(root, "n%d" % (i + 1)),
                           port=ports[i],
                           extra=["--id=%d" % (i + 1), "--peers=" + peers,
                                  "--cluster-token=" + token] +
                           list(extra))
                      for i in range(n)]
        self.down = set()  # killed by us, not restarted yet
        self.paused = set()  # SIGSTOPped by us
        self.generation = [0] * n  # bumped at every restart
        self.crashed = []  # (index, returncode, log tail): died on its own

    def start(self):
        for p in self.proxies:
            p.start()
        for node in self.nodes:
            os.makedirs(node.data, exist_ok=True)
            node.start()
        return self

    def ports(self):
        return [node.port for node in self.nodes]

    # --- faults ----------------------------------------------------------

    def kill(self, i):
        """kill -9 node i (it stays down until restart(i))."""
        with self.lock:
            self._resume_locked(i)
            self.nodes[i].kill9()
            if self.nodes[i].log:
                self.nodes[i].log.close()
                self.nodes[i].log = None
            self.down.add(i)

    def restart(self, i):
        """Start node i again on its data dir; waits for its /status.
        Raises AssertionError (with its log) if it does not come up."""
        with self.lock:
            if i in self.down:
                self.nodes[i].start()
                self.generation[i] += 1
                self.down.discard(i)

    def pause(self, i):
        """SIGSTOP node i: a full partition, in both directions."""
        with self.lock:
            if i not in self.down and i not in self.paused:
                self.nodes[i].proc.send_signal(signal.SIGSTOP)
                self.paused.add(i)

    def resume(self, i):
        with self.lock:
            self._resume_locked(i)

    def _resume_locked(self, i):
        if i in self.paused:
            self.nodes[i].proc.send_signal(signal.SIGCONT)
            self.paused.discard(i)

    def isolate(self, i):
        """Nothing reaches node i from its peers (its proxy stalls and cuts
        every connection); what node i sends still arrives."""
        self.proxies[i].isolate()

    def delay(self, i, seconds):
        self.proxies[i].delay(seconds)

    def heal_proxy(self, i):
        self.proxies[i].delay(0)
        self.proxies[i].forward()

    def heal_all(self):
        """Every proxy forwards, every node runs (restarted if killed)."""
        for i in range(self.n):
            self.heal_proxy(i)
        with self.lock:
            for i in range(self.n):
                self._resume_locked(i)
            for i in range(self.n):
                self.restart(i)

    def check_alive(self):
        """Record nodes that exited without being killed by us; returns the
        list of such crashes so far."""
        with self.lock:
            for i, node in enumerate(self.nodes):
                if i in self.down or node.proc is None:
                    continue
                rc = node.proc.poll()
                if rc is not None:
                    self.crashed.append((i, rc, node.read_log()))
                    if node.log:
                        node.log.close()
                        node.log = None
                    self.down.add(i)
        return self.crashed

    # --- observation -----------------------------------------------------

    def status(self, i, timeout=1.0):
        """Node i's /status as a dict, or None if it does not answer."""
        if i in self.down or i in self.paused:
            return None
        try:
            s, _, body = self.nodes[i].request("GET", "/status",
                                               timeout=timeout)
            return json.loads(body) if s == 200 else None
        except (OSError, http.client.HTTPException, ValueError):
            return None

    def leader(self):
        """Index of the node that says it leads with the highest term, or
        None."""
        best = None
        for i in range(self.n):
            st = self.status(i)
            if st and st.get("role") == "leader":
                if best is None or st.get("term", 0) > best[1]:
                    best = (i, st.get("term", 0))
        return best[0] if best else None

    def wait_converged(self, timeout):
        """Poll until every node answers /status, they agree on one leader
        and term, and applied_index is the same everywhere and equals the
        leader's commit_index. Returns the statuses; raises AssertionError
        with the last statuses seen after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            sts = [self.status(i) for i in range(self.n)]
            last = sts
            if all(sts):
                leaders = [s for s in sts if s.get("role") == "leader"]
                if len(leaders) == 1:
                    ld = leaders[0]
                    if all(s.get("leader") == ld["id"] and
                           s.get("term") == ld["term"] and
                           s.get("applied_index") == ld["commit_index"]
                           for s in sts):
                        return sts
            time.sleep(0.1)
        raise AssertionError(
            "no convergence within %ss; last statuses:\n%s" %
            (timeout, "\n".join(json.dumps(_brief(s)) for s in last or [])))

    def stop(self):
        """SIGCONT, SIGTERM (kill -9 if it hangs) every node; close the
        proxies. Never raises."""
        with self.lock:
            for i in range(self.n):
                self._resume_locked(i)
        for node in self.nodes:
            try:
                node.stop()
            except AssertionError:
                pass
        for p in self.proxies:
            p.close()


def _brief(st):
    if not st:
        return None
    return {k: st.get(k) for k in ("id", "role", "term", "leader",
                                   "commit_index", "applied_index",
                                   "last_index")}


# --- the nemesis -----------------------------------------------------------

FAULTS = {  # kind: weight
    "kill": 3,  # kill -9 a node (often the leader), restart it later
    "pause": 2,  # SIGSTOP / SIGCONT a node
    "isolate": 3,  # incoming blackhole on a node's proxy
    "delay": 1,  # slow links to a node
    "no-quorum": 1,  # blackhole two nodes: nobody has a majority
    "kill-all": 1,  # kill -9 every node, restart them all
}


class Nemesis:
    """Injects one fault at a time until `stop` is set: apply, hold, heal,
    then a quiet spell. Every fault is logged in `events` as (start, end,
    text) on the clock of `t0`. An exception (a node that does not
    restart) is kept in `error` and ends the nemesis."""

    def __init__(self, cluster, rng, stop, t0, faults=None):
        self.thread = threading.Thread(target=self.run, name="nemesis",
                                       daemon=True)
        self.c = cluster
        self.rng = rng
        self.stop = stop
        self.t0 = t0
        self.faults = faults or FAULTS
        self.events = []
        self.counts = {}
        self.error = None

    def now(self):
        return time.monotonic() - self.t0

    def _hold(self, lo, hi):
        self.stop.wait(self.rng.uniform(lo, hi))

    def _target(self):
        """The leader half of the time (when one is known), else any."""
        if self.rng.random() < 0.5:
            ld = self.c.leader()
            if ld is not None:
                return ld
        return self.rng.randrange(self.c.n)

    def run(self):
        kinds = list(self.faults)
        weights = [self.faults[k] for k in kinds]
        try:
            while not self.stop.is_set():
                self._hold(0.5, 2.5)
                if self.stop.is_set():
                    break
                self.c.check_alive()
                kind = self.rng.choices(kinds, weights)[0]
                start = self.now()
                text = getattr(self, "_" + kind.replace("-", "_"))()
                self.events.append((start, self.now(), text))
                self.counts[kind] = self.counts.get(kind, 0) + 1
        except BaseException as e:  # reported by the test
            self.error = e
            traceback.print_exc()

    def _kill(self):
        i = self._target()
        self.c.kill(i)
        self._hold(0.3, 4.0)
        self.c.restart(i)
        return "kill -9 node %d, restarted" % (i + 1)

    def _pause(self):
        i = self._target()
        self.c.pause(i)
        self._hold(1.0, 6.0)
        self.c.resume(i)
        return "SIGSTOP node %d, SIGCONT" % (i + 1)

    def _isolate(self):
        i = self._target()
        self.c.isolate(i)
        self._hold(1.5, 8.0)
        self.c.heal_proxy(i)
        return "isolate node %d (incoming blackhole), heal" % (i + 1)

    def _delay(self):
        i = self._target()
        d = round(self.rng.uniform(0.02, 0.6), 3)
        self.c.delay(i, d)
        self._hold(2.0, 8.0)
        self.c.heal_proxy(i)
        return "delay %gs into node %d, heal" % (d, i + 1)

    def _no_quorum(self):
        a, b = self.rng.sample(range(self.c.n), 2)
        self.c.isolate(a)
        self.c.isolate(b)
        self._hold(1.0, 5.0)
        self.c.heal_proxy(a)
        self.c.heal_proxy(b)
        return "isolate nodes %d and %d (no quorum), heal" % (a + 1, b + 1)

    def _kill_all(self):
        for i in range(self.c.n):
            self.c.kill(i)
        self._hold(0.2, 2.0)
        for i in self.rng.sample(range(self.c.n), self.c.n):
            self.c.restart(i)
        return "kill -9 every node, restarted"


# --- the clients -----------------------------------------------------------

OUTCOMES = ("ok", "failed", "unknown")


class Recorder:
    """The shared history: op dicts in the checker's format plus `node`,
    `status` (HTTP status or the exception's name). Thread-safe."""

    def __init__(self, t0):
        self.t0 = t0
        self.ops = []
        self.lock = threading.Lock()
        self.unexpected = []  # ops with an answer the test did not expect

    def now(self):
        return round(time.monotonic() - self.t0, 6)

    def add(self, op, unexpected=False):
        with self.lock:
            self.ops.append(op)
            if unexpected:
                self.unexpected.append(op)


class Client:
    """One client: keep-alive connections to every node, one operation at a
    time on a random key and a random node, every value unique. `cluster`
    gives the ports and restart generations; `local_reads` sends reads
    with ?consistency=local (not linearizable: only for showing that the
    test can fail)."""

    def __init__(self, cid, cluster, keys, rng, rec, stop, timeout,
                 local_reads=False, rate=0, mix=(0.45, 0.3, 0.15, 0.1)):
        self.thread = threading.Thread(target=self.run, name="client-%d" % cid,
                                       daemon=True)
        self.cid = cid
        self.c = cluster
        self.keys = keys
        self.rng = rng
        self.rec = rec
        self.stop = stop
        self.timeout = timeout
        self.local_reads = local_reads
        self.rate = rate  # operations a second at most (0: no limit)
        self.mix = mix  # read, write, cas, delete
        self.conns = {}  # node index -> (generation, HTTPConnection)
        self.seq = 0
        self.seen = {}  # key -> (value or None, rev or None) last observed
        self.error = None

    def _conn(self, i):
        gen = self.c.generation[i]
        old = self.conns.get(i)
        if old and old[0] == gen:
            return old[1]
        if old:
            old[1].close()
        conn = http.client.HTTPConnection("127.0.0.1", self.c.nodes[i].port,
                                          timeout=self.timeout)
        self.conns[i] = (gen, conn)
        return conn

    def _request(self, i, method, path, body=None, headers=None):
        """(status, headers, body) or raises: ConnectionRefusedError
        (nothing sent) or any other OSError/HTTPException (unknown)."""
        conn = self._conn(i)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        except BaseException:
            conn.close()
            self.conns.pop(i, None)
            raise

    def run(self):
        """Operations until `stop`, at most `rate` a second: the history
        must stay small enough for the checker."""
        start = time.monotonic()
        n = 0
        try:
            while not self.stop.is_set():
                self.one()
                n += 1
                if self.rate:
                    self.stop.wait(start + n / self.rate - time.monotonic())
        except BaseException as e:  # reported by the test
            self.error = e

    def one(self):
        key = self.rng.choice(self.keys)
        i = self.rng.randrange(self.c.n)
        r = self.rng.random()
        read_p, write_p, cas_p, _ = self.mix
        if r < read_p:
            self.read(i, key)
        elif r < read_p + write_p:
            self.write(i, key)
        elif r < read_p + write_p + cas_p:
            self.cas(i, key)
        else:
            self.delete(i, key)

    def _value(self):
        self.seq += 1
        return "c%d-%d" % (self.cid, self.seq)

    def _base(self, op, key, i):
        return {"client": self.cid, "key": key, "op": op, "node": i + 1,
                "invoke": self.rec.now()}

    def _finish(self, rec, ok, status, error=None, unexpected=False):
        rec["complete"] = self.rec.now()
        rec["ok"] = ok
        rec["status"] = status
        if error:
            rec["error"] = error
        self.rec.add(rec, unexpected)

    def read(self, i, key):
        rec = self._base("read", key, i)
        path = "/kv/" + key + ("?consistency=local" if self.local_reads
                               else "")
        try:
            s, h, body = self._request(i, "GET", path)
        except ConnectionRefusedError as e:
            self._finish(rec, False, type(e).__name__)
            return
        except (OSError, http.client.HTTPException) as e:
            # no answer: a read without a result says nothing
            self._finish(rec, None, type(e).__name__)
            return
        if s == 200:
            rec["result"] = body.decode()
            self.seen[key] = (rec["result"], h.get("etag"))
            self._finish(rec, True, s)
        elif s == 404:
            rec["result"] = None
            self.seen[key] = (None, None)
            self._finish(rec, True, s)
        else:
            self._finish(rec, False, s, unexpected=s != 503)

    def _write_outcome(self, rec, i, method, path, body, headers, ok_codes,
                       fail_codes):
        """Send a write; fill in the outcome. 2xx: ok; fail_codes: a
        definite failure with that error; refused connection: failed,
        nothing was sent; 503, 500, timeouts, resets: unknown (it may have
        applied, or may still)."""
        try:
            s, h, resp = self._request(i, method, path, body, headers)
        except ConnectionRefusedError as e:
            self._finish(rec, False, type(e).__name__)
            return None
        except (OSError, http.client.HTTPException) as e:
            self._finish(rec, None, type(e).__name__)
            return None
        if s in ok_codes:
            self._finish(rec, True, s)
            try:
                return json.loads(resp).get("rev")
            except (ValueError, AttributeError):
                return None
        if s in fail_codes:
            self._finish(rec, False, s, error=fail_codes[s])
        elif s in (500, 503):
            self._finish(rec, None, s, unexpected=s != 503)
        else:
            self._finish(rec, None, s, unexpected=True)
        return None

    def write(self, i, key):
        v = self._value()
        rec = self._base("write", key, i)
        rec["value"] = v
        rev = self._write_outcome(rec, i, "PUT", "/kv/" + key, v.encode(),
                                  None, (200, 201), {})
        if rev is not None:
            self.seen[key] = (v, '"%d"' % rev)

    def cas(self, i, key):
        """If-Match on the revision of the value last seen (values are
        unique, so the revision names the value); If-None-Match: * when
        the key was last seen absent (or never seen)."""
        expected, etag = self.seen.get(key, (None, None))
        if expected is not None and not etag:
            return self.read(i, key)
        v = self._value()
        rec = self._base("cas", key, i)
        rec["value"] = v
        rec["expected"] = expected
        hdr = {"If-Match": etag} if expected is not None else \
            {"If-None-Match": "*"}
        rev = self._write_outcome(rec, i, "PUT", "/kv/" + key, v.encode(),
                                  hdr, (200, 201),
                                  {412: "precondition"})
        if rev is not None:
            self.seen[key] = (v, '"%d"' % rev)

    def delete(self, i, key):
        rec = self._base("delete", key, i)
        self._write_outcome(rec, i, "DELETE", "/kv/" + key, None, None,
                            (200, 204), {404: "absent"})

    def close(self):
        for _, conn in self.conns.values():
            conn.close()


def outcome(op):
    return "ok" if op["ok"] else ("failed" if op["ok"] is False
                                  else "unknown")
