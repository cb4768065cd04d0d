"""Runs a command inside a private PulseAudio daemon (null sink, its monitor the default
source), with STENO_TEST_TONE set to a WAV of a 440 Hz tone at -12 dBFS peak that the
command may play into the sink. Exit status: the command's; 77 (skip) without pulseaudio.

usage: with_pulse.py [--rate HZ] [--channels N] -- COMMAND...
"""

import math
import os
import shutil
import struct
import subprocess
import sys
import wave

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pulse import Pulse  # noqa: E402


def write_tone(path, rate, channels, seconds=4.0):
    with wave.open(path, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        frames = bytearray()
        for i in range(int(rate * seconds)):
            v = int(round(32767 * 0.25 * math.sin(2 * math.pi * 440 * i / rate)))
            frames += struct.pack("<h", v) * channels
        w.writeframes(bytes(frames))


def main():
    args = sys.argv[1:]
    rate, channels = 48000, 2
    while args and args[0] != "--":
        if args[0] == "--rate":
            rate = int(args[1])
        elif args[0] == "--channels":
            channels = int(args[1])
        args = args[2:]
    cmd = args[1:]
    if not shutil.which("pulseaudio") or not shutil.which("paplay"):
        print("pulseaudio/paplay are not installed (tools/setup installs them)")
        return 77
    with Pulse(rate, channels) as p:
        tone = os.path.join(p.dir, "tone.wav")
        write_tone(tone, rate, channels)
        env = dict(p.env)
        env["STENO_TEST_TONE"] = tone
        return subprocess.run(cmd, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
