"""The physical limit: a bare `Interpreter.invoke()` loop on a preloaded tensor, in its own process.

Run as `python -m benchmarks.limit --model M --threads N --seconds S`; prints one JSON object. The same
process gives the memory floor: RSS after importing the runtime, loading the model and a few invokes
(nothing else of ours is imported). `reference()` runs the runtime's own `litert-benchmark` (shipped by the
ai-edge-litert wheel; it uses the CompiledModel API) for comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

WARMUP = 5


def measure(model: str, threads: int, seconds: float, min_runs: int = 10) -> dict[str, Any]:
    """Invoke the model in a loop for `seconds` (at least `min_runs` times) and describe the result.

    Returns:
        invoke_ms (p50/p95/mean), fps, cpu_ms_per_frame, floor_rss_kb (after load + warm-up), rss_kb_end, runs.
    """
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    from benchmarks.procstat import cpu_seconds, percentile, rss_kb

    it = Interpreter(model_path=model, num_threads=threads)
    it.allocate_tensors()
    detail = it.get_input_details()[0]
    rng = np.random.default_rng(0)
    info = np.iinfo(detail["dtype"]) if detail["dtype"] != np.float32 else None
    if info is None:
        tensor = rng.random(detail["shape"], dtype=np.float32)
    else:
        tensor = rng.integers(info.min, info.max, size=detail["shape"], endpoint=True).astype(detail["dtype"])
    it.set_tensor(detail["index"], tensor)
    for _ in range(WARMUP):
        it.invoke()
    floor = rss_kb()
    times: list[float] = []
    cpu0, t_start = cpu_seconds(), time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - t_start < seconds:
        t0 = time.perf_counter()
        it.invoke()
        times.append(time.perf_counter() - t0)
    wall = time.perf_counter() - t_start
    cpu = cpu_seconds() - cpu0
    ms = [t * 1000.0 for t in times]
    return {
        "runs": len(times),
        "invoke_ms": {"p50": percentile(ms, 50), "p95": percentile(ms, 95), "mean": sum(ms) / len(ms)},
        "fps": len(times) / wall,
        "cpu_ms_per_frame": cpu * 1000.0 / len(times),
        "floor_rss_kb": floor,
        "rss_kb_end": rss_kb(),
    }


def run(model: str, threads: int, seconds: float) -> dict[str, Any]:
    """`measure()` in a fresh process (so nothing else we import counts towards the floor)."""
    cmd = [sys.executable, "-m", "benchmarks.limit", "--model", model, "--threads", str(threads)]
    out = subprocess.run(
        [*cmd, "--seconds", str(seconds)],
        capture_output=True,
        text=True,
        timeout=seconds * 4 + 60,
        cwd=Path(__file__).resolve().parents[1],
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"benchmarks.limit failed on {model}: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def reference(model: str, threads: int, runs: int) -> dict[str, Any] | None:
    """The runtime's own `litert-benchmark` figures (avg/median ms), or None when it is not installed."""
    exe = shutil.which("litert-benchmark")
    if exe is None:
        return None
    with tempfile.TemporaryDirectory() as d:
        out_json = os.path.join(d, "result.json")
        cmd = [exe, f"--model={model}", f"--num_threads={threads}", f"--num_runs={runs}", "--warmup_runs=3"]
        proc = subprocess.run(
            [*cmd, f"--result_json={out_json}"], capture_output=True, text=True, timeout=300, check=False
        )
        if proc.returncode != 0 or not os.path.exists(out_json):
            return {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1]}
        with open(out_json) as f:
            lat = json.load(f)["latency"]
    return {"tool": "litert-benchmark", "avg_ms": lat["avg_ms"], "median_ms": lat["median_ms"], "runs": runs}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seconds", type=float, default=5.0)
    args = p.parse_args()
    print(json.dumps(measure(args.model, args.threads, args.seconds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
