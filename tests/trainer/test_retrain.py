"""Closing the loop on the trainer's side: `metrics.json` in every trained model, read back by `edge-deploy`'s own
reader, and `edge-train train --from RUN`, compared with the previous model on the same held-out images.

Uses the session's `trained` digits run (tests/trainer/conftest.py) as the previous run, and the bundled demo run
(`trainer/assets/demo_run`, Fashion-MNIST) with Debian's dataset-fashion-mnist.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest

from deploy.model_metrics import check_model, read_metrics
from edge.errors import EdgeError
from edge.frames.images import read_image
from edge.inference.labels import read_reference
from edge.inference.model import load_model
from trainer.data import dataset

ROOT = Path(__file__).resolve().parents[2]
DEMO_RUN = ROOT / "trainer" / "assets" / "demo_run"
SHORT = ["--epochs", "3", "--fine-tune-epochs", "1", "--batch-size", "32"]


def _predictions(out: Path) -> list[dict[str, str]]:
    with (out / "predictions.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def _accuracy_of(model: Path, rows: list[dict[str, str]]) -> float:
    """The model's accuracy on the rows' images by label name, with the daemon's own inference."""
    with load_model(model, device="cpu") as clf:
        said = [clf.spec.labels[int(np.argmax(clf.scores(read_image(r["path"]))))] for r in rows]
    return float(np.mean([s == r["label"] for s, r in zip(said, rows, strict=True)]))


def test_every_trained_model_carries_its_metrics(trained) -> None:
    with zipfile.ZipFile(trained.model) as z:
        assert z.namelist() == ["labels.txt", "metrics.json"]
    metrics = read_metrics(trained.model)  # edge-deploy's reader, exactly
    assert metrics is not None and metrics.previous_model is None and metrics.previous_accuracy is None
    assert metrics.heldout_images == trained.report["test_images"] > 0
    assert metrics.heldout_accuracy == pytest.approx(trained.report["int8_accuracy"], abs=5e-5)
    assert metrics.heldout_accuracy == pytest.approx(_accuracy_of(trained.model, _predictions(trained.out)))
    assert trained.report["metrics"] == json.loads(zipfile.ZipFile(trained.model).read("metrics.json"))
    assert check_model(trained.model, force=False) is None  # nothing to compare with: deployed silently
    with load_model(trained.model, device="cpu") as clf:  # LiteRT still reads the flatbuffer
        assert clf.spec.labels == tuple(str(i) for i in range(10))
        reference = read_reference(trained.model, clf.spec.labels)  # the drift reference, as the daemon reads it
    split = trained.report["split_sizes"]
    assert reference is not None and reference.images == (split["val"] or split["test"])
    assert 0 <= trained.report["metrics"]["heldout_unknown_rate"] <= 1


