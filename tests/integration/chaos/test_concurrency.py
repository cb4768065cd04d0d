"""steno-chaos under load: 1,100 connections open at once all pass their data."""

import asyncio
import os
import resource
import unittest

from chaos_harness import CHAOS, WAIT, Proxy, raise_nofile, wait_for

N = 1100  # the proxy is meant to carry at least 1,100 connections


async def echo_handler(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


async def open_all(port, n):
    conns = []
    # Dial in batches so the listen backlog is never the thing under test.
    for start in range(0, n, 100):
        batch = [asyncio.open_connection("127.0.0.1", port)
                 for _ in range(start, min(n, start + 100))]
        conns += await asyncio.wait_for(asyncio.gather(*batch), WAIT)
    return conns


async def exchange(i, reader, writer):
    msg = (b"%06d:" % i) + os.urandom(1000)
    writer.write(msg)
    await writer.drain()
    return await asyncio.wait_for(reader.readexactly(len(msg)), 30) == msg


class Concurrency(unittest.TestCase):
    def test_1100_concurrent_connections_pass_data(self):
        if not CHAOS:
            raise unittest.SkipTest("STENO_CHAOS not set")
        raise_nofile()
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        if hard < 2 * N + 200:
            raise unittest.SkipTest("RLIMIT_NOFILE hard limit %d is below %d" % (hard, 2 * N + 200))
        asyncio.run(self.run_load())

    async def run_load(self):
        server = await asyncio.start_server(echo_handler, "127.0.0.1", 0, backlog=2048)
        up_port = server.sockets[0].getsockname()[1]
        proxy = Proxy(up_port)
        loop = asyncio.get_running_loop()
        try:
            conns = await open_all(proxy.port, N)
            # Every connection is open at the proxy at the same time...
            health = await loop.run_in_executor(
                None, lambda: wait_for(
                    lambda: (lambda h: h if h["connections"] == N else None)(
                        proxy.api("GET", "/health")[1]),
                    what="%d live connections" % N))
            self.assertEqual(health["accepted"], N)
            # ...and each one carries its own bytes, all at once.
            ok = await asyncio.gather(*(exchange(i, r, w) for i, (r, w) in enumerate(conns)))
            self.assertEqual(ok.count(True), N)
            listing = await loop.run_in_executor(None, proxy.connections)
            self.assertEqual(len(listing), N)
            self.assertTrue(all(c["bytes_up"] == 1007 and c["bytes_down"] == 1007
                                for c in listing))
            for _, w in conns:
                w.close()
            await loop.run_in_executor(
                None, lambda: wait_for(lambda: proxy.api("GET", "/health")[1]["connections"]
                                       == 0, what="all connections to close"))
        finally:
            rc = await loop.run_in_executor(None, proxy.stop)
            server.close()
            await server.wait_closed()
        self.assertEqual(rc, 0)


if __name__ == "__main__":
    unittest.main()
