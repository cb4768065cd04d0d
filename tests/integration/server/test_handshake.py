#!/usr/bin/python3
"""test_handshake: steno-server validates /v1/listen upgrades like Deepgram:
bad query values get 400 with dg-error, bad credentials 401, other paths
404; every response carries a dg-request-id that the connection record and
the Results metadata repeat; the control API records every attempt."""

import asyncio
import json
import re

import websockets

from server_harness import QUERY, RATE, Client, Server, collect, pcm, run_tests

KEY = "sekrit-key-123"
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")

srv = None


AUTH = {"Authorization": "Token " + KEY}


async def expect_status(query, status, headers=AUTH, path="/v1/listen", contains=None):
    """Connects expecting an HTTP failure; returns (headers, record)."""
    try:
        ws = await websockets.connect(srv.url(query, path), extra_headers=headers,
                                      open_timeout=20)
    except websockets.InvalidStatusCode as e:
        assert e.status_code == status, "%s: got %d, want %d" % (query, e.status_code, status)
        h = e.headers
        rid = h.get("dg-request-id")
        assert rid and UUID.match(rid), "dg-request-id missing or not a UUID: %r" % rid
        err = h.get("dg-error")
        assert err, "dg-error missing on a %d" % status
        if contains:
            assert contains in err, "dg-error %r does not mention %r" % (err, contains)
        rec = await srv.record_closed(rid)
        assert rec["state"] == "rejected" and rec["handshake_status"] == status, rec
        assert rec["handshake_error"] == err
        return h, rec
    await ws.close()
    raise AssertionError("%s: handshake succeeded, want %d" % (query, status))


async def test_bad_values_get_400_with_dg_error():
    cases = [
        ("model=nova-3&encoding=mp3&sample_rate=16000", "encoding"),
        ("model=nova-3&encoding=mulaw&sample_rate=8000", "linear16"),
        ("model=nova-3&sample_rate=16000", "encoding"),
        ("model=nova-3&encoding=linear16", "sample_rate"),
        ("model=nova-3&encoding=linear16&sample_rate=abc", "sample_rate"),
        ("model=nova-3&encoding=linear16&sample_rate=96000", "sample_rate"),
        ("model=nova-9&encoding=linear16&sample_rate=16000", "model"),
        ("model=nova-3&encoding=linear16&sample_rate=16000&channels=2", "channels"),
        ("model=nova-3&encoding=linear16&sample_rate=16000&interim_results=yes",
         "interim_results"),
        ("model=nova-3&encoding=linear16&sample_rate=16000&punctuate=1", "punctuate"),
        ("model=nova-3&encoding=linear16&sample_rate=16000&endpointing=soon", "endpointing"),
        ("model=nova-3&encoding=linear16&sample_rate=16000&utterance_end_ms=1000",
         "interim_results"),
        ("model=nova-3&encoding=linear16&sample_rate=16000&interim_results=true"
         "&utterance_end_ms=10", "utterance_end_ms"),
        ("model=nova-3&encoding=linear16&sample_rate=16000&keywords=hello:2", "Keywords"),
        ("model=nova-2&encoding=linear16&sample_rate=16000&keyterm=hello", "Keyterm"),
        ("model=nova-2&encoding=linear16&sample_rate=16000&keywords=hello:loud", "keywords"),
        ("model=nova-3&encoding=linear16&sample_rate=16000&model=base", "Duplicate"),
        ("model=nova-3&encoding=linear16&sample_rate=16000&redact=everything", "redact"),
        ("model=nova-3&encoding=linear16&sample_rate=16000&language=e%20n", "language"),
    ]
    for query, word in cases:
        _, rec = await expect_status(query, 400, contains=word)
        assert rec["params"] is None


async def test_error_body_is_deepgram_json():
    # websockets does not expose the body: read it with a raw request.
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(("GET /v1/listen?encoding=linear16 HTTP/1.1\r\nHost: x\r\n"
                  "Authorization: Token %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n" % KEY).encode())
    raw = await asyncio.wait_for(reader.read(65536), 20)
    writer.close()
    head, body = raw.decode().split("\r\n\r\n", 1)
    assert head.startswith("HTTP/1.1 400 "), head
    obj = json.loads(body)
    assert set(obj) == {"err_code", "err_msg", "request_id"}, obj
    assert "sample_rate" in obj["err_msg"] and UUID.match(obj["request_id"])
    assert ("dg-request-id: " + obj["request_id"]) in head


async def test_missing_or_wrong_key_gets_401():
    await expect_status(QUERY, 401, headers={})
    await expect_status(QUERY, 401, headers={"Authorization": "Token wrong"})
    await expect_status(QUERY, 401, headers={"Authorization": KEY})
    await expect_status(QUERY, 401, headers={"Authorization": "Basic " + KEY})


