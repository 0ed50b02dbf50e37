"""Near-duplicate frames of the review inbox: one card for a still scene a device kept many times (issue 27).

A camera watching a scene that does not change sends the same uncertain frame again and again; reviewing each is
the same click many times. Each inbox picture gets the difference hash of `edge.frames.similar` (pure, in
`edge` so that a device can apply the same rule), and pictures of one label folder whose hashes are within
`NEAR` bits of a group's first picture are shown and assigned as that one group.

The hash is computed from a picture decoded at 1/8 of its size in gray (libjpeg's DCT scaling: the 9x8 hash
needs no more), and remembered by (path, size, mtime) so that listing a big inbox again, after every move, does
not decode it all again.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np

from edge.frames.decode import decode_jpeg
from edge.frames.similar import NEAR, dhash

T = TypeVar("T")
CACHE_SIZE = 100_000  # hashes remembered (a few hundred bytes each: tens of MB at most); the oldest dropped beyond
_cache: dict[tuple[str, int, int], int | None] = {}
_cache_lock = threading.Lock()  # the server lists the inbox on several threads at once


def picture_hash(path: Path) -> int | None:
    """The 64-bit dHash of an image file; None when it cannot be read or does not decode (it then stands alone)."""
    try:
        stat = path.stat()
    except OSError:
        return None
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with _cache_lock:
        if key in _cache:
            return _cache[key]
    value = _hash_file(path)
    with _cache_lock:
        _cache[key] = value
        while len(_cache) > CACHE_SIZE:
            del _cache[next(iter(_cache))]  # dicts keep insertion order: this is the oldest
    return value


def _hash_file(path: Path) -> int | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if not data:
        return None
    small = decode_jpeg(data, 8, gray=True)  # any format OpenCV reads; a JPEG is DCT-scaled, the rest resized
    if small is not None and (small.shape[0] < 8 or small.shape[1] < 9):
        small = decode_jpeg(data, 1, gray=True)  # a tiny picture: every pixel, so the 9x8 hash is not upscaled
    if small is None or small.size == 0:
        return None
    return dhash(small)


def _popcount(values: np.ndarray) -> np.ndarray:
    """The number of set bits of each uint64 (NumPy 2's `bitwise_count`, 70 times faster, when there is one)."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(values)
    return np.unpackbits(values.view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1, dtype=np.int64)


def group_near(items: Sequence[T], hashes: Sequence[int | None], limit: int = NEAR) -> list[list[T]]:
    """Items grouped greedily by their hashes, in order: each joins the first group whose FIRST item's hash is
    within `limit` bits of its own, or starts a group. An item without a hash (None) is a group of its own.

    Groups come in the order of their first items, and each group's items in their order: the listing stays
    stable as the inbox changes. Comparing with the first item only (not any member) keeps a slow drift of the
    scene from chaining into one group. Vectorised: one XOR and popcount over all groups so far per item, so
    5,000 pictures group in well under a second.
    """
    if len(items) != len(hashes):
        raise ValueError(f"{len(items)} items but {len(hashes)} hashes")
    groups: list[list[T]] = []
    firsts = np.zeros(len(items), np.uint64)  # the first hash of each hashed group, in the order they started
    owner = np.zeros(len(items), np.int64)  # the index in `groups` of each of them
    count = 0
    for item, h in zip(items, hashes, strict=True):
        if h is None:
            groups.append([item])
            continue
        value = np.uint64(h)
        if count:
            close = np.flatnonzero(_popcount(firsts[:count] ^ value) <= limit)
            if close.size:
                groups[owner[close[0]]].append(item)
                continue
        firsts[count], owner[count] = value, len(groups)
        count += 1
        groups.append([item])
    return groups


def near_groups(images: Sequence[Path]) -> list[list[Path]]:
    """Image files grouped as near-duplicates (`group_near` of their `picture_hash`), in their order."""
    return group_near(images, [picture_hash(p) for p in images])
