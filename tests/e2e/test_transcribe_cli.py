"""steno-transcribe as a user runs it: real speech through the CLI and the SDK to the local
server (with a TCP drop mid-stream, from stdin, through --local), and its exit status and
messages when things go wrong.
"""

import os
import re
import socket
import sys
import tempfile

from cli_harness import (PREFIX, DATA, Server, fail, read_pcm, reference, run_tests,
                         transcribe, wer)

UTT = "0870"
WAV = os.path.join(DATA, PREFIX + UTT + ".wav")


def test_speech_survives_a_drop():
    ref = reference([UTT])
    with Server("--engine", "pocketsphinx") as srv:
        clean = transcribe("--url", srv.url, "--speed", "1.2", WAV)
        if clean.returncode != 0:
            fail("fault-free run exited %d: %s" % (clean.returncode, clean.stderr))
        before = len(srv.api("/connections")["connections"])
        srv.api("/faults", {"action": "drop", "after_audio_ms": 3000})
        faulted = transcribe("--url", srv.url, "--speed", "1.2", "--stats", WAV)
        conns = srv.api("/connections")["connections"][before:]
    if faulted.returncode != 0:
        fail("run with a drop exited %d: %s" % (faulted.returncode, faulted.stderr))
    if "reconnecting" not in faulted.stderr or "reconnected" not in faulted.stderr:
        fail("the drop was not reported on stderr: %r" % faulted.stderr)
    if len(conns) < 2 or conns[0]["close_cause"] != "fault_drop":
        fail("expected a dropped connection and its replacement, got %s"
             % [(c["id"], c["close_cause"]) for c in conns])
    stats = dict(re.findall(r"^  (\w[\w -]*?)\s{2,}(\S+)", faulted.stderr, re.M))
    for key in ("connections", "reconnects", "downtime", "chunks replayed", "backfills",
                "samples dropped", "audio", "real-time factor"):
        if key not in stats:
            fail("--stats lacks %r: %r" % (key, faulted.stderr))
    if int(stats["connections"]) < 2 or int(stats["reconnects"]) < 1:
        fail("--stats should count the reconnect: %r" % stats)
    if abs(float(stats["audio"]) - 7.1) > 0.05:
        fail("--stats audio %s s, the file is 7.1 s" % stats["audio"])
    w_clean, w_fault = wer(ref, clean.stdout), wer(ref, faulted.stdout)
    print("WER fault-free %.1f%%, with a drop %.1f%%" % (w_clean, w_fault))
    if w_fault > w_clean + 2.0:
        fail("the drop cost more than 2 WER points: %.1f%% vs %.1f%%" % (w_fault, w_clean))
    if not clean.stdout.strip():
        fail("the fault-free run printed no transcript")


def test_gemini_provider_transcribes_speech():
    """--provider gemini through the local Gemini Live personality: turns of real speech, the
    key in a header (never on the command line's URL)."""
    ref = reference([UTT])
    with Server("--protocol", "gemini", "--engine", "pocketsphinx", "--api-key", "gk") as srv:
        url = ("ws://%s/ws/google.ai.generativelanguage.v1beta.GenerativeService."
               "BidiGenerateContent" % srv.listen)
        r = transcribe("--provider", "gemini", "--url", url, "--api-key", "gk", "--stats", WAV)
        conns = srv.api("/connections")["connections"]
    if r.returncode != 0:
        fail("gemini run exited %d: %s" % (r.returncode, r.stderr))
    if not conns or conns[0]["protocol"] != "gemini" or conns[0]["activity_ends"] < 1:
        fail("no activity-delimited Gemini connection: %r" % conns)
    w = wer(ref, r.stdout)
    print("gemini: WER %.1f%%: %s" % (w, " ".join(r.stdout.split())))
    # Each flush cuts the speech into turns wherever it falls (the API gives no word times to
    # cut at a pause), so the recogniser loses words at the cuts: a looser bound than above.
    if w > 60:
        fail("gemini transcript is not the speech: %r" % r.stdout)


