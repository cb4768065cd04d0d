"""steno-transcribe end to end: real speech through the CLI and the SDK to the
local server, with a TCP drop mid-stream, compared with a fault-free run; and
the CLI's exit status and messages when things go wrong.

Environment (set by meson): STENO_SERVER, STENO_TRANSCRIBE, STENO_SOURCE_ROOT.
"""

import json
import os
import subprocess
import sys
import urllib.request

sys.path.insert(0, os.path.join(os.environ["STENO_SOURCE_ROOT"], "tests", "integration", "server"))
from wer import wer, read_transcriptions  # noqa: E402

DATA = "/usr/share/pocketsphinx/test/data/librivox"
UTT = "sense_and_sensibility_01_austen_64kb-0870"
SKIP = 77


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


class Server:
    def __init__(self, *args):
        self.proc = subprocess.Popen([os.environ["STENO_SERVER"], "--port", "0", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline().split()
        if len(line) < 6:
            fail("steno-server did not start: %r" % line)
        self.listen, self.control = line[3], line[5]
        self.url = "ws://%s/v1/listen" % self.listen

    def api(self, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request("http://%s%s" % (self.control, path), data=data,
                                     method="POST" if data else "GET")
        return json.load(urllib.request.urlopen(req, timeout=10))

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def transcribe(*args, timeout=60):
    return subprocess.run([os.environ["STENO_TRANSCRIBE"], *args], capture_output=True,
                          text=True, timeout=timeout)


def test_speech_survives_a_drop():
    wav = os.path.join(DATA, UTT + ".wav")
    ref = read_transcriptions(os.path.join(DATA, "transcription"))[UTT]
    srv = Server("--engine", "pocketsphinx")
    try:
        clean = transcribe("--url", srv.url, "--speed", "1.2", wav)
        if clean.returncode != 0:
            fail("fault-free run exited %d: %s" % (clean.returncode, clean.stderr))
        before = len(srv.api("/connections")["connections"])
        srv.api("/faults", {"action": "drop", "after_audio_ms": 3000})
        faulted = transcribe("--url", srv.url, "--speed", "1.2", wav)
        conns = srv.api("/connections")["connections"][before:]
    finally:
        srv.stop()
    if faulted.returncode != 0:
        fail("run with a drop exited %d: %s" % (faulted.returncode, faulted.stderr))
    if "reconnecting" not in faulted.stderr or "reconnected" not in faulted.stderr:
        fail("the drop was not reported on stderr: %r" % faulted.stderr)
    if len(conns) < 2 or conns[0]["close_cause"] != "fault_drop":
        fail("expected a dropped connection and its replacement, got %s"
             % [(c["id"], c["close_cause"]) for c in conns])
    w_clean, w_fault = wer(ref, clean.stdout), wer(ref, faulted.stdout)
    print("WER fault-free %.1f%%, with a drop %.1f%%" % (w_clean, w_fault))
    if w_fault > w_clean + 2.0:
        fail("the drop cost more than 2 WER points: %.1f%% vs %.1f%%" % (w_fault, w_clean))
    if not clean.stdout.strip():
        fail("the fault-free run printed no transcript")


def test_wrong_key_fails_with_status_1():
    srv = Server("--engine", "null", "--api-key", "right")
    try:
        wav = os.path.join(DATA, UTT + ".wav")
        r = transcribe("--url", srv.url, "--api-key", "wrong", wav)
        attempts = len(srv.api("/connections")["connections"])
    finally:
        srv.stop()
    if r.returncode != 1:
        fail("a rejected key should exit 1, got %d" % r.returncode)
    if "failed" not in r.stderr or "401" not in r.stderr and "auth" not in r.stderr.lower():
        fail("the failure should name the authentication problem: %r" % r.stderr)
    if attempts != 1:
        fail("a 401 must not be retried: %d handshakes" % attempts)
    if "the rest was not sent" not in r.stderr:
        fail("after FAILED, writes must be refused so the CLI stops streaming: %r" % r.stderr)


def test_usage_errors_exit_2():
    r = transcribe()
    if r.returncode != 2 or "FILE" not in r.stderr:
        fail("no FILE should exit 2 with usage, got %d %r" % (r.returncode, r.stderr))
    r = transcribe("/nonexistent/audio.wav")
    if r.returncode != 2 or "cannot read" not in r.stderr:
        fail("an unreadable file should exit 2 and say so, got %d %r" % (r.returncode, r.stderr))
    r = transcribe("-o", "novalue", "x.wav")
    if r.returncode != 2 or "KEY=VALUE" not in r.stderr:
        fail("a malformed option should exit 2 and say so, got %d %r" % (r.returncode, r.stderr))
    r = transcribe("-o", "bogus_option=1", "--url", "ws://127.0.0.1:9/v1/listen",
                   os.path.join(DATA, UTT + ".wav"))
    if r.returncode != 2 or "bogus_option" not in r.stderr:
        fail("an unknown provider option should exit 2 naming it, got %d %r"
             % (r.returncode, r.stderr))


def main():
    if not os.path.exists(os.path.join(DATA, UTT + ".wav")):
        print("pocketsphinx-testdata is not installed")
        return SKIP
    for t in (test_usage_errors_exit_2, test_wrong_key_fails_with_status_1,
              test_speech_survives_a_drop):
        print("== " + t.__name__)
        t()
    print("3 passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