def test_from_a_previous_run_with_other_classes(trained, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Class 8 renamed `eight`, class 9 dropped: the head is rebuilt; both models measured on the same images."""
    from trainer.cli import main

    data = tmp_path / "digits2"
    for d in range(9):
        shutil.copytree(trained.data / str(d), data / ("eight" if d == 8 else str(d)))
    out = tmp_path / "run2"
    assert main(["train", str(data), "--out", str(out), "--from", str(trained.out), *SHORT]) == 0
    log = capsys.readouterr().err  # edge-train's log (run_main sends it to stderr)
    assert "the classes changed (added: eight; removed: 8, 9)" in log
    assert "the head is rebuilt for 9 classes (8 keep their previous weights)" in log
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["seed"] == 3 and report["config"]["size"] == 32  # inherited, not given
    assert report["resolved"]["backbone"] == "mobilenetv2" and report["resolved"]["weights"] == "previous"
    cmp = report["comparison"]
    rows = _predictions(out)
    assert cmp["heldout_images"] == report["test_images"] == len(rows) > 0
    assert cmp["added_classes"] == ["eight"] and cmp["removed_classes"] == ["8", "9"]
    by_class = {r["class"]: r for r in cmp["per_class"]}
    assert list(by_class) == [*(str(d) for d in range(8)), "eight"]
    assert by_class["eight"]["previous"] == 0.0 and not by_class["eight"]["previous_knows_class"]
    assert sum(r["images"] for r in cmp["per_class"]) == len(rows)
    previous = _accuracy_of(trained.model, rows)  # measured again, independently, on the same images
    assert cmp["previous"]["accuracy"] == pytest.approx(previous, abs=5e-5)
    assert cmp["new"]["accuracy"] == report["int8_accuracy"]
    assert previous > 0.6  # the previous model really is good on the classes it knows: a fair baseline
    digits_of = {str(d): [r for r in rows if r["label"] == str(d)] for d in range(8)}
    assert by_class["3"]["previous"] == pytest.approx(_accuracy_of(trained.model, digits_of["3"]), abs=5e-5)

    metrics = read_metrics(out / "model.tflite")
    assert metrics.previous_model == f"{trained.out.name}/model.tflite"
    assert metrics.previous_accuracy == pytest.approx(previous)
    assert metrics.heldout_images == len(rows)
    if metrics.heldout_accuracy < metrics.previous_accuracy:
        with pytest.raises(EdgeError, match="--force"):
            check_model(out / "model.tflite", force=False)
    else:
        assert check_model(out / "model.tflite", force=False) is None

    # no image the previous model trained on is held out now (the split goes by content)
    before = dataset.load_dataset(trained.data, 32, seed=3)
    now = dataset.load_dataset(data, 32, seed=3)
    assert not set(now.test.digests) & set(before.train.digests + before.val.digests)
    assert {str(p) for p in now.test.paths} == {r["path"] for r in rows}


def test_the_comparison_is_printed(trained, tmp_path: Path) -> None:
    out = tmp_path / "again"
    cmd = ["edge-train", "train", str(trained.data), "--out", str(out), "--from", str(trained.out), "--epochs", "1",
           "--fine-tune-epochs", "0"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "continuing from run" in proc.stderr and "the same 10 classes" in proc.stderr
    table = proc.stdout.splitlines()
    assert table[0].startswith(f"held-out accuracy, previous ({trained.out.name}/model.tflite) and new model")
    assert table[1].split() == ["class", "images", "previous", "new", "change"]
    assert [line.split()[0] for line in table[2:]] == [*(str(d) for d in range(10)), "overall"]
    report = json.loads((out / "report.json").read_text())
    assert f"{100 * report['comparison']['new']['accuracy']:.1f} %" in table[-1]
    # the same classes, the same seed, split and images: the previous model scores what its own report says
    assert report["comparison"]["previous"]["accuracy"] == trained.report["int8_accuracy"]


def test_from_the_bundled_demo_run(tmp_path: Path) -> None:
    """`edge-train train DATA --from trainer/assets/demo_run`: offline, on real Fashion-MNIST images."""
    from trainer.cli import main
    from trainer.data.offline import find_fashion_mnist

    try:
        find_fashion_mnist()
    except EdgeError as e:
        pytest.skip(str(e))
    assert (DEMO_RUN / "model.tflite").read_bytes() == (ROOT / "edge" / "assets" / "demo_model.tflite").read_bytes()
    data = tmp_path / "fm"
    assert main(["export-dataset", "fashion-mnist", str(data), "--per-class", "20", "--seed", "7"]) == 0
    out = tmp_path / "demo2"
    assert main(["train", str(data), "--out", str(out), "--from", str(DEMO_RUN), "--epochs", "2",
                 "--fine-tune-epochs", "1"]) == 0  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    cmp = report["comparison"]
    assert cmp["heldout_images"] == 200 and cmp["added_classes"] == cmp["removed_classes"] == []
    assert cmp["previous"]["model"] == "demo_run/model.tflite"
    assert cmp["previous"]["accuracy"] >= 0.7  # the demo model on 200 official test images (84 % on all 10,000)
    metrics = read_metrics(out / "model.tflite")
    assert metrics.previous_model == "demo_run/model.tflite" and metrics.heldout_images == 200
    with load_model(out / "model.tflite", device="cpu") as clf:
        assert clf.spec.input.height == 32 and len(clf.spec.labels) == 10


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--from", "/nonexistent/run"], "--from /nonexistent/run: no such folder"),
        (["--from", str(DEMO_RUN), "--size", "64"], "--size 64"),
        (["--from", str(DEMO_RUN), "--weights", "imagenet"], "--weights: not with --from"),
        (["--from", str(DEMO_RUN), "--backbone", "efficientnet-lite0"], "model is mobilenetv2"),
        (["--from", str(DEMO_RUN), "--out", str(DEMO_RUN)], "the same folder as --from"),
    ],
    ids=["missing", "size", "weights", "backbone", "out-is-from"],
)
def test_bad_from_is_one_line(tmp_path: Path, extra: list[str], needle: str) -> None:
    data = tmp_path / "data"
    for name in ("a", "b"):
        (data / name).mkdir(parents=True)
    proc = subprocess.run(["edge-train", "train", str(data), "--out", str(tmp_path / "out"), *extra],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("edge-train: error: ")]
    assert len(errors) == 1 and needle in errors[0], proc.stderr


def test_from_a_folder_without_a_model(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "model.tflite").write_bytes(b"x")
    proc = subprocess.run(["edge-train", "train", str(tmp_path), "--out", str(tmp_path / "o"), "--from",
                           str(tmp_path / "run")], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 2 and "no model.keras" in proc.stderr and "Traceback" not in proc.stderr
