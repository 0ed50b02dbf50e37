"""`trainer.review.similar`: the review inbox's near-duplicates, on real pictures written as files.

The pictures are the demo clip's scenes (one Fashion-MNIST picture each) as a camera would send them again:
with fresh sensor noise and JPEG re-encoding, which must stay near; other scenes, and one scene mirrored, must
not. A file that does not decode stands alone.
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.frames.similar import NEAR, distance
from tests.support.media import read_frames
from tests.trainer.review.test_review import ASSETS, camera_frame
from trainer.review import similar
from trainer.review.similar import group_near, near_groups, picture_hash


@pytest.fixture(scope="module")
def scenes() -> list[np.ndarray]:
    """The first frame of each of the demo clip's ten scenes."""
    timeline = json.loads((ASSETS / "demo_clip.json").read_text())["segments"]
    frames = read_frames(ASSETS / "demo_clip.avi")
    return [frames[s["start_frame"]] for s in timeline]


def _write(path: Path, image: np.ndarray, quality: int = 90) -> Path:
    assert cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return path


def test_noisy_copies_are_near_and_other_pictures_far(tmp_path: Path, scenes: list[np.ndarray]) -> None:
    a = [_write(tmp_path / f"a{k}.jpg", camera_frame(scenes[0], k, quality=60 + 10 * k)) for k in range(4)]
    b = [_write(tmp_path / f"b{k}.jpg", camera_frame(scenes[1], 10 + k, quality=75)) for k in range(2)]
    mirrored = _write(tmp_path / "a-mirrored.jpg", camera_frame(scenes[0], 20, mirror=True))
    png = tmp_path / "b.png"
    assert cv2.imwrite(str(png), camera_frame(scenes[1], 30))  # not only JPEGs
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"\xff\xd8 not a picture")
    (tmp_path / "empty.jpg").write_bytes(b"")

    hashes = {p.name: picture_hash(p) for p in [*a, *b, mirrored, png, junk, tmp_path / "empty.jpg"]}
    assert hashes["junk.jpg"] is None and hashes["empty.jpg"] is None and picture_hash(tmp_path / "gone.jpg") is None
    assert all(distance(hashes[p.name], hashes[a[0].name]) <= NEAR for p in a)
    assert distance(hashes["b1.jpg"], hashes["b0.jpg"]) <= NEAR and distance(hashes["b.png"], hashes["b0.jpg"]) <= NEAR
    assert distance(hashes["a-mirrored.jpg"], hashes["a0.jpg"]) > NEAR < distance(hashes["b0.jpg"], hashes["a0.jpg"])
    others = [picture_hash(_write(tmp_path / f"s{i}.jpg", s)) for i, s in enumerate(scenes)]
    assert min(distance(x, y) for i, x in enumerate(others) for y in others[i + 1 :]) > NEAR

    order = [a[0], b[0], junk, a[1], mirrored, tmp_path / "empty.jpg", b[1], a[2], png, a[3]]
    assert near_groups(order) == [[a[0], a[1], a[2], a[3]], [b[0], b[1], png], [junk], [mirrored],
                                  [tmp_path / "empty.jpg"]]  # fmt: skip


def test_groups_start_from_their_first_hash_in_order() -> None:
    """Greedy: an item joins the first group whose first hash is near; a slow drift does not chain."""
    h = 0xF0F0_F0F0_F0F0_F0F0
    flip = [h ^ ((1 << k) - 1) for k in range(0, 13, 3)]  # 0, 3, 6, 9, 12 bits from h (each 3 from the previous)
    items = ["a", "b", "c", "d", "e", "x", "y"]
    assert group_near(items, [*flip, None, flip[0]]) == [["a", "b", "c", "y"], ["d", "e"], ["x"]]
    assert group_near(items, [*flip, None, flip[0]], limit=-1) == [[i] for i in items]
    assert group_near([], []) == []
    with pytest.raises(ValueError, match="2 items but 1 hashes"):
        group_near(["a", "b"], [h])


def test_five_thousand_pictures_group_quickly() -> None:
    """All different (the slowest case: every item is compared with every group so far), then 500 scenes of ten."""
    rng = random.Random(27)
    distinct = [rng.getrandbits(64) for _ in range(5000)]
    start = time.perf_counter()
    assert len(group_near(list(range(5000)), distinct)) == 5000
    repeated = [distinct[i // 10] ^ (1 << rng.randrange(64)) for i in range(5000)]
    assert [len(g) for g in group_near(list(range(5000)), repeated)] == [10] * 500
    assert time.perf_counter() - start < 5  # about 0.3 s on a laptop's core; the bound leaves room for a slow CI


def test_hashes_are_cached_by_path_size_and_mtime(tmp_path: Path, scenes: list[np.ndarray],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """A listing again does not decode again: the same (path, size, mtime) answers from the cache, a changed
    file is decoded anew, and the cache keeps at most CACHE_SIZE entries, dropping the oldest."""
    monkeypatch.setattr(similar, "_cache", {})
    monkeypatch.setattr(similar, "CACHE_SIZE", 3)
    path = _write(tmp_path / "a.jpg", scenes[0])
    first = picture_hash(path)
    stat = path.stat()
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # the same size, other content; with the old mtime put back, it is taken as unchanged
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    monkeypatch.setattr(similar, "_hash_file", lambda p: pytest.fail(f"{p} decoded again"))
    assert picture_hash(path) == first
    monkeypatch.undo()
    monkeypatch.setattr(similar, "_cache", {})
    monkeypatch.setattr(similar, "CACHE_SIZE", 3)
    files = [_write(tmp_path / f"{i}.jpg", s) for i, s in enumerate(scenes[:5])]
    for f in files:
        picture_hash(f)
    assert [k[0] for k in similar._cache] == [str(f) for f in files[2:]]
    _write(files[4], scenes[6])  # rewritten: another size or mtime, decoded anew
    assert picture_hash(files[4]) == picture_hash(_write(tmp_path / "copy.jpg", scenes[6]))
