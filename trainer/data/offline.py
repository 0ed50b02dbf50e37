"""Offline datasets written in the folder layout the trainer reads, so everything runs without a network.

- `fashion-mnist`: Debian's `dataset-fashion-mnist` package (apt), its official train/test split kept:
  `OUT/train/<class>/*.png`, `OUT/test/<class>/*.png`;
- `digits`: scikit-learn's bundled 8x8 digits (1797 images, scaled to 0..255): `OUT/<digit>/*.png`.
"""

from __future__ import annotations

import gzip
import logging
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np

from edge.errors import EdgeError

log = logging.getLogger(__name__)

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = (
    "T-shirt_top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle_boot",
)
FASHION_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
NAMES = ("fashion-mnist", "digits")


def find_fashion_mnist() -> Path:
    """The folder of Debian's dataset-fashion-mnist files (`dpkg -L`, else the package's usual place)."""
    if shutil.which("dpkg"):
        try:
            out = subprocess.run(
                ["dpkg", "-L", "dataset-fashion-mnist"], capture_output=True, text=True, timeout=30
            ).stdout
        except (OSError, subprocess.TimeoutExpired):
            out = ""
        for line in out.splitlines():
            if line.endswith(FASHION_FILES["train"][0]):
                return Path(line).parent
    if (FASHION_DIR / FASHION_FILES["train"][0]).is_file():
        return FASHION_DIR
    raise EdgeError(
        "fashion-mnist: Debian's dataset-fashion-mnist is not installed; run "
        "`sudo apt-get install dataset-fashion-mnist`, or give --source DIR holding the four idx .gz files"
    )


def read_idx(path: Path) -> np.ndarray:
    """A (gzipped) IDX file (the MNIST format) as a uint8 array."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise EdgeError(f"{path}: cannot read IDX file ({e})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise EdgeError(f"{path}: not an unsigned-byte IDX file")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise EdgeError(f"{path}: truncated IDX file ({body.size} bytes for shape {dims})")
    return body.reshape(dims)


def load_fashion_mnist(source: Path | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{'train'|'test': (images N x 28 x 28 uint8, labels N)} from the Debian package files."""
    folder = source or find_fashion_mnist()
    out = {}
    for split, (images, labels) in FASHION_FILES.items():
        x, y = read_idx(folder / images), read_idx(folder / labels)
        if len(x) != len(y):
            raise EdgeError(f"{folder}: {split} has {len(x)} images but {len(y)} labels")
        out[split] = (x, y)
    return out


def _pick(y: np.ndarray, per_class: int | None, seed: int) -> np.ndarray:
    if per_class is None:
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    picked = [rng.permutation(np.flatnonzero(y == c))[:per_class] for c in np.unique(y)]
    return np.sort(np.concatenate(picked))


def write_folder(out: Path, images: np.ndarray, labels: np.ndarray, classes: tuple[str, ...], prefix: str) -> int:
    """Write images as PNGs into OUT/<class>/<prefix>NNNNN.png; returns how many."""
    for name in classes:
        (out / name).mkdir(parents=True, exist_ok=True)
    for i, (img, y) in enumerate(zip(images, labels, strict=True)):
        if not cv2.imwrite(str(out / classes[int(y)] / f"{prefix}{i:05d}.png"), img):
            raise EdgeError(f"{out}: cannot write images there")
    return len(images)


def export_dataset(
    name: str, out: str | Path, *, per_class: int | None = None, seed: int = 0, source: Path | None = None
) -> dict[str, int]:
    """Write a dataset into the trainer's folder layout.

    Args:
        name: `fashion-mnist` or `digits`.
        out: the folder to create (must be empty or absent).
        per_class: keep at most this many images per class (and per split), chosen with `seed`.
        source: fashion-mnist only: a folder with the idx .gz files instead of the Debian package's.

    Returns:
        {split: images written}.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise EdgeError(f"{out}: exists and is not empty; give a new folder")
    if name == "fashion-mnist":
        written = {}
        for split, (x, y) in load_fashion_mnist(source).items():
            idx = _pick(y, per_class, seed)
            written[split] = write_folder(out / split, x[idx], y[idx], FASHION_CLASSES, f"{split}_")
    elif name == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        images = np.clip(np.rint(d.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
        idx = _pick(d.target, per_class, seed)
        written = {"all": write_folder(out, images[idx], d.target[idx], tuple(str(i) for i in range(10)), "digit_")}
    else:
        raise EdgeError(f"dataset {name!r}: choose one of {', '.join(NAMES)}")
    log.info("wrote %s to %s: %s", name, out, ", ".join(f"{k} {v}" for k, v in written.items()))
    return written
