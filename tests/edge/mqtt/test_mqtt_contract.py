"""The pure MQTT contract: topic names and payloads (their JSON Schemas: test_payload_schemas.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from edge.inference.postprocess import Prediction
from edge.mqtt.contract import camera_state, classification_payload, iso_utc, label_text, topics


@pytest.mark.parametrize(
    ("prefix", "device_id", "base"),
    [("edge", "pi1", "edge/pi1"), ("site/a", "cam-1", "site/a/cam-1"), ("edge", "pi.local", "edge/pi.local")],
)
def test_topics(prefix: str, device_id: str, base: str) -> None:
    t = topics(prefix, device_id)
    assert (t.availability, t.camera, t.classification, t.label, t.stats, t.event) == (
        f"{base}/availability",
        f"{base}/camera",
        f"{base}/classification",
        f"{base}/label",
        f"{base}/stats",
        f"{base}/event",
    )


@pytest.mark.parametrize(
    ("timestamp", "text"),
    [
        (0.0, "1970-01-01T00:00:00.000000Z"),
        (1_700_000_000.5, "2023-11-14T22:13:20.500000Z"),
        (1_767_225_599.25, "2025-12-31T23:59:59.250000Z"),
    ],
)
def test_iso_utc(timestamp: float, text: str) -> None:
    assert iso_utc(timestamp) == text


def test_classification_payload() -> None:
    preds = (Prediction(1, "dog", 0.912345), Prediction(0, "cat", 0.05))
    payload = classification_payload(preds, reason="change", frame=42, inference_ms=3.14159, model="tiny",
                                     timestamp=0.25, published_at=1.5, changed_at=0.25)  # fmt: skip
    assert payload == {
        "label": "dog",
        "index": 1,
        "score": 0.9123,
        "top_k": [{"index": 1, "label": "dog", "score": 0.9123}, {"index": 0, "label": "cat", "score": 0.05}],
        "reason": "change",
        "timestamp": "1970-01-01T00:00:00.250000Z",
        "published_at": "1970-01-01T00:00:01.500000Z",
        "changed_at": "1970-01-01T00:00:00.250000Z",
        "frame": 42,
        "inference_ms": 3.14,
        "model": "tiny",
        "unknown": False,
    }
    assert json.loads(json.dumps(payload)) == payload


def test_classification_payload_without_predictions() -> None:
    payload = classification_payload((), reason="heartbeat", frame=0, inference_ms=1.0, model="m", timestamp=0.0,
                                     published_at=0.0, changed_at=None)  # fmt: skip
    assert (payload["label"], payload["index"], payload["score"], payload["top_k"]) == (None, None, 0.0, [])
    assert payload["changed_at"] is None


@pytest.mark.parametrize(
    ("predictions", "unknown", "text"),
    [((Prediction(3, "tabby cat", 0.4),), False, "tabby cat"), ((), False, "none"), ((), True, "unknown")],
)
def test_plain_label_and_camera_state(predictions, unknown, text) -> None:
    assert label_text(predictions, unknown) == text
    assert (camera_state(True), camera_state(False)) == ("online", "offline")


def test_mqtt_page_examples_match_the_contract() -> None:
    """docs/mqtt.md's classification example has exactly the keys the code produces; topics in its table exist."""
    section = (Path(__file__).resolve().parents[3] / "docs" / "mqtt.md").read_text()
    blocks = re.findall(r"```json\n(.*?)```", section, re.S)
    example = json.loads(blocks[0])
    real = classification_payload((Prediction(0, "a", 0.5),), reason="change", frame=1, inference_ms=1.0,
                                  model="m", timestamp=0, published_at=0, changed_at=0)  # fmt: skip
    assert set(example) == set(real)
    assert {k for item in example["top_k"] for k in item} == set(real["top_k"][0])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", example["timestamp"])
    stats = json.loads(blocks[1])
    assert {"mqtt_reconnects", "queued", "dropped", "published", "fps_classified", "started_at"} <= set(stats)
    t = topics("edge", "<id>")
    for topic in (t.availability, t.camera, t.classification, t.label, t.stats, t.event):
        assert f"`{topic}`" in section
