#!/usr/bin/python3
"""test_limits: the idle timeout (1011 NET-0001), the ingest rate limit (a
too-fast client is closed with 1008 RATE-0000 while a paced one on the same
server survives), the message size limits (1009) and --max-connections (429)."""

import asyncio
import time

import websockets

from server_harness import QUERY, RATE, Client, Server, collect, pcm, run_tests

CHUNK = RATE // 10  # 100 ms of audio per frame


async def test_idle_connection_closes_1011_net_0001():
    with Server("--idle-timeout-ms", "600") as srv:
        c = await Client.connect(srv)
        t0 = time.monotonic()
        code, reason = await c.drain()
        elapsed = time.monotonic() - t0
        assert (code, reason) == (1011, "NET-0001"), (code, reason)
        assert elapsed >= 0.5, "closed after %.2f s, before the idle timeout" % elapsed
        rec = await srv.record_closed(c.request_id)
        assert rec["close_cause"] == "idle" and rec["closed_by"] == "server"


async def test_keepalive_and_audio_reset_the_idle_timer():
    with Server("--idle-timeout-ms", "600") as srv:
        c = await Client.connect(srv)
        t0 = time.monotonic()
        for i in range(8):  # 1.6 s of activity, every 200 ms
            await asyncio.sleep(0.2)
            if i % 2:
                await c.control("KeepAlive")
            else:
                await c.audio(pcm(160, seed=i))
        assert c.ws.open, "closed during activity"
        code, reason = await c.drain()
        assert (code, reason) == (1011, "NET-0001")
        assert time.monotonic() - t0 >= 1.6 + 0.5
        rec = await srv.record_closed(c.request_id)
        assert rec["control"]["KeepAlive"] == 4 and rec["audio_frames"] == 4


async def idle_deadlines_on(loop):
    """20 connections whose last activity is staggered by 50 ms: each is closed by its own idle
    timer, not before its deadline and not long after, on the given event loop."""
    idle = 3.0  # longer than connecting them all takes
    with Server("--idle-timeout-ms", str(int(idle * 1000)), "--event-loop", loop) as srv:
        clients = [await Client.connect(srv) for _ in range(20)]
        last = []
        for c in clients:  # the later the client, the later its deadline
            await c.control("KeepAlive")
            last.append(time.monotonic())
            await asyncio.sleep(0.05)

        async def closed_after(c, t_last):
            code, reason = await c.drain()
            return code, reason, time.monotonic() - t_last

        got = await asyncio.gather(*(closed_after(c, t) for c, t in zip(clients, last)))
        for i, (code, reason, after) in enumerate(got):
            assert (code, reason) == (1011, "NET-0001"), (i, code, reason)
            assert after >= idle - 0.1, "client %d closed %.2f s after its last message" % (i, after)
            assert after < idle + 0.6, "client %d closed %.2f s after its last message" % (i, after)


async def test_idle_timers_each_fire_at_their_own_deadline_on_libev():
    await idle_deadlines_on("libev")


async def test_idle_timers_each_fire_at_their_own_deadline_on_poll():
    await idle_deadlines_on("poll")


async def paced(srv, seconds, speed):
    """Streams `seconds` of audio at `speed` x real time; returns the close."""
    c = await Client.connect(srv)
    t0 = time.monotonic()
    n = int(seconds * 10)
    try:
        for i in range(n):
            await c.audio(pcm(CHUNK, seed=i))
            if speed:
                due = t0 + (i + 1) * 0.1 / speed
                await asyncio.sleep(max(0.0, due - time.monotonic()))
        await c.control("CloseStream")
    except websockets.ConnectionClosed:
        pass
    code, reason = await c.drain(timeout=30)
    return c, code, reason


async def test_too_fast_client_is_closed_while_paced_one_survives():
    with Server("--max-rate", "1.25", "--burst-ms", "1000") as srv:
        (fast, fcode, freason), (slow, scode, sreason) = await asyncio.gather(
            paced(srv, 8.0, 0), paced(srv, 2.5, 1.0))
        assert fcode == 1008 and freason.startswith("RATE-0000"), (fcode, freason)
        assert (scode, sreason) == (1000, ""), (scode, sreason)
        frec = await srv.record_closed(fast.request_id)
        assert frec["close_cause"] == "rate"
        # Closed once it got more than the burst ahead of 1.25 x real time.
        ahead = frec["audio_samples"] / RATE - 1.25 * frec["last_audio"]
        assert ahead > 1.0 - 0.11, frec
        srec = await srv.record_closed(slow.request_id)
        assert srec["audio_samples"] == 25 * CHUNK and srec["close_cause"] == "CloseStream"


async def test_burst_within_allowance_is_accepted():
    with Server("--max-rate", "1.25", "--burst-ms", "2000") as srv:
        c, code, _ = await paced(srv, 1.5, 0)  # 1.5 s at once: inside the burst
        assert code == 1000


async def test_oversized_messages_close_1009():
    with Server("--max-message-bytes", "4000") as srv:
        c = await Client.connect(srv)
        await c.audio(pcm(2000))  # exactly the limit: fine
        await c.audio(pcm(2001))
        code, _ = await c.drain()
        assert code == 1009
        rec = await srv.record_closed(c.request_id)
        assert rec["close_cause"] == "too_big" and rec["audio_frames"] == 1
        c = await Client.connect(srv)
        # text messages may carry base64 audio: up to 256 KiB each
        await c.ws.send('{"type":"KeepAlive","pad":"' + "x" * (256 * 1024) + '"}')
        code, _ = await c.drain()
        assert code == 1009


async def test_max_connections_answers_429():
    with Server("--max-connections", "2") as srv:
        a = await Client.connect(srv)
        b = await Client.connect(srv)
        try:
            await websockets.connect(srv.url(QUERY), open_timeout=20)
            raise AssertionError("third connection accepted")
        except websockets.InvalidStatusCode as e:
            assert e.status_code == 429 and e.headers.get("dg-error")
            assert e.headers.get("dg-request-id")
        await a.close()
        await srv.record_closed(a.request_id)
        c = await Client.connect(srv)
        await b.close()
        await c.close()


if __name__ == "__main__":
    run_tests(collect(globals()))
