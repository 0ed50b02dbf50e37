"""Postprocessing as pure functions: dequantize, softmax only for logits, top-k with threshold."""

import numpy as np
import pytest

from edge.inference.postprocess import OutputFormat, Prediction, dequantize, scores, softmax, top_k


@pytest.mark.parametrize(
    ("q", "scale", "zp", "expected"),
    [
        (np.array([0, 128, 255], np.uint8), 1 / 256, 0, [0.0, 0.5, 255 / 256]),
        (np.array([-128, 0, 127], np.int8), 1 / 256, -128, [0.0, 0.5, 255 / 256]),
        (np.array([0, 255], np.uint8), 0.1, 200, [-20.0, 5.5]),  # would wrap without widening
        (np.array([-128, 127], np.int8), 0.5, 127, [-127.5, 0.0]),
        (np.array([1.5, -2.0], np.float32), 0.0, 0, [1.5, -2.0]),
    ],
)
def test_dequantize(q, scale, zp, expected):
    np.testing.assert_allclose(dequantize(q, scale, zp), expected, rtol=1e-6)


def test_softmax_sums_to_one_and_ignores_shift():
    x = np.array([1.0, 2.0, 3.0], np.float32)
    np.testing.assert_allclose(softmax(x).sum(), 1.0, rtol=1e-6)
    np.testing.assert_allclose(softmax(x), softmax(x + 1000), rtol=1e-5)


@pytest.mark.parametrize(
    ("raw", "fmt", "expected"),
    [
        (np.array([[0, 64, 192]], np.uint8), OutputFormat(np.uint8, 1 / 256, 0, True), [0.0, 0.25, 0.75]),
        (np.array([[-128, -64, 64]], np.int8), OutputFormat(np.int8, 1 / 256, -128, True), [0.0, 0.25, 0.75]),
        (np.array([[0.1, 0.9]], np.float32), OutputFormat(np.float32), [0.1, 0.9]),
        (np.array([[0.0, np.log(3.0)]], np.float32), OutputFormat(np.float32, probabilities=False), [0.25, 0.75]),
        (np.array([[58, 68]], np.uint8), OutputFormat(np.uint8, 0.1, 58, False), [1 / (1 + np.e), np.e / (1 + np.e)]),
    ],
)
def test_scores(raw, fmt, expected):
    np.testing.assert_allclose(scores(raw, fmt), expected, rtol=1e-5, atol=1e-7)


LABELS = ("a", "b", "c", "d")


@pytest.mark.parametrize(
    ("s", "k", "threshold", "expected"),
    [
        ([0.1, 0.4, 0.3, 0.2], 2, 0.0, [(1, 0.4), (2, 0.3)]),
        ([0.1, 0.4, 0.3, 0.2], 10, 0.0, [(1, 0.4), (2, 0.3), (3, 0.2), (0, 0.1)]),
        ([0.1, 0.4, 0.3, 0.2], 3, 0.25, [(1, 0.4), (2, 0.3)]),
        ([0.25, 0.25, 0.25, 0.25], 2, 0.0, [(0, 0.25), (1, 0.25)]),  # ties: lower index first
        ([0.1, 0.4, 0.3, 0.2], 0, 0.0, []),
        ([0.1, 0.4, 0.3, 0.2], 4, 0.5, []),
    ],
)
def test_top_k(s, k, threshold, expected):
    got = top_k(np.array(s, np.float32), LABELS, k, threshold)
    assert [(p.index, round(p.score, 6)) for p in got] == expected
    assert all(p.label == LABELS[p.index] for p in got)


@pytest.mark.parametrize("seed", range(20))
def test_top_k_matches_a_stable_sort_with_many_ties(seed):
    """Quantized outputs tie often (uint8 steps of 1/256): the answer must not depend on partition order."""
    rng = np.random.default_rng(seed)
    s = rng.integers(0, 6, size=1001).astype(np.float32) / 256
    labels = [str(i) for i in range(s.size)]
    for k in (1, 3, 10):
        expected = sorted(range(s.size), key=lambda i: (-s[i], i))[:k]
        assert [p.index for p in top_k(s, labels, k)] == expected
    assert top_k(s, labels, 1)[0].index == int(np.argmax(s))


def test_prediction_is_immutable():
    p = Prediction(1, "cat", 0.5)
    with pytest.raises(AttributeError):
        p.score = 1.0  # type: ignore[misc]
