"""steno-chaos plumbing: half-close, resets passed on, unreachable upstream,
signals, and an idle proxy that stays idle."""

import signal
import socket
import struct
import time
import unittest

from chaos_harness import (ChaosTest, Proxy, free_port, pattern, process_cpu_seconds,
                           raise_nofile, read_all, recv_until_end)


def collect_then_reply(up, s, rec):
    """Reads to EOF, then sends back everything it got, reversed, and closes."""
    data = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        data += d
    up.set(rec, end="eof")
    s.sendall(data[::-1])
    s.close()


def greet_then_half_close(up, s, rec):
    """Sends a greeting and its FIN first, then keeps reading the client."""
    s.sendall(b"hello")
    s.shutdown(socket.SHUT_WR)
    read_all(up, s, rec)


def reset_after_first_read(up, s, rec):
    up.add_received(rec, s.recv(65536))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    up.set(rec, end="reset sent")


class ClientHalfClose(ChaosTest):
    upstream_handler = staticmethod(collect_then_reply)

    def test_client_fin_reaches_server_and_the_reply_still_flows_back(self):
        s = self.connect()
        data = pattern(300000)
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        self.assertEqual(recv_until_end(s), (data[::-1], "eof"))
        self.up.wait(lambda rs: rs and rs[0]["end"] == "eof", what="upstream EOF")


class ServerHalfClose(ChaosTest):
    upstream_handler = staticmethod(greet_then_half_close)

    def test_server_fin_reaches_client_and_the_client_can_still_send(self):
        s = self.connect()
        self.assertEqual(recv_until_end(s), (b"hello", "eof"))
        s.sendall(b"late data")
        s.shutdown(socket.SHUT_WR)
        self.up.wait(lambda rs: rs and rs[0]["end"] == "eof", what="upstream EOF")
        self.assertEqual(bytes(self.up.records[0]["received"]), b"late data")


class PeerResets(ChaosTest):
    upstream_handler = staticmethod(reset_after_first_read)

    def test_server_rst_is_passed_on_to_the_client(self):
        s = self.connect()
        s.sendall(b"x")
        self.assertEqual(recv_until_end(s), (b"", ConnectionResetError))


class EchoRobustness(ChaosTest):
    def test_client_rst_resets_the_server_side(self):
        s = self.connect()
        self.rtt(s)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
        self.socks.remove(s)
        self.up.wait(lambda rs: rs[0].get("done"), what="upstream to see the end")
        self.assertEqual(self.up.records[0]["end"], ConnectionResetError)

    def test_idle_connections_cost_no_cpu(self):
        socks = [self.connect() for _ in range(20)]
        for s in socks:
            self.rtt(s)
        self.proxy.add_toxic(type="bandwidth", bytes_per_s=10)
        cpu = process_cpu_seconds(self.proxy.proc.pid)
        time.sleep(1.0)  # measuring idleness needs a stretch of idle time
        self.assertLess(process_cpu_seconds(self.proxy.proc.pid) - cpu, 0.3)

    def test_sigint_with_open_connections_exits_0(self):
        socks = [self.connect() for _ in range(5)]
        for s in socks:
            self.rtt(s)
        self.assertEqual(self.proxy.stop(signal.SIGINT), 0)
        for s in socks:
            data, end = recv_until_end(s)
            self.assertEqual(data, b"")
            self.assertIn(end, ("eof", ConnectionResetError))


class UnreachableUpstream(unittest.TestCase):
    def test_connect_failure_closes_the_client_side(self):
        raise_nofile()
        proxy = Proxy(free_port(), "--verbose")
        try:
            for _ in range(3):
                with proxy.connect() as s:
                    self.assertEqual(recv_until_end(s), (b"", "eof"))
            self.assertEqual(proxy.api("GET", "/health")[1]["accepted"], 3)
        finally:
            self.assertEqual(proxy.stop(), 0)


if __name__ == "__main__":
    unittest.main()
