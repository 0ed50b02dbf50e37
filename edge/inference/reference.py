"""What a model's scores looked like on held-out images: the reference drift is judged against (pure).

The trainer builds it from its int8 scores on the validation images (`build_reference`) and writes it into the
model's embedded `metrics.json` under `"reference"`; the daemon reads it back (`parse_reference`), refusing a
malformed one with a line naming the field. Per class, by the class the model *predicts* (what the device sees):

- `frequency`: the share of held-out images predicted as the class;
- `top_score`: the histogram (fractions, `bins` equal-width bins over [0, 1]) of their top score;
- `threshold`: the calibrated threshold, the top score at or above which `coverage` (default 95 %) of the
  held-out images predicted as the class fall (the lower `1 - coverage` quantile); a frame whose best class
  scores below its class's threshold is "unknown" (`[model] calibrated`). By predicted class, not true class:
  the device only ever sees the prediction, so about `1 - coverage` of in-distribution frames are unknown.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

VERSION = 1
BINS = 5  # coarse: a window of a few scenes must not look foreign because each scene scores alike
COVERAGE = 0.95


@dataclass(frozen=True)
class Reference:
    """A model's held-out score distribution, per predicted class (index = class)."""

    labels: tuple[str, ...]
    frequency: np.ndarray  # (K,) sums to 1
    top_score: np.ndarray  # (K, bins) each row sums to 1, or is all 0 for a class never predicted
    threshold: np.ndarray  # (K,) calibrated per-class thresholds
    images: int
    coverage: float

    @property
    def bins(self) -> int:
        return int(self.top_score.shape[1])


def score_bin(score: float | np.ndarray, bins: int) -> Any:
    """The histogram bin of a score in [0, 1] (1.0 falls in the last bin)."""
    return np.minimum((np.asarray(score) * bins).astype(np.int64), bins - 1)


def build_reference(labels: Sequence[str], y_true: np.ndarray, scores: np.ndarray, *, bins: int = BINS,
                    coverage: float = COVERAGE) -> dict[str, Any]:  # fmt: skip
    """The JSON reference for held-out images: their true class indices and the model's (N, K) scores.

    Raises:
        ValueError: no images, or scores that do not match the labels.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or not len(scores) or scores.shape[1] != len(labels) or len(y_true) != len(scores):
        raise ValueError(f"a reference needs (N, {len(labels)}) scores of N > 0 images with N true classes")
    predicted, top = scores.argmax(axis=1), scores.max(axis=1)
    classes = []
    for c, label in enumerate(labels):
        mine = predicted == c
        hist = np.bincount(score_bin(top[mine], bins), minlength=bins).astype(np.float64)
        threshold = float(np.quantile(top[mine], 1.0 - coverage, method="lower")) if mine.any() else 0.0
        classes.append({"label": label, "frequency": round(float(mine.mean()), 6),
                        "top_score": [round(float(v), 6) for v in hist / max(1, mine.sum())],
                        "threshold": threshold})  # fmt: skip  (exact: rounding up would make ties unknown)
    return {"version": VERSION, "images": len(scores), "bins": bins, "coverage": coverage, "classes": classes}


def _number(value: Any, where: str, low: float = 0.0, high: float = 1.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{where}: {value!r} is not a finite number")
    if not low <= value <= high:
        raise ValueError(f"{where}: {value} is outside [{low:g}, {high:g}]")
    return float(value)


def parse_reference(doc: Any, labels: Sequence[str]) -> Reference:
    """The `reference` object of a `metrics.json`, checked against the model's labels.

    Raises:
        ValueError: one line naming the field that is wrong (`reference.classes[3].top_score: ...`).
    """
    if not isinstance(doc, dict):
        raise ValueError("reference: not a JSON object")
    if doc.get("version") != VERSION:
        raise ValueError(f"reference.version: {doc.get('version')!r}, this daemon reads version {VERSION}")
    images = doc.get("images")
    if isinstance(images, bool) or not isinstance(images, int) or images < 1:
        raise ValueError(f"reference.images: {images!r} is not a positive whole number")
    bins = doc.get("bins")
    if isinstance(bins, bool) or not isinstance(bins, int) or not 2 <= bins <= 100:
        raise ValueError(f"reference.bins: {bins!r} is not a whole number from 2 to 100")
    coverage = _number(doc.get("coverage"), "reference.coverage")
    classes = doc.get("classes")
    if not isinstance(classes, list) or len(classes) != len(labels):
        count = len(classes) if isinstance(classes, list) else "no"
        raise ValueError(f"reference.classes: {count} classes, the model has {len(labels)}")
    freq, hist, thr = [], [], []
    for i, (entry, label) in enumerate(zip(classes, labels, strict=True)):
        where = f"reference.classes[{i}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: not a JSON object")
        if entry.get("label") != label:
            raise ValueError(f"{where}.label: {entry.get('label')!r}, the model's class {i} is {label!r}")
        freq.append(_number(entry.get("frequency"), f"{where}.frequency"))
        thr.append(_number(entry.get("threshold"), f"{where}.threshold"))
        row = entry.get("top_score")
        if not isinstance(row, list) or len(row) != bins:
            raise ValueError(f"{where}.top_score: not a list of {bins} fractions")
        row = [_number(v, f"{where}.top_score[{j}]") for j, v in enumerate(row)]
        if sum(row) and abs(sum(row) - 1.0) > 1e-3:
            raise ValueError(f"{where}.top_score: the fractions sum to {sum(row):.4f}, not 1")
        hist.append(row)
    if abs(sum(freq) - 1.0) > 1e-3:
        raise ValueError(f"reference.classes: the frequencies sum to {sum(freq):.4f}, not 1")
    return Reference(tuple(labels), np.array(freq), np.array(hist), np.array(thr), images, coverage)


def unknown_rate(reference: Reference, scores: np.ndarray) -> float:
    """The share of (N, K) scores whose top score is below its class's calibrated threshold."""
    scores = np.asarray(scores)
    predicted = scores.argmax(axis=1)
    return float(np.mean(scores.max(axis=1) < reference.threshold[predicted])) if len(scores) else 0.0
