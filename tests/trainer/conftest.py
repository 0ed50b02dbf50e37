"""One tiny model trained once per session, end to end through `edge-train`, on real data.

The data is scikit-learn's bundled handwritten digits (real scans, 8x8, offline), exported to the folder
layout by `edge-train export-dataset digits`. The model is MobileNetV2 alpha 0.35 at 32x32 from scratch:
small enough for a couple of minutes on a shared 2-core machine, and enough to learn the digits well above
chance, so the int8 checks below run on a model that really learned something.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

# No augmentation: on 1,400 images it slows learning more than a short test can afford (it has its own test).
TRAIN_ARGS = [
    "--backbone",
    "mobilenetv2",
    "--size",
    "32",
    "--alpha",
    "0.35",
    "--epochs",
    "12",
    "--batch-size",
    "32",
    "--learning-rate",
    "0.002",
    "--no-augment",
    "--seed",
    "3",
]


@dataclass(frozen=True)
class Trained:
    data: Path  # the dataset folder
    out: Path  # the run's output folder
    model: Path  # the .tflite
    report: dict
    sign_pub: Path  # the public key of the --sign-key the run signed its outputs with


@pytest.fixture(scope="session")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real digits dataset in the folder layout (1797 PNGs, 10 classes)."""
    pytest.importorskip("sklearn")
    from trainer.cli import main

    out = tmp_path_factory.mktemp("digits") / "digits"
    assert main(["export-dataset", "digits", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def trained(digits: Path, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """`edge-train train` run once on the digits (in-process, so TensorFlow is imported once)."""
    pytest.importorskip("tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from deploy.signing import keygen
    from trainer.cli import main

    out = tmp_path_factory.mktemp("run")
    key, pub, _ = keygen(tmp_path_factory.mktemp("keys") / "keys")
    assert main(["train", str(digits), "--out", str(out), *TRAIN_ARGS, "--sign-key", str(key)]) == 0
    report = json.loads((out / "report.json").read_text())
    return Trained(digits, out, out / "model.tflite", report, pub)
