"""Runs INSIDE the emulated Raspberry Pi userland (aarch64 Python 3.11 under qemu), as one process.

It imports the daemon from the installed aarch64 wheels, runs `edge-daemon info` and `classify` in-process
(`edge.cli.main.main`) for each `--case MODEL IMAGE`, then `edge-daemon run --config CONFIG` until the host sends
SIGTERM (as systemd would). It checks nothing itself: every step prints one line, `EDGE-ARM64 {json}`, with
what happened and how long it took, and the host harness judges. An unexpected exception ends the process
with a traceback and a non-zero exit, which the harness reports.

Only the standard library and the project are imported here: this file must run on the emulated Python.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import platform
import sys
import time

PREFIX = "EDGE-ARM64 "


def emit(step: str, **fields: object) -> None:
    """One result line for the host harness."""
    print(PREFIX + json.dumps({"step": step, **fields}), flush=True)


def cli(argv: list[str]) -> tuple[int, str, float]:
    """`edge-daemon ARGV` in this process: (exit code, stdout, seconds)."""
    from edge.cli.main import main

    out = io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(out):
        code = main(argv)
    return code, out.getvalue(), time.perf_counter() - t0


def check_model(model: str, images: list[str]) -> None:
    """`info` once, then `classify` of all the model's images in one call (one JSON line per image)."""
    code, out, seconds = cli(["info", "--model", model, "--json"])
    info = json.loads(out) if code == 0 else {}
    emit(
        "info",
        model=model,
        code=code,
        seconds=round(seconds, 3),
        num_classes=info.get("num_classes"),
        device=info.get("device"),
        input=info.get("input"),
    )
    code, out, seconds = cli(["classify", "--model", model, "--json", "--top-k", "3", *images])
    results = {r["image"]: r for r in map(json.loads, out.splitlines())} if code == 0 else {}
    for image in images:
        result = results.get(image, {})
        emit(
            "classify",
            model=model,
            image=image,
            code=code,
            seconds=round(seconds / len(images), 3),
            predictions=result.get("predictions", []),
            inference_ms=result.get("inference_ms"),
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--case", nargs=2, action="append", default=[], metavar=("MODEL", "IMAGE"))
    p.add_argument("--config", help="run the daemon with this config until SIGTERM")
    args = p.parse_args(argv)

    t0 = time.perf_counter()
    import cv2
    import numpy
    from ai_edge_litert import interpreter

    import edge
    import edge.cli.main
    import edge.service.daemon

    emit(
        "import",
        seconds=round(time.perf_counter() - t0, 3),
        machine=platform.machine(),
        libc=list(platform.libc_ver()),
        python=platform.python_version(),
        modules={m.__name__: m.__file__ for m in (edge, numpy, cv2, interpreter)},
        versions={"numpy": numpy.__version__, "cv2": cv2.__version__, "edge": edge.__version__},
    )
    by_model: dict[str, list[str]] = {}
    for model, image in args.case:
        by_model.setdefault(model, []).append(image)
    for model, images in by_model.items():
        check_model(model, images)
    if args.config:
        emit("run-start")
        t0 = time.perf_counter()
        code = edge.cli.main.main(["run", "--config", args.config])
        emit("run-end", code=code, seconds=round(time.perf_counter() - t0, 3))
    return 0


if __name__ == "__main__":
    sys.exit(main())
