"""A child process writing MJPEG to its stdout as a camera: `csi:N` (the Pi's own cameras) and `exec:COMMAND`.

`csi:N` runs `rpicam-vid` (or `libcamera-vid`, its name before Raspberry Pi OS bookworm) for camera N:
`--camera N --codec mjpeg --width W --height H --framerate F -t 0 --nopreview --flush -o -`, the size and rate
from `[camera]` (left out when 0: the tool's defaults). libcamera-only cameras (Camera Modules 2/3, HQ, AI
camera) cannot be opened by OpenCV's V4L2 backend; this is the official tool's way out. `exec:COMMAND` runs any
command that writes MJPEG to stdout (`ffmpeg ... -f mjpeg -`, `gst-launch-1.0 ... ! jpegenc ! fdsink`); it is
split with `shlex` and started without a shell.

The stream is split into frames by `edge.frames.mjpeg.JpegSplitter` (bounded). The child runs in its own process
group; `close()` sends SIGTERM to the group, then SIGKILL. A child that exits, or writes no complete JPEG for
`timeout_s`, is a lost camera: `grab()` returns False with `failure` saying why, with the tail of its stderr
(URLs in it with their credentials masked).
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable

import numpy as np

from edge.config.urls import redact_text
from edge.frames.mjpeg import JpegSplitter

READ_CHUNK = 1 << 16
STDERR_LINES = 5
TERM_GRACE_S = 0.5


class PipeSource:
    """A child process's MJPEG stdout as a frame source (the camera thread's `grab()`/`retrieve()` protocol).

    Args:
        argv: makes the command (`edge.config.source_commands.command_for`) at each start; a `ValueError` from it
            says why it cannot start.
        name: how logs name the source.
        timeout_s: a child that writes no complete frame for this long is killed and counts as lost.
        max_frame_bytes: frames larger than this are dropped (bounds memory).
    """

    raw = True  # frames are JPEG bytes
    paced = False  # a live source: its own rate
    fps = 0.0

    def __init__(self, argv: Callable[[], list[str]], name: str, *, timeout_s: float = 10.0,
                 max_frame_bytes: int = 32 << 20, poll_s: float = 0.25,
                 stopping: Callable[[], bool] = lambda: False) -> None:  # fmt: skip
        self.make_argv, self.name, self.timeout_s = argv, name, timeout_s
        self.max_frame_bytes, self.poll_s, self.stopping = max_frame_bytes, poll_s, stopping
        self.argv: list[str] = []
        self.description = ""
        self.failure = ""  # why the last grab() failed (logged once per distinct reason by the camera)
        self._proc: subprocess.Popen[bytes] | None = None
        self._sel: selectors.BaseSelector | None = None
        self._splitter = JpegSplitter(max_frame_bytes)
        self._frames: deque[bytes] = deque(maxlen=1)  # complete frames not yet grabbed: only the newest counts
        self._current: bytes | None = None
        self._stderr: deque[str] = deque(maxlen=STDERR_LINES)
        self._stderr_part = b""

    def open(self) -> str | None:
        """Start the child; None on success, else why it could not start."""
        self.close()
        self._splitter = JpegSplitter(self.max_frame_bytes)
        self._stderr.clear()
        self._frames.clear()
        try:
            self.argv = self.make_argv()
        except ValueError as e:
            return str(e)
        try:
            self._proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, start_new_session=True, close_fds=True)  # fmt: skip
        except OSError as e:
            return f"cannot start {self.argv[0]}: {e.strerror or e}"
        self.description = f"{os.path.basename(self.argv[0])} (pid {self._proc.pid}) writing MJPEG"
        self._sel = selectors.DefaultSelector()
        for stream in (self._proc.stdout, self._proc.stderr):
            assert stream is not None
            os.set_blocking(stream.fileno(), False)
            self._sel.register(stream, selectors.EVENT_READ)
        return None

    def grab(self) -> bool:
        """Wait for the next complete JPEG frame; False when the child exited, hung, or the camera is stopping."""
        deadline = time.monotonic() + self.timeout_s
        while not self._frames:
            if self.stopping():
                self.failure = "stopping"
                return False
            if self._proc is None or self._sel is None:
                self.failure = "not running"
                return False
            left = deadline - time.monotonic()
            if left <= 0:
                self.failure = f"no complete JPEG frame for {self.timeout_s:g} s{self._skipped()}; killed it"
                return False
            for key, _ in self._sel.select(min(left, self.poll_s)):
                if not self._read(key.fileobj):
                    return False
        self._current = self._frames.popleft()
        return True

    def _read(self, stream: object) -> bool:
        """Read what is there from stdout or stderr; False when stdout ended (the child is exiting)."""
        assert self._proc is not None
        try:
            data = os.read(stream.fileno(), READ_CHUNK)  # type: ignore[attr-defined]
        except BlockingIOError:
            return True
        if stream is self._proc.stderr:
            if data:
                self._keep_stderr(data)
            else:
                assert self._sel is not None
                self._sel.unregister(stream)
            return True
        if not data:
            self.failure = self._exit_reason()
            return False
        self._frames.extend(self._splitter.feed(data))
        return True

    def _keep_stderr(self, data: bytes) -> None:
        lines = (self._stderr_part + data).split(b"\n")
        self._stderr_part = lines.pop()[-1000:]
        for line in lines:
            if line.strip():
                self._stderr.append(redact_text(line.decode("utf-8", "replace").strip()[:300]))

    def _skipped(self) -> str:
        return f" ({self._splitter.skipped} bytes of other data)" if self._splitter.skipped else ""

    def _exit_reason(self) -> str:
        assert self._proc is not None
        try:
            code = self._proc.wait(2.0)
        except subprocess.TimeoutExpired:
            return "closed its output" + self._stderr_tail()
        with contextlib.suppress(OSError):  # what it wrote last before exiting
            rest = self._proc.stderr.read() if self._proc.stderr else b""
            if rest:
                self._keep_stderr(rest + b"\n")
        what = f"killed by signal {-code}" if code < 0 else f"exited with status {code}"
        return what + self._skipped() + self._stderr_tail()

    def stderr_tail(self) -> str:
        """The child's last stderr lines, joined with ' | '."""
        return " | ".join(self._stderr)

    def _stderr_tail(self) -> str:
        tail = self.stderr_tail()
        return f": {tail}" if tail else ""

    def retrieve(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The last grabbed frame as (JPEG bytes, None)."""
        frame, self._current = self._current, None
        return (np.frombuffer(frame, np.uint8), None) if frame is not None else (None, None)

    def rewind(self) -> bool:
        return False

    def close(self) -> None:
        """Stop the child and everything it started: SIGTERM to its process group, SIGKILL after a grace."""
        proc, self._proc = self._proc, None
        if self._sel is not None:
            self._sel.close()
            self._sel = None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(TERM_GRACE_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        else:  # it exited by itself: whatever it left in its group goes too
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
