"""Label files and embedded labels: formats, alignment with the model's output size."""

import zipfile

import pytest

from edge.errors import EdgeError
from edge.inference.labels import (
    align_labels,
    embedded_label_member,
    parse_labels,
    read_embedded_labels,
    read_label_file,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cat\ndog\n", {0: "cat", 1: "dog"}),
        ("background\ntench, Tinca tinca\n", {0: "background", 1: "tench, Tinca tinca"}),
        ("0 cat\n1 dog\n", {0: "cat", 1: "dog"}),
        ("0: cat\n2: bird\n", {0: "cat", 2: "bird"}),  # the gap is refused by align_labels
        ("0  tiger cat\n1\tEgyptian cat", {0: "tiger cat", 1: "Egyptian cat"}),
        ("3d printer\nchair\n", {0: "3d printer", 1: "chair"}),  # not every line indexed: plain
        ("cat\n\ndog\n\n\n", {0: "cat", 1: "", 2: "dog"}),  # blank lines keep their place, trailing dropped
        ("cat\r\ndog\r\n", {0: "cat", 1: "dog"}),
        ("", {}),
    ],
)
def test_parse_labels(text, expected):
    assert parse_labels(text) == expected


def test_align_labels_exact_and_default_names():
    assert align_labels({0: "a", 1: "b"}, 2, "f") == ("a", "b")
    assert align_labels(None, 3, "f") == ("class_0", "class_1", "class_2")
    with pytest.raises(EdgeError, match=r"^f: no label for class 1; give every index from 0 to 2$"):
        align_labels({0: "a", 2: "c"}, 3, "f")  # an indexed file that skips an index


@pytest.mark.parametrize(
    ("labels", "n", "hint"),
    [
        ({0: "background", 1: "a", 2: "b"}, 2, "remove that line"),
        ({0: "a", 1: "b"}, 3, "background"),
        ({0: "a", 1: "b", 2: "c", 3: "d"}, 2, "4 labels but the model has 2 classes"),
    ],
)
def test_align_labels_mismatch_is_a_clear_error(labels, n, hint):
    with pytest.raises(EdgeError, match=r"labels\.txt") as e:
        align_labels(labels, n, "labels.txt")
    assert hint in str(e.value)
    assert "\n" not in str(e.value)


def test_read_label_file_errors(tmp_path):
    with pytest.raises(EdgeError, match="not found"):
        read_label_file(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(EdgeError, match="empty"):
        read_label_file(tmp_path / "empty.txt")
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(EdgeError, match="cannot read"):
        read_label_file(tmp_path / "bin.txt")


def _model_with_members(path, members):
    path.write_bytes(b"TFL3" + bytes(100))  # stands for the flatbuffer; the zip is appended after it
    with zipfile.ZipFile(path, "a") as z:
        for name, text in members.items():
            z.writestr(name, text)
    return path


def test_embedded_labels_prefers_a_label_member(tmp_path):
    m = _model_with_members(tmp_path / "m.tflite", {"vocab.txt": "x\n", "my_labels.txt": "cat\ndog\n"})
    assert embedded_label_member(m) == "my_labels.txt"
    assert read_embedded_labels(m) == {0: "cat", 1: "dog"}


def test_no_embedded_labels(tmp_path):
    plain = tmp_path / "plain.tflite"
    plain.write_bytes(b"TFL3" + bytes(100))
    assert read_embedded_labels(plain) is None
    assert read_embedded_labels(_model_with_members(tmp_path / "z.tflite", {"notes.md": "x"})) is None
