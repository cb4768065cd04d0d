#!/usr/bin/python3
"""make_corpus: writes the seed corpus of every fuzz target into corpus/<name>/.

The seeds are real protocol messages (Deepgram's AsyncAPI schemas for
/v1/listen, the local server's exact output), edge cases, and small programs
for the structured targets, encoded the way each fuzz_<name>.c reads its
input. Run it again after changing a target's input format; it replaces the
files it writes and leaves others alone.
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def compact(obj):
    # cJSON_PrintUnformatted's layout, as the local server sends it
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


# ---------------------------------------------------------------- deepgram_parse

META = {
    "request_id": "5d4c0f5e-8d9b-4a4e-9c1e-0a2b3c4d5e6f",
    "model_info": {"name": "2-general-nova", "version": "2024-01-18.26916", "arch": "nova-3"},
    "model_uuid": "c0d1e2f3-a4b5-4c6d-8e7f-8091a2b3c4d5",
}


def words(spec, speaker=None, punct=True, lang=None):
    out = []
    for w, s, e, c in spec:
        d = {"word": w, "start": s, "end": e, "confidence": c}
        if punct:
            d["punctuated_word"] = w.capitalize() if not out else w
        if speaker is not None:
            d["speaker"] = speaker
        if lang:
            d["language"] = lang
        out.append(d)
    return out


def results(start, duration, transcript, ws, is_final, speech_final=False, from_finalize=None,
            channel_index=(0, 1), extra=None):
    r = {
        "type": "Results",
        "channel_index": list(channel_index),
        "duration": duration,
        "start": start,
        "is_final": is_final,
        "speech_final": speech_final,
        "channel": {"alternatives": [{"transcript": transcript, "confidence": 0.9875, "words": ws}]},
        "metadata": META,
    }
    if from_finalize is not None:
        r["from_finalize"] = from_finalize
    if extra:
        r.update(extra)
    return r


def deepgram_parse():
    t = "deepgram_parse"
    hello = words([("hello", 0.08, 0.4, 0.99), ("world", 0.48, 0.9, 0.97)])
    write(t, "results_interim", compact(results(0.0, 1.02, "hello world", hello, False)))
    write(t, "results_final_speech_final",
          compact(results(0.0, 1.5, "Hello world.", hello, True, True, False)))
    write(t, "results_from_finalize",
          compact(results(12.5, 0.37, "", [], True, False, True)))
    write(t, "results_no_alternatives", compact({
        "type": "Results", "channel_index": [0, 1], "duration": 0.5, "start": 3.0,
        "is_final": True, "channel": {"alternatives": []}, "metadata": META}))
    write(t, "results_diarized", compact(results(
        4.0, 2.0, "yes it is", words([("yes", 4.1, 4.3, 0.9), ("it", 4.4, 4.5, 0.8),
                                      ("is", 4.5, 4.7, 0.95)], speaker=1, lang="en"), True)))
    write(t, "results_entities", compact(results(
        0.0, 2.0, "call john", words([("call", 0.1, 0.3, 0.9), ("john", 0.4, 0.8, 0.9)]), True,
        extra={"entities": [{"label": "NAME", "value": "John", "raw_value": "john",
                             "confidence": 0.9, "start_word": 1, "end_word": 2}]})))
    write(t, "results_multichannel", compact(results(1.0, 1.0, "hi", words([("hi", 1.1, 1.3, 0.9)]),
                                                     True, channel_index=(1, 2))))
    write(t, "results_pretty", json.dumps(results(0.25, 0.75, "ok", words([("ok", 0.3, 0.6, 0.5)]),
                                                  False), indent=2))
    # The local server's own layout (tools/server/messages.c), field order included.
    write(t, "server_results",
          '{"type":"Results","channel_index":[0,1],"duration":2.56,"start":0,"is_final":true,'
          '"speech_final":true,"channel":{"alternatives":[{"transcript":"go do you hear",'
          '"confidence":0.91,"words":[{"word":"go","start":0.31,"end":0.52,"confidence":0.93,'
          '"punctuated_word":"go"},{"word":"do","start":0.52,"end":0.7,"confidence":0.9,'
          '"punctuated_word":"do"},{"word":"you","start":0.7,"end":0.86,"confidence":0.92,'
          '"punctuated_word":"you"},{"word":"hear","start":0.86,"end":1.3,"confidence":0.88,'
          '"punctuated_word":"hear"}]}]},"metadata":{"request_id":"0b7e4f3a-1c2d-4e5f-8a9b-'
          '0c1d2e3f4a5b","model_info":{"name":"steno-pocketsphinx","version":"5prealpha",'
          '"arch":"pocketsphinx"},"model_uuid":"00000000-0000-4000-8000-000000000001"},'
          '"from_finalize":false}')
    write(t, "server_metadata",
          '{"type":"Metadata","transaction_key":"deprecated","request_id":"0b7e4f3a-1c2d-4e5f-'
          '8a9b-0c1d2e3f4a5b","sha256":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b'
          '7852b855","created":"2024-05-01T12:00:00.000Z","duration":12.48,"channels":1,'
          '"models":["00000000-0000-4000-8000-000000000001"],"model_info":{"00000000-0000-4000-'
          '8000-000000000001":{"name":"steno-pocketsphinx","version":"5prealpha","arch":'
          '"pocketsphinx"}}}')
    write(t, "server_speech_started", '{"type":"SpeechStarted","channel":[0,1],"timestamp":2.48}')
    write(t, "server_utterance_end", '{"type":"UtteranceEnd","channel":[0,1],"last_word_end":3.1}')
    # The server's "malformed" faults (tools/server/faults.c).
    write(t, "server_fault_truncated",
          '{"type":"Results","channel_index":[0,1],"duration":1.0,"start":0.0,"is_fi')
    write(t, "server_fault_wrong_types",
          '{"type":"Results","channel_index":"zero","duration":"1.0","start":null,'
          '"channel":{"alternatives":"none"}}')
    write(t, "server_fault_bogus", '{"type":"Bogus"}')
    # Spec examples of the other messages.
    write(t, "metadata_spec", compact({
        "type": "Metadata", "transaction_key": "deprecated", "request_id": META["request_id"],
        "sha256": "5324da68ede209a16ac69a38e8cd29cee4d754434a041166cda3a1f5e0b24566",
        "created": "2024-05-01T12:00:00.000Z", "duration": 25.933313, "channels": 1}))
    write(t, "utterance_end_spec", '{"type":"UtteranceEnd","channel":[0,1],"last_word_end":2.395}')
    write(t, "speech_started_spec", '{"type":"SpeechStarted","channel":[0],"timestamp":0.24}')
    # Error spellings over time.
    write(t, "error_err_code", '{"type":"Error","err_code":"INVALID_AUTH","err_msg":"Invalid '
          'credentials.","request_id":"5d4c0f5e-8d9b-4a4e-9c1e-0a2b3c4d5e6f"}')
    write(t, "error_variant", '{"type":"Error","variant":"DATA-0000","description":"Failed to '
          'process audio: the payload cannot be decoded as audio."}')
    write(t, "error_code_message", '{"type":"Error","code":"NET-0001","message":"No audio '
          'received within the timeout window."}')
    write(t, "error_bare", '{"type":"Error"}')
    # Edge cases.
    write(t, "edge_empty", "")
    write(t, "edge_null", "null")
    write(t, "edge_array", '[{"type":"Results"}]')
    write(t, "edge_type_null", '{"type":null}')
    write(t, "edge_type_number", '{"type":7}')
    write(t, "edge_type_nul_escape", '{"type":"Results\\u0000x","start":0,"duration":1}')
    write(t, "edge_control_messages", '{"type":"KeepAlive"}')
    write(t, "edge_numbers",
          '{"type":"Results","start":-0.0,"duration":1e-320,"channel_index":[1023.9],"channel":'
          '{"alternatives":[{"transcript":"x","confidence":1e308,"words":[{"word":"x","start":'
          '9007199254740993,"end":-1e308,"confidence":-0,"speaker":1e6}]}]}}')
    write(t, "edge_overflow", '{"type":"UtteranceEnd","last_word_end":1e400}')
    write(t, "edge_duplicate_keys",
          '{"type":"Bogus","type":"SpeechStarted","timestamp":1,"timestamp":"x"}')
    write(t, "edge_bom_ws", b"\xef\xbb\xbf \t\r\n{\"type\":\"SpeechStarted\",\"timestamp\":0}\n")
    write(t, "edge_utf8", '{"type":"Results","start":0,"duration":1,"channel":{"alternatives":'
          '[{"transcript":"caf\u00e9 \U0001F600 \\ud83d\\ude00 \\udc00","words":[{"word":'
          '"caf\u00e9","start":0,"end":0.5,"confidence":0.9}]}]}}')
    write(t, "edge_invalid_utf8", b'{"type":"Error","err_msg":"\xff\xfe\xc3\x28 \xed\xa0\x80"}')
    write(t, "edge_trailing_garbage", '{"type":"SpeechStarted","timestamp":1}{"type":"Error"}')
    write(t, "edge_nul_inside", b'{"type":"Metadata","duration":1}\x00{"junk"')
    deep = '{"type":"Results","x":' + "[" * 1100 + "]" * 1100 + "}"
    write(t, "edge_deep", deep)
    many = ",".join('{"word":"w","start":%d.0,"end":%d.5,"confidence":1}' % (i, i)
                    for i in range(120))
    write(t, "edge_many_words", '{"type":"Results","start":0,"duration":200,"is_final":true,'
          '"channel":{"alternatives":[{"transcript":"","words":[' + many + ']}]}}')
    write(t, "edge_punctuated_not_string", '{"type":"Results","start":0,"duration":1,"channel":'
          '{"alternatives":[{"words":[{"word":"a","punctuated_word":5,"start":0,"end":1}]}]}}')
    write(t, "edge_negative_duration", '{"type":"Results","start":0,"duration":-1,"channel":'
          '{"alternatives":[]}}')
    write(t, "edge_word_not_object", '{"type":"Results","start":0,"duration":1,"channel":'
          '{"alternatives":[{"words":[{"word":"a","start":0,"end":1},7]}]}}')


# ---------------------------------------------------------------- classify

HTTP = [0, 101, 200, 204, 301, 400, 401, 402, 403, 404, 405, 408, 413, 426, 429, 451, 499, 500,
        502, 503, 504, 599, 600, 99, -1, -500, 2**31 - 1, -2**31]
CLOSE = [0, 1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
         1015, 1016, 2999, 3000, 3003, 3005, 3006, 3007, 3008, 3009, 4000, 4001, 4399, 4400, 4401,
         4403, 4429, 4500, 4503, 4599, 4600, 4999, 5000, 999, -1, 65535, -2**31, 2**31 - 1]
PHASE = {"handshake": 0, "open": 1, "closing": 2}
TLS = {"ok": 0, "interrupted": 1, "certificate": 2}
NOW = 1714564800  # 2024-05-01T12:00:00Z


def classify_seed(phase="handshake", tls="ok", connect_timeout=False, liveness_timeout=False,
                  http=0, close=0, now=NOW, retry_after=None, reason=None, perr=None):
    sel = PHASE[phase] + 3 * TLS[tls] + (0x20 if connect_timeout else 0) + \
        (0x40 if liveness_timeout else 0)
    out = bytes([sel, HTTP.index(http), CLOSE.index(close)])
    if 1700000000 <= now < 1700000000 + 2**32:  # with the clock in ms too (250 ms in)
        out += bytes([0]) + struct.pack("<IH", now - 1700000000, 250)
    else:
        out += bytes([0xc0]) + struct.pack("<qq", now, now * 1000 if abs(now) < 2**53 else now)
    nulls = (1 if retry_after is None else 0) | (2 if reason is None else 0) | \
        (4 if perr is None else 0)
    out += bytes([nulls])
    strs = [s.encode() if isinstance(s, str) else (s or b"") for s in (retry_after, reason, perr)]
    return out + b"\0".join(strs)


def classify():
    t = "classify"
    c = classify_seed
    write(t, "http_401_dg_error", c(http=401, perr="Invalid credentials."))
    write(t, "http_402", c(http=402, perr="Project does not have enough credits."))
    write(t, "http_400_bad_option", c(http=400, perr="Bad Request: failed to parse query: "
                                      "unknown parameter 'modle'"))
    write(t, "http_429_retry_after", c(http=429, retry_after="30", perr="Too Many Requests"))
    write(t, "http_503_date", c(http=503, retry_after="Wed, 01 May 2024 12:00:45 GMT"))
    write(t, "http_503_rfc850", c(http=503, retry_after="Wednesday, 01-May-24 12:01:00 GMT"))
    write(t, "http_502_asctime", c(http=502, retry_after="Wed May  1 12:00:05 2024"))
    write(t, "http_408", c(http=408))
    write(t, "http_499", c(http=499))
    write(t, "http_200_not_ws", c(http=200))
    write(t, "close_1011_net_0001", c("open", close=1011, reason="NET-0001",
                                      perr="NET-0001: No audio received"))
    write(t, "close_1011_net_0000", c("open", close=1011, reason="NET-0000"))
    write(t, "close_1008_data_0000", c("open", close=1008, reason="DATA-0000"))
    write(t, "close_1002_data_0000_old", c("open", close=1002, reason="DATA-0000"))
    write(t, "close_1000_closing", c("closing", close=1000))
    write(t, "close_1000_unasked", c("open", close=1000))
    write(t, "close_1001_going_away", c("open", close=1001, retry_after="5"))
    write(t, "close_1006", c("open", close=1006))
    write(t, "close_1008_concurrency", c("open", close=1008,
                                         reason="Unauthorized Connection: Too many concurrent "
                                                "sessions"))
    write(t, "close_1008_rate", c("open", close=1008, reason="RATE-0000: receiving audio faster "
                                  "than the server accepts"))
    write(t, "close_1008_unauthorized", c("open", close=1008, reason="unauthorized"))
    write(t, "close_3009_assemblyai", c("open", close=3009, reason="Too many concurrent sessions"))
    write(t, "close_3007_assemblyai", c("open", close=3007, reason="Input duration violation"))
    write(t, "close_4429", c("open", close=4429))
    write(t, "close_4401", c("open", close=4401))
    write(t, "close_5000_invalid", c("open", close=5000))
    write(t, "tls_certificate", c(tls="certificate", perr="certificate verify failed"))
    write(t, "tls_interrupted", c(tls="interrupted"))
    write(t, "connect_timeout", c(connect_timeout=True))
    write(t, "liveness_timeout", c("open", liveness_timeout=True))
    write(t, "tcp_refused", c())
    write(t, "dropped_open", c("open", perr=""))
    write(t, "error_message_lost_close", c("open", perr="DATA-0000: Failed to process audio"))
    write(t, "unprintable_reason", c("open", close=1011, reason=b"\x01\x7f\xff\xfeNET-0001\t\n",
                                     perr=b"\xc3\xa9"))
    write(t, "long_reason", c("open", close=1011, reason="x" * 200 + "NET-0000", perr="y" * 300))
    write(t, "now_extreme", c(http=503, now=-2**63, retry_after="Sunday, 06-Nov-94 08:49:37 GMT"))


# ---------------------------------------------------------------- retry_after

def retry_after_raw(value, now=NOW, ms=250):
    if isinstance(value, str):
        value = value.encode()
    return bytes([0]) + struct.pack("<IH", now - 1700000000, ms) + value


def retry_after():
    t = "retry_after"
    r = retry_after_raw
    for i, v in enumerate(["120", "0", " 5 ", "\t30\t", "007", "1.5", "-1", "+3", "", " ",
                           "99999999999999999999999999", "9223372036854775", "9223372036854776",
                           "120 s", "0x10"]):
        write(t, "delta_%02d" % i, r(v))
    for i, v in enumerate(["Wed, 01 May 2024 12:00:45 GMT", "Sun, 06 Nov 1994 08:49:37 GMT",
                           "Fri, 31 Dec 9999 23:59:59 GMT", "Mon, 01 Jan 0001 00:00:00 GMT",
                           "Thu, 29 Feb 2024 00:00:00 GMT", "Thu, 29 Feb 2023 00:00:00 GMT",
                           "Wed, 01 May 2024 24:00:00 GMT", "Wed, 01 May 2024 23:59:60 GMT",
                           "Wed, 1 May 2024 12:00:45 GMT", "wed, 01 may 2024 12:00:45 gmt",
                           "Wednesday, 01-May-24 12:01:00 GMT", "Sunday, 06-Nov-94 08:49:37 GMT",
                           "Thursday, 01-Jan-70 00:00:00 GMT", "Wed May  1 12:00:05 2024",
                           "Sun Nov  6 08:49:37 1994", "Sun Nov 16 08:49:37 1994",
                           "Wed, 01 May 2024 12:00:45 UTC", "Wed, 31 Apr 2024 12:00:45 GMT"]):
        write(t, "date_%02d" % i, r(v))
    # Anywhere-in-time clocks (selector 2: years 1..9999) and any int64 (selector 3).
    write(t, "now_year_1", bytes([2]) + struct.pack("<Q", 0)[:5] + struct.pack("<H", 0) +
          b"Sun, 06 Nov 1994 08:49:37 GMT")
    write(t, "now_int64_max", bytes([3]) + struct.pack("<q", 2**63 - 1) +
          b"Sunday, 06-Nov-94 08:49:37 GMT")
    write(t, "now_int64_min", bytes([3]) + struct.pack("<q", -2**63) +
          b"Fri, 31 Dec 9999 23:59:59 GMT")
    write(t, "now_before_1970", bytes([3]) + struct.pack("<q", -1) + b"Thu, 01 Jan 1970 00:00:00 GMT")
    write(t, "ms_before_date", retry_after_raw("Wed, 01 May 2024 12:00:01 GMT", NOW, 999))
    # Date mode (selector bit 2): how (bit 0 near now, bits 1-2 form, bit 4 padding), offset.
    for form in range(3):
        for pad in (0, 0x10):
            how = 1 | (form << 1) | pad
            write(t, "gen_near_%d_%d" % (form, pad >> 4),
                  bytes([4]) + struct.pack("<IH", NOW - 1700000000, 500) + bytes([how]) +
                  struct.pack("<I", 200030)[:3])
            write(t, "gen_any_%d_%d" % (form, pad >> 4),
                  bytes([6]) + struct.pack("<Q", 62135596800 + NOW)[:5] + struct.pack("<H", 1) +
                  bytes([how & ~1]) + struct.pack("<Q", 62135596800 + 784111777)[:5])


# ---------------------------------------------------------------- url

def url_seed(url, cred="", opts=(), rate_sel=0, chans=1, lim=0, errlen=200, ncur=None,
             fail_header=False):
    sel = rate_sel | ((chans - 1) << 3) | (0x20 if fail_header else 0)
    out = bytes([sel, lim, errlen, len(opts) if ncur is None else ncur])
    parts = [url, cred]
    for k, v in opts:
        parts += [k, "\x7f" if v is None else v]
    return out + b"\0".join(p.encode() if isinstance(p, str) else p for p in parts)


def url():
    t = "url"
    u = url_seed
    write(t, "deepgram_default", u("wss://api.deepgram.com/v1/listen", "abc123",
                                   [("model", "nova-3"), ("interim_results", "true"),
                                    ("punctuate", "true"), ("smart_format", "true")]))
    write(t, "local_server", u("ws://127.0.0.1:8080/v1/listen", "Token k",
                               [("endpointing", "300"), ("utterance_end_ms", "1000"),
                                ("vad_events", "true")]))
    write(t, "query_fragment", u("ws://127.0.0.1:8080/v1/listen?x=1#frag", "",
                                 [("tag", "a"), ("tag", "b")]))
    write(t, "empty_query", u("ws://h/v1/listen?", "Bearer eyJhbGciOi.x.y"))
    write(t, "no_path", u("ws://h", "k", [("model", "nova-2")]))
    write(t, "query_no_path", u("ws://h?a=b&", "k"))
    write(t, "ipv6", u("ws://[::1]:9000/v1/listen", "k", [("language", "en-US")], chans=2))
    write(t, "ipv6_default_port", u("wss://[2001:db8::1]:443/", "k"))
    write(t, "explicit_default_port", u("ws://localhost:80/p", "k"))
    write(t, "upper_scheme", u("WSS://API.DEEPGRAM.COM:8443/V1/LISTEN", "k"))
    write(t, "escaping", u("wss://api.deepgram.com/v1/listen", "k",
                           [("keyterm", "hello world&x=y/\u00fc+%"), ("keyterm", "a~b-c.d_e"),
                            ("keywords", "steno:2"), ("replace", "a=b"), ("search", "#?/")]))
    write(t, "removals_apply", u("ws://h/", "k", [("model", "nova-3"), ("tag", "x"),
                                                  ("model", None), ("tag", "y")], ncur=2))
    write(t, "bad_options", u("ws://h/", "k", [("modle", "nova-3"), ("sample_rate", "8000"),
                                               ("multichannel", "true"), ("endpointing", "-1"),
                                               ("utterance_end_ms", "1e3"), ("", "x"),
                                               ("model", ""), ("model", "a")], errlen=40))
    write(t, "bad_scheme", u("http://api.deepgram.com/v1/listen", "k", errlen=10))
    write(t, "userinfo", u("ws://user:pw@h/", "k"))
    write(t, "port_zero", u("ws://h:0/", "k"))
    write(t, "port_big", u("ws://h:65536/", "k"))
    write(t, "port_empty", u("ws://h:/", "k"))
    write(t, "ipv6_open", u("ws://[::1/", "k"))
    write(t, "ipv6_garbage", u("ws://[::1]x/", "k"))
    write(t, "bracket_in_host", u("ws://127[0.0.1:8080/v1/listen", "k"))  # was accepted
    write(t, "bracket_in_v6", u("ws://[[::1]]:80/", "k"))
    write(t, "space", u("ws://h/a b", "k"))
    write(t, "long_host", u("ws://" + "h" * 700 + "/", "k"))
    write(t, "header_injection", u("ws://h/", "k\r\nx-evil: 1"))
    write(t, "long_credential", u("ws://h/", "k" * 4100))
    write(t, "long_scheme_credential", u("ws://h/", "Token " + "k" * 4110))
    write(t, "scheme_credential_lower", u("ws://h/", "token abc"))
    write(t, "size_limit", u("wss://api.deepgram.com/v1/listen", "k",
                             [("keyterm", "\u00fc" * 40)], lim=0xc0 + 12))
    write(t, "zero_rate", u("ws://h/", "k", rate_sel=5))
    write(t, "callback_fail", u("ws://h/", "abc", fail_header=True))


# ---------------------------------------------------------------- timeline

def dbl_time(seconds):
    """fz_double's ordinary time: 10 ms steps, up to 655.35 s, sign in bit 0."""
    k = 1 if seconds < 0 else 0
    return bytes([k]) + struct.pack("<H", int(round(abs(seconds) * 100)))


