#!/usr/bin/python3
"""test_concurrency: one steno-server process holds 1,000 concurrent
connections on the null engine; each streams audio, gets finals that cover
it exactly and a Metadata, and closes 1000; the control API saw them all
open at once and recorded every checksum."""

import asyncio
import os
import time

from server_harness import (RATE, Client, Server, collect, fnv_hex, pcm, raise_fd_limit,
                            run_tests, span_of)

N = int(os.environ.get("STENO_SERVER_CONCURRENCY", "1000"))
SAMPLES = RATE // 2  # 0.5 s each, two 250 ms spans
srv = None


async def one(i, opened, go):
    c = await Client.connect(srv, open_timeout=60)
    opened.append(c)
    await go.wait()
    data = pcm(SAMPLES, seed=i)
    await c.audio(data[:len(data) // 2])
    await c.audio(data[len(data) // 2:])
    await c.control("CloseStream")
    code, reason = await c.drain(timeout=120)
    assert code == 1000, (i, code, reason)
    spans = [span_of(m) for m in c.finals()]
    assert spans == [(0, SAMPLES // 2, fnv_hex(data[:SAMPLES])),
                     (SAMPLES // 2, SAMPLES, fnv_hex(data[SAMPLES:]))], (i, spans)
    assert c.messages[-1]["type"] == "Metadata"
    return c.request_id, fnv_hex(data)


async def test_thousand_concurrent_streams():
    limit = raise_fd_limit()
    assert limit > N + 100, "RLIMIT_NOFILE %d is too low for %d connections" % (limit, N)
    opened, go = [], asyncio.Event()
    t0 = time.monotonic()
    tasks = [asyncio.create_task(one(i, opened, go)) for i in range(N)]
    while len(opened) < N:
        done = [t for t in tasks if t.done() and t.exception()]
        if done:
            raise done[0].exception()
        await asyncio.sleep(0.05)
    stats = await asyncio.to_thread(srv.get, "/stats")
    assert stats["connections_active"] == N, stats
    t_open = time.monotonic() - t0
    go.set()
    results = await asyncio.gather(*tasks)
    t_all = time.monotonic() - t0
    recs = {r["request_id"]: r for r in
            (await asyncio.to_thread(srv.get, "/connections"))["connections"]}
    for rid, fnv in results:
        r = recs[rid]
        assert r["audio_fnv1a64"] == fnv and r["audio_samples"] == SAMPLES
        assert r["finals_sent"] == 2 and r["close_code"] == 1000
    stats = await asyncio.to_thread(srv.get, "/stats")
    assert stats["connections_active"] == 0 and stats["finals_sent"] >= 2 * N
    print("%d connections open in %.1f s, all done in %.1f s" % (N, t_open, t_all))
    if N != 1000:
        return
    # Frame logs are kept for the newest 1,000 ended connections: one more
    # ended connection evicts the log of the one that ended first (the 1,000
    # end at nearly the same moment, in no fixed order), and only that one.
    c = await Client.connect(srv)
    await c.audio(pcm(160))
    await c.close()
    last = await srv.record_closed(c.request_id)

    def frame_logs():
        return [srv.get("/connections/%d/frames" % r["id"]) for r in recs.values()]
    logs = await asyncio.to_thread(frame_logs)
    evicted = [f for f in logs if f["evicted"]]
    assert len(evicted) == 1, "%d frame logs evicted, expected 1" % len(evicted)
    assert evicted[0]["frames"] == [] and evicted[0]["truncated"]
    assert all(len(f["frames"]) == 2 for f in logs if not f["evicted"])
    fl = await asyncio.to_thread(srv.get, "/connections/%d/frames" % last["id"])
    assert not fl["evicted"] and len(fl["frames"]) == 1


if __name__ == "__main__":
    raise_fd_limit()
    with Server("--null-span-ms", "250", "--workers", "2") as srv:
        run_tests(collect(globals()))