async def test_token_and_bearer_are_accepted_and_redacted():
    for scheme in ("Token", "Bearer", "token"):
        c = await Client.connect(srv, headers={"Authorization": "%s %s" % (scheme, KEY)})
        await c.close()
        rec = await srv.record_closed(c.request_id)
        assert rec["handshake_status"] == 101
        assert rec["headers"]["authorization"] == scheme + " <redacted>", rec["headers"]
        assert KEY not in json.dumps(rec)


async def test_browser_subprotocol_credentials():
    # Browsers cannot set headers: Deepgram takes "token, KEY" as subprotocols.
    c = await Client.connect(srv, subprotocols=["token", KEY])
    assert c.ws.subprotocol == "token"
    await c.audio(pcm(RATE))
    await c.until(lambda m: m["type"] == "Results" and m["is_final"])
    await c.close()
    rec = await srv.record_closed(c.request_id)
    assert rec["headers"]["sec-websocket-protocol"] == "token, <redacted>", rec["headers"]
    assert KEY not in json.dumps(rec)
    try:
        await websockets.connect(srv.url(QUERY), subprotocols=["token", "wrong"], open_timeout=20)
        raise AssertionError("wrong subprotocol key accepted")
    except websockets.InvalidStatusCode as e:
        assert e.status_code == 401


async def test_other_paths_get_404():
    await expect_status(QUERY, 404, path="/v1/speak")
    await expect_status(QUERY, 404, path="/v2/listen")


async def test_request_id_is_shared_by_header_record_and_results():
    auth = {"Authorization": "Token " + KEY, "X-Steno-Session": "abc-123"}
    c = await Client.connect(srv, QUERY + "&tag=t1&tag=t2&diarize=false&no_such_param=1",
                             headers=auth)
    assert c.request_id and UUID.match(c.request_id)
    await c.audio(pcm(16000))
    await c.control("CloseStream")
    code, _ = await c.drain()
    assert code == 1000
    finals = c.finals()
    assert finals and all(m["metadata"]["request_id"] == c.request_id for m in finals)
    meta = [m for m in c.messages if m["type"] == "Metadata"]
    assert len(meta) == 1 and meta[0]["request_id"] == c.request_id
    rec = await srv.record_closed(c.request_id)
    assert rec["request_id"] == c.request_id and rec["handshake_status"] == 101
    assert rec["path"] == "/v1/listen"
    assert rec["query"] == QUERY + "&tag=t1&tag=t2&diarize=false&no_such_param=1", rec["query"]
    p = rec["params"]
    assert p["model"] == "nova-3" and p["sample_rate"] == 16000 and p["encoding"] == "linear16"
    assert p["channels"] == 1 and p["endpointing"] == 10 and p["utterance_end_ms"] is None
    assert p["other"]["diarize"] == "false" and p["ignored"] == ["no_such_param"], p
    assert rec["headers"]["x-steno-session"] == "abc-123", rec["headers"]
    assert rec["headers"]["host"].startswith("127.0.0.1:")


async def test_valid_options_are_parsed():
    auth = {"Authorization": "Token " + KEY}
    q = ("model=nova-2-general&language=en-US&encoding=linear16&sample_rate=8000&channels=1"
         "&interim_results=true&punctuate=true&smart_format=true&endpointing=false"
         "&utterance_end_ms=1500&vad_events=true&keywords=steno:2&keywords=deepgram")
    c = await Client.connect(srv, q, headers=auth)
    await c.close()
    rec = await srv.record_closed(c.request_id)
    p = rec["params"]
    assert p["model"] == "nova-2-general" and p["language"] == "en-US"
    assert p["sample_rate"] == 8000 and p["interim_results"] and p["punctuate"]
    assert p["smart_format"] and p["endpointing"] is False and p["utterance_end_ms"] == 1500
    assert p["vad_events"] and p["keywords"] == ["steno:2", "deepgram"], p
    q3 = QUERY + "&keyterm=steno&keyterm=live%20captions&endpointing=300"
    c = await Client.connect(srv, q3, headers=auth)
    await c.close()
    p = (await srv.record_closed(c.request_id))["params"]
    assert p["keyterm"] == ["steno", "live captions"] and p["endpointing"] == 300, p


async def test_plain_http_get_is_refused_with_request_id():
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(b"GET /v1/listen HTTP/1.1\r\nHost: x\r\n\r\n")
    raw = await asyncio.wait_for(reader.read(65536), 20)
    writer.close()
    head = raw.decode().split("\r\n\r\n", 1)[0]
    assert head.startswith("HTTP/1.1 426"), head
    assert "dg-request-id: " in head


async def test_strict_params_rejects_unknown_names():
    with Server("--strict-params") as strict:
        try:
            await websockets.connect(strict.url(QUERY + "&bogus=1"), open_timeout=20)
            raise AssertionError("unknown parameter accepted with --strict-params")
        except websockets.InvalidStatusCode as e:
            assert e.status_code == 400 and "bogus" in e.headers["dg-error"]
        c = await Client.connect(strict, QUERY + "&tag=x")
        await c.close()


if __name__ == "__main__":
    with Server("--api-key", KEY, "--record-header", "X-Steno-Session") as srv:
        run_tests(collect(globals()))
