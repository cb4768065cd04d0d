#!/usr/bin/python3
"""test_elevenlabs: `steno-server --protocol elevenlabs` speaks ElevenLabs'
realtime speech-to-text (Scribe v2 Realtime) as specs/elevenlabs/ describes
it: session_started first, base64 input_audio_chunk messages, commits
answered by committed_transcript (and its timestamped copy) whose null-engine
spans name exactly the audio before the commit, VAD commits, the in-band
errors before each close (auth_error, invalid_request, input_error,
chunk_size_exceeded, rate_limited, session_time_limit_exceeded,
insufficient_audio_activity), the control API's faults, and real speech
through pocketsphinx. Every server message is validated against the schema
of its message_type in scribe.asyncapi.yaml, and every client message
against InputAudioChunkPayload."""

import asyncio
import base64
import json
import os
import random
import sys
import time

import jsonschema
import websockets
import yaml

from server_harness import (LIBRIVOX, Closed, Server, collect, fail, fnv_hex, pcm, run_tests,
                            spec_path, wav_pcm)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wer  # noqa: E402

RATE = 16000
MS = RATE // 1000
PATH = "/v1/speech-to-text/realtime"
QUERY = "model_id=scribe_v2_realtime&audio_format=pcm_16000"
srv = None  # --protocol elevenlabs --max-rate 0: most tests send faster than real time


class Validator:
    """Validates messages against scribe.asyncapi.yaml. The file is AsyncAPI 2
    with the directions inverted (its summaries say so): `publish` lists the
    server's messages, `subscribe` the client's. Each payload's message_type
    is a const naming the message; the error payloads use YAML merge keys."""

    def __init__(self):
        path = spec_path("elevenlabs", "scribe.asyncapi.yaml")
        if not os.path.exists(path):
            fail("ElevenLabs' AsyncAPI spec is missing: expected it at %s" % path)
        with open(path) as f:
            spec = yaml.safe_load(f)
        components = spec["components"]

        def payload_ref(mref):
            name = mref["$ref"].rsplit("/", 1)[1]
            return components["messages"][name]["payload"]["$ref"]

        def table(refs):
            out = {}
            for mref in refs:
                ref = payload_ref(mref)
                schema = components["schemas"][ref.rsplit("/", 1)[1]]
                mtype = schema["properties"]["message_type"].get("const")
                if mtype:  # the generic ScribeErrorPayload has an enum instead
                    out[mtype] = jsonschema.Draft7Validator({"$ref": ref,
                                                             "components": components})
            return out

        chan = spec["channels"]["ScribeMessages"]
        self.server = table(chan["publish"]["message"]["oneOf"])
        self.client = table(chan["subscribe"]["message"]["oneOf"])
        for want in ("session_started", "partial_transcript", "committed_transcript",
                     "committed_transcript_with_timestamps", "auth_error", "input_error"):
            if want not in self.server:
                fail("no server message %s in %s" % (want, path))
        if "input_audio_chunk" not in self.client:
            fail("no client message input_audio_chunk in %s" % path)

    @staticmethod
    def _check(table, obj, raw):
        mtype = obj.get("message_type") if isinstance(obj, dict) else None
        if mtype not in table:
            raise AssertionError("unknown message_type: %r" % (raw[:200],))
        errors = sorted(table[mtype].iter_errors(obj), key=str)
        if errors:
            raise AssertionError("%s violates the spec schema: %s\n%s" %
                                 (mtype, errors[0].message, raw[:500]))
        return obj

    def check(self, raw):
        try:
            obj = json.loads(raw)
        except (TypeError, ValueError) as e:
            raise AssertionError("server sent a frame that is not JSON: %r (%s)" % (raw[:200], e))
        return self._check(self.server, obj, raw)

    def check_client(self, obj):
        return self._check(self.client, obj, json.dumps(obj))


V = Validator()


