"""The retrain guard's reader: `metrics.json` appended to a real .tflite as a zip member (the way the trainer
embeds `labels.txt`), table cases for good and malformed members, and the rule (`check_model`)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from deploy.model_metrics import METRICS_MEMBER, ModelMetrics, check_model, read_metrics
from edge.errors import EdgeError

DEMO = Path(__file__).resolve().parents[2] / "edge/assets/demo_model.tflite"  # a real model with labels.txt


def labels_only(path: Path) -> Path:
    """The demo model as a published model is: its flatbuffer and `labels.txt`, without the trainer's metrics."""
    with zipfile.ZipFile(DEMO) as z:
        start = min(info.header_offset for info in z.infolist())  # absolute: zipfile adds the prepended bytes
        labels = z.read("labels.txt")
    path.write_bytes(DEMO.read_bytes()[:start])
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("labels.txt", labels)
    return path


def model_with(tmp_path: Path, metrics: object | None, name: str = "birds-v3.tflite") -> Path:
    """The demo model with `metrics` (JSON-encoded unless bytes) appended as metrics.json; None: no member."""
    path = tmp_path / name
    labels_only(path)
    if metrics is not None:
        data = metrics if isinstance(metrics, bytes) else json.dumps(metrics).encode()
        with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as z:
            z.writestr(METRICS_MEMBER, data)
    return path


def metrics(new: float, previous: float | None = None, images: int = 240) -> dict:
    prev = None if previous is None else {"model": "birds-v2.tflite", "heldout_accuracy": previous}
    return {"heldout_accuracy": new, "heldout_images": images, "previous": prev}


@pytest.mark.parametrize(
    ("member", "expected"),
    [
        (None, None),  # a published model: labels only
        (metrics(0.9), ModelMetrics(0.9, 240)),
        (metrics(0.91, 0.88), ModelMetrics(0.91, 240, "birds-v2.tflite", 0.88)),
        ({"heldout_accuracy": 1, "heldout_images": 3}, ModelMetrics(1.0, 3)),  # `previous` may be left out
        (metrics(0.0, 1.0, images=1), ModelMetrics(0.0, 1, "birds-v2.tflite", 1.0)),
    ],
)
def test_read_metrics(tmp_path, member, expected):
    assert read_metrics(model_with(tmp_path, member)) == expected


def test_a_flatbuffer_without_any_zip_has_no_metrics(tmp_path):
    plain = tmp_path / "plain.tflite"
    plain.write_bytes(DEMO.read_bytes()[: zipfile.ZipFile(DEMO).infolist()[0].header_offset])
    assert read_metrics(plain) is None


@pytest.mark.parametrize(
    ("member", "message"),
    [
        (b"{not json", "not UTF-8 JSON"),
        (b"\xff\xfe", "not UTF-8 JSON"),
        (b"[0.9]", "not a JSON object"),
        ({"heldout_images": 10}, "heldout_accuracy is None, not a number from 0 to 1"),
        ({"heldout_accuracy": "0.9", "heldout_images": 10}, "heldout_accuracy is '0.9'"),
        ({"heldout_accuracy": True, "heldout_images": 10}, "heldout_accuracy is True"),
        ({"heldout_accuracy": 1.5, "heldout_images": 10}, "heldout_accuracy is 1.5"),
        (b'{"heldout_accuracy": NaN, "heldout_images": 10}', "heldout_accuracy is nan"),
        ({"heldout_accuracy": 0.9, "heldout_images": 0}, "heldout_images is 0, not a positive integer"),
        ({"heldout_accuracy": 0.9, "heldout_images": 2.5}, "heldout_images is 2.5"),
        ({"heldout_accuracy": 0.9, "heldout_images": 9, "previous": 0.8}, "previous is neither null nor an object"),
        ({"heldout_accuracy": 0.9, "heldout_images": 9, "previous": {"heldout_accuracy": 0.8}}, "previous.model"),
        ({"heldout_accuracy": 0.9, "heldout_images": 9, "previous": {"model": "a"}}, "previous.heldout_accuracy"),
    ],
)  # fmt: skip
def test_malformed_metrics_are_one_line_naming_the_field(tmp_path, member, message):
    model = model_with(tmp_path, member)
    with pytest.raises(EdgeError) as e:
        read_metrics(model)
    assert str(e.value).startswith(f"{model} ({METRICS_MEMBER}): ") and message in str(e.value), e.value
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    ("member", "force", "outcome"),
    [
        (metrics(0.9), False, None),  # first model: nothing to compare with
        (metrics(0.9, 0.9), False, None),  # as good as the previous one
        (metrics(0.91, 0.88), False, None),
        (metrics(0.875, 0.9), False, EdgeError("birds-v3.tflite's held-out accuracy 87.50% is below 90.00% of "
                                               "birds-v2.tflite, the model it replaces (same 240 held-out images); "
                                               "give --force to deploy it anyway")),
        (metrics(0.875, 0.9), True, "below 90.00% of birds-v2.tflite, the model it replaces (same 240 held-out "
                                    "images); deploying anyway (--force)"),
        (None, False, "birds-v3.tflite carries no metrics.json (not made by edge-train): deploying without the "
                      "accuracy check"),
        (b"[]", False, EdgeError("not a JSON object; re-export the model with edge-train, or give --force")),
        (b"[]", True, "not a JSON object; re-export the model with edge-train; deploying anyway (--force)"),
    ],
)  # fmt: skip
def test_the_guard(tmp_path, member, force, outcome):
    model = model_with(tmp_path, member)
    if isinstance(outcome, EdgeError):
        with pytest.raises(EdgeError) as e:
            check_model(model, force)
        assert str(outcome) in str(e.value) and "\n" not in str(e.value), e.value
    elif outcome is None:
        assert check_model(model, force) is None
    else:
        assert outcome in check_model(model, force)
