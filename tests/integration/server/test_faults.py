#!/usr/bin/python3
"""test_faults: every fault the control API offers is observable by a real
client: rejected and refused handshakes (status, Retry-After, dg-error),
abrupt drops without a close frame, close frames with chosen codes, stalls
(no reads, no writes, no pongs) and their end, malformed and oversized
frames, delayed results, actions armed to fire after an amount of audio,
scoping to one connection, and DELETE /faults clearing it all."""

import asyncio
import json
import time

import websockets

from server_harness import (QUERY, RATE, Client, Server, collect, pcm, run_tests, span_of,
                            validator)

srv = None


async def conn_id(c):
    return (await asyncio.to_thread(srv.record, c.request_id))["id"]


async def expect_refused(status, retry_after=None, error=None):
    try:
        ws = await websockets.connect(srv.url(QUERY), open_timeout=20)
    except websockets.InvalidStatusCode as e:
        assert e.status_code == status, (e.status_code, status)
        assert e.headers.get("dg-request-id")
        assert e.headers.get("Retry-After") == retry_after, e.headers
        if error:
            assert e.headers.get("dg-error") == error, e.headers
        return
    await ws.close()
    raise AssertionError("handshake accepted, want %d" % status)


async def first_final(c, timeout=20):
    return await c.until(lambda m: m["type"] == "Results" and m["is_final"], timeout)


async def test_reject_next_fails_that_many_handshakes():
    srv.post_fault({"reject_next": 2, "status": 503, "retry_after": "2", "error": "maintenance"})
    assert srv.get("/faults")["reject_next"] == 2
    await expect_refused(503, "2", "maintenance")
    assert srv.get("/faults")["reject_next"] == 1
    await expect_refused(503, "2", "maintenance")
    c = await Client.connect(srv)
    await c.close()
    srv.post_fault({"reject_next": 1, "status": 429})
    await expect_refused(429)
    srv.clear_faults()


async def test_down_refuses_until_up_again():
    srv.post_fault({"down": True, "status": 503, "retry_after": "5"})
    for _ in range(3):
        await expect_refused(503, "5")
    srv.post_fault({"down": False})
    c = await Client.connect(srv)
    await c.close()
    recs = srv.get("/connections")["connections"][-4:]
    assert [r["handshake_status"] for r in recs] == [503, 503, 503, 101]


async def test_drop_ends_tcp_without_a_close_frame():
    c = await Client.connect(srv)
    await c.audio(pcm(RATE))
    await first_final(c)
    cid = await conn_id(c)
    r = srv.post_fault({"action": "drop", "connection": cid})
    assert r["applied"] == [cid]
    code, reason = await c.drain()
    assert code == 1006, "a close frame arrived: %r" % ((code, reason),)
    rec = await srv.record_closed(c.request_id)
    assert rec["closed_by"] == "none" and rec["close_cause"] == "fault_drop"
    assert rec["close_code"] is None and rec["faults"] == ["drop"]


async def test_close_sends_the_chosen_code_and_reason():
    c = await Client.connect(srv)
    cid = await conn_id(c)
    srv.post_fault({"action": "close", "code": 1011, "reason": "NET-0000", "connection": cid})
    assert await c.drain() == (1011, "NET-0000")
    rec = await srv.record_closed(c.request_id)
    assert rec["close_code"] == 1011 and rec["close_reason"] == "NET-0000"
    assert rec["closed_by"] == "server" and rec["close_cause"] == "fault_close"
    assert rec["faults"] == ["close 1011 NET-0000"]


async def test_stall_stops_reading_writing_and_pongs_until_unstall():
    c = await Client.connect(srv)
    await c.audio(pcm(RATE, seed=1))
    await first_final(c)
    cid = await conn_id(c)
    srv.post_fault({"action": "stall", "connection": cid})
    assert srv.get("/faults")["stalled"] == [cid]
    await c.audio(pcm(RATE, seed=2))
    pong = await c.ws.ping()
    try:
        await asyncio.wait_for(asyncio.shield(pong), 1.0)
        raise AssertionError("pong received from a stalled connection")
    except asyncio.TimeoutError:
        pass
    try:
        await first_final(c, timeout=0.5)
        raise AssertionError("result received from a stalled connection")
    except AssertionError as e:
        assert "timed out" in str(e), e
    rec = srv.record(c.request_id)
    assert rec["audio_bytes"] == 2 * RATE and rec["state"] == "open", rec["audio_bytes"]
    srv.post_fault({"action": "unstall", "connection": cid})
    await asyncio.wait_for(pong, 10)
    m = await first_final(c)
    assert span_of(m)[:2] == (RATE, 2 * RATE)
    assert srv.get("/faults")["stalled"] == []
    await c.close()
    rec = await srv.record_closed(c.request_id)
    assert rec["faults"] == ["stall", "unstall"] and rec["audio_bytes"] == 4 * RATE


async def test_malformed_frames_reach_the_client():
    c = await Client.connect(srv)
    cid = await conn_id(c)
    got = []
    for kind in ("text", "type", "unknown"):
        srv.post_fault({"action": "malformed", "kind": kind, "connection": cid})
        got.append(await asyncio.wait_for(c.ws.recv(), 10))
    try:
        json.loads(got[0])
        raise AssertionError("'text' frame parsed as JSON")
    except ValueError:
        pass
    for raw in got:
        try:
            validator().check(raw)
            raise AssertionError("malformed frame passed the schema: %r" % raw)
        except AssertionError as e:
            assert "malformed frame passed" not in str(e), e
    assert json.loads(got[1])["type"] == "Results"
    assert json.loads(got[2]) == {"type": "Bogus"}
    await c.close()
    rec = await srv.record_closed(c.request_id)
    assert rec["faults"] == ["malformed text", "malformed type", "malformed unknown"]


