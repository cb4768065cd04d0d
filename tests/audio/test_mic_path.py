"""The microphone path for real: speech played into a PulseAudio null sink with paplay,
captured by steno-transcribe --mic from the default PortAudio device (the sink's monitor),
transcribed by the local server, must come within 3 WER points of the same speech sent as a
file. With the sink at 44.1 kHz and at 48 kHz stereo, so mixdown and resampling run.

Environment: STENO_MIC_RATES (e.g. "44100,48000"), and cli_harness's.
"""

import os
import signal
import sys
import tempfile

sys.path.insert(0, os.path.join(os.environ["STENO_SOURCE_ROOT"], "tests", "e2e"))
from cli_harness import (ALL, Server, fail, read_pcm, reference, run_tests, start,  # noqa: E402
                         wer, write_wav)
from pulse import Pulse  # noqa: E402

TOLERANCE = 3.0
work = tempfile.mkdtemp(prefix="steno-mic-")
speech = write_wav(os.path.join(work, "speech.wav"), read_pcm(ALL))
silence = write_wav(os.path.join(work, "silence.wav"), b"\0\0" * 16000)
ref = reference(ALL)


def capture(srv, rate, baseline_args=None):
    """One microphone run with the sink at `rate` stereo; optionally the file run beside it."""
    with Pulse(rate, 2) as pa:
        cli = start("--mic", "--mic-rate", str(rate), "--url", srv.url, "--stats", env=pa.env)
        base = start(*baseline_args) if baseline_args else None
        try:
            # the CLI says when its capture stream runs; only then is anything played
            while True:
                line = cli.stderr.readline()
                if not line:
                    fail("the CLI ended before capturing: rc %s" % cli.wait())
                if "capturing from" in line:
                    print("   " + line.strip())
                    break
            pa.play(speech)
            # paplay returns once its stream drained into the sink; a second of silence
            # behind the speech proves the speech went through the monitor before it
            pa.play(silence)
            cli.send_signal(signal.SIGINT)  # Ctrl-C: finalize, drain, print the rest
            out, err = cli.communicate(timeout=60)
        finally:
            if cli.poll() is None:
                cli.kill()
        base_out = base.communicate(timeout=120) if base else None
    if cli.returncode != 0:
        fail("the mic run at %d Hz exited %d: %s" % (rate, cli.returncode, err))
    for line in err.splitlines():
        if "input overflows" in line or "samples dropped" in line:
            print("   " + line.strip())
    return out, base_out, base.returncode if base else None


def test_mic_matches_file_within_3_points():
    rates = [int(r) for r in os.environ.get("STENO_MIC_RATES", "44100,48000").split(",")]
    with Server("--engine", "pocketsphinx") as srv:
        results = []
        file_wer = None
        for n, rate in enumerate(rates):
            baseline = ("--url", srv.url, "--speed", "max", speech) if n == 0 else None
            out, base_out, base_rc = capture(srv, rate, baseline)
            if base_out is not None:
                if base_rc != 0:
                    fail("the file run exited %d: %s" % (base_rc, base_out[1]))
                file_wer = wer(ref, base_out[0])
                print("file: WER %.1f%%" % file_wer)
            w = wer(ref, out)
            print("mic, sink %d Hz stereo: WER %.1f%%" % (rate, w))
            if not out.strip():
                fail("the mic run at %d Hz printed no transcript" % rate)
            results.append((rate, w))
        for rate, w in results:
            if w > file_wer + TOLERANCE:
                fail("mic at %d Hz: WER %.1f%% vs %.1f%% for the file (limit +%.0f points)"
                     % (rate, w, file_wer, TOLERANCE))


if __name__ == "__main__":
    sys.exit(run_tests([test_mic_matches_file_within_3_points]))
