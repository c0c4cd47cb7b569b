#!/usr/bin/env python3
"""fsx.py - a randomized file-operation checker for the mount.

Thousands of random operations on one file of the mount (writes at any
offset, holes past the end, appends, truncates up and down, reads, mmap
reads and writes, fsyncs, closes and reopens with and without O_TRUNC,
reads through a second descriptor) are applied to the file and to an
in-memory model of it, and after every step the file must agree with the
model: fstat, stat by name and lseek(SEEK_END) give the model's size, and
what is read back is the model's bytes. After a close and reopen the
committed value must be the model too. A failing run prints the last
operations, the seed, and the one command that replays it.

usage: fsx.py path/to/kvfs [--seed S] [--ops N] [--runs R]
       (KVFS_FSX_SEED, KVFS_FSX_OPS, KVFS_FSX_RUNS do the same)
"""
import argparse
import mmap
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mountlib import check, fail, ok, run  # noqa: E402

MAX_SIZE = 256 * 1024  # keeps a run of thousands of steps quick
PAGE = mmap.PAGESIZE


class Mismatch(Exception):
    pass


class Checker:
    def __init__(self, path, seed):
        self.path, self.seed = path, seed
        self.rng = random.Random(seed)
        self.model = bytearray()
        self.fd = None
        self.log = []
        self.step = 0

    def note(self, what):
        self.log.append("%5d %s" % (self.step, what))
        del self.log[:-25]

    def expect(self, what, want, got):
        if want != got:
            raise Mismatch("%s: the model says %s, the mount %s" % (what, short(want), short(got)))

    def open(self, trunc=False, append=False):
        flags = os.O_RDWR | os.O_CREAT | (os.O_TRUNC if trunc else 0)
        flags |= os.O_APPEND if append else 0
        self.fd = os.open(self.path, flags, 0o644)
        self.append = append
        if trunc:
            self.model = bytearray()
        self.note("open%s%s" % (" O_TRUNC" if trunc else "", " O_APPEND" if append else ""))

    def close(self):
        os.close(self.fd)
        self.fd = None
        self.note("close")

    # ---- the operations ----

    def op_write(self):
        size = len(self.model)
        off = self.rng.randrange(0, min(size + 2 * PAGE, MAX_SIZE))
        n = self.rng.choice([1, 7, 100, 4096, 5000, self.rng.randrange(1, 40000)])
        if self.append:
            off = size
        n = min(n, MAX_SIZE - off)
        if n <= 0:
            return
        data = self.rng.randbytes(n)
        if self.append:
            os.write(self.fd, data)
        else:
            os.pwrite(self.fd, data, off)
        if off > len(self.model):
            self.model.extend(b"\0" * (off - len(self.model)))
        self.model[off:off + n] = data
        self.note("write %d bytes at %d%s" % (n, off, " (append)" if self.append else ""))

    def op_truncate(self):
        size = self.rng.choice([0, self.rng.randrange(0, MAX_SIZE),
                                max(0, len(self.model) - self.rng.randrange(1, 5000)),
                                len(self.model) + self.rng.randrange(1, 9000)])
        size = min(size, MAX_SIZE)
        os.ftruncate(self.fd, size)
        if size < len(self.model):
            del self.model[size:]
        else:
            self.model.extend(b"\0" * (size - len(self.model)))
        self.note("ftruncate to %d" % size)

    def op_read(self):
        size = len(self.model)
        off = self.rng.randrange(0, size + 100)
        n = self.rng.randrange(1, 70000)
        got = os.pread(self.fd, n, off)
        self.note("read %d at %d" % (n, off))
        self.expect("pread(%d, %d)" % (n, off), bytes(self.model[off:off + n]), got)

    def op_mmap_read(self):
        if not self.model:
            return
        with mmap.mmap(self.fd, len(self.model), mmap.MAP_SHARED, mmap.PROT_READ) as m:
            off = self.rng.randrange(0, len(self.model))
            n = self.rng.randrange(1, len(self.model) - off + 1)
            self.note("mmap read %d at %d" % (n, off))
            self.expect("mmap read (%d, %d)" % (n, off), bytes(self.model[off:off + n]),
                        m[off:off + n])

    def op_mmap_write(self):
        if not self.model or self.append:
            return  # an O_APPEND descriptor may not be mapped for writing
        with mmap.mmap(self.fd, len(self.model), mmap.MAP_SHARED,
                       mmap.PROT_READ | mmap.PROT_WRITE) as m:
            off = self.rng.randrange(0, len(self.model))
            n = min(self.rng.randrange(1, 9000), len(self.model) - off)
            data = self.rng.randbytes(n)
            m[off:off + n] = data
            self.model[off:off + n] = data
            if self.rng.random() < 0.5:
                m.flush()
            self.note("mmap write %d at %d" % (n, off))

    def op_fsync(self):
        os.fsync(self.fd)
        self.note("fsync")

    def op_reopen(self):
        self.close()
        self.check_committed()
        self.open(trunc=self.rng.random() < 0.15, append=self.rng.random() < 0.15)

    def op_second_reader(self):
        fd = os.open(self.path, os.O_RDONLY)
        got = b""
        try:
            while True:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    break
                got += chunk
        finally:
            os.close(fd)
        self.note("read through a second descriptor")
        self.expect("a second descriptor's read", bytes(self.model), got)

    OPS = [("op_write", 30), ("op_truncate", 8), ("op_read", 20), ("op_mmap_read", 6),
           ("op_mmap_write", 6), ("op_fsync", 5), ("op_reopen", 8), ("op_second_reader", 4)]

    # ---- the checks after every step ----

    def check_sizes(self):
        size = len(self.model)
        self.expect("fstat size", size, os.fstat(self.fd).st_size)
        self.expect("stat size by name", size, os.stat(self.path).st_size)
        self.expect("lseek(SEEK_END)", size, os.lseek(self.fd, 0, os.SEEK_END))

    def check_committed(self):
        with open(self.path, "rb") as f:
            got = f.read()
        self.expect("the committed value after close", bytes(self.model), got)

    def run(self, nops):
        names = [n for n, w in self.OPS for _ in range(w)]
        self.open(trunc=True)
        for self.step in range(nops):
            getattr(self, self.rng.choice(names))()
            self.check_sizes()
        self.close()
        self.check_committed()