def test_failover_to_another_provider():
    """--failover: the Deepgram endpoint refuses every handshake (503), so after
    --failover-after the session moves to the AssemblyAI personality, says so on stderr, and
    the whole speech is transcribed there (exit 0: nothing lost)."""
    ref = reference([UTT])
    with Server("--engine", "pocketsphinx") as dg, \
            Server("--protocol", "assemblyai", "--engine", "pocketsphinx") as aai:
        dg.api("/faults", {"down": True, "status": 503})
        r = transcribe("--url", "ws://%s/v1/listen" % dg.listen,
                       "--failover", "assemblyai=ws://%s/v3/ws" % aai.listen,
                       "--failover-after", "1500", "--no-live", WAV)
        refused = dg.api("/connections")["connections"]
        served = aai.api("/connections")["connections"]
    if r.returncode != 0:
        fail("failover run exited %d: %s" % (r.returncode, r.stderr))
    if "moved to assemblyai" not in r.stderr:
        fail("no failover reported: %r" % r.stderr)
    if not refused or any(c["handshake_status"] != 503 for c in refused) or not served:
        fail("expected refusals at Deepgram and a session at AssemblyAI: %r / %r"
             % (refused, served))
    w = wer(ref, r.stdout)
    print("failover: %d refused, %d served, WER %.1f%%" % (len(refused), len(served), w))
    if w > 50:
        fail("the failover transcript is not the speech: %r" % r.stdout)


def test_stdin_pcm_and_local_server():
    """Raw PCM on stdin at 16 kHz, through a server the CLI starts itself (--local)."""
    env = dict(os.environ)
    env["STENO_SERVER"] = os.environ["STENO_SERVER"]
    pcm = read_pcm([UTT], gap_s=0)
    r = transcribe("--local", "--speed", "max", "-", input=pcm, env=env)
    if r.returncode != 0:
        fail("stdin with --local exited %d: %s" % (r.returncode, r.stderr))
    w = wer(reference([UTT]), r.stdout)
    print("stdin via --local: WER %.1f%%" % w)
    if w > 50:
        fail("stdin transcript is not the speech: %r" % r.stdout)


def test_openai_personality_transcribes_speech():
    """--provider openai against steno-server --protocol openai (pocketsphinx): the speech
    comes through 24 kHz base64 appends and commits. The protocol has no end-of-stream
    message: the SDK closes the connection itself once its last commit is answered, and the
    CLI exits 0."""
    with Server("--protocol", "openai", "--engine", "pocketsphinx") as srv:
        r = transcribe("--provider", "openai", "--url", "ws://%s/v1/realtime" % srv.listen,
                       "--api-key", "sk-local", "--speed", "1", "--close-timeout", "3000", WAV)
        conns = srv.api("/connections")["connections"]
    if r.returncode != 0:
        fail("openai run exited %d: %s" % (r.returncode, r.stderr))
    if len(conns) != 1 or "intent=transcription" not in conns[0]["query"]:
        fail("expected one transcription session, got %r" % conns)
    w = wer(reference([UTT]), r.stdout)
    print("openai personality: WER %.1f%%" % w)
    if w > 50:
        fail("the openai transcript is not the speech: %r" % r.stdout)


def test_wrong_key_exits_4():
    with Server("--engine", "null", "--api-key", "right") as srv:
        r = transcribe("--url", srv.url, "--api-key", "wrong", WAV)
        attempts = len(srv.api("/connections")["connections"])
    if r.returncode != 4:
        fail("a rejected key should exit 4, got %d" % r.returncode)
    if "failed" not in r.stderr or ("401" not in r.stderr and "auth" not in r.stderr.lower()):
        fail("the failure should name the authentication problem: %r" % r.stderr)
    if attempts != 1:
        fail("a 401 must not be retried: %d handshakes" % attempts)
    if "the rest was not sent" not in r.stderr:
        fail("after FAILED, writes must be refused so the CLI stops streaming: %r" % r.stderr)


