"""mountlib.py - helpers for the mount's end-to-end tests written in Python.

The Python twin of lib.sh: each test script starts its own kvfs nodes on
temp dirs (temp data dir, temp mountpoint, an HTTP port the kernel picks,
read back from the node's log), waits for the mount by polling with a
deadline, and on exit unmounts and stops only what it started. Checks are
sentences; a failing one prints what it expected and what it got. A second
user is played by a forked child that drops to another uid/gid
(setresgid/setresuid), so ownership and permission rules can be checked
from the outside, as the kernel sees them.
"""
import errno
import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request

PASSES = 0
FAILS = 0


def skip_without_fuse():
    if not os.path.exists("/dev/fuse") or shutil.which("fusermount3") is None:
        print("SKIP: no /dev/fuse or fusermount3: cannot mount")
        sys.exit(77)
    if os.geteuid() != 0:
        print("SKIP: needs root (to act as other users)")
        sys.exit(77)


def ok(name):
    global PASSES
    PASSES += 1
    print("ok   - " + name, flush=True)


def fail(name, why):
    global FAILS
    FAILS += 1
    print("FAIL - %s: %s" % (name, why), flush=True)


def check(name, cond, why=""):
    if cond:
        ok(name)
    else:
        fail(name, why or "false")


def check_eq(name, want, got):
    if want == got:
        ok(name)
    else:
        fail(name, "expected %r, got %r" % (want, got))


def finish():
    print("# %d passed, %d failed" % (PASSES, FAILS))
    sys.exit(1 if FAILS else 0)


def errno_of(fn, *args):
    """The errno name fn(*args) raised, or "OK"."""
    try:
        fn(*args)
        return "OK"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))


def wait_for(pred, secs, what):
    deadline = time.monotonic() + secs
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %ss waiting for %s" % (secs, what))
        time.sleep(0.02)


def is_mounted(path):
    with open("/proc/self/mounts") as f:
        return any(line.split()[1] == path for line in f)


class Node:
    """One kvfs process with its mount; stop() or the harness ends it."""

    def __init__(self, kvfs, tmp, name, extra=(), mount=True):
        self.kvfs, self.name = kvfs, name
        self.data = os.path.join(tmp, name + "-data")
        self.mnt = os.path.join(tmp, name + "-mnt") if mount else None
        self.log = os.path.join(tmp, name + ".log")
        self.extra = list(extra)
        os.makedirs(self.data, exist_ok=True)
        if self.mnt:
            os.makedirs(self.mnt, exist_ok=True)
        self.proc = None
        self.port = None

    def start(self, wait_mount=True, listen="127.0.0.1:0"):
        args = [self.kvfs, "--data=" + self.data, "--listen=" + listen, "-f"]
        args += self.extra
        if self.mnt:
            args.append(self.mnt)
        self.logf = open(self.log, "ab")
        self.log_from = self.logf.tell()  # this run's part of the log
        self.proc = subprocess.Popen(args, stdout=self.logf, stderr=subprocess.STDOUT)
        self.port = wait_for(self._port, 20, "the HTTP port of " + self.name)
        if self.mnt and wait_mount:
            wait_for(lambda: is_mounted(self.mnt), 20, "the mount of " + self.name)
        return self

    def _port(self):
        if self.proc.poll() is not None:
            raise AssertionError("%s exited: %s" % (self.name, self.log_text()))
        with open(self.log, "rb") as f:
            f.seek(self.log_from)
            m = re.search(rb"serving HTTP on port (\d+)", f.read())
        return int(m.group(1)) if m else None

    def log_text(self):
        return open(self.log, "rb").read().decode(errors="replace")

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def status(self):
        with urllib.request.urlopen(self.url("/status"), timeout=10) as r:
            return json.load(r)

    def http_get(self, key):
        """The value of key over HTTP (local read), or None if absent."""
        try:
            with urllib.request.urlopen(self.url("/kv/" + key + "?consistency=local"),
                                        timeout=10) as r:
                return r.read()
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            raise

    def http_list(self, dirkey=""):
        with urllib.request.urlopen(self.url("/kv/" + dirkey + ("/" if dirkey else "")),
                                    timeout=10) as r:
            return [e["name"] for e in json.load(r)["entries"]]

    def path(self, *parts):
        return os.path.join(self.mnt, *parts)

    def stop(self, sig=signal.SIGTERM):
        """Stop it (SIGTERM by default) and wait; its exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait(10)
        self.proc = None
        self.logf.close()
        if self.mnt:
            wait_for(lambda: not is_mounted(self.mnt) or self._lazy_umount(), 20,
                     "the unmount of " + self.name)
        return rc

    def _lazy_umount(self):
        subprocess.run(["fusermount3", "-uz", self.mnt], stderr=subprocess.DEVNULL)
        return not is_mounted(self.mnt)

    def entries(self, fn):
        """How many log entries fn() added (from /status last_index)."""
        before = self.status()["last_index"]
        fn()
        return self.status()["last_index"] - before


class Harness:
    """Temp dir and nodes of one test script; cleans up what it started."""

    def __init__(self):
        self.kvfs = os.path.abspath(sys.argv[1])
        self.tmp = tempfile.mkdtemp(prefix="kvfs-fs-test.")
        os.chmod(self.tmp, 0o755)  # the other user must reach the mounts
        self.nodes = []

    def node(self, name, extra=(), mount=True):
        extra = list(extra)
        if any(a.startswith("--peers=") and "," in a for a in extra) and \
                not any(a.startswith("--cluster-token=") for a in extra):
            # members of a cluster share its token (docs/security.md)
            tok = os.path.join(self.tmp, "cluster-token")
            if not os.path.exists(tok):
                with open(tok, "w") as f:
                    f.write("fs-test-token-%s\n" % os.urandom(16).hex())
            extra.append("--cluster-token=" + tok)
        n = Node(self.kvfs, self.tmp, name, extra, mount)
        self.nodes.append(n)
        return n

    def close(self):
        for n in self.nodes:
            try:
                n.stop()
            except Exception as e:  # keep cleaning up
                print("# cleanup of %s: %s" % (n.name, e))
        shutil.rmtree(self.tmp, ignore_errors=True)


def run(main):
    """Run main(harness) and the checks in it; print a crash as a FAIL."""
    skip_without_fuse()
    h = Harness()
    try:
        main(h)
    except Exception:
        fail("the script ran to its end", traceback.format_exc())
        for n in h.nodes:
            print("# log of %s:\n%s" % (n.name, n.log_text()[-4000:]))
    finally:
        h.close()
    finish()


USER, GROUP = 64001, 64001  # a user and group nobody else has
OTHER = 64002


def as_user(fn, uid=USER, gid=GROUP, groups=()):
    """fn() run by a child as uid:gid (with groups), its return value or
    the OSError it raised (as its errno name)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            os.setgroups(list(groups))
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            try:
                out = ("ok", fn())
            except OSError as e:
                out = ("err", errno.errorcode.get(e.errno, str(e.errno)))
            os.write(w, pickle.dumps(out))
        except BaseException as e:
            os.write(w, pickle.dumps(("crash", repr(e))))
        finally:
            os._exit(0)
    os.close(w)
    data = b""
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    kind, val = pickle.loads(data)
    if kind == "crash":
        raise AssertionError("as_user child crashed: " + val)
    return val if kind == "ok" else val
