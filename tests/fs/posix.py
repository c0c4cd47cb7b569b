#!/usr/bin/env python3
"""posix.py - the mount against the POSIX rules a local filesystem follows.

Each check is written from the text of open(2)/creat, write, ftruncate,
fstat, chmod, chown, utimensat, unlink, rmdir, rename, link, symlink,
readlink, mkfifo/mknod and the xattr calls (POSIX where it speaks, Linux
where POSIX leaves it to the implementation), not from kvfs's code: sizes,
modes, owners and times of open files; metadata changed through a
descriptor and committed with it; create modes and the umask; the
set-ID rules and permission checks (a second user is a forked child);
unlink while open; which times each operation changes; directory link
counts; symbolic links, FIFOs and Unix sockets; extended attributes and
their limits; and one replicated entry per written file.

usage: posix.py path/to/kvfs
"""
import errno
import os
import socket
import stat
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mountlib import (GROUP, OTHER, USER, as_user, check, check_eq, errno_of,  # noqa: E402
                      fail, ok, run)

A = 0.05  # a pause long enough for a clock in ns to move on


def ns(st):
    return st.st_mtime_ns, st.st_ctime_ns


def write_file(p, data, mode=0o644):
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    os.write(fd, data)
    os.close(fd)


def read_file(p):
    with open(p, "rb") as f:
        return f.read()


def sizes_while_writing(n):
    p = n.path("sizes")
    fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    os.write(fd, b"x" * 1000)
    check_eq("test_fstat_shows_the_size_being_written", 1000, os.fstat(fd).st_size)
    check_eq("test_stat_by_name_shows_the_size_being_written", 1000, os.stat(p).st_size)
    check_eq("test_lseek_end_is_the_size_being_written", 1000, os.lseek(fd, 0, os.SEEK_END))
    os.ftruncate(fd, 10)
    check_eq("test_ftruncate_shows_at_once_in_fstat_and_stat", (10, 10),
             (os.fstat(fd).st_size, os.stat(p).st_size))
    os.pwrite(fd, b"y", 99)
    check_eq("test_a_write_past_the_end_extends_the_size", 100, os.fstat(fd).st_size)
    fd2 = os.open(p, os.O_RDONLY)
    check_eq("test_another_descriptor_reads_what_was_written",
             b"x" * 10 + b"\0" * 89 + b"y", os.read(fd2, 200))
    os.close(fd2)
    os.close(fd)
    check_eq("test_the_size_after_close_is_the_committed_one", 100, os.stat(p).st_size)
    check_eq("test_the_committed_value_is_the_whole_file",
             b"x" * 10 + b"\0" * 89 + b"y", n.http_get("sizes"))


def metadata_through_descriptors(h, n):
    p = n.path("meta")
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, b"content")
    os.fchmod(fd, 0o640)
    os.fchown(fd, USER, GROUP)
    os.utime(fd, ns=(1_000_000_001, 2_000_000_002))
    st = os.fstat(fd)
    check_eq("test_fchmod_fchown_futimens_show_at_once",
             (0o640, USER, GROUP, 2_000_000_002, 1_000_000_001),
             (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime_ns,
              st.st_atime_ns))
    os.close(fd)
    # After a restart the node shows what it committed, nothing cached.
    n.stop()
    n.start()
    st = os.stat(p)
    check_eq("test_metadata_set_through_a_descriptor_is_committed_with_it",
             (0o640, USER, GROUP, 2_000_000_002, 1_000_000_001, b"content"),
             (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime_ns,
              st.st_atime_ns, read_file(p)))
    # cp -p style on one new file: the whole lot is one or two entries
    # (O_EXCL makes the file at once), not one per call.
    q = n.path("meta2")

    def cp_p():
        fd = os.open(q, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, b"x")
        os.fchmod(fd, 0o754)
        os.utime(fd, ns=(5, 6))
        os.close(fd)
    check_eq("test_an_exclusive_create_then_write_chmod_utime_close_is_two_entries",
             2, n.entries(cp_p))
    check_eq("test_and_keeps_mode_and_times", (0o754, 6),
             (stat.S_IMODE(os.stat(q).st_mode), os.stat(q).st_mtime_ns))


