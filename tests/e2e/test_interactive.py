"""Interactive behaviour, in a real terminal (tmux): the CLI's interim text is replaced in
place and Ctrl-C drains and prints the last final; the dictation sample's push-to-talk sends
only what was said while talking and keeps it in its document."""

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

from cli_harness import (DATA, PREFIX, Server, fail, read_pcm, reference, run_tests,
                         transcribe, wer, write_wav)
from pulse import Pulse

ESC = "\x1b"


class Tmux:
    def __init__(self, env=None):
        self.sock = os.path.join(tempfile.mkdtemp(prefix="steno-tmux-"), "sock")
        self.env = env or dict(os.environ)
        self.done = "done-%d" % os.getpid()

    def run(self, cmd, env=None):
        """Starts cmd in a 120x30 window; `wait` returns when it ended."""
        exports = " ".join("%s=%s" % (k, shlex.quote(v)) for k, v in (env or {}).items())
        # the shell survives the terminal's Ctrl-C (a trap, not an ignore, so the
        # command still gets SIGINT's default disposition) to report the exit status
        line = "trap true INT; env %s %s; echo EXIT=$?; tmux -S %s wait-for -S %s; sleep 3600" % (
            exports, cmd, self.sock, self.done)
        subprocess.run(["tmux", "-S", self.sock, "new-session", "-d", "-x", "120", "-y", "30",
                        "sh", "-c", line], check=True, env=self.env)

    def screen(self, escapes=False, history=False):
        args = ["tmux", "-S", self.sock, "capture-pane", "-p", "-J"]
        if escapes:
            args.append("-e")
        if history:
            args += ["-S", "-"]
        return subprocess.run(args, capture_output=True, text=True, env=self.env).stdout

    def keys(self, *keys):
        subprocess.run(["tmux", "-S", self.sock, "send-keys", *keys], check=True, env=self.env)

    def wait_screen(self, pattern, timeout=60, escapes=False):
        """Waits until the screen matches pattern (polling what tmux shows)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s = self.screen(escapes)
            m = re.search(pattern, s, re.S)
            if m:
                return m
            time.sleep(0.05)
        fail("the terminal never showed %r; it shows:\n%s" % (pattern, self.screen()))

    def wait(self, timeout=90):
        r = subprocess.run(["timeout", str(timeout), "tmux", "-S", self.sock, "wait-for",
                            self.done], env=self.env)
        if r.returncode != 0:
            fail("the command did not finish within %d s:\n%s" % (timeout, self.screen()))
        m = re.search(r"EXIT=(\d+)", self.screen(history=True))
        return int(m.group(1)) if m else None

    def kill(self):
        subprocess.run(["tmux", "-S", self.sock, "kill-server"], capture_output=True,
                       env=self.env)


def test_interim_replaced_in_place_and_ctrl_c_drains():
    wav = os.path.join(DATA, PREFIX + "0870.wav")
    t = Tmux()
    with Server("--engine", "pocketsphinx") as srv:
        full = transcribe("--url", srv.url, "--speed", "max", wav)
        if full.returncode != 0:
            fail("the whole file exited %d: %s" % (full.returncode, full.stderr))
        whole = full.stdout.split()
        try:
            t.run("%s --url %s %s" % (os.environ["STENO_TRANSCRIBE"], srv.url, wav))
            # interim words, dimmed, above the status line
            t.wait_screen(re.escape(ESC) + r"\[2m\w+ \w+ \w+", escapes=True)
            t.wait_screen(r"connected")
            seen = set()
            # keep watching interims change in place: committed finals scroll up above them
            # (steno finalizes at pauses to keep acknowledgements up), but the dimmed interim
            # text is always one line, right above the status line
            deadline = time.monotonic() + 2.5
            while time.monotonic() < deadline:
                raw = [l for l in t.screen(escapes=True).splitlines() if l.strip()]
                dim = [l for l in raw if ESC + "[2m" in l]
                if len(dim) > 1:
                    fail("interim text should stay on one line above the status: %r" % dim)
                if dim:
                    seen.add(dim[0])
                time.sleep(0.05)
            if len(seen) < 2:
                fail("the interim line did not change in place: %r" % seen)
            t.keys("C-c")  # mid-speech: the drain must finish what is pending
            code = t.wait()
        finally:
            screen = t.screen(history=True)
            t.kill()
    lines = [l for l in screen.splitlines() if l.strip()]
    print("   after Ctrl-C: %r" % lines)
    if code != 0:
        fail("Ctrl-C should finish cleanly (exit 0), got %s: %r" % (code, lines))
    finals = [l for l in lines if not l.startswith("EXIT=")]
    if not finals or len(set(finals)) != len(finals):
        fail("the drain should print every final once, the last one included: %r" % finals)
    # the finals cover the audio heard before Ctrl-C: together they read like the start of
    # what the recognizer makes of the whole file (only the last word or two may differ)
    said = " ".join(finals)
    best = min(wer(" ".join(whole[:n]), said) for n in range(1, len(whole) + 1))
    print("   the whole file reads %r; the drained finals match its start at WER %.1f%%"
          % (" ".join(whole), best))
    if best > 30:
        fail("the drained finals are not the start of the speech: %r" % said)


def test_dictate_push_to_talk():
    d = tempfile.mkdtemp(prefix="steno-dictate-")
    doc = os.path.join(d, "doc.txt")
    before = write_wav(os.path.join(d, "before.wav"), read_pcm(["0880"], gap_s=0))
    talk = write_wav(os.path.join(d, "talk.wav"), read_pcm(["0870"], gap_s=0))
    silence = write_wav(os.path.join(d, "silence.wav"), b"\0\0" * 16000)
    with Server("--engine", "pocketsphinx") as srv, Pulse(48000, 2) as pa:
        t = Tmux()
        try:
            t.run("%s --url %s -o %s" % (os.environ["STENO_DICTATE"], srv.url, doc),
                  env={k: pa.env[k] for k in ("PULSE_SERVER", "HOME", "XDG_RUNTIME_DIR")})
            t.wait_screen(r"Enter: talk")
            pa.play(before)  # not talking: this must not reach the document
            pa.play(silence)
            t.keys("Enter")
            t.wait_screen(r"listening")
            pa.play(talk)
            pa.play(silence)
            t.keys("Enter")
            t.wait_screen("\u00bb .+\n")
            t.keys("q")
            code = t.wait()
        finally:
            screen = t.screen(history=True)
            t.kill()
    print("   " + "\n   ".join(l for l in screen.splitlines() if l.strip()))
    if code != 0:
        fail("steno-dictate exited %s" % code)
    text = open(doc).read() if os.path.exists(doc) else ""
    w_talk = wer(reference(["0870"]), text)
    w_both = wer(reference(["0880", "0870"]), text)
    print("   document %r: WER %.1f%% against what was said while talking" % (text.strip(),
                                                                            w_talk))
    if not text.strip() or w_talk > 60:
        fail("the document should hold the take: %r" % text)
    if w_both <= w_talk:
        fail("speech from before Enter reached the document: %r" % text)


if __name__ == "__main__":
    if not shutil.which("tmux"):
        print("tmux is not installed (tools/setup installs it)")
        sys.exit(77)
    sys.exit(run_tests([test_interim_replaced_in_place_and_ctrl_c_drains,
                        test_dictate_push_to_talk]))
