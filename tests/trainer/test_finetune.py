"""Transfer learning: frozen base (BatchNorm in inference mode), then fine-tuning only the top layers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def test_frozen_base_then_fine_tune_top(tmp_path: Path) -> None:
    pytest.importorskip("tensorflow")
    import keras

    from trainer.nets.model import TrainSpec, build_model
    from trainer.training import train

    keras.utils.set_random_seed(5)
    pretrained = keras.applications.MobileNetV2(
        input_shape=(32, 32, 3), alpha=0.35, include_top=False, weights=None, pooling="avg"
    )
    weights = tmp_path / "base.weights.h5"
    pretrained.save_weights(weights)  # stands in for the ImageNet file (tests never download)
    cfg = TrainSpec(num_classes=2, size=32, alpha=0.35, weights=str(weights), crop=0, brightness=0)
    net, base = build_model(cfg, seed=5)
    assert not base.trainable and len(net.trainable_weights) == 2  # only the new head's kernel and bias

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    y = (x.mean(axis=(1, 2, 3)) > 127).astype(np.int64)
    bn = [layer for layer in base.layers if isinstance(layer, keras.layers.BatchNormalization)]
    stats_before = [w.numpy() for layer in bn for w in layer.non_trainable_weights]
    first_conv = base.get_layer("Conv1").kernel.numpy()
    last_conv = base.get_layer("Conv_1").kernel.numpy()

    history = train(
        net,
        base,
        cfg,
        (x[:30], y[:30], x[30:], y[30:]),
        epochs=1,
        fine_tune_epochs=1,
        fine_tune_layers=10,
        batch=10,
        patience=5,
        seed=5,
    )

    assert history["stage"] == [1, 2]
    stats_after = [w.numpy() for layer in bn for w in layer.non_trainable_weights]
    for a, b in zip(stats_before, stats_after, strict=True):
        np.testing.assert_array_equal(a, b)  # BatchNorm statistics never moved: inference mode throughout
    np.testing.assert_array_equal(first_conv, base.get_layer("Conv1").kernel.numpy())  # bottom stays frozen
    assert not np.array_equal(last_conv, base.get_layer("Conv_1").kernel.numpy())  # top was fine-tuned
    assert not any(layer.trainable for layer in bn)
