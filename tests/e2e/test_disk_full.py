"""A full disk: writes fail with 507, nothing acknowledged is lost, and
writes work again once space returns.

The node's data directory is a small tmpfs mounted by the test (root is
needed; the test skips with a clear reason only where mounting fails for
lack of privilege). A filler file takes most of the space; PUTs go on until
they get 507; the node must keep serving reads; the filler is removed and
PUTs succeed again; after a restart every acknowledged key is intact."""
import os
import subprocess
import sys

from harness import Node, TempDir, kvfs_binary

SKIP = 77


def main():
    binary = kvfs_binary()
    with TempDir() as tmp:
        mnt = os.path.join(tmp, "small")
        os.mkdir(mnt)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", mnt],
                           capture_output=True, text=True)
        if r.returncode != 0:
            if os.geteuid() != 0:
                print("SKIP: mounting a tmpfs needs root: " + r.stderr.strip())
                sys.exit(SKIP)
            raise AssertionError("mount tmpfs failed: " + r.stderr)
        node = None
        try:
            data = os.path.join(mnt, "data")
            extra = ["--segment-size=262144", "--snapshot-every=1000000"]
            node = Node(binary, data, extra=extra)
            node.log_path = os.path.join(tmp, "node.log")
            node.start()
            filler = os.path.join(mnt, "filler")
            with open(filler, "wb") as f:  # leave ~1 MiB free
                st = os.statvfs(mnt)
                f.write(b"\0" * max(0, st.f_bavail * st.f_frsize - (1 << 20)))
            acked = {}
            got_507 = False
            for i in range(2000):
                key = "full/k%05d" % i
                val = (b"%05d" % i) * 2000  # 10 kB
                s, h, body = node.request("PUT", "/kv/" + key, body=val)
                if s in (200, 201):
                    acked[key] = val
                elif s == 507:
                    assert b"disk_full" in body, body
                    got_507 = True
                    break
                else:
                    raise AssertionError("unexpected status %d: %r" % (s, body))
            assert got_507, "the disk never filled"
            assert acked, "nothing was written before the disk filled"
            # still serving: reads work, /status answers
            k0 = next(iter(acked))
            s, _, body = node.request("GET", "/kv/" + k0)
            assert s == 200 and body == acked[k0]
            assert node.status()["keys"] == len(acked)
            # space returns: writes work again
            os.unlink(filler)
            s, _, _ = node.request("PUT", "/kv/full/after", body=b"back")
            assert s in (200, 201), s
            acked["full/after"] = b"back"
            node.stop()
            node = Node(binary, data, port=node.port, extra=extra).start()
            for key, val in acked.items():
                s, _, body = node.request("GET", "/kv/" + key)
                assert s == 200 and body == val, key
            print("ok: 507 after %d writes on a full disk; all acknowledged "
                  "keys intact after space returned and a restart" % (len(acked) - 1))
        finally:
            if node:
                node.stop()
            subprocess.run(["umount", "-l", mnt])


if __name__ == "__main__":
    main()