def create_modes(n):
    old = os.umask(0o022)
    try:
        write_file(n.path("m666"), b"", 0o666)
        check_eq("test_create_applies_the_umask", 0o644, stat.S_IMODE(os.stat(n.path("m666")).st_mode))
        fd = os.open(n.path("m0"), os.O_WRONLY | os.O_CREAT, 0)
        os.close(fd)
        check_eq("test_open_o_creat_with_mode_0_makes_mode_0", 0,
                 stat.S_IMODE(os.stat(n.path("m0")).st_mode))
        os.umask(0o077)
        os.mkdir(n.path("d777"), 0o777)
        check_eq("test_mkdir_applies_the_umask", 0o700, stat.S_IMODE(os.stat(n.path("d777")).st_mode))
        os.mkfifo(n.path("f666"), 0o666)
        check_eq("test_mkfifo_applies_the_umask", 0o600, stat.S_IMODE(os.stat(n.path("f666")).st_mode))
        os.umask(0)
        write_file(n.path("m4755"), b"", 0o4755)
        check_eq("test_create_keeps_set_user_id_when_asked", 0o4755,
                 stat.S_IMODE(os.stat(n.path("m4755")).st_mode))
    finally:
        os.umask(old)
    check_eq("test_open_o_creat_of_an_existing_file_keeps_its_mode", 0o644,
             (write_file(n.path("m666"), b"again", 0o600),
              stat.S_IMODE(os.stat(n.path("m666")).st_mode))[1])


def ownership(n):
    d = n.path("own")
    os.mkdir(d, 0o777)
    os.chmod(d, 0o777)
    f = os.path.join(d, "byuser")
    as_user(lambda: write_file(f, b"mine"))
    st = os.stat(f)
    check_eq("test_a_new_file_belongs_to_its_creator", (USER, GROUP), (st.st_uid, st.st_gid))
    as_user(lambda: os.mkdir(os.path.join(d, "userdir")))
    st = os.stat(os.path.join(d, "userdir"))
    check_eq("test_a_new_directory_belongs_to_its_creator", (USER, GROUP), (st.st_uid, st.st_gid))
    check_eq("test_root_may_give_a_file_away", "OK", errno_of(os.chown, f, OTHER, OTHER))
    check_eq("test_the_new_owner_shows", (OTHER, OTHER), (os.stat(f).st_uid, os.stat(f).st_gid))
    g = os.path.join(d, "userfile")
    as_user(lambda: write_file(g, b"x"))
    check_eq("test_a_user_may_not_give_a_file_away", "EPERM",
             as_user(lambda: errno_of(os.chown, g, OTHER, -1)))
    check_eq("test_a_user_may_not_change_the_group_to_one_not_its_own", "EPERM",
             as_user(lambda: errno_of(os.chown, g, -1, OTHER)))
    check_eq("test_a_user_may_change_the_group_to_one_of_its_own", "OK",
             as_user(lambda: errno_of(os.chown, g, -1, OTHER), groups=[OTHER]))
    check_eq("test_a_non_owner_may_not_chmod", "EPERM",
             as_user(lambda: errno_of(os.chmod, f, 0o777)))
    # Set-ID bits (Linux, as POSIX allows): chown of a regular file clears
    # them, even by root; a write by a process without CAP_FSETID does.
    os.chown(f, 0, 0)
    os.chmod(f, 0o6755)
    os.chown(f, 0, 0)
    check_eq("test_chown_clears_set_user_id_and_set_group_id", 0o755,
             stat.S_IMODE(os.stat(f).st_mode))
    os.chmod(f, 0o4777)
    as_user(lambda: write_file(f, b"by a non-owner"))
    check_eq("test_a_write_by_a_non_owner_clears_set_user_id", 0o777,
             stat.S_IMODE(os.stat(f).st_mode))
    os.chmod(f, 0o4777)
    write_file(f, b"by root")
    check_eq("test_a_write_by_root_keeps_set_user_id", 0o4777, stat.S_IMODE(os.stat(f).st_mode))
    # A set-group-ID directory hands its group down, and its bit to
    # sub-directories.
    sg = os.path.join(d, "sgid")
    os.mkdir(sg)
    os.chown(sg, 0, OTHER)
    os.chmod(sg, 0o2777)
    as_user(lambda: write_file(os.path.join(sg, "f"), b""))
    as_user(lambda: os.mkdir(os.path.join(sg, "sub")))
    check_eq("test_a_file_in_a_set_group_id_directory_gets_its_group", OTHER,
             os.stat(os.path.join(sg, "f")).st_gid)
    st = os.stat(os.path.join(sg, "sub"))
    check_eq("test_a_directory_in_a_set_group_id_directory_inherits_the_bit",
             (OTHER, True), (st.st_gid, bool(st.st_mode & stat.S_ISGID)))


