"""kvfs checks the addresses it is given before it touches anything.

--listen and --peers take HOST:PORT with the port in 1-65535; --listen may
also say port 0 (the kernel picks one). Before, --listen=127.0.0.1:99999
was taken and the listener bound 99999 mod 65536. Each bad address must
make kvfs exit non-zero with a message naming the option and the problem,
without creating the data directory; --listen=127.0.0.1:0 must serve on
the port it got. Usage: test_addresses.py KVFS."""
import http.client
import json
import os
import re
import signal
import subprocess

from harness import TempDir, kvfs_binary, wait_for

# (arguments, what the message must say)
REFUSED = [
    (["--listen=127.0.0.1:99999"], ["--listen", "at most 65535"]),
    (["--listen=127.0.0.1:0x10"], ["--listen", "must be a number"]),
    (["--listen=127.0.0.1:"], ["--listen", "no port"]),
    (["--peers=1=127.0.0.1:70000"], ["--peers", "member 1", "at most 65535"]),
    (["--peers=1=127.0.0.1:0"], ["--peers", "member 1", "from 1 to 65535"]),
    (["--peers=1=127.0.0.1:7001,2=h:65536"],
     ["--peers", "member 2", "at most 65535"]),
    (["--join=127.0.0.1:0", "--listen=127.0.0.1:7001"], ["--join"]),
]


def refused(binary, root, i, args, words):
    data = os.path.join(root, "refused%d" % i)
    p = subprocess.run([binary, "-f", "--data=" + data] + args,
                       capture_output=True, timeout=60)
    err = p.stderr.decode(errors="replace")
    assert p.returncode != 0, "%s: accepted (exit 0): %s" % (args, err)
    for w in words:
        assert w in err, "%s: the message does not say %r: %s" % (args, w, err)
    assert not os.path.exists(data), \
        "%s: the data directory was created before the check" % args


def port_zero(binary, root):
    data = os.path.join(root, "zero")
    log_path = data + ".log"
    with open(log_path, "wb") as log:
        p = subprocess.Popen([binary, "-f", "--data=" + data,
                              "--listen=127.0.0.1:0"], stdout=log, stderr=log)
    try:
        def serving():
            assert p.poll() is None, "kvfs exited: %s" % open(log_path).read()
            m = re.search(r"serving HTTP on port (\d+)", open(log_path).read())
            return int(m.group(1)) if m else None
        port = wait_for(serving, 30, "kvfs to serve on a port of its own")
        assert 0 < port < 65536, port

        def status():
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            try:
                c.request("GET", "/status")
                r = c.getresponse()
                return json.loads(r.read()) if r.status == 200 else None
            finally:
                c.close()
        st = wait_for(status, 30, "GET /status on port %d" % port)
        assert st["id"] == 1, st
    finally:
        p.send_signal(signal.SIGTERM)
        rc = p.wait(30)
    assert rc == 0, "kvfs exited %d on SIGTERM" % rc


def main():
    binary = kvfs_binary()
    with TempDir() as root:
        for i, (args, words) in enumerate(REFUSED):
            refused(binary, root, i, args, words)
        print("bad addresses refused: ok")
        port_zero(binary, root)
        print("--listen port 0: ok")


if __name__ == "__main__":
    main()
