"""Files across formats: the same speech as WAV at 8, 16, 44.1 and 48 kHz, stereo, FLAC,
Ogg/Vorbis (and Opus and MP3 where this libsndfile writes them) gives the same transcript
within tolerance of the 16 kHz WAV's. The 8 kHz file has lost everything above 4 kHz, which
the wideband en-us model needs, so it is held to the same audio brought to 16 kHz by another
band-limited converter (libsamplerate) and sent as a 16 kHz WAV.
"""

import os
import subprocess
import sys
import tempfile
import wave
from concurrent.futures import ThreadPoolExecutor

from cli_harness import band_limited_resample, Server, fail, read_pcm, reference, run_tests, transcribe, wer, write_wav

IDS = ["0870"]
# Points of WER a variant may lose against its reference file: three words of the 22 (a
# converted signal moves the recognizer's choices on a word or two), for resampling and
# lossy codecs.
TOLERANCE = 14.0


def encode(wav, fmt):
    out = os.path.splitext(wav)[0] + "." + fmt
    r = subprocess.run([os.environ["STENO_MAKE_AUDIO"], wav, out, fmt], capture_output=True,
                       text=True)
    if r.returncode == 77:
        return None
    if r.returncode != 0:
        fail("cannot make the %s file: %s" % (fmt, r.stderr))
    return out


def test_every_format_gives_the_same_transcript():
    d = tempfile.mkdtemp(prefix="steno-formats-")
    pcm = read_pcm(IDS, gap_s=1.0)
    ref = reference(IDS)
    base = write_wav(os.path.join(d, "s16k.wav"), pcm)
    files = {
        "wav 16 kHz mono": base,
        "wav 8 kHz mono": write_wav(os.path.join(d, "s8k.wav"), pcm, 8000),
        "8 kHz audio as a 16 kHz wav": None,
        "wav 48 kHz stereo": write_wav(os.path.join(d, "s48k2.wav"), pcm, 48000, 2),
        "wav 44.1 kHz stereo": write_wav(os.path.join(d, "s44k2.wav"), pcm, 44100, 2),
    }
    with wave.open(files["wav 8 kHz mono"]) as w:
        narrow = band_limited_resample(w.readframes(w.getnframes()), 8000, 16000)
    files["8 kHz audio as a 16 kHz wav"] = write_wav(os.path.join(d, "s8k16k.wav"), narrow)
    files["flac 16 kHz"] = encode(base, "flac")
    files["ogg/vorbis 44.1 kHz stereo"] = encode(files["wav 44.1 kHz stereo"], "ogg")
    for fmt, src in (("opus", "wav 48 kHz stereo"), ("mp3", "wav 44.1 kHz stereo")):
        out = encode(files[src], fmt)
        if out:
            files["%s (from %s)" % (fmt, src)] = out
        else:
            print("   this libsndfile cannot write %s: not tested" % fmt)
    if os.environ.get("STENO_FORMATS") == "short":
        # sanitizer builds: one resampled stereo WAV and the two codecs; the plain build
        # runs every variant
        keep = ("wav 16 kHz mono", "wav 48 kHz stereo", "flac 16 kHz",
                "ogg/vorbis 44.1 kHz stereo")
        files = {k: v for k, v in files.items() if k in keep}
    # the server enforces Deepgram's ingest limit: sending as fast as it accepts must not trip it
    with Server("--engine", "pocketsphinx", "--max-rate", "1.25") as srv:
        def run(item):
            name, path = item
            return name, transcribe("--url", srv.url, "--speed", "max", "--close-timeout",
                                    "30000", "--verbose", path)
        # two at a time: each is paced at the provider's rate, the server decodes in parallel
        with ThreadPoolExecutor(2) as pool:
            results = dict(pool.map(run, files.items()))
        causes = {c["close_cause"] for c in srv.api("/connections")["connections"]}
    if causes != {"CloseStream"}:
        fail("every stream should end with CloseStream, not %s (RATE: sent too fast)" % causes)
    wers = {}
    for name, r in results.items():
        if r.returncode != 0:
            fail("%s: exit %d: %s" % (name, r.returncode, r.stderr))
        wers[name] = wer(ref, r.stdout)
        fmt = [l for l in r.stderr.splitlines() if "Hz," in l]
        print("   %-34s WER %5.1f%%   %s" % (name, wers[name], fmt[0].split(": ", 2)[-1]
                                              if fmt else ""))
    for name, w in wers.items():
        if name == "8 kHz audio as a 16 kHz wav" or name not in wers:
            continue  # a yardstick, not a path under test
        against = "8 kHz audio as a 16 kHz wav" if name == "wav 8 kHz mono" else "wav 16 kHz mono"
        if w > wers[against] + TOLERANCE:
            fail("%s: WER %.1f%% against %.1f%% for the %s (limit +%.1f points)"
                 % (name, w, wers[against], against, TOLERANCE))


if __name__ == "__main__":
    sys.exit(run_tests([test_every_format_gives_the_same_transcript]))
