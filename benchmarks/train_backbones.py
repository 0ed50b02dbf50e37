"""Benchmark (not a test): which backbone `edge-train` should use, measured in one run on this machine.

    python -m benchmarks.train_backbones [--work .cache/benchmarks/backbones] [--quick]

For Debian's Fashion-MNIST and scikit-learn's digits it runs `edge-train train` three ways and prints
int8 test accuracy, the float-int8 gap and the wall time of each whole command:
  - `mobilenetv2`: MobileNetV2 0.35 from scratch (what the trainer did offline before EfficientNet-Lite0);
  - `lite0 head`: EfficientNet-Lite0, ImageNet weights, frozen base + new head (`--fine-tune-epochs 0`);
  - `lite0 fine-tuned`: the same, then fine-tuning the whole base, BatchNorm frozen (the default).
Data, stated in the output: digits as a user with a new camera has it, 100 images per class for training
(10 % of them for validation) and the 797 other digits as the test set, at the default 96x96; Fashion-MNIST
with 1,000 training images per class (the first 1,000 of each class in the official training set) and all
10,000 official test images, at 64x64. Then the int8 invoke time (LiteRT, XNNPACK, 1 and 2 threads) of the
models made, and of the 224x224 ImageNet classifiers (`edge-train pretrained efficientnet-lite0` beside
Coral's MobileNet v2 1.0/224 when ../shared/data has it).

Every row carries the CPU the rest of the machine used meanwhile ("other load", in cores): this machine is
shared, and a busy neighbour slows training as much as a slower backbone would.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.limit import run as invoke_limit
from benchmarks.procstat import machine_cpu

REPO = Path(__file__).resolve().parents[1]
VARIANTS = {
    "mobilenetv2 (scratch)": ["--backbone", "mobilenetv2", "--alpha", "0.35"],
    "lite0 head": ["--backbone", "efficientnet-lite0", "--fine-tune-epochs", "0"],
    "lite0 fine-tuned": ["--backbone", "efficientnet-lite0"],
}
DATASETS = {"digits": ["--size", "96"], "fashion-mnist": ["--size", "64"]}
FASHION_PER_CLASS = 1000


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmd: list[str]) -> dict:
    """Run a command; wall seconds, its CPU seconds and the other processes' CPU (cores) meanwhile."""
    busy0, _ = machine_cpu()
    cpu0, t0 = _children_cpu(), time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
    busy1, _ = machine_cpu()
    if proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} failed ({proc.returncode}): {proc.stderr[-1500:]}")
    return {"wall_s": wall, "cpu_s": cpu, "other_load": max(0.0, (busy1 - busy0 - cpu) / wall), "log": proc.stderr}


