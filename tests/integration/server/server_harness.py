"""server_harness: starts steno-server, talks to its control API, and is a
small Deepgram live-protocol client whose every received message is checked
against the JSON schema of its type in Deepgram's AsyncAPI spec.

Environment (set by meson): STENO_SERVER = the steno-server binary,
STENO_SOURCE_ROOT = the project root; the spec is looked up at
<root>/../shared/specs/deepgram/asyncapi.yml.
"""

import asyncio
import json
import os
import random
import resource
import select
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request

import jsonschema
import websockets
import yaml

SKIP = 77
FNV_INIT = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
RATE = 16000
QUERY = "model=nova-3&encoding=linear16&sample_rate=16000"

# Message type -> schema name in the spec's components.schemas.
SCHEMAS = {
    "Results": "ListenV1_ListenV1Results",
    "Metadata": "ListenV1_ListenV1Metadata",
    "UtteranceEnd": "ListenV1_ListenV1UtteranceEnd",
    "SpeechStarted": "ListenV1_ListenV1SpeechStarted",
}


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def source_root():
    root = os.environ.get("STENO_SOURCE_ROOT")
    if not root:
        root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
    return root


def server_binary():
    exe = os.environ.get("STENO_SERVER")
    if not exe or not os.access(exe, os.X_OK):
        fail("STENO_SERVER must name the steno-server binary (got %r)" % exe)
    return exe


class Validator:
    """Validates server messages against Deepgram's own schemas."""

    def __init__(self):
        path = os.path.normpath(os.path.join(source_root(), "..", "shared", "specs", "deepgram",
                                             "asyncapi.yml"))
        if not os.path.exists(path):
            fail("Deepgram's AsyncAPI spec is missing: expected it at %s "
                 "(STENO_SOURCE_ROOT/../shared/specs/deepgram/asyncapi.yml)" % path)
        with open(path) as f:
            spec = yaml.safe_load(f)
        components = spec["components"]
        self.validators = {}
        for mtype, name in SCHEMAS.items():
            if name not in components["schemas"]:
                fail("schema %s missing from %s" % (name, path))
            schema = {"$ref": "#/components/schemas/" + name, "components": components}
            self.validators[mtype] = jsonschema.Draft7Validator(schema)

    def check(self, msg):
        """Parses and validates one text frame; returns the object."""
        try:
            obj = json.loads(msg)
        except (TypeError, ValueError) as e:
            raise AssertionError("server sent a frame that is not JSON: %r (%s)" % (msg[:200], e))
        mtype = obj.get("type") if isinstance(obj, dict) else None
        if mtype not in self.validators:
            raise AssertionError("server sent an unknown message type: %r" % (msg[:200],))
        errors = sorted(self.validators[mtype].iter_errors(obj), key=str)
        if errors:
            raise AssertionError("%s message violates the spec schema: %s\n%s" %
                                 (mtype, errors[0].message, msg[:500]))
        return obj


_validator = None


def validator():
    global _validator
    if _validator is None:
        _validator = Validator()
    return _validator


def fnv1a64(data, h=FNV_INIT):
    for b in data:
        h = ((h ^ b) * FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return h


def fnv_hex(data):
    return "%016x" % fnv1a64(data)


def pcm(samples, seed=1):
    """Deterministic pseudo-random 16-bit PCM."""
    return random.Random(seed).randbytes(samples * 2)


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Server:
    """One steno-server process for a test file."""

    def __init__(self, *args, tls=None):
        self.args = [server_binary(), "--port", "0", "--control-port", "0"] + list(args)
        self.errlog = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=self.errlog,
                                     text=True)
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline() if ready else ""
        parts = line.split()
        if len(parts) < 6 or parts[1] != "listening":
            self.proc.kill()
            self.proc.wait()
            fail("steno-server did not start: first line %r\n%s" % (line, self.stderr()))
        self.port = int(parts[3].rsplit(":", 1)[1])
        self.cport = int(parts[5].rsplit(":", 1)[1])
        self.scheme = "wss" if tls else "ws"
        self.stopped = False

    def stderr(self):
        self.errlog.seek(0)
        return self.errlog.read()[-4000:]

    def url(self, query=QUERY, path="/v1/listen"):
        return "%s://127.0.0.1:%d%s%s" % (self.scheme, self.port, path,
                                          ("?" + query) if query is not None else "")

    # --- control API -------------------------------------------------------

    def control(self, method, path, body=None, timeout=30):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.cport, path), data=data,
                                     method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def get(self, path):
        status, body = self.control("GET", path)
        assert status == 200, "GET %s -> %d %r" % (path, status, body)
        return body

    def post_fault(self, obj, expect=200):
        status, body = self.control("POST", "/faults", obj)
        assert status == expect, "POST /faults %r -> %d %r" % (obj, status, body)
        return body

    def clear_faults(self):
        status, _ = self.control("DELETE", "/faults")
        assert status == 200

    def record(self, request_id):
        recs = self.get("/connections?request_id=" + request_id)["connections"]
        assert len(recs) == 1, "expected one record for %s, got %d" % (request_id, len(recs))
        return recs[0]

    async def record_closed(self, request_id, timeout_ms=10000):
        """The record once the server has seen the connection end."""
        rec = await asyncio.to_thread(self.record, request_id)
        if rec["state"] in ("open", "handshake"):
            rec = await asyncio.to_thread(
                self.get, "/connections/%d?wait_closed_ms=%d" % (rec["id"], timeout_ms))
        assert rec["state"] in ("closed", "rejected"), "connection %s still %s" % (
            request_id, rec["state"])
        return rec

    # --- lifetime -----------------------------------------------------------

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.stopped:
            return self.proc.returncode
        self.stopped = True
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            fail("steno-server did not exit within %d s of signal %d\n%s" %
                 (timeout, sig, self.stderr()))
        self.proc.stdout.close()
        if rc != 0:
            fail("steno-server exited with status %d (sanitizer report?)\n%s" %
                 (rc, self.stderr()))
        return rc

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is not None and not self.stopped:
            print("--- steno-server stderr ---\n" + self.stderr(), file=sys.stderr)
        self.stop()


