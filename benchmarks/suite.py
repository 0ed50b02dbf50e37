"""The benchmark suite: one command, a table on stdout and the figures as JSON.

    python -m benchmarks.suite [--smoke] [--soak SECONDS] [--json OUT.json]   (from the repository root)

For each model (small, large) and thread count (1, 2): the limit (bare invoke loop; `litert-benchmark` for
reference), the pipeline (`edge-daemon run` on a 640x480 clip as fast as it goes, publishing every classified
frame to a real mosquitto), latency seen by a separate subscriber process, footprint (RSS vs the runtime-only
floor, CPU per classified frame, start-up to the first classification received) and the naive tutorial loop on
the same inputs; then issue 2's classify-overhead check. `--soak SECONDS` instead runs the daemon alone for that
long and reports RSS growth per hour, dropped frames and MQTT reconnects. `--smoke` runs everything in seconds
(for CI: the figures are checked for shape, not speed).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import classify_overhead, inputs, limit, pipeline, report

log = logging.getLogger("benchmarks")


class Settings(argparse.Namespace):
    """Durations (seconds) of each measurement; `--smoke` shrinks them all."""

    limit_s = 5.0
    pipeline_s = 10.0
    warmup_s = 3.0
    clip_s = 20.0
    reference_runs = 50
    overhead_runs = 100


def _smoke(s: argparse.Namespace) -> None:
    s.limit_s, s.pipeline_s, s.warmup_s, s.clip_s, s.reference_runs, s.overhead_runs = 0.5, 1.5, 0.5, 2.0, 5, 10
    s.threads, s.roles = [1], ["small"]


def _broker() -> Any:
    sys.path.insert(0, str(inputs.REPO))
    from tests.mqtt_broker import Mosquitto, mosquitto_available

    if not mosquitto_available():
        raise SystemExit("benchmarks: error: mosquitto not installed (apt-get install mosquitto)")
    return Mosquitto()


def _run_publisher(kind: str, m: dict[str, str], threads: int, clip: str, broker: Any, s: Any) -> dict[str, Any]:
    device_id = f"{kind}-{m['role']}-{threads}-{os.getpid()}"
    if kind == "daemon":
        cfg = Path(tempfile.mkdtemp(prefix="bench-cfg-")) / "config.toml"
        cfg.write_text(pipeline.daemon_config(m["path"], clip, threads, broker.port, "bench", device_id))
        argv = pipeline.daemon_argv(str(cfg))
    else:
        argv = pipeline.naive_argv(m["path"], clip, threads, broker.port, "bench", device_id)
    log.info("%s: %s, %d thread(s), %.0f s", kind, m["role"], threads, s.pipeline_s)
    try:
        return pipeline.measure(
            argv, broker.port, f"bench/{device_id}", seconds=s.pipeline_s, warmup=s.warmup_s, helpers=(broker.proc.pid,)
        )
    except RuntimeError as e:
        log.error("%s on %s failed: %s", kind, m["role"], e)
        return {"error": str(e)}


def _clip(s: Any) -> dict[str, Any]:
    return inputs.make_clip(inputs.CACHE / f"clip_640x480_{int(s.clip_s)}s_{s.clip_fps}fps.avi", s.clip_s, s.clip_fps)


def run_suite(s: Any) -> dict[str, Any]:
    """Every measurement for the selected models and thread counts; the result dict the report reads."""
    started = time.time()
    models = [m for m in inputs.models(s.small, s.large) if m["role"] in s.roles]
    if not models:
        raise SystemExit(f"benchmarks: error: no model found (looked in {inputs.DATA}); give --small/--large")
    clip_info = _clip(s)
    decode = inputs.decode_ms(Path(clip_info["path"]))
    result: dict[str, Any] = {
        "mode": "smoke" if s.smoke else "full",
        "machine": inputs.machine(),
        "settings": {k: getattr(s, k) for k in ("limit_s", "pipeline_s", "warmup_s", "clip_s", "clip_fps", "threads")},
        "clip": clip_info,
        "decode_ms": decode,
        "models": models,
        "runs": [],
    }
    with _broker() as broker:
        for m in models:
            for threads in s.threads:
                log.info("limit: %s, %d thread(s)", m["role"], threads)
                run: dict[str, Any] = {"role": m["role"], "model": m["path"], "threads": threads}
                run["limit"] = limit.run(m["path"], threads, s.limit_s)
                run["reference"] = None if s.no_reference else limit.reference(m["path"], threads, s.reference_runs)
                run["pipeline"] = _run_publisher("daemon", m, threads, clip_info["path"], broker, s)
                run["naive"] = None if s.no_naive else _run_publisher("naive", m, threads, clip_info["path"], broker, s)
                run["derived"] = report.derive(run, decode)
                run["targets"] = report.targets(run)
                result["runs"].append(run)
    large = next((m for m in inputs.models(s.small, s.large) if m["role"] == "large"), None)
    if large and not s.no_overhead:
        image = classify_overhead.load_image(None)
        result["classify_overhead"] = [
            classify_overhead.measure(large["path"], image, t, s.overhead_runs) for t in s.threads
        ]
    result["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["wall_s"] = time.time() - started
    return result


def run_soak(s: Any) -> dict[str, Any]:
    """The daemon alone on one model for `--soak` seconds: RSS growth, dropped frames, MQTT reconnects."""
    m = next((m for m in inputs.models(s.small, s.large) if m["role"] == s.soak_model), None)
    if m is None:
        raise SystemExit(f"benchmarks: error: no {s.soak_model} model found; give --small/--large")
    clip_info = _clip(s)
    s.pipeline_s, s.warmup_s = s.soak, min(30.0, s.soak / 10)
    threads = s.threads[-1]
    with _broker() as broker:
        soak = _run_publisher("daemon", m, threads, clip_info["path"], broker, s)
    out = {"role": m["role"], "model": m["path"], "threads": threads, "seconds": s.soak, "pipeline": soak}
    if "error" not in soak:
        out["targets"] = report.soak_targets(soak)
    return {"mode": "soak", "machine": inputs.machine(), "clip": clip_info, "runs": [], "soak": out}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.suite", description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="tiny durations, small model, 1 thread (CI)")
    p.add_argument("--soak", type=float, metavar="SECONDS", help="run only the endurance soak for this long")
    p.add_argument("--soak-model", choices=["small", "large"], default="small")
    p.add_argument("--json", metavar="OUT", help="write the figures here (default .cache/benchmarks/result.json)")
    p.add_argument("--small", help="the small model (default: MobileNetV2 0.35/96 from edge-train, cached)")
    p.add_argument("--large", help=f"the large model (default {inputs.LARGE})")
    p.add_argument("--models", dest="roles", nargs="+", choices=["small", "large"], default=["small", "large"])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--seconds", dest="pipeline_s", type=float, help="steady window per pipeline run")
    p.add_argument(
        "--clip-fps",
        type=int,
        default=inputs.UNPACED_FPS,
        help=f"frame rate in the clip's header, which the daemon paces files at (default {inputs.UNPACED_FPS}: "
        "as fast as it goes; 30: like a camera)",
    )
    p.add_argument("--no-naive", action="store_true", help="skip the naive baseline")
    p.add_argument("--no-reference", action="store_true", help="skip litert-benchmark")
    p.add_argument("--no-overhead", action="store_true", help="skip issue 2's classify-overhead check")
    s = p.parse_args(argv, namespace=Settings())
    if s.pipeline_s is None:
        del s.pipeline_s  # fall back to the class default
    if s.smoke:
        _smoke(s)
    return s


def _clean(obj: Any) -> Any:
    """NaN/inf become null so the JSON is standard."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    return obj


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr)
    s = parse_args(argv)
    result = run_soak(s) if s.soak else run_suite(s)
    for m in result.get("models", []):
        print(f"{m['role']}: {m['path']} ({m['note']})")
    mach = result["machine"]
    print(f"machine: {mach['cpu']}, {mach['cores']} cores, {mach['memory_mb']} MB, load {mach['loadavg_at_start']}")
    print(report.tables(result))
    out = Path(s.json) if s.json else inputs.CACHE / "result.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(_clean(result), indent=1) + "\n")
    print(f"figures written to {out}")
    failed = [r["role"] for r in result["runs"] if "error" in (r.get("pipeline") or {})]
    if result.get("soak") and "error" in result["soak"]["pipeline"]:
        failed.append("soak")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
