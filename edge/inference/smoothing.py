"""Per-frame classifications turned into calm label changes and heartbeats: a pure state machine (time passed in).

Each frame votes for a label (or for "nothing above the threshold", None):
- the best class votes for itself when its score reaches `threshold`, otherwise the frame votes None;
- hysteresis: a class other than the current label needs `hysteresis` more than the current label's score
  (and `threshold + hysteresis` to leave "nothing"); otherwise the frame keeps voting for the current label.
  Entering a label takes a higher score than keeping it, so a scene on the border does not flicker.

Modes:
- `stable`: a new label is published once `frames` frames in a row voted for it;
- `average`: frames vote on their scores averaged over the last `frames` frames; a new vote is published;
- `off`: every frame is published, as it is (no hysteresis, no dwell).

Dwell: after a change, the next change waits until `min_dwell_s` have passed; if the new label still holds
then, it is published then (nothing is lost, only delayed). The current state is re-published every
`heartbeat_s` seconds (0: never).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edge.inference.postprocess import Prediction, top_k

_UNKNOWN = -2  # no state yet (distinct from None: "nothing above the threshold")


@dataclass(frozen=True)
class Publish:
    """What to publish now: why (`change`, `heartbeat` or `frame`) and the predictions (best first)."""

    reason: str
    predictions: tuple[Prediction, ...]
    unknown: bool = False  # no label because the best class scored below its calibrated threshold

    @property
    def index(self) -> int | None:
        """The published label's class index, None when nothing scored above the threshold."""
        return self.predictions[0].index if self.predictions else None


