"""Issue 25: inputs sized by the sender are read within our bounds (`edge.bounded`, `docs/limits.md`).

Each hostile input runs the real `edge-daemon` in a child that reports its own peak memory (VmHWM): one line,
the right exit status, and under 100 MB above the child's baseline.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from tests.edge.conftest import REPO
from tests.edge.test_hostile_input import LOG_LINE
from tests.support.peak_memory import run_measured
from tests.support.shared_data import shared

BUDGET = 100 << 20  # bytes of peak memory a refusal may add to the child's baseline


def bare_model(tmp: Path) -> Path:
    """The Coral model without the labels it carries (its flatbuffer only), to embed our own."""
    src = shared("coral/mobilenet_v1_0.25_128_quant.tflite")
    with zipfile.ZipFile(src) as z:
        start = min(i.header_offset for i in z.infolist())
    out = tmp / "bare.tflite"
    out.write_bytes(src.read_bytes()[:start])
    return out


def with_labels(tmp: Path, name: str, write) -> Path:
    model = tmp / name
    model.write_bytes(bare_model(tmp).read_bytes())
    with zipfile.ZipFile(model, "a", compression=zipfile.ZIP_DEFLATED) as z, \
            z.open("labels.txt", "w", force_zip64=True) as f:  # fmt: skip
        write(f)
    return model


@pytest.fixture(scope="module")
def label_bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 5 MB model whose embedded labels.txt inflates to 4.4 GB (the issue's bomb)."""
    block = b"a\n" * (1 << 21)

    def write(f) -> None:
        for _ in range(4400 * (1 << 20) // len(block)):
            f.write(block)

    return with_labels(tmp_path_factory.mktemp("bomb"), "bomb.tflite", write)


def daemon(tmp: Path, *args: str):
    return run_measured("edge.cli.main", *args, tmp=tmp, cwd=REPO)


def one_line(stderr: str) -> list[str]:
    return [line for line in stderr.strip().splitlines() if not LOG_LINE.match(line)]


@pytest.mark.parametrize("command", ["info", "classify"])
def test_a_label_bomb_is_refused_in_one_line_within_the_memory_budget(label_bomb, tmp_path, command):
    images = [str(shared("coral/cat.bmp"))] if command == "classify" else []
    r = daemon(tmp_path, command, "--model", str(label_bomb), *images)
    errors = one_line(r.stderr)
    assert r.returncode == 2 and len(errors) == 1, r.stderr
    assert errors[0].startswith("edge-daemon: error: ") and "(labels.txt): over 16 MB" in errors[0], errors[0]
    assert r.growth < BUDGET, f"{r.growth >> 20} MB over the baseline"
    print(f"label bomb, {command}: peak {r.growth / 2**20:.1f} MB over a {r.baseline >> 20} MB baseline")


LABELS = [
    ("ESC", "\x1b[31mred", r"label 3 holds the control character '\x1b'"),
    ("BEL", "bell\a", r"label 3 holds the control character '\x07'"),
    ("NUL", "nul\0", r"label 3 holds the control character '\x00'"),
    ("tab", "a\tb", r"label 3 holds the control character '\t'"),
    ("bidi override", "cat\u202etac", "label 3 holds the bidirectional control U+202E"),
    ("blank", "   ", "label 3 is blank"),
    ("too long", "x" * 300, "label 3 is 300 characters long (at most 256)"),
]  # fmt: skip


@pytest.mark.parametrize(("label", "message"), [c[1:] for c in LABELS], ids=[c[0] for c in LABELS])
def test_a_model_whose_label_breaks_the_name_rule_is_refused_naming_its_index(tmp_path, label, message):
    names = [f"class {i}" for i in range(1001)]
    names[3] = label
    model = with_labels(tmp_path, "bad.tflite", lambda f: f.write(("\n".join(names) + "\n").encode()))
    r = daemon(tmp_path, "info", "--model", str(model))
    errors = one_line(r.stderr)
    assert r.returncode == 2 and len(errors) == 1, r.stderr
    assert message in errors[0] and "give each class a plain, non-blank name" in errors[0], errors[0]
    assert r.growth < BUDGET


def test_a_model_with_clean_embedded_labels_is_served(tmp_path):
    names = [f"class {i}" for i in range(1001)]
    model = with_labels(tmp_path, "good.tflite", lambda f: f.write(("\n".join(names) + "\n").encode()))
    r = daemon(tmp_path, "info", "--model", str(model))
    assert r.returncode == 0 and "embedded:labels.txt: class 0, class 1" in r.stdout, r.stdout + r.stderr
