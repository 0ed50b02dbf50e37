"""`edge-train train DATA --from RUN`: continue from an earlier run's Keras model instead of starting afresh.

The earlier run's folder gives the float model (`model.keras`), the int8 model it shipped (`model.tflite`, with
its labels: the previous model is measured on that, as the device runs it) and its options (`report.json`: the
seed and split fractions are inherited, so the new held-out images are ones the previous model never trained
on; see `trainer.data.dataset.split_indices`). The input size and backbone stay the previous model's. The base keeps
its weights; the head is rebuilt for the new dataset's classes, each class the previous model knew keeping its
previous weights, so with the same classes the head is the previous one. Training is the pretrained recipe,
short: the head on the frozen base, then the whole base fine-tuned at a tenth of the learning rate.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.errors import EdgeError
from trainer.options import TrainOptions

log = logging.getLogger(__name__)

FROM_EPOCHS, FROM_FINE_TUNE_EPOCHS = 10, 5  # head epochs on frozen features (seconds), then fine-tuning
DEFAULT_SIZE, DEFAULT_SEED, DEFAULT_FRACTION = 96, 0, 0.1
BACKBONE_OF_NAME = {"mobilenetv2": "mobilenetv2", "efficientnet_lite0": "efficientnet-lite0"}  # model.assemble


@dataclass(frozen=True)
class PreviousRun:
    """What `--from RUN` continues from."""

    run: Path
    keras: Path
    tflite: Path
    classes: tuple[str, ...]
    size: int
    config: dict[str, Any]  # the previous run's options (report.json's `config`), {} when it has none
    backbone: str | None  # report.json's resolved backbone, else read from the Keras model's name on loading

    @property
    def name(self) -> str:
        """How reports and `metrics.json` name the previous model: `<run folder>/<file>`."""
        return f"{self.run.name}/{self.tflite.name}"


def _report(run: Path) -> dict[str, Any]:
    path = run / "report.json"
    if not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise EdgeError(f"{path}: cannot read it ({e}); restore the run's report.json or delete it") from None
    if not isinstance(doc, dict):
        raise EdgeError(f"{path}: not a JSON object; restore the run's report.json or delete it")
    return doc


def load_previous(run_dir: str | Path) -> PreviousRun:
    """The earlier run in `run_dir`, checked: both models present, labels readable, a square input.

    Raises:
        EdgeError: naming the missing or unreadable file and what to give instead.
    """
    from edge.inference.model import load_model

    run = Path(run_dir)
    if not run.is_dir():
        raise EdgeError(f"--from {run}: no such folder; give the --out folder of an earlier `edge-train train`")
    report = _report(run)
    stem = Path(str(report.get("model", "model.tflite"))).stem
    keras_file, tflite = run / f"{stem}.keras", run / f"{stem}.tflite"
    for path, what in ((keras_file, "the float Keras model to continue from"),
                       (tflite, "the int8 model, measured on the same held-out images as the new one")):  # fmt: skip
        if not path.is_file():
            raise EdgeError(f"--from {run}: no {path.name} ({what}); give the --out folder of an `edge-train train`")
    with load_model(tflite, device="cpu") as clf:
        spec = clf.spec
    if spec.input.height != spec.input.width:
        raise EdgeError(f"{tflite}: input {spec.input.width}x{spec.input.height} is not square; not from edge-train")
    config = report.get("config") if isinstance(report.get("config"), dict) else {}
    resolved = report.get("resolved") if isinstance(report.get("resolved"), dict) else {}
    backbone = resolved.get("backbone") if resolved.get("backbone") in BACKBONE_OF_NAME.values() else None
    return PreviousRun(run, keras_file, tflite, tuple(spec.labels), int(spec.input.height), config, backbone)


def _inherited(prev: PreviousRun, name: str, default: float) -> float:
    value = prev.config.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise EdgeError(f"{prev.run / 'report.json'}: config.{name} is {value!r:.40}; give --{name.replace('_', '-')}")
    return value


def resolve_options(opts: TrainOptions, prev: PreviousRun | None) -> TrainOptions:
    """The options with the defaults that depend on `--from` settled: size, seed, split fractions, epochs.

    Raises:
        EdgeError: an option that contradicts the previous model (another input size or backbone, --weights).
    """
    def given(name: str, default: float) -> float:
        value = getattr(opts, name)
        return default if value is None else value

    if prev is None:
        return opts.settled(size=given("size", DEFAULT_SIZE), seed=given("seed", DEFAULT_SEED),
                            val_fraction=given("val_fraction", DEFAULT_FRACTION),
                            test_fraction=given("test_fraction", DEFAULT_FRACTION))  # fmt: skip
    if opts.out.resolve() == prev.run.resolve():
        raise EdgeError(f"--out {opts.out}: the same folder as --from; give a new folder for the new run")
    if opts.size is not None and opts.size != prev.size:
        raise EdgeError(f"--size {opts.size}: {prev.run}'s model takes {prev.size}x{prev.size}; leave --size out "
                        "with --from (a new input size needs a new model: train without --from)")
    if opts.weights is not None:
        raise EdgeError("--weights: not with --from; the weights are the previous model's")
    if prev.backbone is not None and opts.backbone not in ("auto", prev.backbone):
        raise EdgeError(f"--backbone {opts.backbone}: {prev.run}'s model is {prev.backbone}; with --from leave it out")
    inherited = {name: float(_inherited(prev, name, DEFAULT_FRACTION)) if getattr(opts, name) is None
                 else getattr(opts, name) for name in ("val_fraction", "test_fraction")}  # fmt: skip
    seed = int(_inherited(prev, "seed", DEFAULT_SEED)) if opts.seed is None else opts.seed
    return opts.settled(size=prev.size, seed=seed, epochs=opts.epochs or FROM_EPOCHS,
                        fine_tune_epochs=given("fine_tune_epochs", FROM_FINE_TUNE_EPOCHS), **inherited)


def _base_of(net: Any, path: Path) -> Any:
    import keras

    bases = [layer for layer in net.layers if isinstance(layer, keras.Model)]
    names = {layer.name for layer in net.layers}
    if len(bases) != 1 or not {"normalise", "scores"} <= names:
        raise EdgeError(f"{path}: not a model made by edge-train (no base, normalise and scores layers)")
    return bases[0]


def rebuild(prev: PreviousRun, classes: tuple[str, ...], opts: TrainOptions) -> tuple[Any, Any, Any]:
    """(model, base, TrainSpec) continuing the previous model on `classes`: its base, a head for these classes.

    Raises:
        EdgeError: the Keras model does not load, is not an edge-train model, or disagrees with the .tflite.
    """
    import keras

    from trainer.nets.model import NORMALISATION, TrainSpec, assemble

    try:
        old = keras.saving.load_model(prev.keras, compile=False)
    except Exception as e:  # Keras raises many types for a damaged or foreign file
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise EdgeError(f"{prev.keras}: cannot load it ({first}); give a run made by edge-train train") from None
    base = _base_of(old, prev.keras)
    backbone = prev.backbone or next((b for n, b in BACKBONE_OF_NAME.items() if old.name.startswith(n)), None)
    if backbone is None:
        raise EdgeError(f"{prev.keras}: cannot tell its backbone (model {old.name!r}, no report.json beside it)")
    if opts.backbone not in ("auto", backbone):
        raise EdgeError(f"--backbone {opts.backbone}: {prev.run}'s model is {backbone}; with --from leave it out")
    head = old.get_layer("scores")
    kernel, bias = head.get_weights()
    if tuple(old.input_shape[1:3]) != (prev.size, prev.size) or kernel.shape[1] != len(prev.classes):
        raise EdgeError(f"{prev.keras} and {prev.tflite.name} disagree (input or classes); give an unchanged run")
    norm = old.get_layer("normalise").get_config()
    if not all(math.isclose(a, b, abs_tol=1e-6) for a, b in zip((norm["scale"], norm["offset"]),
                                                                 NORMALISATION[backbone], strict=True)):  # fmt: skip
        raise EdgeError(f"{prev.keras}: its input normalisation is not {backbone}'s; not an edge-train model")
    spec = TrainSpec(num_classes=len(classes), size=prev.size, backbone=backbone, alpha=opts.alpha, weights="previous",
                     dropout=opts.dropout, **opts.augmentation)
    net = assemble(spec, base, seed=opts.seed)
    new_kernel, new_bias = net.get_layer("scores").get_weights()
    kept = [c for c in classes if c in prev.classes]
    for i, name in enumerate(classes):
        if name in prev.classes:
            j = prev.classes.index(name)
            new_kernel[:, i], new_bias[i] = kernel[:, j], bias[j]
    net.get_layer("scores").set_weights([new_kernel, new_bias])
    if tuple(classes) == prev.classes:
        log.info("continuing from %s (%s, %dx%d, the same %d classes)", prev.name, backbone, prev.size, prev.size,
                 len(classes))
    else:
        added = [c for c in classes if c not in prev.classes]
        removed = [c for c in prev.classes if c not in classes]
        log.info("continuing from %s (%s, %dx%d): the classes changed (added: %s; removed: %s), so the base is kept "
                 "and the head is rebuilt for %d classes (%d keep their previous weights)", prev.name, backbone,
                 prev.size, prev.size, ", ".join(added) or "none", ", ".join(removed) or "none", len(classes),
                 len(kept))  # fmt: skip
    return net, base, spec