class ElClient:
    """An ElevenLabs realtime client: every received message is validated
    and kept in `messages`."""

    def __init__(self, ws):
        self.ws = ws
        self.messages = []
        self.close_code = self.close_reason = None
        self.session = None

    @classmethod
    async def connect(cls, server, query=QUERY, headers=None):
        ws = await websockets.connect("ws://127.0.0.1:%d%s?%s" % (server.port, PATH, query),
                                      extra_headers=headers or {}, ping_interval=None,
                                      max_size=None, open_timeout=30)
        return cls(ws)

    @classmethod
    async def open(cls, server, query=QUERY, headers=None):
        c = await cls.connect(server, query, headers)
        m = await c.recv()
        assert m["message_type"] == "session_started", "first message is %r" % (m,)
        c.session = m
        return c

    @property
    def session_id(self):
        return self.session["session_id"]

    async def chunk(self, data=b"", commit=False, rate=RATE, **extra):
        obj = dict(message_type="input_audio_chunk",
                   audio_base_64=base64.b64encode(bytes(data)).decode(), commit=commit,
                   sample_rate=rate, **extra)
        V.check_client(obj)
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
        obj = V.check(raw)
        self.messages.append(obj)
        return obj

    async def until(self, mtype, timeout=20):
        deadline = time.monotonic() + timeout
        while True:
            m = await self.recv(max(0.01, deadline - time.monotonic()))
            if m["message_type"] == mtype:
                return m

    async def drain(self, timeout=20):
        deadline = time.monotonic() + timeout
        while True:
            try:
                await self.recv(max(0.01, deadline - time.monotonic()))
            except Closed:
                return self.close_code, self.close_reason

    def of(self, mtype):
        return [m for m in self.messages if m["message_type"] == mtype]


def spans(text):
    """[(a, b, fnv-hex)] named by a null-engine transcript ('span A-B fnv1a64=H' ...)."""
    toks = text.split()
    assert len(toks) % 3 == 0, text
    out = []
    for i in range(0, len(toks), 3):
        assert toks[i] == "span" and toks[i + 2].startswith("fnv1a64="), text
        a, b = (int(x) for x in toks[i + 1].split("-"))
        out.append((a, b, toks[i + 2][len("fnv1a64="):]))
    return out


def chunks_of(data, rng, lo_ms=100, hi_ms=1000):
    out, off = [], 0
    while off < len(data):
        n = 2 * MS * rng.randint(lo_ms, hi_ms)
        out.append(data[off:off + n])
        off += n
    return out


async def refused(server, query=QUERY, headers=None):
    """Connects, expects one error message then the close: (type, error, code, reason)."""
    c = await ElClient.connect(server, query, headers)
    m = await c.recv()
    code, reason = await c.drain()
    assert len(c.messages) == 1, c.messages
    # the close reason is "type: error", cut to what a close frame holds
    full = "%s: %s" % (m["message_type"], m["error"])
    assert reason == full[:123], (reason, m)
    return m["message_type"], m["error"], code, reason


# --- handshake and session_started -------------------------------------------------


async def test_session_started_comes_first_and_echoes_the_config():
    c = await ElClient.open(srv, QUERY + "&language_code=en&include_timestamps=true"
                            "&keyterms=steno&keyterms=scribe&commit_strategy=manual")
    cfg = c.session["config"]
    assert len(c.session_id) == 36 and c.session_id.count("-") == 4
    assert cfg["model_id"] == "scribe_v2_realtime" and cfg["audio_format"] == "pcm_16000"
    assert cfg["sample_rate"] == RATE and cfg["language_code"] == "en"
    assert cfg["vad_commit_strategy"] == "manual" and cfg["timestamps_granularity"] == "word"
    assert cfg["keyterms"] == ["steno", "scribe"]
    rec = srv.record(c.session_id)
    assert rec["state"] == "open" and rec["path"] == PATH and rec["protocol"] == "elevenlabs"
    assert rec["params"]["include_timestamps"] is True and rec["session_started_sent"] == 1
    await c.ws.close()
    rec = await srv.record_closed(c.session_id)
    assert rec["close_code"] == 1000 and rec["closed_by"] == "client"
    assert srv.get("/health")["protocol"] == "elevenlabs"


