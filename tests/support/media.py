"""Real media for the daemon tests: video files written with OpenCV, and an MJPEG-over-HTTP server.

`MjpegServer` serves `multipart/x-mixed-replace` JPEG frames (what IP cameras and `mjpg-streamer` send) from a
`ThreadingHTTPServer` on a free loopback port; `stop()` kills it (connections are cut) and `start()` brings it
back on the same port, so a test can take the camera away and return it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np

from tests.support.mosquitto import free_port

BOUNDARY = "edgeframe"


def write_video(path: Path, frames: Sequence[np.ndarray], fps: float = 25.0) -> Path:
    """Write BGR frames as an MJPG .avi (OpenCV's FFmpeg writer); returns the path."""
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened(), f"cannot write {path}"
    for f in frames:
        writer.write(f)
    writer.release()
    return path


def solid_frames(n: int, size: tuple[int, int] = (96, 128)) -> list[np.ndarray]:
    """n distinct frames (a moving bar on a gradient) of size (h, w)."""
    h, w = size
    out = []
    for i in range(n):
        img = np.zeros((h, w, 3), np.uint8)
        img[:, :, 1] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]
        x = (i * 7) % w
        img[:, x : x + 8, 2] = 255
        out.append(img)
    return out


class MjpegServer:
    """An MJPEG HTTP stream of the given images at `fps`, on 127.0.0.1:`port` at path /stream.mjpg."""

    def __init__(self, images: Sequence[np.ndarray], fps: float = 20.0, port: int = 0) -> None:
        self.jpegs = [cv2.imencode(".jpg", img)[1].tobytes() for img in images]
        self.fps = fps
        self.port = port or free_port()
        self.frames_sent = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._alive = threading.Event()
        self.frozen = threading.Event()  # set: connections stay open but no frame is sent (a hung camera)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        srv = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                if self.path.split("?", 1)[0] != "/stream.mjpg":
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                i = 0
                try:
                    while srv._alive.is_set():
                        if srv.frozen.is_set():
                            time.sleep(0.05)
                            continue
                        jpg = srv.jpegs[i % len(srv.jpegs)]
                        self.wfile.write(
                            f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpg)}\r\n\r\n".encode()
                        )
                        self.wfile.write(jpg + b"\r\n")
                        self.wfile.flush()
                        srv.frames_sent += 1
                        i += 1
                        time.sleep(1.0 / srv.fps)
                except (BrokenPipeError, ConnectionResetError, OSError):
                    pass
                # returning closes the connection: the client sees the stream end

        return Handler

    def start(self) -> MjpegServer:
        """Serve (again) on the same port."""
        self._alive.set()
        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and cut every open stream (idempotent)."""
        self._alive.clear()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> MjpegServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def read_frames(path: Path) -> list[np.ndarray]:
    """Every frame of a video file, decoded with OpenCV (BGR)."""
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames
