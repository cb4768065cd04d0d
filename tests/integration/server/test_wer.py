#!/usr/bin/python3
"""test_wer: steno-server's pocketsphinx engine transcribes real speech as
accurately as pocketsphinx_continuous does on the same files.

Every LibriVox recording shipped with pocketsphinx-testdata is streamed, as
fast as the server accepts it, through `steno-server --engine pocketsphinx`
over the Deepgram live protocol, then CloseStream; the finals' transcripts
are joined and scored (word error rate) against the reference transcription
shipped beside the recordings, and so is the output of pocketsphinx_continuous
run on the same file now. The server may not be more than 2 WER points worse
on any file. The finals must also tile the audio in order and end with
Metadata, the things a client relies on to acknowledge audio.

Environment: STENO_SERVER = path of the steno-server binary. Exit status 77
(skipped) when pocketsphinx_continuous or the test recordings are missing.
"""

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import websockets

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wer  # noqa: E402

DATA = "/usr/share/pocketsphinx/test/data/librivox"
SKIP = 77
SLACK = 2.0  # WER points the server may lose against pocketsphinx_continuous
PARALLEL = 2  # streams (and continuous runs) at once: one per core
CHUNK = 3200  # bytes per WebSocket frame: 100 ms of 16 kHz linear16


def model_dir():
    try:
        out = subprocess.run(["pkg-config", "--variable=modeldir", "pocketsphinx"],
                             capture_output=True, text=True, check=True).stdout.strip()
        if out:
            return out
    except (OSError, subprocess.CalledProcessError):
        pass
    return "/usr/share/pocketsphinx/model"


def pcm_of(path):
    """The PCM samples of a 16 kHz mono 16-bit WAV file (the 'data' chunk)."""
    with open(path, "rb") as f:
        b = f.read()
    assert b[:4] == b"RIFF" and b[8:12] == b"WAVE", path
    i = 12
    rate = None
    while i + 8 <= len(b):
        cid, size = b[i:i + 4], int.from_bytes(b[i + 4:i + 8], "little")
        body = b[i + 8:i + 8 + size]
        if cid == b"fmt ":
            channels = int.from_bytes(body[2:4], "little")
            rate = int.from_bytes(body[4:8], "little")
            bits = int.from_bytes(body[14:16], "little")
            assert (channels, rate, bits) == (1, 16000, 16), path
        elif cid == b"data":
            assert rate, path
            return body
        i += 8 + size + (size & 1)
    raise AssertionError("no data chunk in " + path)


async def continuous(path, models, sem):
    """pocketsphinx_continuous's transcript of one file."""
    async with sem:
        proc = await asyncio.create_subprocess_exec(
            "pocketsphinx_continuous", "-infile", path,
            "-hmm", os.path.join(models, "en-us", "en-us"),
            "-lm", os.path.join(models, "en-us", "en-us.lm.bin"),
            "-dict", os.path.join(models, "en-us", "cmudict-en-us.dict"),
            "-logfn", os.devnull,
            stdout=asyncio.subprocess.PIPE)
        out, _ = await proc.communicate()
        assert proc.returncode == 0, f"pocketsphinx_continuous failed on {path}"
        return " ".join(out.decode().split())


