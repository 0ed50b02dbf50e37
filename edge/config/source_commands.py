"""The `csi:N` and `exec:COMMAND` camera sources as argument lists (used by the config checks and the camera).

`csi:N` runs `rpicam-vid` (`libcamera-vid` where that is its name, before Raspberry Pi OS bookworm) for camera N,
writing MJPEG to stdout: `--camera N --codec mjpeg [--width W --height H] [--framerate F] -t 0 --nopreview
--flush -o -` (`-t 0`: run until stopped; `--flush`: each frame is written as soon as it is encoded).
`exec:COMMAND` is split with `shlex` (quotes as in a shell, but no shell runs it).
"""

from __future__ import annotations

import shlex
import shutil

CSI_TOOLS = ("rpicam-vid", "libcamera-vid")


def csi_tool() -> str | None:
    """The path of `rpicam-vid` (or `libcamera-vid`) on PATH, or None."""
    for name in CSI_TOOLS:
        path = shutil.which(name)
        if path:
            return path
    return None


def command_for(source: str, *, width: int = 0, height: int = 0, frame_rate: float = 0.0) -> list[str]:
    """The argument list a `csi:N` or `exec:COMMAND` source runs (`ValueError` when it cannot be built)."""
    if source.startswith("exec:"):
        try:
            argv = shlex.split(source[len("exec:") :])
        except ValueError as e:  # "No closing quotation"
            raise ValueError(f"exec: the command cannot be split into arguments: {e}") from None
        if not argv:
            raise ValueError("exec: needs a command, e.g. exec:ffmpeg -i rtsp://cam/stream -f mjpeg -")
        return argv
    index = source[len("csi:") :]
    if not index.isdigit():
        raise ValueError(f"{source!r}: csi: takes a camera index, e.g. csi:0")
    tool = csi_tool()
    if tool is None:
        raise ValueError("csi: needs rpicam-vid (or libcamera-vid) on PATH: apt install rpicam-apps")
    argv = [tool, "--camera", index, "--codec", "mjpeg"]
    if width and height:
        argv += ["--width", str(width), "--height", str(height)]
    if frame_rate:
        argv += ["--framerate", f"{frame_rate:g}"]
    return [*argv, "-t", "0", "--nopreview", "--flush", "-o", "-"]
