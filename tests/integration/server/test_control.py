#!/usr/bin/python3
"""test_control: the observation API: /health, /stats, /connections with its
filters, one record, long-polling a record until its connection ends, the
bounded history, DELETE /connections, and 404/405 answers."""

import asyncio
import time

from server_harness import QUERY, RATE, Client, Server, collect, fnv_hex, pcm, run_tests

srv = None


async def test_health_names_engine_and_ports():
    h = srv.get("/health")
    assert h == {"status": "ok", "engine": "null", "port": srv.port, "control_port": srv.cport}


async def test_stats_count_connections_audio_and_results():
    before = srv.get("/stats")
    c = await Client.connect(srv)
    await c.audio(pcm(RATE))
    await c.audio(pcm(RATE // 2))
    await c.control("CloseStream")
    assert (await c.drain())[0] == 1000
    await srv.record_closed(c.request_id)
    after = srv.get("/stats")
    assert after["connections_total"] == before["connections_total"] + 1
    assert after["audio_bytes"] == before["audio_bytes"] + 3 * RATE
    assert after["audio_frames"] == before["audio_frames"] + 2
    assert after["finals_sent"] == before["finals_sent"] + 2
    assert after["results_sent"] == before["results_sent"] + 2
    assert after["messages_sent"] == before["messages_sent"] + 3  # + Metadata
    assert after["text_messages"] == before["text_messages"] + 1
    assert after["closes"]["1000"] == before["closes"].get("1000", 0) + 1
    assert after["connections_active"] == 0


async def test_connection_filters():
    last = srv.get("/connections")["connections"]
    since = last[-1]["id"] if last else 0
    a = await Client.connect(srv)
    b = await Client.connect(srv)
    await b.close()
    await srv.record_closed(b.request_id)
    recs = srv.get("/connections?since=%d" % since)["connections"]
    assert [r["request_id"] for r in recs] == [a.request_id, b.request_id]
    active = srv.get("/connections?active=1")["connections"]
    assert [r["request_id"] for r in active] == [a.request_id]
    assert active[0]["state"] == "open" and active[0]["end"] is None
    one = srv.get("/connections?request_id=" + b.request_id)["connections"]
    assert len(one) == 1 and one[0]["state"] == "closed" and one[0]["end"] >= one[0]["start"]
    rec = srv.get("/connections/%d" % one[0]["id"])
    assert rec["request_id"] == b.request_id
    await a.close()


async def test_record_fields_match_what_the_client_sent():
    c = await Client.connect(srv, QUERY + "&interim_results=true")
    chunks = [pcm(800, seed=i) for i in range(4)]
    for ch in chunks:
        await c.audio(ch)
    await c.control("KeepAlive")
    await c.control("Finalize")
    await c.control("CloseStream")
    assert (await c.drain())[0] == 1000
    rec = await srv.record_closed(c.request_id)
    data = b"".join(chunks)
    assert rec["audio_fnv1a64"] == fnv_hex(data) and rec["audio_bytes"] == len(data)
    assert rec["audio_frames"] == 4 and rec["last_frame_offset"] == 3 * 1600
    assert rec["control_log"] == ["KeepAlive", "Finalize", "CloseStream"]
    assert rec["control"] == {"KeepAlive": 1, "Finalize": 1, "CloseStream": 1, "EmptyBinary": 0}
    n_results = sum(1 for m in c.messages if m["type"] == "Results")
    assert rec["results_sent"] == n_results and rec["messages_sent"] == len(c.messages)
    assert rec["finals_sent"] == len(c.finals()) and rec["metadata_sent"] == 1
    frames = srv.get("/connections/%d/frames" % rec["id"])["frames"]
    assert [f["fnv1a64"] for f in frames] == [fnv_hex(ch) for ch in chunks]
    assert all(frames[i]["t"] <= frames[i + 1]["t"] for i in range(3))


async def test_long_poll_answers_when_the_connection_ends():
    c = await Client.connect(srv)
    rec = srv.get("/connections?request_id=" + c.request_id)["connections"][0]
    t0 = time.monotonic()
    poll = asyncio.create_task(asyncio.to_thread(
        srv.get, "/connections/%d?wait_closed_ms=20000" % rec["id"]))
    await asyncio.sleep(0.3)
    assert not poll.done()
    await c.ws.close(1000)
    done = await asyncio.wait_for(poll, 10)
    assert done["state"] == "closed" and done["closed_by"] == "client"
    assert time.monotonic() - t0 < 5


async def test_long_poll_times_out_with_the_open_record():
    c = await Client.connect(srv)
    rec = srv.get("/connections?request_id=" + c.request_id)["connections"][0]
    t0 = time.monotonic()
    r = await asyncio.to_thread(srv.get, "/connections/%d?wait_closed_ms=300" % rec["id"])
    assert r["state"] == "open" and time.monotonic() - t0 >= 0.25
    await c.close()


async def test_delete_connections_forgets_ended_records_only():
    a = await Client.connect(srv)
    b = await Client.connect(srv)
    await b.close()
    await srv.record_closed(b.request_id)
    status, _ = srv.control("DELETE", "/connections")
    assert status == 200
    recs = srv.get("/connections")["connections"]
    assert [r["request_id"] for r in recs] == [a.request_id]
    await a.close()


async def test_history_is_bounded_but_keeps_live_connections():
    with Server("--history", "3") as small:
        live = await Client.connect(small)
        ended = []
        for _ in range(5):
            c = await Client.connect(small)
            await c.close()
            await small.record_closed(c.request_id)
            ended.append(c.request_id)
        ids = [r["request_id"] for r in small.get("/connections")["connections"]]
        assert ids == [live.request_id] + ended[-3:], ids
        await live.close()


async def test_history_forgets_the_records_that_ended_first():
    with Server("--history", "2") as small:
        a, b, c = [await Client.connect(small) for _ in range(3)]
        for x in (b, a, c):  # ended in an order other than the order they opened in
            await x.close()
            await small.record_closed(x.request_id)
        ids = [r["request_id"] for r in small.get("/connections")["connections"]]
        assert ids == [a.request_id, c.request_id], ids


async def test_unknown_paths_and_methods():
    assert srv.control("GET", "/nope")[0] == 404
    assert srv.control("GET", "/connections/999999")[0] == 404
    assert srv.control("GET", "/connections/abc")[0] == 404
    assert srv.control("POST", "/health", {})[0] == 405
    assert srv.control("DELETE", "/stats")[0] == 405


if __name__ == "__main__":
    with Server() as srv:
        run_tests(collect(globals()))