def permissions(n):
    p = n.path("perm")
    os.mkdir(p, 0o755)
    os.chmod(p, 0o755)
    write_file(os.path.join(p, "ro"), b"secret", 0o600)
    os.chmod(os.path.join(p, "ro"), 0o600)
    write_file(os.path.join(p, "pub"), b"public", 0o644)
    os.chmod(os.path.join(p, "pub"), 0o644)
    check_eq("test_a_user_cannot_read_a_mode_600_file_of_root", "EACCES",
             as_user(lambda: errno_of(read_file, os.path.join(p, "ro"))))
    check_eq("test_a_user_can_read_a_mode_644_file", b"public",
             as_user(lambda: read_file(os.path.join(p, "pub"))))
    check_eq("test_a_user_cannot_write_a_mode_644_file_of_root", "EACCES",
             as_user(lambda: errno_of(os.open, os.path.join(p, "pub"), os.O_WRONLY)))
    check_eq("test_a_user_cannot_create_in_a_mode_755_directory_of_root", "EACCES",
             as_user(lambda: errno_of(write_file, os.path.join(p, "new"), b"")))
    check_eq("test_a_user_cannot_remove_from_a_mode_755_directory_of_root", "EACCES",
             as_user(lambda: errno_of(os.unlink, os.path.join(p, "pub"))))


def unlink_while_open(n):
    p = n.path("gone")
    write_file(p, b"before")
    fd = os.open(p, os.O_RDWR)
    os.unlink(p)
    check("test_an_unlinked_file_has_no_name", not os.path.exists(p))
    check_eq("test_an_unlinked_open_file_still_reads", b"before", os.pread(fd, 100, 0))
    os.pwrite(fd, b"AFTER!!", 0)
    check_eq("test_an_unlinked_open_file_still_writes", b"AFTER!!", os.pread(fd, 100, 0))
    st = os.fstat(fd)
    check_eq("test_fstat_of_an_unlinked_file_works_with_no_links", (7, 0),
             (st.st_size, st.st_nlink))
    os.ftruncate(fd, 3)
    os.fchmod(fd, 0o600)
    check_eq("test_ftruncate_and_fchmod_of_an_unlinked_file_work", (3, 0o600),
             (os.fstat(fd).st_size, stat.S_IMODE(os.fstat(fd).st_mode)))
    write_file(p, b"a new file")  # the same name, another file
    os.fsync(fd)
    os.close(fd)
    check_eq("test_nothing_is_committed_under_the_removed_name", b"a new file", read_file(p))
    check_eq("test_no_hidden_keys_are_left", [], [k for k in n.http_list() if "hidden" in k])
    # A file made here and removed before it was ever committed.
    fd = os.open(n.path("never"), os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, b"data")
    os.unlink(n.path("never"))
    os.close(fd)
    check("test_a_removed_uncommitted_file_leaves_nothing", n.http_get("never") is None and
          not os.path.exists(n.path("never")))


