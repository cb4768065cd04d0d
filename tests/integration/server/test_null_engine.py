#!/usr/bin/python3
"""test_null_engine: the null engine's finals cover the streamed audio exactly
once, in order, and each names its sample range and the FNV-1a 64 checksum
of exactly those bytes; the control API's per-connection and per-frame
checksums equal the ones the client computes."""

import random

from server_harness import (QUERY, RATE, Client, Server, collect, fnv_hex, pcm, run_tests,
                            span_of)

srv = None
SPAN = 4000  # --null-span-ms 250 at 16 kHz


def check_tiling(finals, data):
    """The non-empty finals tile [0, len) exactly once, checksums correct."""
    pos = 0
    for m in finals:
        s = span_of(m)
        if s is None:
            assert m["duration"] == 0
            continue
        a, b, chk = s
        assert a == pos, "gap or overlap at sample %d: final starts at %d" % (pos, a)
        assert b > a
        assert chk == fnv_hex(data[2 * a:2 * b]), "checksum of span %d-%d differs" % (a, b)
        assert abs(m["start"] - a / RATE) < 1e-9
        assert abs(m["duration"] - (b - a) / RATE) < 1e-9
        pos = b
    assert pos * 2 == len(data), "finals end at sample %d of %d" % (pos, len(data) // 2)


async def test_random_chunks_are_covered_exactly_once():
    rng = random.Random(7)
    data = pcm(5 * RATE + 1234, seed=11)
    c = await Client.connect(srv)
    frames, off = [], 0
    while off < len(data):
        n = min(2 * rng.randint(1, 3000), len(data) - off)
        frames.append(data[off:off + n])
        await c.audio(data[off:off + n])
        off += n
    await c.control("CloseStream")
    code, _ = await c.drain()
    assert code == 1000
    finals = c.finals()
    check_tiling(finals, data)
    assert all(span_of(m)[1] - span_of(m)[0] == SPAN for m in finals[:-1])
    rec = await srv.record_closed(c.request_id)
    assert rec["audio_bytes"] == len(data) and rec["audio_samples"] == len(data) // 2
    assert rec["audio_fnv1a64"] == fnv_hex(data)
    assert rec["audio_frames"] == len(frames)
    assert rec["last_frame_offset"] == len(data) - len(frames[-1])
    assert rec["finals_sent"] == len(finals)
    assert abs(rec["last_final_end"] - len(data) / 2 / RATE) < 1e-9
    assert 0 <= rec["first_audio"] <= rec["last_audio"]
    fl = srv.get("/connections/%d/frames" % rec["id"])
    assert not fl["truncated"] and len(fl["frames"]) == len(frames)
    off = 0
    for f, want in zip(fl["frames"], frames):
        assert f["offset"] == off and f["bytes"] == len(want)
        assert f["fnv1a64"] == fnv_hex(want)
        off += len(want)


async def test_finalize_points_split_spans_without_loss():
    rng = random.Random(3)
    data = pcm(3 * RATE, seed=12)
    c = await Client.connect(srv)
    off = 0
    while off < len(data):
        n = min(2 * rng.randint(100, 2500), len(data) - off)
        await c.audio(data[off:off + n])
        off += n
        if rng.random() < 0.3:
            await c.control("Finalize")
    await c.control("CloseStream")
    code, _ = await c.drain()
    assert code == 1000
    check_tiling(c.finals(), data)
    ff = [m for m in c.finals() if m["from_finalize"]]
    rec = await srv.record_closed(c.request_id)
    assert len(ff) == rec["control"]["Finalize"] > 0


async def test_spans_restart_on_a_new_connection():
    # A client replaying from sample X on a new connection sees offsets
    # counted from 0 again: mapping them onto its timeline is its job.
    data = pcm(2 * SPAN, seed=13)
    for part in (data[:SPAN * 2], data[SPAN * 2:]):
        c = await Client.connect(srv)
        await c.audio(part)
        await c.control("CloseStream")
        await c.drain()
        check_tiling(c.finals(), part)


async def test_span_length_follows_the_sample_rate():
    c = await Client.connect(srv, "model=base&encoding=linear16&sample_rate=8000")
    data = pcm(8000, seed=14)
    await c.audio(data)
    await c.control("CloseStream")
    await c.drain()
    spans = [span_of(m)[:2] for m in c.finals()]
    assert spans == [(0, 2000), (2000, 4000), (4000, 6000), (6000, 8000)], spans
    assert [m["start"] for m in c.finals()] == [0, 0.25, 0.5, 0.75]


async def test_frame_log_is_bounded():
    with Server("--frame-log", "3") as small:
        c = await Client.connect(small)
        for i in range(5):
            await c.audio(pcm(160, seed=i))
        await c.control("CloseStream")
        await c.drain()
        rec = await small.record_closed(c.request_id)
        fl = small.get("/connections/%d/frames" % rec["id"])
        assert fl["truncated"] and len(fl["frames"]) == 3
        assert rec["audio_frames"] == 5


if __name__ == "__main__":
    with Server("--null-span-ms", "250") as srv:
        run_tests(collect(globals()))
