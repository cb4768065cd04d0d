"""steno-chaos bandwidth toxic: throughput stays under the configured rate."""

import time
import unittest

from chaos_harness import ChaosTest, pattern, read_all, recv_exactly, source

PAYLOAD = pattern(200 * 1024)


class DownstreamBandwidth(ChaosTest):
    upstream_handler = staticmethod(source(PAYLOAD))
    proxy_args = ("--toxic", "type=bandwidth,bytes_per_s=102400,direction=downstream")

    def test_200k_at_100k_per_second_takes_at_least_1_8_s(self):
        t = time.monotonic()
        s = self.connect()
        s.sendall(b"go")
        self.assertEqual(recv_exactly(s, len(PAYLOAD), timeout=30), PAYLOAD)
        self.assertGreaterEqual(time.monotonic() - t, 1.8)


class UpstreamBandwidth(ChaosTest):
    upstream_handler = staticmethod(read_all)

    def test_lowest_of_two_rates_limits_client_to_server(self):
        self.proxy.add_toxic(type="bandwidth", bytes_per_s=1024 * 1024, direction="upstream")
        self.proxy.add_toxic(type="bandwidth", bytes_per_s=100 * 1024, direction="upstream")
        s = self.connect()
        data = PAYLOAD[:100 * 1024]
        t = time.monotonic()
        s.sendall(data)
        self.up.wait(lambda rs: rs and len(rs[0]["received"]) == len(data), timeout=30,
                     what="upstream to receive 100 KiB")
        self.assertGreaterEqual(time.monotonic() - t, 0.9)
        self.assertEqual(bytes(self.up.records[0]["received"]), data)

    def test_other_direction_is_not_limited(self):
        self.proxy.add_toxic(type="bandwidth", bytes_per_s=1024, direction="downstream")
        s = self.connect()
        data = PAYLOAD[:100 * 1024]
        t = time.monotonic()
        s.sendall(data)
        self.up.wait(lambda rs: rs and len(rs[0]["received"]) == len(data),
                     what="upstream to receive 100 KiB")
        # At the 1 KiB/s downstream rate this would take 100 s.
        self.assertLess(time.monotonic() - t, 10)


if __name__ == "__main__":
    unittest.main()
