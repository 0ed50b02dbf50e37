"""Pure image preprocessing: a decoded frame in, the model's input tensor out.

The same function serves the daemon (camera frames), `edge-daemon classify` (image files) and the
trainer (calibration and evaluation), so training and serving cannot drift apart.

Conventions, as upstream (TFLite Support, pycoral):
- frames are OpenCV's BGR (or 2-D grayscale) uint8 arrays; models take RGB, or one channel;
- resize is bilinear with half-pixel centres (`cv2.INTER_LINEAR`), stretching to the input size;
- quantized models take raw pixels: uint8 as they are, int8 shifted by -128 (what a uint8 range means
  under the int8 zero point), unless a mean/std is given, in which case pixels are normalised and
  quantized with the model's own scale and zero point;
- float models take (pixel - mean) / std, by default pixel / 255.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class InputFormat:
    """What the model's input tensor wants; built by `edge.inference.model` from the interpreter."""

    shape: tuple[int, ...]  # the full tensor shape, batch first
    height: int
    width: int
    channels: int  # 1 or 3
    dtype: type  # np.uint8, np.int8 or np.float32
    scale: float = 0.0  # quantization scale (0 for float tensors)
    zero_point: int = 0
    mean: float | None = None  # normalisation; None = the raw-pixel convention described above
    std: float | None = None


def to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """BGR/BGRA/gray uint8 image to RGB (channels=3) or gray (channels=1, returned 2-D)."""
    if image.ndim == 2:
        return image if channels == 1 else cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    c = image.shape[2]
    if channels == 1:
        code = {1: None, 3: cv2.COLOR_BGR2GRAY, 4: cv2.COLOR_BGRA2GRAY}[c]
        return image[:, :, 0] if code is None else cv2.cvtColor(image, code)
    code = {1: cv2.COLOR_GRAY2RGB, 3: cv2.COLOR_BGR2RGB, 4: cv2.COLOR_BGRA2RGB}[c]
    return cv2.cvtColor(image, code)


def resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bilinear resize with half-pixel centres (what TFLite's RESIZE_BILINEAR and upstream use)."""
    if image.shape[1] == width and image.shape[0] == height:
        return image
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)


def quantize(real: np.ndarray, scale: float, zero_point: int, dtype: type) -> np.ndarray:
    """Real values to a quantized dtype: round(real / scale) + zero_point, saturated."""
    info = np.iinfo(dtype)
    q = np.rint(real / scale) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def pixels_to_tensor(pixels: np.ndarray, fmt: InputFormat) -> np.ndarray:
    """uint8 pixels (already RGB/gray and resized) to the model's dtype, without the batch axis."""
    if fmt.mean is None or fmt.std is None:
        if fmt.dtype == np.uint8:
            return pixels
        if fmt.dtype == np.int8:
            return (pixels ^ np.uint8(0x80)).view(np.int8)  # pixel - 128, exactly, without a copy to int16
        return pixels.astype(np.float32) * np.float32(1.0 / 255.0)
    real = (pixels.astype(np.float32) - np.float32(fmt.mean)) / np.float32(fmt.std)
    if fmt.dtype == np.float32:
        return real
    return quantize(real, fmt.scale, fmt.zero_point, fmt.dtype)


def preprocess(image: np.ndarray, fmt: InputFormat) -> np.ndarray:
    """A decoded image (BGR, BGRA or gray, any size, uint8) to the model's input tensor, batch included."""
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    # Resize first: colour conversion then touches the model's few pixels, not the camera's many. Exact for
    # RGB (a channel swap commutes with resizing); for grayscale models the rounding may differ by one level.
    pixels = to_channels(resize(image, fmt.width, fmt.height), fmt.channels)
    return pixels_to_tensor(pixels, fmt).reshape(fmt.shape)
