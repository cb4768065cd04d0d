"""steno-chaos blackhole toxic: nothing passes, yet both sockets stay open."""

import socket
import unittest

from chaos_harness import (ChaosTest, process_cpu_seconds, recv_exactly, recv_until_end,
                           wait_for)

WINDOW = 1.0  # how long "nothing arrives" is watched


def assert_silent(test, s, window=WINDOW):
    """No data and no FIN for the whole window."""
    s.settimeout(window)
    with test.assertRaises(TimeoutError):
        d = s.recv(1)
        test.fail("received %r through a blackhole" % d)


class Blackhole(ChaosTest):
    def test_stall_delivers_nothing_keeps_sockets_open_and_lets_data_through_when_lifted(self):
        s = self.connect()
        self.rtt(s, b"before")
        self.proxy.add_toxic(name="bh", type="blackhole")
        s.sendall(b"stalled")
        assert_silent(self, s)
        self.assertEqual(bytes(self.up.records[0]["received"]), b"before")
        conns = self.proxy.connections()
        self.assertEqual([c["state"] for c in conns], ["open"])
        self.assertEqual(conns[0]["toxics"], ["bh"])
        s.sendall(b"-more")  # the client's socket is still open for writing
        self.proxy.remove_toxic("bh")
        self.assertEqual(recv_exactly(s, 12), b"stalled-more")

    def test_stall_hides_fin_and_uses_no_cpu(self):
        s = self.connect()
        self.rtt(s)
        self.proxy.add_toxic(name="bh", type="blackhole")
        s.shutdown(socket.SHUT_WR)
        # A half-closed peer the proxy does not read must not spin the loop.
        cpu = process_cpu_seconds(self.proxy.proc.pid)
        assert_silent(self, s)
        self.assertLess(process_cpu_seconds(self.proxy.proc.pid) - cpu, 0.3)
        self.assertIsNone(self.up.records[0]["end"], "upstream saw the FIN through a blackhole")
        self.proxy.remove_toxic("bh")
        self.assertEqual(recv_until_end(s), (b"", "eof"))
        self.up.wait(lambda rs: rs[0]["end"] == "eof", what="upstream to see the FIN")

    def test_discard_reads_and_drops(self):
        s = self.connect()
        self.rtt(s)
        self.proxy.add_toxic(name="bh", type="blackhole", mode="discard")
        s.sendall(b"x" * 100000)
        # The proxy reads (so the sender never blocks) and drops it all.
        wait_for(lambda: self.proxy.connection_of(s)["received_up"] == 4 + 100000,
                 what="proxy to read the discarded bytes")
        assert_silent(self, s, 0.3)
        self.assertEqual(bytes(self.up.records[0]["received"]), b"ping")
        self.proxy.remove_toxic("bh")
        self.rtt(s, b"after")  # nothing of the dropped data comes first

    def test_one_direction_only(self):
        s = self.connect()
        self.proxy.add_toxic(type="blackhole", direction="downstream")
        s.sendall(b"hello")
        self.up.wait(lambda rs: rs and bytes(rs[0]["received"]) == b"hello",
                     what="upstream to receive hello")
        assert_silent(self, s, 0.5)


if __name__ == "__main__":
    unittest.main()
