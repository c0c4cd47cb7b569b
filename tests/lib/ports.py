"""Free TCP ports for test nodes, shared by every test process.

A port from bind(port 0) comes out of the kernel's ephemeral range, which
is also where the outgoing connections of every other test (clients, peer
streams) take their local ports; between the probe and the node's own
bind such a connection can take it ("Address already in use"). So ports
come from below the ephemeral range, and a small ledger under a lock
(one file in the temporary directory) keeps two test processes running
at once from being handed the same port for a while."""

import fcntl
import json
import os
import random
import socket
import tempfile
import time

LOW = 20000
KEEP_SECONDS = 900


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port):
    for family, addr in ((socket.AF_INET, "0.0.0.0"),
                         (socket.AF_INET, "127.0.0.1")):
        with socket.socket(family, socket.SOCK_STREAM) as s:
            try:
                s.bind((addr, port))
            except OSError:
                return False
    return True


def free_port():
    high = _ephemeral_low()
    if high <= LOW + 1000:
        high = LOW + 10000
    path = os.path.join(tempfile.gettempdir(), "kvfs-test-ports.json")
    with open(path + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with open(path) as f:
                given = {int(k): v for k, v in json.load(f).items()}
        except (OSError, ValueError, AttributeError):
            given = {}
        now = time.time()
        given = {p: t for p, t in given.items() if now - t < KEEP_SECONDS}
        for _ in range(10000):
            port = random.randrange(LOW, high)
            if port not in given and _bindable(port):
                break
        else:
            raise RuntimeError("no free port in %d-%d" % (LOW, high))
        given[port] = now
        tmp = path + ".%d" % os.getpid()
        with open(tmp, "w") as f:
            json.dump(given, f)
        os.replace(tmp, path)
        return port
