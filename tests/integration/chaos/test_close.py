"""steno-chaos close toxic: a clean FIN to both sides, at once or after N bytes or ms."""

import time
import unittest

from chaos_harness import ChaosTest, pattern, recv_until_end, wait_for

PAYLOAD = pattern(100 * 1024)


class Close(ChaosTest):
    def test_close_without_parameters_gives_new_connections_a_clean_eof(self):
        self.proxy.add_toxic(type="close")
        s = self.connect()
        self.assertEqual(recv_until_end(s), (b"", "eof"))

    def test_close_after_bytes_delivers_exactly_n_then_eof_both_ways(self):
        self.proxy.add_toxic(type="close", after_bytes=500, direction="downstream")
        s = self.connect()
        s.sendall(PAYLOAD[:3000])
        self.assertEqual(recv_until_end(s), (PAYLOAD[:500], "eof"))
        self.up.wait(lambda rs: rs and rs[0]["end"] == "eof", what="upstream to see a FIN")
        s.close()

    def test_close_after_ms(self):
        self.proxy.add_toxic(type="close", after_ms=300)
        t = time.monotonic()
        s = self.connect()
        self.rtt(s)
        self.assertEqual(recv_until_end(s), (b"", "eof"))
        self.assertGreaterEqual(time.monotonic() - t, 0.300)
        self.up.wait(lambda rs: rs and rs[0]["end"] == "eof", what="upstream to see a FIN")

    def test_close_scoped_to_a_live_connection_spares_the_others(self):
        a, b = self.connect(), self.connect()
        self.rtt(a)
        self.rtt(b)
        cid = self.proxy.connection_of(a)["id"]
        self.proxy.add_toxic(type="close", connection=cid)
        self.assertEqual(recv_until_end(a), (b"", "eof"))
        self.rtt(b)
        a.close()  # the proxy keeps reading until the client's FIN, so its close sends no RST
        bid = self.proxy.connection_of(b)["id"]
        wait_for(lambda: [c["id"] for c in self.proxy.connections()] == [bid],
                 what="only the other connection to remain")


if __name__ == "__main__":
    unittest.main()
