"""Datasets: a folder with one subfolder per class, or a CSV of `path,label`; validated, loaded, split.

Every file is decoded with the daemon's own `edge.frames.images.read_image` and brought to the model's size with
`edge.inference.preprocess` (RGB, bilinear resize), so training pixels are exactly what the device will feed.
Unreadable files are reported (path and reason) and skipped; a class with too few images is an error.

The split is decided by each image's content (a seeded hash of the file's bytes), not by its position, so an
image stays in its part as the dataset grows: when a run continues from an earlier one (`--from`), no image the
earlier model trained on is among the new held-out images (same seed and fractions). Identical files land in
the same part.

Layouts understood:
- `ROOT/<class>/*` (Model Maker's `from_folder`): split into train/validation/test, stratified, seeded;
- `ROOT/train/<class>/*` with optional `ROOT/val|validation/<class>/*` and `ROOT/test/<class>/*`: the given
  split (a missing validation or test part is carved from train);
- `FILE.csv` with rows `path,label` (paths relative to the CSV; a `path,label` header is optional).
"""

from __future__ import annotations

import csv
import hashlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.errors import EdgeError
from edge.frames.images import read_image
from edge.inference.preprocess import InputFormat, preprocess

log = logging.getLogger(__name__)

SPLIT_NAMES = {"train": "train", "val": "val", "validation": "val", "test": "test"}
MIN_PER_CLASS = 10


@dataclass
class ImageSet:
    """Decoded images (N, size, size, 3) uint8 RGB with their class indices and source paths."""

    images: np.ndarray
    labels: np.ndarray
    paths: list[Path]
    classes: tuple[str, ...]
    digests: list[str] = field(default_factory=list)  # SHA-1 of each file's bytes: what the split is decided by

    def subset(self, idx: np.ndarray) -> ImageSet:
        """The images at the given indices (a copy)."""
        digests = [self.digests[i] for i in idx] if self.digests else []
        return ImageSet(self.images[idx], self.labels[idx], [self.paths[i] for i in idx], self.classes, digests)

    def __len__(self) -> int:
        return len(self.paths)


@dataclass
class Splits:
    """Train, validation and test sets sharing one class list, and the files that were skipped."""

    train: ImageSet
    val: ImageSet
    test: ImageSet
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def classes(self) -> tuple[str, ...]:
        return self.train.classes


SIDECAR_SUFFIX = ".json"  # what a collected frame carries beside it (`edge.collect.collector`): not an image


def _visible_files(folder: Path) -> list[Path]:
    """The files of a class folder that may be images: no hidden files, no JSON sidecars of collected frames."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")
                  and p.suffix.lower() != SIDECAR_SUFFIX)  # fmt: skip


def _class_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def count_images(root: Path) -> int:
    """How many files the trainer would read as images from ROOT's class folders (0 when it has none)."""
    return sum(len(_visible_files(d)) for d in _class_dirs(root))


def scan_folder(root: Path) -> dict[str, list[Path]]:
    """{class name: files} for a folder with one subfolder per class (files directly in ROOT are ignored)."""
    if not root.is_dir():
        raise EdgeError(f"{root}: dataset folder not found")
    found = {d.name: _visible_files(d) for d in _class_dirs(root)}
    if not found:
        raise EdgeError(f"{root}: no class subfolders; put images in one folder per class ({root}/cat/1.jpg, ...)")
    return found


def scan_csv(path: Path) -> dict[str, list[Path]]:
    """{class name: files} from a CSV of `path,label` rows (paths relative to the CSV's folder)."""
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError) as e:
        raise EdgeError(f"{path}: cannot read CSV ({e})") from None
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["path", "label"]:
        rows = rows[1:]
    found: dict[str, list[Path]] = {}
    for n, row in enumerate(rows, 1):
        if len(row) < 2 or not row[0].strip() or not row[1].strip():
            raise EdgeError(f"{path}: row {n} is {row!r}; every row needs `path,label`")
        file = Path(row[0].strip())
        found.setdefault(row[1].strip(), []).append(file if file.is_absolute() else path.parent / file)
    if not found:
        raise EdgeError(f"{path}: no rows; write one `path,label` row per image")
    return found


