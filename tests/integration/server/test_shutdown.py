#!/usr/bin/python3
"""test_shutdown: SIGTERM and SIGINT close every open connection with 1001,
join the workers and exit 0 promptly, with connections mid-stream."""

import asyncio
import signal
import subprocess
import time

from server_harness import RATE, Client, Server, collect, pcm, run_tests, server_binary


async def shutdown_with(sig, *args):
    srv = Server(*args)
    clients = [await Client.connect(srv) for _ in range(20)]
    for i, c in enumerate(clients):
        await c.audio(pcm(RATE + 2 * i, seed=i))
    await clients[0].until(lambda m: m["type"] == "Results")
    t0 = time.monotonic()
    stop = asyncio.create_task(asyncio.to_thread(srv.stop, sig))
    closes = await asyncio.gather(*(c.drain() for c in clients))
    assert all(code == 1001 for code, _ in closes), closes
    assert await stop == 0
    assert time.monotonic() - t0 < 10


async def test_sigterm_closes_connections_1001_and_exits_0():
    await shutdown_with(signal.SIGTERM)


async def test_sigint_closes_connections_1001_and_exits_0():
    await shutdown_with(signal.SIGINT)


async def test_sigterm_on_the_poll_loop_closes_connections_1001_and_exits_0():
    # --event-loop poll: the fallback stops through lws_service, not ev_break
    await shutdown_with(signal.SIGTERM, "--event-loop", "poll")


async def test_unknown_event_loop_is_refused():
    srv = subprocess.run([server_binary(), "--event-loop", "select"], capture_output=True,
                         text=True, timeout=10)
    assert srv.returncode == 2 and "--event-loop" in srv.stderr, (srv.returncode, srv.stderr)


async def test_idle_server_exits_at_once():
    srv = Server()
    t0 = time.monotonic()
    assert srv.stop() == 0
    assert time.monotonic() - t0 < 5


if __name__ == "__main__":
    run_tests(collect(globals()))
