#!/usr/bin/env python3
"""dotkvfs.py - the reserved .kvfs/ directory of every mount (docs/mount.md).

On a 3-node cluster with mounts: .kvfs is found but not listed, and lists
events, status and members; status and members are GET /status and GET
/cluster/members (the same JSON shape, the size stat shows is what cat
reads); nothing in it can be changed (the errno of each refusal), and no
key may have a .kvfs segment (HTTP 400, EINVAL on the mount); events with
O_NONBLOCK is EAGAIN with nothing to read, poll() waits and wakes, a
blocking read waits for the next change; with no stream open, commits
do not wake the thread that serves streams. Then the watch under faults: a
reader with poll() and a real `tail -f` on a follower's mount while
writers on every node change keys and the leader is killed and restarted
twice, then the reader's own node is killed and restarted (both resume
with events@LAST+1): each sees every acknowledged write exactly once, in
revision order. Last, one node with --watch-history=20: a reader that
does not read holds 64 KiB and is then told what it lost (a "compacted"
line), and events@1 says so at once.

usage: dotkvfs.py path/to/kvfs
"""
import errno
import http.client
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "e2e"))
from harness import Cluster, Node, TempDir, kvfs_binary, unmount, wait_for  # noqa: E402


# tail -f, all of what the stream has at the start (not -n +1: that reads
# to the end before following, and the end of a stream waits, so its
# first lines stay in tail's stdio buffer; docs/mount.md)
TAIL = ["tail", "-f", "-n", "1000000"]


def say(msg):
    print("ok   - " + msg, flush=True)


def errno_of(fn):
    try:
        fn()
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
    return "no error"


def http_json(node, path):
    s, _, body = node.request("GET", path)
    assert s == 200, (path, s, body)
    return json.loads(body)


def shape(v):
    """The JSON's shape: the keys of objects (recursively), the types."""
    if isinstance(v, dict):
        return {k: shape(x) for k, x in v.items()}
    if isinstance(v, list):
        return [shape(v[0])] if v else []
    return type(v).__name__


class Reader(threading.Thread):
    """Reads a mount's .kvfs/events with poll() and O_NONBLOCK reads, as a
    program would; resumes with events@LAST+1 when asked to reopen (or
    after pause/resume around a restart of its node)."""

    def __init__(self, node):
        super().__init__(daemon=True)
        self.node = node
        self.events, self.errors, self.progress = [], [], []
        self.last = 0  # every change up to it was read
        self.mu = threading.Lock()
        self.stop = False
        self.want_reopen = False
        self.paused = threading.Event()
        self.go_on = threading.Event()
        self.closed = threading.Event()
        self.opens = 0
        self.fail = None

    def open(self):
        name = ".kvfs/events@%d" % (self.last + 1) if self.last else ".kvfs/events"
        fd = os.open(self.node.path(name), os.O_RDONLY | os.O_NONBLOCK)
        self.opens += 1
        return fd

    def drain(self, fd, partial):
        while True:
            try:
                b = os.read(fd, 65536)
            except BlockingIOError:
                return partial
            if not b:
                raise AssertionError("events gave an end of file")
            partial += b
            *lines, partial = partial.split(b"\n")
            for line in lines:
                self.take(json.loads(line))

    def take(self, doc):
        with self.mu:
            if "progress" in doc:
                self.progress.append(doc["progress"])
                if self.last and doc["progress"] != self.last:
                    self.errors.append(("resumed at", doc, self.last))
                self.last = max(self.last, doc["progress"])
            elif "error" in doc:
                self.errors.append(doc)
            else:
                self.events.append(doc)
                self.last = doc["revision"]

    def run(self):
        try:
            self.loop()
        except BaseException as e:  # reported by the main thread
            self.fail = e

    def loop(self):
        fd, partial = self.open(), b""
        p = select.poll()
        p.register(fd, select.POLLIN)
        while not self.stop:
            if self.want_reopen or self.paused.is_set():
                partial = self.drain(fd, partial)
                assert partial == b"", partial
                os.close(fd)
                if self.paused.is_set():
                    self.closed.set()
                    self.go_on.wait()
                    self.closed.clear()
                    self.go_on.clear()
                    self.paused.clear()
                fd = self.open()
                p = select.poll()
                p.register(fd, select.POLLIN)
                self.want_reopen = False
            if p.poll(200):
                partial = self.drain(fd, partial)
        os.close(fd)

    def reopen(self):
        self.want_reopen = True
        wait_for(lambda: not self.want_reopen, 30, "the reader to reopen")


