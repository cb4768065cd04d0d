#!/usr/bin/python3
"""test_openai: `steno-server --protocol openai` speaks OpenAI's Realtime API
in transcription sessions (GA) as specs/openai/ describes it:
session.created first, session.update -> session.updated, base64
input_audio_buffer.append, input_audio_buffer.commit -> committed (item ids
chained by previous_item_id) -> delta -> completed whose null-engine text
names exactly the audio of the item, the empty-commit error, error events
that leave the session open, the wrong-key refusal (error invalid_api_key,
close 3000), session_expired at --session-limit-s, --max-rate, the control
API's faults, and real speech through pocketsphinx. Every server message is
validated against the spec's RealtimeServerEvent union and every client
event against RealtimeClientEvent."""

import array
import asyncio
import base64
import json
import os
import sys
import time
import urllib.error
import urllib.request
import wave

import jsonschema
import websockets
import yaml

from server_harness import Closed, Server, fnv_hex, fail, pcm, run_tests, spec_path, collect

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wer  # noqa: E402

RATE = 24000  # audio/pcm is 24 kHz only
QUERY = "intent=transcription"
PATH = "/v1/realtime"
srv = None  # --protocol openai (no pacing rule by default)


class OaiValidator:
    """RealtimeServerEvent / RealtimeClientEvent from openapi-realtime.yml,
    each also checked against the union member its `type` names (the
    union is anyOf, so a message must match its own member, not any)."""

    def __init__(self):
        path = spec_path("openai", "openapi-realtime.yml")
        if not os.path.exists(path):
            fail("OpenAI's Realtime spec is missing: expected it at %s" % path)
        with open(path) as f:
            spec = yaml.safe_load(f)
        comps = spec["components"]
        self.members = {}
        self.client_members = {}
        for union, out in (("RealtimeServerEvent", self.members),
                           ("RealtimeClientEvent", self.client_members)):
            node = comps["schemas"][union]
            for ref in node.get("anyOf", node.get("oneOf", [])):
                name = ref["$ref"].rsplit("/", 1)[1]
                t = comps["schemas"][name]["properties"]["type"]
                mtype = t.get("const") or t["enum"][0]
                out[mtype] = jsonschema.Draft202012Validator(
                    {"$ref": ref["$ref"], "components": comps})
        for want in ("session.created", "input_audio_buffer.committed", "error",
                     "conversation.item.input_audio_transcription.completed"):
            if want not in self.members:
                fail("no server event %s in %s" % (want, path))

    def _check(self, table, obj, who):
        v = table.get(obj.get("type") if isinstance(obj, dict) else None)
        if v is None:
            raise AssertionError("%s sent an event type the spec does not have: %r" %
                                 (who, obj))
        errors = sorted(v.iter_errors(obj), key=str)
        if errors:
            raise AssertionError("%s event violates the spec schema: %s\n%r" %
                                 (who, errors[0].message, obj))

    def check(self, raw):
        try:
            obj = json.loads(raw)
        except (TypeError, ValueError) as e:
            raise AssertionError("server sent a frame that is not JSON: %r (%s)" % (raw[:200], e))
        self._check(self.members, obj, "server")
        return obj

    def check_client(self, obj):
        self._check(self.client_members, obj, "client")


_v = None


def validator():
    global _v
    if _v is None:
        _v = OaiValidator()
    return _v


def session_update(**transcription):
    tr = {"model": "gpt-4o-transcribe"}
    tr.update(transcription)
    return {"type": "session.update", "session": {
        "type": "transcription",
        "audio": {"input": {"format": {"type": "audio/pcm", "rate": RATE},
                            "transcription": tr, "turn_detection": None}}}}


class OaiClient:
    def __init__(self, ws):
        self.ws = ws
        self.messages = []
        self.close_code = self.close_reason = None
        self.session = None
        self.sent = bytearray()

    @classmethod
    async def connect(cls, server, query=QUERY, headers=None, path=PATH, **kw):
        kw.setdefault("ping_interval", None)
        kw.setdefault("max_size", None)
        kw.setdefault("open_timeout", 30)
        ws = await websockets.connect(server.url(query, path=path), extra_headers=headers or {},
                                      **kw)
        return cls(ws)

    @classmethod
    async def open(cls, server, headers=None, update=True):
        """Connects, reads session.created (first), and configures the session."""
        c = await cls.connect(server, headers=headers)
        m = await c.recv()
        assert m["type"] == "session.created", "first event is %r" % (m,)
        c.session = m["session"]
        if update:
            await c.send(session_update(language="en"))
            u = await c.until(lambda m: m["type"] in ("session.updated", "error"))
            assert u["type"] == "session.updated", u
        return c

    async def send(self, obj):
        validator().check_client(obj)
        await self.ws.send(json.dumps(obj))

    async def audio(self, data):
        self.sent += data
        await self.send({"type": "input_audio_buffer.append",
                         "audio": base64.b64encode(bytes(data)).decode()})

    async def commit(self):
        await self.send({"type": "input_audio_buffer.commit"})

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
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("timed out waiting for the close")
            try:
                await self.recv(left)
            except Closed:
                return self.close_code, self.close_reason

    def of(self, mtype):
        return [m for m in self.messages if m["type"] == mtype]


