#!/usr/bin/python3
"""test_robustness: hostile clients cannot crash or wedge steno-server:
garbage bytes instead of HTTP, half-sent handshakes, oversized and
over-numerous query parameters, invalid WebSocket frames, garbage on the
control port; afterwards the server still serves a normal session and
exits cleanly (so sanitizer builds prove no memory errors either)."""

import asyncio
import os
import random

import websockets

from server_harness import QUERY, RATE, Client, Server, collect, pcm, run_tests

srv = None

UPGRADE = ("GET /v1/listen?%s HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
           "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")


async def raw(port, data, read=True):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    try:
        await writer.drain()
        out = await asyncio.wait_for(reader.read(65536), 10) if read else b""
    except (ConnectionError, asyncio.TimeoutError):
        out = b""
    writer.close()
    return out


async def healthy():
    assert srv.get("/health")["status"] == "ok"
    c = await Client.connect(srv)
    await c.audio(pcm(RATE))
    await c.control("CloseStream")
    assert (await c.drain())[0] == 1000


async def test_garbage_instead_of_http():
    rng = random.Random(5)
    for _ in range(20):
        await raw(srv.port, rng.randbytes(rng.randint(1, 5000)))
    await raw(srv.port, b"\r\n" * 1000)
    await healthy()


async def test_half_sent_handshakes_are_dropped():
    writers = []
    for _ in range(20):
        _, w = await asyncio.open_connection("127.0.0.1", srv.port)
        w.write(b"GET /v1/listen?model=nova-3 HTTP/1.1\r\nHost: x\r\n")
        writers.append(w)
    await healthy()
    for w in writers:
        w.close()


async def test_too_many_and_too_long_parameters():
    # lws 4.1.6 keeps at most 95 header and query fragments per request and
    # drops a request with more without an answer; either way, no upgrade.
    many = QUERY + "".join("&tag=t%d" % i for i in range(300))
    out = await raw(srv.port, (UPGRADE % many).encode())
    assert not out.startswith(b"HTTP/1.1 101"), out[:200]
    long = QUERY + "&keyterm=" + "x" * 40000
    out = await raw(srv.port, (UPGRADE % long).encode())
    assert not out.startswith(b"HTTP/1.1 101"), out[:200]
    ok = QUERY + "".join("&keyterm=term%03d" % i for i in range(60))
    c = await Client.connect(srv, ok)
    await c.close()
    await healthy()


async def test_invalid_websocket_frames():
    for frame in (b"\x8f\x80\x00\x00\x00\x00",           # reserved opcode
                  b"\x02\xff" + b"\x7f" * 8,              # absurd 64-bit length
                  b"\x82\x7e\x00\x10",                   # unmasked, truncated
                  os.urandom(2000)):
        out = await raw(srv.port, (UPGRADE % QUERY).encode() + frame)
        assert out.startswith(b"HTTP/1.1 101"), out[:100]
    await healthy()


async def test_client_that_never_reads_results():
    c = await Client.connect(srv, QUERY + "&interim_results=true", max_queue=1)
    for i in range(30):
        await c.audio(pcm(RATE // 4, seed=i))
    c.ws.transport.abort()
    await srv.record_closed(c.request_id)
    await healthy()


async def test_garbage_on_the_control_port():
    rng = random.Random(6)
    for _ in range(10):
        await raw(srv.cport, rng.randbytes(rng.randint(1, 3000)))
    await raw(srv.cport, b"POST /faults HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n{\"a\"", read=False)
    out = await raw(srv.cport, b"POST /faults HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\n{{{{{{{{{")
    assert b" 400 " in out.split(b"\r\n")[0], out[:100]
    await healthy()


if __name__ == "__main__":
    with Server() as srv:
        run_tests(collect(globals()))