def test_elevenlabs_speech_through_its_personality():
    """--provider elevenlabs against steno-server --protocol elevenlabs: base64 chunks, commits,
    and the close the protocol allows (the last commit's answer, then the client's close)."""
    with Server("--protocol", "elevenlabs", "--engine", "pocketsphinx", "--api-key", "el-key") as srv:
        r = transcribe("--provider", "elevenlabs", "--api-key", "el-key", "--url",
                       "ws://%s/v1/speech-to-text/realtime" % srv.listen, WAV)
        conns = srv.api("/connections")["connections"]
    if r.returncode != 0:
        fail("elevenlabs run exited %d: %s" % (r.returncode, r.stderr))
    if len(conns) != 1 or conns[0]["control"].get("Finalize", 0) < 1 or \
            conns[0]["closed_by"] != "client" or conns[0]["close_code"] != 1000:
        fail("expected one connection with commits, closed by the client: %r" % conns)
    w = wer(reference([UTT]), r.stdout)
    print("elevenlabs: WER %.1f%%" % w)
    if w > 60:
        fail("the elevenlabs transcript is not the speech: %r" % r.stdout)


def expect(r, code, words, what):
    if r.returncode != code:
        fail("%s: exit %d, expected %d (%r)" % (what, r.returncode, code, r.stderr))
    for w in words:
        if w.lower() not in r.stderr.lower():
            fail("%s: the message should say %r: %r" % (what, w, r.stderr))
    print("   %s -> %d: %s" % (what, code, r.stderr.strip().splitlines()[-1]))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_bad_input_gets_its_exit_code():
    d = tempfile.mkdtemp()
    text = os.path.join(d, "notes.wav")
    with open(text, "w") as f:
        f.write("this is not audio\n" * 100)
    expect(transcribe("/nonexistent/audio.wav"), 3, ["cannot open", "No such file"],
           "a missing file")
    expect(transcribe(text), 3, ["not audio"], "a non-audio file")
    expect(transcribe("--device", "no-such-device-xyz"), 3, ["no-such-device-xyz", "inputs"],
           "an unknown device")
    expect(transcribe("--frobnicate", WAV), 2, ["unknown option", "--frobnicate"],
           "an unknown option")
    expect(transcribe("--url", "ws://127.0.0.1:%d/v1/listen" % free_port(), "--max-outage",
                      "1500", WAV, timeout=60), 5, ["gave up", "connect"],
           "an unreachable server with --max-outage")


def test_usage_errors_exit_2():
    expect(transcribe(), 2, ["FILE"], "no input")
    expect(transcribe("--option", "novalue", "x.wav"), 2, ["KEY=VALUE"], "a malformed option")
    expect(transcribe("-o", "model=nova-3", WAV), 2, ["--option"], "-o with a provider option")
    expect(transcribe("--format", "doc", WAV), 2, ["text, jsonl, srt or vtt"], "a bad format")
    expect(transcribe("--option", "bogus_option=1", "--url", "ws://127.0.0.1:9/v1/listen", WAV),
           2, ["bogus_option"], "an unknown provider option")
    env = dict(os.environ, STENO_CHUNK_MS="5")
    expect(transcribe(WAV, env=env), 2, ["STENO_CHUNK_MS"], "a bad STENO_* variable")


def test_help_lists_every_option():
    r = transcribe("--help")
    if r.returncode != 0:
        fail("--help exited %d" % r.returncode)
    src = open(os.path.join(os.environ["STENO_SOURCE_ROOT"], "samples", "transcribe",
                            "options.c")).read()
    names = re.findall(r'\{"([a-z-]+)", (?:no|required)_argument', src)
    missing = [n for n in names if "--" + n not in r.stdout]
    if len(names) < 20 or missing:
        fail("--help does not mention %s" % missing)
    for code in ("0", "2", "3", "4", "5", "6"):
        if not re.search(r"^  %s  " % code, r.stdout, re.M):
            fail("--help does not document exit status %s" % code)


if __name__ == "__main__":
    sys.exit(run_tests([test_usage_errors_exit_2, test_help_lists_every_option,
                        test_bad_input_gets_its_exit_code, test_wrong_key_exits_4,
                        test_stdin_pcm_and_local_server, test_speech_survives_a_drop,
                        test_gemini_provider_transcribes_speech,
                        test_failover_to_another_provider,
                        test_openai_personality_transcribes_speech,
                        test_elevenlabs_speech_through_its_personality]))
