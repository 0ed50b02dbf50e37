"""The review inbox on disk: the frames devices kept, listed by predicted label, and moved into a dataset.

An inbox is what `edge-deploy collect` writes (and what a device keeps): `INBOX/<predicted label>/<stem>.jpg`
with a `<stem>.json` sidecar (label, score, top_k, model, device, region, reason, captured_at, ...). A review
moves each image together with its sidecar into `DATA/<class>/` (when DATA has train/ val/ test/ folders, into
`DATA/<split>/<class>/`, the split chosen by the image's content in the proportions DATA holds, so the new scenes
are among the held-out images a retrained model is compared on), or into
`INBOX/.discarded/<predicted label>/`, never deleting anything. `assign` and `discard` are what the review page's
API calls (`trainer.review.server`); tests call them directly to relabel exactly as the page does.

A file moves by rename within one file system; across file systems it is copied under a temporary name,
flushed, renamed into place, and only then removed from the inbox. The sidecar moves first and the image last
(as the device writes them), and nothing already in DATA is overwritten: a taken name gets `-2`, `-3`, ...
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.errors import EdgeError
from edge.files import fsync_dir
from trainer.data.dataset import SPLIT_NAMES, count_images, detect_split_layout, split_score
from trainer.review.similar import near_groups

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
SIDECAR_SUFFIX = ".json"
DISCARDED = ".discarded"
MAX_SIDECAR_BYTES = 64 * 1024
CLASS_NAME = re.compile(r"^\w[\w .+-]{0,99}$")
SIDECAR_FIELDS = ("label", "index", "score", "top_k", "model", "device", "region", "reason", "captured_at", "frame",
                  "collected_from", "collected_at")  # fmt: skip
_lock = threading.Lock()  # one move at a time: a free name is chosen and taken under it


@dataclass
class Moves:
    """What a request did: `moved` (inbox id, where the image went) and `failed` (inbox id, why)."""

    moved: list[tuple[str, Path]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


def class_root(dataset: Path) -> Path:
    """Where the class folders are listed from: DATA, or DATA/train when DATA has split folders."""
    layout = detect_split_layout(dataset)
    return layout["train"] if layout else dataset


def destination(dataset: Path) -> str:
    """Where assigned images go, for people: `DATA` or `DATA/{train,test}/<class> (shared by content)`."""
    layout = detect_split_layout(dataset)
    if not layout:
        return str(dataset)
    names = "{" + ",".join(n for n in ("train", "val", "test") if n in layout) + "}"
    return f"{dataset}/{names}/<class> (shared by content)"


def dataset_classes(dataset: Path) -> list[str]:
    """The class folders a review can assign to (existing ones, sorted)."""
    root = class_root(dataset)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def check_class_name(name: object) -> str:
    """A class name that is safe as one folder name: letters, digits, `_ .+-`, at most 100, not a split name.

    Raises:
        EdgeError: naming what is wrong with it.
    """
    text = name.strip() if isinstance(name, str) else ""
    if not CLASS_NAME.match(text):
        raise EdgeError(f"class {str(name)[:60]!r}: use 1-100 letters, digits, spaces or _ . + - (starting with a "
                        "letter or digit)")  # fmt: skip
    if text.lower() in SPLIT_NAMES:
        raise EdgeError(f"class {text!r}: train, val, validation and test name split folders; choose another name")
    return text


def _sidecar(image: Path) -> dict[str, Any] | None:
    path = image.with_suffix(SIDECAR_SUFFIX)
    try:
        if path.stat().st_size > MAX_SIDECAR_BYTES:
            return None
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return {k: doc[k] for k in SIDECAR_FIELDS if k in doc} if isinstance(doc, dict) else None


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                  and p.suffix.lower() in IMAGE_SUFFIXES)  # fmt: skip


def list_inbox(inbox: Path) -> list[dict[str, Any]]:
    """The inbox's images by folder (the predicted label): [{"name", "items": [{"id", "sidecar", "same"}]}].

    `id` is `<folder>/<file>`, what `assign` and `discard` take; `sidecar` the frame's sidecar (its known fields)
    or None; `same` the ids of the folder's near-duplicates of it (`trainer.review.similar`), assigned with it.
    """
    groups = []
    folders = (p for p in inbox.iterdir() if p.is_dir() and not p.is_symlink() and not p.name.startswith("."))
    for folder in sorted(folders):
        name = folder.name
        items = [{"id": f"{name}/{g[0].name}", "sidecar": _sidecar(g[0]), "same": [f"{name}/{p.name}" for p in g[1:]]}
                 for g in near_groups(_images(folder))]  # fmt: skip
        if items:
            groups.append({"name": folder.name, "items": items})
    return groups


def resolve_item(inbox: Path, file_id: object) -> Path:
    """The inbox image a request names (`<folder>/<file>`, or a path inside the inbox).

    Raises:
        EdgeError: anything but an image file directly in a visible folder of the inbox (`..`, absolute paths
            elsewhere, hidden folders such as `.discarded`, symbolic links leading out, other file types).
    """
    if not isinstance(file_id, str) or not file_id or "\0" in file_id or "\\" in file_id:
        raise EdgeError(f"file {str(file_id)[:80]!r}: not an inbox image name")
    root = inbox.resolve()
    path = Path(file_id)
    if path.is_absolute():
        try:
            path = path.relative_to(root)
        except ValueError:
            raise EdgeError(f"file {file_id[:80]!r}: not in the inbox {inbox}") from None
    parts = path.parts
    if len(parts) != 2 or any(p.startswith(".") for p in parts) or path.suffix.lower() not in IMAGE_SUFFIXES:
        raise EdgeError(f"file {file_id[:80]!r}: not an inbox image (<label folder>/<image file>)")
    real = (root / path).resolve()
    if real.parent.parent != root or real.parent.name != parts[0]:
        raise EdgeError(f"file {file_id[:80]!r}: leads out of the inbox")
    return root / path


def _free_stem(folder: Path, stem: str, suffix: str) -> str:
    """`stem`, or `stem-2`, `stem-3`, ... so that neither the image nor its sidecar name is taken in `folder`."""
    n, name = 1, stem
    while (folder / f"{name}{suffix}").exists() or (folder / f"{name}{SIDECAR_SUFFIX}").exists():
        n += 1
        name = f"{stem}-{n}"
    return name


def move_file(src: Path, dst: Path) -> None:
    """Move one file: a rename within a file system; across, copy + fsync + rename, then delete the source."""
    try:
        os.rename(src, dst)
        return
    except OSError as e:
        if e.errno != errno.EXDEV:
            raise
    tmp = dst.with_name(f".{dst.name}.partial")
    try:
        with src.open("rb") as fin, open(tmp, "wb") as fout:
            shutil.copyfileobj(fin, fout, 1 << 20)
            fout.flush()
            os.fsync(fout.fileno())
        shutil.copymode(src, tmp)
        os.rename(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(dst.parent)
    src.unlink()
    fsync_dir(src.parent)


def _move_pair(image: Path, folder: Path) -> Path:
    """Move an image and its sidecar (when it has one) into `folder` under a free name; returns the new image."""
    with _lock:
        folder.mkdir(parents=True, exist_ok=True)
        stem = _free_stem(folder, image.stem, image.suffix)
        sidecar, new_image = image.with_suffix(SIDECAR_SUFFIX), folder / f"{stem}{image.suffix}"
        moved_sidecar = None
        if sidecar.is_file():
            moved_sidecar = folder / f"{stem}{SIDECAR_SUFFIX}"
            move_file(sidecar, moved_sidecar)
        try:
            move_file(image, new_image)
        except OSError:
            if moved_sidecar is not None:  # put the pair back together where it was
                move_file(moved_sidecar, sidecar)
            raise
    return new_image


def _move_all(inbox: Path, files: list[Any], folder_of: Any) -> Moves:
    if not isinstance(files, list) or not files:
        raise EdgeError("files: give a non-empty list of inbox images (<label folder>/<image file>)")
    images = [(f, resolve_item(inbox, f)) for f in files]  # every name checked before anything moves
    done = Moves()
    for file_id, image in images:
        if not image.is_file():
            done.failed.append((file_id, "not in the inbox any more (moved already?)"))
            continue
        try:
            done.moved.append((file_id, _move_pair(image, folder_of(image))))
        except OSError as e:
            done.failed.append((file_id, f"cannot move it: {e.strerror or e}"))
    return done


def split_shares(dataset: Path) -> list[tuple[float, Path]]:
    """[(cumulative share, split folder)], held-out splits first, in the proportions of the images already there
    (the images the trainer reads from DATA/test, val, train); [] without split folders or images yet."""
    layout = detect_split_layout(dataset)
    if not layout:
        return []
    counts = {name: count_images(folder) for name, folder in layout.items()}
    total, shares, acc = sum(counts.values()), [], 0
    for name in ("test", "val", "train"):
        if name in layout and total:
            acc += counts[name]
            shares.append((acc / total, layout[name]))
    return shares


def split_folder(image: Path, shares: list[tuple[float, Path]], default: Path) -> Path:
    """The split an image goes to: by its content (`split_score` of its SHA-1, the trainer's own rule), so the
    same image always lands in the same split."""
    score = split_score(hashlib.sha1(image.read_bytes()).hexdigest(), 0)
    return next((folder for share, folder in shares if score < share), default)


def similar_class(name: str, classes: list[str]) -> str | None:
    """An existing class `name` is a likely typo of: the same but for case, or one edit away (None: no such)."""
    if name in classes:
        return None
    return next((c for c in classes if _one_edit(name.casefold(), c.casefold())), None)


def _one_edit(a: str, b: str) -> bool:
    """Equal, or one character replaced, inserted or deleted."""
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b, strict=True)) <= 1
    short, long = sorted((a, b), key=len)
    return len(long) - len(short) == 1 and any(long[:i] + long[i + 1 :] == short for i in range(len(long)))


class SimilarClass(EdgeError):
    """A new class name that looks like an existing one: asked before it is created."""

    def __init__(self, name: str, similar: str) -> None:
        super().__init__(f"there is no class {name!r}, but there is {similar!r}: assign to {similar!r}, or confirm "
                         f"to create the new class {name!r}")  # fmt: skip
        self.similar = similar


def assign(inbox: str | Path, dataset: str | Path, files: list[Any], class_name: object, *,
           new: bool = False) -> Moves:  # fmt: skip
    """Move inbox images (and their sidecars) into the dataset's class folder `class_name` (created if new).

    Args:
        inbox: the inbox folder.
        dataset: the dataset folder: class folders, or train/ val/ test/, which then share the images by content
            in the proportions they hold already (`split_folder`), so the held-out images include the new scenes
            and a retrained model is compared with the previous one on them too.
        files: inbox images as `<label folder>/<file>` (the page's ids), or paths inside the inbox.
        class_name: an existing class or a new one (`check_class_name`).
        new: create a new class even when its name looks like an existing one.

    Raises:
        SimilarClass: a new name that differs from an existing class by case or one edit, without `new`.
        EdgeError: a bad class name or file name; nothing is moved then.
    """
    inbox, dataset = Path(inbox), Path(dataset)
    check_folders(inbox, dataset)
    if not new and isinstance(class_name, str) and (like := similar_class(class_name, dataset_classes(dataset))):
        raise SimilarClass(class_name, like)
    name = str(class_name if class_name in dataset_classes(dataset) else check_class_name(class_name))
    root, shares = class_root(dataset), split_shares(dataset)
    return _move_all(inbox, files, lambda image: split_folder(image, shares, root) / name)


def check_folders(inbox: Path, dataset: Path) -> None:
    """The inbox is a folder, the dataset a folder (or not there yet), neither inside the other.

    Raises:
        EdgeError: naming the folder and the fix.
    """
    if not inbox.is_dir():
        raise EdgeError(f"{inbox}: no such inbox folder; give the folder edge-deploy collect --out wrote")
    if dataset.exists() and not dataset.is_dir():
        raise EdgeError(f"--dataset {dataset}: not a folder; give the dataset folder with one subfolder per class")
    a, b = inbox.resolve(), dataset.resolve()
    if a == b or a.is_relative_to(b) or b.is_relative_to(a):
        raise EdgeError(f"--dataset {dataset} and the inbox {inbox} overlap; keep the dataset outside the inbox")


def discard(inbox: str | Path, files: list[Any]) -> Moves:
    """Move inbox images (and their sidecars) to `INBOX/.discarded/<label folder>/`: out of the review, kept."""
    inbox = Path(inbox)
    return _move_all(inbox, files, lambda image: inbox.resolve() / DISCARDED / image.parent.name)
