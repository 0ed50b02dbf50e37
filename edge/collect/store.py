"""Collected frames on disk, within a hard quota: `<dir>/<predicted label>/<stem>.jpg` + `<stem>.json`.

The trainer's own folder layout, so a person can review them and `edge-train` can use them. A writer thread
encodes and writes (the classifier never waits on the disk: a full queue drops the frame and counts it);
files are written under a temporary name, flushed and renamed, readable by the service user only (0600 in
0700 folders); the oldest pairs are pruned as soon as the total passes `max_bytes`, and nothing is written
while the file system's free space is below `min_free_bytes`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import re
import shutil
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from edge.files import write_durably

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^\w.-]+")


def folder_name(label: str | None) -> str:
    """A label as a folder name (the trainer reads the folder name back as the class): `none` for no label."""
    name = _UNSAFE.sub("_", label or "none").strip("._") or "none"
    return name[:100]


class FrameStore:
    """Writes collected frames and their sidecars on a background thread, within the quota.

    Args:
        directory: where the label folders go (created 0700).
        max_bytes: the quota for all collected files; the oldest are pruned first.
        min_free_bytes: nothing is written while the file system has less free space than this.
        jpeg_quality: JPEG quality of the saved frames.
        queue_size: frames waiting for the writer at most; more are dropped (and counted).
    """

    def __init__(self, directory: Path, *, max_bytes: int, min_free_bytes: int, jpeg_quality: int = 90,
                 queue_size: int = 8) -> None:  # fmt: skip
        self.directory, self.max_bytes, self.min_free_bytes = Path(directory), max_bytes, min_free_bytes
        self.jpeg_quality = jpeg_quality
        self._queue: queue.Queue = queue.Queue(queue_size)
        self._lock = threading.Lock()
        self._files: deque[tuple[str, Path, int]] = deque()  # (stem, jpeg path, bytes of the pair), oldest first
        self._bytes = self._collected = self._dropped = self._pruned = self._low_disk = 0
        self._thread: threading.Thread | None = None

    def start(self) -> FrameStore:
        """Create the folder, index what is there already (oldest first), start the writer."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        found = []
        for jpeg in self.directory.glob("*/*.jpg"):
            size = jpeg.stat().st_size + (jpeg.with_suffix(".json").stat().st_size
                                          if jpeg.with_suffix(".json").exists() else 0)  # fmt: skip
            found.append((jpeg.stem, jpeg, size))
        self._files.extend(sorted(found))
        self._bytes = sum(size for *_, size in found)
        self._prune()
        self._thread = threading.Thread(target=self._run, name="collect", daemon=True)
        self._thread.start()
        return self

    def submit(self, image: np.ndarray | Callable[[], np.ndarray | None], sidecar: dict, stem: str) -> bool:
        """Queue a frame (BGR or gray uint8, or a function making it on the writer's thread: a decode, returning
        None when the frame is not to be kept after all, raising OSError when it cannot be) and its sidecar; False
        when the writer is behind (dropped)."""
        try:
            self._queue.put_nowait((image, sidecar, stem))
            return True
        except queue.Full:
            with self._lock:
                self._dropped += 1
            return False

    def counters(self) -> dict[str, int]:
        """`collected`, `collect_dropped` (writer behind or disk low), `collect_pruned`, `collect_bytes`."""
        with self._lock:
            return {"collected": self._collected, "collect_dropped": self._dropped + self._low_disk,
                    "collect_pruned": self._pruned, "collect_bytes": self._bytes}  # fmt: skip

    def close(self, timeout: float = 2.0) -> None:
        """Write what is queued (within `timeout`), then stop the writer."""
        if self._thread is None:
            return
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout)
        self._thread.join(timeout)
        self._thread = None

    # -- the writer thread -----------------------------------------------------------------------------------

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                self._write(*item)
            except (OSError, cv2.error) as e:  # a full or read-only disk: counted, logged, never fatal
                log.warning("collect: cannot write %s: %s", item[2], e)
                with self._lock:
                    self._dropped += 1

    def _write(self, image: np.ndarray | Callable[[], np.ndarray | None], sidecar: dict, stem: str) -> None:
        if shutil.disk_usage(self.directory).free < self.min_free_bytes:
            with self._lock:
                self._low_disk += 1
            return
        image = image() if callable(image) else image
        if image is None:
            return
        ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        if not ok:
            raise OSError("JPEG encoding failed")
        folder = self.directory / folder_name(sidecar.get("label"))
        folder.mkdir(mode=0o700, exist_ok=True)
        text = json.dumps(sidecar, separators=(",", ":")).encode()
        jpeg_path = folder / f"{stem}.jpg"
        write_durably(folder / f"{stem}.json", text)
        write_durably(jpeg_path, jpeg.tobytes())  # the image last: a .jpg always has its sidecar
        with self._lock:
            self._files.append((stem, jpeg_path, len(text) + jpeg.size))
            self._bytes += len(text) + jpeg.size
            self._collected += 1
        self._prune()

    def _prune(self) -> None:
        """Delete the oldest pairs until the total is within the quota."""
        while True:
            with self._lock:
                if self._bytes <= self.max_bytes or not self._files:
                    return
                _, jpeg, size = self._files.popleft()
                self._bytes -= size
                self._pruned += 1
            for path in (jpeg, jpeg.with_suffix(".json")):
                path.unlink(missing_ok=True)