def timestamps(n):
    d = n.path("times")
    os.mkdir(d)
    f = os.path.join(d, "f")
    t0 = ns(os.stat(d))
    time.sleep(A)
    write_file(f, b"one")
    t1 = ns(os.stat(d))
    check("test_create_changes_the_parents_mtime_and_ctime", t1[0] > t0[0] and t1[1] > t0[1],
          "%r then %r" % (t0, t1))
    ft = ns(os.stat(f))
    time.sleep(A)
    write_file(f, b"two")
    check_eq("test_rewriting_a_file_leaves_its_parent_alone", t1, ns(os.stat(d)))
    ft2 = ns(os.stat(f))
    check("test_a_write_changes_mtime_and_ctime", ft2[0] > ft[0] and ft2[1] > ft[1])
    time.sleep(A)
    os.chmod(f, 0o600)
    ft3 = ns(os.stat(f))
    check("test_chmod_changes_ctime_not_mtime", ft3[0] == ft2[0] and ft3[1] > ft2[1])
    time.sleep(A)
    os.chown(f, USER, -1)
    ft4 = ns(os.stat(f))
    check("test_chown_changes_ctime_not_mtime", ft4[0] == ft3[0] and ft4[1] > ft3[1])
    before = os.stat(f).st_atime_ns
    read_file(f)
    check_eq("test_a_read_leaves_atime_alone_noatime", before, os.stat(f).st_atime_ns)
    os.utime(f, ns=(123_456_789_012_345_678, 987_654_321_098_765_432))
    st = os.stat(f)
    check_eq("test_utimensat_stores_atime_and_mtime_to_the_nanosecond",
             (123_456_789_012_345_678, 987_654_321_098_765_432), (st.st_atime_ns, st.st_mtime_ns))
    check("test_utimensat_sets_ctime_to_now", abs(st.st_ctime_ns - time.time_ns()) < 60e9)
    os.utime(f, ns=(1, 2))
    os.utime(f, None)
    check("test_utimensat_with_now_sets_both_to_now",
          abs(os.stat(f).st_mtime_ns - time.time_ns()) < 60e9)
    mt = os.stat(f).st_mtime_ns
    time.sleep(A)
    os.truncate(f, 1)
    check("test_truncate_changes_mtime", os.stat(f).st_mtime_ns > mt)
    e = os.path.join(d, "e")
    os.mkdir(e)
    t2 = ns(os.stat(d))
    time.sleep(A)
    fmt = os.stat(f).st_mtime_ns
    fct = os.stat(f).st_ctime_ns
    os.rename(f, os.path.join(e, "moved"))
    t3, te = ns(os.stat(d)), ns(os.stat(e))
    check("test_rename_changes_both_parents", t3[0] > t2[0] and te[0] > t2[0])
    st = os.stat(os.path.join(e, "moved"))
    check("test_rename_changes_the_files_ctime_not_its_mtime",
          st.st_mtime_ns == fmt and st.st_ctime_ns > fct)
    time.sleep(A)
    os.unlink(os.path.join(e, "moved"))
    check("test_unlink_changes_the_parents_times", ns(os.stat(e))[0] > te[0])
    t4 = ns(os.stat(d))
    time.sleep(A)
    os.rmdir(e)
    check("test_rmdir_changes_the_parents_times", ns(os.stat(d))[0] > t4[0])
    t5 = ns(os.stat(d))
    time.sleep(A)
    os.mkdir(e)
    check("test_mkdir_changes_the_parents_times", ns(os.stat(d))[0] > t5[0])


