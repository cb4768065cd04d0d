#!/usr/bin/python3
"""test_gemini: `steno-server --protocol gemini` speaks the Gemini Live API
(BidiGenerateContent, input transcription) as specs/gemini/ describes it:
setup first and answered by setupComplete, base64 realtimeInput audio,
activityStart/activityEnd whose turn's inputTranscription fragments name
exactly the audio before the activityEnd (null engine), automatic activity
detection with audioStreamEnd, session resumption handles, goAway before the
session limit, the credential routes, the close codes (1007, 1011, 1000), and
the control API's faults.

There is no JSON schema for the Live WebSocket: every server message is
checked against BidiGenerateContentServerMessage and every client message
against BidiGenerateContentClientMessage as declared in the vendor's
generative_service.proto and content.proto, parsed by proto_check.py (field
names in the JSON mapping, types, enums, one key per oneof)."""

import asyncio
import base64
import json
import os
import random
import sys
import time
import urllib.error
import urllib.request

import websockets

from server_harness import Client, Server, collect, fnv_hex, pcm, run_tests, spec_path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proto_check  # noqa: E402

RATE = 16000
KEY = "gemini-test-key"
PATH = "/ws/google.ai.generativelanguage.%s.GenerativeService.BidiGenerateContent%s"
srv = None

PROTOS = proto_check.Protos(spec_path("gemini", "generative_service.proto"),
                            spec_path("gemini", "content.proto"))
ONEOF = {"setupComplete", "serverContent", "toolCall", "toolCallCancellation", "goAway",
         "sessionResumptionUpdate"}


def check_server(raw):
    obj = json.loads(raw)
    PROTOS.check("BidiGenerateContentServerMessage", obj)
    assert len(ONEOF & set(obj)) == 1, "no message_type in %r" % (obj,)
    return obj


def check_client(obj):
    PROTOS.check("BidiGenerateContentClientMessage", obj)
    assert len(obj) == 1, obj


class GmClient(Client):
    """A Gemini Live client; every message it receives is proto-checked and kept."""

    def __init__(self, ws):
        super().__init__(ws)
        self.request_id = None  # the service names no connection

    @classmethod
    async def connect(cls, server, query="key=" + KEY, headers=None, version="v1beta",
                      suffix="", prefix=""):
        url = "ws://127.0.0.1:%d%s%s%s" % (server.port, prefix, PATH % (version, suffix),
                                           ("?" + query) if query else "")
        ws = await websockets.connect(url, extra_headers=headers or {}, ping_interval=None,
                                      max_size=None, open_timeout=30)
        return cls(ws)

    @classmethod
    async def open(cls, server, manual=True, resumption=None, **kw):
        """Connects, sends setup, reads setupComplete (which must come first)."""
        c = await cls.connect(server, **kw)
        await c.send({"setup": setup(manual, resumption)})
        m = await c.recv()
        assert m == {"setupComplete": {}}, "first message %r" % (m,)
        return c

    def check(self, raw):
        return check_server(raw)

    async def send(self, obj):
        check_client(obj)
        await self.ws.send(json.dumps(obj))

    async def audio(self, data, **extra):
        blob = {"data": base64.b64encode(data).decode(), "mimeType": "audio/pcm;rate=16000"}
        await self.send({"realtimeInput": dict(audio=blob, **extra)})

    async def turn(self, timeout=20):
        """The text of the next turn: its fragments up to turnComplete."""
        text = ""
        while True:
            m = await self.until(lambda m: "serverContent" in m, timeout)
            sc = m["serverContent"]
            if "inputTranscription" in sc:
                text += sc["inputTranscription"]["text"]
            if sc.get("turnComplete"):
                return text


def setup(manual=True, resumption=None):
    s = {"model": "models/gemini-live-2.5-flash-preview",
         "generationConfig": {"responseModalities": ["TEXT"]},
         "inputAudioTranscription": {}}
    if manual:
        s["realtimeInputConfig"] = {"automaticActivityDetection": {"disabled": True},
                                    "activityHandling": "NO_INTERRUPTION",
                                    "turnCoverage": "TURN_INCLUDES_ALL_INPUT"}
    if resumption is not None:
        s["sessionResumption"] = resumption
    return s


