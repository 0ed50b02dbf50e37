"""Pure: whether two frames show the same scene, by a perceptual hash (dHash) and its Hamming distance.

The difference hash of Krawetz ("Kind of like that", 2013), as the `imagehash` library computes it: the picture
in gray, shrunk to 9x8 with area averaging (so camera noise and JPEG artefacts average out), and one bit per
pair of horizontal neighbours, set where the left one is brighter: 64 bits. Two pictures of one still scene
differ in a few bits; two different scenes in about half. Written here rather than taken from `imagehash`,
which would bring Pillow, SciPy and PyWavelets onto a Pi for six lines of OpenCV.
"""

from __future__ import annotations

import cv2
import numpy as np

NEAR = 6  # bits of 64: at most this many differ between two frames of the same scene (see BENCHMARKS.md)


def dhash(image: np.ndarray) -> int:
    """The 64-bit difference hash of a BGR or gray uint8 picture (any size, at least 1x1)."""
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    small = cv2.resize(gray, (9, 8), interpolation=cv2.INTER_AREA).astype(np.int16)
    bits = (small[:, :-1] > small[:, 1:]).reshape(-1)
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def distance(a: int, b: int) -> int:
    """How many of the 64 bits differ."""
    return (a ^ b).bit_count()


def near(a: int, b: int, limit: int = NEAR) -> bool:
    """The two hashes are of the same scene (at most `limit` bits differ)."""
    return distance(a, b) <= limit