def link_counts(n):
    d = n.path("links")
    os.mkdir(d)
    check_eq("test_an_empty_directory_has_two_links", 2, os.stat(d).st_nlink)
    for s in ("a", "b", "c"):
        os.mkdir(os.path.join(d, s))
    write_file(os.path.join(d, "f"), b"")
    check_eq("test_a_directory_has_two_links_plus_one_per_subdirectory", 5, os.stat(d).st_nlink)
    os.rmdir(os.path.join(d, "c"))
    check_eq("test_rmdir_drops_the_parents_link_count", 4, os.stat(d).st_nlink)
    os.rename(os.path.join(d, "b"), n.path("links-b"))
    check_eq("test_moving_a_subdirectory_out_drops_the_count", 3, os.stat(d).st_nlink)
    check_eq("test_a_file_has_one_link", 1, os.stat(os.path.join(d, "f")).st_nlink)
    check_eq("test_hard_links_are_refused_with_EPERM", "EPERM",
             errno_of(os.link, os.path.join(d, "f"), os.path.join(d, "f2")))
    n.stop()
    n.start()
    check_eq("test_link_counts_survive_a_restart", 3, os.stat(d).st_nlink)


def symlinks(n):
    d = n.path("sym")
    os.mkdir(d)
    write_file(os.path.join(d, "target"), b"pointed at")
    os.symlink("target", os.path.join(d, "ln"))
    st = os.lstat(os.path.join(d, "ln"))
    check_eq("test_lstat_shows_a_symbolic_link_of_its_targets_length",
             (True, 6), (stat.S_ISLNK(st.st_mode), st.st_size))
    check_eq("test_readlink_returns_the_target", "target", os.readlink(os.path.join(d, "ln")))
    check_eq("test_a_link_is_followed", b"pointed at", read_file(os.path.join(d, "ln")))
    check_eq("test_symlink_over_an_existing_name_is_EEXIST", "EEXIST",
             errno_of(os.symlink, "x", os.path.join(d, "target")))
    os.symlink("../nowhere/" + "x" * 200, os.path.join(d, "dangling"))
    check_eq("test_a_dangling_link_reads_back", "../nowhere/" + "x" * 200,
             os.readlink(os.path.join(d, "dangling")))
    os.rename(os.path.join(d, "ln"), os.path.join(d, "ln2"))
    check_eq("test_a_renamed_link_keeps_its_target", "target", os.readlink(os.path.join(d, "ln2")))
    os.unlink(os.path.join(d, "ln2"))
    check("test_removing_a_link_leaves_its_target",
          not os.path.lexists(os.path.join(d, "ln2")) and os.path.exists(os.path.join(d, "target")))
    os.lchown(os.path.join(d, "dangling"), USER, GROUP)
    check_eq("test_lchown_changes_the_links_owner", USER, os.lstat(os.path.join(d, "dangling")).st_uid)
    check_eq("test_the_target_is_the_keys_value_over_http", b"target",
             (os.symlink("target", os.path.join(d, "ln3")), n.http_get("sym/ln3"))[1])


def fifos_and_sockets(n):
    p = n.path("fifo")
    os.mkfifo(p, 0o600)
    check("test_mkfifo_makes_a_fifo", stat.S_ISFIFO(os.stat(p).st_mode))
    pid = os.fork()
    if pid == 0:
        with open(p, "wb") as w:
            w.write(b"through the pipe")
        os._exit(0)
    with open(p, "rb") as r:
        got = r.read()
    os.waitpid(pid, 0)
    check_eq("test_a_fifo_passes_data_between_processes", b"through the pipe", got)
    os.mknod(n.path("fifo2"), stat.S_IFIFO | 0o644)
    check("test_mknod_s_ififo_makes_a_fifo", stat.S_ISFIFO(os.stat(n.path("fifo2")).st_mode))
    check_eq("test_mknod_of_a_device_is_EPERM", "EPERM",
             errno_of(os.mknod, n.path("dev"), stat.S_IFCHR | 0o600, os.makedev(1, 3)))
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(n.path("sock"))
    s.listen(1)
    check("test_binding_a_unix_socket_makes_a_socket_entry",
          stat.S_ISSOCK(os.stat(n.path("sock")).st_mode))
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.connect(n.path("sock"))
    a, _ = s.accept()
    c.sendall(b"hello socket")
    check_eq("test_a_unix_socket_in_the_mount_connects", b"hello socket", a.recv(64))
    for x in (a, c, s):
        x.close()
    os.unlink(n.path("sock"))
    check("test_a_socket_entry_is_removed_like_a_file", not os.path.exists(n.path("sock")))


