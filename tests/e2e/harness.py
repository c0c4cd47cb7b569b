"""Start and stop real kvfs nodes, alone or as a cluster, for end-to-end tests.

Each test owns the processes and mounts it starts and removes only those.
Waiting is polling with a deadline, never a fixed sleep. Node is one process;
Cluster (below) is N members on 127.0.0.1 sharing one --peers list, each with
its own data dir, log file and optional FUSE mount. The kvfs binary comes
from the KVFS environment variable or the first argument (meson passes it)."""
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse


sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from ports import free_port  # noqa: E402,F401


def wait_for(pred, timeout, what):
    """Poll pred() until it returns something true and return that; an
    OSError or HTTP protocol error counts as "not yet". AssertionError when
    timeout seconds pass first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            v = pred()
            if v:
                return v
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.02)
    raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))


def write_token(path):
    """A new cluster token in a file of mode 0600 (what kvfsctl new-token
    prints); returns path."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32) + "\n")
    return path


def client_context(ca, cert=None, key=None):
    """An ssl context that checks a node against the CA (not its name:
    members are members by the CA) and presents cert and key if given."""
    ctx = ssl.create_default_context(cafile=ca)
    ctx.check_hostname = False
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


class Node:
    def __init__(self, binary, data, port=None, extra=(), tls=None):
        self.binary = binary
        self.data = data
        self.port = port or free_port()
        self.extra = list(extra)
        self.proc = None
        self.log = None
        self.log_path = data.rstrip("/") + ".log"
        # an ssl context for requests (https), or None; headers every
        # request carries (a client token, say)
        self.tls = tls
        self.headers = {}

    def command(self, mountpoint=None):
        args = [self.binary, "-f", "--data=" + self.data,
                "--listen=127.0.0.1:%d" % self.port] + self.extra
        if mountpoint:
            args.append(mountpoint)
        return args

    def start(self, mountpoint=None):
        args = self.command(mountpoint)
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=self.log)
        wait_for(self.ready, 30, "node on port %d" % self.port)
        return self

    def ready(self):
        if self.proc.poll() is not None:
            raise AssertionError("kvfs exited with %s; log:\n%s" %
                                 (self.proc.returncode, self.read_log()))
        try:
            status, _, _ = self.request("GET", "/status", timeout=1)
            return status == 200
        except OSError:
            return False

    def read_log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")[-4000:]
        except OSError:
            return ""

    def request(self, method, path, body=None, headers=None, timeout=10):
        if self.tls:
            c = http.client.HTTPSConnection("127.0.0.1", self.port,
                                            timeout=timeout, context=self.tls)
        else:
            c = http.client.HTTPConnection("127.0.0.1", self.port,
                                           timeout=timeout)
        try:
            c.request(method, path, body=body,
                      headers=dict(self.headers, **(headers or {})))
            r = c.getresponse()
            return r.status, dict(r.getheaders()), r.read()
        finally:
            c.close()

    def status(self):
        s, _, body = self.request("GET", "/status")
        assert s == 200, s
        return json.loads(body)

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout=20):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("kvfs did not stop on SIGTERM")
        if self.log:
            self.log.close()
            self.log = None
        return self.proc.returncode if self.proc else None


def kvfs_binary():
    b = os.environ.get("KVFS") or (sys.argv[1] if len(sys.argv) > 1 else None)
    if not b or not os.access(b, os.X_OK):
        sys.exit("usage: test KVFS_BINARY (or set KVFS)")
    return os.path.abspath(b)


class TempDir:
    def __enter__(self):
        self.path = tempfile.mkdtemp(prefix="kvfs-e2e-")
        return self.path

    def __exit__(self, *exc):
        shutil.rmtree(self.path, ignore_errors=True)


# --- mounts ------------------------------------------------------------------

def _unescape_mountinfo(field):
    # /proc/self/mountinfo writes space, tab, newline and backslash as \ooo
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def is_mounted(path):
    """True if path is a mount point. Reads /proc/self/mountinfo rather than
    stat()ing the path, so a dead or stuck FUSE mount cannot block it."""
    path = os.path.realpath(path)
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                fields = line.split(" ")
                if len(fields) > 4 and _unescape_mountinfo(fields[4]) == path:
                    return True
    except OSError:
        pass
    return False