def spans(text):
    """[(a, b, fnv)] named by null-engine fragments joined into a turn's text."""
    toks = text.split()
    assert len(toks) % 3 == 0, text
    out = []
    for i in range(0, len(toks), 3):
        assert toks[i] == "span" and toks[i + 2].startswith("fnv1a64="), text
        a, b = (int(x) for x in toks[i + 1].split("-"))
        out.append((a, b, toks[i + 2][len("fnv1a64="):]))
    return out


def check_tiles(turn_spans, data, start, end):
    """The spans tile samples [start, end) of data once, in order, with the right checksums."""
    pos = start
    for a, b, h in turn_spans:
        assert a == pos, "gap or overlap at sample %d: span starts at %d" % (pos, a)
        assert h == fnv_hex(data[2 * a:2 * b]), "checksum of %d-%d differs" % (a, b)
        pos = b
    assert pos == end, "spans end at %d, expected %d" % (pos, end)


def frames(data, rng, lo_ms=20, hi_ms=200):
    out, off = [], 0
    while off < len(data):
        n = 2 * (RATE // 1000) * rng.randint(lo_ms, hi_ms)
        out.append(data[off:off + n])
        off += n
    return out


# --- setup and routes -------------------------------------------------------------------------


async def test_setup_complete_answers_setup_on_every_route():
    for version, suffix, prefix in (("v1beta", "", ""), ("v1", "", "/"),
                                    ("v1alpha", "Constrained", ""), ("v1beta", "/", "")):
        c = await GmClient.open(srv, version=version, suffix=suffix, prefix=prefix)
        rec = srv.last_record()
        assert rec["protocol"] == "gemini" and rec["params"]["model"] == \
            "gemini-live-2.5-flash-preview" and rec["setups"] == 1, rec
        assert rec["params"]["automatic_activity_detection"] is False
        await c.ws.close()


async def test_wrong_path_and_plain_get_are_http_errors():
    for path in ("/ws/google.ai.generativelanguage.v2.GenerativeService.BidiGenerateContent",
                 "/v1/listen"):
        try:
            await websockets.connect("ws://127.0.0.1:%d%s?key=%s" % (srv.port, path, KEY),
                                     open_timeout=10)
            raise AssertionError("upgrade on %s accepted" % path)
        except websockets.InvalidStatusCode as e:
            assert e.status_code == 404, e
    url = "http://127.0.0.1:%d%s?key=%s" % (srv.port, PATH % ("v1beta", ""), KEY)
    try:
        urllib.request.urlopen(url, timeout=10)
        raise AssertionError("plain GET answered 200")
    except urllib.error.HTTPError as e:
        body = json.loads(e.read())
        assert e.code == 426 and body["error"]["code"] == 426, (e.code, body)


async def test_credentials_by_query_header_or_token():
    for query, headers in (("key=" + KEY, None), (None, {"x-goog-api-key": KEY}),
                           ("access_token=" + KEY, None),
                           (None, {"Authorization": "Token " + KEY})):
        c = await GmClient.open(srv, query=query, headers=headers)
        await c.ws.close()
        rec = srv.last_record()
        assert KEY not in json.dumps(rec), "the key shows in the record: %r" % rec
    for query, headers in (("key=wrong", None), (None, None),
                           (None, {"Authorization": "Bearer " + KEY})):
        c = await GmClient.connect(srv, query=query, headers=headers)
        code, reason = await c.drain()
        assert (code, reason) == (1007, "API key not valid. Please pass a valid API key."), (
            code, reason)
        assert not c.messages, c.messages


# --- turns ------------------------------------------------------------------------------------


async def test_activity_end_turn_covers_exactly_the_audio_before_it():
    rng = random.Random(3)
    data = pcm(RATE * 5, seed=3)
    c = await GmClient.open(srv)
    fr = frames(data, rng)
    cut = len(fr) // 2
    sent = 0
    for k, part in enumerate((fr[:cut], fr[cut:])):
        start = sent
        for i, f in enumerate(part):
            await c.audio(f, **({"activityStart": {}} if i == 0 else {}))
            sent += len(f) // 2
        await c.send({"realtimeInput": {"activityEnd": {}}})
        check_tiles(spans(await c.turn()), data, start, sent)
    rec = srv.last_record()
    assert rec["activity_starts"] == 2 and rec["activity_ends"] == 2, rec
    assert rec["audio_messages"] == len(fr) and rec["audio_samples"] == sent, rec
    await c.ws.close()


async def test_audio_outside_an_activity_joins_the_next_one():
    data = pcm(RATE * 3 // 2, seed=4)  # three halves of a second, by byte offsets RATE apart
    c = await GmClient.open(srv)
    await c.audio(data[:RATE], activityStart={})
    await c.send({"realtimeInput": {"activityEnd": {}}})
    await c.audio(data[RATE:2 * RATE])  # no activity open
    check_tiles(spans(await c.turn()), data, 0, RATE // 2)
    await c.audio(data[2 * RATE:], activityStart={})
    await c.send({"realtimeInput": {"activityEnd": {}}})
    check_tiles(spans(await c.turn()), data, RATE // 2, 3 * RATE // 2)
    await c.ws.close()


async def test_every_activity_end_is_answered_by_one_turn():
    data = pcm(RATE, seed=8)
    c = await GmClient.open(srv)
    await c.send({"realtimeInput": {"activityStart": {}}})
    await c.send({"realtimeInput": {"activityEnd": {}}})
    assert await c.turn() == ""
    # an activityEnd with no activity open, and a repeated activityStart, are tolerated
    await c.send({"realtimeInput": {"activityEnd": {}}})
    assert await c.turn() == ""
    await c.audio(data[:RATE], activityStart={})
    await c.audio(data[RATE:], activityStart={})
    await c.send({"realtimeInput": {"activityEnd": {}}})
    check_tiles(spans(await c.turn()), data, 0, RATE)
    rec = srv.last_record()
    assert rec["activity_ends"] == 3 and rec["activity_starts"] == 3, rec
    await c.ws.close()


async def test_automatic_detection_ends_turns_itself_and_on_audio_stream_end():
    data = pcm(RATE * 5 // 2, seed=5)
    c = await GmClient.open(srv, manual=False)
    await c.audio(data[:2 * 2 * RATE])  # 2 s: the engine ends speech after each second
    check_tiles(spans(await c.turn()), data, 0, RATE)
    check_tiles(spans(await c.turn()), data, RATE, 2 * RATE)
    await c.audio(data[2 * 2 * RATE:])
    await c.send({"realtimeInput": {"audioStreamEnd": True}})
    check_tiles(spans(await c.turn()), data, 2 * RATE, len(data) // 2)
    await c.audio(data[:2 * (RATE // 10)])  # the stream reopens
    await c.send({"realtimeInput": {"audioStreamEnd": True}})
    assert spans(await c.turn())[0][:2] == (len(data) // 2, len(data) // 2 + RATE // 10)
    await c.ws.close()


async def test_audio_stream_end_with_manual_activity_completes_the_turn_and_closes_1000():
    data = pcm(RATE * 3 // 2, seed=6)
    c = await GmClient.open(srv)
    await c.audio(data, activityStart={})
    await c.send({"realtimeInput": {"audioStreamEnd": True}})
    check_tiles(spans(await c.turn()), data, 0, len(data) // 2)
    assert await c.drain() == (1000, "")


# --- resumption and session limit -------------------------------------------------------------


async def test_resumption_handles_are_issued_and_honoured():
    c = await GmClient.open(srv, resumption={})
    m = await c.recv()
    h0 = m["sessionResumptionUpdate"]["newHandle"]
    assert m["sessionResumptionUpdate"]["resumable"] is True and h0
    await c.audio(pcm(RATE, seed=7), activityStart={})
    await c.send({"realtimeInput": {"activityEnd": {}}})
    await c.turn()
    ups = [m["sessionResumptionUpdate"] for m in c.messages if "sessionResumptionUpdate" in m]
    assert len(ups) == 2 and ups[1]["newHandle"] != h0, ups
    await c.ws.close()
    c2 = await GmClient.open(srv, resumption={"handle": ups[1]["newHandle"]})
    rec = srv.last_record()
    assert rec["params"]["resumed_from"] == ups[1]["newHandle"], rec
    await c2.ws.close()
    c3 = await GmClient.connect(srv)
    await c3.send({"setup": setup(resumption={"handle": "never-issued"})})
    assert await c3.drain() == (1007, "Invalid session resumption handle.")
    # without sessionResumption in setup, no updates
    c4 = await GmClient.open(srv)
    await c4.send({"realtimeInput": {"activityStart": {}}})
    await c4.send({"realtimeInput": {"activityEnd": {}}})
    await c4.turn()
    assert not any("sessionResumptionUpdate" in m for m in c4.messages), c4.messages
    await c4.ws.close()


async def test_go_away_comes_before_the_session_limit():
    with Server("--protocol", "gemini", "--session-limit-s", "4") as s:
        t0 = time.monotonic()
        c = await GmClient.open(s)
        m = await c.until(lambda m: "goAway" in m, timeout=10)
        t_go = time.monotonic() - t0
        assert m == {"goAway": {"timeLeft": "2s"}}, m
        assert 1.8 <= t_go <= 3.0, t_go
        assert await c.drain(10) == (1000, "Session duration limit reached.")
        t_close = time.monotonic() - t0
        assert 3.8 <= t_close <= 5.5, t_close
        rec = s.last_record()
        assert rec["go_away_sent"] == 1 and rec["close_cause"] == "session_limit", rec


# --- errors -----------------------------------------------------------------------------------


async def test_invalid_client_messages_close_1007():
    audio = {"realtimeInput": {"audio": {"data": base64.b64encode(b"\0\0").decode(),
                                         "mimeType": "audio/pcm;rate=16000"}}}
    cases = [
        (None, audio, "setup must be the first message"),
        (None, {"setup": {"model": "gemini"}}, "setup.model must be"),
        (None, {"setup": setup(), "realtimeInput": {}}, "exactly one of"),
        (True, {"setup": setup()}, "setup may be sent only once"),
        (False, {"realtimeInput": {"activityStart": {}}}, "need automatic activity detection"),
        (True, {"realtimeInput": {"audio": {"data": "AAAA", "mimeType": "audio/pcm;rate=24000"}}},
         "audio/pcm;rate=16000 only"),
        (True, {"realtimeInput": {"audio": {"data": "!!!", "mimeType": "audio/pcm"}}},
         "not base64"),
        (True, {"realtimeInput": {"audio": {"data": "AA==", "mimeType": "audio/pcm"}}},
         "whole number of 16-bit samples"),
    ]
    for manual, msg, why in cases:
        c = await (GmClient.open(srv, manual=manual) if manual is not None
                   else GmClient.connect(srv))
        await c.ws.send(json.dumps(msg))
        code, reason = await c.drain()
        assert code == 1007 and why in reason, (msg, code, reason)
    c = await GmClient.open(srv)
    await c.ws.send(b"\0\0\0\0")
    code, reason = await c.drain()
    assert code == 1007 and "binary frames" in reason, (code, reason)
    c = await GmClient.connect(srv)
    await c.ws.send("{not json")
    assert await c.drain() == (1007, "Invalid JSON payload received.")


async def test_faster_than_max_rate_closes_1011_and_real_time_passes():
    with Server("--protocol", "gemini", "--max-rate", "1.0", "--burst-ms", "500") as s:
        c = await GmClient.open(s)
        t0 = time.monotonic()
        for i in range(10):  # 2 s at 1.0x in 200 ms frames
            await asyncio.sleep(max(0, t0 + i * 0.2 - time.monotonic()))
            await c.audio(pcm(RATE // 5, seed=i), **({"activityStart": {}} if i == 0 else {}))
        await c.send({"realtimeInput": {"activityEnd": {}}})
        assert spans(await c.turn())[-1][1] == 2 * RATE
        await c.ws.close()
        c = await GmClient.open(s)
        try:
            await c.audio(pcm(RATE * 2, seed=9), activityStart={})
        except websockets.ConnectionClosed:
            pass
        code, reason = await c.drain()
        assert code == 1011 and reason.startswith("Resource has been exhausted"), (code, reason)


async def test_capacity_closes_1011_quota():
    with Server("--protocol", "gemini", "--max-connections", "1") as s:
        c = await GmClient.open(s)
        c2 = await GmClient.connect(s)
        code, reason = await c2.drain()
        assert code == 1011 and "exceeded your current quota" in reason, (code, reason)
        await c.ws.close()


async def test_connection_faults():
    c = await GmClient.open(srv)
    cid = srv.last_record()["id"]
    for kind in ("text", "type", "unknown"):
        srv.post_fault({"action": "malformed", "kind": kind, "connection": cid})
        raw = await asyncio.wait_for(c.ws.recv(), 10)
        try:
            check_server(raw)
            raise AssertionError("malformed %s frame passed the proto check: %r" % (kind, raw))
        except (AssertionError, ValueError) as e:
            assert "passed the proto check" not in str(e), e
    srv.post_fault({"action": "oversized", "bytes": 100000, "connection": cid})
    raw = await asyncio.wait_for(c.ws.recv(), 10)
    assert len(raw) == 100000 and "inputTranscription" in check_server(raw)["serverContent"]
    srv.post_fault({"action": "close", "code": 1011, "reason": "Internal error encountered.",
                    "connection": cid})
    assert await c.drain() == (1011, "Internal error encountered.")
    c = await GmClient.open(srv)
    srv.post_fault({"action": "drop", "connection": srv.last_record()["id"]})
    code, _ = await c.drain()
    assert code == 1006


# --- real speech ------------------------------------------------------------------------------

DATA = "/usr/share/pocketsphinx/test/data/librivox"
SPEECH = "sense_and_sensibility_01_austen_64kb-0880"


async def test_pocketsphinx_transcribes_speech_in_activities():
    path = os.path.join(DATA, SPEECH + ".wav")
    if not os.path.exists(path):
        print("  (skipped: pocketsphinx-testdata not installed)")
        return
    import wer
    ref = wer.read_transcriptions(os.path.join(DATA, "transcription"))[SPEECH]
    try:
        s = Server("--protocol", "gemini", "--engine", "pocketsphinx", "--workers", "1")
    except SystemExit:
        print("  (skipped: steno-server built without pocketsphinx)")
        return
    with s:
        with open(path, "rb") as f:
            b = f.read()
        i = b.index(b"data")
        data = b[i + 8:i + 8 + int.from_bytes(b[i + 4:i + 8], "little")]
        c = await GmClient.open(s)
        text = []
        step = 2 * RATE * 3  # one activity per 3 s of audio
        for off in range(0, len(data), step):
            chunk = data[off:off + step]
            for k in range(0, len(chunk), 6400):
                await c.audio(chunk[k:k + 6400], **({"activityStart": {}} if k == 0 else {}))
            await c.send({"realtimeInput": {"activityEnd": {}}})
            text.append(await c.turn(timeout=60))
        await c.ws.close()
    got = wer.wer(ref, " ".join(text))
    print("  WER %.1f%%: %s" % (got, " ".join(text)))
    assert got <= 60.0, (got, text)


if __name__ == "__main__":
    with Server("--protocol", "gemini", "--api-key", KEY) as srv:
        run_tests(collect(globals()))
