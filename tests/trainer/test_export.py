"""Export helpers: calibration set, label embedding, the Edge TPU compiler step, weights files."""

from __future__ import annotations

import os
import stat
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edge.errors import EdgeError
from edge.inference.labels import read_embedded_labels
from tests.support.shared_data import shared
from trainer import export


def test_ramp_spans_the_pixel_range() -> None:
    ramp = export.ramp_image(32)
    assert ramp.shape == (32, 32, 3) and ramp.dtype == np.uint8
    assert ramp.min() == 0 and ramp.max() == 255


def test_representative_images_are_training_images_plus_the_ramp() -> None:
    images = np.random.default_rng(0).integers(0, 200, (50, 8, 8, 3), dtype=np.uint8)
    calib = export.representative_images(images, 20, seed=1)
    assert len(calib) == 21 and (calib[0] == export.ramp_image(8)).all()
    rows = {img.tobytes() for img in images}
    assert all(img.tobytes() in rows for img in calib[1:])
    assert (export.representative_images(images, 20, seed=1) == calib).all()
    assert len(export.representative_images(images, 500, seed=1)) == 51


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("Number of operations that will run on Edge TPU: 64\nNumber of operations that will run on CPU: 3\n", (64, 3)),
        ("Number of Edge TPU subgraphs: 1\nTotal number of operations: 72\nOperation log: m_edgetpu.log\n", (72, 0)),
        ("Number of operations that will run on Edge TPU: 0\nNumber of operations that will run on CPU: 70", (0, 70)),
    ],
)
def test_parse_compiler_log(text: str, expect: tuple[int, int]) -> None:
    assert export.parse_compiler_log(text) == expect


def test_parse_compiler_log_without_counts() -> None:
    with pytest.raises(EdgeError, match="no operation counts"):
        export.parse_compiler_log("Internal compiler error. Aborting!")


def test_embed_labels_round_trip(tmp_path: Path) -> None:
    model = tmp_path / "m.tflite"
    model.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(range(256)) * 4)
    before = model.read_bytes()
    export.embed_labels(model, ["cat", "dog", "hot dog"])
    assert model.read_bytes().startswith(before)  # the flatbuffer is untouched, the zip is appended
    with zipfile.ZipFile(model) as z:
        assert z.read("labels.txt") == b"cat\ndog\nhot dog\n"
    assert read_embedded_labels(model) == {0: "cat", 1: "dog", 2: "hot dog"}
    with pytest.raises(EdgeError, match="already carries"):
        export.embed_labels(model, ["x"])
    twin = tmp_path / "twin.tflite"
    twin.write_bytes(before)
    export.embed_labels(twin, ["cat", "dog", "hot dog"])
    assert twin.read_bytes() == model.read_bytes()  # reproducible: no timestamps


def test_edgetpu_compiler_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EdgeError, match=r"edgetpu_compiler is not on PATH.*coral\.ai"):
        export.compile_edgetpu(tmp_path / "m.tflite", ["a", "b"])


# The real compiler is x86-64-only and comes from Coral's apt repository, which this machine cannot reach:
# this stand-in does what it does to the files (writes NAME_edgetpu.tflite without the appended labels, plus
# its log) and prints its summary lines, so the label re-embedding and the op counts are checked.
FAKE_COMPILER = textwrap.dedent(
    """\
    #!{python}
    import sys, zipfile, pathlib
    args = sys.argv[1:]
    out = pathlib.Path(args[args.index("-o") + 1])
    src = pathlib.Path(args[-1])
    data = src.read_bytes()
    with zipfile.ZipFile(src) as z:
        data = data[: z.infolist()[0].header_offset]  # the compiler drops associated files
    (out / (src.stem + "_edgetpu.tflite")).write_bytes(data)
    (out / (src.stem + "_edgetpu.log")).write_text("operation log")
    print("Edge TPU Compiler version 16.0.384591198")
    print("Model successfully compiled but not all operations are supported by the Edge TPU.")
    print("Number of operations that will run on Edge TPU: 61")
    print("Number of operations that will run on CPU: 2")
    """
)


