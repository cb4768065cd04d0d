#!/usr/bin/python3
"""test_messages: every client message type of Deepgram's live API gets the
server behaviour and the server messages Deepgram's spec describes:
KeepAlive, Finalize (a from_finalize final), CloseStream (finals, Metadata,
close 1000), interim results, SpeechStarted, UtteranceEnd; bad audio and bad
text messages close the connection with Deepgram-style codes."""

import hashlib
import json

from server_harness import (QUERY, RATE, Client, Server, collect, fnv_hex, pcm, run_tests,
                            span_of)

srv = None


async def test_keepalive_is_recorded_and_keeps_the_stream_open():
    c = await Client.connect(srv)
    for _ in range(3):
        await c.control("KeepAlive")
    await c.audio(pcm(RATE))
    final = await c.until(lambda m: m["type"] == "Results" and m["is_final"])
    assert span_of(final)[:2] == (0, RATE)
    await c.control("CloseStream")
    code, _ = await c.drain()
    assert code == 1000
    rec = await srv.record_closed(c.request_id)
    assert rec["control"]["KeepAlive"] == 3
    assert rec["control_log"] == ["KeepAlive"] * 3 + ["CloseStream"]
    assert rec["text_messages"] == 4 and rec["invalid_text"] == 0


async def test_finalize_flushes_a_from_finalize_final():
    c = await Client.connect(srv)
    await c.audio(pcm(RATE + 4000, seed=2))  # one full span and a quarter
    await c.control("Finalize")
    ff = await c.until(lambda m: m["type"] == "Results" and m.get("from_finalize"))
    assert ff["is_final"] and span_of(ff)[:2] == (RATE, RATE + 4000), ff
    assert abs(ff["start"] - 1.0) < 1e-9 and abs(ff["duration"] - 0.25) < 1e-9
    firsts = [m for m in c.finals() if not m["from_finalize"]]
    assert [span_of(m)[:2] for m in firsts] == [(0, RATE)]
    # Nothing pending: still a from_finalize final, empty, so a client
    # awaiting the confirmation never hangs.
    await c.control("Finalize")
    empty = await c.until(lambda m: m["type"] == "Results" and m.get("from_finalize"))
    assert empty["is_final"] and empty["channel"]["alternatives"][0]["transcript"] == ""
    assert empty["duration"] == 0 and abs(empty["start"] - 1.25) < 1e-9
    await c.close()
    rec = await srv.record_closed(c.request_id)
    assert rec["control"]["Finalize"] == 2 and rec["finals_sent"] == 3


