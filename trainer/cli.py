"""`edge-train`: train, export and evaluate full-int8 image classifiers; export offline datasets.

    edge-train train DATASET --out DIR [--size 96 --alpha 0.35 --weights none|imagenet|PATH ...]
    edge-train evaluate --model DIR/model.tflite DATASET
    edge-train export-dataset fashion-mnist|digits OUT
    edge-train demo-clip IMAGES_FOLDER OUT.avi

Expected failures print one line, `edge-train: error: ...`, and exit 2; never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

from edge.errors import EdgeError

log = logging.getLogger("trainer")

EXIT_ERROR = 2
EXIT_PARTIAL = 1  # the model was made, but something asked for (the Edge TPU compile) was not


def _quiet_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore", module="keras")
    warnings.filterwarnings("ignore", module="tensorflow")
    try:
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)
    except ImportError:
        pass


def _split_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--val-fraction", type=float, default=0.1, help="validation share when not given (0.1)")
    p.add_argument("--test-fraction", type=float, default=0.1, help="test share when not given (0.1)")
    p.add_argument("--seed", type=int, default=0, help="seed for the split, initialisation and shuffling (0)")


def add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", help="folder with one subfolder per class, train/val/test folders, or a path,label CSV")
    p.add_argument("--out", "-o", required=True, help="output folder (model, labels, report)")
    p.add_argument("--name", default="model", help="model file name without .tflite (model)")
    p.add_argument("--size", type=int, default=96, help="input size in pixels, square (96; 224 for accuracy)")
    p.add_argument("--alpha", type=float, default=0.35, help="MobileNetV2 width multiplier (0.35; up to 1.4)")
    p.add_argument("--weights", default="none", help="none (from scratch), imagenet (downloads once) or a file")
    p.add_argument("--epochs", type=int, default=20, help="maximum epochs; stops early on a plateau (20)")
    p.add_argument("--fine-tune-epochs", type=int, default=0, help="then fine-tune the base's top (pretrained)")
    p.add_argument("--fine-tune-layers", type=int, default=30, help="how many top base layers to fine-tune (30)")
    p.add_argument("--batch-size", type=int, default=64, help="(64)")
    p.add_argument("--learning-rate", type=float, default=1e-3, help="Adam learning rate (0.001; /10 to fine-tune)")
    p.add_argument(
        "--lr-schedule",
        choices=("cosine", "plateau"),
        default="cosine",
        help="cosine decay over the epochs, or cut on a validation plateau (cosine)",
    )
    p.add_argument("--patience", type=int, default=4, help="epochs without validation improvement before stopping")
    p.add_argument("--dropout", type=float, default=0.2, help="dropout before the new head (0.2)")
    p.add_argument("--no-augment", action="store_true", help="no flip/crop/brightness augmentation")
    p.add_argument("--no-flip", action="store_true", help="no horizontal flips (text, digits, left/right classes)")
    p.add_argument("--min-per-class", type=int, default=10, help="fewer usable images in a class is an error (10)")
    p.add_argument("--io-type", choices=("uint8", "int8"), default="uint8", help="model input/output type (uint8)")
    p.add_argument("--calibration-samples", type=int, default=300, help="training images to calibrate with (300)")
    p.add_argument("--edgetpu", action="store_true", help="also compile for the Edge TPU (needs edgetpu_compiler)")
    _split_args(p)


def _check_numbers(args: argparse.Namespace) -> None:
    for name in ("epochs", "batch_size", "calibration_samples", "min_per_class"):
        if getattr(args, name) < 1:
            raise EdgeError(f"--{name.replace('_', '-')}: must be at least 1, got {getattr(args, name)}")
    if args.fine_tune_epochs < 0 or args.patience < 1 or not 0 <= args.dropout < 1 or args.learning_rate <= 0:
        raise EdgeError("--fine-tune-epochs >= 0, --patience >= 1, 0 <= --dropout < 1, --learning-rate > 0")


def cmd_train(args: argparse.Namespace) -> int:
    """Load, train, export full-int8 with labels, and write the evaluation report."""
    _check_numbers(args)
    from trainer import dataset, export, model, report

    started = time.perf_counter()
    cfg = model.ModelConfig(
        num_classes=0,
        size=args.size,
        alpha=args.alpha,
        weights=args.weights,
        dropout=args.dropout,
        flip=not (args.no_augment or args.no_flip),
        crop=0.0 if args.no_augment else 0.1,
        brightness=0.0 if args.no_augment else 0.2,
    )
    model.check_config(cfg)
    if args.edgetpu and shutil.which("edgetpu_compiler") is None:
        log.warning("--edgetpu: edgetpu_compiler is not on PATH; the CPU model will be made, the Edge TPU one not")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    splits = dataset.load_dataset(
        args.dataset,
        args.size,
        val_fraction=args.val_fraction,
        test_fraction=args.test_fraction,
        seed=args.seed,
        min_per_class=args.min_per_class,
    )
    classes = splits.classes
    log.info(
        "%d classes; %d train, %d validation, %d test images; %d file(s) skipped",
        len(classes),
        len(splits.train),
        len(splits.val),
        len(splits.test),
        len(splits.skipped),
    )
    load_s = time.perf_counter() - started
    import keras

    trained_from = time.perf_counter()
    keras.utils.set_random_seed(args.seed)
    cfg = model.ModelConfig(**{**cfg.__dict__, "num_classes": len(classes)})
    net, base = model.build_model(cfg, seed=args.seed)
    history = model.train(
        net,
        base,
        cfg,
        (splits.train.images, splits.train.labels, splits.val.images, splits.val.labels),
        epochs=args.epochs,
        fine_tune_epochs=args.fine_tune_epochs,
        fine_tune_layers=args.fine_tune_layers,
        batch=args.batch_size,
        lr=args.learning_rate,
        patience=args.patience,
        seed=args.seed,
        schedule=args.lr_schedule,
    )
    train_s = time.perf_counter() - trained_from
    net.save(out / f"{args.name}.keras")
    float_scores = model.predict(net, splits.test.images) if len(splits.test) else None

    tflite = out / f"{args.name}.tflite"
    calib = export.representative_images(splits.train.images, args.calibration_samples, args.seed)
    tflite.write_bytes(export.convert(net, calib, args.io_type))
    check = export.inspect_int8(tflite, args.io_type)
    export.embed_labels(tflite, classes)
    export.write_labels(out / "labels.txt", classes)
    log.info(
        "wrote %s (%d bytes, %s in/out, input scale %g zero point %d, labels embedded) and %s",
        tflite,
        tflite.stat().st_size,
        check.input_dtype,
        check.input_scale,
        check.input_zero_point,
        out / "labels.txt",
    )
    q_scores = report.int8_scores(tflite, splits.test.paths)
    extra = {
        "config": {k: v for k, v in vars(args).items() if k != "func"},
        "int8": {**check.__dict__, "ops": list(check.ops)},
        "skipped": [{"path": str(p), "reason": r} for p, r in splits.skipped],
        "split_sizes": {"train": len(splits.train), "val": len(splits.val), "test": len(splits.test)},
        "load_seconds": round(load_s, 1),
        "train_seconds": round(train_s, 1),
    }
    summary = report.write_report(
        out, tflite, classes, splits.test.labels, splits.test.paths, q_scores, float_scores, history, extra
    )
    summary["total_seconds"] = round(time.perf_counter() - started, 1)
    (out / "report.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    log.info("done in %.0fs", summary["total_seconds"])
    if args.edgetpu:
        try:
            res = export.compile_edgetpu(tflite, classes)
        except EdgeError as e:
            print(f"edge-train: error: {e}", file=sys.stderr)
            return EXIT_PARTIAL
        log.info("wrote %s: %d ops on the Edge TPU, %d on the CPU", res.path, res.tpu_ops, res.cpu_ops)
    return 0


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
    from edge.model import load_model
    from trainer import dataset, report

    tflite = Path(args.model)
    with load_model(tflite, device="cpu") as clf:
        spec = clf.spec
    if spec.input.height != spec.input.width:
        raise EdgeError(f"{tflite}: input {spec.input.width}x{spec.input.height} is not square")
    data = dataset.load_eval_set(
        args.dataset, spec.input.height, spec.labels, args.split, args.seed, args.val_fraction, args.test_fraction
    )
    q_scores = report.int8_scores(tflite, data.paths)
    float_scores = None
    keras_file = tflite.with_suffix(".keras")
    if keras_file.is_file():
        import keras

        from trainer.model import predict

        float_scores = predict(keras.saving.load_model(keras_file), data.images)
    out = Path(args.out) if args.out else tflite.parent / f"{tflite.stem}_eval"
    report.write_report(
        out,
        tflite,
        spec.labels,
        data.labels,
        data.paths,
        q_scores,
        float_scores,
        extra={"dataset": str(args.dataset), "split": args.split},
    )
    return 0


def add_export_args(p: argparse.ArgumentParser) -> None:
    from trainer.datasets_export import NAMES

    p.add_argument("name", choices=NAMES, help="fashion-mnist (apt dataset-fashion-mnist) or digits (scikit-learn)")
    p.add_argument("out", help="folder to create")
    p.add_argument("--per-class", type=int, help="at most this many images per class (and split)")
    p.add_argument("--seed", type=int, default=0, help="which images --per-class keeps (0)")
    p.add_argument("--source", help="fashion-mnist: folder with the four idx .gz files (default: the apt package)")


def cmd_export(args: argparse.Namespace) -> int:
    """Write an offline dataset into the folder layout."""
    from trainer.datasets_export import export_dataset

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
    from trainer.demo import make_clip

    if args.seconds <= 0 or args.fps <= 0 or args.per_class < 1:
        raise EdgeError("--seconds and --fps must be positive, --per-class at least 1")
    make_clip(args.folder, args.out, seconds_per_image=args.seconds, per_class=args.per_class, fps=args.fps)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge-train", description="Train full-int8 image classifiers for edge-daemon."
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_, add, run in (
        ("train", "train, export full-int8 with labels, report", add_train_args, cmd_train),
        ("evaluate", "report float/int8 accuracy of a model on a dataset", add_evaluate_args, cmd_evaluate),
        ("export-dataset", "write an offline dataset in the folder layout", add_export_args, cmd_export),
        ("demo-clip", "write an MJPG clip of real images, a few seconds per class", add_clip_args, cmd_clip),
    ):
        p = sub.add_parser(name, help=help_, description=help_)
        add(p)
        p.set_defaults(func=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(message)s", stream=sys.stderr)
    _quiet_tensorflow()
    try:
        return int(args.func(args) or 0)
    except EdgeError as e:
        print(f"edge-train: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