SYS_READ, SYS_POLL, SYS_SELECT = ("0",), ("7", "271"), ("23", "270")  # x86_64


class in_thread:
    """fn() run in a thread; blocked_in(numbers): the thread is inside one
    of those system calls now (/proc/self/task/TID/syscall); result(t):
    what fn returned, AssertionError if it is still running after t s."""

    def __init__(self, fn):
        self.out, self.tid = {}, None
        self.ready = threading.Event()

        def run():
            self.tid = threading.get_native_id()
            self.ready.set()
            try:
                self.out["r"] = fn()
            except BaseException as e:  # handed to result()
                self.out["e"] = e
        self.t = threading.Thread(target=run, daemon=True)
        self.t.start()
        self.ready.wait()

    def blocked_in(self, numbers):
        if not self.t.is_alive():
            raise AssertionError("returned at once: %r" % self.out)
        with open("/proc/self/task/%d/syscall" % self.tid) as f:
            return f.read().split()[0] in numbers

    def result(self, timeout):
        self.t.join(timeout)
        assert not self.t.is_alive(), "still waiting after %ss" % timeout
        if "e" in self.out:
            raise self.out["e"]
        return self.out["r"]


def parse_lines(data):
    return [json.loads(x) for x in data.splitlines() if x.strip()]


class Writers:
    """One thread per node: PUT w<node>/<n> over HTTP, recording the
    revision of every acknowledged write."""

    def __init__(self, nodes):
        self.acked, self.mu, self.stop = [], threading.Lock(), False
        self.threads = [threading.Thread(target=self.run, args=(n,), daemon=True)
                        for n in nodes]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def run(self, node):
        i = 0
        while not self.stop:
            key = "w%d/%d" % (node.id, i)
            i += 1
            try:
                s, _, body = node.put(key, b"v%d" % i, timeout=10)
            except (OSError, http.client.HTTPException):
                time.sleep(0.05)  # the node is down: try it again
                continue
            if s in (200, 201):
                with self.mu:
                    self.acked.append((json.loads(body)["rev"], key))

    def count(self):
        with self.mu:
            return len(self.acked)

    def finish(self):
        self.stop = True
        for t in self.threads:
            t.join(30)
        return sorted(self.acked)


def check_stream(what, events, acked):
    revs = [e["revision"] for e in events]
    assert revs == sorted(set(revs)), "%s: out of order or repeated: %s" % (
        what, [r for r in set(revs) if revs.count(r) > 1][:5])
    by_rev = {e["revision"]: e for e in events}
    missing = [(r, k) for r, k in acked if r not in by_rev]
    assert not missing, "%s: acknowledged writes missing: %s" % (what, missing[:5])
    for r, k in acked:
        e = by_rev[r]
        assert (e["op"], e["key"]) == ("put", k), (what, e, k)
    assert all(e["key"].startswith("w") for e in events), what


