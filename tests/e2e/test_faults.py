"""Tests of the fault-injecting proxy (faults.py) against an echo server.

Bytes pass intact both ways, FIN is passed on, and each fault does what it
says: drop stalls without losing anything, refuse resets new connections
only, cut resets the current ones, delay holds data at least that long, and
a target that is down means a reset client. Waits poll with a deadline; the
only timing checks are lower bounds ("not before") or short silences after
a fault is already in force."""
import os
import select
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from faults import FaultProxy  # noqa: E402

DEADLINE = 10.0


class EchoServer:
    """Echoes every connection until the client's FIN, then closes."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.threads = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            t = threading.Thread(target=self._echo, args=(c,), daemon=True)
            t.start()

    def _echo(self, c):
        with c:
            try:
                while True:
                    data = c.recv(65536)
                    if not data:
                        return
                    c.sendall(data)
            except OSError:
                return

    def close(self):
        self.sock.close()


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
    return s


def recv_exactly(s, n):
    out = bytearray()
    while len(out) < n:
        data = s.recv(n - len(out))
        if not data:
            raise AssertionError("EOF after %d of %d bytes" % (len(out), n))
        out += data
    return bytes(out)


def silent_for(s, seconds):
    """True if nothing (data, EOF or reset) arrives on s for `seconds`."""
    r, _, _ = select.select([s], [], [], seconds)
    return not r


def is_reset(s):
    """Wait (up to the deadline) for s to be reset or closed by the peer."""
    try:
        while True:
            if not s.recv(4096):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def reset_on_connect(port):
    """Connect and wait for the reset, which may come during connect."""
    try:
        s = connect(port)
    except (ConnectionResetError, ConnectionRefusedError):
        return True
    with s:
        return is_reset(s)


class ProxyTest(unittest.TestCase):
    def setUp(self):
        self.echo = EchoServer()
        self.proxy = FaultProxy(self.echo.port).start()
        self.socks = []

    def tearDown(self):
        for s in self.socks:
            s.close()
        self.proxy.close()
        self.echo.close()

    def client(self):
        s = connect(self.proxy.port)
        self.socks.append(s)
        return s

    def roundtrip(self, s, data=b"ping"):
        s.sendall(data)
        self.assertEqual(recv_exactly(s, len(data)), data)

    def test_bytes_pass_intact_both_ways(self):
        s = self.client()
        data = os.urandom(3 << 20)
        t = threading.Thread(target=s.sendall, args=(data,))
        t.start()
        got = recv_exactly(s, len(data))
        t.join()
        self.assertEqual(got, data)

    def test_fin_is_passed_on(self):
        s = self.client()
        s.sendall(b"last words")
        s.shutdown(socket.SHUT_WR)
        self.assertEqual(recv_exactly(s, 10), b"last words")
        self.assertEqual(s.recv(10), b"")  # the echo server's FIN

    def test_drop_stalls_everything_and_forward_delivers_it(self):
        old = self.client()
        self.roundtrip(old)
        self.proxy.drop()
        old.sendall(b"held")
        new = self.client()  # the kernel accepts; nothing goes through
        new.sendall(b"also held")
        self.assertTrue(silent_for(old, 0.3))
        self.assertTrue(silent_for(new, 0.01))
        self.proxy.forward()
        self.assertEqual(recv_exactly(old, 4), b"held")
        self.assertEqual(recv_exactly(new, 9), b"also held")

    def test_refuse_resets_new_connections_only(self):
        old = self.client()
        self.roundtrip(old)
        self.proxy.refuse()
        self.assertTrue(reset_on_connect(self.proxy.port))
        self.roundtrip(old, b"still here")
        self.assertEqual(self.proxy.stats()["refused"], 1)
        self.proxy.forward()
        self.roundtrip(self.client())

    def test_cut_resets_current_connections(self):
        a, b = self.client(), self.client()
        self.roundtrip(a)
        self.roundtrip(b)
        self.proxy.cut()
        self.assertTrue(is_reset(a))
        self.assertTrue(is_reset(b))
        self.assertEqual(self.proxy.stats()["cuts"], 2)
        self.roundtrip(self.client(), b"after the cut")

    def test_isolate_then_heal(self):
        a = self.client()
        self.roundtrip(a)
        self.proxy.isolate()
        self.assertTrue(is_reset(a))
        b = self.client()
        b.sendall(b"x")
        self.assertTrue(silent_for(b, 0.3))
        self.proxy.forward()
        self.assertEqual(recv_exactly(b, 1), b"x")

    def test_delay_holds_data_at_least_that_long(self):
        s = self.client()
        self.roundtrip(s)
        self.proxy.delay(0.3)
        t0 = time.monotonic()
        self.roundtrip(s, b"slow")  # delayed going and coming back
        self.assertGreaterEqual(time.monotonic() - t0, 0.6)
        self.proxy.delay(0)
        self.roundtrip(s, b"fast again")

    def test_target_down_resets_the_client(self):
        dead = socket.socket()
        dead.bind(("127.0.0.1", 0))
        port = dead.getsockname()[1]
        dead.close()  # nothing listens there now
        with FaultProxy(port) as p:
            self.assertTrue(reset_on_connect(p.port))


if __name__ == "__main__":
    unittest.main(verbosity=2)
