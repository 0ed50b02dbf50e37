"""The options of one `edge-train train` run, as a frozen value: what the command line gave, checked once.

`trainer.cli` parses the command line; `TrainOptions.from_args` takes the fields it names and checks the numbers.
The defaults that depend on other things (the input size, seed and split with `--from`, the epochs by backbone)
are settled by returning a new value (`settled`), never by changing this one, so every module of the run sees
the same options and `report.json` records exactly what was used.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.errors import EdgeError
from trainer.data.dataset import MIN_PER_CLASS


@dataclass(frozen=True)
class TrainOptions:
    """One training run's options; None: not given (settled by the run: see `trainer.previous.resolve_options`)."""

    dataset: str
    out: Path
    name: str = "model"
    from_run: str | None = None
    backbone: str = "auto"
    size: int | None = None
    alpha: float = 0.35
    weights: str | None = None
    epochs: int | None = None
    fine_tune_epochs: int | None = None
    fine_tune_layers: int | None = None
    batch_size: int = 32
    learning_rate: float = 1e-3
    lr_schedule: str = "cosine"
    patience: int = 5
    dropout: float = 0.2
    no_augment: bool = False
    flip: bool = False
    min_per_class: int = MIN_PER_CLASS
    io_type: str = "uint8"
    calibration_samples: int = 300
    edgetpu: bool = False
    sign_key: str | None = None
    val_fraction: float | None = None
    test_fraction: float | None = None
    seed: int | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> TrainOptions:
        """The options a parsed `edge-train train` command line gives, checked.

        Raises:
            EdgeError: a number out of its range, one line naming the flag.
        """
        given = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
        options = cls(**{**given, "out": Path(args.out)})
        options.check()
        return options

    def check(self) -> None:
        """Raises EdgeError naming the flag of a number out of its range."""
        for name in ("epochs", "batch_size", "calibration_samples", "min_per_class", "fine_tune_layers"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise EdgeError(f"--{name.replace('_', '-')}: must be at least 1, got {value}")
        if (self.fine_tune_epochs or 0) < 0 or self.patience < 1:
            raise EdgeError("--fine-tune-epochs must be >= 0 and --patience >= 1")
        if not 0 <= self.dropout < 1 or not 0 < self.learning_rate < 1:
            raise EdgeError(f"--dropout must be in [0, 1) and --learning-rate in (0, 1); got {self.dropout}, "
                            f"{self.learning_rate}")  # fmt: skip

    def settled(self, **values: Any) -> TrainOptions:
        """A copy with defaults settled (`size`, `seed`, fractions, epochs ...)."""
        return dataclasses.replace(self, **values)

    @property
    def augmentation(self) -> dict[str, Any]:
        """The augmentation of the new network's input (`trainer.nets.model.TrainSpec`'s flip, crop, brightness)."""
        on = not self.no_augment
        return {"flip": self.flip and on, "crop": 0.1 if on else 0.0, "brightness": 0.2 if on else 0.0}

    def as_config(self) -> dict[str, Any]:
        """The options as report.json's `config` (paths as text), what a later `--from` run inherits from."""
        return {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(self).items()}