def dbl_special(i):
    """fz_double's table entry i (0 0.0, 16 INFINITY, 18 NAN, 8 1e300 ...)."""
    return bytes([128 + (i - 128 % 24) % 24])


class Timeline:
    """Writes fuzz_timeline programs; rate is one of the table's rates."""
    RATES = [16000, 8000, 48000, 44100, 1, 3, 192000, 22050]

    def __init__(self, rate=16000, max_seg=8):
        self.rate = rate
        self.chunk = max(rate // 10, 1)
        self.b = bytes([self.RATES.index(rate), max_seg - 1])

    def _range(self, lo, hi, v):
        span, n = hi - lo, 0
        s = span
        while s:
            n += 1
            s >>= 8
        return (v - lo).to_bytes(n, "little") if n else b""

    def reconnect(self, back):
        self.b += bytes([0]) + self._range(0, self.rate, back)

    def send_next(self, n=1):
        for _ in range(n):
            self.b += bytes([1, 0])

    def send_gap(self, gap, frames):
        self.b += bytes([1, 3]) + self._range(1, 5 * self.chunk, gap) + \
            self._range(1, self.chunk, frames)

    def result(self, final, start, duration, words=(), raw=None):
        self.b += bytes([4 if final else 7])
        self.b += raw if raw is not None else dbl_time(start) + dbl_time(duration)
        self.b += bytes([len(words)])
        for w in words:
            if isinstance(w, bytes):
                self.b += w
            else:  # plausible word: offset from the previous end, length, in 10 ms
                self.b += bytes([1, w[0], w[1]])

    def lookup(self, a, b):
        self.b += bytes([9]) + dbl_time(a) + dbl_time(b) + bytes(8) + bytes([0])


def timeline():
    t = "timeline"
    # A steady stream: interims, then finals that advance the ack point.
    p = Timeline()
    for i in range(10):
        p.send_next(2)
        p.result(False, i * 0.2, 0.2, [(2, 10), (1, 5)])
        p.result(True, i * 0.2, 0.2, [(2, 10), (1, 5)])
    p.lookup(0.5, 1.9)
    write(t, "steady_stream", p.b)
    # A reconnect replays from a little before the ack point; provider times restart at 0.
    p = Timeline()
    p.send_next(10)
    p.result(True, 0.0, 0.55, [(5, 20), (2, 20)])
    p.reconnect(800)
    p.send_next(6)
    p.result(True, 0.0, 0.6, [(0, 10), (2, 20), (3, 20)])
    p.result(False, 0.6, 0.1)
    p.lookup(0.0, 0.05)
    write(t, "reconnect_replay", p.b)
    # A gap (evicted audio) in the middle of a connection, a result spanning it.
    p = Timeline(8000, 4)
    p.send_next(3)
    p.send_gap(2000, 800)
    p.send_next(2)
    p.result(True, 0.0, 0.6, [(20, 10), (5, 10), (5, 10)])
    p.lookup(0.29, 0.31)
    write(t, "gap", p.b)
    # A segment table of one: every gap needs a final first.
    p = Timeline(16000, 1)
    p.send_next(2)
    p.send_gap(1, 1600)
    p.result(True, 0.0, 0.2)
    p.send_gap(5, 100)
    write(t, "table_full", p.b)
    # Non-finite and absurd times.
    p = Timeline(48000, 3)
    p.send_next(3)
    p.result(True, 0, 0, raw=dbl_special(18) + dbl_time(1))          # NaN start
    p.result(True, 0, 0, raw=dbl_time(0) + dbl_special(16))          # +inf duration
    p.result(False, 0, 0, raw=dbl_special(8) + dbl_time(1))           # 1e300 start
    p.result(True, 0, 0, raw=dbl_time(-5) + dbl_time(-1))             # negative
    p.result(True, 0.1, 0.1, [b"\x00" + dbl_special(18) + dbl_special(16),
                              b"\x00" + dbl_time(0.15) + dbl_time(0.12)])
    p.lookup(-1, 600)
    write(t, "non_finite", p.b)
    # Results before any audio, and a reconnect with nothing sent.
    p = Timeline(1, 2)
    p.result(True, 0.0, 3.0, [(0, 100)])
    p.reconnect(0)
    p.result(False, 1.0, 1.0)
    p.send_next(5)
    p.result(True, 0.0, 10.0, [(0, 200), (0, 200)])
    write(t, "tiny_rate", p.b)


# ---------------------------------------------------------------- ring

class Ring:
    """Writes fuzz_ring programs."""

    def __init__(self, cap, cf, fb):
        self.b = bytes([cap - 1, cf - 1, fb - 1, 0])

    def write(self, frames, multi=False):
        self.b += bytes([0, 1 if multi else 0, frames])

    def partial_frame(self):
        self.b += bytes([0, 0x0e, 3, 0])

    def flush(self):
        self.b += bytes([3])

    def send(self, n=1):
        self.b += bytes([4]) * n

    def mark_sent(self, off, back=False):
        self.b += bytes([6, off, 1 if back else 0])

    def ack_chunk(self, idx, delta=1):  # delta 0: one frame short, 1: exact end, 2: one past
        self.b += bytes([7, 1, idx, delta])

    def ack_frame(self, frame):
        self.b += bytes([7, 0]) + struct.pack("<I", frame)

    def rewind(self):
        self.b += bytes([8])

    def evict(self, min_free):
        self.b += bytes([9, min_free])

    def take_dropped(self):
        self.b += bytes([10])

    def peek(self, seq):
        self.b += bytes([11]) + struct.pack("<Q", seq) + bytes([0])


def ring():
    t = "ring"
    # Live streaming: write, send, ack each chunk as finals arrive.
    r = Ring(8, 10, 2)
    for _ in range(12):
        r.write(10)
        r.send()
        r.ack_chunk(0)
    r.write(5)
    r.flush()
    r.send()
    r.ack_frame(10000)
    write(t, "live", r.b)
    # An outage: the ring fills, the consumer evicts, the producer drops, then a replay.
    r = Ring(4, 8, 4)
    r.write(8)
    r.send()
    for _ in range(6):
        r.write(32, multi=True)
        r.evict(2)
    r.take_dropped()
    r.rewind()
    r.send(4)
    r.ack_chunk(1)
    r.take_dropped()
    write(t, "outage_evict", r.b)
    # Producer-side drops only: nobody consumes.
    r = Ring(2, 3, 1)
    for _ in range(30):
        r.write(7, multi=True)
    r.take_dropped()
    r.flush()
    r.take_dropped()
    write(t, "producer_drops", r.b)
    # The drop queue overflows (more than 64 ranges) before the consumer drains it.
    r = Ring(1, 1, 1)
    for _ in range(100):
        r.write(2)
        r.ack_chunk(0)
    r.take_dropped()
    write(t, "drop_queue_overflow", r.b)
    # Odd calls: partial frames, marks outside the ring, peeks anywhere, acks short of a chunk.
    r = Ring(3, 5, 3)
    r.partial_frame()
    r.write(12, multi=True)
    r.mark_sent(7)
    r.mark_sent(0, back=True)
    r.peek(0)
    r.peek(2**64 - 1)
    r.ack_chunk(0, 0)
    r.ack_chunk(1, 2)
    r.evict(255)
    r.evict(0)
    r.flush()
    r.flush()
    write(t, "odd_calls", r.b)
    # Partial chunks from flushes between writes, then eviction across them.
    r = Ring(6, 16, 2)
    for n in (3, 16, 1, 30, 7):
        r.write(n, multi=True)
        r.flush()
    r.evict(6)
    r.take_dropped()
    write(t, "flushes", r.b)


# ---------------------------------------------------------------- elevenlabs_parse


def elevenlabs_parse():
    """Messages of scribe.asyncapi.yaml as steno-server --protocol elevenlabs sends them, the
    vendor's error shapes, and the edge cases its parser must refuse."""
    t = "elevenlabs_parse"
    word = lambda text, a, b, typ="word", lp=0: {"text": text, "start": a, "end": b,
                                                  "type": typ, "logprob": lp}
    words = [word("span", 0, 0.333), word(" ", 0.333, 0.333, "spacing"),
             word("0-16000", 0.333, 0.667), word("(laughs)", 0.667, 0.7, "audio_event", -2),
             word("fnv1a64=0", 0.7, 1.0, "word", -0.1)]
    write(t, "session_started", compact({
        "message_type": "session_started", "session_id": "5c1d0a4e-1b8e-4b7e-9a55-2f0c5b7a1d10",
        "config": {"sample_rate": 16000, "audio_format": "pcm_16000", "model_id":
                   "scribe_v2_realtime", "vad_commit_strategy": "manual",
                   "timestamps_granularity": "word"}}))
    write(t, "partial", compact({"message_type": "partial_transcript", "text": "span 0-4000"}))
    write(t, "final", compact({"message_type": "final_transcript", "text": "span 0-16000"}))
    write(t, "final_ts", compact({"message_type": "final_transcript_with_timestamps",
                                  "text": "span", "language_code": "en",
                                  "words": words[:1]}))
    write(t, "committed", compact({"message_type": "committed_transcript",
                                   "text": "span 0-16000 fnv1a64=0"}))
    write(t, "committed_ts", compact({"message_type": "committed_transcript_with_timestamps",
                                      "text": "span 0-16000 fnv1a64=0", "language_code": "en",
                                      "words": words}))
    write(t, "committed_ts_empty", compact({
        "message_type": "committed_transcript_with_timestamps", "text": "", "words": None,
        "language_code": None}))
    write(t, "committed_ts_untimed", compact({
        "message_type": "committed_transcript_with_timestamps", "text": "a",
        "words": [{"text": "a", "type": "word", "logprob": -0.2, "speaker_id": "s0",
                   "characters": [{"text": "a"}]}]}))
    write(t, "entities", compact({"message_type": "committed_transcript_entities", "text": "a",
                                  "entities": [{"text": "a", "entity_type": "x", "start_char": 0,
                                                "end_char": 1}]}))
    for e in ("auth_error", "quota_exceeded", "rate_limited", "input_error", "error",
              "insufficient_audio_activity", "session_time_limit_exceeded"):
        write(t, "error_" + e, compact({"message_type": e, "error": "what went wrong"}))
    write(t, "edge_unknown_type", compact({"message_type": "edited_transcript", "text": "a",
                                           "edited_text": "b"}))
    write(t, "edge_no_type", compact({"text": "a"}))
    write(t, "edge_truncated", '{"message_type":"committed_transcript","text":"spa')
    write(t, "edge_wrong_types", compact({"message_type": "committed_transcript_with_timestamps",
                                          "text": 7, "words": "none"}))
    write(t, "edge_words_backwards", compact({
        "message_type": "committed_transcript_with_timestamps", "text": "a b",
        "words": [word("a", 2, 3), word("b", 1, 1.5)]}))
    write(t, "edge_huge_times", compact({
        "message_type": "committed_transcript_with_timestamps", "text": "a",
        "words": [word("a", 1e300, 1e301)]}))
    write(t, "edge_bad_word_type", compact({
        "message_type": "committed_transcript_with_timestamps", "text": "a",
        "words": [word("a", 0, 1, "syllable")]}))
    write(t, "edge_error_no_text", compact({"message_type": "auth_error"}))


def main():
    deepgram_parse()
    elevenlabs_parse()
    classify()
    retry_after()
    url()
    timeline()
    ring()


if __name__ == "__main__":
    main()
