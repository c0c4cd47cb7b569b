"""A member whose last log line is damaged (issue 20): told apart from a
torn write, logged with its offset, and recovered from the leader.

Three members take writes; member 3 is killed (-9) and one byte inside the
last complete line of its log is flipped (the line still ends in its
newline: damage, not a torn write). On restart member 3 must say so (the
file and offset of the dropped entry) and abstain from elections until the
leader gave the entry back; then its state hash equals the others', the
marker file DATA/abstain is gone, every acknowledged write is there, and
member 3 takes part in elections again: with the leader stopped, it and
the remaining member elect a leader. The same byte flipped in a line
before the last still stops the node with a message naming the file."""
import glob
import os
import subprocess
import sys

from harness import Cluster, TempDir, kvfs_binary, wait_for

EXTRA = ["--write-timeout=3000", "--snapshot-every=100000"]


def last_segment(data):
    segs = sorted(glob.glob(os.path.join(data, "log-*.jsonl")))
    assert segs, "no log segment in %s" % data
    return segs[-1]


def line_spans(buf):
    """(start, end) of each complete line (end at its newline), before the
    zeros of the preallocated tail."""
    used = buf.find(b"\0")
    used = len(buf) if used < 0 else used
    spans, start = [], 0
    while True:
        nl = buf.find(b"\n", start, used)
        if nl < 0:
            return spans
        spans.append((start, nl))
        start = nl + 1


def flip_in_line(path, which):
    """Flip one byte of the value inside line `which` (-1: the last) of the
    segment at path; return (offset, the line's index)."""
    with open(path, "r+b") as f:
        buf = bytearray(f.read())
        spans = line_spans(bytes(buf))
        assert len(spans) >= 3, "too few lines in %s" % path
        start, end = spans[which]
        line = bytes(buf[start:end])
        assert line.startswith(b'{"i":'), line[:40]
        index = int(line[5:line.index(b",")])
        # a byte of the command text, well inside the line
        off = start + line.index(b'"c":') + 8
        buf[off] ^= 0x01
        f.seek(off)
        f.write(bytes(buf[off:off + 1]))
    return off, index


def main():
    binary = kvfs_binary()
    with TempDir() as root, Cluster(binary, root, n=3, mounts=False,
                                    extra=EXTRA) as cl:
        cl.start()
        leader = cl.leader()
        acked = {}
        for i in range(200):
            k = "tail/%03d" % i
            v = ("value-%d" % i).encode()
            s, _, _ = cl[1 + i % 3].put(k, v)
            assert s in (200, 201, 204), (k, s)
            acked[k] = v
        cl.wait_converged()
        n3 = cl[3]
        n3.kill9()
        seg = last_segment(n3.data)
        off, index = flip_in_line(seg, -1)
        print("flipped a byte at offset %d of %s (entry %d)" %
              (off, os.path.basename(seg), index))
        n3.start()
        log = n3.read_log()
        assert "damaged" in log or "complete" in log, log[-2000:]
        assert os.path.basename(seg) in log, log[-2000:]
        assert "votes for nobody" in log, log[-2000:]
        # more writes: the leader gives member 3 its entries back
        leader = cl.leader()
        assert leader.id != 3, "an abstaining member was elected"
        for i in range(200, 220):
            k = "tail/%03d" % i
            v = ("value-%d" % i).encode()
            s, _, _ = leader.put(k, v)
            assert s in (200, 201, 204), (k, s)
            acked[k] = v
        cl.wait_converged()
        wait_for(lambda: not os.path.exists(os.path.join(n3.data, "abstain")),
                 30, "member 3 to forget its abstain marker")
        assert "votes and stands for election again" in n3.read_log()
        hashes = {n.status()["state_hash"] for n in cl.running()}
        assert len(hashes) == 1, hashes
        for k, v in acked.items():
            s, _, body = n3.get(k, local=True)
            assert s == 200 and body == v, (k, s, body)
        # member 3 votes again: with the leader stopped, the other two
        # (member 3 among them) must elect one
        leader.stop()
        new = cl.leader(timeout=30)
        assert new.id != leader.id
        print("after member %d stopped, member %d leads" % (leader.id, new.id))
        leader.start()
        # damage before the last line: the node refuses to start
        cl.wait_converged()
        n3.stop()
        off, index = flip_in_line(last_segment(n3.data), 1)
        p = subprocess.run(n3.command(), capture_output=True, timeout=60)
        out = (p.stdout + p.stderr).decode(errors="replace")
        assert p.returncode != 0, out
        assert os.path.basename(last_segment(n3.data)) in out, out
        print("damage before the last line: refused (%s)" %
              out.strip().splitlines()[-1][:120])
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
