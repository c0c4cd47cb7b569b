"""A fault-injecting TCP proxy for end-to-end tests: listens on
127.0.0.1:P, forwards every connection to 127.0.0.1:Q, and can be told at
run time to stall traffic (a partition), reset new connections, delay
data, or cut every current connection.

One thread owns every socket and runs a selector loop; the public methods
hand it a command and wait until it has been applied, so after drop() or
cut() returns the fault is in force. Placed between Raft peers by the
fault-injection test (one proxy per directed link), so a node is isolated
by dropping and cutting the proxies that lead to and from it. Its own test
is test_faults.py; `python3 faults.py P Q` runs one by hand, reading
commands (pass, drop, refuse, delay S, cut, quit) from stdin."""
import collections
import queue
import selectors
import socket
import struct
import sys
import threading
import time

CHUNK = 65536
BUFFER_LIMIT = 1 << 20  # per direction: stop reading beyond this

PASS = "pass"  # forward everything
DROP = "drop"  # stall: accept and read nothing, forward nothing
REFUSE = "refuse"  # reset new connections; current ones go on


def _abort(sock):
    """Close with a reset (RST) instead of an orderly FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                        struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


class _Pipe:
    """One direction of a connection: bytes read from src wait here, each
    chunk with the time it may be sent, until dst takes them."""

    def __init__(self, src, dst):
        self.src = src
        self.dst = dst
        self.chunks = collections.deque()  # [due, bytes]
        self.size = 0
        self.eof = False  # src said FIN
        self.shut = False  # FIN passed on to dst


class _Conn:
    def __init__(self, client, upstream):
        self.client = client
        self.upstream = upstream
        self.connected = False
        self.up = _Pipe(client, upstream)
        self.down = _Pipe(upstream, client)


class FaultProxy:
    """A proxy from 127.0.0.1:`port` (0 picks a free one, read it back from
    .port after construction) to target_host:target_port. Any thread may
    call the control methods; they return once the loop thread applied
    them. close() stops the loop and resets every connection."""

    def __init__(self, target_port, port=0, target_host="127.0.0.1",
                 host="127.0.0.1"):
        self.target = (target_host, target_port)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((host, port))
        self.listener.listen(128)
        self.listener.setblocking(False)
        self.port = self.listener.getsockname()[1]
        self.mode = PASS
        self.delay_s = 0.0
        self.conns = []
        self.accepted = 0
        self.refused = 0
        self.cuts = 0
        self._commands = queue.Queue()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._sel = selectors.DefaultSelector()
        self._masks = {}
        self._thread = None
        self._stopping = False

    # --- control, from any thread ----------------------------------------

    def start(self):
        """Start the loop thread; returns self."""
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name="faultproxy:%d" % self.port)
        self._thread.start()
        return self

    def forward(self):
        """Heal: forward everything again, including what was stalled."""
        self._call(self._set_mode, PASS)

    def drop(self):
        """Stall: current and new connections stay open but nothing moves
        in either direction (as in a partition, the peers see timeouts).
        Nothing is lost: forward() delivers what was held."""
        self._call(self._set_mode, DROP)

    def refuse(self):
        """Reset every new connection right after accepting it; current
        connections go on."""
        self._call(self._set_mode, REFUSE)

    def delay(self, seconds):
        """Hold every chunk read from now on for `seconds` before sending it
        on (order is kept). 0 turns the delay off."""
        self._call(setattr, self, "delay_s", float(seconds))

    def cut(self):
        """Reset every current connection, on both sides."""
        self._call(self._cut_all)

    def isolate(self):
        """drop() and cut(): what a long partition looks like."""
        self.drop()
        self.cut()

    def stats(self):
        """Counters: accepted, refused, active connections, cuts."""
        return self._call(lambda: dict(
            accepted=self.accepted, refused=self.refused,
            active=len(self.conns), cuts=self.cuts, mode=self.mode,
            delay=self.delay_s))

    def close(self):
        """Stop the loop, reset every connection, close the listener."""
        if self._thread and self._thread.is_alive():
            self._call(self._stop)
            self._thread.join()
        for s in (self.listener, self._wake_r, self._wake_w):
            s.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    def _call(self, fn, *args):
        if not self._thread or not self._thread.is_alive():
            return fn(*args)  # not started (or stopped): nobody else runs
        done = threading.Event()
        box = []
        self._commands.put((fn, args, done, box))
        self._wake_w.send(b"x")
        done.wait()
        if box and isinstance(box[0], BaseException):
            raise box[0]
        return box[0] if box else None

    # --- the loop thread -------------------------------------------------

    def _set_mode(self, mode):
        self.mode = mode

    def _stop(self):
        self._stopping = True
        self._cut_all()

    def _cut_all(self):
        for c in self.conns:
            self._close(c, abort=True)
        self.cuts += len(self.conns)
        self.conns = []

    def _close(self, c, abort):
        for s in (c.client, c.upstream):
            if s in self._masks:
                self._sel.unregister(s)
                del self._masks[s]
            if abort:
                _abort(s)
            else:
                s.close()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            if self.mode == REFUSE:
                self.refused += 1
                _abort(client)
                continue
            self.accepted += 1
            client.setblocking(False)
            up = socket.socket()
            up.setblocking(False)
            for s in (client, up):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            up.connect_ex(self.target)
            self.conns.append(_Conn(client, up))

    def _want(self, c, now):
        """The selector events each socket of c needs now."""
        masks = {c.client: 0, c.upstream: 0}
        if not c.connected:
            masks[c.upstream] = selectors.EVENT_WRITE
            return masks
        if self.mode == DROP:
            return masks
        for p in (c.up, c.down):
            if not p.eof and p.size < BUFFER_LIMIT:
                masks[p.src] |= selectors.EVENT_READ
            if p.chunks and p.chunks[0][0] <= now:
                masks[p.dst] |= selectors.EVENT_WRITE
        return masks

    def _register(self, sock, mask):
        old = self._masks.get(sock, 0)
        if mask == old:
            return
        if not old:
            self._sel.register(sock, mask)
        elif not mask:
            self._sel.unregister(sock)
        else:
            self._sel.modify(sock, mask)
        if mask:
            self._masks[sock] = mask
        else:
            del self._masks[sock]

    def _pump(self, c, sock, events, now):
        """Move bytes for c after sock became ready. Returns False when c is
        finished (closed or reset)."""
        if not c.connected:
            if sock is c.upstream and events & selectors.EVENT_WRITE:
                err = c.upstream.getsockopt(socket.SOL_SOCKET,
                                            socket.SO_ERROR)
                if err:
                    return False  # the target is down: reset the client
                c.connected = True
            return True
        for p in (c.up, c.down):
            if sock is p.src and events & selectors.EVENT_READ:
                data = p.src.recv(CHUNK)
                if data:
                    p.chunks.append([now + self.delay_s, data])
                    p.size += len(data)
                else:
                    p.eof = True
            if sock is p.dst and events & selectors.EVENT_WRITE:
                while p.chunks and p.chunks[0][0] <= now:
                    data = p.chunks[0][1]
                    n = p.dst.send(data)
                    p.size -= n
                    if n < len(data):
                        p.chunks[0][1] = data[n:]
                        break
                    p.chunks.popleft()
        for p in (c.up, c.down):
            if p.eof and not p.chunks and not p.shut:
                p.dst.shutdown(socket.SHUT_WR)
                p.shut = True
        return not (c.up.shut and c.down.shut)

    def _run(self):
        self._sel.register(self._wake_r, selectors.EVENT_READ)
        while not self._stopping:
            now = time.monotonic()
            self._register(self.listener,
                           0 if self.mode == DROP else selectors.EVENT_READ)
            timeout = None
            for c in self.conns:
                for s, m in self._want(c, now).items():
                    self._register(s, m)
                if self.mode != DROP and c.connected:
                    for p in (c.up, c.down):
                        if p.chunks and p.chunks[0][0] > now:
                            t = p.chunks[0][0] - now
                            timeout = t if timeout is None else min(timeout,
                                                                    t)
            ready = self._sel.select(timeout)
            now = time.monotonic()
            finished = []
            for key, events in ready:
                sock = key.fileobj
                if sock is self._wake_r:
                    self._wake_r.recv(4096)
                    self._run_commands()
                    break  # the connections may have changed
                if sock is self.listener:
                    self._accept()
                    continue
                for c in self.conns:
                    if sock is c.client or sock is c.upstream:
                        try:
                            if not self._pump(c, sock, events, now):
                                finished.append(c)
                        except OSError:
                            finished.append(c)
                        break
            for c in finished:
                if c in self.conns:
                    clean = c.up.shut and c.down.shut
                    self._close(c, abort=not clean)
                    self.conns.remove(c)
        self._sel.close()

    def _run_commands(self):
        while True:
            try:
                fn, args, done, box = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                box.append(fn(*args))
            except BaseException as e:  # handed back to the caller
                box.append(e)
            done.set()


def main(argv):
    if len(argv) != 3:
        sys.exit("usage: faults.py LISTEN_PORT TARGET_PORT  (then type: "
                 "pass, drop, refuse, delay SECONDS, cut, stats, quit)")
    with FaultProxy(int(argv[2]), int(argv[1])) as p:
        print("proxy 127.0.0.1:%d -> 127.0.0.1:%s" % (p.port, argv[2]))
        for line in sys.stdin:
            cmd = line.split()
            if not cmd:
                continue
            if cmd[0] == "quit":
                break
            actions = {"pass": p.forward, "drop": p.drop,
                       "refuse": p.refuse, "cut": p.cut}
            if cmd[0] in actions:
                actions[cmd[0]]()
            elif cmd[0] == "delay" and len(cmd) == 2:
                p.delay(float(cmd[1]))
            elif cmd[0] == "stats":
                print(p.stats())
            else:
                print("unknown command: %s" % line.strip())
                continue
            print("ok")


if __name__ == "__main__":
    main(sys.argv)
