"""steno-chaos toxic scope: global toxics reach current and future connections,
connection-scoped ones only their connection (even one not yet accepted)."""

import unittest

from chaos_harness import ChaosTest, recv_until_end


class Scope(ChaosTest):
    def test_latency_scoped_to_one_connection_spares_the_other(self):
        a, b = self.connect(), self.connect()
        cid = self.proxy.connection_of(a)["id"]
        toxic = self.proxy.add_toxic(type="latency", latency_ms=300, connection=cid)
        self.assertEqual(toxic["connection"], cid)
        self.assertGreaterEqual(self.rtt(a), 0.600)
        self.assertLess(self.rtt(b), 0.600)
        self.assertEqual(self.proxy.connection_of(b)["toxics"], [])
        self.assertEqual(self.proxy.connection_of(a)["toxics"], [toxic["name"]])

    def test_global_toxic_reaches_live_and_new_connections(self):
        a = self.connect()
        self.rtt(a)
        self.proxy.add_toxic(name="slow", type="latency", latency_ms=150,
                             direction="downstream")
        c = self.connect()
        self.assertGreaterEqual(self.rtt(a), 0.150)
        self.assertGreaterEqual(self.rtt(c), 0.150)
        for s in (a, c):
            self.assertEqual(self.proxy.connection_of(s)["toxics"], ["slow"])

    def test_deleting_a_scoped_toxic_leaves_global_ones(self):
        a = self.connect()
        cid = self.proxy.connection_of(a)["id"]
        self.proxy.add_toxic(name="mine", type="blackhole", connection=cid)
        self.proxy.add_toxic(name="all", type="latency", latency_ms=100, direction="upstream")
        self.assertEqual(self.proxy.connection_of(a)["toxics"], ["mine", "all"])
        self.proxy.remove_toxic("mine")
        self.assertGreaterEqual(self.rtt(a), 0.100)


class FutureConnectionScope(ChaosTest):
    # Connection ids count accepts from 1, so a test can aim at the second dial.
    proxy_args = ("--toxic", "name=second,type=reset,connection=2")

    def test_toxic_for_a_future_connection_id_hits_only_that_connection(self):
        first = self.connect()
        self.rtt(first)
        try:
            second = self.connect()
            self.assertEqual(recv_until_end(second), (b"", ConnectionResetError))
        except ConnectionResetError:
            pass  # the RST beat connect()
        third = self.connect()
        self.rtt(third)
        self.rtt(first)
        self.assertEqual([c["id"] for c in self.proxy.connections()], [1, 3])


if __name__ == "__main__":
    unittest.main()