async def test_bad_parameters_are_invalid_request_before_session_started():
    cases = {
        "audio_format=pcm_16000": "Missing required query parameter model_id",
        QUERY.replace("scribe_v2_realtime", "scribe_v9"): "Invalid model_id 'scribe_v9'",
        "model_id=scribe_v2_realtime&audio_format=pcm_11025": "Invalid audio_format 'pcm_11025'",
        QUERY + "&commit_strategy=auto": "Invalid commit_strategy 'auto'",
        QUERY + "&vad_threshold=0.95": "Invalid vad_threshold '0.95'",
        QUERY + "&min_silence_duration_ms=20": "Invalid min_silence_duration_ms '20'",
        QUERY + "&include_timestamps=yes": "Invalid include_timestamps 'yes'",
        QUERY + "&model_id=scribe_v2_realtime": "Invalid model_id: given more than once",
        QUERY + "&keyterms=" + "x" * 21: "longer than 20 characters",
        QUERY + "&include_timestamps=true&filter_background_audio=true":
            "filter_background_audio cannot be combined with include_timestamps",
    }
    for query, want in cases.items():
        mtype, err, code, _ = await refused(srv, query)
        assert mtype == "invalid_request" and code == 1008, (query, mtype, code)
        assert want in err, (query, err)


async def test_credentials_xi_api_key_header_or_token():
    with Server("--protocol", "elevenlabs", "--api-key", "sekrit", "--max-rate", "0") as s:
        for headers, query in (({}, QUERY), ({"xi-api-key": "wrong"}, QUERY),
                               ({}, QUERY + "&token=wrong"),
                               ({"Authorization": "Bearer sekrit"}, QUERY)):
            mtype, err, code, _ = await refused(s, query, headers)
            assert mtype == "auth_error" and code == 1008, (headers, query, mtype, code)
        ok = await ElClient.open(s, QUERY, {"xi-api-key": "sekrit"})
        await ok.ws.close()
        ok = await ElClient.open(s, QUERY + "&token=sekrit")
        rec = s.record(ok.session_id)
        assert "sekrit" not in json.dumps(rec), rec  # the token is redacted in the record
        assert "token=<redacted>" in rec["query"] and rec["params"]["token"] is True
        await ok.ws.close()


# --- transcripts from the null engine -------------------------------------------------