def unmount(path):
    """Unmount path if it is mounted: fusermount3 -u, then umount -l (lazy,
    works on a mount whose daemon died or hangs). Returns True when path is
    no longer a mount point."""
    for cmd in (["fusermount3", "-u", path], ["umount", "-l", path]):
        if not is_mounted(path):
            return True
        try:
            subprocess.run(cmd, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            pass
    return not is_mounted(path)


def call_with_deadline(fn, timeout, what):
    """Run fn() in a helper thread and wait at most timeout seconds. Returns
    (result, None) or (None, exception) with what fn raised; AssertionError
    if fn is still running at the deadline (a hung FUSE call: the thread
    is left behind and is released when the test kills the node)."""
    out = {}

    def run():
        try:
            out["result"] = fn()
        except BaseException as e:  # handed to the caller
            out["error"] = e

    t = threading.Thread(target=run, daemon=True, name=what)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise AssertionError("%s did not return within %ss" % (what, timeout))
    return out.get("result"), out.get("error")


def write_file(path, data):
    """open().write() on a path, as a user would (close() commits)."""
    with open(path, "wb") as f:
        f.write(data)


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


# --- a cluster -----------------------------------------------------------------

class ClusterNode(Node):
    """One member of a Cluster: --id, the shared --peers list, its own data
    dir, log file and (optionally) mount point. Its log file is appended to
    across restarts, with a marker line per start."""

    def __init__(self, binary, node_id, data, port, peers, mountpoint=None,
                 extra=(), log_path=None, tls=None):
        super().__init__(binary, data, port=port, extra=extra, tls=tls)
        self.id = node_id
        self.peers = peers
        self.mountpoint = mountpoint
        self.wanted_up = False  # started by the harness and not stopped
        if log_path:
            self.log_path = log_path

    def command(self, mountpoint=None):
        args = [self.binary, "-f", "--id=%d" % self.id, "--data=" + self.data,
                "--peers=" + self.peers,
                "--listen=127.0.0.1:%d" % self.port] + self.extra
        if self.mountpoint:
            args.append(self.mountpoint)
        return args

    def start(self, mountpoint=None, wait=True):
        """Start the process (after removing a stale mount left by a kill -9).
        With wait, return once /status answers and the mount is in place."""
        assert not self.running(), "node %d is already running" % self.id
        if self.mountpoint:
            os.makedirs(self.mountpoint, exist_ok=True)
            if not unmount(self.mountpoint):
                raise AssertionError("cannot unmount stale %s" % self.mountpoint)
        args = self.command()
        self.log = open(self.log_path, "ab")
        self.log.write(("=== harness: start: %s\n" % " ".join(args)).encode())
        self.log.flush()
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=self.log)
        self.wanted_up = True
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=30):
        wait_for(self.ready, timeout, "node %d on port %d" % (self.id, self.port))

    def ready(self):
        if not super().ready():
            return False
        return not self.mountpoint or is_mounted(self.mountpoint)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def _note(self, text):
        if self.log:
            self.log.write(("=== harness: %s\n" % text).encode())
            self.log.flush()

    def _after_exit(self):
        if self.mountpoint and not unmount(self.mountpoint):
            raise AssertionError("cannot unmount %s" % self.mountpoint)
        if self.log:
            self.log.close()
            self.log = None

    def kill9(self):
        """SIGKILL, then remove the mount the dead process leaves behind."""
        self._note("kill -9")
        self.wanted_up = False
        super().kill9()
        self._after_exit()

    def stop(self, timeout=20):
        """SIGTERM and wait for a clean exit (kvfs unmounts itself); after
        timeout seconds SIGKILL and AssertionError. Returns the exit code."""
        hung = False
        self.wanted_up = False
        if self.running():
            self._note("SIGTERM")
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                hung = True
        self._after_exit()
        if hung:
            raise AssertionError("node %d did not stop on SIGTERM within %ss"
                                 % (self.id, timeout))
        return self.proc.returncode if self.proc else None

    def status(self, timeout=2):
        s, _, body = self.request("GET", "/status", timeout=timeout)
        assert s == 200, s
        return json.loads(body)

    def path(self, key):
        """The file of key under this node's mount."""
        return os.path.join(self.mountpoint, key)

    def put(self, key, value, timeout=30, headers=None):
        return self.request("PUT", "/kv/" + urllib.parse.quote(key), body=value,
                            headers=headers, timeout=timeout)

    def get(self, key, local=False, timeout=30):
        q = "?consistency=local" if local else ""
        return self.request("GET", "/kv/" + urllib.parse.quote(key) + q,
                            timeout=timeout)


