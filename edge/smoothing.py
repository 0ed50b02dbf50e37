"""Debouncing of per-frame classifications into label changes and heartbeats: a pure state machine.

Modes:
- `stable`: the published label changes only after the same top-1 label (or "nothing above the
  threshold") held for `frames` consecutive frames;
- `average`: per-class moving average of the scores over the last `frames` frames; the label is the best
  class whose average is at least `threshold` (or nothing), published when that changes;
- `off`: every frame is published.

Besides changes, the current state is re-published every `heartbeat_s` seconds (0: never). The caller
passes time in, so the machine is deterministic and tested with tables.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edge.postprocess import Prediction, top_k

_UNKNOWN = -2  # no state yet (distinct from None: "nothing above the threshold")


@dataclass(frozen=True)
class Publish:
    """What to publish now: why (`change`, `heartbeat` or `frame`) and the predictions (best first)."""

    reason: str
    predictions: tuple[Prediction, ...]

    @property
    def index(self) -> int | None:
        """The published label's class index, None when nothing scored above the threshold."""
        return self.predictions[0].index if self.predictions else None


class Smoother:
    """Turns a stream of score vectors into `Publish` decisions.

    Args:
        labels: class names, index = class.
        mode: `stable`, `average` or `off`.
        frames: frames a new label must hold (`stable`) or the moving-average window (`average`).
        top_k: how many classes a published message carries.
        threshold: minimum score (moving average in `average` mode) for a class to count.
        heartbeat_s: re-publish the current state at this interval in seconds; 0 disables.
    """

    def __init__(
        self,
        labels: Sequence[str],
        *,
        mode: str = "stable",
        frames: int = 3,
        top_k: int = 3,
        threshold: float = 0.0,
        heartbeat_s: float = 0.0,
    ) -> None:
        if mode not in ("stable", "average", "off"):  # the config's choices (edge.config_schema.SMOOTHING_MODES)
            raise ValueError(f"unknown smoothing mode {mode!r}")
        if frames < 1:
            raise ValueError(f"frames must be at least 1, got {frames}")
        self.labels = tuple(labels)
        self.mode, self.frames, self.top_k, self.threshold, self.heartbeat_s = (
            mode,
            frames,
            top_k,
            threshold,
            heartbeat_s,
        )
        self._window: deque[np.ndarray] = deque(maxlen=frames)
        self._candidate: int | None = _UNKNOWN
        self._count = 0
        self._state: int | None = _UNKNOWN
        self._state_predictions: tuple[Prediction, ...] = ()
        self._last_publish: float | None = None

    @property
    def state(self) -> int | None:
        """The published class index; None for "nothing above the threshold"; -2 before the first publish."""
        return self._state

    def update(self, scores: np.ndarray, now: float) -> Publish | None:
        """Feed one frame's class scores (in [0, 1]) at time `now` (seconds); what to publish, if anything."""
        scores = np.asarray(scores, dtype=np.float32).reshape(-1)
        if self.mode == "average":
            self._window.append(scores)
            scores = np.mean(np.stack(self._window), axis=0)
        preds = top_k(scores, self.labels, self.top_k, self.threshold)
        label = preds[0].index if preds else None

        if self.mode == "off":
            return self._publish("frame", label, preds, now)
        if self.mode == "stable":
            if label == self._candidate:
                self._count += 1
            else:
                self._candidate, self._count = label, 1
            if label != self._state and self._count >= self.frames:
                return self._publish("change", label, preds, now)
        elif label != self._state:  # average: the window already smooths
            return self._publish("change", label, preds, now)

        if label == self._state:
            self._state_predictions = preds  # the latest frame that agrees with the state: fresher scores
        if self._heartbeat_due(now):
            return self._publish("heartbeat", self._state, self._state_predictions, now)
        return None

    def heartbeat(self, now: float) -> Publish | None:
        """The heartbeat when it is due and no frame came (e.g. the camera is away); else None."""
        if self._heartbeat_due(now):
            return self._publish("heartbeat", self._state, self._state_predictions, now)
        return None

    def _heartbeat_due(self, now: float) -> bool:
        return (
            self.heartbeat_s > 0
            and self._state != _UNKNOWN
            and self._last_publish is not None
            and now - self._last_publish >= self.heartbeat_s
        )

    def _publish(self, reason: str, label: int | None, preds: tuple[Prediction, ...], now: float) -> Publish:
        self._state, self._state_predictions, self._last_publish = label, preds, now
        return Publish(reason, preds)