async def test_closestream_sends_results_then_metadata_then_close_1000():
    c = await Client.connect(srv)
    data = pcm(RATE // 2, seed=3)
    await c.audio(data)
    await c.control("CloseStream")
    code, reason = await c.drain()
    assert code == 1000, (code, reason)
    types = [m["type"] for m in c.messages]
    assert types == ["Results", "Metadata"], types
    res, meta = c.messages
    assert res["is_final"] and not res["from_finalize"]
    assert span_of(res) == (0, RATE // 2, fnv_hex(data))
    assert meta["sha256"] == hashlib.sha256(data).hexdigest()
    assert abs(meta["duration"] - 0.5) < 1e-9 and meta["channels"] == 1
    assert meta["request_id"] == c.request_id and meta["transaction_key"]
    assert meta["models"] == [res["metadata"]["model_uuid"]]
    rec = await srv.record_closed(c.request_id)
    assert rec["closed_by"] == "server" and rec["close_cause"] == "CloseStream"
    assert rec["close_code"] == 1000 and rec["metadata_sent"] == 1


async def test_audio_after_closestream_is_ignored():
    c = await Client.connect(srv)
    await c.audio(pcm(800))
    await c.control("CloseStream")
    try:
        await c.audio(pcm(800, seed=9))
    except Exception:
        pass  # the server may already have closed
    code, _ = await c.drain()
    assert code == 1000
    meta = [m for m in c.messages if m["type"] == "Metadata"][0]
    assert abs(meta["duration"] - 0.05) < 1e-9


async def test_empty_binary_message_ends_the_stream():
    c = await Client.connect(srv)
    await c.audio(pcm(1600))
    await c.ws.send(b"")
    code, _ = await c.drain()
    assert code == 1000 and c.messages[-1]["type"] == "Metadata"
    rec = await srv.record_closed(c.request_id)
    assert rec["control"]["EmptyBinary"] == 1 and rec["audio_frames"] == 1


async def test_interim_results_speech_started_and_utterance_end():
    q = QUERY + "&interim_results=true&vad_events=true&utterance_end_ms=1000"
    c = await Client.connect(srv, q)
    for i in range(8):  # 2 s in 250 ms frames
        await c.audio(pcm(RATE // 4, seed=10 + i))
    await c.control("CloseStream")
    code, _ = await c.drain()
    assert code == 1000
    kinds = [(m["type"], m.get("is_final")) for m in c.messages]
    assert kinds.count(("SpeechStarted", None)) == 2, kinds
    assert kinds.count(("UtteranceEnd", None)) == 2, kinds
    interims = [m for m in c.messages if m["type"] == "Results" and not m["is_final"]]
    assert [span_of(m)[:2] for m in interims] == [(0, 4000), (0, 8000), (0, 12000),
                                                  (16000, 20000), (16000, 24000),
                                                  (16000, 28000)], interims
    ss = [m["timestamp"] for m in c.messages if m["type"] == "SpeechStarted"]
    ue = [m["last_word_end"] for m in c.messages if m["type"] == "UtteranceEnd"]
    assert ss == [0, 1] and ue == [1, 2], (ss, ue)
    # Each UtteranceEnd follows the final of its span.
    idx = [i for i, m in enumerate(c.messages) if m["type"] == "UtteranceEnd"]
    for i in idx:
        assert c.messages[i - 1]["type"] == "Results" and c.messages[i - 1]["is_final"]
    for m in c.messages:
        if m["type"] in ("SpeechStarted", "UtteranceEnd"):
            assert m["channel"] == [0, 1]
    rec = await srv.record_closed(c.request_id)
    assert rec["interims_sent"] == 6 and rec["speech_started_sent"] == 2
    assert rec["utterance_end_sent"] == 2


async def test_results_shape_words_and_timestamps():
    c = await Client.connect(srv)
    await c.audio(pcm(3 * RATE))
    await c.control("CloseStream")
    await c.drain()
    finals = c.finals()
    assert [(m["start"], m["duration"]) for m in finals] == [(0, 1), (1, 1), (2, 1)]
    for m in finals:
        assert m["channel_index"] == [0, 1] and m["speech_final"] is True
        alt = m["channel"]["alternatives"][0]
        assert alt["confidence"] == 1
        words = alt["words"]
        assert [w["word"] for w in words] == alt["transcript"].split(" ")
        assert words[0]["start"] == m["start"]
        assert abs(words[-1]["end"] - (m["start"] + m["duration"])) < 1e-9
        mi = m["metadata"]["model_info"]
        assert mi["name"] == "nova-3" and mi["arch"] and mi["version"]


async def test_timestamps_restart_at_zero_on_each_connection():
    for seed in (1, 2):
        c = await Client.connect(srv)
        await c.audio(pcm(RATE, seed=seed))
        m = await c.until(lambda m: m["type"] == "Results" and m["is_final"])
        assert m["start"] == 0 and span_of(m)[0] == 0
        await c.close()


async def test_odd_byte_count_closes_1008_data_0000():
    c = await Client.connect(srv)
    await c.audio(pcm(100))
    await c.audio(b"\x01\x02\x03")
    code, reason = await c.drain()
    assert (code, reason) == (1008, "DATA-0000"), (code, reason)
    rec = await srv.record_closed(c.request_id)
    assert rec["close_cause"] == "bad_audio" and rec["closed_by"] == "server"


async def test_fragmented_message_is_judged_as_a_whole():
    # Two odd fragments make one even message: accepted, samples intact.
    c = await Client.connect(srv)
    data = pcm(RATE // 2, seed=4)
    await c.ws.send([data[:3333], data[3333:]])
    await c.control("CloseStream")
    code, _ = await c.drain()
    assert code == 1000
    assert span_of(c.finals()[0]) == (0, RATE // 2, fnv_hex(data))
    rec = await srv.record_closed(c.request_id)
    assert rec["audio_frames"] == 1 and rec["audio_fnv1a64"] == fnv_hex(data)
    # Odd fragments that add up to an odd message: refused.
    c = await Client.connect(srv)
    await c.ws.send([data[:3333], data[3333:-2], data[-1:]])
    code, reason = await c.drain()
    assert (code, reason) == (1008, "DATA-0000")


async def test_bad_text_messages_close_1008():
    for text in ("not json", json.dumps({"type": "Configure"}), json.dumps({"kind": "x"}),
                 json.dumps(["KeepAlive"]), json.dumps({"type": 7})):
        c = await Client.connect(srv)
        await c.ws.send(text)
        code, reason = await c.drain()
        assert code == 1008 and reason.startswith("DATA-0001"), (text, code, reason)
        rec = await srv.record_closed(c.request_id)
        assert rec["invalid_text"] == 1 and rec["close_cause"] == "bad_text"


async def test_client_close_is_recorded():
    c = await Client.connect(srv)
    await c.audio(pcm(160))
    await c.ws.close(4000, "bye now")
    rec = await srv.record_closed(c.request_id)
    assert rec["closed_by"] == "client" and rec["close_code"] == 4000
    assert rec["close_reason"] == "bye now" and rec["close_cause"] == "client"


if __name__ == "__main__":
    with Server() as srv:
        run_tests(collect(globals()))
