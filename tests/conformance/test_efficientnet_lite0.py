"""EfficientNet-Lite0 with the ported ImageNet weights, exported by `edge-train pretrained` as full int8, against
the published ImageNet photos and Coral's published MobileNet v2: the class Coral's model gives each photo
is in Lite0's int8 top 3 (through `edge-daemon classify`, the device's own code), and the float Keras model
and the int8 model agree on the top-1."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge.frames.images import read_image
from edge.inference.labels import read_embedded_labels
from edge.inference.model import load_model
from tests.conformance import lite0
from tests.support.shared_data import shared

PHOTOS = ("cat.bmp", "grace_hopper.bmp", "parrot.jpg", "hot_dog.jpg", "owl.jpg", "bird.bmp", "sunflower.bmp",
          "dragonfly.bmp", "cat_720p.jpg")

EDGE_TPU_FRIENDLY = {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MUL", "MEAN", "FULLY_CONNECTED", "SOFTMAX", "QUANTIZE",
                     "RESHAPE"}


@pytest.fixture(scope="module")
def model(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    reason = lite0.unavailable()
    if reason:
        pytest.skip(reason)
    cache = getattr(request.config, "cache", None)  # absent with -p no:cacheprovider: build it for this session
    folder = Path(cache.mkdir("edge-train-lite0")) if cache else tmp_path_factory.mktemp("edge-train-lite0")
    return lite0.lite0_model(folder)


@pytest.fixture(scope="module")
def photos() -> list[Path]:
    return [shared(f"coral/{name}") for name in PHOTOS]


def _coral_top1(photos: list[Path]) -> list[str]:
    """What Coral's published MobileNet v2 1.0/224 (int8) calls each photo (its labels have `background` first)."""
    with load_model(shared("coral/mobilenet_v2_1.0_224_quant.tflite"), device="cpu") as clf:
        return [clf.classify(read_image(p), 1).top.label for p in photos]


def test_full_int8_with_imagenet_labels(model: Path) -> None:
    from trainer.export import inspect_int8

    check = inspect_int8(model, "uint8")  # integer tensors only, builtin ops, raw-pixel uint8 input
    assert (check.input_dtype, check.input_scale, check.input_zero_point) == ("uint8", 1.0, 0)
    assert check.output_dtype == "uint8" and check.output_scale == pytest.approx(1 / 256)
    # all in the Edge TPU's supported set (MUL and ADD: the normalisation in front); no swish, no SE (LOGISTIC)
    assert set(check.ops) <= EDGE_TPU_FRIENDLY, check.ops
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "MEAN", "FULLY_CONNECTED", "SOFTMAX"} <= set(check.ops)
    labels = read_embedded_labels(model)
    assert len(labels) == 1000 and labels[0] == "tench, Tinca tinca"
    coral = shared("coral/imagenet_labels.txt").read_text().splitlines()
    assert [labels[i] for i in range(1000)] == coral[1:]  # the same names, without Coral's `background`


def test_photos_top3_like_the_published_mobilenet(model: Path, photos: list[Path]) -> None:
    cmd = [sys.executable, "-m", "edge.cli.main", "classify", "--json", "--device", "cpu", "--top-k", "3",
           "--model", str(model), *map(str, photos)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    expected = _coral_top1(photos)
    misses = []
    for photo, result, want in zip(photos, results, expected, strict=True):
        top3 = [p["label"] for p in result["predictions"]]
        if want not in top3:
            misses.append(f"{photo.name}: Coral says {want!r}, Lite0 int8 top 3 {top3}")
    assert not misses, misses


def test_float_and_int8_agree(model: Path, photos: list[Path]) -> None:
    pytest.importorskip("tensorflow")
    from trainer.data.dataset import decode
    from trainer.nets.model import predict
    from trainer.pretrained import build_classifier

    net = build_classifier("efficientnet-lite0", 224)
    float_scores = predict(net, np.stack([decode(p, 224) for p in photos]))
    with load_model(model, device="cpu") as clf:
        int8_scores = np.stack([clf.scores(read_image(p)) for p in photos])
    assert list(float_scores.argmax(1)) == list(int8_scores.argmax(1))
    assert np.abs(float_scores - int8_scores).max() < 0.1
