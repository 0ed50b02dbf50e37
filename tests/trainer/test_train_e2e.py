"""End to end on real data: the model `edge-train` made is full int8, carries its labels, and the device's
own CLI (`edge-daemon classify`) says what the report says. Uses the session's `trained` fixture."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.inference.labels import read_embedded_labels
from edge.inference.model import load_model

DIGITS = [str(i) for i in range(10)]


def _interpreter(path: Path):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    return it


def _rows(out: Path) -> list[dict[str, str]]:
    with (out / "predictions.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def test_run_writes_model_labels_and_report(trained) -> None:
    for name in ("model.tflite", "model.keras", "labels.txt", "report.json", "predictions.csv"):
        assert (trained.out / name).is_file(), name
    for png in ("confusion_matrix.png", "training_curves.png"):
        image = cv2.imread(str(trained.out / png))
        assert image is not None and image.shape[0] > 200 and image.shape[1] > 200, png
    r = trained.report
    assert r["classes"] == DIGITS
    assert r["test_images"] == sum(c["support"] for c in r["per_class"]) == len(_rows(trained.out))
    assert np.array(r["confusion_matrix"]).sum() == r["test_images"]
    assert r["split_sizes"]["test"] == r["test_images"] and r["skipped"] == []
    assert {"precision", "recall", "support"} <= set(r["per_class"][0])
    assert len(r["history"]["loss"]) == len(r["history"]["val_accuracy"]) >= 1


def test_model_learned_and_int8_keeps_the_accuracy(trained) -> None:
    r = trained.report
    assert r["int8_accuracy"] >= 0.8, r["int8_accuracy"]  # 10 classes: chance is 0.1; measured 0.97
    assert abs(r["float_accuracy"] - r["int8_accuracy"]) <= 0.05
    assert r["float_int8_agreement"] >= 0.9


def test_sign_key_signs_the_model_and_labels(trained) -> None:
    from edge.inference.signature import load_trusted_keys, read_verified

    keys = load_trusted_keys([str(trained.sign_pub)])
    assert read_verified(trained.model, keys) == trained.model.read_bytes()
    assert read_verified(trained.out / "labels.txt", keys) == (trained.out / "labels.txt").read_bytes()


def test_int8_internals(trained) -> None:
    it = _interpreter(trained.model)
    dtypes = {np.dtype(t["dtype"]) for t in it.get_tensor_details()}
    assert dtypes <= {np.dtype(np.int8), np.dtype(np.uint8), np.dtype(np.int32)}, dtypes
    ops = {o["op_name"] for o in it._get_ops_details()}
    assert "CONV_2D" in ops and "DEPTHWISE_CONV_2D" in ops and "SOFTMAX" in ops
    assert not any(o.startswith("Flex") or o == "DEQUANTIZE" for o in ops), ops
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    assert list(inp["shape"]) == [1, 32, 32, 3] and inp["dtype"] == np.uint8
    assert inp["quantization"] == (1.0, 0)  # raw pixels in
    assert out["dtype"] == np.uint8 and out["quantization"] == (1 / 256, 0)  # probabilities out
    assert trained.report["int8"]["input_zero_point"] == 0


def test_labels_embedded_and_sidecar(trained) -> None:
    with zipfile.ZipFile(trained.model) as z:
        embedded = z.read("labels.txt").decode()
    assert embedded == (trained.out / "labels.txt").read_text() == "".join(f"{d}\n" for d in DIGITS)
    assert read_embedded_labels(trained.model) == dict(enumerate(DIGITS))
    with load_model(trained.model, device="cpu") as clf:
        assert clf.spec.labels == tuple(DIGITS)
        assert clf.spec.labels_source == "embedded:labels.txt"
        assert clf.spec.output.probabilities


def test_edge_daemon_classify_gives_the_reports_predictions(trained) -> None:
    rows = _rows(trained.out)[::7][:25]
    # all 10 scores: with --top-k 1, edge.inference.postprocess.top_k may break an exact tie towards the higher index
    cmd = ["edge-daemon", "classify", "--json", "--device", "cpu", "--top-k", "10", "--model", str(trained.model)]
    proc = subprocess.run(cmd + [r["path"] for r in rows], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [res["image"] for res in results] == [r["path"] for r in rows]
    for res, row in zip(results, rows, strict=True):
        top = res["predictions"][0]
        assert top["label"] == row["predicted"], (row, top)
        assert top["score"] == pytest.approx(float(row["score"]), abs=2e-6)


def test_int8_io_model(trained, tmp_path: Path) -> None:
    """The same network exported with int8 I/O: input zero point -128 (pixel - 128), same scores."""
    import keras

    from trainer import export
    from trainer.data.dataset import load_dataset

    net = keras.saving.load_model(trained.out / "model.keras")
    train = load_dataset(trained.data, 32, seed=3).train  # the CLI's split and calibration draw, again
    calib = export.representative_images(train.images, 300, 3)
    path = tmp_path / "int8.tflite"
    path.write_bytes(export.convert(net, calib, "int8"))
    check = export.inspect_int8(path, "int8")
    assert (check.input_dtype, check.input_scale, check.input_zero_point) == ("int8", 1.0, -128)
    assert check.output_dtype == "int8" and check.output_zero_point == -128
    export.embed_labels(path, DIGITS)
    rows = _rows(trained.out)[:40]
    from edge.frames.images import read_image

    with load_model(path, device="cpu") as i8, load_model(trained.model, device="cpu") as u8:
        assert i8.spec.input.dtype == np.int8 and i8.spec.labels == tuple(DIGITS)
        same = [int(np.argmax(i8.scores(read_image(r["path"])))) == DIGITS.index(r["predicted"]) for r in rows]
        diff = max(
            float(np.abs(i8.scores(read_image(r["path"])) - u8.scores(read_image(r["path"]))).max()) for r in rows
        )
    assert sum(same) >= 0.95 * len(rows)
    assert diff <= 2 / 256 + 1e-6


def test_evaluate_reruns_the_report(trained, tmp_path: Path) -> None:
    from trainer.cli import main

    out = tmp_path / "eval"
    rc = main(["evaluate", "--model", str(trained.model), str(trained.data), "--seed", "3", "--out", str(out)])
    assert rc == 0
    again = json.loads((out / "report.json").read_text())
    assert again["test_images"] == trained.report["test_images"]
    assert again["int8_accuracy"] == trained.report["int8_accuracy"]
    assert again["float_accuracy"] == trained.report["float_accuracy"]
    assert (out / "confusion_matrix.png").is_file()


def test_edge_train_cli_entry_point() -> None:
    proc = subprocess.run(["edge-train", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "export-dataset" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "trainer.cli", "train", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "--weights" in proc.stdout
