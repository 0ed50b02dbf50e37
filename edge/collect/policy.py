"""Which frames the device keeps for retraining: the ones it finds hard (pure; time passed in).

Policies, each off at 0/false (`[collect]`):
- `below_score`: the best score is below it (the model is unsure);
- `margin`: the best minus the second best is below it (two classes are close);
- `on_change`: the frames around a label change: the last one before it and the first one after it;
- `every_s`: one frame every so many seconds (a sample of the ordinary);
- `on_drift`: every frame while the stream's drift state is `drifting` (the frames the next model must learn).
At most `max_per_hour` frames are kept in any hour (a sliding window), whatever the policies say, and a frame
showing what a frame kept from the same stream in the last `dedupe_s` seconds showed (a near-duplicate by its
perceptual hash, `edge.frames.similar`) is not kept again: it takes no slot of the hour.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from edge.frames.similar import NEAR, near
from edge.inference.postprocess import Prediction

HOUR_S = 3600.0


@dataclass(frozen=True)
class CollectRules:
    """The `[collect]` policies (0 or False: off) and the hourly cap."""

    below_score: float = 0.0
    margin: float = 0.0
    on_change: bool = False
    every_s: float = 0.0
    max_per_hour: int = 120
    on_drift: bool = False


class HourlyCap:
    """At most `per_hour` frames kept in any hour (a sliding window), shared by every stream of a device (and by
    the classifier's thread, which asks `full`, and the store's, which takes the slots)."""

    def __init__(self, per_hour: int) -> None:
        self.per_hour = per_hour
        self._kept: deque[float] = deque()  # times of kept frames within the last hour
        self._lock = threading.Lock()
        self.refused = 0  # frames a policy wanted but the cap refused

    def admit(self, now: float) -> bool:
        """Take one slot at `now`; False (and counted) when the cap is reached."""
        with self._lock:
            if self._full(now):
                self.refused += 1
                return False
            self._kept.append(now)
            return True

    def full(self, now: float) -> bool:
        """No slot is free at `now` (then counted as refused): a frame need not even be looked at."""
        with self._lock:
            if self._full(now):
                self.refused += 1
                return True
            return False

    def _full(self, now: float) -> bool:
        while self._kept and now - self._kept[0] >= HOUR_S:
            self._kept.popleft()
        return len(self._kept) >= self.per_hour


class RecentPictures:
    """The hashes of the pictures one stream kept in the last `window_s` seconds (at most `limit`, newest kept).

    A still scene then fills the quota with one picture per window instead of one per frame.
    """

    def __init__(self, window_s: float, limit: int = 4096) -> None:
        self.window_s, self.limit = window_s, limit
        self._kept: deque[tuple[float, int]] = deque()  # (time, hash), oldest first

    def duplicate(self, picture: int, now: float) -> bool:
        """The picture is a near-duplicate of one kept within the window (always False with a window of 0)."""
        while self._kept and now - self._kept[0][0] >= self.window_s:
            self._kept.popleft()
        return any(near(picture, kept, NEAR) for _, kept in self._kept)

    def add(self, picture: int, now: float) -> None:
        """The picture was kept at `now`."""
        if self.window_s > 0:
            self._kept.append((now, picture))
            while len(self._kept) > self.limit:
                self._kept.popleft()


class CollectPolicy:
    """Decides, frame by frame, whether to keep it and why (one per stream: `every_s` samples each).

    Args:
        rules: the policies.
        cap: the device's hourly cap (a new one of `rules.max_per_hour` when not given).
    """

    def __init__(self, rules: CollectRules, cap: HourlyCap | None = None) -> None:
        self.rules = rules
        self.cap = cap or HourlyCap(rules.max_per_hour)
        self._last_sample: float | None = None

    def reasons(self, predictions: Sequence[Prediction], now: float, changed: bool,
                drifting: bool = False) -> list[str]:  # fmt: skip
        """Why this frame should be kept (empty: it should not), before the hourly cap.

        Args:
            predictions: the frame's best classes, best first (at least two for `margin`).
            now: the caller's clock, seconds.
            changed: the published label changed with this frame.
            drifting: the stream's drift state is `drifting`.
        """
        r, out = self.rules, []
        best = predictions[0].score if predictions else 0.0
        if r.below_score > 0 and best < r.below_score:
            out.append("below_score")
        if r.margin > 0 and len(predictions) >= 2 and best - predictions[1].score < r.margin:
            out.append("margin")
        if r.on_change and changed:
            out.append("on_change")
        if r.every_s > 0 and (self._last_sample is None or now - self._last_sample >= r.every_s):
            self._last_sample = now
            out.append("every_s")
        if r.on_drift and drifting:
            out.append("on_drift")
        return out