async def stream(port, path, sem):
    """Streams one file through the server; returns (transcript, finals)."""
    pcm = pcm_of(path)
    uri = (f"ws://127.0.0.1:{port}/v1/listen?encoding=linear16&sample_rate=16000"
           "&channels=1&model=nova-3&language=en")
    finals, metadata = [], None
    async with sem:
        async with websockets.connect(uri, max_size=None) as ws:
            async def send():
                for off in range(0, len(pcm), CHUNK):
                    await ws.send(pcm[off:off + CHUNK])
                await ws.send(json.dumps({"type": "CloseStream"}))

            sender = asyncio.create_task(send())
            async for raw in ws:
                msg = json.loads(raw)
                if msg.get("type") == "Results" and msg.get("is_final"):
                    finals.append(msg)
                elif msg.get("type") == "Metadata":
                    metadata = msg
            await sender
            code = ws.close_code
    name = os.path.basename(path)
    assert code == 1000, f"{name}: closed with {code}, not 1000 after CloseStream"
    assert metadata is not None, f"{name}: no Metadata after CloseStream"
    assert finals, f"{name}: no final result"
    end = 0.0
    for m in finals:
        start, dur = m["start"], m["duration"]
        assert abs(start - end) < 2e-3, f"{name}: final at {start} after audio up to {end}"
        end = start + dur
        for w in m["channel"]["alternatives"][0].get("words", []):
            assert start - 1e-3 <= w["start"] <= w["end"] <= end + 1e-3, f"{name}: word {w}"
    audio_s = len(pcm) / 2 / 16000
    assert abs(end - audio_s) < 0.01, f"{name}: finals cover {end} s of {audio_s} s"
    text = " ".join(m["channel"]["alternatives"][0]["transcript"] for m in finals)
    return " ".join(text.split())


def start_server(binary):
    proc = subprocess.Popen(
        [binary, "--engine", "pocketsphinx", "--port", "0", "--workers", str(PARALLEL)],
        stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()  # the server prints it once it accepts connections
    m = re.search(r"listening on [^ ]*:(\d+)", line)
    if not m:
        proc.kill()
        proc.wait()
        raise AssertionError(f"unexpected first line from steno-server: {line!r}")
    return proc, int(m.group(1))


async def run(binary, files, refs, models):
    proc, port = start_server(binary)
    try:
        sem = asyncio.Semaphore(PARALLEL)
        t0 = time.monotonic()
        base = await asyncio.gather(*(continuous(f, models, sem) for f in files))
        t1 = time.monotonic()
        got = await asyncio.gather(*(stream(port, f, sem) for f in files))
        t2 = time.monotonic()
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=60)
    assert rc == 0, f"steno-server exited with {rc}"

    audio = sum(len(pcm_of(f)) / 32000 for f in files)
    print(f"{len(files)} files, {audio:.1f} s of audio; pocketsphinx_continuous "
          f"{t1 - t0:.1f} s, steno-server {t2 - t1:.1f} s ({audio / (t2 - t1):.1f}x real time, "
          f"{PARALLEL} streams at once)")
    print(f"{'file':<44} {'server':>7} {'contin.':>7}")
    failures = []
    for f, srv, cont in zip(files, got, base):
        uid = os.path.splitext(os.path.basename(f))[0]
        ref = refs[uid]
        w_srv, w_cont = wer.wer(ref, srv), wer.wer(ref, cont)
        print(f"{uid:<44} {w_srv:6.1f}% {w_cont:6.1f}%")
        print(f"    reference:  {' '.join(wer.normalize(ref))}")
        print(f"    server:     {srv}")
        print(f"    continuous: {cont}")
        if w_srv > w_cont + SLACK:
            failures.append(f"{uid}: server WER {w_srv:.1f}% > continuous {w_cont:.1f}% + {SLACK}")
    assert not failures, "; ".join(failures)


def main():
    binary = os.environ.get("STENO_SERVER")
    assert binary and os.access(binary, os.X_OK), "STENO_SERVER must name the steno-server binary"
    if not shutil.which("pocketsphinx_continuous"):
        print("SKIP: pocketsphinx_continuous not installed (package pocketsphinx)")
        return SKIP
    trans = os.path.join(DATA, "transcription")
    files = sorted(os.path.join(DATA, f) for f in os.listdir(DATA) if f.endswith(".wav")) \
        if os.path.isdir(DATA) else []
    if not files or not os.path.exists(trans):
        print(f"SKIP: no recordings in {DATA} (package pocketsphinx-testdata)")
        return SKIP
    refs = wer.read_transcriptions(trans)
    missing = [f for f in files if os.path.splitext(os.path.basename(f))[0] not in refs]
    assert not missing, f"no reference transcription for {missing}"
    asyncio.run(run(binary, files, refs, model_dir()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