class Cluster:
    """N kvfs members on 127.0.0.1 with free ports and the same --peers list
    and cluster token (root/cluster-token, given to each as
    --cluster-token), under root (a directory the caller owns): root/nodeI
    (data), root/nodeI.log, root/mntI (mount, if mounts). tls, if given, is
    the ssl context requests use (the members' TLS options go in extra).
    Use as a context manager:
    on exit every node is stopped (kill -9 if SIGTERM does not work) and
    every mount removed, also after a failed assertion, and on an exception
    the node logs are printed to stderr first. Call from the test's main
    thread."""

    def __init__(self, binary, root, n=3, mounts=True, extra=(), tls=None):
        self.root = root
        self.token_file = write_token(os.path.join(root, "cluster-token"))
        extra = ["--cluster-token=" + self.token_file] + list(extra)
        ports = set()
        while len(ports) < n:
            ports.add(free_port())
        ports = sorted(ports)
        self.peers = ",".join("%d=127.0.0.1:%d" % (i + 1, p)
                              for i, p in enumerate(ports))
        self.nodes = {}
        for i, port in enumerate(ports, start=1):
            mnt = os.path.join(root, "mnt%d" % i) if mounts else None
            self.nodes[i] = ClusterNode(
                binary, i, os.path.join(root, "node%d" % i), port, self.peers,
                mountpoint=mnt, extra=extra,
                log_path=os.path.join(root, "node%d.log" % i), tls=tls)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and not (exc_type is SystemExit and
                                         exc.code in (0, None, 77)):
            self.print_logs()
        self.close()
        return False

    def __getitem__(self, node_id):
        return self.nodes[node_id]

    def majority(self):
        return len(self.nodes) // 2 + 1

    def start(self, wait=True):
        """Start every member (all processes first, then wait for each)."""
        for n in self.nodes.values():
            n.start(wait=False)
        if wait:
            for n in self.nodes.values():
                n.wait_ready()
        return self

    def running(self):
        return [n for n in self.nodes.values() if n.running()]

    def check_alive(self):
        """AssertionError if a member the harness started and did not stop
        has exited (a crash), with its exit status."""
        for n in self.nodes.values():
            if n.wanted_up and n.proc and n.proc.poll() is not None:
                n.wanted_up = False
                raise AssertionError("node %d died: exit status %s" %
                                     (n.id, n.proc.returncode))

    def statuses(self, timeout=1):
        """{id: /status as a dict} of the running members that answered.
        AssertionError if a member died (check_alive)."""
        self.check_alive()
        out = {}
        for n in self.running():
            try:
                out[n.id] = n.status(timeout=timeout)
            except (OSError, http.client.HTTPException, AssertionError,
                    ValueError):
                pass
        return out

    def agreed_leader(self):
        """The node a majority of all members names as leader in one term,
        if that node is running and itself says it leads in that term;
        else None. One poll, no waiting."""
        st = self.statuses()
        votes = {}
        for s in st.values():
            if s.get("leader"):
                key = (s["term"], s["leader"])
                votes[key] = votes.get(key, 0) + 1
        for (term, lid), count in votes.items():
            ls = st.get(lid)
            if (count >= self.majority() and ls and ls["role"] == "leader"
                    and ls["term"] == term):
                return self.nodes[lid]
        return None

    def leader(self, timeout=20):
        """Wait for agreed_leader() and return it."""
        try:
            return wait_for(self.agreed_leader, timeout,
                            "a leader agreed by a majority")
        except AssertionError:
            raise AssertionError("no leader agreed by a majority in %ss: %s" %
                                 (timeout, self.brief_status()))

    def converged(self, nodes=None):
        """The applied index if every running member (or every node in
        nodes) has applied exactly what is committed and all agree; else
        None."""
        nodes = nodes or self.running()
        st = self.statuses()
        if any(n.id not in st for n in nodes):
            return None
        applied = {st[n.id]["applied_index"] for n in nodes}
        commit = {st[n.id]["commit_index"] for n in nodes}
        if len(applied) == 1 and applied == commit:
            return applied.pop()
        return None

    def wait_converged(self, timeout=30, nodes=None):
        """Wait until the running members' applied indexes are equal (and
        equal to their commit indexes); return that index."""
        try:
            return wait_for(lambda: self.converged(nodes), timeout,
                            "applied_index to converge")
        except AssertionError:
            raise AssertionError("applied_index did not converge in %ss: %s" %
                                 (timeout, self.brief_status()))

    def wait_caught_up(self, node, timeout=30):
        """Wait until node's applied_index reaches the highest commit_index
        the other running members report now (a fixed target, so writes
        going on meanwhile do not move it). Returns (target, applied)."""
        st = self.statuses()
        others = [s["commit_index"] for i, s in st.items() if i != node.id]
        assert others, "no other member answers /status"
        target = max(others)
        try:
            applied = wait_for(
                lambda: (lambda a: a >= target and a)(node.status()["applied_index"]),
                timeout, "node %d to apply up to %d" % (node.id, target))
        except AssertionError:
            raise AssertionError("node %d did not apply up to %d in %ss: %s" %
                                 (node.id, target, timeout, self.brief_status()))
        return target, applied

    def brief_status(self):
        return "; ".join(
            "node %d %s term %s leader %s commit %s applied %s" %
            (i, s["role"], s["term"], s["leader"], s["commit_index"],
             s["applied_index"]) for i, s in sorted(self.statuses().items()))

    def print_logs(self, tail=6000):
        out = sys.stderr
        sys.stdout.flush()
        try:
            out.write("--- cluster status: %s\n" % self.brief_status())
        except Exception as e:  # the logs matter more than this line
            out.write("--- cluster status unavailable: %r\n" % e)
        for n in self.nodes.values():
            log = ""
            try:
                with open(n.log_path, "rb") as f:
                    log = f.read().decode(errors="replace")
            except OSError:
                pass
            state = ("running" if n.running() else "exit status %s" %
                     (n.proc.returncode if n.proc else "(never started)"))
            out.write("--- node %d log (%s, %s, last %d chars) ---\n%s\n" %
                      (n.id, n.log_path, state, tail, log[-tail:]))
        out.flush()

    def close(self):
        """Stop every member, unmount every mount; never raises."""
        for n in self.nodes.values():
            try:
                n.stop(timeout=10)
            except Exception as e:
                sys.stderr.write("teardown: node %d: %s\n" % (n.id, e))
            finally:
                if n.running():
                    n.proc.kill()
                    n.proc.wait()
                if n.mountpoint:
                    unmount(n.mountpoint)


