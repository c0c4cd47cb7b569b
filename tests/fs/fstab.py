#!/usr/bin/env python3
"""fstab.py - kvfs mounted the way a system mounts filesystems.

`mount -t fuse.kvfs SOURCE DIR -o id=1,data=...` and the same line in an
fstab file (`mount -T FSTAB DIR`) go through mount(8) and mount.fuse3,
which run `kvfs SOURCE DIR -o rw,...,dev,suid` with the PATH of
/bin/sh's default (mount(8) drops the caller's). So the built kvfs is made
reachable as /usr/local/bin/kvfs for the test (a symlink, removed at the
end; the test refuses to replace a kvfs already installed there). Checks:
the mount comes up (mount(8) returns only once it serves), the mount
table names the source and the type, files written there are keys,
`umount` stops the process and nothing written is lost (the node started
again on the same data has them), options kvfs does not know are an
error, and a bad source name is refused with a message.
"""
import os
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mountlib import check, check_eq, run, wait_for, is_mounted  # noqa: E402

LINK = "/usr/local/bin/kvfs"


sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from ports import free_port  # noqa: E402,F401


def mount_line(path):
    with open("/proc/self/mounts") as f:
        for line in f:
            parts = line.split()
            if parts[1] == path:
                return parts
    return None


def pids_with(text):
    """Pids whose command line contains text."""
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % p, "rb") as f:
                if text.encode() in f.read():
                    out.append(int(p))
        except OSError:
            pass
    return out


def get(port, key):
    with urllib.request.urlopen("http://127.0.0.1:%d/kv/%s" % (port, key),
                                timeout=10) as r:
        return r.read()


def main(h):
    made_link = False
    if os.path.lexists(LINK):
        if os.path.realpath(LINK) != os.path.realpath(h.kvfs):
            check("no other kvfs in /usr/local/bin", False,
                  "%s exists and is not this build; not replacing it" % LINK)
            return
    else:
        os.makedirs(os.path.dirname(LINK), exist_ok=True)
        os.symlink(h.kvfs, LINK)
        made_link = True
    try:
        body(h)
    finally:
        for d in ("mnt", "mnt2"):
            p = os.path.join(h.tmp, d)
            if is_mounted(p):
                subprocess.run(["umount", "-l", p])
        if made_link:
            os.unlink(LINK)


def body(h):
    mnt = os.path.join(h.tmp, "mnt")
    data = os.path.join(h.tmp, "data")
    os.makedirs(mnt)
    port = free_port()
    opts = "id=1,data=%s,listen=127.0.0.1:%d,attr_timeout=0" % (data, port)

    r = subprocess.run(["mount", "-t", "fuse.kvfs", "kvfs-test", mnt, "-o", opts],
                       capture_output=True, text=True, timeout=60)
    check_eq("mount -t fuse.kvfs returns 0", 0, r.returncode)
    line = mount_line(mnt)
    check("the mount is in the table once mount(8) returns", line is not None,
          r.stderr)
    if line is None:
        return
    check_eq("the mount table names the source", "kvfs-test", line[0])
    check_eq("and the type", "fuse.kvfs", line[2])
    with open(os.path.join(mnt, "from-mount"), "w") as f:
        f.write("written through mount(8)\n")
    check_eq("a file written there is a key", b"written through mount(8)\n",
             get(port, "from-mount"))
    pids = pids_with("listen=127.0.0.1:%d" % port)
    check_eq("one kvfs serves it", 1, len(pids))

    r = subprocess.run(["umount", mnt], capture_output=True, text=True, timeout=60)
    check_eq("umount returns 0", 0, r.returncode)
    gone = wait_for(lambda: not any(os.path.exists("/proc/%d" % p) for p in pids)
                    or None, 20, "kvfs to exit after umount") if pids else False
    check("umount stops the kvfs process", gone)
    check("and the mount is gone", not is_mounted(mnt))

    # The same through an fstab line (mount -T reads another fstab).
    fstab = os.path.join(h.tmp, "fstab")
    port2 = free_port()
    opts2 = "id=1,data=%s,listen=127.0.0.1:%d,noauto,nofail,_netdev" % (data, port2)
    with open(fstab, "w") as f:
        f.write("# kvfs test\nkvfs-test %s fuse.kvfs %s 0 0\n" % (mnt, opts2))
    r = subprocess.run(["mount", "-T", fstab, mnt], capture_output=True, text=True,
                       timeout=60)
    check_eq("mount DIR with an fstab line returns 0", 0, r.returncode)
    check("the fstab mount is up", is_mounted(mnt), r.stderr)
    if is_mounted(mnt):
        with open(os.path.join(mnt, "from-mount")) as f:
            check_eq("what was written before the umount is there",
                     "written through mount(8)\n", f.read())
        with open(os.path.join(mnt, "from-fstab"), "w") as f:
            f.write("fstab\n")
        pids = pids_with("listen=127.0.0.1:%d" % port2)
        r = subprocess.run(["umount", mnt], capture_output=True, text=True, timeout=60)
        check_eq("umount of the fstab mount returns 0", 0, r.returncode)
        wait_for(lambda: not any(os.path.exists("/proc/%d" % p) for p in pids)
                 or None, 20, "kvfs to exit after the second umount")

    # Started again on the same data, HTTP only: both files are keys.
    port3 = free_port()
    p = subprocess.Popen([h.kvfs, "-f", "--id=1", "--data=" + data,
                          "--listen=127.0.0.1:%d" % port3],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def up():
            try:
                return get(port3, "from-fstab")
            except OSError:
                return None
        check_eq("nothing written through the mounts is lost", b"fstab\n",
                 wait_for(up, 20, "the node on the same data"))
    finally:
        p.terminate()
        p.wait(20)

    # An option kvfs does not know is an error, and mount(8) says so.
    mnt2 = os.path.join(h.tmp, "mnt2")
    os.makedirs(mnt2)
    r = subprocess.run(["mount", "-t", "fuse.kvfs", "kvfs-test", mnt2, "-o",
                        "data=%s,--bogus" % data], capture_output=True, text=True,
                       timeout=60)
    check("an unknown option fails the mount", r.returncode != 0 and
          not is_mounted(mnt2), "rc %d" % r.returncode)
    r = subprocess.run([h.kvfs, "bad,name", mnt2], capture_output=True, text=True,
                       timeout=30)
    check("a source name with a comma is refused with a message",
          r.returncode != 0 and "bad source name" in r.stderr, r.stderr)


if __name__ == "__main__":
    run(main)