def test_edgetpu_compile_reembeds_labels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "edgetpu_compiler"
    exe.write_text(FAKE_COMPILER.format(python=sys.executable))
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    model = tmp_path / "model.tflite"
    model.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(100))
    export.embed_labels(model, ["a", "b"])
    result = export.compile_edgetpu(model, ["a", "b"])
    assert result.path == tmp_path / "model_edgetpu.tflite"
    assert (result.tpu_ops, result.cpu_ops) == (61, 2)
    assert read_embedded_labels(result.path) == {0: "a", 1: "b"}
    assert (tmp_path / "model_edgetpu.log").read_text() == "operation log"  # the compiler's own log is kept


def test_weights_file_loads_every_layer(tmp_path: Path) -> None:
    """--weights PATH: a MobileNetV2 (no top) weights file, e.g. Keras's ImageNet download copied offline.

    Every weight of the source is set to a random value first (BatchNorm statistics too, which a fresh layer
    would otherwise share), so a layer that keeps its freshly-initialised weights fails the comparison."""
    pytest.importorskip("tensorflow")
    import keras

    from trainer.nets.model import TrainSpec, build_model

    source = keras.applications.MobileNetV2(
        input_shape=(32, 32, 3), alpha=0.35, include_top=False, weights=None, pooling="avg"
    )
    rng = np.random.default_rng(1)
    for layer in source.layers:
        if layer.weights:
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype(np.float32) for w in layer.weights])
    path = tmp_path / "base.weights.h5"
    source.save_weights(path)
    _, base = build_model(TrainSpec(num_classes=3, size=32, alpha=0.35, weights=str(path)))
    weighted = [layer for layer in source.layers if layer.weights]
    assert len(weighted) == 104
    for layer in weighted:
        for a, b in zip(layer.get_weights(), base.get_layer(layer.name).get_weights(), strict=True):
            np.testing.assert_array_equal(a, b, err_msg=f"{layer.name} kept its fresh weights")
    assert not base.trainable  # pretrained: the base starts frozen
    with pytest.raises(EdgeError, match="cannot load"):
        build_model(TrainSpec(num_classes=3, size=32, alpha=0.5, weights=str(path)))


def test_seeded_models_start_identical() -> None:
    pytest.importorskip("tensorflow")
    import keras

    from trainer.nets.model import TrainSpec, build_model

    weights = []
    for _ in range(2):
        keras.utils.set_random_seed(7)
        net, _ = build_model(TrainSpec(num_classes=4, size=32), seed=7)
        weights.append(net.get_weights())
    for a, b in zip(*weights, strict=True):
        np.testing.assert_array_equal(a, b)


def test_inspect_rejects_a_float_model() -> None:
    with pytest.raises(EdgeError, match="float tensor"):
        export.inspect_int8(shared("tflite-micro/mnist_lstm_float.tflite"), "uint8")


def test_inspect_rejects_an_input_that_is_not_raw_pixels() -> None:
    """Coral's MobileNet takes uint8 with scale 1/128, zero point 128: raw pixels would not match it."""
    with pytest.raises(EdgeError, match="expected uint8 scale 1 zero point 0"):
        export.inspect_int8(shared("coral/mobilenet_v1_0.25_128_quant.tflite"), "uint8")


def test_augmentation_acts_in_training_only_and_flips_only_when_asked() -> None:
    pytest.importorskip("tensorflow")
    import keras

    from trainer.nets.model import TrainSpec, build_model

    keras.utils.set_random_seed(2)
    assert not any("flip" in layer.name for layer in build_model(TrainSpec(num_classes=3, size=32))[0].layers)
    net, _ = build_model(TrainSpec(num_classes=3, size=32, dropout=0.0, flip=True), seed=2)
    augment = keras.Model(net.input, net.get_layer("normalise").input)  # pixels -> augmented pixels
    x = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(augment(x, training=False)), x)
    assert np.abs(np.asarray(augment(x, training=True)) - x).mean() > 1.0
    names = [layer.name for layer in augment.layers]
    assert any("flip" in n for n in names) and any("zoom" in n for n in names) and any("bright" in n for n in names)
