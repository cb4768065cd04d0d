#!/usr/bin/python3
"""test_assemblyai: `steno-server --protocol assemblyai` speaks AssemblyAI's
Universal Streaming v3 as specs/assemblyai/ describes it: Begin first, Turns
whose null-engine words name exactly the audio they cover (in ms from the
connection's first sample), ForceEndpoint, UpdateConfiguration, Terminate ->
Termination -> close, the close codes of the README's table (1008, 3006,
3007, 3008), the control API's faults, and real speech through pocketsphinx.
Every server message is validated against usm-streaming.yml's schemas (the
Error frame against the harness's AAI_ERROR_SCHEMA) and every client JSON
message against the spec's client schemas."""

import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request

import websockets

from server_harness import (AAI_QUERY, LIBRIVOX, AaiClient, Server, aai_validator, collect,
                            fnv_hex, pcm, run_tests, turn_span, wav_pcm)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wer  # noqa: E402

RATE = 16000
MS = RATE // 1000  # samples per millisecond
srv = None  # --protocol assemblyai --max-rate 0: most tests send faster than real time


def frames_of(data, rng, lo_ms=50, hi_ms=1000):
    """Splits 16-bit PCM into frames of lo..hi ms (whole ms); the last one
    takes what is left and must itself be in range."""
    out, off = [], 0
    while off < len(data):
        n = 2 * MS * rng.randint(lo_ms, hi_ms)
        if len(data) - off - n < 2 * MS * lo_ms:
            n = len(data) - off
        out.append(data[off:off + n])
        off += n
    return out


