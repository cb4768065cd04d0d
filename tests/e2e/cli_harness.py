"""Shared pieces of the CLI's end-to-end tests: the local server, running steno-transcribe,
the librivox speech and its references, and audio files made from it.

Environment (set by meson): STENO_SERVER, STENO_TRANSCRIBE, STENO_SOURCE_ROOT, and for some
tests STENO_DICTATE, STENO_MAKE_AUDIO.
"""

import ctypes
import json
import os
import struct
import subprocess
import sys
import urllib.request
import warnings
import wave

sys.path.insert(0, os.path.join(os.environ["STENO_SOURCE_ROOT"], "tests", "integration", "server"))
sys.path.insert(0, os.path.join(os.environ["STENO_SOURCE_ROOT"], "tests", "audio"))
from wer import wer, read_transcriptions  # noqa: E402,F401

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # noqa: E402  (an independent converter: not the SDK's resampler)

DATA = "/usr/share/pocketsphinx/test/data/librivox"
PREFIX = "sense_and_sensibility_01_austen_64kb-"
ALL = ["0870", "0880", "0890", "0920", "0930"]
SKIP = 77


class Failure(Exception):
    pass


def fail(msg):
    raise Failure(msg)


def have_speech():
    return os.path.exists(os.path.join(DATA, PREFIX + "0870.wav"))


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

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def transcribe(*args, timeout=120, env=None, input=None):
    """Runs steno-transcribe to its end; `input` (bytes) goes to its stdin."""
    r = subprocess.run([os.environ["STENO_TRANSCRIBE"], *args], capture_output=True,
                       timeout=timeout, env=env, input=input)
    r.stdout, r.stderr = r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")
    return r


def start(*args, env=None):
    """steno-transcribe in the background, stdout and stderr piped."""
    return subprocess.Popen([os.environ["STENO_TRANSCRIBE"], *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def reference(ids):
    refs = read_transcriptions(os.path.join(DATA, "transcription"))
    return " ".join(refs[PREFIX + i] for i in ids)


def read_pcm(ids, gap_s=0.5):
    """16 kHz mono PCM bytes of the recordings back to back, with gaps of silence."""
    out = b""
    for i in ids:
        with wave.open(os.path.join(DATA, PREFIX + i + ".wav")) as r:
            out += r.readframes(r.getnframes())
        out += b"\0\0" * int(16000 * gap_s)
    return out


def write_wav(path, pcm16k, rate=16000, channels=1):
    """Writes 16 kHz mono PCM as a WAV at another rate / channel count (audioop's converter)."""
    data = pcm16k
    if rate != 16000:
        data, _ = audioop.ratecv(data, 2, 1, 16000, rate, None)
    if channels == 2:
        data = audioop.tostereo(data, 2, 1.0, 1.0)
    with wave.open(path, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(data)
    return path


class _SrcData(ctypes.Structure):
    _fields_ = [("data_in", ctypes.POINTER(ctypes.c_float)),
                ("data_out", ctypes.POINTER(ctypes.c_float)),
                ("input_frames", ctypes.c_long), ("output_frames", ctypes.c_long),
                ("input_frames_used", ctypes.c_long), ("output_frames_gen", ctypes.c_long),
                ("end_of_input", ctypes.c_int), ("src_ratio", ctypes.c_double)]


def band_limited_resample(pcm, rate_in, rate_out):
    """Mono 16-bit PCM converted with libsamplerate's best sinc converter: an independent,
    band-limited resampler (audioop's is linear and leaves images above the old Nyquist)."""
    lib = ctypes.CDLL("libsamplerate.so.0")
    n = len(pcm) // 2
    samples = struct.unpack("<%dh" % n, pcm)
    fin = (ctypes.c_float * n)(*[v / 32768.0 for v in samples])
    m = int(n * rate_out / rate_in) + 64
    fout = (ctypes.c_float * m)()
    d = _SrcData(fin, fout, n, m, 0, 0, 1, rate_out / rate_in)
    if lib.src_simple(ctypes.byref(d), 0, 1) != 0:  # 0: SRC_SINC_BEST_QUALITY
        fail("libsamplerate failed")
    out = [max(-32768, min(32767, int(round(fout[i] * 32768.0))))
           for i in range(d.output_frames_gen)]
    return struct.pack("<%dh" % len(out), *out)


def run_tests(tests):
    if not have_speech():
        print("pocketsphinx-testdata is not installed")
        return SKIP
    passed = failed = 0
    for t in tests:
        print("== " + t.__name__, flush=True)
        try:
            t()
            passed += 1
        except Failure as e:
            print("FAIL: %s" % e, flush=True)
            failed += 1
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0
