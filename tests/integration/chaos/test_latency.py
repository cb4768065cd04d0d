"""steno-chaos latency toxic: delays are lower bounds, per direction, and add up."""

import time
import unittest

from chaos_harness import ChaosTest, recv_exactly, pattern


class Latency(ChaosTest):
    def test_downstream_latency_delays_every_reply(self):
        s = self.connect()
        self.rtt(s)
        self.proxy.add_toxic(type="latency", latency_ms=150, direction="downstream")
        for _ in range(3):
            self.assertGreaterEqual(self.rtt(s), 0.150)
        conn = self.proxy.connection_of(s)
        self.assertEqual(conn["delays_ms"]["downstream"], [150, 150, 150])
        self.assertEqual(conn["delays_ms"]["upstream"], [])

    def test_upstream_latency_delays_data_to_the_server(self):
        s = self.connect()
        self.proxy.add_toxic(type="latency", latency_ms=150, direction="upstream")
        t = time.monotonic()
        s.sendall(b"hello")
        self.up.wait(lambda rs: rs and bytes(rs[0]["received"]) == b"hello",
                     what="upstream to receive hello")
        self.assertGreaterEqual(time.monotonic() - t, 0.150)
        self.assertEqual(recv_exactly(s, 5), b"hello")

    def test_both_directions_delay_the_round_trip_twice(self):
        s = self.connect()
        self.proxy.add_toxic(type="latency", latency_ms=100)
        self.assertGreaterEqual(self.rtt(s), 0.200)

    def test_latencies_of_two_toxics_add_up(self):
        s = self.connect()
        self.proxy.add_toxic(type="latency", latency_ms=80, direction="downstream")
        self.proxy.add_toxic(type="latency", latency_ms=80, direction="downstream")
        self.assertGreaterEqual(self.rtt(s), 0.160)

    def test_jitter_stays_within_bounds_and_varies(self):
        s = self.connect()
        self.proxy.add_toxic(type="latency", latency_ms=60, jitter_ms=40,
                             direction="downstream")
        for _ in range(8):
            self.assertGreaterEqual(self.rtt(s), 0.020)
        delays = self.proxy.connection_of(s)["delays_ms"]["downstream"]
        self.assertEqual(len(delays), 8)
        self.assertTrue(all(20 <= d <= 100 for d in delays), delays)
        self.assertGreater(len(set(delays)), 1, delays)

    def test_jitter_never_reorders_bytes(self):
        s = self.connect()
        self.proxy.add_toxic(type="latency", latency_ms=30, jitter_ms=30)
        sent = b"".join(b"%04d" % i + pattern(60, i) for i in range(100))
        for i in range(100):
            s.sendall(sent[i * 64:(i + 1) * 64])
        self.assertEqual(recv_exactly(s, len(sent)), sent)

    def test_removing_the_toxic_removes_the_delay(self):
        s = self.connect()
        self.proxy.add_toxic(name="slow", type="latency", latency_ms=300,
                             direction="downstream")
        self.assertGreaterEqual(self.rtt(s), 0.300)
        self.proxy.remove_toxic("slow")
        self.assertLess(self.rtt(s), 0.300)


class LatencyFromCommandLine(ChaosTest):
    proxy_args = ("--toxic", "type=latency,latency_ms=120,direction=upstream")

    def test_cli_toxic_applies_to_new_connections(self):
        status, toxics = self.proxy.api("GET", "/toxics")
        self.assertEqual(status, 200)
        self.assertEqual(toxics, [{"name": "latency_1", "type": "latency",
                                   "direction": "upstream", "connection": None,
                                   "latency_ms": 120, "jitter_ms": 0}])
        s = self.connect()
        self.assertGreaterEqual(self.rtt(s), 0.120)


if __name__ == "__main__":
    unittest.main()
