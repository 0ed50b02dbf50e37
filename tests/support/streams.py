"""Real MJPEG and H.264 made by ffmpeg for the source tests, and a stand-in `rpicam-vid` on PATH.

There is no CSI camera on a test machine (nor on CI), so `install_rpicam_standin()` writes an executable named
`rpicam-vid` that accepts the flags the daemon passes (`--camera N --codec mjpeg --width W --height H
--framerate F -t 0 --nopreview --flush -o -`), checks them, and execs ffmpeg with the same size, rate and codec,
writing real MJPEG to stdout from a clip. What it does is read from a mode file at every start, so a test can
make the "camera" die, hang, fail to start or write garbage, and come back:

    ok          MJPEG until killed
    die N       N frames, then exit 3 with a message on stderr
    fail        "ERROR: *** no cameras available ***" on stderr, exit 255 (rpicam-vid's own words)
    hang N      N frames, then nothing (the process stays, its output open)
    garbage     random bytes, no JPEG, forever
"""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest

FFMPEG = shutil.which("ffmpeg")

STANDIN = r"""#!/bin/bash
# Stand-in for rpicam-vid (tests only: there is no CSI camera here). Same flags in, real MJPEG out (ffmpeg).
set -u
echo "$$ $*" >> "@LOG@"
cam="" codec="" w=640 h=480 fps=30 t="" out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --camera) cam="$2"; shift 2;;
    --codec) codec="$2"; shift 2;;
    --width) w="$2"; shift 2;;
    --height) h="$2"; shift 2;;
    --framerate) fps="$2"; shift 2;;
    -t|--timeout) t="$2"; shift 2;;
    -o|--output) out="$2"; shift 2;;
    -n|--nopreview|--flush) shift;;
    *) echo "rpicam-vid stand-in: unknown option $1" >&2; exit 2;;
  esac
done
if [ "$codec" != mjpeg ] || [ "$out" != - ] || [ "$t" != 0 ] || [ -z "$cam" ]; then
  echo "rpicam-vid stand-in: expected --camera N --codec mjpeg -t 0 -o -" >&2; exit 2
fi
read -r mode n < "@MODE@"
ff=(@FFMPEG@ -hide_banner -loglevel error -nostdin -re -stream_loop -1 -i "@CLIP@" -vf "scale=$w:$h" -r "$fps"
    -c:v mjpeg -q:v 4 -f mjpeg)
case "$mode" in
  ok) exec "${ff[@]}" -;;
  die) "${ff[@]}" -frames:v "$n" -; echo "ERROR: *** camera frontend has timed out! ***" >&2; exit 3;;
  fail) echo "ERROR: *** no cameras available ***" >&2; exit 255;;
  hang) "${ff[@]}" -frames:v "$n" -; exec sleep 3600;;
  garbage) exec @PYTHON@ -c 'import os,sys,time
while True:
    sys.stdout.buffer.write(os.urandom(65536).replace(b"\xff", b"\x00")); sys.stdout.flush(); time.sleep(0.05)';;
esac
"""


def need_ffmpeg() -> str:
    if FFMPEG is None:
        pytest.skip("ffmpeg not installed (apt-get install ffmpeg)")
    return FFMPEG


def mjpeg_bytes(clip: Path, frames: int, size: tuple[int, int] = (320, 240)) -> bytes:
    """`frames` frames of a clip as a raw MJPEG stream (concatenated JPEGs), as ffmpeg writes it to a pipe."""
    cmd = [need_ffmpeg(), "-hide_banner", "-loglevel", "error", "-nostdin", "-stream_loop", "-1", "-i", str(clip),
           "-vf", f"scale={size[0]}:{size[1]}", "-frames:v", str(frames), "-c:v", "mjpeg", "-q:v", "4", "-f", "mjpeg",
           "-"]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, check=True, timeout=60).stdout


def h264_clip(src: Path, out: Path, seconds: float, fps: int = 10, size: tuple[int, int] = (320, 240)) -> Path:
    """An H.264 (baseline, a key frame every second) Matroska clip of `seconds`, looping `src`."""
    cmd = [need_ffmpeg(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-stream_loop", "-1", "-i", str(src),
           "-t", str(seconds), "-vf", f"scale={size[0]}:{size[1]}", "-r", str(fps), "-c:v", "libx264",
           "-profile:v", "baseline", "-pix_fmt", "yuv420p", "-g", str(fps), "-preset", "veryfast", "-an",
           str(out)]  # fmt: skip
    subprocess.run(cmd, capture_output=True, check=True, timeout=120)
    return out


class RpicamStandin:
    """The stand-in `rpicam-vid` in `bin/` (put it first on PATH), its mode file and its call log."""

    def __init__(self, root: Path, clip: Path) -> None:
        import sys

        self.bin = root / "bin"
        self.bin.mkdir(parents=True, exist_ok=True)
        self.mode_file, self.log = root / "mode", root / "calls.log"
        self.set("ok")
        self.log.write_text("")
        script = STANDIN
        for key, value in {"@LOG@": self.log, "@MODE@": self.mode_file, "@FFMPEG@": need_ffmpeg(), "@CLIP@": clip,
                           "@PYTHON@": sys.executable}.items():  # fmt: skip
            script = script.replace(key, str(value))
        exe = self.bin / "rpicam-vid"
        exe.write_text(script)
        exe.chmod(exe.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)

    def set(self, mode: str, n: int = 0) -> None:
        """What the next start does (see the module docstring)."""
        self.mode_file.write_text(f"{mode} {n}\n")

    def calls(self) -> list[tuple[int, list[str]]]:
        """(pid, arguments) of every start so far."""
        out = []
        for line in self.log.read_text().splitlines():
            pid, _, args = line.partition(" ")
            out.append((int(pid), args.split()))
        return out


SYSTEM_PYTHON = "/usr/bin/python3"
RTSP_SERVER = Path(__file__).with_name("rtsp_server.py")


def rtsp_server_available() -> str | None:
    """None when GStreamer's RTSP server can run here, else why not (for a skip reason)."""
    probe = "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"
    try:
        ok = subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        ok = False
    if not ok:
        return ("GStreamer's RTSP server is not installed (apt-get install python3-gi gir1.2-gst-rtsp-server-1.0 "
                "gstreamer1.0-plugins-good gstreamer1.0-plugins-bad)")  # fmt: skip
    return None


class RtspServer:
    """tests/support/rtsp_server.py as a child: a real RTSP server for an H.264 clip on 127.0.0.1:`port`.

    `start()` (again after `kill()`: same port) waits until it listens; `setups` are the Transport headers of
    the SETUP requests it got (what the client asked for).
    """

    def __init__(self, clip: Path, port: int) -> None:
        self.clip, self.port = clip, port
        self.proc: subprocess.Popen[str] | None = None
        self.setups: list[str] = []

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/stream"

    def start(self) -> RtspServer:
        import selectors
        import threading

        self.proc = subprocess.Popen([SYSTEM_PYTHON, str(RTSP_SERVER), str(self.port), str(self.clip)],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
        assert self.proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        line = self.proc.stdout.readline() if sel.select(20) else ""
        sel.close()
        if line.strip() != "ready":
            self.kill()
            raise RuntimeError(f"the RTSP server did not start: {line!r}")
        proc = self.proc

        def read() -> None:
            for out in proc.stdout:  # type: ignore[union-attr]
                if out.startswith("setup "):
                    self.setups.append(out[6:].strip())

        threading.Thread(target=read, daemon=True).start()
        return self

    def kill(self) -> None:
        """Kill the server (SIGKILL: no goodbye to clients) and wait for it; idempotent."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(10)
            self.proc = None