class WriteLoad:
    """A steady write load: `threads` clients, each PUTting fresh keys
    (prefix/tT/kI, a value of its own) one after another through the
    members members() returns at the time, round robin. acked holds every
    acknowledged key and value, failures every write that was not (status
    or exception, with the node). drain(id) stops sending to a member and
    waits until none of its requests is in flight, so a test can stop it
    without cutting a request off; undrain(id) takes it back."""

    def __init__(self, members, threads=4, prefix="load", timeout=20,
                 pause=0.0):
        self.members = members
        self.prefix = prefix
        self.timeout = timeout
        self.pause = pause
        self.acked = {}
        self.failures = []
        self.unknown = []  # connection cut mid-request: outcome unknown
        self.latencies = []
        self._mu = threading.Lock()
        self._cond = threading.Condition(self._mu)
        self._inflight = {}
        self._drained = set()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(t,),
                                          daemon=True)
                         for t in range(threads)]

    def start(self):
        for t in self._threads:
            t.start()
        return self

    def _pick(self, t, i):
        with self._mu:
            nodes = [n for n in self.members() if n.id not in self._drained]
            if not nodes:
                return None
            n = nodes[(t + i) % len(nodes)]
            self._inflight[n.id] = self._inflight.get(n.id, 0) + 1
            return n

    def _done(self, n):
        with self._mu:
            self._inflight[n.id] -= 1
            self._cond.notify_all()

    def _run(self, t):
        i = 0
        while not self._stop.is_set():
            n = self._pick(t, i)
            if n is None:
                time.sleep(0.01)
                continue
            key = "%s/t%d/k%06d" % (self.prefix, t, i)
            val = ("%d-%d-%s" % (t, i, secrets.token_hex(8))).encode()
            t0 = time.monotonic()
            try:
                s, _, body = n.put(key, val, timeout=self.timeout)
                with self._mu:
                    if s in (200, 201):
                        self.acked[key] = val
                        self.latencies.append(time.monotonic() - t0)
                    else:
                        self.failures.append((n.id, key, s, body[:200]))
            except (OSError, http.client.HTTPException) as e:
                with self._mu:
                    self.unknown.append((n.id, key, repr(e)))
            finally:
                self._done(n)
            i += 1
            if self.pause:
                time.sleep(self.pause)

    def drain(self, node_id, timeout=30):
        with self._mu:
            self._drained.add(node_id)
            ok = self._cond.wait_for(
                lambda: self._inflight.get(node_id, 0) == 0, timeout)
        assert ok, "requests to node %d still in flight after %ss" % (
            node_id, timeout)

    def undrain(self, node_id):
        with self._mu:
            self._drained.discard(node_id)

    def count(self):
        with self._mu:
            return len(self.acked)

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(self.timeout + 10)
        return self

    def check(self, node):
        """Every acknowledged write reads back from node (linearizable);
        returns how many were checked."""
        with self._mu:
            acked = dict(self.acked)
        for key, val in acked.items():
            s, _, body = node.get(key)
            assert s == 200 and body == val, (
                "acknowledged %s=%r reads back as %s %r from node %d" %
                (key, val, s, body[:100], node.id))
        return len(acked)
