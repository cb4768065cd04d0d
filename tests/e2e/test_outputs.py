"""Output formats: srt and vtt parse back (numbered cues in order, well-formed and monotonic
times inside the audio), and jsonl lines are valid JSON with the documented fields."""

import json
import os
import re
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

from cli_harness import Server, fail, read_pcm, reference, run_tests, transcribe, wer, write_wav

IDS = ["0870", "0880"]


def parse_cues(text, sep, numbered):
    """[(start, end, text)] of an srt (sep ',', numbered) or vtt (sep '.') document."""
    t = r"(\d\d):(\d\d):(\d\d)" + re.escape(sep) + r"(\d\d\d)"
    timing = re.compile("^" + t + " --> " + t + "$")
    cues = []
    for n, block in enumerate(b for b in text.strip().split("\n\n") if b.strip()):
        lines = block.split("\n")
        if numbered:
            if lines[0] != str(n + 1):
                fail("cue %d is numbered %r" % (n + 1, lines[0]))
            lines = lines[1:]
        m = timing.match(lines[0]) if lines else None
        if not m or len(lines) < 2 or not lines[1].strip():
            fail("malformed cue %d: %r" % (n + 1, block))
        g = [int(x) for x in m.groups()]
        start = g[0] * 3600 + g[1] * 60 + g[2] + g[3] / 1000
        end = g[4] * 3600 + g[5] * 60 + g[6] + g[7] / 1000
        cues.append((start, end, " ".join(lines[1:])))
    return cues


def check_cues(cues, duration, what):
    if not cues:
        fail("%s: no cues" % what)
    prev = 0.0
    for i, (start, end, _) in enumerate(cues):
        if not (prev <= start <= end <= duration + 0.05):
            fail("%s: cue %d [%.3f, %.3f] out of order or outside [0, %.2f] (previous start "
                 "%.3f)" % (what, i + 1, start, end, duration, prev))
        prev = start


def test_srt_vtt_and_jsonl_parse_back():
    d = tempfile.mkdtemp(prefix="steno-outputs-")
    pcm = read_pcm(IDS, gap_s=1.0)
    duration = len(pcm) / 2 / 16000
    wav = write_wav(os.path.join(d, "speech.wav"), pcm)
    outs = {f: os.path.join(d, "out." + f) for f in ("srt", "vtt", "jsonl")}
    # the server enforces Deepgram's ingest limit: sending as fast as it accepts must not trip it
    with Server("--engine", "pocketsphinx", "--max-rate", "1.25") as srv:
        def run(fmt):
            extra = ["--interim"] if fmt == "jsonl" else []
            return fmt, transcribe("--url", srv.url, "--speed", "max", "--close-timeout", "30000",
                                   "--format", fmt,
                                   "-o", outs[fmt], *extra, wav)
        with ThreadPoolExecutor(2) as pool:
            results = dict(pool.map(run, outs))
        causes = {c["close_cause"] for c in srv.api("/connections")["connections"]}
    if causes != {"CloseStream"}:
        fail("every stream should end with CloseStream, not %s (RATE: sent too fast)" % causes)
    for fmt, r in results.items():
        if r.returncode != 0:
            fail("--format %s exited %d: %s" % (fmt, r.returncode, r.stderr))
        if r.stdout:
            fail("--format %s -o FILE printed on stdout: %r" % (fmt, r.stdout[:200]))
    ref = reference(IDS)

    srt = parse_cues(open(outs["srt"]).read(), ",", True)
    check_cues(srt, duration, "srt")
    vtt_text = open(outs["vtt"]).read()
    if not vtt_text.startswith("WEBVTT\n\n"):
        fail("vtt does not start with the WEBVTT header: %r" % vtt_text[:40])
    vtt = parse_cues(vtt_text[len("WEBVTT\n\n"):], ".", False)
    check_cues(vtt, duration, "vtt")
    for fmt, cues in (("srt", srt), ("vtt", vtt)):
        w = wer(ref, " ".join(c[2] for c in cues))
        print("   %s: %d cues, WER %.1f%%" % (fmt, len(cues), w))
        if w > 60:
            fail("%s cues do not carry the speech: %r" % (fmt, cues))

    fields = {"type": str, "start": (int, float), "end": (int, float), "text": str,
              "confidence": (int, float), "speech_final": bool, "from_finalize": bool,
              "from_backfill": bool, "channel": int, "words": list}
    word_fields = {"word": str, "start": (int, float), "end": (int, float),
                   "confidence": (int, float)}
    finals, interims, prev = [], 0, 0.0
    for n, line in enumerate(open(outs["jsonl"]).read().splitlines(), 1):
        try:
            o = json.loads(line)
        except ValueError as e:
            fail("jsonl line %d is not JSON (%s): %r" % (n, e, line))
        for k, t in fields.items():
            if not isinstance(o.get(k), t) or (t is int and isinstance(o.get(k), bool)):
                fail("jsonl line %d: %r should be %s: %r" % (n, k, t, line))
        if o["type"] not in ("final", "interim") or not o["start"] <= o["end"]:
            fail("jsonl line %d: bad type or span: %r" % (n, line))
        for w in o["words"]:
            for k, t in word_fields.items():
                if not isinstance(w.get(k), t):
                    fail("jsonl line %d: word field %r should be %s: %r" % (n, k, t, w))
            if not o["start"] - 0.01 <= w["start"] <= w["end"] <= o["end"] + 0.01:
                fail("jsonl line %d: word %r outside its result's span" % (n, w))
        if o["type"] == "final":
            if o["start"] < prev:
                fail("jsonl finals out of order at line %d" % n)
            prev = o["start"]
            finals.append(o["text"])
        else:
            interims += 1
    w = wer(ref, " ".join(finals))
    print("   jsonl: %d finals, %d interims, WER %.1f%%" % (len(finals), interims, w))
    if not finals or interims == 0 or w > 60:
        fail("jsonl should carry finals and (with --interim) interims of the speech")


if __name__ == "__main__":
    sys.exit(run_tests([test_srt_vtt_and_jsonl_parse_back]))
