"""Reads bounded by us, not by the sender: a zip member, a tar member, a file.

Each reader refuses by the declared size before reading, then counts what it actually reads and stops one
byte past the bound (declared sizes lie: a zip's header, a sparse tar member's size, a device file). Over the
bound is an `EdgeError` naming the thing read (`what`), the bound and the fix. The bounds themselves are
named beside their readers (`edge.inference.labels`, `deploy.inbox`, `trainer.nets.torch_checkpoint`) and
listed in `docs/limits.md`.
"""

from __future__ import annotations

import tarfile
import zipfile
from pathlib import Path
from typing import BinaryIO

from edge.errors import EdgeError

_CHUNK = 1 << 20


def size_text(n: int) -> str:
    """`16 MB`, `512 KB`, `100 bytes`: a bound as a user reads it (binary units)."""
    if n >= 1 << 20 and n % (1 << 20) == 0:
        return f"{n >> 20} MB"
    if n >= 1 << 10 and n % (1 << 10) == 0:
        return f"{n >> 10} KB"
    return f"{n} bytes"


def _too_big(what: str, limit: int) -> EdgeError:
    return EdgeError(f"{what}: over {size_text(limit)}, the most read from it; give a smaller or the right file")


def read_stream(f: BinaryIO, limit: int, what: str, declared: int | None = None) -> bytes:
    """At most `limit` bytes from `f`, refusing first by `declared` (when given), then by what was read."""
    if declared is not None and declared > limit:
        raise _too_big(what, limit)
    parts: list[bytes] = []
    got = 0
    while got <= limit:
        block = f.read(min(_CHUNK, limit + 1 - got))
        if not block:
            break
        parts.append(block)
        got += len(block)
    if got > limit:
        raise _too_big(what, limit)
    return b"".join(parts)


def read_zip_member(z: zipfile.ZipFile, name: str, limit: int, what: str) -> bytes:
    """Member `name` of `z`, refused when its declared (uncompressed) size or its inflated bytes pass `limit`."""
    info = z.getinfo(name)
    with z.open(info) as f:
        return read_stream(f, limit, what, info.file_size)


def read_tar_member(tar: tarfile.TarFile, member: tarfile.TarInfo, limit: int, what: str) -> bytes:
    """A regular member of `tar`, refused by its declared size (a sparse member's apparent size) or its bytes."""
    if member.size > limit:
        raise _too_big(what, limit)
    f = tar.extractfile(member)
    if f is None:
        raise EdgeError(f"{what}: not a regular file")
    with f:
        return read_stream(f, limit, what)


def read_file(path: str | Path, limit: int, what: str | None = None) -> bytes:
    """A regular file's bytes, at most `limit` (a device or FIFO is refused; a growing file stops at the bound).

    Raises:
        EdgeError: not a regular file, or over the bound. OSError is left to the caller, who names the fix.
    """
    p = Path(path)
    label = what or str(p)
    if p.exists() and not p.is_file():
        raise EdgeError(f"{label}: not a regular file")
    with p.open("rb") as f:
        return read_stream(f, limit, label, p.stat().st_size)
