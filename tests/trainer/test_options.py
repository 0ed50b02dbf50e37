"""`TrainOptions`: the run's options as one frozen value, checked once, settled by copies (never mutated)."""

from __future__ import annotations

import dataclasses

import pytest

from edge.errors import EdgeError
from trainer.cli import parser
from trainer.options import TrainOptions
from trainer.previous import DEFAULT_FRACTION, DEFAULT_SEED, DEFAULT_SIZE, resolve_options


def parsed(*argv: str) -> TrainOptions:
    return TrainOptions.from_args(parser().parse_args(["train", "data", "--out", "run", *argv]))


def test_the_options_are_what_the_command_line_gave() -> None:
    opts = parsed("--epochs", "3", "--no-augment", "--flip")
    assert (opts.dataset, str(opts.out), opts.epochs, opts.size, opts.seed) == ("data", "run", 3, None, None)
    assert opts.augmentation == {"flip": False, "crop": 0.0, "brightness": 0.0}  # --no-augment wins over --flip
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.epochs = 5  # type: ignore[misc]


OUT_OF_RANGE = [(("--epochs", "0"), "--epochs"), (("--batch-size", "-1"), "--batch-size"),
                (("--dropout", "1"), "--dropout"), (("--patience", "0"), "--patience")]


@pytest.mark.parametrize(("argv", "flag"), OUT_OF_RANGE)
def test_a_number_out_of_range_names_its_flag(argv: tuple[str, ...], flag: str) -> None:
    with pytest.raises(EdgeError, match=flag):
        parsed(*argv)


def test_settling_makes_a_copy() -> None:
    given = parsed()
    settled = resolve_options(given, None)
    assert (settled.size, settled.seed, settled.val_fraction) == (DEFAULT_SIZE, DEFAULT_SEED, DEFAULT_FRACTION)
    assert (given.size, given.seed, given.val_fraction) == (None, None, None)  # the given options are unchanged
    assert settled.as_config()["out"] == "run" and "func" not in settled.as_config()
