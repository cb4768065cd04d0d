"""Shared pieces of the steno-chaos tests: the proxy as a subprocess, its
control API, and small upstream servers written here (echo, source, sink)
so every toxic is checked against a real TCP pair."""

import json
import os
import resource
import select
import signal
import socket
import subprocess
import threading
import time
import unittest
import urllib.error
import urllib.request

CHAOS = os.environ.get("STENO_CHAOS")
WAIT = 10.0  # generous upper bound for things that must happen; never a sync point


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port():
    """A port nothing listens on (bound, then closed)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(pred, timeout=WAIT, what="condition"):
    """Polls pred() until true; for state only visible through the control API."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.01)


def recv_exactly(sock, n, timeout=WAIT):
    sock.settimeout(timeout)
    buf = bytearray()
    while len(buf) < n:
        d = sock.recv(n - len(buf))
        if not d:
            raise AssertionError("EOF after %d of %d bytes" % (len(buf), n))
        buf += d
    return bytes(buf)


def recv_until_end(sock, timeout=WAIT):
    """Reads until EOF or an error; returns (bytes, None | 'eof' | exception class)."""
    sock.settimeout(timeout)
    buf = bytearray()
    while True:
        try:
            d = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError) as e:
            return bytes(buf), type(e)
        if not d:
            return bytes(buf), "eof"
        buf += d


def pattern(n, salt=0):
    return bytes((i * 7 + salt) & 0xFF for i in range(n))


def process_cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Proxy:
    """steno-chaos on port 0 with a control port; parses its first stdout line."""

    def __init__(self, upstream_port, *args, seed=None):
        if not CHAOS:
            raise unittest.SkipTest("STENO_CHAOS not set")
        cmd = [CHAOS, "--listen", "127.0.0.1:0", "--upstream",
               "127.0.0.1:%d" % upstream_port, "--control", "127.0.0.1:0"]
        if seed is not None:
            cmd += ["--seed", str(seed)]
        cmd += list(args)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        ready, _, _ = select.select([self.proc.stdout], [], [], WAIT)
        line = self.proc.stdout.readline().decode() if ready else ""
        words = line.split()
        if len(words) < 2 or words[0] != "listening":
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("bad first line from steno-chaos: %r" % line)
        self.info = dict(zip(words[0::2], words[1::2]))
        self.port = int(self.info["listening"].rsplit(":", 1)[1])
        self.control_port = int(self.info["control"].rsplit(":", 1)[1])
        self.seed = self.info["seed"]

    def connect(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=WAIT)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    def api(self, method, path, body=None):
        """Returns (status, decoded JSON body)."""
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.control_port, path),
                                     data=data, method=method)
        try:
            with urllib.request.urlopen(req, timeout=WAIT) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def add_toxic(self, **toxic):
        status, body = self.api("POST", "/toxics", toxic)
        if status != 201:
            raise AssertionError("POST /toxics %r -> %d %r" % (toxic, status, body))
        return body

    def remove_toxic(self, name):
        status, body = self.api("DELETE", "/toxics/" + name)
        assert status == 200, (status, body)

    def connections(self):
        status, body = self.api("GET", "/connections")
        assert status == 200, (status, body)
        return body

    def connection_of(self, sock):
        """The proxy's record of the connection whose client end is sock."""
        client = "127.0.0.1:%d" % sock.getsockname()[1]
        return wait_for(lambda: next((c for c in self.connections() if c["client"] == client),
                                     None), what="connection " + client)

    def stop(self, sig=signal.SIGTERM):
        """Stops the proxy; returns its exit status (0 expected, ASan leaks make it fail)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(WAIT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = "hung"
        self.proc.stdout.close()
        return rc


class Upstream:
    """A threaded TCP server; handler(sock, record) runs per connection, record is a dict."""

    def __init__(self, handler):
        self.handler = handler
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(128)
        self.port = self.lsock.getsockname()[1]
        self.records = []
        self.cond = threading.Condition()
        self.socks = []
        self.closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                s, _ = self.lsock.accept()
            except OSError:
                return
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            rec = {"received": bytearray(), "end": None}
            with self.cond:
                self.records.append(rec)
                self.socks.append(s)
                self.cond.notify_all()
            threading.Thread(target=self._run, args=(s, rec), daemon=True).start()

    def _run(self, s, rec):
        try:
            self.handler(self, s, rec)
        except (ConnectionResetError, BrokenPipeError) as e:
            self.set(rec, end=type(e))
        except OSError as e:
            if not self.closing:
                self.set(rec, end=e)
        finally:
            self.set(rec, done=True)

    def set(self, rec, **kw):
        with self.cond:
            rec.update(kw)
            self.cond.notify_all()

    def add_received(self, rec, data):
        with self.cond:
            rec["received"] += data
            self.cond.notify_all()

    def wait(self, pred, timeout=WAIT, what="upstream condition"):
        """Waits until pred(records) is true (records are updated under the condition)."""
        with self.cond:
            if not self.cond.wait_for(lambda: pred(self.records), timeout):
                raise AssertionError("timed out waiting for " + what)

    def close(self):
        self.closing = True
        self.lsock.close()
        with self.cond:
            for s in self.socks:
                try:
                    s.shutdown(socket.SHUT_RDWR)  # wakes a handler blocked in recv
                except OSError:
                    pass
                s.close()


def read_all(up, s, rec):
    """Reads until EOF; records the bytes and how the stream ended."""
    while True:
        d = s.recv(65536)
        if not d:
            up.set(rec, end="eof")
            return
        up.add_received(rec, d)


def echo(up, s, rec):
    while True:
        d = s.recv(65536)
        if not d:
            up.set(rec, end="eof")
            s.shutdown(socket.SHUT_WR)
            return
        up.add_received(rec, d)
        s.sendall(d)


def source(payload):
    """Once the client has sent something (so its connect() has surely returned; a
    fast RST could otherwise fail the connect itself), sends payload at once, then
    reads until the stream ends."""

    def run(up, s, rec):
        up.add_received(rec, s.recv(65536))
        s.sendall(payload)
        up.set(rec, sent=True)
        read_all(up, s, rec)

    return run


class ChaosTest(unittest.TestCase):
    """Starts an upstream with handler `upstream_handler` and a proxy in front of it."""

    upstream_handler = staticmethod(echo)
    proxy_args = ()

    def setUp(self):
        raise_nofile()
        self.up = Upstream(self.upstream_handler)
        self.proxy = Proxy(self.up.port, *self.proxy_args)
        self.socks = []

    def tearDown(self):
        for s in self.socks:
            s.close()
        rc = self.proxy.stop()
        self.up.close()
        self.assertEqual(rc, 0, "steno-chaos exit status")

    def connect(self):
        s = self.proxy.connect()
        self.socks.append(s)
        return s

    def rtt(self, s, msg=b"ping"):
        t = time.monotonic()
        s.sendall(msg)
        self.assertEqual(recv_exactly(s, len(msg)), msg)
        return time.monotonic() - t