def check_turns(c, data):
    """The end-of-turn Turns tile the audio exactly once, in order, with the
    right checksums and ms times; partial Turns carry no final word."""
    pos, order = 0, 0
    for t in c.turns():
        assert t["turn_order"] == order, "turn_order %d, expected %d" % (t["turn_order"], order)
        if not t["end_of_turn"]:
            assert t["transcript"] == "" and t["utterance"] == ""
            assert not any(w["word_is_final"] for w in t["words"]), t
            continue
        a, b, chk = turn_span(t)
        assert a == pos, "gap or overlap at sample %d: turn starts at %d" % (pos, a)
        assert chk == fnv_hex(data[2 * a:2 * b]), "checksum of %d-%d differs" % (a, b)
        words = t["words"]
        assert [w["text"] for w in words] == t["transcript"].split(" ")
        assert all(w["word_is_final"] for w in words)
        assert words[0]["start"] == a // MS and words[-1]["end"] == b // MS, (a, b, words)
        assert all(w1["end"] == w2["start"] for w1, w2 in zip(words, words[1:]))
        assert t["end_of_turn_confidence"] == 1 and t["utterance"] == t["transcript"]
        assert t["turn_is_formatted"] is False
        pos, order = b, order + 1
    assert pos * 2 == len(data), "turns end at sample %d of %d" % (pos, len(data) // 2)
    return order


async def refused(server, query=AAI_QUERY, headers=None):
    """Connects, expects Error then a close without Begin: (code, reason, error)."""
    c = await AaiClient.connect(server, query, headers)
    m = await c.recv()
    assert m["type"] == "Error", "expected Error, got %r" % (m,)
    code, reason = await c.drain()
    assert code == m["error_code"], (code, m)
    assert [x["type"] for x in c.messages] == ["Error"]
    return code, reason, m["error"]


# --- handshake and Begin ----------------------------------------------------


async def test_begin_comes_first_and_names_the_session():
    t0 = time.time()
    c = await AaiClient.open(srv)
    b = c.begin
    assert len(b["id"]) == 36 and b["id"].count("-") == 4, b
    assert abs(b["expires_at"] - (t0 + 3 * 3600)) <= 2, b  # the 3 h default
    rec = srv.record(b["id"])
    assert rec["state"] == "open" and rec["path"] == "/v3/ws" and rec["protocol"] == "assemblyai"
    assert rec["params"]["speech_model"] == "universal-streaming-english"
    assert rec["params"]["sample_rate"] == RATE and rec["params"]["encoding"] == "pcm_s16le"
    assert rec["params"]["inactivity_timeout"] is None
    assert rec["begin_sent"] == 1
    await c.control("Terminate")
    assert await c.drain() == (1000, "")
    assert [m["type"] for m in c.messages] == ["Begin", "Termination"]
    t = c.messages[-1]
    assert t["audio_duration_seconds"] == 0 and t["session_duration_seconds"] >= 0
    rec = await srv.record_closed(b["id"])
    assert rec["close_cause"] == "Terminate" and rec["termination_sent"] == 1
    assert srv.get("/health")["protocol"] == "assemblyai"


async def test_plain_get_and_wrong_path_are_http_errors():
    req = urllib.request.Request("http://127.0.0.1:%d/v3/ws" % srv.port)
    try:
        urllib.request.urlopen(req, timeout=10)
        raise AssertionError("plain GET succeeded")
    except urllib.error.HTTPError as e:
        assert e.code == 426 and "error" in json.loads(e.read())
    try:
        await websockets.connect("ws://127.0.0.1:%d/v1/listen?%s" % (srv.port, AAI_QUERY))
        raise AssertionError("the Deepgram path was accepted")
    except websockets.InvalidStatusCode as e:
        assert e.status_code == 404


# --- Turns from the null engine -----------------------------------------------


async def test_null_turns_cover_exactly_the_audio_sent():
    rng = random.Random(5)
    data = pcm(3 * RATE + 5432 // MS * MS, seed=21)
    c = await AaiClient.open(srv)
    frames = frames_of(data, rng)
    for f in frames:
        await c.audio(f)
    await c.control("Terminate")
    assert await c.drain() == (1000, "")
    assert c.messages[-1]["type"] == "Termination"
    assert c.messages[-1]["audio_duration_seconds"] == round(len(data) / 2 / RATE)
    n = check_turns(c, data)
    assert n == 4  # three whole 1 s spans and the rest, flushed by Terminate
    rec = await srv.record_closed(c.request_id)
    assert rec["audio_bytes"] == len(data) and rec["audio_fnv1a64"] == fnv_hex(data)
    assert rec["audio_frames"] == len(frames) and rec["finals_sent"] == n
    assert rec["control"] == {"KeepAlive": 0, "ForceEndpoint": 0, "UpdateConfiguration": 0,
                              "Terminate": 1}
    assert abs(rec["last_final_end"] - len(data) / 2 / RATE) < 1e-9


async def test_force_endpoint_ends_the_turn_at_once():
    data = pcm(RATE + 8 * RATE // 10, seed=22)  # 1.8 s
    c = await AaiClient.open(srv)
    await c.audio(data[:2 * 600 * MS])
    await c.control("ForceEndpoint")
    t = await c.until(lambda m: m["type"] == "Turn" and m["end_of_turn"])
    assert turn_span(t)[:2] == (0, 600 * MS) and t["turn_order"] == 0
    # Nothing pending: still answered, by an empty end-of-turn Turn.
    await c.control("ForceEndpoint")
    t = await c.until(lambda m: m["type"] == "Turn" and m["end_of_turn"])
    assert t["transcript"] == "" and t["words"] == [] and t["turn_order"] == 1
    for off in range(2 * 600 * MS, len(data), 2 * 200 * MS):
        await c.audio(data[off:off + 2 * 200 * MS])
    await c.control("Terminate")
    assert await c.drain() == (1000, "")
    eots = c.turns(end_of_turn=True)
    assert [turn_span(t)[:2] if t["transcript"] else None for t in eots] == [
        (0, 600 * MS), None, (600 * MS, 1600 * MS), (1600 * MS, 1800 * MS)]
    assert [t["turn_order"] for t in eots] == [0, 1, 2, 3]
    rec = await srv.record_closed(c.request_id)
    assert rec["control_log"] == ["ForceEndpoint", "ForceEndpoint", "Terminate"]


async def test_update_configuration_is_recorded():
    c = await AaiClient.open(srv)
    upd = {"end_of_turn_confidence_threshold": 0.7, "min_turn_silence": 560,
           "max_turn_silence": 2000}
    await c.control("UpdateConfiguration", **upd)
    await c.control("UpdateConfiguration", keyterms_prompt=["steno", "turn order"])
    await c.audio(pcm(RATE // 2, seed=23))
    await c.control("Terminate")
    assert await c.drain() == (1000, "")
    rec = await srv.record_closed(c.request_id)
    assert rec["config_updates"] == [dict(type="UpdateConfiguration", **upd),
                                     {"type": "UpdateConfiguration",
                                      "keyterms_prompt": ["steno", "turn order"]}]
    assert rec["control"]["UpdateConfiguration"] == 2
    # A wrongly typed field is a client bug: 3006.
    c = await AaiClient.open(srv)
    await c.ws.send(json.dumps({"type": "UpdateConfiguration", "min_turn_silence": "long"}))
    m = await c.recv()
    assert m["type"] == "Error" and m["error_code"] == 3006 and m["error"].startswith(
        "Invalid Message: ")
    assert (await c.drain())[0] == 3006


async def test_mulaw_audio_is_one_byte_per_sample():
    # G.711 mu-law of the bytes 0..255, decoded as the server does.
    def decode(u):
        u = ~u & 0xFF
        t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
        return (0x84 - t) if u & 0x80 else (t - 0x84)
    data = bytes(random.Random(24).randrange(256) for _ in range(RATE + 4000))
    c = await AaiClient.open(srv, AAI_QUERY.replace("pcm_s16le", "pcm_mulaw"))
    for off in range(0, len(data), 1600):  # 100 ms frames
        await c.audio(data[off:off + 1600])
    await c.control("Terminate")
    assert await c.drain() == (1000, "")
    linear = b"".join(decode(b).to_bytes(2, "little", signed=True) for b in data)
    assert check_turns(c, linear) == 2
    rec = await srv.record_closed(c.request_id)
    assert rec["audio_samples"] == len(data) and rec["audio_fnv1a64"] == fnv_hex(data)


# --- errors --------------------------------------------------------------------


async def test_frames_outside_50_to_1000_ms_close_3007():
    for ms, shown in ((49, "49"), (1001, "1001"), (0, "0")):
        c = await AaiClient.open(srv)
        await c.audio(b"\0" * (2 * MS * ms))
        m = await c.recv()
        assert m["type"] == "Error" and m["error_code"] == 3007, m
        want = "Input duration violation: %s ms. Expected between 50 and 1000 ms" % shown
        assert m["error"] == want, m
        assert await c.drain() == (3007, want)
        rec = await srv.record_closed(c.request_id)
        assert rec["close_code"] == 3007 and rec["close_cause"] == "bad_audio"
    # The bounds themselves are fine.
    c = await AaiClient.open(srv)
    await c.audio(b"\0" * (2 * MS * 50))
    await c.audio(b"\0" * (2 * MS * 1000))
    await c.control("Terminate")
    assert await c.drain() == (1000, "")


async def test_bad_text_messages_close_3006():
    cases = (("{not json", "Invalid JSON: {not json"),
             ('{"type":"Finalize"}', "Invalid Message Type: Finalize"),
             ("[]", "Invalid Message: []"))
    for text, want in cases:
        c = await AaiClient.open(srv)
        await c.ws.send(text)
        m = await c.recv()
        assert m == {"type": "Error", "error_code": 3006, "error": want}, m
        assert await c.drain() == (3006, want)
        rec = await srv.record_closed(c.request_id)
        assert rec["invalid_text"] == 1 and rec["error_sent"] == 1


async def test_bad_parameters_close_3006_before_begin():
    bad = {
        "sample_rate=fast": "sample_rate",
        "sample_rate=4000": "sample_rate",
        "encoding=opus": "encoding",
        "speech_model=nova-3": "speech_model",
        "speech_model=u3-rt-pro": "speech_model",
        "format_turns=maybe": "format_turns",
        "end_of_turn_confidence_threshold=1.5": "end_of_turn_confidence_threshold",
        "min_turn_silence=-1": "min_turn_silence",
        "inactivity_timeout=4": "inactivity_timeout",
        "inactivity_timeout=3601": "inactivity_timeout",
        "max_speakers=11": "max_speakers",
        "keyterms_prompt=steno": "keyterms_prompt",
        "keyterms_prompt=[1,2]": "keyterms_prompt",
        "sample_rate=16000&sample_rate=8000": "sample_rate",
    }
    for q, name in bad.items():
        code, reason, error = await refused(srv, q)
        assert code == 3006, (q, code)
        assert error.startswith("User Input Validation Error: Invalid '%s'" % name), (q, error)
        assert reason == (error if len(error.encode()) <= 123 else "See Error message for details")
        rec = srv.last_record()
        assert rec["params"] is None and rec["close_code"] == 3006 and rec["begin_sent"] == 0
    # Accepted: Python-style booleans, a JSON keyterm list, unknown names (recorded).
    q = AAI_QUERY + '&format_turns=True&keyterms_prompt=["steno","a b"]&session_heartbeat=true'
    c = await AaiClient.open(srv, q.replace('"', "%22").replace(" ", "%20"))
    rec = srv.record(c.request_id)["params"]
    assert rec["format_turns"] is True and rec["keyterms_prompt"] == ["steno", "a b"]
    assert rec["other"] == {"session_heartbeat": "true"} and rec["ignored"] == []
    await c.audio(pcm(RATE // 10, seed=25))
    await c.control("ForceEndpoint")
    t = await c.until(lambda m: m["type"] == "Turn" and m["end_of_turn"])
    assert t["turn_is_formatted"] is True
    await c.control("Terminate")
    assert await c.drain() == (1000, "")


async def test_credentials_raw_key_header_or_token():
    with Server("--protocol", "assemblyai", "--api-key", "sekrit") as s:
        denied = "Unauthorized Connection: Missing Authorization header"
        for headers, query in (({}, AAI_QUERY),
                               ({"Authorization": "Token sekrit"}, AAI_QUERY),
                               ({"Authorization": "Bearer sekrit"}, AAI_QUERY),
                               ({"Authorization": "wrong"}, AAI_QUERY),
                               ({}, AAI_QUERY + "&token=wrong")):
            assert await refused(s, query, headers) == (1008, denied, denied), headers
        c = await AaiClient.open(s, headers={"Authorization": "sekrit"})
        rec = s.record(c.request_id)
        assert rec["headers"]["authorization"] == "<redacted>"
        await c.control("Terminate")
        await c.drain()
        c = await AaiClient.open(s, AAI_QUERY + "&token=sekrit")
        rec = s.record(c.request_id)
        assert "sekrit" not in rec["query"] and rec["query"].endswith("token=<redacted>")
        assert rec["params"]["token"] is True
        await c.control("Terminate")
        await c.drain()


async def test_faster_than_real_time_closes_3007_and_real_time_passes():
    with Server("--protocol", "assemblyai") as s:  # the protocol's default: 1.0x, 1500 ms burst
        # Paced at exactly real time, 250 ms frames: accepted.
        c = await AaiClient.open(s)
        frame = pcm(RATE // 4, seed=26)
        t0 = time.monotonic()
        for i in range(10):
            await asyncio.sleep(max(0, t0 + i * 0.25 - time.monotonic()))
            await c.audio(frame)
        await c.control("Terminate")
        assert await c.drain() == (1000, "")
        # As fast as possible: closed once the audio is 1.5 s ahead of the clock.
        c = await AaiClient.open(s)
        t0 = time.monotonic()
        try:
            for _ in range(100):
                await c.audio(pcm(RATE // 10, seed=27))
        except websockets.ConnectionClosed:
            pass
        code, reason = await c.drain()
        elapsed = time.monotonic() - t0
        assert code == 3007 and reason.startswith("Audio Transmission Rate Exceeded: Received "), \
            reason
        m = [x for x in c.messages if x["type"] == "Error"]
        assert m and m[0]["error_code"] == 3007 and m[0]["error"] == reason
        rec = await s.record_closed(c.request_id)
        assert rec["close_cause"] == "rate"
        assert 1.5 < rec["audio_bytes"] / 2 / RATE <= 1.5 + elapsed + 0.1, rec["audio_bytes"]


async def test_session_limit_closes_3008_at_expires_at():
    with Server("--protocol", "assemblyai", "--session-limit-s", "2") as s:
        c = await AaiClient.open(s)
        assert c.begin["expires_at"] - time.time() <= 2.01
        await c.audio(pcm(RATE // 10, seed=28))
        m = await c.until(lambda m: m["type"] == "Error", timeout=10)
        want = "Session Expired: Maximum session duration exceeded"
        assert m == {"type": "Error", "error_code": 3008, "error": want}
        assert await c.drain() == (3008, want)
        assert time.time() >= c.begin["expires_at"] - 1
        rec = await s.record_closed(c.request_id)
        assert rec["close_cause"] == "session_limit" and rec["closed_by"] == "server"


async def test_inactivity_timeout_ends_the_session():
    c = await AaiClient.open(srv, AAI_QUERY + "&inactivity_timeout=5")
    t0 = time.monotonic()
    await c.audio(pcm(RATE // 5, seed=29))
    assert await c.drain(timeout=15) == (1000, "")
    assert time.monotonic() - t0 >= 4.9
    assert [m["type"] for m in c.messages if m["type"] != "Turn"] == ["Begin", "Termination"]
    rec = await srv.record_closed(c.request_id)
    assert rec["close_cause"] == "idle" and rec["params"]["inactivity_timeout"] == 5


async def test_capacity_closes_3009():
    with Server("--protocol", "assemblyai", "--max-connections", "1") as s:
        c = await AaiClient.open(s)
        code, reason, _ = await refused(s)
        assert (code, reason) == (3009, "Unauthorized connection: Too many concurrent sessions")
        await c.control("Terminate")
        await c.drain()


# --- faults --------------------------------------------------------------------


async def test_handshake_faults_are_http_with_retry_after():
    srv.post_fault({"reject_next": 1, "status": 429, "retry_after": "3", "error": "slow down"})
    try:
        await AaiClient.connect(srv)
        raise AssertionError("rejected handshake succeeded")
    except websockets.InvalidStatusCode as e:
        assert e.status_code == 429 and e.headers.get("retry-after") == "3"
    srv.post_fault({"down": True, "status": 503, "retry_after": "5"})
    try:
        await AaiClient.connect(srv)
        raise AssertionError("handshake succeeded while down")
    except websockets.InvalidStatusCode as e:
        assert e.status_code == 503 and e.headers.get("retry-after") == "5"
    rec = srv.last_record()
    assert rec["state"] == "rejected" and rec["handshake_status"] == 503
    srv.post_fault({"down": False})
    c = await AaiClient.open(srv)
    await c.control("Terminate")
    await c.drain()
    srv.clear_faults()


async def test_connection_faults():
    # close with a chosen code
    c = await AaiClient.open(srv)
    cid = srv.record(c.request_id)["id"]
    srv.post_fault({"action": "close", "code": 3005, "reason": "Session Cancelled: An error "
                    "occurred", "connection": cid})
    assert await c.drain() == (3005, "Session Cancelled: An error occurred")
    # drop: no close frame
    c = await AaiClient.open(srv)
    srv.post_fault({"action": "drop", "connection": srv.record(c.request_id)["id"]})
    code, _ = await c.drain()
    assert code == 1006
    # malformed frames violate the schemas; oversized is a valid Turn of that size
    c = await AaiClient.open(srv)
    cid = srv.record(c.request_id)["id"]
    for kind in ("text", "type", "unknown"):
        srv.post_fault({"action": "malformed", "kind": kind, "connection": cid})
        raw = await asyncio.wait_for(c.ws.recv(), 10)
        try:
            aai_validator().check(raw)
            raise AssertionError("malformed %s frame passed the schema: %r" % (kind, raw))
        except AssertionError as e:
            assert "passed the schema" not in str(e), e
    srv.post_fault({"action": "oversized", "bytes": 100000, "connection": cid})
    raw = await asyncio.wait_for(c.ws.recv(), 10)
    assert len(raw) == 100000 and aai_validator().check(raw)["type"] == "Turn"
    # delayed results, then stall/unstall
    srv.post_fault({"delay_results_ms": 700, "connection": cid})
    t0 = time.monotonic()
    await c.audio(pcm(RATE, seed=30))
    t = await c.until(lambda m: m["type"] == "Turn" and m["end_of_turn"])
    assert time.monotonic() - t0 >= 0.69 and turn_span(t)[:2] == (0, RATE)
    srv.post_fault({"delay_results_ms": 0, "connection": cid})
    srv.post_fault({"action": "stall", "connection": cid})
    await c.audio(pcm(RATE, seed=31))
    try:
        await c.until(lambda m: m["type"] == "Turn" and m["end_of_turn"], timeout=0.5)
        raise AssertionError("a Turn came from a stalled connection")
    except AssertionError as e:
        assert "timed out" in str(e), e
    srv.post_fault({"action": "unstall", "connection": cid})
    t = await c.until(lambda m: m["type"] == "Turn" and m["end_of_turn"])
    assert turn_span(t)[:2] == (RATE, 2 * RATE)
    await c.control("Terminate")
    assert await c.drain() == (1000, "")
    rec = await srv.record_closed(c.request_id)
    assert rec["faults"] == ["malformed text", "malformed type", "malformed unknown",
                             "oversized 100000", "stall", "unstall"]


async def test_armed_close_fires_at_an_audio_offset():
    srv.post_fault({"action": "close", "code": 3005, "reason": "armed", "after_audio_ms": 500})
    c = await AaiClient.open(srv)
    try:
        for _ in range(10):
            await c.audio(pcm(RATE // 10, seed=32))
    except websockets.ConnectionClosed:
        pass
    assert await c.drain() == (3005, "armed")
    rec = await srv.record_closed(c.request_id)
    assert 0.5 <= rec["audio_samples"] / RATE < 1.0
    srv.clear_faults()


# --- real speech ------------------------------------------------------------------

DATA = LIBRIVOX
SPEECH = "sense_and_sensibility_01_austen_64kb-0880"


async def test_pocketsphinx_transcribes_speech_at_real_time():
    path = os.path.join(DATA, SPEECH + ".wav")
    if not os.path.exists(path):
        print("  (skipped: pocketsphinx-testdata not installed)")
        return
    ref = wer.read_transcriptions(os.path.join(DATA, "transcription"))[SPEECH]
    try:
        s = Server("--protocol", "assemblyai", "--engine", "pocketsphinx", "--workers", "1")
    except SystemExit:
        print("  (skipped: steno-server built without pocketsphinx)")
        return
    with s:
        data = wav_pcm(path)
        c = await AaiClient.open(s)
        frames = frames_of(data, random.Random(1), 200, 200)
        t0 = time.monotonic()
        for i, f in enumerate(frames):  # paced at 1.0x, as the service requires
            await asyncio.sleep(max(0, t0 + i * 0.2 - time.monotonic()))
            await c.audio(f)
        await c.control("Terminate")
        assert await c.drain(timeout=60) == (1000, "")
    eots = c.turns(end_of_turn=True)
    assert eots and [t["turn_order"] for t in eots] == list(range(len(eots)))
    end = len(data) // 2 // MS
    last = 0
    for t in eots:
        for w in t["words"]:
            assert w["word_is_final"] and last <= w["start"] <= w["end"] <= end + 1, w
            last = w["start"]
    hyp = " ".join(t["transcript"] for t in eots)
    got = wer.wer(ref, hyp)
    base = None
    if shutil.which("pocketsphinx_continuous"):
        models = "/usr/share/pocketsphinx/model/en-us"
        out = subprocess.run(["pocketsphinx_continuous", "-infile", path,
                              "-hmm", models + "/en-us", "-lm", models + "/en-us.lm.bin",
                              "-dict", models + "/cmudict-en-us.dict", "-logfn", os.devnull],
                             capture_output=True, text=True, check=True).stdout
        base = wer.wer(ref, " ".join(out.split()))
    print("  WER %.1f%% (pocketsphinx_continuous %s): %s" %
          (got, "%.1f%%" % base if base is not None else "n/a", hyp))
    assert got <= (base + 2.0 if base is not None else 40.0), (got, base, hyp)


if __name__ == "__main__":
    with Server("--protocol", "assemblyai", "--max-rate", "0") as srv:
        run_tests(collect(globals()))
