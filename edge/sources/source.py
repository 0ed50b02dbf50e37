"""The camera source interface: what the grabber thread (`edge.sources.camera.Camera`) reads frames through.

Two sources implement it today: `edge.sources.opencv.OpenCvSource` (V4L2, files, RTSP, HTTP) and
`edge.sources.pipe.PipeSource` (a child process writing MJPEG: `csi:N`, `exec:`). A new one implements this
protocol and is picked in `Camera._source` from `edge.sources.camera.source_kind`.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class CameraSource(Protocol):
    """One opened camera, read by one thread: `open()`, then `grab()` per frame and `retrieve()` only for the frames
    someone will classify; `close()` is idempotent and the source may be opened again (a reconnect)."""

    raw: bool  # retrieve() gives JPEG bytes (decoded by the consumer at the size it needs), not BGR images
    fps: float  # the source's own frame rate when it says one, else 0
    paced: bool  # a file: read at its own frame rate to behave like a camera
    description: str  # what the log says when it opens (`640x480 MJPG at 25 fps, undecoded JPEG frames`)
    failure: str  # why the last open or grab failed, in words ("" when the source cannot tell)

    def open(self) -> str | None:
        """Open the source; None on success, else why it cannot be opened now (retried with backoff)."""
        ...

    def grab(self) -> bool:
        """Read the next frame cheaply (a packet, or a frame the backend decodes); False when none came."""
        ...

    def retrieve(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The grabbed frame as (JPEG bytes, None) or (None, BGR image); (None, None) when it is unusable."""
        ...

    def rewind(self) -> bool:
        """Back to the first frame (a file that loops); False where a source cannot."""
        ...

    def close(self) -> None:
        """Release everything the source holds (idempotent)."""
        ...
