"""The benchmark suite: one command, a table on stdout and the figures as JSON.

    python -m benchmarks.suite [--smoke] [--soak SECONDS] [--json OUT.json]   (from the repository root)

For each model (small, large) and thread count T (1, 2): the limit (bare invoke loop; `litert-benchmark` for
reference); the pipeline (`edge-daemon run` on a 640x480 MJPEG clip as fast as it classifies, publishing every
classified frame to a real mosquitto) with one T-thread interpreter and, for T > 1, with T one-thread workers;
the daemon of `--before REV` on the same configs; the naive tutorial loop; and camera-rate runs (640x480 and
1280x720 MJPEG played at 30 fps, `max_rate = 5`) whose CPU is compared with the ideal (decoding only the
classified frames at the reduced size, plus their invoke). Latency is seen by a separate subscriber process;
footprint is RSS and anonymous memory, CPU per classified frame, the main thread's CPU beyond invoke, start-up.
Every figure is printed with the CPU other processes used meanwhile. Then issue 2's classify-overhead check.
`--soak SECONDS` instead runs the daemon alone for that long and reports RSS growth per hour, dropped frames
and MQTT reconnects. `--smoke` runs everything in seconds (for CI: figures are checked for shape, not speed).
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

from benchmarks import breakdown, classify_overhead, inputs, limit, pipeline, report, tables

log = logging.getLogger("benchmarks")


class Settings(argparse.Namespace):
    """Durations (seconds) of each measurement; `--smoke` shrinks them all."""

    limit_s = 5.0
    pipeline_s = 10.0
    warmup_s = 3.0
    clip_s = 20.0
    reference_runs = 50
    overhead_runs = 100
    breakdown_frames = 300
    before_dir = None


def _smoke(s: argparse.Namespace) -> None:
    s.limit_s, s.pipeline_s, s.warmup_s, s.clip_s, s.reference_runs, s.overhead_runs = 0.5, 1.5, 0.5, 2.0, 5, 10
    s.breakdown_frames = 20
    s.threads, s.roles, s.camera_sizes = [2], ["small"], ["640x480"]  # 2 threads: the 2-worker run too


def _broker() -> Any:
    sys.path.insert(0, str(inputs.REPO))
    from tests.support.mosquitto import Mosquitto, mosquitto_available

    if not mosquitto_available():
        raise SystemExit("benchmarks: error: mosquitto not installed (apt-get install mosquitto)")
    return Mosquitto()


def _run_publisher(
    kind: str, m: dict[str, str], threads: int, clip: dict[str, Any], broker: Any, s: Any, camera_fps: float = 0.0,
    *, workers: int = 1, max_rate: float = 0.0,
) -> dict[str, Any]:
    """`kind` (daemon | before | naive) on the clip; `camera_fps` > 0 delivers frames at a camera's rate.

    `before` is the daemon of the `--before` revision (same config, run from its own export)."""
    device_id = f"{kind}-{m['role']}-{threads}x{workers}-{int(camera_fps)}-{clip['size']}-{os.getpid()}"
    cwd = s.before_dir if kind == "before" else inputs.REPO
    if kind in ("daemon", "before"):  # camera runs play the clip at its header's rate; the others as fast as it goes
        cfg = Path(tempfile.mkdtemp(prefix="bench-cfg-")) / "config.toml"
        text = pipeline.daemon_config(m["path"], clip["path"], threads, broker.port, "bench", device_id,
                                      realtime=bool(camera_fps), workers=workers, max_rate=max_rate)  # fmt: skip
        cfg.write_text(text)
        argv = pipeline.daemon_argv(str(cfg))
    else:
        argv = pipeline.naive_argv(m["path"], clip["path"], threads, broker.port, "bench", device_id, camera_fps,
                                   max_rate)  # fmt: skip
    rate = f"{clip['size']} at {camera_fps:g} fps, max_rate {max_rate:g}" if camera_fps else "as fast as it goes"
    log.info("%s: %s, %d thread(s) x %d worker(s), %s, %.0f s", kind, m["role"], threads, workers, rate, s.pipeline_s)
    try:
        return pipeline.measure(argv, broker.port, f"bench/{device_id}", seconds=s.pipeline_s, warmup=s.warmup_s,
                                helpers=(broker.proc.pid,), cwd=cwd)  # fmt: skip
    except RuntimeError as e:
        log.error("%s on %s failed: %s", kind, m["role"], e)
        return {"error": str(e)}


def _clip(s: Any, fps: int, size: tuple[int, int] = (inputs.WIDTH, inputs.HEIGHT)) -> dict[str, Any]:
    name = f"clip_{size[0]}x{size[1]}_{int(s.clip_s)}s_{fps}fps.avi"
    return inputs.make_clip(inputs.CACHE / name, s.clip_s, fps, size)


def _need(model: str) -> tuple[int, int]:
    from ai_edge_litert.interpreter import Interpreter

    shape = Interpreter(model_path=model).get_input_details()[0]["shape"]
    return int(shape[2]), int(shape[1])


def _measure_model(m: dict[str, str], threads: int, clips: dict[str, Any], broker: Any, s: Any) -> dict[str, Any]:
    log.info("limit: %s, %d thread(s)", m["role"], threads)
    run: dict[str, Any] = {"role": m["role"], "model": m["path"], "threads": threads, "max_rate": s.max_rate}
    run["limit"] = limit.run(m["path"], threads, s.limit_s)
    run["reference"] = None if s.no_reference else limit.reference(m["path"], threads, s.reference_runs)
    run["decode_ms"], run["decode_factor"] = inputs.reduced_decode_ms(Path(clips["fast"]["path"]), _need(m["path"]))
    run["pipeline"] = _run_publisher("daemon", m, threads, clips["fast"], broker, s)
    if threads > 1:  # the same cores as `threads` one-thread interpreters on parallel workers
        run["pipeline_workers"] = _run_publisher("daemon", m, 1, clips["fast"], broker, s, workers=threads)
    if s.before_dir:
        run["before"] = _run_publisher("before", m, threads, clips["fast"], broker, s)
    run["naive"] = None if s.no_naive else _run_publisher("naive", m, threads, clips["fast"], broker, s)
    if s.camera_fps:
        run["camera"] = {}
        for size in s.camera_sizes:
            clip = clips[f"camera_{size}"]
            ideal_ms, factor = inputs.reduced_decode_ms(Path(clip["path"]), _need(m["path"]))
            cam = {"ideal_decode_ms": ideal_ms, "factor": factor}
            kinds = ["daemon"] + (["before"] if s.before_dir else []) + ([] if s.no_naive else ["naive"])
            for kind in kinds:
                cam[kind] = _run_publisher(kind, m, threads, clip, broker, s, s.camera_fps, max_rate=s.max_rate)
            run["camera"][size] = cam
    run["derived"] = report.derive(run)
    run["targets"] = report.targets(run)
    return run


def run_suite(s: Any) -> dict[str, Any]:
    """Every measurement for the selected models and thread counts; the result dict the report reads."""
    started = time.time()
    models = [m for m in inputs.models(s.small, s.large, s.smoke) if m["role"] in s.roles]
    if not models:
        raise SystemExit(f"benchmarks: error: no model found (looked in {inputs.DATA}); give --small/--large")
    clips = {"fast": _clip(s, inputs.UNPACED_FPS)}
    for size in s.camera_sizes if s.camera_fps else ():
        w, h = (int(v) for v in size.split("x"))
        clips[f"camera_{size}"] = _clip(s, int(s.camera_fps), (w, h))
    s.decode_ms = inputs.decode_ms(Path(clips["fast"]["path"]))
    s.before_dir = inputs.export_revision(s.before) if s.before else None
    result: dict[str, Any] = {
        "mode": "smoke" if s.smoke else "full",
        "machine": inputs.machine(),
        "settings": {
            k: getattr(s, k)
            for k in ("limit_s", "pipeline_s", "warmup_s", "clip_s", "camera_fps", "threads", "max_rate", "before")
        },
        "clips": clips,
        "decode_ms": s.decode_ms,
        "models": models,
        "runs": [],
    }
    with _broker() as broker:
        for m in models:
            for threads in s.threads:
                result["runs"].append(_measure_model(m, threads, clips, broker, s))
        if s.camera_fps:
            clip = Path(clips[f"camera_{s.camera_sizes[0]}"]["path"])
            log.info("breakdown: per-stage medians, 1 thread")
            result["breakdown"] = [
                breakdown.measure(m["path"], clip, s.breakdown_frames, 1, broker.port) for m in models
            ]
    large = next((m for m in inputs.models(s.small, s.large, s.smoke) if m["role"] == "large"), None)
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
    m = next((m for m in inputs.models(s.small, s.large, s.smoke) if m["role"] == s.soak_model), None)
    if m is None:
        raise SystemExit(f"benchmarks: error: no {s.soak_model} model found; give --small/--large")
    fps = int(s.camera_fps) or inputs.UNPACED_FPS
    clip_info = _clip(s, fps)
    s.pipeline_s, s.warmup_s = s.soak, min(30.0, s.soak / 10)
    threads = s.threads[-1]
    with _broker() as broker:
        soak = _run_publisher("daemon", m, threads, clip_info, broker, s, s.camera_fps)
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
        "--camera-fps",
        type=float,
        default=30.0,
        help="also measure latency and CPU with frames delivered at this camera rate (default 30; 0: skip); "
        "the soak runs at it too (0: as fast as it goes)",
    )
    p.add_argument("--camera-sizes", nargs="+", default=["640x480", "1280x720"], metavar="WxH",
                   help="MJPEG clips the camera-rate runs play (default 640x480 1280x720)")  # fmt: skip
    p.add_argument("--max-rate", type=float, default=5.0,
                   help="camera.max_rate of the camera-rate runs (default 5; 0: classify every frame)")  # fmt: skip
    p.add_argument("--before", metavar="REV",
                   help="also run the daemon of this git revision (e.g. main) on the same configs: before/after in "
                   "one run")  # fmt: skip
    p.add_argument("--report", metavar="RESULT.json", help="print the tables of an earlier result; measure nothing")
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
    if s.report:  # tables again from figures written before (derived figures and targets recomputed)
        result = json.loads(Path(s.report).read_text())
        for run in result["runs"]:
            if "decode_ms" not in run:
                fast = Path(result["clips"]["fast"]["path"])
                run["decode_ms"], run["decode_factor"] = inputs.reduced_decode_ms(fast, _need(run["model"]))
            run["derived"] = report.derive(run)
            run["targets"] = report.targets(run)
        s.json = s.json or s.report
    else:
        result = run_soak(s) if s.soak else run_suite(s)
    for m in result.get("models", []):
        print(f"{m['role']}: {m['path']} ({m['note']})")
    mach = result["machine"]
    print(f"machine: {mach['cpu']}, {mach['cores']} cores, {mach['memory_mb']} MB, load {mach['loadavg_at_start']}")
    print(tables.markdown(result))
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
