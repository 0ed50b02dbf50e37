"""From camera frames to classification results in frame order: pacing, one decode per frame, the worker pool.

The main loop calls `poll()`; it takes the newest frame whenever the pool has room and the next
classification is due (`max_rate`), and hands it to the workers (`edge.inference.workers`) while it publishes what came
back. Each frame is decoded once, at the size the models need (`edge.frames.decode`: a JPEG at 1/2, 1/4 or 1/8 when
the model input allows), and one input tensor is made per job: by the main thread when there is one worker
(the decode of the next frame overlaps the invoke of this one), by the worker itself when there are several
(decodes run in parallel too). A frame is decoded only when it is classified, never for nothing. `poll()` sleeps on one
event set by the camera (a frame that was waited for) and by the workers (a result), so it never waits on
one while the other has something.

A job is a list of (crop, input format) pairs, one per classification of the frame: the whole frame, or one
per region of interest (`edge.service.streams`), each crop cut from the same decoded image.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from edge.frames.decode import decode_for
from edge.frames.frame import Frame
from edge.frames.regions import WHOLE_FRAME, crop
from edge.inference.preprocess import InputFormat, preprocess
from edge.inference.workers import Job, Result, Runner, WorkerPool


@dataclass(frozen=True)
class Task:
    """One classification of each frame: the part of it (a box in fractions of the frame) and the model input."""

    input: InputFormat
    box: tuple[float, float, float, float] = WHOLE_FRAME


class FrameSupply(Protocol):
    """Where the flow takes frames from (`edge.sources.camera.Camera`): the newest frame captured after `since`
    (None when there is none yet), and a callback the supply calls when a frame that was asked for arrives."""

    on_frame: Callable[[], None] | None

    def take(self, since: float = ...) -> Frame | None: ...


def prepare(frame: Frame, tasks: Sequence[Task]) -> Job:
    """Decode a camera frame once (a JPEG at the smallest size that still gives every crop its model's input
    size) and make each task's tensor from its crop.

    A frame that does not decode makes a job with no tensors and an error, so the order is kept.
    """
    gray = all(t.input.channels == 1 for t in tasks)
    if frame.jpeg is not None:
        needs = [(math.ceil(t.input.width / t.box[2]), math.ceil(t.input.height / t.box[3])) for t in tasks]
        image = decode_for(frame.jpeg, needs, gray)
        if image is None:
            return Job(frame.seq, frame.captured_at, (), error=f"frame {frame.seq} is not a decodable JPEG image")
    else:
        image = frame.pixels
    return Job(frame.seq, frame.captured_at, tuple(preprocess(crop(image, t.box), t.input) for t in tasks))


class FrameFlow:
    """Frames from a `Camera` through a `WorkerPool`; `poll()` returns results in frame order.

    Args:
        camera: the started (or about to start) camera; its `on_frame` is set to wake `poll()`.
        tasks: what each frame is classified with (one `Task` per tensor of a job).
        runners: per worker, one runner per task (`Classifier.infer` of that worker's interpreters).
        max_rate: classifications per second at most; 0 = as fast as the workers take frames.
    """

    def __init__(self, camera: FrameSupply, tasks: Sequence[Task], runners: Sequence[Sequence[Runner]],
                 max_rate: float = 0.0) -> None:  # fmt: skip
        self.camera, self.tasks = camera, tuple(tasks)
        self.period = 1.0 / max_rate if max_rate > 0 else 0.0
        self._paced = bool(getattr(camera, "paced_by_consumer", False))  # frames read only once taken
        self._wake = threading.Event()
        camera.on_frame = self._wake.set
        self._pool = self._new_pool(runners)
        self._next_slot = time.monotonic()
        self.on_take: Callable[[Frame], None] | None = None  # sees each frame handed out (the live page's tap)

    def _new_pool(self, runners: Sequence[Sequence[Runner]]) -> WorkerPool:
        # One worker: the main thread decodes the next frame while it invokes. Several: each decodes its own
        # frame, so decoding runs in parallel too and the main thread only takes frames and publishes.
        self._decode_here = len(runners) == 1
        tasks = self.tasks
        return WorkerPool(runners, on_result=self._wake.set, prepare=lambda frame: prepare(frame, tasks))

    def wake(self) -> None:
        """Make a waiting `poll()` return early (thread-safe; not from a signal handler)."""
        self._wake.set()

    @property
    def resting(self) -> bool:
        """True while the next classification is not due yet (`max_rate`)."""
        return bool(self.period) and self._next_slot > time.monotonic()

    @property
    def idle(self) -> bool:
        """No frame in the workers or waiting for its turn to be handed out."""
        return self._pool.pending == 0

    def poll(self, timeout: float) -> list[Result]:
        """Feed due frames to the workers and return the results ready, waiting at most `timeout` s for one."""
        deadline = time.monotonic() + timeout
        while True:
            self._wake.clear()
            now = time.monotonic()
            self._feed(now)
            done = self._pool.completed()
            if done:
                return done
            now = time.monotonic()
            if now >= deadline:
                return []
            wait = deadline - now
            if self.period and self._next_slot > now and self._pool.has_room():
                wait = min(wait, self._next_slot - now)
            self._wake.wait(wait)

    def _feed(self, now: float) -> None:
        while self._pool.has_room() and now >= self._next_slot:
            # With max_rate, a live camera's frame is the first one captured once the turn came, not the one
            # captured up to a frame interval before it: the turn waits that little for a fresh frame.
            since = self._next_slot if self.period and not self._paced else float("-inf")
            frame = self.camera.take(since)
            if frame is None:
                return
            if self.on_take is not None:
                self.on_take(frame)
            if self._decode_here:
                self._pool.submit(prepare(frame, self.tasks))
            else:
                self._pool.submit(Job(frame.seq, frame.captured_at, (), pending=frame))
            now = time.monotonic()
            self._next_slot = max(self._next_slot + self.period, now) if self.period else now

    def swap(self, tasks: Sequence[Task], runners: Sequence[Sequence[Runner]]) -> list[Result]:
        """Classify with new models from the next frame on; the old pool's last results, in order."""
        left = self._pool.close()
        self.tasks = tuple(tasks)
        self._pool = self._new_pool(runners)
        return left

    def close(self, timeout: float = 2.0) -> list[Result]:
        """Stop the workers after the frames they have; their results, in order."""
        return self._pool.close(timeout)

