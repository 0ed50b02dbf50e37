"""`edge-daemon classify`'s exit codes come from the exception's type, not its text.

An image that cannot be read is that image's failure (said in one line, the next image classified, exit 1 at the
end); an interpreter that fails on invoke (a Coral unplugged mid-run, a delegate error) stops the command at once
with exit 1. No Coral can be had here, so the failing invoke is a stand-in on the real demo model's interpreter
that raises as LiteRT does (RuntimeError from invoke()).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.cli import commands
from edge.cli.main import main
from edge.errors import Failure, InferenceFailed
from edge.inference.model import load_model


@pytest.fixture
def images(tmp_path: Path, fm_images) -> list[str]:
    paths = []
    for i, image in enumerate(fm_images[:2]):
        path = tmp_path / f"{i}.png"
        cv2.imwrite(str(path), image)
        paths.append(str(path))
    return paths


def _failing_invoke() -> None:
    raise RuntimeError("Node number 3 (EdgeTpuDelegateForCustomOp) failed to invoke.")


def test_a_failing_invoke_is_an_inference_failure(demo_model: Path) -> None:
    with load_model(demo_model, device="cpu", threads=1) as clf:
        clf._interpreter.invoke = _failing_invoke
        with pytest.raises(InferenceFailed, match="inference failed") as e:
            clf.scores(np.zeros((28, 28, 3), np.uint8))
    assert isinstance(e.value, Failure)


def test_classify_stops_at_an_inference_failure(monkeypatch, demo_model, images, capsys) -> None:
    real = commands._load

    def load_breaking(args):
        clf = real(args)
        clf._interpreter.invoke = _failing_invoke
        return clf

    monkeypatch.setattr(commands, "_load", load_breaking)
    code = main(["classify", "--model", str(demo_model), "--device", "cpu", *images])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("edge-daemon: error:")]
    assert code == 1
    assert len(errors) == 1 and "inference failed" in errors[0], err  # stopped at the first image
    assert "Traceback" not in err


def test_classify_goes_on_after_a_bad_image(demo_model, images, tmp_path, capsys) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    code = main(["classify", "--model", str(demo_model), "--device", "cpu", str(broken), *images])
    out, err = capsys.readouterr()
    errors = [line for line in err.splitlines() if line.startswith("edge-daemon: error:")]
    assert code == 1
    assert len(errors) == 1 and "broken.png" in errors[0], err
    assert all(path in out for path in images)  # the good images after the bad one are classified