def prepare(work: Path, quick: bool) -> dict[str, Path]:
    """The two datasets in the folder layout (train/ and test/), exported once."""
    from sklearn.datasets import load_digits

    from trainer.data.offline import _pick, load_fashion_mnist, write_folder

    out = {}
    digits = work / ("digits-quick" if quick else "digits")
    if not (digits / "test").is_dir():
        d = load_digits()
        images = np.clip(np.rint(d.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
        names = tuple(str(i) for i in range(10))
        train = _pick(d.target, 30 if quick else 100, 0)
        test = np.setdiff1d(np.arange(len(d.target)), train)[: 200 if quick else None]
        write_folder(digits / "train", images[train], d.target[train], names, "train_")
        write_folder(digits / "test", images[test], d.target[test], names, "test_")
    out["digits"] = digits
    fashion = work / ("fashion-quick" if quick else "fashion-mnist")
    if not (fashion / "test").is_dir():
        from trainer.data.offline import FASHION_CLASSES

        data = load_fashion_mnist()
        x, y = data["train"]
        keep = np.concatenate([np.flatnonzero(y == c)[: 30 if quick else FASHION_PER_CLASS] for c in range(10)])
        write_folder(fashion / "train", x[np.sort(keep)], y[np.sort(keep)], FASHION_CLASSES, "train_")
        xt, yt = data["test"]
        n = 200 if quick else len(yt)
        write_folder(fashion / "test", xt[:n], yt[:n], FASHION_CLASSES, "test_")
    out["fashion-mnist"] = fashion
    return out


def invoke_ms(model: Path, seconds: float) -> tuple[list[float], float]:
    """Median int8 invoke milliseconds at 1 and 2 threads (benchmarks.limit, each in a fresh process), and the
    other processes' CPU (cores) meanwhile."""
    busy0, _ = machine_cpu()
    cpu0, t0 = _children_cpu(), time.perf_counter()
    ms = [invoke_limit(str(model), threads, seconds)["invoke_ms"]["p50"] for threads in (1, 2)]
    wall, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
    return ms, max(0.0, (machine_cpu()[0] - busy0 - cpu) / wall)


def train_all(work: Path, quick: bool, models: dict) -> list[dict]:
    """Every dataset x variant through `edge-train train`; prints the table row by row, returns the rows."""
    data = prepare(work, quick)
    rows = []
    print("| data | backbone | int8 test accuracy | float - int8 (points) | wall min | train min | epochs "
          "(head+fine-tune) | test images | other load (cores) |\n|---|---|---|---|---|---|---|---|---|", flush=True)
    for name, folder in data.items():
        for variant, options in VARIANTS.items():
            extra = []
            if quick:  # one epoch of each stage the variant has
                extra = ["--epochs", "1", *(["--fine-tune-epochs", "1"] if variant == "lite0 fine-tuned" else [])]
            out = work / "runs" / f"{name}-{variant.split()[0]}-{variant.split()[-1]}"
            cmd = [sys.executable, "-m", "trainer.cli", "train", str(folder), "--out", str(out),
                   *DATASETS[name], *options, *extra]
            t = timed(cmd)
            r = json.loads((out / "report.json").read_text())
            stages = r["history"]["stage"]
            row = (name, variant, f"{100 * r['int8_accuracy']:.2f} %",
                   f"{100 * (r['float_accuracy'] - r['int8_accuracy']):+.2f}", f"{t['wall_s'] / 60:.1f}",
                   f"{r['train_seconds'] / 60:.1f}", f"{stages.count(1)}+{stages.count(2)}", str(r["test_images"]),
                   f"{t['other_load']:.2f}")
            rows.append({"command": shlex.join(cmd[2:]), **dict(zip(("data", "backbone"), row[:2], strict=True)),
                         "report": r, "wall_s": t["wall_s"], "cpu_s": t["cpu_s"], "other_load": t["other_load"]})
            print("| " + " | ".join(row) + " |", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default=".cache/benchmarks/backbones", help="datasets and runs")
    p.add_argument("--quick", action="store_true", help="tiny subsets and 1 epoch: checks the script, not figures")
    p.add_argument("--seconds", type=float, default=5.0, help="invoke loop per model and thread count (5)")
    p.add_argument("--speed-only", action="store_true", help="only the invoke times, of the models a run made")
    args = p.parse_args(argv)
    work = Path(args.work)
    started, load0 = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), os.getloadavg()
    print(f"started {started}, load average {load0[0]:.1f} {load0[1]:.1f} {load0[2]:.1f}, {os.cpu_count()} cores",
          flush=True)
    rows: list[dict] = []
    models = {(name, variant): work / "runs" / f"{name}-{variant.split()[0]}-{variant.split()[-1]}" / "model.tflite"
              for name in DATASETS for variant in VARIANTS}
    if not args.speed_only:
        rows = train_all(work, args.quick, models)
    print("\n| int8 model | input | size KiB | invoke ms, 1 thread | 2 threads | other load (cores) |\n"
          "|---|---|---|---|---|---|", flush=True)
    lite224 = work / "efficientnet_lite0_224_int8.tflite"
    if not lite224.is_file():
        timed([sys.executable, "-m", "trainer.cli", "pretrained", "efficientnet-lite0", "--out", str(lite224)])
    coral = REPO.parent / "shared" / "data" / "coral" / "mobilenet_v2_1.0_224_quant.tflite"
    speed = [("MobileNetV2 0.35, digits", models[("digits", "mobilenetv2 (scratch)")], 96),
             ("EfficientNet-Lite0, digits", models[("digits", "lite0 fine-tuned")], 96),
             ("MobileNetV2 0.35, Fashion-MNIST", models[("fashion-mnist", "mobilenetv2 (scratch)")], 64),
             ("EfficientNet-Lite0, Fashion-MNIST", models[("fashion-mnist", "lite0 fine-tuned")], 64),
             ("EfficientNet-Lite0 ImageNet (edge-train pretrained)", lite224, 224)]
    if coral.is_file():
        speed.append(("MobileNet v2 1.0 ImageNet (Coral, published)", coral, 224))
    for label, model, size in speed:
        (one, two), other = invoke_ms(model, args.seconds)
        print(f"| {label} | {size}x{size} | {model.stat().st_size / 1024:.0f} | {one:.2f} | {two:.2f} | {other:.2f} |",
              flush=True)
        rows.append({"speed": label, "model": str(model), "invoke_ms": [one, two]})
    load1 = os.getloadavg()
    print(f"\nfinished {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average {load1[0]:.1f} "
          f"{load1[1]:.1f} {load1[2]:.1f}", flush=True)
    result = work / ("speed.json" if args.speed_only else "result.json")
    result.write_text(json.dumps(rows, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