class Smoother:
    """Turns a stream of score vectors into `Publish` decisions.

    Args:
        labels: class names, index = class.
        mode: `stable`, `average` or `off` (the config's `smoothing.mode` choices).
        frames: frames a new label must hold (`stable`) or the moving-average window (`average`).
        top_k: how many classes a published message carries.
        threshold: minimum score (moving average in `average` mode) for a class to count.
        hysteresis: how much more than the current label's score a new label needs (0: none).
        min_dwell_s: the least time between two published changes (0: none).
        heartbeat_s: re-publish the current state at this interval in seconds; 0 disables.
        floors: calibrated per-class thresholds (`[model] calibrated`): the best class votes for itself only when
            its score also reaches its own floor, else the frame votes None and is "unknown".
    """

    def __init__(
        self,
        labels: Sequence[str],
        *,
        mode: str = "stable",
        frames: int = 3,
        top_k: int = 3,
        threshold: float = 0.0,
        hysteresis: float = 0.0,
        min_dwell_s: float = 0.0,
        heartbeat_s: float = 0.0,
        floors: np.ndarray | None = None,
    ) -> None:
        if mode not in ("stable", "average", "off"):
            raise ValueError(f"unknown smoothing mode {mode!r}")
        if frames < 1:
            raise ValueError(f"frames must be at least 1, got {frames}")
        self.labels = tuple(labels)
        self.mode, self.frames, self.top_k, self.threshold = mode, frames, top_k, threshold
        self.hysteresis, self.min_dwell_s, self.heartbeat_s = hysteresis, min_dwell_s, heartbeat_s
        self.floors = floors
        self._unknown = False  # the published None is an unknown (below a floor), not "nothing above the threshold"
        self._window: deque[np.ndarray] = deque(maxlen=frames)
        self._candidate: int | None = _UNKNOWN
        self._count = 0
        self._state: int | None = _UNKNOWN
        self._state_predictions: tuple[Prediction, ...] = ()
        self._last_publish: float | None = None
        self._changed_at: float | None = None  # the last time the published label changed (the first one too)
        self._dwell_from: float | None = None  # the last change from one published state to another

    @property
    def state(self) -> int | None:
        """The published class index; None for "nothing above the threshold"; -2 before the first publish."""
        return self._state

    @property
    def changed_at(self) -> float | None:
        """When (the caller's clock) the published label last changed; None before the first change."""
        return self._changed_at

    @property
    def current(self) -> Publish | None:
        """The state as last published (with the freshest scores that agreed with it), None before any."""
        if self._state == _UNKNOWN:
            return None
        return Publish("current", self._state_predictions, self._unknown)

    def vote(self, scores: np.ndarray) -> int | None:
        """The label one frame's scores vote for, given the current state (hysteresis applied)."""
        best = int(np.argmax(scores))
        top = float(scores[best])
        current = self._state
        if top < self.threshold or (self.floors is not None and top < self.floors[best]):
            return None
        if best == current or current == _UNKNOWN or self.hysteresis <= 0:
            return best
        if current is None:
            return best if top >= self.threshold + self.hysteresis else None
        kept = float(scores[current])
        return best if top >= kept + self.hysteresis or kept < self.threshold else current

    def update(self, scores: np.ndarray, now: float) -> Publish | None:
        """Feed one frame's class scores (in [0, 1]) at time `now` (seconds); what to publish, if anything."""
        scores = np.asarray(scores, dtype=np.float32).reshape(-1)
        if self.mode == "average":
            self._window.append(scores)
            scores = np.mean(np.stack(self._window), axis=0)
        preds = top_k(scores, self.labels, self.top_k, self.threshold)
        unknown = self.floors is not None and self._below_floor(scores)
        if self.mode == "off":
            label = None if unknown or not preds else preds[0].index
            return self._publish("frame", label, () if label is None else preds, now, unknown)
        label = self.vote(scores)
        if label == self._candidate:
            self._count += 1
        else:
            self._candidate, self._count = label, 1
        held = self.mode == "average" or self._count >= self.frames
        if label != self._state and held and self._dwelt(now):
            return self._publish("change", label, self._predictions_for(label, scores, preds), now,
                                 label is None and unknown)  # fmt: skip
        if label == self._state:
            self._state_predictions = self._predictions_for(label, scores, preds)  # fresher, for heartbeats
        if self._heartbeat_due(now):
            return self._publish("heartbeat", self._state, self._state_predictions, now, self._unknown)
        return None

    def heartbeat(self, now: float) -> Publish | None:
        """The heartbeat when it is due and no frame came (e.g. the camera is away); else None."""
        if self._heartbeat_due(now):
            return self._publish("heartbeat", self._state, self._state_predictions, now, self._unknown)
        return None

    def _below_floor(self, scores: np.ndarray) -> bool:
        best = int(np.argmax(scores))
        return bool(scores[best] >= self.threshold and scores[best] < self.floors[best])

    def _predictions_for(self, label: int | None, scores: np.ndarray,
                         preds: tuple[Prediction, ...]) -> tuple[Prediction, ...]:  # fmt: skip
        """The frame's predictions with the published label first (hysteresis can keep a label that is second)."""
        if label is None:
            return ()
        if preds and preds[0].index == label:
            return preds
        chosen = Prediction(label, self.labels[label], float(scores[label]))
        return (chosen, *(p for p in preds if p.index != label))[: self.top_k]

    def _dwelt(self, now: float) -> bool:
        return self._dwell_from is None or now - self._dwell_from >= self.min_dwell_s

    def _heartbeat_due(self, now: float) -> bool:
        return (
            self.heartbeat_s > 0
            and self._state != _UNKNOWN
            and self._last_publish is not None
            and now - self._last_publish >= self.heartbeat_s
        )

    def _publish(self, reason: str, label: int | None, preds: tuple[Prediction, ...], now: float,
                 unknown: bool = False) -> Publish:  # fmt: skip
        if label != self._state:
            if self._state != _UNKNOWN:
                self._dwell_from = now
            self._changed_at = now
        self._state, self._state_predictions, self._last_publish, self._unknown = label, preds, now, unknown
        return Publish(reason, preds, unknown)
