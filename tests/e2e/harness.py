"""Start and stop real kvfs nodes for end-to-end tests.

Each test owns the processes it starts and kills only those. Waiting is
polling with a deadline, never a fixed sleep. The kvfs binary comes from the
KVFS environment variable or the first argument (meson passes it)."""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if pred():
                return
        except OSError:
            pass
        time.sleep(0.02)
    raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))


class Node:
    def __init__(self, binary, data, port=None, extra=()):
        self.binary = binary
        self.data = data
        self.port = port or free_port()
        self.extra = list(extra)
        self.proc = None
        self.log = None
        self.log_path = data.rstrip("/") + ".log"

    def start(self, mountpoint=None):
        args = [self.binary, "-f", "--data=" + self.data,
                "--listen=127.0.0.1:%d" % self.port] + self.extra
        if mountpoint:
            args.append(mountpoint)
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
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
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
