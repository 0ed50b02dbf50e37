"""The controller's inbox of collected frames: verify one device's archive and unpack it, without duplicates.

`deploy/ansible/collect.yml` fetches each device's archive (made by its `edge_collect_files` module: the
`<label>/<stem>.jpg` + `<stem>.json` pairs and a manifest of their sha256) and runs, on this machine,

    python -m deploy.inbox ARCHIVE --sha256 HEX --host DEVICE --out inbox/

which checks everything before writing anything (the archive's sha256 as the device computed it, every member
against the manifest, safe names, complete pairs), then, holding a lock on the inbox (devices are unpacked in
parallel), writes each new pair as `inbox/<label>/<stem>.jpg|.json` (the trainer's layout, the device's folder
names; `<stem>-<device>` when another file already has that name), files 0600 in 0700 folders, flushed to disk.
Each sidecar gains `collected_from` (the inventory host) and `collected_at`. An image whose content (sha256) is
already in the inbox's index `inbox/.edge-collect-index` (collected before, from any device, even if since
moved out of the inbox by a review) is skipped as a duplicate. Prints `{"images", "collected", "duplicates"}`.
Exit 1 (one line on stderr) when the archive does not verify: then nothing was written.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import hashlib
import itertools
import json
import os
import re
import sys
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from edge.bounded import read_tar_member
from edge.cli.shape import OneLineParser, run_main
from edge.errors import EdgeError, Failure
from edge.files import fsync_dir, write_durably
from edge.names import name_fault

MANIFEST = "edge-collect-manifest.json"  # the archive's last member (written by edge_collect_files.py)
INDEX = ".edge-collect-index"  # one line per image ever collected: sha256, inbox path, device, time (tab-separated)
LOCK = ".edge-collect.lock"
MAX_MEMBER_BYTES = 32 << 20  # one frame, sidecar or manifest: a frame is at most a few MB; the rest is refused
_UNSAFE = re.compile(r"[^\w.-]+")


@dataclass(frozen=True)
class Unpacked:
    """What one archive added to the inbox."""

    images: int
    collected: tuple[str, ...]  # inbox-relative paths of the new images
    duplicates: int

    def summary(self) -> dict[str, int]:
        return {"images": self.images, "collected": len(self.collected), "duplicates": self.duplicates}


def sha256_of(path: Path) -> str:
    """The sha256 of a file, read in 1 MB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _safe_member(name: str) -> bool:
    """`<label>/<stem>.jpg|.json` with plain names (no dot files, no `..`, no absolute path)."""
    parts = name.split("/")
    return (
        len(parts) == 2
        and all(p and not p.startswith(".") and "\\" not in p and name_fault(p) is None for p in parts)
        and parts[1].endswith((".jpg", ".json"))
    )


def _members(archive: Path) -> Iterator[tuple[tarfile.TarInfo, bytes]]:
    try:
        with tarfile.open(archive, "r:") as tar:
            for m in tar:
                f = tar.extractfile(m) if m.isreg() else None
                if f is None:
                    raise Failure(f"{archive}: member {m.name[:80]!r} is not a regular file; not a collect archive")
                yield m, read_tar_member(tar, m, MAX_MEMBER_BYTES, f"{archive}: member {m.name[:80]!r}")
    except EdgeError as e:
        raise Failure(str(e)) from None
    except tarfile.TarError as e:
        raise Failure(f"{archive}: not a readable tar archive ({e}); transfer damaged") from None


def verify(archive: Path, sha256: str) -> dict[str, str]:
    """Check the archive completely; returns {member path: sha256} of the frames (pairs complete).

    Raises:
        Failure: the archive's sha256 differs from the device's, or a member, name or pair is not as expected.
    """
    try:
        got = sha256_of(archive)
    except OSError as e:
        raise Failure(f"{archive}: cannot read the fetched archive ({e.strerror or e})") from None
    if got != sha256.lower():
        raise Failure(f"{archive}: sha256 {got[:12]}... differs from the device's {sha256[:12]}...: transfer damaged")
    hashes: dict[str, str] = {}
    manifest = None
    for m, data in _members(archive):
        if m.name == MANIFEST:
            manifest = data
        elif not _safe_member(m.name) or m.name in hashes:
            raise Failure(f"{archive}: unexpected member {m.name[:80]!r}; the device's archive is not ours")
        else:
            hashes[m.name] = hashlib.sha256(data).hexdigest()
    try:
        listed = {e["path"]: e["sha256"] for e in json.loads(manifest or b"")["files"]}
    except (ValueError, KeyError, TypeError):
        raise Failure(f"{archive}: no readable {MANIFEST}; the device's archive is incomplete") from None
    if listed != hashes:
        wrong = sorted(set(listed.items()) ^ set(hashes.items()))[0][0]
        raise Failure(f"{archive}: {wrong} does not match the manifest's sha256; transfer damaged")
    stems = {name.rsplit(".", 1)[0] for name in hashes}
    incomplete = sorted(s for s in stems if f"{s}.jpg" not in hashes or f"{s}.json" not in hashes)
    if incomplete:
        raise Failure(f"{archive}: {incomplete[0]} lacks its .jpg or .json; the device's archive is incomplete")
    return hashes


