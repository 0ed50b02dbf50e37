"""`edge-daemon`: the device's command line.

Subcommands: `classify` (images through a model), `info` (describe a model). Expected failures print one
line, `edge-daemon: error: ...`, and exit non-zero; never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence

from edge import __version__
from edge.errors import EdgeError

log = logging.getLogger("edge")

EXIT_ERROR = 2  # bad input or configuration
EXIT_PARTIAL = 1  # some images failed, the others were classified


def default_threads() -> int:
    """All cores up to four: the interpreter's own default of 1 leaves a Pi's cores idle."""
    return max(1, min(4, os.cpu_count() or 1))


def add_model_args(p: argparse.ArgumentParser) -> None:
    """The options every model-loading subcommand shares."""
    p.add_argument("--model", "-m", required=True, help="the .tflite model")
    p.add_argument("--labels", "-l", help="label file (default: labels embedded in the model)")
    p.add_argument("--device", "-d", default="auto", help="auto | cpu | edgetpu[:usb|:pci][:N] (default: auto)")
    p.add_argument("--threads", "-t", type=int, default=default_threads(), help="interpreter threads")
    p.add_argument("--mean", type=float, help="normalise pixels as (p - mean) / std (give with --std)")
    p.add_argument("--std", type=float, help="see --mean (default: raw pixels; p / 255 for float models)")


def load_from_args(args: argparse.Namespace):  # -> edge.model.Classifier
    from edge.model import load_model

    return load_model(
        args.model, labels=args.labels, device=args.device, threads=args.threads, mean=args.mean, std=args.std
    )


def cmd_classify(args: argparse.Namespace) -> int:
    """Classify image files; one JSON object per image per line with --json, else a table."""
    from edge.images import read_image

    if args.top_k < 1:
        raise EdgeError(f"--top-k: must be at least 1, got {args.top_k}")
    if not 0.0 <= args.threshold <= 1.0:
        raise EdgeError(f"--threshold: must be between 0 and 1, got {args.threshold}")
    failed = 0
    with load_from_args(args) as clf:
        for path in args.images:
            try:
                result = clf.classify(read_image(path), args.top_k, args.threshold)
            except EdgeError as e:
                print(f"edge-daemon: error: {e}", file=sys.stderr)
                failed += 1
                if "inference failed" in str(e):
                    return EXIT_ERROR
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
    return EXIT_PARTIAL if failed else 0


def cmd_info(args: argparse.Namespace) -> int:
    """Describe a model: input, output, quantization, classes, labels, device."""
    with load_from_args(args) as clf:
        spec = clf.spec
        if args.json:
            d = spec.to_dict()
            d["labels"] = list(spec.labels)
            print(json.dumps(d))
            return 0
        i, o = spec.to_dict()["input"], spec.to_dict()["output"]
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
        ]
        width = max(len(k) for k, _ in rows)
        for k, v in rows:
            print(f"{k:<{width}}  {v}")
    return 0


def build_parser() -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    parser = argparse.ArgumentParser(prog="edge-daemon", description="Classify camera frames and publish to MQTT.")
    parser.add_argument("--version", action="version", version=f"edge-daemon {__version__}")
    parser.add_argument("--log-level", default=os.environ.get("EDGE_LOG_LEVEL", "INFO"), help="DEBUG, INFO, ...")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("classify", help="classify image files")
    add_model_args(p)
    p.add_argument("--top-k", "-k", type=int, default=5, help="how many classes per image (default 5)")
    p.add_argument("--threshold", type=float, default=0.0, help="minimum score to report (0..1)")
    p.add_argument("--json", action="store_true", help="one JSON object per image per line")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser("info", help="describe a model")
    add_model_args(p)
    p.add_argument("--json", action="store_true", help="as one JSON object")
    p.set_defaults(func=cmd_info)
    return parser, sub


# Further subcommands register here: (name, help, add_arguments(parser), run(args) -> exit code).
EXTRA_COMMANDS: list[tuple[str, str, Callable[[argparse.ArgumentParser], None], Callable[..., int]]] = []
# Modules that append to EXTRA_COMMANDS when imported.
COMMAND_MODULES = ("edge.commands", "edge.health")


def _register_commands() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(name)


def main(argv: Sequence[str] | None = None) -> int:
    _register_commands()
    parser, sub = build_parser()
    for name, help_, add_args, run in EXTRA_COMMANDS:
        p = sub.add_parser(name, help=help_)
        add_args(p)
        p.set_defaults(func=run)
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return int(args.func(args) or 0)
    except EdgeError as e:
        print(f"edge-daemon: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    # Run as `python -m edge.cli`: delegate to the imported module, whose EXTRA_COMMANDS the subcommand
    # modules fill (this file, as __main__, is a second copy with its own empty list).
    from edge.cli import main as _main

    sys.exit(_main())
