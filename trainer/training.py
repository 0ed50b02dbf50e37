"""Training: the new head on a frozen pretrained base, then fine-tuning; or the whole network from scratch.

With a pretrained base the first stage is a linear probe: the frozen base (BatchNorm in inference mode, no
augmentation) turns every image into its pooled features ONCE, and only the head (dropout + dense) trains
on them, so many epochs cost seconds. The fine-tuning stage then trains the top of the base with the head,
end to end through the augmentation layers, at a tenth of the learning rate, BatchNorm still frozen.
Every stage stops early after `patience` epochs without a better validation loss and keeps its best epoch.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import numpy as np

from trainer.nets.model import TrainSpec, unfreeze_top

log = logging.getLogger(__name__)

SCHEDULES = ("cosine", "plateau")


def _fmt_seconds(s: float) -> str:
    s = max(0, round(s))
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def progress_callback(total_epochs: int, stage: str, every: int = 1) -> Any:
    """A Keras callback logging one line per epoch (or per `every` epochs): loss, accuracy, validation, time."""
    import keras

    class Progress(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            if (epoch + 1) % every and epoch + 1 != total_epochs:
                return
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
    """A tf.data pipeline of (float32 inputs, label) batches; shuffled each epoch when a seed is given."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((images, labels))
    if shuffle_seed is not None:
        ds = ds.shuffle(len(images), seed=shuffle_seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch).map(lambda x, y: (tf.cast(x, tf.float32), y), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def _fit(
    model: Any, train: Any, val: Any, epochs: int, lr: float, patience: int, stage: str, schedule: str, every: int = 1
) -> dict[str, list]:
    import keras

    callbacks = [progress_callback(epochs, stage, every)]
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
    # shuffle=False: the tf.data pipeline shuffles (seeded) itself; Keras would warn that it ignores its own
    hist = model.fit(train, validation_data=val, epochs=epochs, callbacks=callbacks, verbose=0, shuffle=False)
    stopped = len(hist.history.get("loss", []))
    if stopped < epochs:
        log.info("%s: stopped early after %d epochs (validation loss plateaued); kept the best epoch", stage, stopped)
    return {k: [float(v) for v in vals] for k, vals in hist.history.items() if k != "learning_rate"}


def features(model: Any, base: Any, images: np.ndarray, batch: int = 128) -> np.ndarray:
    """The frozen base's pooled features of uint8 images (normalised as the model does; no augmentation)."""
    import tensorflow as tf

    normalise = model.get_layer("normalise")

    @tf.function
    def run(x: Any) -> Any:
        return base(normalise(tf.cast(x, tf.float32)), training=False)

    out = [np.asarray(run(images[i : i + batch])) for i in range(0, len(images), batch)]
    return np.concatenate(out) if out else np.zeros((0, base.output_shape[-1]), np.float32)


def head_model(model: Any, dim: int) -> Any:
    """The model's own head layers (dropout, dense) as a model on pooled features: training it trains them."""
    import keras

    names = {layer.name for layer in model.layers}
    layers = [model.get_layer(name) for name in ("head_dropout", "scores") if name in names]
    return keras.Sequential([keras.Input((dim,)), *layers], name="head")


def train(
    model: Any,
    base: Any,
    spec: TrainSpec,
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
    """Train the head on the frozen base (or the whole net from scratch), then optionally fine-tune the base's top.

    Args:
        data: (train images, train labels, validation images, validation labels); images uint8 NHWC.
        epochs: head epochs (pretrained) or epochs of the whole network (from scratch).
        schedule: `cosine` (learning rate decays over the planned epochs) or `plateau` (cut by 0.3 when the
            validation loss stalls). Either way a stage stops early after `patience` epochs without progress.

    Returns:
        The history: per-epoch loss, accuracy, val_loss, val_accuracy and `stage` (1 = head/scratch, 2 = fine-tune).
    """
    x_tr, y_tr, x_va, y_va = data
    train_ds = to_dataset(x_tr, y_tr, batch, seed)
    val_ds = to_dataset(x_va, y_va, batch, None)
    if spec.pretrained:
        t0 = time.perf_counter()
        f_tr, f_va = features(model, base, x_tr), features(model, base, x_va)
        log.info("features of %d images from the frozen base in %.0fs", len(f_tr) + len(f_va), time.perf_counter() - t0)
        head = head_model(model, f_tr.shape[-1])
        every = max(1, epochs // 10)
        history = _fit(head, to_dataset(f_tr, y_tr, batch, seed), to_dataset(f_va, y_va, batch, None), epochs, lr,
                       patience, "train head", schedule, every)
    else:
        history = _fit(model, train_ds, val_ds, epochs, lr, patience, "train", schedule)
    history["stage"] = [1] * len(history["loss"])
    if fine_tune_epochs > 0:
        if not spec.pretrained:
            log.info("fine-tuning skipped: from scratch (--weights none) the whole network was trained already")
            return history
        n = unfreeze_top(base, fine_tune_layers)
        log.info("fine-tuning the top %d layers (%d trainable) at learning rate %g", fine_tune_layers, n, lr / 10)
        more = _fit(model, train_ds, val_ds, fine_tune_epochs, lr / 10, patience, "fine-tune", schedule)
        for k, v in more.items():
            history.setdefault(k, []).extend(v)
        history["stage"] += [2] * len(more["loss"])
    return history
