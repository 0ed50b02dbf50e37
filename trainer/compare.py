"""The previous model against the new one on the same held-out images, and the metrics a model carries.

`edge-train train --from RUN` measures both models with the daemon's own inference (`trainer.report.int8_scores`
on each `.tflite`) on the new run's test split, and compares them per class by label name: a class the previous
model does not know counts as wrong for it (it cannot say that label). The same figures go into the new model's
`metrics.json` (`metrics_doc`), which `edge-deploy model` reads to refuse a model worse than its predecessor.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edge.inference.reference import build_reference, parse_reference, unknown_rate


def _accuracy(right: np.ndarray) -> float | None:
    return round(float(np.mean(right)), 4) if len(right) else None


def compare(
    classes: tuple[str, ...],
    y_true: np.ndarray,
    new_scores: np.ndarray,
    previous_classes: tuple[str, ...],
    previous_scores: np.ndarray,
    previous_model: str,
) -> dict[str, Any]:
    """Accuracy of the previous and the new model on the same images, overall and per (new) class.

    Args:
        classes, y_true, new_scores: the new model's labels, the images' true class indices, its int8 scores.
        previous_classes, previous_scores: the previous model's labels and its int8 scores on the same images.
        previous_model: how to name the previous model (e.g. `demo_run/model.tflite`).

    Returns:
        {"heldout_images", "previous": {"model", "accuracy"}, "new": {"accuracy"}, "per_class": [{"class",
        "images", "previous", "new", "previous_knows_class"}], "added_classes", "removed_classes"}.
    """
    truth = np.array([classes[int(i)] for i in y_true], dtype=object)
    new = np.array([classes[int(i)] for i in new_scores.argmax(axis=1)], dtype=object) if len(y_true) else truth
    old = (np.array([previous_classes[int(i)] for i in previous_scores.argmax(axis=1)], dtype=object)
           if len(y_true) else truth)  # fmt: skip
    rows = []
    for name in classes:
        mine = truth == name
        rows.append(
            {
                "class": name,
                "images": int(mine.sum()),
                "previous": _accuracy(old[mine] == name),
                "new": _accuracy(new[mine] == name),
                "previous_knows_class": name in previous_classes,
            }
        )
    return {
        "heldout_images": len(truth),
        "previous": {"model": previous_model, "accuracy": _accuracy(old == truth)},
        "new": {"accuracy": _accuracy(new == truth)},
        "per_class": rows,
        "added_classes": [c for c in classes if c not in previous_classes],
        "removed_classes": [c for c in previous_classes if c not in classes],
    }


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


def format_comparison(cmp: dict[str, Any]) -> str:
    """The comparison as a table: one row per class, then the overall figures."""
    rows = [("class", "images", "previous", "new", "change")]
    for r in cmp["per_class"]:
        change = "" if r["previous"] is None or r["new"] is None else f"{100 * (r['new'] - r['previous']):+.1f}"
        note = "" if r["previous_knows_class"] else " (new class)"
        rows.append((r["class"] + note, str(r["images"]), _pct(r["previous"]), _pct(r["new"]), change))
    before, after = cmp["previous"]["accuracy"], cmp["new"]["accuracy"]
    overall = "" if before is None or after is None else f"{100 * (after - before):+.1f}"
    rows.append(("overall", str(cmp["heldout_images"]), _pct(before), _pct(after), overall))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = [
        f"held-out accuracy, previous ({cmp['previous']['model']}) and new model, int8, on the same "
        f"{cmp['heldout_images']} test images:"
    ]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines)


def metrics_doc(
    y_true: np.ndarray, new_scores: np.ndarray, previous: tuple[str, float] | None = None,
    reference: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """The `metrics.json` a model carries; None without held-out images (nothing to measure).

    Args:
        y_true, new_scores: the test split's class indices and the new model's int8 scores on it.
        previous: (name, accuracy on the same images) of the model continued from (`--from`), or None.
        reference: the drift reference (`edge.inference.reference.build_reference`, from the validation images);
            with it the doc also says the test images' unknown rate under its calibrated thresholds.
    """
    if not len(y_true):
        return None
    accuracy = float(np.mean(new_scores.argmax(axis=1) == y_true))  # exact: the guard compares these
    doc = {
        "heldout_accuracy": accuracy,
        "heldout_images": len(y_true),
        "previous": None if previous is None else {"model": previous[0], "heldout_accuracy": float(previous[1])},
    }
    if reference is not None:
        labels = [c["label"] for c in reference["classes"]]
        doc["reference"] = reference
        doc["heldout_unknown_rate"] = round(unknown_rate(parse_reference(reference, labels), new_scores), 4)
    return doc


def drift_reference(classes: tuple[str, ...], val: tuple[np.ndarray, np.ndarray],
                    test: tuple[np.ndarray, np.ndarray]) -> dict[str, Any] | None:  # fmt: skip
    """The drift reference from the validation images' (labels, int8 scores), else the test images'; None: none."""
    y, scores = val if len(val[0]) else test
    return build_reference(classes, y, scores) if len(y) else None


def previous_accuracy(classes: tuple[str, ...], y_true: np.ndarray, previous_classes: tuple[str, ...],
                      previous_scores: np.ndarray) -> float:  # fmt: skip
    """The previous model's exact accuracy on the images (by label name), for `metrics_doc`."""
    truth = [classes[int(i)] for i in y_true]
    said = [previous_classes[int(i)] for i in previous_scores.argmax(axis=1)]
    return float(np.mean([a == b for a, b in zip(truth, said, strict=True)])) if truth else 0.0