def xattrs(n):
    f = n.path("xa")
    write_file(f, b"v")
    os.setxattr(f, "user.color", b"blue")
    check_eq("test_setxattr_then_getxattr", b"blue", os.getxattr(f, "user.color"))
    check_eq("test_listxattr_lists_user_attributes_only", ["user.color"], os.listxattr(f))
    check_eq("test_xattr_create_of_an_existing_one_is_EEXIST", "EEXIST",
             errno_of(os.setxattr, f, "user.color", b"red", os.XATTR_CREATE))
    check_eq("test_xattr_replace_of_a_missing_one_is_ENODATA", "ENODATA",
             errno_of(os.setxattr, f, "user.size", b"1", os.XATTR_REPLACE))
    os.setxattr(f, "user.bin", bytes(range(256)))
    check_eq("test_binary_xattr_values_round_trip", bytes(range(256)), os.getxattr(f, "user.bin"))
    os.removexattr(f, "user.bin")
    check_eq("test_removexattr_removes", "ENODATA", errno_of(os.getxattr, f, "user.bin"))
    check_eq("test_removexattr_of_a_missing_one_is_ENODATA", "ENODATA",
             errno_of(os.removexattr, f, "user.bin"))
    check_eq("test_an_xattr_value_over_64_KiB_is_E2BIG", "E2BIG",
             errno_of(os.setxattr, f, "user.big", b"x" * (64 * 1024 + 1)))
    res = [errno_of(os.setxattr, f, "user.fill%d" % i, b"x" * (64 * 1024)) for i in range(5)]
    check_eq("test_xattrs_over_256_KiB_for_one_key_are_ENOSPC", ["OK", "OK", "OK", "ENOSPC"],
             res[:4])
    for i in range(4):
        errno_of(os.removexattr, f, "user.fill%d" % i)
    rev = int(os.getxattr(f, "user.kvfs.rev"))
    crev = int(os.getxattr(f, "user.kvfs.create_rev"))
    check("test_user_kvfs_rev_and_create_rev_show_the_revisions", rev > crev > 0,
          "rev %d create_rev %d" % (rev, crev))
    check_eq("test_user_kvfs_attributes_are_read_only", "EPERM",
             errno_of(os.setxattr, f, "user.kvfs.rev", b"1"))
    check("test_user_kvfs_attributes_are_not_listed", "user.kvfs.rev" not in os.listxattr(f))
    check_eq("test_security_attributes_are_not_supported",
             errno.errorcode[errno.EOPNOTSUPP],
             errno_of(os.getxattr, f, "security.capability"))
    check_eq("test_acls_are_not_supported", errno.errorcode[errno.EOPNOTSUPP],
             errno_of(os.getxattr, f, "system.posix_acl_access"))
    # ls -l then asks once for the mount, not twice for every file
    lsdir = n.path("lsdir")
    os.mkdir(lsdir)
    for i in range(40):
        with open(os.path.join(lsdir, "f%d" % i), "w") as g:
            g.write("x")

    def getxattrs():
        with urllib.request.urlopen(n.url("/metrics"), timeout=10) as r:
            for line in r.read().decode().splitlines():
                if line.startswith('kvfs_fs_operations_total{op="getxattr"}'):
                    return float(line.split()[1])
        return 0.0
    before = getxattrs()
    out = subprocess.run(["ls", "-l", lsdir], capture_output=True, text=True)
    asked = getxattrs() - before
    check("test_ls_l_asks_for_xattrs_once_not_per_file",
          out.returncode == 0 and out.stdout.count("\n") == 41 and asked < 10,
          "ls -l of 40 files: %d getxattr calls, rc %d" % (asked, out.returncode))
    check_eq("test_security_attributes_cannot_be_set", errno.errorcode[errno.EOPNOTSUPP],
             errno_of(os.setxattr, f, "security.selinux", b"x"))
    check_eq("test_trusted_attributes_cannot_be_set", errno.errorcode[errno.EOPNOTSUPP],
             errno_of(os.setxattr, f, "trusted.x", b"x"))
    d = n.path("xadir")
    os.mkdir(d)
    os.setxattr(d, "user.d", b"on a directory")
    check_eq("test_a_directory_has_xattrs", b"on a directory", os.getxattr(d, "user.d"))
    g = n.path("xanew")

    def new_with_xattr():
        fd = os.open(g, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, b"data")
        os.setxattr(g, "user.tag", b"set before the first commit")
        os.close(fd)
    check_eq("test_an_xattr_set_on_a_file_being_made_is_part_of_its_one_entry", 1,
             n.entries(new_with_xattr))
    n.stop()
    n.start()
    check_eq("test_xattrs_survive_a_restart", (b"blue", b"set before the first commit",
                                               b"on a directory"),
             (os.getxattr(f, "user.color"), os.getxattr(g, "user.tag"), os.getxattr(d, "user.d")))


