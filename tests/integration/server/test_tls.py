#!/usr/bin/python3
"""test_tls: with --tls-cert/--tls-key the server speaks wss:// (and still
validates, records and answers like over ws://). Skipped (77) when the
openssl command is not there to make a throwaway certificate."""

import os
import shutil
import subprocess
import sys
import tempfile

import websockets

from server_harness import QUERY, RATE, SKIP, Client, Server, collect, pcm, run_tests

srv = None


async def test_wss_session_works_end_to_end():
    c = await Client.connect(srv)
    await c.audio(pcm(RATE))
    await c.control("CloseStream")
    assert (await c.drain())[0] == 1000
    assert [m["type"] for m in c.messages] == ["Results", "Metadata"]
    rec = await srv.record_closed(c.request_id)
    assert rec["audio_bytes"] == 2 * RATE


async def test_wss_handshake_errors_carry_deepgram_headers():
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        await websockets.connect(srv.url("encoding=linear16"), ssl=ctx, open_timeout=20)
        raise AssertionError("handshake accepted")
    except websockets.InvalidStatusCode as e:
        assert e.status_code == 400 and e.headers["dg-request-id"] and e.headers["dg-error"]


if __name__ == "__main__":
    if not shutil.which("openssl"):
        print("openssl not found: skipping")
        sys.exit(SKIP)
    with tempfile.TemporaryDirectory() as d:
        cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", cert],
                       check=True, capture_output=True)
        with Server("--tls-cert", cert, "--tls-key", key, tls=True) as srv:
            run_tests(collect(globals()))
