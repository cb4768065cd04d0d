"""A private PulseAudio daemon with a null sink whose monitor is the default source: what a
test plays into the sink with paplay, PortAudio captures from its default device (ALSA's
pulse plugin). Works as root and as a user; everything lives in a temporary directory and
the daemon is killed when the test ends.
"""

import os
import shutil
import subprocess
import tempfile
import time


class Pulse:
    def __init__(self, rate=48000, channels=2):
        self.dir = tempfile.mkdtemp(prefix="steno-pulse-")
        self.socket = os.path.join(self.dir, "native")
        self.env = dict(os.environ)
        self.env.update({
            "HOME": self.dir,
            "XDG_RUNTIME_DIR": self.dir,
            "XDG_CONFIG_HOME": os.path.join(self.dir, "config"),
            "PULSE_RUNTIME_PATH": os.path.join(self.dir, "runtime"),
            "PULSE_STATE_PATH": os.path.join(self.dir, "state"),
            "PULSE_SERVER": "unix:" + self.socket,
        })
        self.env.pop("DISPLAY", None)
        self.env.pop("DBUS_SESSION_BUS_ADDRESS", None)
        self.log = open(os.path.join(self.dir, "pulseaudio.log"), "w")
        # -n: no default.pa, only the modules named here; no idle exit; no autospawn
        self.proc = subprocess.Popen(
            ["pulseaudio", "--daemonize=no", "--exit-idle-time=-1", "-n",
             "--use-pid-file=false", "--disallow-module-loading=false", "--log-target=stderr",
             "-L", "module-null-sink sink_name=steno_sink rate=%d channels=%d "
                   "sink_properties=device.description=steno-null" % (rate, channels),
             "-L", "module-native-protocol-unix auth-anonymous=1 socket=" + self.socket,
             "-L", "module-always-sink"],
            env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        self.rate, self.channels = rate, channels
        deadline = time.monotonic() + 15
        while True:
            r = subprocess.run(["pactl", "info"], env=self.env, capture_output=True, text=True)
            if r.returncode == 0:
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("pulseaudio did not start: " + self.read_log())
            time.sleep(0.05)
        subprocess.run(["pactl", "set-default-sink", "steno_sink"], env=self.env, check=True)
        subprocess.run(["pactl", "set-default-source", "steno_sink.monitor"], env=self.env,
                       check=True)

    def read_log(self):
        try:
            with open(os.path.join(self.dir, "pulseaudio.log")) as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def play(self, path, wait=True):
        """Plays a file into the null sink (its monitor is what the microphone hears)."""
        p = subprocess.Popen(["paplay", "--device=steno_sink", path], env=self.env)
        if wait:
            if p.wait(timeout=120) != 0:
                raise RuntimeError("paplay failed on " + path)
        return p

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