def part_files(c, f):
    mnt = f.mountpoint
    assert ".kvfs" not in os.listdir(mnt), os.listdir(mnt)
    st = os.stat(os.path.join(mnt, ".kvfs"))
    assert oct(st.st_mode) == oct(0o40555), oct(st.st_mode)
    assert sorted(os.listdir(f.path(".kvfs"))) == ["events", "members", "status"]
    r = subprocess.run(["ls", "-la", f.path(".kvfs")], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 0 and "events" in r.stdout, r
    say(".kvfs is found, not listed at the root; it lists events, status, "
        "members")

    r = subprocess.run(["cat", f.path(".kvfs/status")], capture_output=True,
                       timeout=10)
    mine = json.loads(r.stdout)
    http = http_json(f, "/status")
    assert shape(mine) == shape(http), (shape(mine), shape(http))
    assert (mine["id"], mine["cluster_id"]) == (http["id"], http["cluster_id"])
    assert os.stat(f.path(".kvfs/status")).st_size > 0
    members = wait_for(lambda: http_json(f, "/cluster/members") == json.load(
        open(f.path(".kvfs/members"))) and http_json(f, "/cluster/members"),
        20, "members to read as GET /cluster/members")
    assert len(members["members"]) == 3, members
    data = open(f.path(".kvfs/members"), "rb").read()
    assert os.stat(f.path(".kvfs/members")).st_size == len(data)
    say("cat status and members: GET /status's shape and id, GET "
        "/cluster/members exactly; stat's size is what cat reads")


def part_refusals(c, f):
    d = f.path(".kvfs")
    os.makedirs(f.path("sub"), exist_ok=True)
    refusals = [
        ("create in .kvfs", lambda: open(os.path.join(d, "new"), "w"), "EACCES"),
        ("write events", lambda: open(os.path.join(d, "events"), "w"), "EACCES"),
        ("open status O_RDWR", lambda: os.open(os.path.join(d, "status"), os.O_RDWR),
         "EACCES"),
        ("truncate status", lambda: os.truncate(os.path.join(d, "status"), 0),
         "EACCES"),
        ("unlink status", lambda: os.unlink(os.path.join(d, "status")), "EACCES"),
        ("mkdir in .kvfs", lambda: os.mkdir(os.path.join(d, "x")), "EACCES"),
        ("rename out of .kvfs", lambda: os.rename(os.path.join(d, "status"),
                                                  f.path("s")), "EACCES"),
        ("rename into .kvfs", lambda: os.rename(f.path("sub"),
                                                os.path.join(d, "sub")), "EACCES"),
        ("symlink in .kvfs", lambda: os.symlink("x", os.path.join(d, "l")), "EACCES"),
        ("rmdir .kvfs", lambda: os.rmdir(d), "EBUSY"),
        ("rename .kvfs", lambda: os.rename(d, f.path("k2")), "EBUSY"),
        ("mkdir .kvfs", lambda: os.mkdir(d), "EEXIST"),
        ("chmod events", lambda: os.chmod(os.path.join(d, "events"), 0o666), "EPERM"),
        ("chown status", lambda: os.chown(os.path.join(d, "status"), 1, 1), "EPERM"),
        ("utime status", lambda: os.utime(os.path.join(d, "status"), (1, 1)), "EPERM"),
        ("setxattr", lambda: os.setxattr(os.path.join(d, "events"), "user.a", b"1"),
         "EPERM"),
        ("getxattr", lambda: os.getxattr(os.path.join(d, "events"), "user.a"),
         "ENODATA"),
        ("events@0", lambda: os.stat(os.path.join(d, "events@0")), "ENOENT"),
        ("events@x", lambda: os.stat(os.path.join(d, "events@x")), "ENOENT"),
        ("events@01", lambda: os.stat(os.path.join(d, "events@01")), "ENOENT"),
        ("events@2^64", lambda: os.stat(os.path.join(d, "events@18446744073709551616")),
         "ENOENT"),
        ("events@-1", lambda: os.stat(os.path.join(d, "events@-1")), "ENOENT"),
        ("other name", lambda: os.stat(os.path.join(d, "nope")), "ENOENT"),
        ("mkdir sub/.kvfs", lambda: os.mkdir(f.path("sub/.kvfs")), "EINVAL"),
        ("create sub/.kvfs", lambda: open(f.path("sub/.kvfs"), "w").close(), "EINVAL"),
    ]
    for what, fn, want in refusals:
        got = errno_of(fn)
        assert got == want, "%s: %s, not %s" % (what, got, want)
    assert os.listxattr(os.path.join(d, "events")) == []
    assert os.stat(os.path.join(d, "events@9223372036854775807")).st_size >= 0
    for key in (".kvfs/x", ".kvfs", "a/.kvfs", "a/.kvfs/b"):
        s, _, body = f.put(key, b"x")
        assert s == 400 and json.loads(body)["code"] == "bad_key", (key, s, body)
    s, _, body = f.put("a/.kvfsx", b"x")
    assert s in (200, 201), (s, body)
    s, _, body = f.request("DELETE", "/kv/.kvfs/x")
    assert s == 404, (s, body)  # may be named (to remove an old key)
    say("%d refusals with their errno; a PUT of a key with a .kvfs segment "
        "is 400, a delete may name one" % len(refusals))


def thread_switches(node, name):
    """Voluntary context switches (wake-ups) of node's thread name."""
    task = "/proc/%d/task" % node.proc.pid
    for tid in os.listdir(task):
        try:
            with open("%s/%s/comm" % (task, tid)) as f:
                if f.read().strip() != name:
                    continue
            with open("%s/%s/status" % (task, tid)) as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        return int(line.split()[1])
        except OSError:
            continue
    raise AssertionError("node %d has no thread %s" % (node.id, name))


IDLE_WRITES = 300


def part_idle(c, f, leader):
    """With no .kvfs/events stream open, commits do not wake kvfs-events:
    it wakes only at its one-second timed wait, not once a commit."""
    before = thread_switches(f, "kvfs-events")
    t0 = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", leader.port, timeout=30)
    for i in range(IDLE_WRITES):
        conn.request("PUT", "/kv/idle/%d" % i, body=b"x")
        r = conn.getresponse()
        r.read()
        assert r.status in (200, 201), (i, r.status)
    conn.close()
    c.wait_caught_up(f)
    secs = time.monotonic() - t0
    woke = thread_switches(f, "kvfs-events") - before
    # one a second from the timed wait, and slack for a second's edge
    bound = 3 + 2 * int(secs + 1)
    assert woke <= bound, (
        "kvfs-events woke %d times for %d commits in %.1f s with no stream "
        "open (at most %d): the store's hook kicks it for nothing" %
        (woke, IDLE_WRITES, secs, bound))
    say("no stream open: %d commits in %.1f s woke kvfs-events %d times" %
        (IDLE_WRITES, secs, woke))


def part_poll(c, f, leader):
    fd = os.open(f.path(".kvfs/events"), os.O_RDONLY | os.O_NONBLOCK)
    first = json.loads(os.read(fd, 4096))
    assert "progress" in first, first
    assert errno_of(lambda: os.read(fd, 4096)) == "EAGAIN"
    p = select.poll()
    p.register(fd, select.POLLIN)
    assert p.poll(0) == []
    # a poll without a timeout, so that only the mount's notification
    # can end it (at a timeout the kernel polls once more), asked before
    # the write: the thread is seen blocked in poll(2) first
    woke = in_thread(lambda: p.poll())
    wait_for(lambda: woke.blocked_in(SYS_POLL), 20, "the poll to wait")
    s, _, body = leader.put("polled", b"p")
    rev = json.loads(body)["rev"]
    assert woke.result(30) == [(fd, select.POLLIN)], "poll was not woken"
    line = json.loads(os.read(fd, 4096))
    assert (line["revision"], line["op"], line["key"], line["size"]) == (
        rev, "put", "polled", 1), line
    assert rev > first["progress"]
    assert p.poll(0) == []
    r, _, _ = select.select([fd], [], [], 0)
    assert r == []
    woke = in_thread(lambda: select.select([fd], [], []))
    wait_for(lambda: woke.blocked_in(SYS_SELECT), 20, "the select to wait")
    s, _, body = leader.put("selected", b"s")
    assert woke.result(30)[0] == [fd], "select was not woken"
    line2 = json.loads(os.read(fd, 4096))
    assert line2["revision"] == json.loads(body)["rev"], line2
    os.close(fd)
    say("O_NONBLOCK: EAGAIN; poll and select wait, and wake for a write "
        "on another node: %s" % json.dumps(line))

    fd = os.open(f.path(".kvfs/events"), os.O_RDONLY)
    os.read(fd, 4096)  # the progress line
    got = in_thread(lambda: os.read(fd, 4096))
    wait_for(lambda: got.blocked_in(SYS_READ), 20,
             "the read to wait (not to return with nothing)")
    s, _, body = leader.put("blocked", b"bb")
    out = {"b": got.result(30)}
    line = json.loads(out["b"])
    assert line["revision"] == json.loads(body)["rev"], line
    os.close(fd)
    # a signal ends a waiting read (the kernel sends an interrupt; an
    # unanswered one would leave cat unkillable by anything but SIGKILL)
    cat = subprocess.Popen(["cat", f.path(".kvfs/events")],
                           stdout=subprocess.PIPE)
    assert cat.stdout.readline().startswith(b'{"progress":')

    def cat_blocked():
        with open("/proc/%d/syscall" % cat.pid) as sf:
            return sf.read().split()[0] in SYS_READ
    wait_for(cat_blocked, 20, "cat to wait in read")
    cat.send_signal(signal.SIGINT)
    assert cat.wait(20) == -signal.SIGINT, cat.returncode
    say("a blocking read waits for the next change, and returns it; "
        "SIGINT ends cat's waiting read")


def part_watch(c, f):
    tok = open(c.token_file).read().strip()
    reader = Reader(f)
    reader.start()
    wait_for(lambda: reader.progress, 20, "the reader's first line")
    tail_out = open(os.path.join(c.root, "tail1.out"), "wb")
    tail = subprocess.Popen(TAIL + [ f.path(".kvfs/events")],
                            stdout=tail_out)
    wait_for(lambda: os.path.getsize(tail_out.name) > 0, 20, "tail's first line")
    w = Writers(list(c.nodes.values())).start()
    wait_for(lambda: w.count() > 30, 60, "the writers to get going")
    for rnd in range(2):
        leader = c.leader()
        if leader is f:  # the reader's node stays up: hand leadership over
            # to the voter with the longest log; a 503 (the target did not
            # take over in time, under load) is tried again
            wait_for(lambda: f.request("POST", "/cluster/leader",
                                       headers={"X-Kvfs-Token": tok},
                                       timeout=30)[0] == 200, 90,
                     "leadership to move off the reader's node")
            leader = wait_for(lambda: c.leader() is not f and c.leader(), 30,
                              "another leader")
        leader.kill9()
        n0 = w.count()
        wait_for(lambda: w.count() > n0 + 20, 60, "writes after the kill")
        leader.start()
        reader.reopen()
        n0 = w.count()
        wait_for(lambda: w.count() > n0 + 20, 60, "writes after the restart")
        say("round %d: leader %d killed and restarted, the reader reopened "
            "events@LAST+1" % (rnd + 1, leader.id))

    # the reader's own node: kill it and start it again; both resume
    reader.paused.set()
    wait_for(reader.closed.is_set, 30, "the reader to close its descriptor")
    tail.terminate()
    tail.wait(10)
    tail_out.close()
    tail1 = parse_lines(open(tail_out.name, "rb").read())
    tail_last = max([e.get("revision", e.get("progress", 0)) for e in tail1])
    f.kill9()
    n0 = w.count()
    wait_for(lambda: w.count() > n0 + 20, 60, "writes while the reader's node is down")
    f.start()
    reader.go_on.set()
    tail_out = open(os.path.join(c.root, "tail2.out"), "wb")
    tail = subprocess.Popen(TAIL + [
                             f.path(".kvfs/events@%d" % (tail_last + 1))],
                            stdout=tail_out)
    n0 = w.count()
    wait_for(lambda: w.count() > n0 + 20, 60, "writes after the reader's restart")
    acked = w.finish()
    top = acked[-1][0]
    wait_for(lambda: reader.fail or reader.last >= top, 60,
             "the reader to reach revision %d" % top)
    assert reader.fail is None, reader.fail

    def tail_reached():
        got = parse_lines(open(tail_out.name, "rb").read().rsplit(b"\n", 1)[0])
        return got and max(e.get("revision", 0) for e in got) >= top
    wait_for(tail_reached, 60, "tail -f to reach revision %d" % top)
    tail.terminate()
    tail.wait(10)
    tail_out.close()
    reader.stop = True
    reader.join(10)
    assert not reader.errors, reader.errors
    check_stream("the poll reader", reader.events, acked)
    tail2 = parse_lines(open(tail_out.name, "rb").read())
    assert tail2[0] == {"progress": tail_last}, tail2[0]
    tl = [e for e in tail1 + tail2 if "revision" in e]
    assert not [e for e in tail1 + tail2 if "error" in e]
    check_stream("tail -f", tl, acked)
    say("%d acknowledged writes on 3 nodes, the leader killed twice and the "
        "reader's node once: the poll reader (%d opens) and tail -f saw each "
        "once, in revision order (%d and %d events)"
        % (len(acked), reader.opens, len(reader.events), len(tl)))


def part_small_history(tmp, binary):
    mnt = os.path.join(tmp, "one-mnt")
    os.makedirs(mnt)
    n = Node(binary, os.path.join(tmp, "one"), extra=["--watch-history=20"])
    n.start(mountpoint=mnt)
    try:
        wait_for(lambda: os.path.ismount(mnt), 20, "the mount")
        fd = os.open(os.path.join(mnt, ".kvfs/events"), os.O_RDONLY | os.O_NONBLOCK)
        seg = "s" * 250
        big = "/".join(["big"] + [seg] * 4)  # lines of about 1 KiB
        revs = []
        for i in range(200):
            s, _, body = n.request("PUT", "/kv/%s%03d" % (big, i), b"x")
            assert s in (200, 201), (s, body)
            revs.append(json.loads(body)["rev"])
        # nothing was read: the stream holds at most 64 KiB ahead
        size = os.fstat(fd).st_size
        assert 60000 < size < (64 << 10) + 64 * 1100, size
        data = b""
        while True:
            try:
                b = os.read(fd, 65536)
            except BlockingIOError:
                break
            data += b
        lines = parse_lines(data)
        evs = [x for x in lines if "revision" in x]
        lost = [x for x in lines if x.get("code") == "compacted"]
        assert len(lost) == 1, lost
        after = lines[lines.index(lost[0]) + 1:]
        assert lost[0]["lost_from"] == evs[len(evs) - len(after) - 1]["revision"] + 1
        assert [x["revision"] for x in after] == revs[-20:], after[:2]
        assert lost[0]["oldest"] == revs[-20]
        os.close(fd)
        say("a reader that does not read holds %d bytes; then a compacted "
            "line (lost %d..%d) and the 20 the history kept"
            % (size, lost[0]["lost_from"], lost[0]["oldest"] - 1))
        with open(os.path.join(mnt, ".kvfs/events@1"), "rb",
                  buffering=0) as f2:
            os.set_blocking(f2.fileno(), False)
            lines = parse_lines(f2.read(1 << 20))
        assert lines[0] == {"progress": 0}, lines[0]
        assert lines[1]["code"] == "compacted" and lines[1]["lost_from"] == 1, lines[1]
        assert [x["revision"] for x in lines[2:]] == revs[-20:]
        say("events@1 on a history of 20: first the compacted line, then "
            "what is kept")
    finally:
        n.stop()
        unmount(mnt)


def part_subdir(tmp, binary):
    mnt = os.path.join(tmp, "sub-mnt")
    os.makedirs(mnt)
    n = Node(binary, os.path.join(tmp, "sub"), extra=["--subdir=app"])
    n.start(mountpoint=mnt)
    try:
        wait_for(lambda: os.path.ismount(mnt), 20, "the mount")
        fd = os.open(os.path.join(mnt, ".kvfs/events"), os.O_RDONLY | os.O_NONBLOCK)
        revs = {}
        for key in ("app/x", "other/y", "app2/z", "app/d/e"):
            s, _, body = n.request("PUT", "/kv/" + key, b"v")
            assert s in (200, 201), (s, body)
            revs[key] = json.loads(body)["rev"]
        s, _, body = n.request("DELETE", "/kv/app/x")
        gone = json.loads(body)["rev"]
        p = select.poll()
        p.register(fd, select.POLLIN)
        lines, data = [], b""
        while not lines or lines[-1].get("revision") != gone:
            assert p.poll(20000), "no line for the delete"
            data += os.read(fd, 65536)
            lines = parse_lines(data)
        got = [(x["revision"], x["op"], x["key"]) for x in lines[1:]]
        assert got == [(revs["app/x"], "put", "app/x"),
                       (revs["app/d/e"], "put", "app/d/e"),
                       (gone, "delete", "app/x")], got
        say("a mount of --subdir=app: its .kvfs/events has the changes "
            "under app only (not app2, not other), with the store's keys")
        # stopped with .kvfs files open: the kernel never releases them,
        # the mount frees them (in a sanitized build a leak fails the exit)
        fd2 = os.open(os.path.join(mnt, ".kvfs/status"), os.O_RDONLY)
        rc = n.stop()
        assert rc == 0, "exit status %s with .kvfs files open" % rc
        for x in (fd, fd2):
            try:
                os.close(x)
            except OSError:
                pass
        say("stopped with two .kvfs files open: exit status 0")
    finally:
        n.stop()
        unmount(mnt)


def main():
    binary = kvfs_binary()
    if not os.path.exists("/dev/fuse"):
        print("1..0 # SKIP no /dev/fuse")
        sys.exit(77)
    with TempDir() as tmp:
        os.mkdir(os.path.join(tmp, "c"))
        with Cluster(binary, os.path.join(tmp, "c"), n=3, mounts=True,
                     extra=["--write-timeout=20000"]) as c:
            c.start()
            leader = c.leader()
            f = next(n for n in c.nodes.values() if n is not leader)
            part_files(c, f)
            part_refusals(c, f)
            part_idle(c, f, leader)
            part_poll(c, f, leader)
            part_watch(c, f)
        part_small_history(tmp, binary)
        part_subdir(tmp, binary)
    print("1..1\nok 1 - dotkvfs", flush=True)


if __name__ == "__main__":
    main()
