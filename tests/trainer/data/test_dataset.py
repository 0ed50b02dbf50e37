"""Dataset loading, validation and splitting: real image files written with OpenCV, no TensorFlow."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.errors import EdgeError
from trainer.data import dataset


def _write(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)
    return path


def _folder(root: Path, counts: dict[str, int], shape: tuple[int, ...] = (20, 30, 3)) -> Path:
    rng = np.random.default_rng(0)
    for name, n in counts.items():
        for i in range(n):
            _write(root / name / f"{i}.png", rng.integers(0, 256, shape, dtype=np.uint8))
    return root


def test_empty_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(EdgeError, match="no class subfolders"):
        dataset.load_dataset(tmp_path, 32)


def test_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(EdgeError, match="not found"):
        dataset.load_dataset(tmp_path / "nope", 32)


def test_one_class_is_an_error(tmp_path: Path) -> None:
    _folder(tmp_path, {"cats": 12})
    with pytest.raises(EdgeError, match=r"found 1 class \(cats\).*at least 2"):
        dataset.load_dataset(tmp_path, 32)


def test_too_few_images_names_the_class(tmp_path: Path) -> None:
    _folder(tmp_path, {"cats": 12, "dogs": 3})
    with pytest.raises(EdgeError, match="class 'dogs' has 3 usable image"):
        dataset.load_dataset(tmp_path, 32)


def test_empty_class_folder_names_the_class(tmp_path: Path) -> None:
    _folder(tmp_path, {"cats": 12, "dogs": 12})
    (tmp_path / "birds").mkdir()
    with pytest.raises(EdgeError, match="class 'birds' has 0 usable"):
        dataset.load_dataset(tmp_path, 32)


def test_corrupt_files_are_reported_and_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _folder(tmp_path, {"cats": 12, "dogs": 12})
    good = (tmp_path / "cats" / "0.png").read_bytes()
    (tmp_path / "cats" / "truncated.png").write_bytes(good[:20])
    (tmp_path / "dogs" / "notes.txt").write_text("not an image")
    (tmp_path / "dogs" / "empty.jpg").write_bytes(b"")
    (tmp_path / "dogs" / ".hidden.png").write_bytes(b"junk")  # hidden files are not dataset files
    splits = dataset.load_dataset(tmp_path, 32, seed=1)
    skipped = {p.name: reason for p, reason in splits.skipped}
    assert set(skipped) == {"truncated.png", "notes.txt", "empty.jpg"}
    assert all("not an image" in r for r in skipped.values())
    assert len(splits.train) + len(splits.val) + len(splits.test) == 24
    assert "skipped" in caplog.text and "notes.txt" in caplog.text


@pytest.mark.parametrize(
    "image",
    [
        np.full((40, 25), 200, np.uint8),  # grayscale
        np.dstack([np.full((16, 64, 3), 90, np.uint8), np.full((16, 64), 255, np.uint8)]),  # BGRA
        np.full((300, 200, 3), (10, 20, 250), np.uint8),  # large BGR (red)
        (np.full((20, 20, 3), 40000, np.uint16)),  # 16-bit PNG
    ],
    ids=["gray", "rgba", "large-bgr", "16-bit"],
)
def test_any_format_and_size_becomes_rgb_at_model_size(tmp_path: Path, image: np.ndarray) -> None:
    path = _write(tmp_path / "x.png", image)
    out = dataset.decode(path, 48)
    assert out.shape == (48, 48, 3) and out.dtype == np.uint8
    if image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8:
        assert tuple(out[0, 0]) == (250, 20, 10)  # BGR file -> RGB pixels
    if image.ndim == 2:
        assert (out == 200).all()


def test_mixed_sizes_and_channels_load_together(tmp_path: Path) -> None:
    _folder(tmp_path, {"a": 6}, (20, 30, 3))
    _folder(tmp_path / "extra", {"a": 6}, (64, 48))
    for p in (tmp_path / "extra" / "a").iterdir():
        p.rename(tmp_path / "a" / f"gray_{p.name}")
    (tmp_path / "extra" / "a").rmdir()
    (tmp_path / "extra").rmdir()
    _folder(tmp_path, {"b": 12}, (100, 50, 4))
    splits = dataset.load_dataset(tmp_path, 32, val_fraction=0.25, test_fraction=0.25)
    for part in (splits.train, splits.val, splits.test):
        assert part.images.shape[1:] == (32, 32, 3)
    assert splits.classes == ("a", "b")


def test_csv_dataset(tmp_path: Path) -> None:
    _folder(tmp_path / "imgs", {"x": 10, "y": 10})
    rows = ["path,label"] + [f"imgs/{c}/{i}.png,{c.upper()}" for c in "xy" for i in range(10)]
    (tmp_path / "data.csv").write_text("\n".join(rows) + "\n")
    splits = dataset.load_dataset(tmp_path / "data.csv", 32)
    assert splits.classes == ("X", "Y")
    assert len(splits.train) + len(splits.val) + len(splits.test) == 20


def test_csv_bad_row_names_the_row(tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text("a.png,cat\nb.png\n")
    with pytest.raises(EdgeError, match="row 2"):
        dataset.load_dataset(tmp_path / "data.csv", 32)


def test_explicit_split_folders(tmp_path: Path) -> None:
    _folder(tmp_path / "train", {"a": 10, "b": 10})
    _folder(tmp_path / "test", {"a": 3, "b": 2})
    splits = dataset.load_dataset(tmp_path, 32, val_fraction=0.2, seed=0)
    assert len(splits.test) == 5 and sorted(splits.test.labels.tolist()) == [0, 0, 0, 1, 1]
    assert len(splits.val) + len(splits.train) == 20 and set(splits.val.labels.tolist()) == {0, 1}
    assert all("test" in p.parts for p in splits.test.paths)


def test_unknown_class_in_test_folder(tmp_path: Path) -> None:
    _folder(tmp_path / "train", {"a": 10, "b": 10})
    _folder(tmp_path / "test", {"c": 2})
    with pytest.raises(EdgeError, match="class 'c' is not among"):
        dataset.load_dataset(tmp_path, 32)


@pytest.mark.parametrize(
    ("counts", "fractions"),
    [
        ({0: 10, 1: 10}, (0.1, 0.1)),
        ({0: 100, 1: 20}, (0.1, 0.2)),
        ({0: 3, 1: 3}, (0.1, 0.1)),  # every class keeps one image in each part
        ({0: 10, 1: 10}, (0.0, 0.5)),
        ({0: 2, 1: 2}, (0.0, 0.9)),  # one to train on even when both hash into test
    ],
)
def test_split_is_stratified(counts: dict[int, int], fractions: tuple[float, float]) -> None:
    labels = np.concatenate([np.full(n, c) for c, n in counts.items()])
    parts = dataset.split_indices(labels, fractions, seed=0)
    assert sorted(np.concatenate(parts).tolist()) == list(range(len(labels)))  # a partition
    for part, share in zip(parts, (1 - sum(fractions), *fractions), strict=True):
        if share == 0:
            assert len(part) == 0
            continue
        assert set(labels[part].tolist()) == set(counts)  # every class present


def test_split_shares_on_a_large_class() -> None:
    labels = np.zeros(4000, np.int64)
    _, val, test = dataset.split_indices(labels, (0.1, 0.2), seed=0, keys=[f"k{i}" for i in range(4000)])
    assert abs(len(val) / 4000 - 0.1) < 0.02 and abs(len(test) / 4000 - 0.2) < 0.02


def test_split_is_seeded() -> None:
    labels = np.repeat(np.arange(3), 30)
    a = dataset.split_indices(labels, (0.2, 0.2), seed=5)
    b = dataset.split_indices(labels, (0.2, 0.2), seed=5)
    c = dataset.split_indices(labels, (0.2, 0.2), seed=6)
    assert all((x == y).all() for x, y in zip(a, b, strict=True))
    assert any(x.tolist() != y.tolist() for x, y in zip(a, c, strict=True))


def test_an_image_keeps_its_part_as_the_dataset_grows() -> None:
    """What `--from` relies on: no image the earlier run trained on becomes a held-out image later."""
    rng = np.random.default_rng(1)
    keys = [f"{i:x}" for i in rng.integers(0, 2**60, 600)]
    labels = rng.integers(0, 3, 600)

    def parts(n: int) -> list[dict[str, int]]:
        split = dataset.split_indices(labels[:n], (0.1, 0.1), seed=2, keys=keys[:n])
        return {keys[i]: k for k, part in enumerate(split) for i in part}

    before, after = parts(60), parts(600)
    moved = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    assert all(new != 2 for _, new in moved.values()), moved  # nothing joined the test part
    assert len(moved) <= 3  # only a small class's stand-in test image, once a class has its own


def test_identical_files_fall_in_the_same_part(tmp_path: Path) -> None:
    _folder(tmp_path, {"a": 30, "b": 30})
    for i in range(30):  # every image of b also in a, byte for byte
        (tmp_path / "a" / f"copy_{i}.png").write_bytes((tmp_path / "b" / f"{i}.png").read_bytes())
    splits = dataset.load_dataset(tmp_path, 16, seed=0)
    part = {d: k for k, s in enumerate((splits.train, splits.val, splits.test)) for d in s.digests}
    for k, s in enumerate((splits.train, splits.val, splits.test)):
        assert all(part[d] == k for d in s.digests)
    assert len(part) == 30 + 30  # the copies share a digest


@pytest.mark.parametrize("fractions", [(0.5, 0.5), (-0.1, 0.1), (0.9, 0.2)])
def test_bad_fractions(fractions: tuple[float, float]) -> None:
    with pytest.raises(EdgeError, match="fractions"):
        dataset.split_indices(np.repeat(np.arange(2), 10), fractions, seed=0)


def test_class_too_small_to_split() -> None:
    with pytest.raises(EdgeError, match="too few to split"):
        dataset.split_indices(np.array([0, 0, 1, 1, 1, 1, 1]), (0.2, 0.2), seed=0)


def test_eval_set_is_the_training_runs_test_split(tmp_path: Path) -> None:
    _folder(tmp_path, {"a": 20, "b": 20})
    splits = dataset.load_dataset(tmp_path, 32, seed=4)
    again = dataset.load_eval_set(tmp_path, 32, ("a", "b"), "test", seed=4)
    assert again.paths == splits.test.paths
    assert len(dataset.load_eval_set(tmp_path, 32, ("a", "b"), "all", seed=4)) == 40
    with pytest.raises(EdgeError, match="differ from the model's labels"):
        dataset.load_eval_set(tmp_path, 32, ("a", "b", "c"), "test", seed=4)


def test_eval_set_with_test_folder(tmp_path: Path) -> None:
    _folder(tmp_path / "train", {"a": 10, "b": 10})
    _folder(tmp_path / "test", {"a": 2, "b": 3})
    assert len(dataset.load_eval_set(tmp_path, 32, ("a", "b"), "test", seed=0)) == 5
    assert len(dataset.load_eval_set(tmp_path, 32, ("a", "b"), "all", seed=0)) == 25
    with pytest.raises(EdgeError, match="class 'b' is not among"):
        dataset.load_eval_set(tmp_path, 32, ("a", "x"), "all", seed=0)


def test_sidecars_of_collected_frames_are_not_images(tmp_path: Path) -> None:
    """Frames a device collected and a review moved into the dataset keep their JSON sidecar beside them."""
    root = _folder(tmp_path / "data", {"a": 12, "b": 12})
    for image in (root / "a").glob("*.png"):
        image.with_suffix(".json").write_text('{"label": "b", "reason": ["margin"]}')
    splits = dataset.load_dataset(root, 16, seed=0)
    assert splits.skipped == [] and len(splits.train) + len(splits.val) + len(splits.test) == 24
