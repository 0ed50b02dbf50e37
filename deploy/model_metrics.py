"""The held-out accuracy a model carries (`metrics.json`, a zip member appended to the .tflite) and the guard
`edge-deploy model` applies before a roll-out.

`edge-train` embeds, beside `labels.txt` (see `trainer/export.py`, `edge/inference/labels.py`):

    {"heldout_accuracy": 0.91, "heldout_images": 240,
     "previous": {"model": "birds-v2.tflite", "heldout_accuracy": 0.88} | null}

where `previous` is the model it continued from (`edge-train train DATA --from runs/previous`), measured on the
same held-out images. The rule: a model whose accuracy is below its `previous` one is refused unless forced; a
model without metrics (a published one) is deployed with a warning. Only `edge-deploy` reads this, so it lives
here and not in `edge` (the daemon never needs it).
"""

from __future__ import annotations

import json
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

from edge.errors import EdgeError

METRICS_MEMBER = "metrics.json"
MAX_METRICS_BYTES = 1 << 20  # a few hundred bytes in practice


@dataclass(frozen=True)
class ModelMetrics:
    """What a trained model says about itself: its held-out accuracy and that of the model it replaces."""

    heldout_accuracy: float
    heldout_images: int
    previous_model: str | None = None
    previous_accuracy: float | None = None


def _accuracy(value: object, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or not 0 <= value <= 1:
        raise ValueError(f"{field} is {value!r:.40}, not a number from 0 to 1")
    return float(value)


def parse_metrics(data: bytes) -> ModelMetrics:
    """`metrics.json`'s bytes as `ModelMetrics`; ValueError naming the field that is wrong."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ValueError(f"not UTF-8 JSON ({e})") from None
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    accuracy = _accuracy(doc.get("heldout_accuracy"), "heldout_accuracy")
    images = doc.get("heldout_images")
    if isinstance(images, bool) or not isinstance(images, int) or images < 1:
        raise ValueError(f"heldout_images is {images!r:.40}, not a positive integer")
    previous = doc.get("previous")
    if previous is None:
        return ModelMetrics(accuracy, images)
    if not isinstance(previous, dict):
        raise ValueError("previous is neither null nor an object")
    model = previous.get("model")
    if not isinstance(model, str):
        raise ValueError(f"previous.model is {model!r:.40}, not a string")
    previous_accuracy = _accuracy(previous.get("heldout_accuracy"), "previous.heldout_accuracy")
    return ModelMetrics(accuracy, images, model, previous_accuracy)


def read_metrics(model: str | Path) -> ModelMetrics | None:
    """The metrics embedded in `model`, or None when it carries none (not a zip, or no `metrics.json`).

    Raises:
        EdgeError: the member is there but unreadable or malformed (naming the file and the field).
    """
    try:
        with zipfile.ZipFile(model) as z:
            if METRICS_MEMBER not in z.namelist():
                return None
            if z.getinfo(METRICS_MEMBER).file_size > MAX_METRICS_BYTES:
                raise ValueError(f"over {MAX_METRICS_BYTES >> 20} MB")
            data = z.read(METRICS_MEMBER)
    except (zipfile.BadZipFile, zipfile.LargeZipFile):
        return None
    except (OSError, ValueError, RuntimeError) as e:  # RuntimeError: an encrypted member
        raise EdgeError(f"{model} ({METRICS_MEMBER}): cannot read it ({e}); re-export the model") from None
    try:
        return parse_metrics(data)
    except ValueError as e:
        raise EdgeError(f"{model} ({METRICS_MEMBER}): {e}; re-export the model with edge-train") from None


def check_model(model: str | Path, force: bool) -> str | None:
    """The retrain guard: None when `model` may go out silently, a one-line warning when it goes out anyway.

    Raises:
        EdgeError: the model is less accurate than the one it replaces (or its metrics are malformed) and
            `force` is not set; the message names both accuracies and `--force`.
    """
    name = Path(model).name
    try:
        metrics = read_metrics(model)
    except EdgeError as e:
        if not force:
            raise EdgeError(f"{e}, or give --force to deploy it without the accuracy check") from None
        return f"{e}; deploying anyway (--force)"
    if metrics is None:
        return f"{name} carries no {METRICS_MEMBER} (not made by edge-train): deploying without the accuracy check"
    if metrics.previous_accuracy is None or metrics.heldout_accuracy >= metrics.previous_accuracy:
        return None
    compared = (
        f"{name}'s held-out accuracy {metrics.heldout_accuracy:.2%} is below {metrics.previous_accuracy:.2%} "
        f"of {metrics.previous_model}, the model it replaces (same {metrics.heldout_images} held-out images)"
    )
    if not force:
        raise EdgeError(f"{compared}; give --force to deploy it anyway")
    return f"{compared}; deploying anyway (--force)"
