"""steno-chaos control API and command line: answers, and precise errors."""

import json
import random
import socket
import subprocess
import unittest

from chaos_harness import CHAOS, WAIT, ChaosTest, free_port


def raw_request(port, data):
    """Sends raw bytes to the control port; returns (status, headers text, JSON body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as s:
        s.sendall(data)
        buf = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            buf += d
    head, _, body = buf.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, head.decode(), json.loads(body)


class ControlApi(ChaosTest):
    def test_health_reports_addresses_and_seed(self):
        status, h = self.proxy.api("GET", "/health")
        self.assertEqual(status, 200)
        self.assertEqual(h["status"], "ok")
        self.assertEqual(h["listen"], self.proxy.info["listening"])
        self.assertEqual(h["upstream"], "127.0.0.1:%d" % self.up.port)
        self.assertEqual(h["seed"], self.proxy.seed)
        self.assertEqual((h["connections"], h["accepted"], h["toxics"]), (0, 0, 0))

    def test_connection_record_counts_bytes_each_way(self):
        s = self.connect()
        self.rtt(s, b"x" * 1000)
        c = self.proxy.connection_of(s)
        self.assertEqual((c["id"], c["state"]), (1, "open"))
        self.assertEqual((c["bytes_up"], c["bytes_down"]), (1000, 1000))
        self.assertEqual((c["received_up"], c["received_down"]), (1000, 1000))
        self.assertGreaterEqual(c["age_ms"], 0)
        status, one = self.proxy.api("GET", "/connections/1")
        self.assertEqual(status, 200)
        self.assertGreaterEqual(one.pop("age_ms"), c.pop("age_ms"))
        self.assertEqual(one, c)

    def test_toxics_list_add_delete_and_clear(self):
        t = self.proxy.add_toxic(name="a.b-c_1", type="reset", after_bytes=10, after_ms=5000,
                                 direction="upstream")
        self.assertEqual(t, {"name": "a.b-c_1", "type": "reset", "direction": "upstream",
                             "connection": None, "after_bytes": 10, "after_ms": 5000})
        u = self.proxy.add_toxic(type="bandwidth", bytes_per_s=1000)
        self.assertEqual(u["name"], "bandwidth_1")
        v = self.proxy.add_toxic(type="blackhole", mode="discard", connection=7)
        self.assertEqual((v["mode"], v["connection"], v["direction"]), ("discard", 7, "both"))
        self.assertEqual(self.proxy.api("GET", "/toxics"), (200, [t, u, v]))
        self.assertEqual(self.proxy.api("DELETE", "/toxics/bandwidth_1"), (200, {"removed": 1}))
        self.assertEqual(self.proxy.api("DELETE", "/toxics"), (200, {"removed": 2}))
        self.assertEqual(self.proxy.api("GET", "/toxics"), (200, []))

    def test_bad_toxics_are_rejected_with_400_and_a_message(self):
        bad = [
            (b"{not json", "not valid JSON"),
            (b"[]", "JSON object"),
            (b"", "not valid JSON"),
            ({}, "missing 'type'"),
            ({"type": 3}, "'type' must be a string"),
            ({"type": "lag"}, "unknown toxic type 'lag'"),
            ({"type": "latency"}, "needs 'latency_ms'"),
            ({"type": "latency", "latency": 5}, "unknown key 'latency'"),
            ({"type": "latency", "latency_ms": -1}, "'latency_ms' must be a whole number"),
            ({"type": "latency", "latency_ms": 1.5}, "'latency_ms' must be a whole number"),
            ({"type": "latency", "latency_ms": "5"}, "'latency_ms' must be a number"),
            ({"type": "latency", "latency_ms": 5, "direction": "up"}, "'direction' must be"),
            ({"type": "bandwidth", "bytes_per_s": 0}, "'bytes_per_s' must be"),
            ({"type": "bandwidth", "after_bytes": 5}, "unknown key 'after_bytes'"),
            ({"type": "blackhole", "mode": "eat"}, "'mode' must be stall or discard"),
            ({"type": "close", "connection": 0}, "'connection' must be"),
            ({"type": "close", "name": "has space"}, "'name' must be"),
            ({"type": "close", "name": "x" * 64}, "'name' must be"),
        ]
        for body, msg in bad:
            status, reply = self.proxy.api("POST", "/toxics", body)
            self.assertEqual(status, 400, body)
            self.assertIn(msg, reply["error"], body)
        self.assertEqual(self.proxy.api("GET", "/toxics"), (200, []))

    def test_duplicate_name_is_409(self):
        self.proxy.add_toxic(name="x", type="close")
        status, reply = self.proxy.api("POST", "/toxics", {"name": "x", "type": "reset"})
        self.assertEqual(status, 409)
        self.assertIn("'x' exists", reply["error"])

    def test_unknown_things_are_404_and_bad_ids_400(self):
        cases = [
            ("GET", "/nope", 404), ("GET", "/", 404), ("DELETE", "/toxics/none", 404),
            ("GET", "/connections/999", 404), ("POST", "/connections/999/reset", 404),
            ("GET", "/connections/abc", 400), ("GET", "/connections/0", 400),
            ("POST", "/connections/-1/reset", 400), ("POST", "/connections/1/kill", 404),
        ]
        for method, path, want in cases:
            status, reply = self.proxy.api(method, path, b"" if method == "POST" else None)
            self.assertEqual(status, want, (method, path))
            self.assertIsInstance(reply["error"], str)

    def test_wrong_method_is_405_with_allow(self):
        status, head, reply = raw_request(self.proxy.control_port,
                                          b"PUT /toxics HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(status, 405)
        self.assertIn("Allow: GET, POST, DELETE", head)
        status, head, _ = raw_request(self.proxy.control_port,
                                      b"GET /reset-all HTTP/1.1\r\n\r\n")
        self.assertEqual(status, 405)
        self.assertIn("Allow: POST", head)

    def test_malformed_http_is_400(self):
        for req in (b"garbage\r\n\r\n", b"GET /health\r\n\r\n", b"GET health HTTP/1.1\r\n\r\n",
                    b"GET /health SPDY/3\r\n\r\n", b"GET /health HTTP/1.1 extra\r\n\r\n",
                    b"POST /toxics HTTP/1.1\r\nContent-Length: x\r\n\r\n",
                    b"POST /toxics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"):
            status, head, reply = raw_request(self.proxy.control_port, req)
            self.assertEqual(status, 400, req)
            self.assertIn("Content-Type: application/json", head)
            self.assertIsInstance(reply["error"], str)

    def test_oversized_body_is_413(self):
        status, _, reply = raw_request(
            self.proxy.control_port,
            b"POST /toxics HTTP/1.1\r\nContent-Length: 100000000\r\n\r\n")
        self.assertEqual(status, 413)

    def test_head_over_16_kib_is_431(self):
        status, _, _ = raw_request(self.proxy.control_port,
                                   b"GET /health HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n")
        self.assertEqual(status, 431)

    def test_random_garbage_never_hurts_the_proxy(self):
        rng = random.Random(7)
        pieces = [b"GET ", b"POST ", b"DELETE ", b"/toxics", b"/connections/", b"1", b"/reset",
                  b" HTTP/1.1", b"\r\n", b"Content-Length: ", b"5", b"Expect: 100-continue",
                  b"{", b"}", b'"type":', b'"latency"', b"\x00", b"\xff", b" ", b":"]
        for _ in range(300):
            data = b"".join(rng.choice(pieces) for _ in range(rng.randrange(1, 30)))
            with socket.create_connection(("127.0.0.1", self.proxy.control_port)) as s:
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)
                s.settimeout(WAIT)
                reply = s.recv(65536)
                self.assertTrue(reply == b"" or reply.startswith(b"HTTP/1.1 "), (data, reply))
        self.assertEqual(self.proxy.api("GET", "/health")[0], 200)

    def test_idle_control_clients_cannot_lock_out_the_api(self):
        idle = [socket.create_connection(("127.0.0.1", self.proxy.control_port))
                for _ in range(100)]
        try:
            self.assertEqual(self.proxy.api("GET", "/health")[0], 200)
        finally:
            for s in idle:
                s.close()

    def test_body_may_arrive_after_the_head(self):
        body = b'{"type":"close","name":"late"}'
        with socket.create_connection(("127.0.0.1", self.proxy.control_port)) as s:
            s.sendall(b"POST /toxics HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(body))
            s.sendall(body[:5])
            s.sendall(body[5:])
            self.assertTrue(s.recv(4096).startswith(b"HTTP/1.1 201 Created\r\n"))


class CommandLine(unittest.TestCase):
    def run_chaos(self, *args):
        if not CHAOS:
            raise unittest.SkipTest("STENO_CHAOS not set")
        return subprocess.run([CHAOS, *args], capture_output=True, text=True, timeout=WAIT)

    def test_help_documents_the_api_and_exits_0(self):
        r = self.run_chaos("--help")
        self.assertEqual(r.returncode, 0)
        for word in ("--listen", "--upstream", "--control", "--seed", "--toxic",
                     "POST   /toxics", "DELETE /toxics/NAME", "/reset-all", "blackhole"):
            self.assertIn(word, r.stdout)

    def test_usage_errors_exit_2_with_a_message(self):
        port = "127.0.0.1:%d" % free_port()
        cases = [
            ((), "--listen and --upstream are required"),
            (("--listen", port), "--listen and --upstream are required"),
            (("--listen", "nocolon", "--upstream", port), "expected HOST:PORT"),
            (("--listen", port, "--upstream", port, "--seed", "x"), "--seed"),
            (("--listen", port, "--upstream", port, "--toxic", "type=lag"), "unknown toxic"),
            (("--listen", port, "--upstream", port, "--toxic", "latency_ms"), "key=value"),
            (("--listen", port, "--upstream", port, "--bogus"), "Try 'steno-chaos --help'"),
        ]
        for args, msg in cases:
            r = self.run_chaos(*args)
            self.assertEqual(r.returncode, 2, args)
            self.assertIn(msg, r.stderr, args)
            self.assertEqual(r.stdout, "", args)

    def test_port_in_use_exits_1(self):
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            r = self.run_chaos("--listen", "127.0.0.1:%d" % port,
                               "--upstream", "127.0.0.1:%d" % free_port())
        self.assertEqual(r.returncode, 1)
        self.assertIn("Address already in use", r.stderr)


if __name__ == "__main__":
    unittest.main()