COMPLETED = "conversation.item.input_audio_transcription.completed"
DELTA = "conversation.item.input_audio_transcription.delta"


def spans(text):
    """[(a, b, fnv-hex)] named by a null-engine item transcript."""
    out, toks = [], text.split(" ") if text else []
    assert len(toks) % 3 == 0, text
    for i in range(0, len(toks), 3):
        word, rng, chk = toks[i:i + 3]
        assert word == "span" and chk.startswith("fnv1a64="), text
        a, b = (int(x) for x in rng.split("-"))
        out.append((a, b, chk[len("fnv1a64="):]))
    return out


# --- handshake and session --------------------------------------------------


async def test_session_created_comes_first_and_names_the_session():
    t0 = time.time()
    c = await OaiClient.open(srv, update=False)
    s = c.session
    assert s["type"] == "transcription" and s["object"] == "realtime.transcription_session"
    assert s["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": RATE}
    assert s["audio"]["input"]["turn_detection"] is None
    assert abs(s["expires_at"] - (t0 + 3600)) <= 2, s  # the 60 min default
    rec = srv.record(s["id"])
    assert rec["state"] == "open" and rec["path"] == PATH and rec["protocol"] == "openai"
    assert rec["session_events_sent"] == 1
    await c.ws.close()
    assert srv.get("/health")["protocol"] == "openai"


async def test_plain_get_wrong_path_and_missing_intent():
    try:
        urllib.request.urlopen("http://127.0.0.1:%d%s" % (srv.port, PATH), timeout=10)
        raise AssertionError("plain GET succeeded")
    except urllib.error.HTTPError as e:
        assert e.code == 426 and "message" in json.loads(e.read())["error"]
    try:
        await OaiClient.connect(srv, path="/v1/listen")
        raise AssertionError("the Deepgram path was accepted")
    except websockets.InvalidStatusCode as e:
        assert e.status_code == 404
    # ?model= (a conversation session) or nothing: refused over the socket
    c = await OaiClient.connect(srv, query="model=gpt-realtime")
    m = await c.recv()
    assert m["type"] == "error" and "intent=transcription" in m["error"]["message"], m
    assert (await c.drain())[0] == 1008


async def test_wrong_key_is_an_error_event_then_3000():
    with Server("--protocol", "openai", "--api-key", "sk-good") as s:
        for hdr in ({}, {"Authorization": "Bearer sk-bad"}, {"Authorization": "sk-good"}):
            c = await OaiClient.connect(s, headers=hdr)
            m = await c.recv()
            assert m["type"] == "error" and m["error"]["code"] == "invalid_api_key", m
            assert (await c.drain())[0] == 3000
            assert [x["type"] for x in c.messages] == ["error"]
        c = await OaiClient.open(s, headers={"Authorization": "Bearer sk-good"})
        rec = s.record(c.session["id"])
        assert "sk-good" not in json.dumps(rec), rec
        await c.ws.close()


