"""steno-chaos reset toxic and reset endpoints: exact byte counts, then a real RST."""

import os
import signal
import time
import unittest

from chaos_harness import ChaosTest, pattern, read_all, recv_exactly, recv_until_end, source

PAYLOAD = pattern(100 * 1024)


class ResetAfterBytesDownstream(ChaosTest):
    upstream_handler = staticmethod(source(PAYLOAD))

    def test_delivers_exactly_n_bytes_then_connection_reset(self):
        self.proxy.add_toxic(type="reset", after_bytes=1000, direction="downstream")
        s = self.connect()
        s.sendall(b"go")
        data, end = recv_until_end(s)
        self.assertEqual(end, ConnectionResetError)
        self.assertEqual(data, PAYLOAD[:1000])
        # The upstream's socket was reset as well.
        self.up.wait(lambda rs: rs and rs[0].get("done"), what="upstream to see the end")
        self.assertEqual(self.up.records[0]["end"], ConnectionResetError)

class ResetAfterBytesUpstream(ChaosTest):
    upstream_handler = staticmethod(read_all)

    def test_server_receives_exactly_n_bytes_then_reset(self):
        self.proxy.add_toxic(type="reset", after_bytes=1000, direction="upstream")
        s = self.connect()
        s.sendall(PAYLOAD[:5000])
        self.up.wait(lambda rs: rs and rs[0].get("done"), what="upstream to see the end")
        self.assertEqual(bytes(self.up.records[0]["received"]), PAYLOAD[:1000])
        self.assertEqual(self.up.records[0]["end"], ConnectionResetError)
        self.assertEqual(recv_until_end(s), (b"", ConnectionResetError))


class ResetByTimeAndCommand(ChaosTest):
    def test_byte_count_starts_when_the_toxic_applies(self):
        s = self.connect()
        s.sendall(PAYLOAD[:4000])
        self.assertEqual(recv_exactly(s, 4000), PAYLOAD[:4000])
        self.proxy.add_toxic(type="reset", after_bytes=500, direction="downstream")
        s.sendall(PAYLOAD[4000:6000])
        data, end = recv_until_end(s)
        self.assertEqual(end, ConnectionResetError)
        self.assertEqual(data, PAYLOAD[4000:4500])

    def test_reset_after_ms_resets_that_long_after_accept(self):
        self.proxy.add_toxic(type="reset", after_ms=300)
        t = time.monotonic()
        s = self.connect()
        s.sendall(b"ping")
        self.assertEqual(recv_exactly(s, 4), b"ping")
        self.assertEqual(recv_until_end(s), (b"", ConnectionResetError))
        self.assertGreaterEqual(time.monotonic() - t, 0.300)

    def test_reset_without_parameters_resets_new_connections_at_once(self):
        self.proxy.add_toxic(type="reset")
        # The RST can beat the client's connect() to the finish line.
        try:
            s = self.connect()
        except ConnectionResetError:
            return
        self.assertEqual(recv_until_end(s), (b"", ConnectionResetError))

    def test_post_reset_resets_only_that_connection(self):
        a, b = self.connect(), self.connect()
        self.rtt(a)
        self.rtt(b)
        cid = self.proxy.connection_of(a)["id"]
        status, body = self.proxy.api("POST", "/connections/%d/reset" % cid)
        self.assertEqual((status, body), (200, {"reset": 1}))
        self.assertEqual(recv_until_end(a), (b"", ConnectionResetError))
        self.rtt(b)
        self.assertEqual(self.proxy.api("GET", "/connections/%d" % cid)[0], 404)

    def test_reset_all_resets_every_connection_and_new_ones_work(self):
        socks = [self.connect() for _ in range(3)]
        for s in socks:
            self.rtt(s)
        self.assertEqual(self.proxy.api("POST", "/reset-all"), (200, {"reset": 3}))
        for s in socks:
            self.assertEqual(recv_until_end(s), (b"", ConnectionResetError))
        self.rtt(self.connect())

    def test_sigusr1_resets_every_connection(self):
        socks = [self.connect() for _ in range(2)]
        for s in socks:
            self.rtt(s)
        os.kill(self.proxy.proc.pid, signal.SIGUSR1)
        for s in socks:
            self.assertEqual(recv_until_end(s), (b"", ConnectionResetError))
        self.rtt(self.connect())


if __name__ == "__main__":
    unittest.main()
