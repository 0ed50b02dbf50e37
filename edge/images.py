"""Reading image files into the uint8 arrays the preprocessing takes (OpenCV's BGR, BGRA or gray)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge.errors import EdgeError


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file (any format OpenCV reads) to uint8 BGR, BGRA or 2-D gray.

    Raises:
        EdgeError: the file is missing or is not a decodable image.
    """
    p = Path(path)
    if not p.is_file():
        raise EdgeError(f"{p}: image not found")
    data = np.fromfile(p, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise EdgeError(f"{p}: not an image OpenCV can decode (use JPEG, PNG, BMP, WebP or TIFF)")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        image = cv2.normalize(image, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    return image
