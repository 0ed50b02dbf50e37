"""Inference on worker threads, one interpreter each, results handed back in the order jobs were given.

A `Job` is one frame's prepared input tensors, one per (crop, model) the frame is classified with (or the
frame itself, which the worker prepares with the pool's `prepare`); a worker runs them all on its own
interpreters (`runners[i]` for tensor `i`) and posts a `Result`. With N workers, N
frames are in inference at once (LiteRT releases the GIL in invoke), each on a 1-thread interpreter if the
cores are to be shared out that way; results come back through `completed()` strictly in job order, so what
is published never goes backwards. At most `capacity` jobs (workers + 1: one prepared while all are busy)
are in the pool, so memory and latency stay bounded. The threads are named `infer-N`; a worker that dies is
reported by the thread hook like any other, and a failing invoke is a `Result` with `error`, not a dead thread.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge.errors import EdgeError


@dataclass(frozen=True)
class Job:
    """One frame's work: the frame's seq and capture time, and one input tensor per (crop, model); or why there
    is nothing to run (a frame that did not decode keeps its place in the order)."""

    frame: int
    captured_at: float
    tensors: tuple[np.ndarray, ...]
    error: str | None = None
    pending: Any = None  # a camera frame the worker prepares itself (the pool's `prepare`), when tensors is empty


@dataclass(frozen=True)
class Result:
    """A job's outcome: one score vector per tensor and the ms each invoke took, or the error that stopped it."""

    frame: int
    captured_at: float
    scores: tuple[np.ndarray, ...] = ()
    inference_ms: tuple[float, ...] = ()
    error: str | None = None


Runner = Callable[[np.ndarray], tuple[np.ndarray, float]]  # tensor -> (scores, invoke ms), raises EdgeError


class WorkerPool:
    """Worker threads, each with its own runners (interpreters); jobs in, ordered results out.

    Args:
        runners: per worker, the runner for each tensor position of a job (`Classifier.infer`).
        on_result: called on a worker thread when a result is ready (wakes the main loop).
    """

    def __init__(self, runners: Sequence[Sequence[Runner]], on_result: Callable[[], None] = lambda: None,
                 prepare: Callable[[Any], Job] | None = None) -> None:  # fmt: skip
        if not runners:
            raise ValueError("a pool needs at least one worker")
        self.capacity = len(runners) + 1
        self._on_result, self._prepare = on_result, prepare
        self._cond = threading.Condition()
        self._jobs: deque[tuple[int, Job]] = deque()
        self._done: dict[int, Result] = {}
        self._next_in, self._next_out = 0, 0  # order numbers: given to the next job, due to be handed out next
        self._closing = False
        self._threads = [
            threading.Thread(target=self._work, args=(list(r),), name=f"infer-{i}", daemon=True)
            for i, r in enumerate(runners)
        ]
        for t in self._threads:
            t.start()

    @property
    def pending(self) -> int:
        """Jobs given and not yet handed out as results."""
        with self._cond:
            return self._next_in - self._next_out

    def has_room(self) -> bool:
        """True when `submit()` would take a job now."""
        return self.pending < self.capacity

    def submit(self, job: Job) -> None:
        """Queue a job (the caller checks `has_room()`: the pool never holds more than `capacity`)."""
        with self._cond:
            self._jobs.append((self._next_in, job))
            self._next_in += 1
            self._cond.notify()

    def completed(self) -> list[Result]:
        """Results ready now, in job order (a finished job waits here for the ones given before it)."""
        out = []
        with self._cond:
            while self._next_out in self._done:
                out.append(self._done.pop(self._next_out))
                self._next_out += 1
        return out

    def close(self, timeout: float = 5.0) -> list[Result]:
        """Finish the jobs given, stop the threads; the remaining results in order (unfinished ones are lost)."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(max(0.0, deadline - time.monotonic()))
        return self.completed()

    def _work(self, runners: list[Runner]) -> None:
        while True:
            with self._cond:
                while not self._jobs and not self._closing:
                    self._cond.wait()
                if not self._jobs:
                    return
                order, job = self._jobs.popleft()
            if job.pending is not None and self._prepare is not None:
                job = self._prepare(job.pending)  # this worker decodes its own frame
            result = _run(job, runners)
            with self._cond:
                self._done[order] = result
            self._on_result()


def _run(job: Job, runners: list[Runner]) -> Result:
    if job.error is not None:
        return Result(job.frame, job.captured_at, error=job.error)
    scores, times = [], []
    try:
        for tensor, runner in zip(job.tensors, runners, strict=False):
            s, ms = runner(tensor)
            scores.append(s)
            times.append(ms)
    except EdgeError as e:
        return Result(job.frame, job.captured_at, error=str(e))
    return Result(job.frame, job.captured_at, tuple(scores), tuple(times))

