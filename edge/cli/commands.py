"""The device's own subcommands: `classify` and `info` (any model, image files), `run` and `check-config`.

- `edge-daemon classify --model M IMAGE...`: classify images; a table, or one JSON object per image with --json.
- `edge-daemon info --model M`: describe a model (input, output, quantization, labels, device).
- `edge-daemon run --config FILE`: the service (systemd `Type=notify`).
- `edge-daemon check-config FILE`: validate (everything `run` would refuse, the model included), print the
  effective config with secrets redacted; exit 0 or 2.
`edge.cli.main` lists them in its command table; `health` and `demo` live in `edge.cli.health` and `edge.cli.demo`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from edge.cli.shape import bounded_int, finite_float
from edge.config.load import DEFAULT_PATH, Config, load_config
from edge.config.schema import MAX_THREADS
from edge.errors import EdgeError, InferenceFailed


def default_threads() -> int:
    """All cores up to four: the interpreter's own default of 1 leaves a Pi's cores idle."""
    return max(1, min(4, os.cpu_count() or 1))


def add_model_args(p: argparse.ArgumentParser) -> None:
    """The options every model-loading subcommand shares."""
    p.add_argument("--model", "-m", required=True, help="the .tflite model")
    p.add_argument("--labels", "-l", help="label file (default: labels embedded in the model)")
    p.add_argument("--device", "-d", default="auto", help="auto | cpu | edgetpu[:usb|:pci][:N] (default: auto)")
    p.add_argument("--threads", "-t", type=bounded_int(1, MAX_THREADS), default=default_threads(),
                   help=f"interpreter threads, 1 to {MAX_THREADS} (default: the cores, up to 4)")  # fmt: skip
    number = finite_float(-1e6, 1e6)
    p.add_argument("--mean", type=number, help="normalise pixels as (p - mean) / std (give with --std)")
    p.add_argument("--std", type=number, help="see --mean (default: raw pixels; p / 255 for float models)")


def _load(args: argparse.Namespace):  # -> edge.inference.model.Classifier
    from edge.inference.model import load_model

    return load_model(
        args.model, labels=args.labels, device=args.device, threads=args.threads, mean=args.mean, std=args.std
    )


def add_classify_args(p: argparse.ArgumentParser) -> None:
    add_model_args(p)
    p.add_argument("--top-k", "-k", type=bounded_int(1, 1000), default=5, help="classes per image (default 5)")
    p.add_argument("--threshold", type=finite_float(0.0, 1.0), default=0.0, help="minimum score to report (0..1)")
    p.add_argument("--json", action="store_true", help="one JSON object per image per line")
    p.add_argument("images", nargs="+", metavar="IMAGE")


def classify(args: argparse.Namespace) -> int:
    """Classify image files; exit 1 when some images failed (each said in one line), the others printed."""
    from edge.frames.images import read_image

    failed = 0
    with _load(args) as clf:
        for path in args.images:
            try:
                result = clf.classify(read_image(path), args.top_k, args.threshold)
            except InferenceFailed:
                raise  # the interpreter, not this image: stop (exit 1)
            except EdgeError as e:
                print(f"edge-daemon: error: {e}", file=sys.stderr)
                failed += 1
                continue
            preds = [{"index": p.index, "label": p.label, "score": round(p.score, 6)} for p in result.predictions]
            if args.json:
                print(json.dumps({"image": path, "predictions": preds, "inference_ms": round(result.inference_ms, 3)}))
            else:
                print(f"{path}  ({result.inference_ms:.1f} ms)")
                for p in result.predictions:
                    print(f"  {p.index:>5}  {p.score:6.3f}  {p.label}")
                if not result.predictions:
                    print(f"  (nothing scored {args.threshold} or more)")
            sys.stdout.flush()
    return 1 if failed else 0


def add_info_args(p: argparse.ArgumentParser) -> None:
    add_model_args(p)
    p.add_argument("--json", action="store_true", help="as one JSON object")


def info(args: argparse.Namespace) -> int:
    """Describe a model: input, output, quantization, classes, labels, device, drift reference."""
    from edge.inference.labels import read_reference

    with _load(args) as clf:
        spec = clf.spec
        d = spec.to_dict()
        ref = read_reference(spec.path, spec.labels)  # a malformed one: one line, exit 2
        d["reference"] = None if ref is None else {"images": ref.images, "bins": ref.bins, "coverage": ref.coverage,
                                                   "thresholds": [float(t) for t in ref.threshold]}  # fmt: skip
        if args.json:
            d["labels"] = list(spec.labels)
            print(json.dumps(d))
            return 0
        i, o = d["input"], d["output"]
        rows = [
            ("model", spec.path),
            ("device", f"{spec.device} ({spec.threads} thread(s))"),
            ("compiled for Edge TPU", "yes" if spec.edgetpu else "no"),
            ("input", f"{i['shape']} {spec.layout} {i['dtype']}"),
            ("input quantization", f"scale {spec.input.scale:.6g}, zero point {spec.input.zero_point}"),
            ("output", f"{spec.num_classes} classes, {o['dtype']}"),
            ("output quantization", f"scale {spec.output.scale:.6g}, zero point {spec.output.zero_point}"),
            ("output is", "probabilities" if spec.output.probabilities else "logits (softmax applied)"),
            ("stateful", "yes (reset before each image)" if spec.stateful else "no"),
            ("labels", f"{spec.labels_source}: {', '.join(spec.labels[:4])}{', ...' if spec.num_classes > 4 else ''}"),
            ("drift reference", "none (drift `unavailable` unless [drift] reference = \"off\")" if ref is None else
             f"{ref.images} held-out images, {ref.bins} score bins, calibrated thresholds "
             f"{ref.threshold.min():.2f}..{ref.threshold.max():.2f} ({100 * ref.coverage:g} % coverage)"),
        ]
        width = max(len(k) for k, _ in rows)
        for k, v in rows:
            print(f"{k:<{width}}  {v}")
    return 0


def add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", default=str(DEFAULT_PATH), help=f"the TOML config file (default {DEFAULT_PATH})")


def run(args: argparse.Namespace) -> int:
    """Run the daemon until SIGTERM/SIGINT (exit 0), a start-up error (exit 2) or a dead thread (exit 1)."""
    from edge.service.daemon import Service

    return Service(load_config(args.config)).run()


def add_check_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", nargs="?", help=f"the TOML config file (default {DEFAULT_PATH})")
    p.add_argument("--config", "-c", dest="config_opt", help="the same, as an option")
    p.add_argument("--quiet", "-q", action="store_true", help="print nothing when the config is valid")
    p.add_argument("--defaults", action="store_true", help="print every key with its default and description, exit")


def checked_config(path: str) -> Config:
    """What `check-config` checks: the file against the schema and its rules, then the model it names is loaded
    and test-run on the configured device, exactly as `run` would (so a model `run` refuses is refused here).

    Raises:
        EdgeError: one line naming the file and the key, or the model and the problem.
    """
    from edge.service.models import model_keys, open_model

    cfg = load_config(path)
    for key in model_keys(cfg):  # the main model and each region's own
        open_model(cfg, key).close()
    return cfg


def check_config(args: argparse.Namespace) -> int:
    """Validate a config file and its model; print the effective configuration with secrets redacted."""
    from edge.config.docs import example_toml, to_toml

    if args.defaults:
        sys.stdout.write(example_toml())
        return 0
    path = args.file or args.config_opt or str(DEFAULT_PATH)
    cfg = checked_config(path)
    if not args.quiet:
        sys.stdout.write(to_toml(cfg))
        print(f"edge-daemon: {path}: configuration is valid", file=sys.stderr)
    return 0
