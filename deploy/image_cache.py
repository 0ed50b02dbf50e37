"""The image builder's cache: each layer in `<cache>/<name>-<key>/`, keyed by a hash of everything it is made of.

A layer is built into `<name>-<key>.partial/` and renamed when complete, so an interrupted build is never used;
building a new key of a name removes that name's older keys (one of each kind is kept). The cache is
`--cache DIR`, else `$EDGE_IMAGE_CACHE`, else `~/.cache/edge-daemon/image` (the device lab passes its own).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)


def cache_root(given: str | None = None) -> Path:
    root = Path(given or os.environ.get("EDGE_IMAGE_CACHE") or Path.home() / ".cache" / "edge-daemon" / "image")
    root.mkdir(parents=True, exist_ok=True)
    return root


def key(*parts: object) -> str:
    """A short hash of the parts' reprs (bytes hash as themselves)."""
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else repr(p).encode())
        h.update(b"\0")
    return h.hexdigest()[:12]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def unmount_under(path: Path) -> None:
    """Lazily unmount whatever an interrupted build left mounted under `path` (before anything removes it)."""
    prefix = str(path.resolve()) + "/"
    with open("/proc/self/mounts") as f:
        points = [line.split()[1] for line in f]
    for point in sorted((p for p in points if p.startswith(prefix)), reverse=True):
        subprocess.run(["umount", "-l", point], check=False)


def remove(path: Path) -> None:
    unmount_under(path)
    shutil.rmtree(path, ignore_errors=True)


def layer(cache: Path, name: str, k: str, build: Callable[[Path], None]) -> Path:
    """`cache/<name>-<k>/`, built by `build(directory)` unless it is there already."""
    dest = cache / f"{name}-{k}"
    if dest.is_dir():
        log.info("%s: from the cache (%s)", name, dest.name)
        return dest
    partial = cache / f"{name}-{k}.partial"
    remove(partial)
    partial.mkdir(parents=True)
    t0 = time.monotonic()
    log.info("%s: building (cache key %s)", name, k)
    try:
        build(partial)
    except BaseException:
        remove(partial)
        raise
    partial.rename(dest)
    log.info("%s: built in %.0f s", name, time.monotonic() - t0)
    for old in cache.glob(f"{name}-*"):
        if old != dest and old.is_dir() and not old.name.endswith(".partial"):
            shutil.rmtree(old, ignore_errors=True)
    return dest
