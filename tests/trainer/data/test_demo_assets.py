"""The bundled demo assets (made by this trainer) and the clip maker: real files, real inference."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.inference.model import load_model
from tests.support.media import read_frames
from trainer.data.demo import make_clip
from trainer.data.offline import FASHION_CLASSES

ASSETS = Path(__file__).resolve().parents[3] / "edge" / "assets"
MODEL, CLIP = ASSETS / "demo_model.tflite", ASSETS / "demo_clip.avi"


@pytest.mark.skipif(not MODEL.is_file() or not CLIP.is_file(), reason="edge/assets demo files not present")
def test_demo_model_classifies_the_demo_clip() -> None:
    timeline = json.loads(CLIP.with_suffix(".json").read_text())
    frames = read_frames(CLIP)
    assert len(frames) == sum(s["frames"] for s in timeline["segments"])
    assert frames[0].shape == (240, 320, 3)
    assert CLIP.stat().st_size <= 1_600_000 and MODEL.stat().st_size <= 700_000
    expected = [s["label"] for s in timeline["segments"] for _ in range(s["frames"])]
    with load_model(MODEL, device="cpu") as clf:
        assert clf.spec.labels == tuple(sorted(FASHION_CLASSES)) and clf.spec.labels_source == "embedded:labels.txt"
        assert clf.spec.input.dtype == np.uint8
        got = [clf.classify(f, 1).top.label for f in frames]
    right = np.mean([g == e for g, e in zip(got, expected, strict=True)])
    assert right >= 0.7, f"{right:.2f} of the clip's frames classified right"


def test_make_clip(tmp_path: Path) -> None:
    for name, value in (("dark", 30), ("light", 220)):
        (tmp_path / "imgs" / name).mkdir(parents=True)
        for i in range(2):
            cv2.imwrite(str(tmp_path / "imgs" / name / f"{i}.png"), np.full((28, 28), value + i, np.uint8))
    timeline = make_clip(tmp_path / "imgs", tmp_path / "c.avi", seconds_per_image=0.5, per_class=2, fps=10)
    assert [(s["label"], s["source"], s["frames"]) for s in timeline] == [
        ("dark", "0.png", 5),
        ("dark", "1.png", 5),
        ("light", "0.png", 5),
        ("light", "1.png", 5),
    ]
    frames = read_frames(tmp_path / "c.avi")
    assert len(frames) == 20 and frames[0].shape == (240, 320, 3)
    assert abs(float(frames[0].mean()) - 30) < 4 and abs(float(frames[-1].mean()) - 221) < 4
    assert int(cv2.VideoCapture(str(tmp_path / "c.avi")).get(cv2.CAP_PROP_FOURCC)) == cv2.VideoWriter_fourcc(*"MJPG")
    assert json.loads((tmp_path / "c.json").read_text())["fps"] == 10
