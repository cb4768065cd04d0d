"""steno-chaos seeded jitter: the same seed replays the same delays."""

import unittest

from chaos_harness import Proxy, Upstream, echo, raise_nofile

PINGS = 12


def jitter_run(seed):
    """Ping-pongs PINGS messages on connection 1; returns its logged delays."""
    up = Upstream(echo)
    proxy = Proxy(up.port, "--toxic", "type=latency,latency_ms=20,jitter_ms=15", seed=seed)
    try:
        with proxy.connect() as s:
            for i in range(PINGS):
                msg = b"ping %d" % i
                s.sendall(msg)
                got = b""
                while len(got) < len(msg):
                    got += s.recv(64)
                assert got == msg, got
            delays = proxy.connection_of(s)["delays_ms"]
        return proxy.seed, delays
    finally:
        rc = proxy.stop()
        up.close()
        assert rc == 0, rc


class Seed(unittest.TestCase):
    def setUp(self):
        raise_nofile()

    def test_same_seed_same_jitter_sequence(self):
        seed_a, a = jitter_run(12345)
        seed_b, b = jitter_run(12345)
        self.assertEqual(seed_a, "12345")
        self.assertEqual(len(a["upstream"]), PINGS)
        self.assertEqual(len(a["downstream"]), PINGS)
        self.assertTrue(all(5 <= d <= 35 for d in a["upstream"] + a["downstream"]), a)
        self.assertEqual(a, b)

    def test_other_seed_other_sequence(self):
        _, a = jitter_run(12345)
        _, b = jitter_run(54321)
        self.assertNotEqual(a, b)

    def test_seed_is_printed_when_not_given(self):
        up = Upstream(echo)
        proxy = Proxy(up.port)
        try:
            self.assertRegex(proxy.seed, r"^[0-9]+$")
            self.assertEqual(proxy.api("GET", "/health")[1]["seed"], proxy.seed)
        finally:
            self.assertEqual(proxy.stop(), 0)
            up.close()


if __name__ == "__main__":
    unittest.main()
