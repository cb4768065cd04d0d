"""server_harness: starts steno-server, talks to its control API, and is a
small Deepgram live-protocol client (and an AssemblyAI v3 one, AaiClient)
whose every received message is checked against the JSON schema of its type
in the vendor's AsyncAPI spec.

Environment (set by meson): STENO_SERVER = the steno-server binary,
STENO_SOURCE_ROOT = the project root; the specs are looked up at
<root>/../shared/specs/deepgram/asyncapi.yml (AsyncAPI 2) and
<root>/../shared/specs/assemblyai/usm-streaming.yml (AsyncAPI 3).
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


def spec_path(*parts):
    return os.path.normpath(os.path.join(source_root(), "..", "shared", "specs", *parts))


# Not in usm-streaming.yml: the frame the service sends before an error
# close, {"type":"Error","error_code":N,"error":TEXT} (the README in
# specs/assemblyai/ notes the vendor SDK handles it; its docs show the shape).
AAI_ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "type": {"const": "Error"},
        "error_code": {"type": "integer"},
        "error": {"type": "string"},
    },
    "required": ["type", "error_code", "error"],
    "additionalProperties": False,
}


class AaiValidator(Validator):
    """Validates AssemblyAI messages against usm-streaming.yml. AsyncAPI 3
    lists messages under channels and says in operations which way they go
    (the document is written from the client's side: `receive` = from the
    server); each message's payload is a $ref into components.schemas whose
    `type` property is a const naming the message."""

    def __init__(self):
        path = spec_path("assemblyai", "usm-streaming.yml")
        if not os.path.exists(path):
            fail("AssemblyAI's AsyncAPI spec is missing: expected it at %s" % path)
        with open(path) as f:
            spec = yaml.safe_load(f)
        if not str(spec.get("asyncapi", "")).startswith("3."):
            fail("%s is not AsyncAPI 3" % path)
        components = spec["components"]

        def deref(node):
            while isinstance(node, dict) and "$ref" in node:
                cur = spec
                for part in node["$ref"].lstrip("#/").split("/"):
                    cur = cur[part]
                node = cur
            return node

        self.validators, self.client_validators = {}, {}
        for op in spec["operations"].values():
            for mref in op["messages"]:
                msg = deref(mref)
                ref = msg["payload"].get("$ref")
                if not ref:
                    continue  # the binary audio chunk
                schema_name = ref.rsplit("/", 1)[1]
                mtype = components["schemas"][schema_name]["properties"]["type"]["const"]
                v = jsonschema.Draft7Validator({"$ref": ref, "components": components})
                (self.validators if op["action"] == "receive" else self.client_validators)[mtype] = v
        for want in ("Begin", "Turn", "Termination"):
            if want not in self.validators:
                fail("no server message %s found in %s" % (want, path))
        self.validators["Error"] = jsonschema.Draft7Validator(AAI_ERROR_SCHEMA)

    def check_client(self, obj):
        """A message this client is about to send must be valid too."""
        v = self.client_validators.get(obj.get("type"))
        if v is None:
            return
        errors = sorted(v.iter_errors(obj), key=str)
        if errors:
            raise AssertionError("client message violates the spec: %s %r" %
                                 (errors[0].message, obj))


_aai_validator = None


def aai_validator():
    global _aai_validator
    if _aai_validator is None:
        _aai_validator = AaiValidator()
    return _aai_validator


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
        self.path = "/v3/ws" if "assemblyai" in args else "/v1/listen"

    def stderr(self):
        self.errlog.seek(0)
        return self.errlog.read()[-4000:]

    def url(self, query=QUERY, path="/v1/listen"):
        if path is None:
            path = self.path
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

    def last_record(self):
        recs = self.get("/connections")["connections"]
        assert recs, "no connection records"
        return recs[-1]

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
        obj = self.check(raw)
        self.messages.append(obj)
        return obj

    def check(self, raw):
        """The message, validated against the protocol's description (raises if it is not)."""
        return validator().check(raw)

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


AAI_QUERY = "sample_rate=16000&encoding=pcm_s16le&speech_model=universal-streaming-english"


class AaiClient(Client):
    """An AssemblyAI v3 client: every message it receives is validated
    against usm-streaming.yml (Error against AAI_ERROR_SCHEMA)."""

    def __init__(self, ws):
        super().__init__(ws)
        self.request_id = None  # the Begin id, once received
        self.begin = None

    @classmethod
    async def connect(cls, server, query=AAI_QUERY, headers=None, **kw):
        kw.setdefault("ping_interval", None)
        kw.setdefault("max_size", None)
        kw.setdefault("open_timeout", 30)
        ws = await websockets.connect(server.url(query, path="/v3/ws"),
                                      extra_headers=headers or {}, **kw)
        return cls(ws)

    @classmethod
    async def open(cls, server, query=AAI_QUERY, headers=None, **kw):
        """Connects and reads Begin, which must be the first message."""
        c = await cls.connect(server, query, headers, **kw)
        m = await c.recv()
        assert m["type"] == "Begin", "first message is %r, not Begin" % (m,)
        c.begin = m
        c.request_id = m["id"]
        return c

    async def control(self, mtype, **fields):
        obj = dict(type=mtype, **fields)
        aai_validator().check_client(obj)
        await self.ws.send(json.dumps(obj))

    async def recv(self, timeout=20):
        try:
            raw = await asyncio.wait_for(self.ws.recv(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError("timed out waiting for a message") from None
        except websockets.ConnectionClosed as e:
            self.close_code, self.close_reason = e.code, e.reason
            raise Closed() from None
        if isinstance(raw, bytes):
            raise AssertionError("server sent a binary frame")
        obj = aai_validator().check(raw)
        self.messages.append(obj)
        return obj

    def turns(self, end_of_turn=None):
        return [m for m in self.messages if m["type"] == "Turn" and
                (end_of_turn is None or m["end_of_turn"] == end_of_turn)]


def turn_span(turn):
    """(a, b, fnv-hex) named by a null-engine Turn's transcript, or None."""
    t = turn["transcript"]
    if not t:
        return None
    word, rng, chk = t.split(" ")
    assert word == "span" and chk.startswith("fnv1a64="), t
    a, b = (int(x) for x in rng.split("-"))
    return a, b, chk[len("fnv1a64="):]


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