async def test_session_update_is_applied_and_recorded():
    c = await OaiClient.open(srv, update=False)
    await c.send(session_update(language="de", prompt="Namen: Anke"))
    u = await c.until(lambda m: m["type"] == "session.updated")
    tr = u["session"]["audio"]["input"]["transcription"]
    assert tr["language"] == "de" and tr["prompt"] == "Namen: Anke", tr
    # mid-stream: only what is present changes
    await c.send(session_update(language="fr"))
    u = await c.until(lambda m: m["type"] == "session.updated")
    tr = u["session"]["audio"]["input"]["transcription"]
    assert tr["language"] == "fr" and tr["prompt"] == "Namen: Anke", tr
    rec = srv.record(c.session["id"])
    assert len(rec["config_updates"]) == 2 and rec["params"]["language"] == "fr"
    assert rec["control"]["session.update"] == 2
    # server VAD and other rates are refused with an error event; the session stays open
    bad = session_update()
    bad["session"]["audio"]["input"]["turn_detection"] = {"type": "server_vad"}
    await c.send(bad)
    e = await c.until(lambda m: m["type"] in ("error", "session.updated"))
    assert e["type"] == "error" and e["error"]["code"] == "unsupported_value", e
    bad = session_update()
    bad["session"]["audio"]["input"]["format"]["rate"] = 24000
    bad["session"]["audio"]["input"]["format"]["type"] = "audio/pcmu"
    await c.send(bad)
    e = await c.until(lambda m: m["type"] in ("error", "session.updated"))
    assert e["type"] == "error" and e["error"]["param"] == "session.audio.input.format", e
    bad = session_update()
    bad["session"]["type"] = "realtime"
    await c.ws.send(json.dumps(bad))
    e = await c.until(lambda m: m["type"] in ("error", "session.updated"))
    assert e["type"] == "error" and e["error"]["param"] == "session.type", e
    await c.audio(pcm(RATE // 2, seed=3))
    await c.commit()
    await c.until(lambda m: m["type"] == COMPLETED)
    await c.ws.close()


# --- audio, commits and items -----------------------------------------------


async def test_items_cover_exactly_the_committed_audio():
    c = await OaiClient.open(srv)
    data = pcm(RATE * 4, seed=5)
    cuts = [0, RATE // 2, RATE * 2 + 123, RATE * 4]  # 0.5 s, 1.5 s, ~2 s items
    for a, b in zip(cuts, cuts[1:]):
        for off in range(a, b, RATE // 10):
            await c.audio(data[2 * off:2 * min(b, off + RATE // 10)])
        await c.commit()
    for _ in range(3):
        await c.until(lambda m: m["type"] == COMPLETED)
    committed = c.of("input_audio_buffer.committed")
    ids = [m["item_id"] for m in committed]
    assert len(set(ids)) == 3, ids
    assert [m["previous_item_id"] for m in committed] == [None] + ids[:-1]
    done = c.of(COMPLETED)
    assert [m["item_id"] for m in done] == ids
    pos = 0
    for i, (m, b) in enumerate(zip(done, cuts[1:])):
        ss = spans(m["transcript"])
        assert ss[0][0] == pos and ss[-1][1] == b, (i, ss, pos, b)
        for a_, b_, chk in ss:
            assert chk == fnv_hex(data[2 * a_:2 * b_]), "checksum of %d-%d differs" % (a_, b_)
        assert all(x[1] == y[0] for x, y in zip(ss, ss[1:]))
        assert abs(m["usage"]["seconds"] - (b - pos) / RATE) < 0.002, m["usage"]
        pos = b
    # each item's deltas come before its completion and add up to its transcript
    for m in done:
        d = [x["delta"] for x in c.of(DELTA) if x["item_id"] == m["item_id"]]
        assert " ".join(d) == m["transcript"], (d, m["transcript"])
        assert c.messages.index(m) > max(
            c.messages.index(x) for x in c.of(DELTA) if x["item_id"] == m["item_id"])
    rec = srv.record(c.session["id"])
    assert rec["audio_bytes"] == len(data) and rec["control"]["input_audio_buffer.commit"] == 3
    await c.ws.close()


async def test_commit_of_less_than_100_ms_is_an_error_and_keeps_the_audio():
    c = await OaiClient.open(srv)
    await c.commit()
    e = await c.until(lambda m: m["type"] == "error")
    assert e["error"]["code"] == "input_audio_buffer_commit_empty", e
    data = pcm(RATE // 20, seed=6)  # 50 ms: still too small
    await c.audio(data)
    await c.commit()
    e = await c.until(lambda m: m["type"] == "error")
    assert e["error"]["code"] == "input_audio_buffer_commit_empty"
    assert "50.00ms" in e["error"]["message"], e
    more = pcm(RATE // 10, seed=7)
    await c.audio(more)
    await c.commit()
    m = await c.until(lambda m: m["type"] == COMPLETED)
    ss = spans(m["transcript"])
    assert ss[0][0] == 0 and ss[-1][1] == len(data + more) // 2, ss
    assert not c.of("input_audio_buffer.committed")[0]["previous_item_id"]
    await c.ws.close()


async def test_bad_events_are_error_events_and_the_session_stays_open():
    c = await OaiClient.open(srv)
    await c.ws.send("{not json")
    await c.ws.send(json.dumps({"no": "type"}))
    await c.ws.send(json.dumps({"type": "response.create"}))
    await c.ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": "***"}))
    await c.ws.send(json.dumps({"type": "input_audio_buffer.append"}))
    await c.send({"type": "input_audio_buffer.clear", "event_id": "evt_9"})
    errs = [await c.until(lambda m: m["type"] == "error") for _ in range(6)]
    codes = [e["error"]["code"] for e in errs]
    assert codes == ["invalid_json", "missing_required_parameter", "invalid_value",
                     "invalid_value", "missing_required_parameter", "unsupported_event"], codes
    assert errs[-1]["error"]["event_id"] == "evt_9"
    await c.audio(pcm(RATE // 5, seed=8))
    await c.commit()
    await c.until(lambda m: m["type"] == COMPLETED)
    # a binary frame is not audio here
    await c.ws.send(b"\0\0\0\0")
    assert (await c.drain())[0] == 1003


async def test_session_limit_is_session_expired_then_close():
    with Server("--protocol", "openai", "--session-limit-s", "2") as s:
        c = await OaiClient.open(s)
        assert c.session["expires_at"] - time.time() <= 2.01
        await c.audio(pcm(RATE // 10, seed=9))
        m = await c.until(lambda m: m["type"] == "error", timeout=10)
        assert m["error"]["code"] == "session_expired", m
        assert m["error"]["message"] == "Your session hit the maximum duration of 2 seconds."
        code, _ = await c.drain()
        assert code == 1000
        rec = await s.record_closed(c.session["id"])
        assert rec["close_cause"] == "session_limit" and rec["closed_by"] == "server"


async def test_max_rate_is_enforced_when_set():
    with Server("--protocol", "openai", "--max-rate", "1.0", "--burst-ms", "1000") as s:
        c = await OaiClient.open(s)
        frame = pcm(RATE // 4, seed=10)
        t0 = time.monotonic()
        for i in range(8):  # exactly real time: accepted
            await asyncio.sleep(max(0, t0 + i * 0.25 - time.monotonic()))
            await c.audio(frame)
        await c.commit()
        await c.until(lambda m: m["type"] == COMPLETED)
        try:
            for _ in range(100):
                await c.audio(pcm(RATE // 10, seed=11))
        except websockets.ConnectionClosed:
            pass
        code, reason = await c.drain()
        assert code == 1008 and reason.startswith("RATE-0000"), (code, reason)
        assert c.of("error")[-1]["error"]["code"] == "rate_limit_exceeded"


async def test_connection_faults():
    c = await OaiClient.open(srv)
    cid = srv.record(c.session["id"])["id"]
    for kind in ("text", "type", "unknown"):
        srv.post_fault({"action": "malformed", "kind": kind, "connection": cid})
        raw = await asyncio.wait_for(c.ws.recv(), 10)
        try:
            validator().check(raw)
            raise AssertionError("malformed %s frame passed the schema: %r" % (kind, raw))
        except AssertionError as e:
            assert "passed the schema" not in str(e), e
    srv.post_fault({"action": "oversized", "bytes": 100000, "connection": cid})
    raw = await asyncio.wait_for(c.ws.recv(), 10)
    assert len(raw) == 100000 and validator().check(raw)["type"] == DELTA
    srv.post_fault({"action": "drop", "connection": cid})
    code, _ = await c.drain()
    assert code == 1006


DATA = "/usr/share/pocketsphinx/test/data/librivox"
SPEECH = "sense_and_sensibility_01_austen_64kb-0880"


def wav_pcm_24k(path):
    """The 16 kHz test WAV's samples at 24 kHz (linear interpolation)."""
    with wave.open(path) as w:
        assert w.getframerate() == 16000 and w.getnchannels() == 1 and w.getsampwidth() == 2
        src = array.array("h", w.readframes(w.getnframes()))
    out = array.array("h")
    for k in range(len(src) * 3 // 2):
        pos = k * 2 / 3
        i = int(pos)
        f = pos - i
        b = src[i + 1] if i + 1 < len(src) else src[i]
        out.append(int(round(src[i] * (1 - f) + b * f)))
    return out.tobytes()


async def test_pocketsphinx_transcribes_speech_at_real_time():
    path = os.path.join(DATA, SPEECH + ".wav")
    if not os.path.exists(path):
        print("  (skipped: pocketsphinx-testdata not installed)")
        return
    ref = wer.read_transcriptions(os.path.join(DATA, "transcription"))[SPEECH]
    try:
        s = Server("--protocol", "openai", "--engine", "pocketsphinx", "--workers", "1")
    except SystemExit:
        print("  (skipped: steno-server built without pocketsphinx)")
        return
    with s:
        data = wav_pcm_24k(path)
        c = await OaiClient.open(s)
        step = RATE // 5 * 2  # 200 ms, paced at 1.0x
        t0 = time.monotonic()
        for i, off in enumerate(range(0, len(data), step)):
            await asyncio.sleep(max(0, t0 + i * 0.2 - time.monotonic()))
            await c.audio(data[off:off + step])
        await c.commit()
        m = await c.until(lambda m: m["type"] == COMPLETED, timeout=60)
        await c.ws.close()
    got = wer.wer(ref, m["transcript"])
    print("  WER %.1f%%: %s" % (got, m["transcript"]))
    assert got <= 40.0, (got, m["transcript"])


if __name__ == "__main__":
    with Server("--protocol", "openai") as srv:
        run_tests(collect(globals()))