async def test_oversized_frame_has_exactly_the_size_asked_for():
    c = await Client.connect(srv)
    cid = await conn_id(c)
    srv.post_fault({"action": "oversized", "bytes": 300000, "connection": cid})
    raw = await asyncio.wait_for(c.ws.recv(), 10)
    assert isinstance(raw, str) and len(raw.encode()) == 300000
    obj = validator().check(raw)
    assert obj["type"] == "Results" and len(obj["channel"]["alternatives"][0]["transcript"]) > 1000
    await c.close()


async def test_delay_results_is_global_or_per_connection():
    a = await Client.connect(srv)
    b = await Client.connect(srv)
    srv.post_fault({"delay_results_ms": 600, "connection": await conn_id(a)})
    t0 = time.monotonic()
    await a.audio(pcm(RATE))
    await b.audio(pcm(RATE))
    await first_final(b)
    tb = time.monotonic() - t0
    await first_final(a)
    ta = time.monotonic() - t0
    assert ta >= 0.55 and ta > tb, (ta, tb)
    await a.close()
    await b.close()
    srv.post_fault({"delay_results_ms": 400})
    assert srv.get("/faults")["delay_results_ms"] == 400
    c = await Client.connect(srv)
    t0 = time.monotonic()
    await c.audio(pcm(RATE))
    await first_final(c)
    assert time.monotonic() - t0 >= 0.35
    await c.close()
    srv.clear_faults()


async def test_armed_drop_fires_after_the_audio_amount():
    srv.post_fault({"action": "drop", "after_audio_ms": 500})
    assert len(srv.get("/faults")["armed"]) == 1
    c = await Client.connect(srv)
    try:
        for i in range(10):  # 100 ms frames
            await c.audio(pcm(RATE // 10, seed=i))
            await asyncio.sleep(0.02)
    except websockets.ConnectionClosed:
        pass
    code, _ = await c.drain()
    assert code == 1006
    rec = await srv.record_closed(c.request_id)
    assert rec["audio_samples"] == RATE // 2, rec["audio_samples"]
    assert rec["close_cause"] == "fault_drop" and rec["faults"] == ["drop"]
    assert srv.get("/faults")["armed"] == []  # count 1: used up
    c = await Client.connect(srv)  # the next connection is left alone
    await c.audio(pcm(RATE))
    await first_final(c)
    await c.close()


async def test_armed_close_with_count_hits_that_many_connections():
    srv.post_fault({"action": "close", "code": 1012, "reason": "restart",
                    "after_audio_ms": 200, "count": 2})
    codes = []
    for i in range(3):
        c = await Client.connect(srv)
        await c.audio(pcm(RATE // 4))
        await c.control("CloseStream")
        codes.append((await c.drain())[0])
    assert codes == [1012, 1012, 1000], codes
    srv.clear_faults()


async def test_unscoped_action_applies_to_every_open_connection():
    a = await Client.connect(srv)
    b = await Client.connect(srv)
    ids = sorted([await conn_id(a), await conn_id(b)])
    r = srv.post_fault({"action": "close", "code": 4001, "reason": "all of you"})
    assert sorted(r["applied"]) == ids
    assert await a.drain() == (4001, "all of you")
    assert await b.drain() == (4001, "all of you")


async def test_scoped_action_leaves_other_connections_alone():
    a = await Client.connect(srv)
    b = await Client.connect(srv)
    srv.post_fault({"action": "close", "connection": await conn_id(a)})
    assert (await a.drain())[0] == 1011
    await b.audio(pcm(RATE))
    await first_final(b)
    await b.control("CloseStream")
    assert (await b.drain())[0] == 1000


async def test_delete_faults_clears_everything():
    c = await Client.connect(srv)
    cid = await conn_id(c)
    srv.post_fault({"action": "stall", "connection": cid})
    srv.post_fault({"down": True})
    srv.post_fault({"delay_results_ms": 5000})
    srv.post_fault({"action": "drop", "after_audio_ms": 1})
    srv.clear_faults()
    f = srv.get("/faults")
    assert not f["down"] and f["delay_results_ms"] == 0 and f["armed"] == [] and not f["stalled"]
    assert f["reject_next"] == 0
    await c.audio(pcm(RATE))
    await first_final(c, timeout=3)  # unstalled, not delayed, not dropped
    await c.close()
    d = await Client.connect(srv)  # not down
    await d.close()


async def test_bad_fault_requests_get_400():
    c = await Client.connect(srv)
    cid = await conn_id(c)
    await c.close()
    await srv.record_closed(c.request_id)
    for body in ({"bogus": 1}, {"action": "explode"}, {"action": "close", "code": 1006},
                 {"action": "close", "code": 99999}, {"action": "drop", "connection": cid},
                 {"delay_results_ms": -5}, {"down": "yes"}, {"after_audio_ms": 5},
                 {"action": "malformed", "kind": "weird"}, {"reject_next": 1.5}, [1, 2]):
        r = srv.post_fault(body, expect=400)
        assert r["error"], body
    status, body = srv.control("POST", "/faults", None)
    assert status == 400


if __name__ == "__main__":
    with Server() as srv:
        run_tests(collect(globals()))
