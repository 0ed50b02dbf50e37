"""Is the model still seeing the world it was trained for? A pure state machine over a sliding window (time passed in).

Every classified frame adds one cell to the window: the class the model predicts and the bin of its top score
(`edge.inference.reference.score_bin`), and whether the frame is unknown (top score below its class's calibrated
threshold). Over the last `window_s` seconds the tracker compares the window's distribution over these
(class, score bin) cells with the reference's (the held-out images' class frequencies times their per-class
top-score histograms) by the **Jensen-Shannon divergence** (base 2, so 0 = the same, 1 = nothing in common).
Chosen over the population stability index because it is bounded, symmetric and defined when a cell is empty on
either side (a 600 s window of a few scenes leaves most cells empty; PSI would need an arbitrary epsilon).

States: `learning` (fewer than `min_frames` frames in the window, or the reference being learnt on the device),
`ok`, `drifting` (the divergence reached `threshold`, or the unknown rate reached `unknown_rate`),
`unavailable` (no usable reference: the reason says why). Hysteresis: `drifting` ends only when both fall below
`(1 - hysteresis)` times their thresholds, so a window on the border does not flap.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from edge.inference.reference import Reference

STATES = ("ok", "drifting", "learning", "unavailable")
EVALUATE_EVERY_S = 2.0  # the divergence is computed at most this often, or every 1/100 of a shorter window
# (a frame costs an O(1) update; the judgement is what costs: with 1,000 classes, 30 us)


@dataclass(frozen=True)
class DriftRules:
    """The `[drift]` settings the tracker needs."""

    window_s: float = 600.0
    min_frames: int = 300
    threshold: float = 0.3
    unknown_rate: float = 0.25
    hysteresis: float = 0.25


@dataclass(frozen=True)
class DriftState:
    """The drift state as published: `state`, the divergence `score` and its `threshold`, the `unknown_rate`,
    the `frames` in the window, `since` (the caller's clock) and, when unavailable, the `reason`."""

    state: str
    score: float | None
    threshold: float
    unknown_rate: float | None
    window_s: float
    frames: int
    since: float
    reason: str | None = None


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence in bits between two distributions (any non-negative weights, normalised)."""
    p, q = p / p.sum(), q / q.sum()
    support = p > 0
    return _js_on_support(p[support], q[support])


def _js_on_support(p: np.ndarray, q: np.ndarray) -> float:
    """JS divergence from the cells where p > 0 alone: p and q are those cells of two distributions summing to 1.

    A cell with p = 0 adds q / 2 bits (there m = q / 2), so the q cells off p's support add (1 - sum q) / 2: the
    cost is the window's few occupied cells, not every (class, bin) cell of a 1,000-class model.
    """
    m = 0.5 * (p + q)
    kl_p = float(np.sum(p * np.log2(p / m)))
    seen = q > 0
    kl_q = max(0.0, 1.0 - float(q.sum())) + float(np.sum(q[seen] * np.log2(q[seen] / m[seen])))
    return max(0.0, min(1.0, 0.5 * kl_p + 0.5 * kl_q))


def reference_cells(reference: Reference) -> np.ndarray:
    """The reference's distribution over (class, score bin) cells, flattened class-major."""
    return (reference.frequency[:, None] * reference.top_score).reshape(-1)


class DriftTracker:
    """Feeds on one stream's class scores; `update()` returns the new `DriftState` when the state changes.

    Args:
        rules: the window, minimum, thresholds and hysteresis.
        reference: the model's reference; None with `reason`: the state is `unavailable` for good.
        now: the caller's clock at the start (seconds).
    """

    def __init__(self, rules: DriftRules, reference: Reference | None, now: float, reason: str | None = None):
        self.rules, self.reference = rules, reference
        self._reason = reason or ("no reference" if reference is None else None)
        self._cells: deque[tuple[float, int, bool]] = deque()
        if reference is not None:
            ref = reference_cells(reference)
            self._ref = ref / ref.sum()
            self._counts = np.zeros(ref.size, np.int64)
            self._bins, self._thresholds = reference.bins, reference.threshold.tolist()
        self._unknown = 0
        self._score: float | None = None
        self._next_eval = now
        initial = "unavailable" if reference is None else "learning"
        self._state = DriftState(initial, None, rules.threshold, None, rules.window_s, 0, now, self._reason)

    @property
    def state(self) -> DriftState:
        return self._state

    @property
    def drifting(self) -> bool:
        return self._state.state == "drifting"

    def is_unknown(self, scores: np.ndarray) -> bool:
        """True when the frame's top score is below its class's calibrated threshold (False without a reference)."""
        if self.reference is None:
            return False
        best = int(np.argmax(scores))
        return bool(scores[best] < self.reference.threshold[best])

    def update(self, scores: np.ndarray, now: float) -> DriftState | None:
        """One frame's class scores at `now`; the new state when it changed, else None."""
        if self.reference is None:
            return None
        best = int(scores.argmax())
        top, bins = float(scores[best]), self._bins
        cell = best * bins + min(max(int(top * bins), 0), bins - 1)  # score_bin's rule, without numpy per frame
        unknown = top < self._thresholds[best]
        self._cells.append((now, cell, unknown))
        self._counts[cell] += 1
        self._unknown += unknown
        self._expire(now)
        if now < self._next_eval:
            return None
        self._next_eval = now + min(EVALUATE_EVERY_S, self.rules.window_s / 100)
        return self._judge(now)

    def _expire(self, now: float) -> None:
        cells, start = self._cells, now - self.rules.window_s
        while cells and cells[0][0] <= start:
            _, cell, unknown = cells.popleft()
            self._counts[cell] -= 1
            self._unknown -= unknown

    def _judge(self, now: float) -> DriftState | None:
        r, frames = self.rules, len(self._cells)
        occupied = np.flatnonzero(self._counts)
        score = _js_on_support(self._counts[occupied] / frames, self._ref[occupied]) if frames else None
        rate = self._unknown / frames if frames else None
        previous = self._state.state
        if frames < r.min_frames:
            state = "learning" if previous == "learning" else previous
        elif previous == "drifting":
            calm = score < r.threshold * (1 - r.hysteresis) and rate < r.unknown_rate * (1 - r.hysteresis)
            state = "ok" if calm else "drifting"
        else:
            state = "drifting" if score >= r.threshold or rate >= r.unknown_rate else "ok"
        since = self._state.since if state == previous else now
        self._state = DriftState(state, score, r.threshold, rate, r.window_s, frames, since, None)
        return self._state if state != previous else None