def detect_split_layout(root: Path) -> dict[str, Path] | None:
    """{'train': dir, 'val': dir, 'test': dir} when ROOT holds split folders (train/ val/ test/), else None."""
    if not root.is_dir():
        return None
    dirs = _class_dirs(root)
    names = {d.name.lower() for d in dirs}
    if "train" not in names or not names <= set(SPLIT_NAMES):
        return None
    return {SPLIT_NAMES[d.name.lower()]: d for d in dirs}


def pixel_format(size: int) -> InputFormat:
    """The input of the models the trainer makes: (size, size) RGB raw pixels (uint8, batch 1)."""
    return InputFormat((1, size, size, 3), size, size, 3, np.uint8, 1.0, 0)


def decode(path: Path, size: int) -> np.ndarray:
    """One file as (size, size, 3) uint8 RGB: `edge.inference.preprocess.preprocess` itself, as the device does it."""
    return preprocess(read_image(path), pixel_format(size))[0]


def load_files(
    found: dict[str, list[Path]], size: int, classes: tuple[str, ...] | None = None
) -> tuple[ImageSet, list[tuple[Path, str]]]:
    """Decode every file; unreadable ones are logged (path and reason) and returned as skipped."""
    classes = classes or tuple(sorted(found))
    index = {c: i for i, c in enumerate(classes)}
    images, labels, paths, digests, skipped = [], [], [], [], []
    total = sum(len(v) for v in found.values())
    for name, files in sorted(found.items()):
        if name not in index:
            raise EdgeError(f"class '{name}' is not among the training classes {list(classes)}")
        for p in files:
            try:
                images.append(decode(p, size))
                digests.append(hashlib.sha1(p.read_bytes()).hexdigest())
            except (EdgeError, OSError) as e:
                reason = str(e).split(": ", 1)[-1]
                log.warning("skipped %s: %s", p, reason)
                skipped.append((p, reason))
                continue
            labels.append(index[name])
            paths.append(p)
            if len(paths) % 10000 == 0:
                log.info("decoded %d/%d images", len(paths), total)
    arr = np.stack(images) if images else np.zeros((0, size, size, 3), np.uint8)
    return ImageSet(arr, np.asarray(labels, dtype=np.int64), paths, classes, digests), skipped


def check_classes(data: ImageSet, source: str, min_per_class: int) -> None:
    """At least two classes, and `min_per_class` usable images in each; the error names the class."""
    if len(data.classes) < 2:
        raise EdgeError(
            f"{source}: found {len(data.classes)} class ({', '.join(data.classes) or 'none'}); "
            "a classifier needs at least 2 class folders"
        )
    counts = Counter(data.labels.tolist())
    for i, name in enumerate(data.classes):
        if counts.get(i, 0) < min_per_class:
            raise EdgeError(
                f"{source}: class '{name}' has {counts.get(i, 0)} usable image(s), at least {min_per_class} "
                "are needed; add images to it or remove its folder"
            )


def split_score(key: str, seed: int) -> float:
    """Where an image falls in [0, 1) for the split: a seeded hash of its key (its content digest)."""
    return int(hashlib.sha1(f"{seed}:{key}".encode()).hexdigest()[:13], 16) / 16**13


