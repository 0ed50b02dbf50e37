"""Bad input to `edge-train`: one line naming the file or option and the fix, exit 2, never a traceback."""

from __future__ import annotations

import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest


def _edge_train(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["edge-train", *args], capture_output=True, text=True, timeout=300)


def _images(folder: Path, n: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        cv2.imwrite(str(folder / f"{i}.png"), np.full((12, 12, 3), i * 10, np.uint8))


def _assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("edge-train: error: ")]
    assert len(errors) == 1, proc.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]


@pytest.mark.parametrize(
    ("layout", "needles"),
    [
        ({}, ("no class subfolders",)),
        ({"cats": 12}, ("found 1 class (cats)", "at least 2")),
        ({"cats": 12, "dogs": 2}, ("class 'dogs' has 2 usable", "add images")),
    ],
    ids=["empty", "one-class", "too-few"],
)
def test_bad_dataset(tmp_path: Path, layout: dict[str, int], needles: tuple[str, ...]) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for name, n in layout.items():
        _images(data / name, n)
    _assert_one_line_error(_edge_train("train", str(data), "--out", str(tmp_path / "out")), str(data), *needles)


def test_all_files_corrupt_in_a_class(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _images(data / "cats", 12)
    (data / "dogs").mkdir()
    for i in range(12):
        (data / "dogs" / f"{i}.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    proc = _edge_train("train", str(data), "--out", str(tmp_path / "out"))
    _assert_one_line_error(proc, "class 'dogs' has 0 usable")
    assert proc.stderr.count("skipped ") == 12 and "dogs/0.jpg: not an image" in proc.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--backbone", "mobilenetv2", "--weights", "imagenet", "--size", "50"], "--size 50: ImageNet weights exist"),
        (["--backbone", "mobilenetv2", "--weights", "imagenet", "--alpha", "0.2"], "--alpha 0.2: ImageNet weights"),
        (["--weights", "/nonexistent.h5"], "--weights /nonexistent.h5: no such file"),
        (["--backbone", "mobilenetv2", "--size", "16"], "--size: MobileNetV2 needs inputs of at least 32x32"),
        (["--backbone", "efficientnet-lite0", "--size", "16"], "--size: EfficientNet-Lite0 needs inputs of at least"),
        (["--backbone", "efficientnet-lite0", "--weights", "x.h5"], "--weights x.h5: EfficientNet-Lite0 takes"),
        (["--fine-tune-layers", "0"], "--fine-tune-layers: must be at least 1"),
        (["--backbone", "resnet"], "--backbone: invalid choice: 'resnet'"),
        (["--epochs", "0"], "--epochs: must be at least 1"),
        (["--val-fraction", "0.6", "--test-fraction", "0.5"], "fractions"),
        (["--sign-key", "/nonexistent.key"], "--sign-key /nonexistent.key: cannot read the key"),
        (["--sign-key", "/etc/hostname"], "--sign-key: /etc/hostname: not a PEM private key"),
    ],
)
def test_bad_options(tmp_path: Path, args: list[str], needle: str) -> None:
    data = tmp_path / "data"
    _images(data / "a", 10)
    _images(data / "b", 10)
    _assert_one_line_error(_edge_train("train", str(data), "--out", str(tmp_path / "out"), *args), needle)


def test_evaluate_missing_model(tmp_path: Path) -> None:
    proc = _edge_train("evaluate", "--model", str(tmp_path / "nope.tflite"), str(tmp_path))
    _assert_one_line_error(proc, "nope.tflite")


def test_export_dataset_into_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "x").write_text("x")
    _assert_one_line_error(_edge_train("export-dataset", "digits", str(tmp_path)), "not empty")


def test_export_fashion_mnist_without_files(tmp_path: Path) -> None:
    proc = _edge_train("export-dataset", "fashion-mnist", str(tmp_path / "o"), "--source", str(tmp_path))
    _assert_one_line_error(proc, "train-images-idx3-ubyte.gz")