def names(n):
    check_eq("test_a_name_of_255_bytes_works", "OK",
             errno_of(write_file, n.path("n" * 255), b""))
    check_eq("test_a_name_of_256_bytes_is_ENAMETOOLONG", "ENAMETOOLONG",
             errno_of(write_file, n.path("n" * 256), b""))
    deep = n.path(*(["s" * 250] * 15 + ["t" * 200]))
    os.makedirs(os.path.dirname(deep))
    write_file(deep, b"deep")
    check_eq("test_a_path_of_4000_bytes_round_trips", (b"deep", True),
             (read_file(deep), len(deep) - len(n.mnt) > 3950))


def one_entry_per_file(n):
    d = n.path("entries")
    os.mkdir(d)
    check_eq("test_create_write_close_is_one_entry", 1,
             n.entries(lambda: write_file(os.path.join(d, "a"), b"v")))
    check_eq("test_open_o_trunc_write_close_is_one_entry", 1,
             n.entries(lambda: write_file(os.path.join(d, "a"), b"w")))

    def touch():
        fd = os.open(os.path.join(d, "t"), os.O_WRONLY | os.O_CREAT | os.O_NONBLOCK, 0o666)
        os.utime(fd, None)
        os.close(fd)
    check_eq("test_touch_of_a_new_file_is_one_entry", 1, n.entries(touch))
    check_eq("test_touch_made_an_empty_key", b"", n.http_get("entries/t"))

    def excl():
        fd = os.open(os.path.join(d, "x"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, b"v")
        os.close(fd)
    check_eq("test_o_excl_create_write_close_is_two_entries", 2, n.entries(excl))
    check_eq("test_o_excl_of_an_existing_file_is_EEXIST", "EEXIST",
             errno_of(os.open, os.path.join(d, "x"), os.O_WRONLY | os.O_CREAT | os.O_EXCL))
    shell_redirections(n, d)
    fd = os.open(os.path.join(d, "open"), os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, b"not yet")
    check("test_a_new_open_file_is_listed_and_stats_here",
          "open" in os.listdir(d) and os.stat(os.path.join(d, "open")).st_size == 7)
    check("test_a_new_open_file_is_not_in_the_store_before_close",
          n.http_get("entries/open") is None)
    check_eq("test_rmdir_of_a_directory_holding_it_is_ENOTEMPTY", "ENOTEMPTY",
             errno_of(lambda: (os.unlink(os.path.join(d, "a")), os.unlink(os.path.join(d, "t")),
                               os.unlink(os.path.join(d, "x")), os.rmdir(d))))
    os.close(fd)
    check_eq("test_it_is_in_the_store_after_close", b"not yet", n.http_get("entries/open"))


def shell_redirections(n, d):
    """The shell's "> f": open, dup2 onto fd 1, close the original, write,
    close. The first close wrote nothing and fd 1 still holds the file:
    one entry per written file all the same, new or overwritten."""
    def sh(shell, script):
        return lambda: subprocess.run([shell, "-c", script], check=True)
    b, s, e = (os.path.join(d, x) for x in ("b", "s", "e"))
    check_eq("test_bash_echo_into_a_new_file_is_one_entry", 1,
             n.entries(sh("bash", "echo v > " + b)))
    check_eq("test_bash_echo_over_a_file_is_one_entry", 1,
             n.entries(sh("bash", "echo w > " + b)))
    check_eq("test_and_the_store_holds_what_it_wrote", b"w\n", n.http_get("entries/b"))
    check_eq("test_an_external_command_under_bash_redirection_is_one_entry", 1,
             n.entries(sh("bash", "/bin/echo x > " + b)))
    check_eq("test_sh_printf_into_a_new_file_is_one_entry", 1,
             n.entries(sh("sh", "printf v > " + s)))
    check_eq("test_sh_printf_over_a_file_is_one_entry", 1,
             n.entries(sh("sh", "printf w > " + s)))
    check_eq("test_and_the_store_holds_what_printf_wrote", b"w", n.http_get("entries/s"))
    # Nothing written: the redirection's last close still commits, at once.
    check_eq("test_an_empty_redirection_to_a_new_file_is_one_entry", 1,
             n.entries(sh("bash", ": > " + e)))
    check_eq("test_and_the_empty_file_is_in_the_store_at_its_close", b"",
             n.http_get("entries/e"))
    sh("bash", ": > " + b)()
    check_eq("test_an_empty_redirection_over_a_file_empties_it_at_its_close", b"",
             n.http_get("entries/b"))
    # A copy that wrote commits at its own close, the original still open.
    fd = os.open(b, os.O_WRONLY | os.O_TRUNC)
    fd2 = os.dup(fd)
    os.write(fd2, b"copy")
    os.close(fd2)
    check_eq("test_a_close_of_a_copy_that_wrote_commits", b"copy", n.http_get("entries/b"))
    os.close(fd)
    # A copy that wrote nothing, the original closed first: the close of
    # the copy commits the truncation.
    fd = os.open(b, os.O_WRONLY | os.O_TRUNC)
    fd2 = os.dup(fd)
    os.close(fd)
    check_eq("test_a_truncating_open_closed_while_a_copy_is_open_waits_for_it",
             b"copy", n.http_get("entries/b"))
    os.close(fd2)
    check_eq("test_and_the_close_of_the_copy_commits_it", b"", n.http_get("entries/b"))
    for x in (b, s, e):
        os.unlink(x)


def stopping(h):
    n = h.node("stop")
    n.start()
    fd = os.open(n.path("dirty"), os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, b"written, never closed")
    rc = n.stop()
    check_eq("test_sigterm_with_a_dirty_open_file_stops_cleanly", 0, rc)
    check("test_the_stop_says_what_it_committed", "committed 1 open files" in n.log_text(),
          n.log_text()[-500:])
    check_eq("test_the_writers_close_after_the_stop_is_an_error", "ENOTCONN",
             errno_of(os.close, fd))
    n.start()
    check_eq("test_a_dirty_open_file_is_committed_on_sigterm", b"written, never closed",
             read_file(n.path("dirty")))


def main(h):
    n = h.node("posix", extra=["-o", "allow_other"])
    n.start()
    for fn in (sizes_while_writing, create_modes, ownership, permissions,
               unlink_while_open, timestamps, link_counts, symlinks,
               fifos_and_sockets, xattrs, names, one_entry_per_file):
        try:
            fn(n)
        except Exception as e:
            import traceback
            fail(fn.__name__ + " ran to its end", traceback.format_exc())
            del e
    metadata_through_descriptors(h, n)
    n.stop()
    stopping(h)


if __name__ == "__main__":
    run(main)
