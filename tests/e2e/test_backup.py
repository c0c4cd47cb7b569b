"""Backup and restore: `kvfsctl snapshot save` under load, `kvfs
--restore` into a fresh 3-node cluster.

A source cluster takes writes from a client thread that records every
acknowledged PUT with its revision. While it writes, a backup is saved
through a follower. Its revision R is in its header; the backup must hold
exactly, for every key, the last acknowledged value at a revision <= R,
and nothing of a later one (read from the file itself, which checks
itself). Then a new 3-node cluster starts with --restore=FILE on every
member: it has a new cluster id, every key reads back as in the backup on
every member, the members' state hashes agree, and it takes new writes.
`kvfsctl export` of it, `kvfsctl import` into another node: every key and
value again, binary ones too.
A damaged backup and a data directory that is not empty are refused at
start, with a message."""
import json
import os
import subprocess
import sys
import threading
import time

from harness import Cluster, Node, TempDir, kvfs_binary, wait_for


def ctl(kvfsctl, node, token, *args):
    return subprocess.run([kvfsctl, "--node=127.0.0.1:%d" % node.port,
                           "--cluster-token=" + token] + list(args),
                          capture_output=True, text=True, timeout=120)


def read_backup(path):
    with open(path, "rb") as f:
        lines = f.read().splitlines()
    head = json.loads(lines[0])
    recs = {}
    for line in lines[1:-1]:
        r = json.loads(line)
        if r["k"] and r.get("mode", 0o100000) & 0o170000 == 0o100000:
            recs[r["k"]] = (r["v"], r["mr"])
    return head, recs


def main():
    binary = kvfs_binary()
    kvfsctl = sys.argv[2]
    with TempDir() as tmp:
        backup = os.path.join(tmp, "backup.db")
        acked = []  # (rev, key, value)
        os.mkdir(os.path.join(tmp, "src"))
        with Cluster(binary, os.path.join(tmp, "src"), n=3, mounts=False) as src:
            src.start()
            leader = src.leader()
            follower = next(n for n in src.nodes.values() if n is not leader)
            stop = threading.Event()
            errors = []

            def load():
                i = 0
                while not stop.is_set():
                    key, val = "k%03d" % (i % 300), "v%d" % i
                    s, _, b = leader.put(key, val.encode())
                    if s in (200, 201):
                        acked.append((json.loads(b)["rev"], key, val))
                    else:
                        errors.append((s, b))
                    i += 1
            t = threading.Thread(target=load)
            t.start()
            try:
                time.sleep(1.5)
                r = ctl(kvfsctl, follower, src.token_file, "snapshot", "save", backup)
                time.sleep(0.5)
            finally:
                stop.set()
                t.join()
            assert r.returncode == 0, r.stderr
            assert not errors, errors[:3]
            src_id = leader.status()["cluster_id"]
            # without the token: refused
            r2 = subprocess.run([kvfsctl, "--node=127.0.0.1:%d" % leader.port,
                                 "snapshot", "save", backup + ".x"],
                                capture_output=True, text=True, timeout=60)
            assert r2.returncode == 1 and "401" in r2.stderr, r2.stderr
            assert not os.path.exists(backup + ".x")
        print("ok   - %s (under load: %d writes acknowledged)" % (r.stdout.strip(),
                                                                  len(acked)))

        head, recs = read_backup(backup)
        rev = head["index"]
        want = {}
        for r_, k, v in sorted(acked):
            if r_ <= rev:
                want[k] = (v, r_)
        later = [a for a in acked if a[0] > rev]
        assert later, "the backup was not taken under load"
        assert {k: v for k, (v, _) in recs.items()} == \
            {k: v for k, (v, _) in want.items()}, "backup != acknowledged writes <= R"
        assert all(mr <= rev for _, mr in recs.values())
        print("ok   - the backup at revision %d holds exactly the acknowledged "
              "writes up to it (%d keys; %d writes after it left out)" %
              (rev, len(want), len(later)))

        os.mkdir(os.path.join(tmp, "dst"))
        with Cluster(binary, os.path.join(tmp, "dst"), n=3, mounts=False,
                     extra=["--restore=" + backup]) as dst:
            dst.start()
            dl = dst.leader()
            st = dl.status()
            assert st["cluster_id"] != src_id, "a restored cluster is a new one"
            assert st["snapshot_index"] >= rev, st
            for n in dst.nodes.values():
                for k, (v, _) in want.items():
                    s, _, b = n.get(k)
                    assert s == 200 and b == v.encode(), (n.id, k, s, b, v)
            dst.wait_converged()
            hashes = {n.id: n.status()["state_hash"] for n in dst.nodes.values()}
            assert len(set(hashes.values())) == 1, hashes
            s, _, _ = dl.put("after-restore", b"x")
            assert s == 201, s
            s, _, _ = dl.put("bin/raw", bytes(range(256)))
            assert s == 201, s
            print("ok   - restored into a new 3-node cluster (new id): every key "
                  "on every member, equal state hashes, new writes taken")
            export = os.path.join(tmp, "export.jsonl")
            r = ctl(kvfsctl, dl, dst.token_file, "export", export)
            assert r.returncode == 0, r.stderr
            lines = [json.loads(x) for x in open(export)]
            assert len(lines) == len(want) + 2, (len(lines), len(want))
            one = Node(binary, os.path.join(tmp, "one"))
            one.start()
            try:
                r = subprocess.run([kvfsctl, "--node=127.0.0.1:%d" % one.port,
                                    "import", export], capture_output=True,
                                   text=True, timeout=120)
                assert r.returncode == 0, r.stderr
                for k, (v, _) in want.items():
                    s, _, b = one.request("GET", "/kv/" + k)
                    assert s == 200 and b == v.encode(), (k, s, b)
                s, _, b = one.request("GET", "/kv/bin/raw")
                assert s == 200 and b == bytes(range(256)), (s, b)
            finally:
                one.stop()
        print("ok   - kvfsctl export of the restored cluster, import into another "
              "node: every key and value, binary too (%d lines)" % len(lines))

        # refusals: a damaged backup, a directory that is not empty
        bad = os.path.join(tmp, "bad.db")
        data = open(backup, "rb").read()
        open(bad, "wb").write(data[:len(data) // 2] + b"X" + data[len(data) // 2 + 1:])
        r = subprocess.run([binary, "-f", "--data=" + os.path.join(tmp, "b1"),
                            "--listen=127.0.0.1:0", "--restore=" + bad],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 1 and "cannot be read" in r.stderr, r.stderr
        r = subprocess.run([binary, "-f", "--id=1",
                            "--data=" + os.path.join(tmp, "dst", "node1"),
                            "--listen=127.0.0.1:0", "--restore=" + backup],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 1 and "already holds" in r.stderr, r.stderr
        print("ok   - a damaged backup and a used data directory are refused")


if __name__ == "__main__":
    main()