def short(v):
    if isinstance(v, (bytes, bytearray)):
        return "%d bytes (%s...)" % (len(v), bytes(v[:16]).hex())
    return repr(v)


def main(h):
    ap = argparse.ArgumentParser()
    ap.add_argument("kvfs")
    ap.add_argument("--seed", type=int, default=os.environ.get("KVFS_FSX_SEED"))
    ap.add_argument("--ops", type=int, default=int(os.environ.get("KVFS_FSX_OPS", "3000")))
    ap.add_argument("--runs", type=int, default=int(os.environ.get("KVFS_FSX_RUNS", "3")))
    a = ap.parse_args()
    seeds = [a.seed] if a.seed is not None else \
        [1, 2] + [random.SystemRandom().randrange(1 << 30) for _ in range(max(0, a.runs - 2))]
    n = h.node("fsx")
    n.start()
    for seed in seeds:
        c = Checker(n.path("fsx-%d" % seed), seed)
        try:
            c.run(a.ops)
            ok("test_%d_random_file_operations_agree_with_the_model_seed_%d" % (a.ops, seed))
        except (Mismatch, OSError) as e:
            fail("test_%d_random_file_operations_agree_with_the_model_seed_%d" % (a.ops, seed),
                 "step %d: %s\n  the last operations:\n  %s\n  replay: python3 %s %s --seed %d "
                 "--ops %d" % (c.step, e, "\n  ".join(c.log), os.path.abspath(__file__),
                               h.kvfs, seed, a.ops))
    check("test_the_node_survived_every_run", n.status()["id"] == 1)


if __name__ == "__main__":
    run(main)