@contextlib.contextmanager
def locked(out: Path) -> Iterator[None]:
    """Hold the inbox's lock (one unpack at a time; devices are unpacked in parallel by Ansible)."""
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(out / LOCK, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def known_images(out: Path) -> set[str]:
    """The sha256 of every image collected into this inbox before (its index)."""
    index = out / INDEX
    if not index.exists():
        return set()
    return {line.split("\t", 1)[0] for line in index.read_text(errors="replace").splitlines() if line}


def _free_stem(folder: Path, stem: str, host: str) -> str:
    """`stem`, or `stem-<host>[-N]` when a file of that name is already in the folder (another device's)."""
    base = f"{stem}-{_UNSAFE.sub('_', host)}"
    for name in itertools.chain((stem, base), (f"{base}-{n}" for n in range(2, 10_000))):
        if not (folder / f"{name}.jpg").exists() and not (folder / f"{name}.json").exists():
            return name
    raise Failure(f"{folder}: no free name for {stem}; clear the folder")


def provenance(sidecar: bytes, host: str, collected_at: str) -> bytes:
    """The device's sidecar with `collected_from` and `collected_at` added (kept as text if it is not JSON)."""
    try:
        doc = json.loads(sidecar)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        doc = {"sidecar_unreadable": sidecar.decode("utf-8", errors="replace")[:2000]}
    doc.update(collected_from=host, collected_at=collected_at)
    return (json.dumps(doc, indent=1, ensure_ascii=False) + "\n").encode()


def unpack(archive: Path, sha256: str, host: str, out: Path, collected_at: str | None = None) -> Unpacked:
    """Verify `archive` (see `verify`), then add its new images to the inbox `out` (see the module docstring).

    Raises:
        Failure: the archive does not verify (nothing written), or the inbox cannot be written (the pairs written
            so far stay, indexed, and count as duplicates next time).
    """
    fault = name_fault(host)
    if fault is not None:
        raise Failure(f"host {host[:80]!r} {fault}; give the device's inventory name")
    hashes = verify(archive, sha256)
    collected_at = collected_at or dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        return _add(archive, hashes, host, out, collected_at)
    except OSError as e:
        where = e.filename or out
        raise Failure(f"{where}: cannot write the frames from {host} ({e.strerror or e}); check the inbox") from None


def _add(archive: Path, hashes: dict[str, str], host: str, out: Path, collected_at: str) -> Unpacked:
    sidecars: dict[str, bytes] = {}
    new: list[str] = []
    duplicates = 0
    with locked(out):
        known = known_images(out)
        touched: set[Path] = set()
        with open(out / INDEX, "a", encoding="utf-8") as index:
            for m, data in _members(archive):  # the .json of each pair comes before its .jpg
                if m.name.endswith(".json") and m.name != MANIFEST:
                    sidecars[m.name[:-5]] = data
                if not m.name.endswith(".jpg"):
                    continue
                sidecar = sidecars.pop(m.name[:-4], b"")
                if hashes[m.name] in known:
                    duplicates += 1
                    continue
                label, stem = m.name[:-4].split("/")
                folder = out / label
                folder.mkdir(mode=0o700, exist_ok=True)
                name = _free_stem(folder, stem, host)
                write_durably(folder / f"{name}.json", provenance(sidecar, host, collected_at))
                write_durably(folder / f"{name}.jpg", data)
                touched.add(folder)
                known.add(hashes[m.name])
                new.append(f"{label}/{name}.jpg")
                index.write(f"{hashes[m.name]}\t{label}/{name}.jpg\t{host}\t{collected_at}\n")
                index.flush()
            os.fsync(index.fileno())
        for folder in (*touched, out):
            fsync_dir(folder)
    return Unpacked(len(hashes) // 2, tuple(new), duplicates)


def _run(args: argparse.Namespace) -> int:
    result = unpack(Path(args.archive), args.sha256, args.host, Path(args.out), args.collected_at)
    print(json.dumps(result.summary()))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m deploy.inbox` (run by the collect playbook on this machine); see the module docstring."""
    parser = OneLineParser(prog="deploy.inbox", description=__doc__.split("\n\n")[0])
    parser.add_argument("archive")
    parser.add_argument("--sha256", required=True, help="the archive's sha256 as the device computed it")
    parser.add_argument("--host", required=True, help="the device (inventory name), for the sidecars")
    parser.add_argument("--out", required=True, help="the inbox folder")
    parser.add_argument("--collected-at", help="ISO time recorded in the sidecars (default: now)")
    parser.set_defaults(func=_run, log_level="WARNING")
    return run_main(parser, argv)


if __name__ == "__main__":
    sys.exit(main())