def split_indices(
    labels: np.ndarray, fractions: tuple[float, float], seed: int, keys: list[str] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stratified (train, val, test) index arrays; `fractions` = (val, test) shares of the whole.

    Each image's part follows from `split_score` of its key (the file's content digest; its index when no keys
    are given): below the test share it is a test image, below test + validation a validation image, else a
    training image. So an image never changes part as images are added, and every class gets about its share.
    Every class keeps at least one image in train and, when its fraction is non-zero, in val and test (the
    images with the lowest scores are moved up when a small class has none).
    """
    val_f, test_f = fractions
    if val_f < 0 or test_f < 0 or val_f + test_f >= 1:
        raise EdgeError(f"split fractions validation={val_f}, test={test_f}: each >= 0 and together < 1")
    keys = keys if keys is not None else [str(i) for i in range(len(labels))]
    parts: list[list[int]] = [[], [], []]
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        scores = np.array([split_score(keys[i], seed) for i in idx])
        order = idx[np.argsort(scores, kind="stable")]
        scores = np.sort(scores, kind="stable")
        need_test, need_val = int(test_f > 0), int(val_f > 0)
        n = len(idx)
        if n < 1 + need_test + need_val:
            raise EdgeError(f"class index {c} has {n} images: too few to split into train/validation/test")
        n_test = max(int(np.sum(scores < test_f)), need_test)
        end_val = max(int(np.sum(scores < test_f + val_f)), n_test + need_val)
        if end_val > n - 1:  # a tiny class whose images all hashed into test or validation: keep one to train on
            end_val = n - 1
            n_test = min(n_test, end_val - need_val)
        parts[2].extend(order[:n_test])
        parts[1].extend(order[n_test:end_val])
        parts[0].extend(order[end_val:])
    return tuple(np.sort(np.asarray(p, dtype=np.int64)) for p in parts)  # type: ignore[return-value]


def load_dataset(
    source: str | Path,
    size: int,
    *,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    min_per_class: int = MIN_PER_CLASS,
) -> Splits:
    """Load and split a dataset folder or CSV at the model's input size.

    Args:
        source: a class-per-folder directory, a directory of split folders, or a `path,label` CSV.
        size: the model's (square) input size in pixels.
        val_fraction, test_fraction: shares carved out (stratified) when the layout does not give them.
        seed: the split's random seed.
        min_per_class: fewer usable images in any class is an error naming it.

    Raises:
        EdgeError: empty or missing dataset, one class, a class with too few images, a bad CSV.
    """
    src = Path(source)
    layout = detect_split_layout(src)
    if layout is None:
        found = scan_csv(src) if src.suffix.lower() == ".csv" and src.is_file() else scan_folder(src)
        data, skipped = load_files(found, size)
        check_classes(data, str(src), min_per_class)
        tr, va, te = split_indices(data.labels, (val_fraction, test_fraction), seed, data.digests)
        return Splits(data.subset(tr), data.subset(va), data.subset(te), skipped)
    train_found = scan_folder(layout["train"])
    classes = tuple(sorted(train_found))
    train, skipped = load_files(train_found, size, classes)
    check_classes(train, str(layout["train"]), min_per_class)
    given: dict[str, ImageSet] = {}
    for part in ("val", "test"):
        if part in layout:
            given[part], more = load_files(scan_folder(layout[part]), size, classes)
            skipped += more
    carve = (0.0 if "val" in given else val_fraction, 0.0 if "test" in given else test_fraction)
    tr, va, te = split_indices(train.labels, carve, seed, train.digests)
    return Splits(
        train.subset(tr),
        given["val"] if "val" in given else train.subset(va),
        given["test"] if "test" in given else train.subset(te),
        skipped,
    )


def load_eval_set(
    source: str | Path,
    size: int,
    classes: tuple[str, ...],
    split: str,
    seed: int,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
) -> ImageSet:
    """The images to evaluate a model on: the test split (as training made it) or `all` of them."""
    src = Path(source)
    layout = detect_split_layout(src)
    if split == "all":
        found = scan_csv(src) if src.suffix.lower() == ".csv" and src.is_file() else None
        if found is None:
            folders = list(layout.values()) if layout else [src]
            found = {}
            for folder in folders:
                for name, files in scan_folder(folder).items():
                    found.setdefault(name, []).extend(files)
        return load_files(found, size, classes)[0]
    if layout and "test" in layout:  # the given test folder: no need to decode the training images
        return load_files(scan_folder(layout["test"]), size, classes)[0]
    splits = load_dataset(src, size, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed, min_per_class=1)
    if splits.classes != classes:
        raise EdgeError(f"{src}: classes {list(splits.classes)} differ from the model's labels {list(classes)}")
    return splits.test
