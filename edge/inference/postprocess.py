"""Pure postprocessing: the model's raw output in, small immutable predictions out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Prediction:
    """One class the model found: its output index, label and probability-like score in [0, 1]."""

    index: int
    label: str
    score: float


@dataclass(frozen=True)
class OutputFormat:
    """What the model's output tensor holds; built by `edge.inference.model` from the interpreter."""

    dtype: type
    scale: float = 0.0
    zero_point: int = 0
    probabilities: bool = True  # False: logits, softmax is applied


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Quantized values to float32; widened before subtracting so int8/uint8 cannot wrap."""
    if scale == 0.0:
        return q.astype(np.float32)
    return (q.astype(np.int32) - np.int32(zero_point)).astype(np.float32) * np.float32(scale)


def softmax(x: np.ndarray) -> np.ndarray:
    """Numerically stable softmax over the last axis."""
    e = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)


def scores(raw: np.ndarray, fmt: OutputFormat) -> np.ndarray:
    """The output tensor as a flat float32 vector of class scores in [0, 1]."""
    flat = raw.reshape(-1)
    real = dequantize(flat, fmt.scale, fmt.zero_point) if fmt.dtype != np.float32 else flat
    return real if fmt.probabilities else softmax(real)


def top_k(
    class_scores: np.ndarray, labels: Sequence[str], k: int = 5, threshold: float = 0.0
) -> tuple[Prediction, ...]:
    """The k best classes scoring at least `threshold`, best first (ties: lower index first)."""
    k = max(0, min(k, class_scores.size))
    if k == 0:
        return ()
    n = class_scores.size
    if k < n:  # every class scoring at least the k-th best, so ties at the cut-off go to the lower index
        kth = np.partition(class_scores, n - k)[n - k]
        idx = np.flatnonzero(class_scores >= kth)
    else:
        idx = np.arange(n)
    idx = idx[np.lexsort((idx, -class_scores[idx]))][:k]
    return tuple(Prediction(int(i), labels[i], float(class_scores[i])) for i in idx if class_scores[i] >= threshold)
