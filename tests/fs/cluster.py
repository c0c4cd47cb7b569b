#!/usr/bin/env python3
"""cluster.py - the mount's semantics across the nodes of a 3-node cluster.

What one node's mount makes, the others show with the same attributes
(mode, owner, times to the nanosecond, kind, link target, extended
attributes, link counts); a file being written on one node is not seen on
another before its commit and is after (close-to-open); O_CREAT|O_EXCL of
one name on every node at once succeeds on exactly one; and the state
hashes agree at the end.

usage: cluster.py path/to/kvfs
"""
import os
import stat
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mountlib import USER, GROUP, check, check_eq, errno_of, run, wait_for  # noqa: E402


sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from ports import free_port  # noqa: E402,F401


def attrs(p):
    st = os.lstat(p)
    return (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
            st.st_mtime_ns, st.st_atime_ns, st.st_nlink)


def main(h):
    ports = [free_port() for _ in range(3)]
    peers = ",".join("%d=127.0.0.1:%d" % (i + 1, p) for i, p in enumerate(ports))
    nodes = [h.node("n%d" % (i + 1), extra=["--id=%d" % (i + 1), "--peers=" + peers,
                                            "--write-timeout=20000"])
             for i in range(3)]
    for n, p in zip(nodes, ports):
        n.start(listen="127.0.0.1:%d" % p)
    a, b, c = nodes
    wait_for(lambda: a.status().get("leader"), 60, "a leader")

    # ---- attributes and kinds, made on a, seen on b ----
    os.mkdir(a.path("d"), 0o750)
    os.mkdir(a.path("d", "sub"))
    with open(a.path("d", "f"), "wb") as f:
        f.write(b"content")
    os.chmod(a.path("d", "f"), 0o4710)
    os.chown(a.path("d", "f"), USER, GROUP)
    os.utime(a.path("d", "f"), ns=(111_222_333_444, 555_666_777_888))
    os.symlink("f", a.path("d", "ln"))
    os.mkfifo(a.path("d", "fifo"), 0o640)
    os.setxattr(a.path("d", "f"), "user.tag", b"\x00binary\xff")
    os.setxattr(a.path("d"), "user.dir", b"yes")
    for name in ("", "f", "ln", "fifo", "sub"):
        pa, pb = a.path("d", name), b.path("d", name)
        check_eq("test_%s_has_the_same_attributes_on_another_node" % (name or "the_directory"),
                 attrs(pa), wait_for(lambda: os.path.lexists(pb) and attrs(pb), 20, pb))
    check_eq("test_a_symlinks_target_is_the_same_on_another_node", "f",
             os.readlink(b.path("d", "ln")))
    check_eq("test_xattrs_are_replicated", (b"\x00binary\xff", b"yes"),
             (os.getxattr(b.path("d", "f"), "user.tag"), os.getxattr(b.path("d"), "user.dir")))
    check_eq("test_the_content_is_the_same", b"content", open(b.path("d", "f"), "rb").read())

    # ---- close-to-open ----
    fd = os.open(a.path("d", "new"), os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, b"being written")
    check("test_a_file_being_made_is_seen_where_it_is_made", os.path.exists(a.path("d", "new")))
    check_eq("test_a_file_being_made_is_not_seen_on_another_node", "ENOENT",
             errno_of(os.stat, b.path("d", "new")))
    os.close(fd)
    check_eq("test_it_is_seen_on_another_node_after_its_close", b"being written",
             open(b.path("d", "new"), "rb").read())
    fd = os.open(b.path("d", "new"), os.O_WRONLY | os.O_TRUNC)
    os.write(fd, b"rewritten on b")
    check_eq("test_a_rewrite_in_progress_is_not_seen_elsewhere", b"being written",
             open(c.path("d", "new"), "rb").read())
    os.fsync(fd)
    check_eq("test_an_fsync_commits_it_for_every_node", b"rewritten on b",
             open(c.path("d", "new"), "rb").read())
    os.close(fd)

    # ---- O_EXCL on every node at once: exactly one wins ----
    for round_ in range(5):
        name = "excl%d" % round_
        results = [None] * 3
        go = threading.Barrier(3)

        def excl(i):
            go.wait()
            results[i] = errno_of(lambda: os.close(os.open(
                nodes[i].path(name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)))
        ts = [threading.Thread(target=excl, args=(i,)) for i in range(3)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        check_eq("test_o_excl_on_three_nodes_at_once_succeeds_once_round_%d" % round_,
                 ["EEXIST", "EEXIST", "OK"], sorted(results))

    # ---- the same state everywhere ----
    def converged():
        st = [n.status() for n in nodes]
        idx = {s["applied_index"] for s in st}
        return len(idx) == 1 and len({s["state_hash"] for s in st}) == 1
    check("test_every_node_ends_with_the_same_state_hash", wait_for(converged, 30, "convergence"))


if __name__ == "__main__":
    run(main)