async def test_commits_cover_exactly_the_audio_before_them():
    rng = random.Random(7)
    data = pcm(4 * RATE + 3210, seed=41)
    c = await ElClient.open(srv, QUERY + "&include_timestamps=true")
    pos, committed = 0, []
    for part_end in (RATE + 1234, 3 * RATE, len(data) // 2):
        for f in chunks_of(data[2 * pos:2 * part_end], rng):
            await c.chunk(f)
        await c.chunk(commit=True)
        m = await c.until("committed_transcript")
        ts = await c.until("committed_transcript_with_timestamps")
        got = spans(m["text"])
        assert got[0][0] == pos and got[-1][1] == part_end, (pos, part_end, got)
        for a, b, chk in got:
            assert chk == fnv_hex(data[2 * a:2 * b]), "checksum of %d-%d differs" % (a, b)
        assert ts["text"] == m["text"] and ts["language_code"] == "en"
        words = [w for w in ts["words"] if w["type"] == "word"]
        assert " ".join(w["text"] for w in words) == m["text"]
        assert abs(words[0]["start"] - pos / RATE) < 1e-6
        assert abs(words[-1]["end"] - part_end / RATE) < 1e-6
        assert all(w["logprob"] <= 0 for w in ts["words"])
        assert all(s["type"] == "spacing" for s in ts["words"][1::2])
        committed.append(m)
        pos = part_end
    # An empty commit is answered too, so that a client can count answers.
    await c.chunk(commit=True)
    m = await c.until("committed_transcript")
    assert m["text"] == ""
    assert c.of("partial_transcript") and c.of("final_transcript")
    rec = srv.record(c.session_id)
    assert rec["control"]["Finalize"] == 4 and rec["finals_sent"] == 4
    assert rec["audio_bytes"] == len(data)
    await c.ws.close()


async def test_vad_commits_without_a_commit_message():
    data = pcm(2 * RATE + 800, seed=42)
    c = await ElClient.open(srv, QUERY + "&commit_strategy=vad")
    assert c.session["config"]["vad_commit_strategy"] == "vad"
    for f in chunks_of(data, random.Random(3), 250, 250):
        await c.chunk(f)
    m1 = await c.until("committed_transcript")
    m2 = await c.until("committed_transcript")
    assert [s[:2] for s in spans(m1["text"]) + spans(m2["text"])] == [(0, RATE), (RATE, 2 * RATE)]
    assert not c.of("committed_transcript_with_timestamps")  # include_timestamps is off
    assert not c.of("final_transcript")
    await c.ws.close()


async def test_ulaw_and_8_khz_audio():
    c = await ElClient.open(srv, "model_id=scribe_v2_realtime&audio_format=ulaw_8000")
    await c.chunk(bytes(range(256)) * 16, rate=8000)  # 512 ms of mu-law
    await c.chunk(commit=True, rate=8000)
    m = await c.until("committed_transcript")
    assert spans(m["text"])[0][:2] == (0, 4096)
    await c.ws.close()


# --- what the client sends wrong --------------------------------------------------------


async def test_bad_client_messages_are_input_error():
    cases = (
        ("{not json", "Invalid JSON"),
        ('{"message_type":"commit"}', "Unknown message_type: commit"),
        ('{"audio_base_64":""}', "Missing message_type"),
        ('{"message_type":"input_audio_chunk","audio_base_64":"","sample_rate":16000}',
         "needs audio_base_64 (string), commit (boolean) and sample_rate (integer)"),
        ('{"message_type":"input_audio_chunk","audio_base_64":"AAA","commit":false,'
         '"sample_rate":16000}', "audio_base_64 is not valid base64"),
        ('{"message_type":"input_audio_chunk","audio_base_64":"AAAA","commit":false,'
         '"sample_rate":8000}', "sample_rate 8000 does not match audio_format pcm_16000"),
    )
    for text, want in cases:
        c = await ElClient.open(srv)
        await c.ws.send(text)
        m = await c.recv()
        code, reason = await c.drain()
        assert m["message_type"] == "input_error" and want in m["error"], (text, m)
        assert code == 1008 and reason.startswith("input_error: "), (code, reason)
    # Raw binary audio is refused.
    c = await ElClient.open(srv)
    await c.ws.send(bytes(3200))
    m = await c.recv()
    assert m["message_type"] == "input_error" and "binary" in m["error"]
    assert (await c.drain())[0] == 1008
    # previous_text only with the first chunk.
    c = await ElClient.open(srv)
    await c.chunk(pcm(1600), previous_text="earlier words")
    await c.chunk(pcm(1600), previous_text="again")
    m = await c.until("input_error")
    assert "previous_text" in m["error"] and (await c.drain())[0] == 1008


async def test_chunks_over_one_second_are_chunk_size_exceeded():
    c = await ElClient.open(srv)
    await c.chunk(pcm(RATE))  # exactly 1 s: accepted
    await c.chunk(pcm(RATE + 1))
    m = await c.until("chunk_size_exceeded")
    assert "1000 ms of audio in one chunk" in m["error"]
    assert (await c.drain())[0] == 1008


# --- limits ---------------------------------------------------------------------------


async def test_faster_than_real_time_is_rate_limited_and_real_time_passes():
    with Server("--protocol", "elevenlabs") as s:  # the protocol's default: 1.0x, 1500 ms burst
        c = await ElClient.open(s)
        t0 = time.monotonic()
        for i in range(12):  # 3 s at exactly real time, 250 ms chunks
            await asyncio.sleep(max(0, t0 + i * 0.25 - time.monotonic()))
            await c.chunk(pcm(RATE // 4, seed=i))
        await c.chunk(commit=True)
        m = await c.until("committed_transcript")
        assert spans(m["text"])[-1][1] == 3 * RATE
        await c.ws.close()
        c = await ElClient.open(s)
        for i in range(4):  # 4 s at once
            await c.chunk(pcm(RATE, seed=i))
        m = await c.until("rate_limited")
        assert "faster than real time" in m["error"]
        assert (await c.drain())[0] == 1008


async def test_session_limit_and_idle_end_the_session_in_band():
    with Server("--protocol", "elevenlabs", "--max-rate", "0", "--session-limit-s", "1",
                "--idle-timeout-ms", "600") as s:
        c = await ElClient.open(s)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 1.4:
            try:
                await c.chunk(pcm(1600))
            except websockets.ConnectionClosed:
                break
            await asyncio.sleep(0.1)
        m = await c.until("session_time_limit_exceeded")
        assert (await c.drain()) == (1000, "session_time_limit_exceeded: " + m["error"])
        c = await ElClient.open(s)
        m = await c.until("insufficient_audio_activity", timeout=5)
        assert (await c.drain())[0] == 1000


async def test_capacity_is_rate_limited():
    with Server("--protocol", "elevenlabs", "--max-connections", "1") as s:
        c = await ElClient.open(s)
        mtype, err, code, _ = await refused(s)
        assert mtype == "rate_limited" and "concurrent" in err and code == 1008
        await c.ws.close()


# --- control API faults ---------------------------------------------------------------


async def test_connection_faults():
    c = await ElClient.open(srv)
    cid = srv.record(c.session_id)["id"]
    for kind in ("text", "type", "unknown"):
        srv.post_fault({"action": "malformed", "kind": kind, "connection": cid})
        raw = await asyncio.wait_for(c.ws.recv(), 10)
        try:
            V.check(raw)
            raise AssertionError("malformed %s passed validation: %r" % (kind, raw))
        except AssertionError as e:
            assert "passed validation" not in str(e), e
    srv.post_fault({"action": "oversized", "bytes": 100000, "connection": cid})
    raw = await asyncio.wait_for(c.ws.recv(), 10)
    assert len(raw) == 100000 and V.check(raw)["message_type"] == "partial_transcript"
    srv.post_fault({"action": "drop", "connection": cid})
    assert (await c.drain())[0] == 1006


# --- real speech ------------------------------------------------------------------------

DATA = LIBRIVOX
SPEECH = "sense_and_sensibility_01_austen_64kb-0880"


async def test_pocketsphinx_transcribes_speech_at_real_time():
    path = os.path.join(DATA, SPEECH + ".wav")
    if not os.path.exists(path):
        print("  (skipped: pocketsphinx-testdata not installed)")
        return
    ref = wer.read_transcriptions(os.path.join(DATA, "transcription"))[SPEECH]
    try:
        s = Server("--protocol", "elevenlabs", "--engine", "pocketsphinx", "--workers", "1")
    except SystemExit:
        print("  (skipped: steno-server built without pocketsphinx)")
        return
    with s:
        data = wav_pcm(path)
        c = await ElClient.open(s, QUERY + "&include_timestamps=true")
        t0 = time.monotonic()
        step = 2 * RATE // 5  # 200 ms
        for i in range(0, len(data), step):  # paced at 1.0x
            await asyncio.sleep(max(0, t0 + i / (2 * RATE) - time.monotonic()))
            await c.chunk(data[i:i + step], commit=i + step >= len(data))
        await c.until("committed_transcript_with_timestamps", timeout=60)
        await c.ws.close()
    hyp = " ".join(m["text"] for m in c.of("committed_transcript"))
    words = [w for m in c.of("committed_transcript_with_timestamps") for w in m["words"]
             if w["type"] == "word"]
    assert all(0 <= w["start"] <= w["end"] <= len(data) / 2 / RATE + 0.05 for w in words)
    got = wer.wer(ref, hyp)
    print("  WER %.1f%%: %s" % (got, hyp))
    assert got <= 40.0, (got, hyp)


if __name__ == "__main__":
    with Server("--protocol", "elevenlabs", "--max-rate", "0") as srv:
        run_tests(collect(globals()))
