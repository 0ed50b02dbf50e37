"""Preprocessing as pure functions: colour order, resize, layouts and quantization for each input dtype."""

import numpy as np
import pytest

from edge.inference.preprocess import InputFormat, pixels_to_tensor, preprocess, quantize, resize, to_channels


def _bilinear_half_pixel(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Reference: TF's resize_bilinear(half_pixel_centers=True), edges clamped, in float64."""
    in_h, in_w = img.shape[:2]
    ys = np.clip((np.arange(out_h) + 0.5) * in_h / out_h - 0.5, 0, in_h - 1)
    xs = np.clip((np.arange(out_w) + 0.5) * in_w / out_w - 0.5, 0, in_w - 1)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, in_h - 1), np.minimum(x0 + 1, in_w - 1)
    wy, wx = (ys - y0)[:, None], (xs - x0)[None, :]
    f = img.astype(np.float64)
    top = f[y0][:, x0] * (1 - wx) + f[y0][:, x1] * wx
    bot = f[y1][:, x0] * (1 - wx) + f[y1][:, x1] * wx
    return top * (1 - wy) + bot * wy


@pytest.mark.parametrize(("in_hw", "out_hw"), [((4, 4), (2, 2)), ((3, 5), (7, 4)), ((16, 12), (5, 9))])
def test_resize_is_bilinear_with_half_pixel_centres(in_hw, out_hw):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=in_hw, dtype=np.uint8)
    got = resize(img, out_hw[1], out_hw[0]).astype(np.float64)
    assert got.shape == out_hw
    assert np.max(np.abs(got - _bilinear_half_pixel(img, *out_hw))) <= 1.0  # OpenCV rounds in fixed point


def test_resize_same_size_returns_input():
    img = np.zeros((5, 6, 3), np.uint8)
    assert resize(img, 6, 5) is img


BGR = np.array([[[10, 20, 30]]], np.uint8)  # blue 10, green 20, red 30


@pytest.mark.parametrize(
    ("image", "channels", "expected"),
    [
        (BGR, 3, [[[30, 20, 10]]]),  # BGR -> RGB
        (np.dstack([BGR, np.full((1, 1, 1), 255, np.uint8)]), 3, [[[30, 20, 10]]]),  # BGRA -> RGB
        (np.array([[7]], np.uint8), 3, [[[7, 7, 7]]]),  # gray -> RGB
        (np.array([[7]], np.uint8), 1, [[7]]),  # gray stays 2-D
        (BGR, 1, [[round(0.299 * 30 + 0.587 * 20 + 0.114 * 10)]]),  # BGR -> gray (ITU-R BT.601)
    ],
)
def test_to_channels(image, channels, expected):
    np.testing.assert_array_equal(to_channels(image, channels), np.array(expected, np.uint8))


ALL = np.arange(256, dtype=np.uint8).reshape(16, 16)


@pytest.mark.parametrize(
    ("dtype", "scale", "zp", "mean", "std", "expected"),
    [
        (np.uint8, 1 / 128, 128, None, None, ALL),  # Coral: raw pixels
        (np.int8, 1 / 255, -128, None, None, (ALL.astype(int) - 128).astype(np.int8)),  # int8: pixel - 128
        (np.float32, 0.0, 0, None, None, ALL / np.float32(255)),  # float: [0, 1]
        (np.float32, 0.0, 0, 127.5, 127.5, (ALL - np.float32(127.5)) / np.float32(127.5)),  # [-1, 1]
        (np.uint8, 1 / 128, 128, 127.5, 127.5, np.clip(np.rint((ALL - 127.5) / 127.5 * 128) + 128, 0, 255)),
        (np.int8, 1 / 128, 0, 127.5, 127.5, np.clip(np.rint((ALL - 127.5) / 127.5 * 128), -128, 127)),
    ],
)
def test_pixels_to_tensor(dtype, scale, zp, mean, std, expected):
    fmt = InputFormat((1, 16, 16), 16, 16, 1, dtype, scale, zp, mean, std)
    got = pixels_to_tensor(ALL, fmt)
    assert got.dtype == dtype
    np.testing.assert_allclose(got.astype(np.float64), np.asarray(expected, np.float64), atol=1e-6)


@pytest.mark.parametrize(
    ("shape", "channels", "image_shape"),
    [
        ((1, 224, 224, 3), 3, (480, 640, 3)),
        ((1, 96, 96, 3), 3, (120, 160)),  # a gray frame into an RGB model
        ((1, 28, 28), 1, (56, 56, 3)),  # 2-D input (MNIST LSTM) from a colour frame
        ((1, 28, 28, 1), 1, (28, 28)),
    ],
)
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.float32])
def test_preprocess_shapes_and_dtypes(shape, channels, image_shape, dtype):
    fmt = InputFormat(shape, shape[1], shape[2], channels, dtype, 1 / 255 if dtype != np.float32 else 0.0, 0)
    image = np.random.default_rng(1).integers(0, 256, size=image_shape, dtype=np.uint8)
    tensor = preprocess(image, fmt)
    assert tensor.shape == shape
    assert tensor.dtype == dtype


def test_preprocess_rejects_non_uint8():
    fmt = InputFormat((1, 2, 2, 3), 2, 2, 3, np.uint8)
    with pytest.raises(ValueError, match="uint8"):
        preprocess(np.zeros((2, 2, 3), np.float32), fmt)


def test_quantize_saturates():
    q = quantize(np.array([-10.0, 0.0, 0.5, 10.0]), 0.01, 0, np.int8)
    np.testing.assert_array_equal(q, np.array([-128, 0, 50, 127], np.int8))
