"""Class labels: read from the model itself (a zip member, as TFLite metadata carries them) or a file.

Two file formats are understood, as pycoral and the TFLite Support library read them:
- one label per line, the line number being the class index (ImageNet files start with `background`,
  so that index 0 is the background class and indices match lines);
- `index label` (or `index: label`) per line, indices explicit.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Callable
from pathlib import Path

from edge.bounded import read_file, read_zip_member
from edge.errors import EdgeError
from edge.names import name_fault

_INDEXED = re.compile(r"^\s*(\d+)[:\s]+(.*\S)\s*$")


MAX_LABEL_FILE_BYTES = 16 << 20  # 16 MB: far beyond any label file (a file, or a member embedded in a model)


def check_labels(labels: dict[int, str], source: str) -> dict[int, str]:
    """`labels` when every one keeps the name rule (`edge.names`); else one line naming the first bad index.

    Refused rather than escaped: a label is published on MQTT and as a Home Assistant option, so a model
    whose labels carry control characters or blanks would put them on every consumer's screen.
    """
    for index in sorted(labels):
        fault = name_fault(labels[index])
        if fault is not None:
            raise EdgeError(f"{source}: label {index} {fault}; give each class a plain, non-blank name")
    return labels


def parse_labels(text: str, source: str = "labels") -> dict[int, str]:
    """Parse a label file's text into {index: label}.

    The indexed format is used when every non-blank line starts with a number followed by a label;
    otherwise line N (counting blank lines, which keep their place) is class N.

    Raises:
        EdgeError: an index given twice (naming `source` and the line).
    """
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    nonblank = [line for line in lines if line.strip()]
    if nonblank and all(_INDEXED.match(line) for line in nonblank):
        out: dict[int, str] = {}
        for number, line in enumerate(lines, 1):
            m = _INDEXED.match(line)
            if m is None:
                continue
            index = int(m.group(1))
            if index in out:
                raise EdgeError(f"{source}: line {number}: index {index} is given twice; give each class once")
            out[index] = m.group(2)
        return out
    return {i: line.strip() for i, line in enumerate(lines)}


def read_label_file(path: str | Path) -> dict[int, str]:
    """Read a sidecar label file (either format)."""
    p = Path(path)
    if p.exists() and not p.is_file():
        raise EdgeError(f"{p}: not a regular file; give a UTF-8 text file of labels")
    try:
        text = read_file(p, MAX_LABEL_FILE_BYTES).decode("utf-8")
    except FileNotFoundError:
        raise EdgeError(f"{p}: label file not found; check the --labels path") from None
    except (OSError, UnicodeDecodeError) as e:
        raise EdgeError(f"{p}: cannot read label file ({e}); give a UTF-8 text file") from None
    labels = parse_labels(text, str(p))
    if not labels:
        raise EdgeError(f"{p}: label file is empty; put one label per line")
    return check_labels(labels, str(p))


def embedded_label_member(model_bytes_or_path: str | Path | io.BytesIO) -> str | None:
    """Name of the label file embedded in a .tflite (zip member), or None."""
    try:
        with zipfile.ZipFile(model_bytes_or_path) as z:
            names = [n for n in z.namelist() if n.lower().endswith(".txt")]
    except (zipfile.BadZipFile, OSError):
        return None
    if not names:
        return None
    preferred = [n for n in names if "label" in n.lower()]
    return (preferred or names)[0]


def read_embedded_labels(model_path: str | Path, content: bytes | None = None) -> dict[int, str] | None:
    """Labels carried inside the model as a zip member, or None when it has none; from `content` (the model's
    bytes, already verified) instead of the file when given."""
    source = io.BytesIO(content) if content is not None else model_path
    member = embedded_label_member(source)
    if member is None:
        return None
    where = f"{model_path} ({member})"
    try:
        with zipfile.ZipFile(source) as z:
            data = read_zip_member(z, member, MAX_LABEL_FILE_BYTES, where)
    except (zipfile.BadZipFile, OSError, RuntimeError, EOFError) as e:  # damaged member, encrypted, truncated
        raise EdgeError(f"{where}: cannot read the embedded labels ({e}); export the model again") from None
    labels = parse_labels(data.decode("utf-8", errors="replace"), where)
    return check_labels(labels, where) if labels else None


def model_labels(model: Path, labels: str | Path | None, content: bytes | None,
                 verify: Callable[[Path], bytes] | None) -> tuple[dict[int, str] | None, str]:  # fmt: skip
    """A loaded model's labels and where they came from: the label file (verified like the model when `verify` is
    given: a signed model's label file must be signed too), else the model's embedded labels, else none."""
    if labels is not None and verify is not None:
        data = verify(Path(labels))
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise EdgeError(f"{labels}: not UTF-8 text; give a label file") from None
        if not (label_map := parse_labels(text, str(labels))):
            raise EdgeError(f"{labels}: label file is empty; put one label per line")
        return check_labels(label_map, str(labels)), str(labels)
    if labels is not None:
        return read_label_file(labels), str(labels)
    label_map = read_embedded_labels(model, content)
    member = embedded_label_member(io.BytesIO(content) if content is not None else model) if label_map else None
    return label_map, f"embedded:{member}" if member else "none"


def align_labels(labels: dict[int, str] | None, num_classes: int, source: str) -> tuple[str, ...]:
    """One label per model output, checked against the output size.

    Missing labels (no file at all) become `class_N`. A file whose count does not match the model, or an
    indexed file that skips an index, is an error naming the file: a silent off-by-one would publish the
    wrong label for every frame.
    """
    if labels is None:
        return tuple(f"class_{i}" for i in range(num_classes))
    top = max(labels) + 1
    if top != num_classes:
        hint = ""
        if top == num_classes + 1 and labels.get(0, "").lower() == "background":
            hint = " (line 0 is 'background' but the model has no background class: remove that line)"
        elif num_classes == top + 1:
            hint = " (the model has one more class than labels: is the 'background' line 0 missing?)"
        raise EdgeError(
            f"{source}: {top} labels but the model has {num_classes} classes{hint}; "
            "give the label file that belongs to this model"
        )
    missing = [i for i in range(num_classes) if i not in labels]
    if missing:
        raise EdgeError(f"{source}: no label for class {missing[0]}" + (f" (and {len(missing) - 1} more)" if
                        len(missing) > 1 else "") + f"; give every index from 0 to {num_classes - 1}")  # fmt: skip
    return tuple(labels[i] for i in range(num_classes))


METRICS_MEMBER = "metrics.json"  # what `edge-train` embeds beside the labels (held-out accuracy, drift reference)


def read_reference(model_path: str | Path, labels: tuple[str, ...]):  # -> edge.inference.reference.Reference | None
    """The drift reference the model carries in its `metrics.json`, or None when it carries none.

    Raises:
        EdgeError: `<model> (metrics.json): <the field that is wrong>`, one line.
    """
    from edge.inference.reference import parse_reference

    try:
        with zipfile.ZipFile(model_path) as z:
            if METRICS_MEMBER not in z.namelist():
                return None
            data = z.read(METRICS_MEMBER)
    except (zipfile.BadZipFile, OSError):
        return None
    where = f"{model_path} ({METRICS_MEMBER})"
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise EdgeError(f"{where}: not JSON ({e}); remake it with edge-train or remove the member") from None
    if not isinstance(doc, dict) or "reference" not in doc:
        return None
    try:
        return parse_reference(doc["reference"], labels)
    except ValueError as e:
        raise EdgeError(f"{where}: {e}; remake the model with edge-train") from None
