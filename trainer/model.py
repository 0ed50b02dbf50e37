"""The network: MobileNetV2 (alpha and input size chosen) with a new classification head, and its training.

The model takes RAW pixels 0..255 (RGB) and normalises them itself (a Rescaling layer to [-1, 1]), so that
after full-int8 conversion a uint8 input is the raw pixel and an int8 input is pixel - 128: exactly what
`edge.preprocess` feeds. Augmentation layers (flip, crop, brightness) sit in front and only act in training.

BatchNorm: with pretrained weights the base is called with `training=False`, so its BatchNorm layers keep
their ImageNet statistics in inference mode, also while fine-tuning (the Keras transfer-learning recipe; it
is what makes short runs converge). From scratch (`--weights none`) the whole network trains and BatchNorm
uses momentum 0.9 instead of Keras's 0.999, so the moving statistics catch up within a short run.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import EdgeError

log = logging.getLogger(__name__)

IMAGENET_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
IMAGENET_SIZES = (96, 128, 160, 192, 224)
SCRATCH_BN_MOMENTUM = 0.9


@dataclass(frozen=True)
class ModelConfig:
    """What to build: backbone width and input size, where weights come from, augmentation and head."""

    num_classes: int
    size: int = 96
    alpha: float = 0.35
    weights: str = "none"  # none | imagenet | a path to a MobileNetV2 (no top) weights file
    dropout: float = 0.2
    flip: bool = True
    crop: float = 0.1  # zoom/translate up to this fraction; 0 = off
    brightness: float = 0.2  # +- this fraction of the range; 0 = off

    @property
    def pretrained(self) -> bool:
        return self.weights.lower() != "none"


def check_config(cfg: ModelConfig) -> None:
    """Reject combinations Keras would fail on (or silently mishandle) with a one-line error."""
    if cfg.size < 32:
        raise EdgeError(f"--size: MobileNetV2 needs inputs of at least 32x32, got {cfg.size}")
    if cfg.alpha <= 0:
        raise EdgeError(f"--alpha: must be positive, got {cfg.alpha}")
    if cfg.weights.lower() == "imagenet":
        if cfg.alpha not in IMAGENET_ALPHAS:
            raise EdgeError(f"--alpha {cfg.alpha}: ImageNet weights exist for alpha {list(IMAGENET_ALPHAS)}")
        if cfg.size not in IMAGENET_SIZES:
            raise EdgeError(f"--size {cfg.size}: ImageNet weights exist for sizes {list(IMAGENET_SIZES)}")
    elif cfg.pretrained and not Path(cfg.weights).is_file():
        raise EdgeError(f"--weights {cfg.weights}: no such file; give none, imagenet or a weights file")


def _augmentation(cfg: ModelConfig, seed: int) -> list[Any]:
    import keras

    layers: list[Any] = []
    if cfg.flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if cfg.crop > 0:
        layers.append(keras.layers.RandomZoom((-cfg.crop, 0.0), fill_mode="nearest", seed=seed + 1))
        layers.append(keras.layers.RandomTranslation(cfg.crop, cfg.crop, fill_mode="nearest", seed=seed + 2))
    if cfg.brightness > 0:
        layers.append(keras.layers.RandomBrightness(cfg.brightness, value_range=(0, 255), seed=seed + 3))
    return layers


def _base(cfg: ModelConfig) -> Any:
    import keras

    weights = None if not cfg.pretrained else ("imagenet" if cfg.weights.lower() == "imagenet" else cfg.weights)
    try:
        return keras.applications.MobileNetV2(
            input_shape=(cfg.size, cfg.size, 3), alpha=cfg.alpha, include_top=False, weights=weights, pooling="avg"
        )
    except Exception as e:  # download refused, wrong file: Keras raises many types
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        hint = (
            "without internet, copy Keras's mobilenet_v2_weights_tf_dim_ordering_tf_kernels_"
            f"{cfg.alpha}_{cfg.size}_no_top.h5 here and pass --weights PATH, or use --weights none"
            if weights == "imagenet"
            else f"it must be MobileNetV2 alpha {cfg.alpha}, no top, for this --alpha"
        )
        raise EdgeError(f"--weights {cfg.weights}: cannot load ({msg}); {hint}") from None


def build_model(cfg: ModelConfig, seed: int = 0) -> tuple[Any, Any]:
    """The Keras model (raw pixels in, softmax out) and its MobileNetV2 base (for fine-tuning)."""
    import keras

    check_config(cfg)
    base = _base(cfg)
    inputs = keras.Input((cfg.size, cfg.size, 3), name="pixels")
    x = inputs
    for layer in _augmentation(cfg, seed):
        x = layer(x)
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="normalise")(x)
    if cfg.pretrained:
        base.trainable = False
        x = base(x, training=False)  # BatchNorm stays in inference mode, also when fine-tuning
    else:
        for layer in base.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = SCRATCH_BN_MOMENTUM
        x = base(x)
    if cfg.dropout > 0:
        x = keras.layers.Dropout(cfg.dropout, seed=seed)(x)
    outputs = keras.layers.Dense(cfg.num_classes, activation="softmax", name="scores")(x)
    return keras.Model(inputs, outputs, name=f"mobilenetv2_{cfg.alpha}_{cfg.size}"), base


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


def _fmt_seconds(s: float) -> str:
    s = max(0, round(s))
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def progress_callback(total_epochs: int, stage: str) -> Any:
    """A Keras callback logging one line per epoch: loss, accuracy, validation, time per epoch and left."""
    import keras

    class Progress(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            logs = logs or {}
            per = time.perf_counter() - self.t0  # the last epoch: the first one also pays for graph tracing
            log.info(
                "%s epoch %d/%d  loss %.4f  accuracy %.4f  val_loss %.4f  val_accuracy %.4f  %.1fs/epoch  ~%s left",
                stage,
                epoch + 1,
                total_epochs,
                logs.get("loss", math.nan),
                logs.get("accuracy", math.nan),
                logs.get("val_loss", math.nan),
                logs.get("val_accuracy", math.nan),
                per,
                _fmt_seconds(per * (total_epochs - epoch - 1)),
            )

    return Progress()


def to_dataset(images: np.ndarray, labels: np.ndarray, batch: int, shuffle_seed: int | None) -> Any:
    """A tf.data pipeline of (float32 raw pixels, label) batches; shuffled each epoch when a seed is given."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((images, labels))
    if shuffle_seed is not None:
        ds = ds.shuffle(len(images), seed=shuffle_seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch).map(lambda x, y: (tf.cast(x, tf.float32), y), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


SCHEDULES = ("cosine", "plateau")


def _fit(
    model: Any, train: Any, val: Any, epochs: int, lr: float, patience: int, stage: str, schedule: str
) -> dict[str, list]:
    import keras

    callbacks = [progress_callback(epochs, stage)]
    if schedule == "cosine":  # decays to 1% over the planned epochs: the best use of a fixed, short budget
        steps = max(1, epochs * int(train.cardinality()))
        rate: Any = keras.optimizers.schedules.CosineDecay(lr, decay_steps=steps, alpha=0.01)
    else:
        rate = lr
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.3, patience=max(1, patience // 2))
        )
    callbacks.append(
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True, verbose=0)
    )
    model.compile(optimizer=keras.optimizers.Adam(rate), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    hist = model.fit(train, validation_data=val, epochs=epochs, callbacks=callbacks, verbose=0)
    stopped = len(hist.history.get("loss", []))
    if stopped < epochs:
        log.info("%s: stopped early after %d epochs (validation loss plateaued); kept the best epoch", stage, stopped)
    return {k: [float(v) for v in vals] for k, vals in hist.history.items() if k != "learning_rate"}


def train(
    model: Any,
    base: Any,
    cfg: ModelConfig,
    data: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    *,
    epochs: int = 20,
    fine_tune_epochs: int = 0,
    fine_tune_layers: int = 30,
    batch: int = 64,
    lr: float = 1e-3,
    patience: int = 4,
    seed: int = 0,
    schedule: str = "cosine",
) -> dict[str, list]:
    """Train the head (or the whole net from scratch), then optionally fine-tune the top of the base.

    Args:
        data: (train images, train labels, validation images, validation labels); images uint8 NHWC.
        schedule: `cosine` (learning rate decays over the planned epochs) or `plateau` (cut by 0.3 when the
            validation loss stalls). Either way training stops early after `patience` epochs without progress.

    Returns:
        The history: per-epoch loss, accuracy, val_loss, val_accuracy and `stage` (1 = head/scratch, 2 = fine-tune).
    """
    x_tr, y_tr, x_va, y_va = data
    train_ds = to_dataset(x_tr, y_tr, batch, seed)
    val_ds = to_dataset(x_va, y_va, batch, None)
    stage1 = "train head" if cfg.pretrained else "train"
    history = _fit(model, train_ds, val_ds, epochs, lr, patience, stage1, schedule)
    history["stage"] = [1] * len(history["loss"])
    if fine_tune_epochs > 0:
        if not cfg.pretrained:
            log.info("fine-tuning skipped: from scratch (--weights none) the whole network was trained already")
            return history
        n = unfreeze_top(base, fine_tune_layers)
        log.info("fine-tuning the top %d layers (%d trainable) at learning rate %g", fine_tune_layers, n, lr / 10)
        more = _fit(model, train_ds, val_ds, fine_tune_epochs, lr / 10, patience, "fine-tune", schedule)
        for k, v in more.items():
            history.setdefault(k, []).extend(v)
        history["stage"] += [2] * len(more["loss"])
    return history


def predict(model: Any, images: np.ndarray, batch: int = 256) -> np.ndarray:
    """Float class probabilities for uint8 images (the Keras model, before quantization).

    Called eagerly batch by batch: tracing a predict graph costs more than it saves on a test split.
    """
    import tensorflow as tf

    out = [model(tf.constant(images[i : i + batch], tf.float32), training=False) for i in range(0, len(images), batch)]
    return np.concatenate([np.asarray(o) for o in out]) if out else np.zeros((0, model.output_shape[-1]), np.float32)
