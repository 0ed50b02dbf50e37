"""What `edge-train train` and `edge-train evaluate` do, step by step: load, train, export, report.

The options arrive as parsed by `trainer.cli`; defaults that depend on the backbone are settled here
(`resolve_backbone`, then 40 head epochs and 10 fine-tuning epochs with a pretrained base, 20 epochs from
scratch; with `--from`, `trainer.previous` settles them). Everything the user should act on ends up in
`report.json` and in the log.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from pathlib import Path

from edge.errors import EdgeError, Failure

log = logging.getLogger(__name__)

PRETRAINED_EPOCHS, PRETRAINED_FINE_TUNE_EPOCHS, SCRATCH_EPOCHS = 40, 10, 20  # `--from`: trainer.previous


def _check_numbers(args: argparse.Namespace) -> None:
    for name in ("epochs", "batch_size", "calibration_samples", "min_per_class", "fine_tune_layers"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise EdgeError(f"--{name.replace('_', '-')}: must be at least 1, got {value}")
    if (args.fine_tune_epochs or 0) < 0 or args.patience < 1:
        raise EdgeError("--fine-tune-epochs must be >= 0 and --patience >= 1")
    if not 0 <= args.dropout < 1 or not 0 < args.learning_rate < 1:
        raise EdgeError(f"--dropout must be in [0, 1) and --learning-rate in (0, 1); got {args.dropout}, "
                        f"{args.learning_rate}")


def train_spec(args: argparse.Namespace, num_classes: int):  # -> trainer.nets.model.TrainSpec
    """The network to build from the options (backbone and weights resolved, augmentation as asked)."""
    from trainer.nets.model import TrainSpec, check_spec, resolve_backbone

    backbone, weights = resolve_backbone(args.backbone, args.weights)
    spec = TrainSpec(
        num_classes=num_classes,
        size=args.size,
        backbone=backbone,
        alpha=args.alpha,
        weights=weights,
        dropout=args.dropout,
        flip=args.flip and not args.no_augment,
        crop=0.0 if args.no_augment else 0.1,
        brightness=0.0 if args.no_augment else 0.2,
    )
    check_spec(spec)
    return spec


def train_run(args: argparse.Namespace) -> int:
    """`edge-train train`: the whole run; returns the exit status."""
    _check_numbers(args)
    from trainer import compare, export, previous, report
    from trainer.data import dataset

    started = time.perf_counter()
    prev = previous.load_previous(args.from_run) if args.from_run else None
    previous.resolve_options(args, prev)
    spec = train_spec(args, 0) if prev is None else None
    if spec is not None:
        log.info("backbone %s, weights %s, input %dx%d", spec.backbone, spec.weights, spec.size, spec.size)
        pretrained = spec.pretrained
        args.epochs = args.epochs or (PRETRAINED_EPOCHS if pretrained else SCRATCH_EPOCHS)
        if args.fine_tune_epochs is None:
            args.fine_tune_epochs = PRETRAINED_FINE_TUNE_EPOCHS if pretrained else 0
    if args.edgetpu and shutil.which("edgetpu_compiler") is None:
        log.warning("--edgetpu: edgetpu_compiler is not on PATH; the CPU model will be made, the Edge TPU one not")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    splits = dataset.load_dataset(args.dataset, args.size, val_fraction=args.val_fraction,
                                  test_fraction=args.test_fraction, seed=args.seed, min_per_class=args.min_per_class)
    classes = splits.classes
    log.info("%d classes; %d train, %d validation, %d test images; %d file(s) skipped", len(classes),
             len(splits.train), len(splits.val), len(splits.test), len(splits.skipped))
    load_s = time.perf_counter() - started
    import keras

    from trainer import training
    from trainer.nets import model

    trained_from = time.perf_counter()
    keras.utils.set_random_seed(args.seed)
    if prev is None:
        spec = model.TrainSpec(**{**spec.__dict__, "num_classes": len(classes)})
        net, base = model.build_model(spec, seed=args.seed)
    else:
        net, base, spec = previous.rebuild(prev, classes, args)
    history = training.train(
        net,
        base,
        spec,
        (splits.train.images, splits.train.labels, splits.val.images, splits.val.labels),
        epochs=args.epochs,
        fine_tune_epochs=args.fine_tune_epochs,
        fine_tune_layers=args.fine_tune_layers or len(base.layers),
        batch=args.batch_size,
        lr=args.learning_rate,
        patience=args.patience,
        seed=args.seed,
        schedule=args.lr_schedule,
    )
    train_s = time.perf_counter() - trained_from
    export.save_keras(net, out / f"{args.name}.keras")
    float_scores = model.predict(net, splits.test.images) if len(splits.test) else None

    tflite = out / f"{args.name}.tflite"
    calib = export.representative_images(splits.train.images, args.calibration_samples, args.seed)
    tflite.write_bytes(export.convert(net, calib, args.io_type))
    check = export.inspect_int8(tflite, args.io_type)
    export.embed_labels(tflite, classes)
    export.write_labels(out / "labels.txt", classes)
    q_scores = report.int8_scores(tflite, splits.test.paths)
    y_test, comparison, before = splits.test.labels, None, None
    if prev is not None:
        prev_scores = report.int8_scores(prev.tflite, splits.test.paths)
        comparison = compare.compare(classes, y_test, q_scores, prev.classes, prev_scores, prev.name)
        before = (prev.name, compare.previous_accuracy(classes, y_test, prev.classes, prev_scores))
    metrics = compare.metrics_doc(y_test, q_scores, before)
    if metrics is not None:
        export.embed_metrics(tflite, metrics)
    log.info("wrote %s (%d bytes, %s in/out, input scale %g zero point %d, labels%s embedded) and %s", tflite,
             tflite.stat().st_size, check.input_dtype, check.input_scale, check.input_zero_point,
             " and metrics" if metrics else "", out / "labels.txt")
    extra = {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "func"},
        "resolved": {
            "backbone": spec.backbone,
            "weights": spec.weights,
            "epochs": args.epochs,
            "fine_tune_epochs": args.fine_tune_epochs,
            "flip": spec.flip,
        },
        "int8": {**check.__dict__, "ops": list(check.ops)},
        "skipped": [{"path": str(p), "reason": r} for p, r in splits.skipped],
        "split_sizes": {"train": len(splits.train), "val": len(splits.val), "test": len(splits.test)},
        "metrics": metrics,
        "comparison": comparison,
        "load_seconds": round(load_s, 1),
        "train_seconds": round(train_s, 1),
    }
    summary = report.write_report(out, tflite, classes, y_test, splits.test.paths, q_scores, float_scores, history,
                                  extra)  # fmt: skip
    summary["total_seconds"] = round(time.perf_counter() - started, 1)
    _finish(out, summary, metrics)
    if args.edgetpu:
        try:
            res = export.compile_edgetpu(tflite, classes, metrics=metrics)
        except EdgeError as e:
            raise Failure(str(e)) from None
        log.info("wrote %s: %d ops on the Edge TPU, %d on the CPU", res.path, res.tpu_ops, res.cpu_ops)
    return 0


def _finish(out: Path, summary: dict, metrics: dict | None) -> None:
    """Write the final report.json, print the comparison with the previous model, log the warnings."""
    from trainer.compare import format_comparison

    comparison = summary.get("comparison")
    if comparison is not None:
        print(format_comparison(comparison), flush=True)
        before, after = comparison["previous"]["accuracy"], comparison["new"]["accuracy"]
        if metrics is not None and metrics["heldout_accuracy"] < metrics["previous"]["heldout_accuracy"]:
            summary["warnings"].append(
                f"the new model is less accurate than {comparison['previous']['model']} on the same held-out images "
                f"({after:.4f} against {before:.4f}): edge-deploy model refuses it without --force. Try: more "
                "reviewed images of the classes that got worse, or more --fine-tune-epochs"
            )
    (out / "report.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    for warning in summary["warnings"]:
        log.warning("%s", warning)
    count = len(summary["warnings"])
    verdict = f" WITH {count} WARNING(S) above: check before deploying" if count else ""
    log.info("done in %.0fs%s", summary["total_seconds"], verdict)


def evaluate_run(args: argparse.Namespace) -> int:
    """`edge-train evaluate`: the report for an existing model on a dataset."""
    from edge.inference.model import load_model
    from trainer import report
    from trainer.data import dataset

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

        from trainer.nets.model import predict

        float_scores = predict(keras.saving.load_model(keras_file), data.images)
    out = Path(args.out) if args.out else tflite.parent / f"{tflite.stem}_eval"
    summary = report.write_report(out, tflite, spec.labels, data.labels, data.paths, q_scores, float_scores,
                                  extra={"dataset": str(args.dataset), "split": args.split})
    for warning in summary["warnings"]:
        log.warning("%s", warning)
    return 0
