"""What `edge-train train` and `edge-train evaluate` do, step by step: load, train, export, report.

The options arrive as a frozen `trainer.options.TrainOptions`; defaults that depend on the backbone are settled here
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
from trainer.options import TrainOptions

log = logging.getLogger(__name__)

PRETRAINED_EPOCHS, PRETRAINED_FINE_TUNE_EPOCHS, SCRATCH_EPOCHS = 40, 10, 20  # `--from`: trainer.previous


def train_spec(opts: TrainOptions, num_classes: int):  # -> trainer.nets.model.TrainSpec
    """The network to build from the options (backbone and weights resolved, augmentation as asked)."""
    from trainer.nets.model import TrainSpec, check_spec, resolve_backbone

    backbone, weights = resolve_backbone(opts.backbone, opts.weights)
    spec = TrainSpec(num_classes=num_classes, size=opts.size, backbone=backbone, alpha=opts.alpha, weights=weights,
                     dropout=opts.dropout, **opts.augmentation)  # fmt: skip
    check_spec(spec)
    return spec


def train_run(args: argparse.Namespace) -> int:
    """`edge-train train`: the whole run; returns the exit status."""
    return train(TrainOptions.from_args(args))


def train(opts: TrainOptions) -> int:
    """The whole run for these options; returns the exit status."""
    from trainer import compare, export, previous, report
    from trainer.data import dataset

    started = time.perf_counter()
    signing_key = _signing_key(opts.sign_key)  # a bad key is refused before any training
    prev = previous.load_previous(opts.from_run) if opts.from_run else None
    opts = previous.resolve_options(opts, prev)
    spec = train_spec(opts, 0) if prev is None else None
    if spec is not None:
        log.info("backbone %s, weights %s, input %dx%d", spec.backbone, spec.weights, spec.size, spec.size)
        pretrained = spec.pretrained
        opts = opts.settled(
            epochs=opts.epochs or (PRETRAINED_EPOCHS if pretrained else SCRATCH_EPOCHS),
            fine_tune_epochs=(PRETRAINED_FINE_TUNE_EPOCHS if pretrained else 0) if opts.fine_tune_epochs is None
            else opts.fine_tune_epochs,
        )
    if opts.edgetpu and shutil.which("edgetpu_compiler") is None:
        log.warning("--edgetpu: edgetpu_compiler is not on PATH; the CPU model will be made, the Edge TPU one not")
    out = opts.out
    out.mkdir(parents=True, exist_ok=True)
    splits = dataset.load_dataset(opts.dataset, opts.size, val_fraction=opts.val_fraction,
                                  test_fraction=opts.test_fraction, seed=opts.seed, min_per_class=opts.min_per_class)
    classes = splits.classes
    log.info("%d classes; %d train, %d validation, %d test images; %d file(s) skipped", len(classes),
             len(splits.train), len(splits.val), len(splits.test), len(splits.skipped))
    load_s = time.perf_counter() - started
    import keras

    from trainer import training
    from trainer.nets import model

    trained_from = time.perf_counter()
    keras.utils.set_random_seed(opts.seed)
    if prev is None:
        spec = model.TrainSpec(**{**spec.__dict__, "num_classes": len(classes)})
        net, base = model.build_model(spec, seed=opts.seed)
    else:
        net, base, spec = previous.rebuild(prev, classes, opts)
    history = training.train(
        net,
        base,
        spec,
        (splits.train.images, splits.train.labels, splits.val.images, splits.val.labels),
        epochs=opts.epochs,
        fine_tune_epochs=opts.fine_tune_epochs,
        fine_tune_layers=opts.fine_tune_layers or len(base.layers),
        batch=opts.batch_size,
        lr=opts.learning_rate,
        patience=opts.patience,
        seed=opts.seed,
        schedule=opts.lr_schedule,
    )
    train_s = time.perf_counter() - trained_from
    export.save_keras(net, out / f"{opts.name}.keras")
    float_scores = model.predict(net, splits.test.images) if len(splits.test) else None

    tflite = out / f"{opts.name}.tflite"
    calib = export.representative_images(splits.train.images, opts.calibration_samples, opts.seed)
    tflite.write_bytes(export.convert(net, calib, opts.io_type))
    check = export.inspect_int8(tflite, opts.io_type)
    export.embed_labels(tflite, classes)
    export.write_labels(out / "labels.txt", classes)
    q_scores = report.int8_scores(tflite, splits.test.paths)
    y_test, comparison, before = splits.test.labels, None, None
    if prev is not None:
        prev_scores = report.int8_scores(prev.tflite, splits.test.paths)
        comparison = compare.compare(classes, y_test, q_scores, prev.classes, prev_scores, prev.name)
        before = (prev.name, compare.previous_accuracy(classes, y_test, prev.classes, prev_scores))
    val = (splits.val.labels, report.int8_scores(tflite, splits.val.paths))
    reference = compare.drift_reference(classes, val, (y_test, q_scores))
    metrics = compare.metrics_doc(y_test, q_scores, before, reference)
    if metrics is not None:
        export.embed_metrics(tflite, metrics)
    log.info("wrote %s (%d bytes, %s in/out, input scale %g zero point %d, labels%s embedded) and %s", tflite,
             tflite.stat().st_size, check.input_dtype, check.input_scale, check.input_zero_point,
             " and metrics" if metrics else "", out / "labels.txt")
    extra = {
        "config": opts.as_config(),
        "resolved": {
            "backbone": spec.backbone,
            "weights": spec.weights,
            "epochs": opts.epochs,
            "fine_tune_epochs": opts.fine_tune_epochs,
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
    if opts.edgetpu:
        try:
            res = export.compile_edgetpu(tflite, classes, metrics=metrics)
        except EdgeError as e:
            raise Failure(str(e)) from None
        log.info("wrote %s: %d ops on the Edge TPU, %d on the CPU", res.path, res.tpu_ops, res.cpu_ops)
        if signing_key is not None:
            _sign([Path(res.path)], signing_key)
    if signing_key is not None:
        _sign([tflite, out / "labels.txt"], signing_key)
    return 0


def _signing_key(path: str | None) -> object | None:
    """`--sign-key`: the private key, checked as `edge-deploy sign` checks it (EdgeError naming the flag)."""
    if path is None:
        return None
    from deploy.signing import private_key

    try:
        return private_key(path)
    except EdgeError as e:
        raise EdgeError(f"--sign-key: {e}".replace("--sign-key: --key ", "--sign-key ")) from None


def _sign(files: list[Path], key: object) -> None:
    from deploy.signing import sign_model

    for f in files:
        log.info("signed %s: %s", f.name, sign_model(f, key))


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
