"""The status page (GET /) in headless Chromium against a live 3-node
cluster: it shows the three members, the leader and a healthy verdict;
when a member is stopped, it shows that member down on its own (it
refreshes itself), with no page error and no request outside the node.
Screenshots are kept in the build's meson-logs as artifacts
(status-page-healthy.png, status-page-down.png).
Usage: test_status_page.py KVFS LOGDIR."""
import os
import shutil
import subprocess
import sys

from harness import Cluster, TempDir, kvfs_binary

HERE = os.path.dirname(os.path.abspath(__file__))
PAGE = os.path.join(HERE, "..", "page")


def main():
    binary = kvfs_binary()
    logdir = sys.argv[2]
    node = shutil.which("node")
    if not node or not os.path.exists(os.path.join(PAGE, "node_modules",
                                                   "playwright-core")):
        sys.exit("node and tests/page/node_modules are missing: scripts/deps "
                 "installs them")
    if not os.path.exists("/usr/bin/chromium"):
        sys.exit("chromium is missing: scripts/deps installs Debian's")
    with TempDir() as tmp:
        os.mkdir(os.path.join(tmp, "c"))
        with Cluster(binary, os.path.join(tmp, "c"), n=3, mounts=False) as c:
            c.start()
            leader = c.leader()
            victim = next(n for n in c.nodes.values() if n is not leader)
            p = subprocess.Popen(
                [node, os.path.join(PAGE, "status_page.mjs"),
                 "http://127.0.0.1:%d/" % leader.port,
                 os.path.join(logdir, "status-page")],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            seen = []
            for line in p.stdout:
                seen.append(line.rstrip())
                print("# " + line.rstrip(), flush=True)
                if line.strip() == "READY":
                    victim.stop()
                    p.stdin.write("%d\n" % victim.id)
                    p.stdin.flush()
            rc = p.wait(60)
            assert rc == 0, "the page test failed: " + "; ".join(seen[-3:])
            assert any("leader" in s for s in seen if s.startswith("members:"))
        print("ok   - the status page shows the cluster and a member going down")


if __name__ == "__main__":
    main()