class Closed(Exception):
    pass


class Client:
    """A Deepgram live-protocol client; every message it receives is
    schema-checked and kept in `messages`."""

    def __init__(self, ws):
        self.ws = ws
        self.messages = []
        self.close_code = None
        self.close_reason = None
        self.request_id = ws.response_headers.get("dg-request-id")
        self.sent = bytearray()

    @classmethod
    async def connect(cls, server, query=QUERY, headers=None, **kw):
        kw.setdefault("ping_interval", None)
        kw.setdefault("max_size", None)
        kw.setdefault("open_timeout", 30)
        if server.scheme == "wss":
            import ssl
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            kw.setdefault("ssl", ctx)
        ws = await websockets.connect(server.url(query), extra_headers=headers or {}, **kw)
        return cls(ws)

    async def audio(self, data):
        self.sent += data
        await self.ws.send(bytes(data))

    async def control(self, mtype):
        await self.ws.send(json.dumps({"type": mtype}))

    async def recv(self, timeout=20):
        """The next message (validated), or Closed when the connection ends."""
        try:
            raw = await asyncio.wait_for(self.ws.recv(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError("timed out waiting for a message") from None
        except websockets.ConnectionClosed as e:
            self.close_code, self.close_reason = e.code, e.reason
            raise Closed() from None
        if isinstance(raw, bytes):
            raise AssertionError("server sent a binary frame")
        obj = validator().check(raw)
        self.messages.append(obj)
        return obj

    async def until(self, pred, timeout=20):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("timed out waiting for a message")
            m = await self.recv(left)
            if pred(m):
                return m

    async def drain(self, timeout=20):
        """Reads until the server closes; returns (code, reason)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("timed out waiting for the close")
            try:
                await self.recv(left)
            except Closed:
                return self.close_code, self.close_reason

    def finals(self):
        return [m for m in self.messages if m["type"] == "Results" and m.get("is_final")]

    async def close(self):
        await self.ws.close()


def span_of(result):
    """(a, b, fnv-hex) named by a null-engine transcript, or None if empty."""
    t = result["channel"]["alternatives"][0]["transcript"]
    if not t:
        return None
    word, rng, chk = t.split(" ")
    assert word == "span" and chk.startswith("fnv1a64="), t
    a, b = (int(x) for x in rng.split("-"))
    return a, b, chk[len("fnv1a64="):]


def run_tests(tests, setup=None):
    """Runs `async def test_*` coroutines in order; exit 1 if any failed."""
    failed = 0
    for name, fn in tests:
        t0 = time.monotonic()
        try:
            asyncio.run(fn())
            print("ok   %s (%.2fs)" % (name, time.monotonic() - t0), flush=True)
        except Exception:
            failed += 1
            print("FAIL %s" % name, flush=True)
            traceback.print_exc()
    if failed:
        print("%d test(s) failed" % failed)
        sys.exit(1)


def collect(module_globals):
    return [(n, f) for n, f in module_globals.items()
            if n.startswith("test_") and asyncio.iscoroutinefunction(f)]
