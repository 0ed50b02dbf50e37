"""Run one publishing process (the daemon, or the naive loop) against mosquitto and measure it from outside.

The harness starts the separate subscriber process, launches the publisher, samples its RSS and CPU from
/proc, and reads what the subscriber received: start-up time (launch to first classification received),
classified frames per second, latency (capture timestamp to receipt), RSS, CPU per classified frame, and the
daemon's own stats (dropped frames, reconnects). Figures come from a steady window after a warm-up.
"""

from __future__ import annotations

import json
import math
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.procstat import Sampler, other_load, percentile, slope_per_hour

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


def daemon_config(
    model: str, clip: str, threads: int, port: int, prefix: str, device_id: str, realtime: bool = False,
    *, workers: int = 1, max_rate: float = 0.0,
) -> str:
    """The TOML config for `edge-daemon run`: every classified frame published; the clip as fast as the
    classifier takes it (`realtime` False: no frame decoded in vain) or at its own frame rate like a camera,
    classified at most `max_rate` times a second. `workers` > 1 is left out for daemons that predate it."""
    workers_line = f"workers = {workers}" if workers > 1 else ""
    return f"""
[camera]
source = "{clip}"
loop = true
realtime = {"true" if realtime else "false"}
max_rate = {max_rate}

[model]
path = "{model}"
device = "cpu"
threads = {threads}
{workers_line}
top_k = 3
watch = false

[mqtt]
host = "127.0.0.1"
port = {port}
qos = 1
topic_prefix = "{prefix}"
device_id = "{device_id}"

[homeassistant]
discovery = false

[smoothing]
mode = "off"

[stats]
interval_s = 1.0
"""


def daemon_argv(config_path: str) -> list[str]:
    """`edge-daemon run --config FILE` via this interpreter (the console script's own entry point)."""
    code = "import sys; from edge.cli.main import main; sys.exit(main())"
    return [PYTHON, "-c", code, "run", "--config", config_path]


def naive_argv(
    model: str, clip: str, threads: int, port: int, prefix: str, device_id: str, fps: float = 0.0,
    max_rate: float = 0.0,
) -> list[str]:
    """The naive tutorial loop on the same inputs (`fps` > 0: frames delivered at a camera's rate)."""
    return [
        PYTHON, "-m", "benchmarks.naive", "--model", model, "--video", clip, "--threads", str(threads),
        "--port", str(port), "--prefix", prefix, "--device-id", device_id, "--fps", str(fps),
        "--max-rate", str(max_rate),
    ]  # fmt: skip


def _read_line(proc: subprocess.Popen[str], timeout: float) -> str | None:
    """One stdout line of a child within `timeout` seconds, or None."""
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    try:
        if not sel.select(timeout):
            return None
        return proc.stdout.readline().strip() or None
    finally:
        sel.close()


def _stop(proc: subprocess.Popen[Any], timeout: float = 10.0) -> int | None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
            return None
    return proc.returncode


def _latency(receipts: list[list[Any]]) -> dict[str, float]:
    ms = [(r[0] - r[1]) * 1000.0 for r in receipts if r[1] is not None]
    return {
        "p50": percentile(ms, 50),
        "p95": percentile(ms, 95),
        "p99": percentile(ms, 99),
        "mean": sum(ms) / len(ms) if ms else math.nan,
        "count": len(ms),
    }


def _counter(stats: dict[str, Any], *words: str) -> Any:
    """The first stats value whose key contains all `words` (the daemon's names may evolve)."""
    for key, value in stats.items():
        if all(w in key for w in words) and isinstance(value, int | float):
            return value
    return None


def summarise(
    received: dict[str, Any], sampler: Sampler, launched: float, first: float, warmup: float, window_end: float
) -> dict[str, Any]:
    """Figures from what the subscriber received and the /proc samples (pure but for the data given)."""
    t0, t1 = first + warmup, window_end
    steady = [r for r in received["classifications"] if t0 <= r[0] <= t1]
    samples = sampler.window(t0, t1)
    n = len(steady)
    wall = (steady[-1][0] - steady[0][0]) if n > 1 else math.nan
    fps = (n - 1) / wall if n > 1 and wall > 0 else math.nan
    cpu = samples[-1].cpu_s - samples[0].cpu_s if len(samples) > 1 else math.nan
    frames_in_samples = sum(1 for r in steady if samples[0].t <= r[0] <= samples[-1].t) if len(samples) > 1 else 0
    rss = sorted(s.rss_kb for s in samples)
    anon = sorted(s.anon_kb for s in samples)
    main_cpu = samples[-1].main_cpu_s - samples[0].main_cpu_s if len(samples) > 1 else math.nan
    invoke = [r[3] for r in steady if len(r) > 3 and isinstance(r[3], int | float)]
    stats = received["stats"][-1] if received["stats"] else {}
    return {
        "startup_s": first - launched,
        "frames": n,
        "window_s": wall,
        "fps": fps,
        "latency_ms": _latency(steady),
        "rss_kb": rss[len(rss) // 2] if rss else math.nan,
        "rss_kb_max": max(rss) if rss else math.nan,
        "rss_kb_first": samples[0].rss_kb if samples else math.nan,
        "rss_kb_last": samples[-1].rss_kb if samples else math.nan,
        "rss_growth_mb_per_h": slope_per_hour(samples),
        "anon_kb": anon[len(anon) // 2] if anon else math.nan,
        "cpu_ms_per_frame": cpu * 1000.0 / frames_in_samples if frames_in_samples else math.nan,
        "main_cpu_ms_per_frame": main_cpu * 1000.0 / frames_in_samples if frames_in_samples else math.nan,
        "invoke_ms_mean": sum(invoke) / len(invoke) if invoke else math.nan,
        "cpu_cores": cpu / (samples[-1].t - samples[0].t) if len(samples) > 1 else math.nan,
        "other_load_cores": other_load(samples),
        "dropped_frames": stats.get("frames_dropped", _counter(stats, "frames", "dropped")),
        "messages_dropped": stats.get("dropped"),
        "mqtt_reconnects": stats.get("mqtt_reconnects", _counter(stats, "mqtt", "reconnect")),
        "camera_reconnects": stats.get("camera_reconnects", _counter(stats, "camera", "reconnect")),
        "last_stats": {k: v for k, v in stats.items() if not k.startswith("_")},
        "messages": received["counts"],
    }


def measure(
    argv: list[str],
    port: int,
    topic_root: str,
    *,
    seconds: float,
    warmup: float,
    start_timeout: float = 60.0,
    helpers: tuple[int, ...] = (),
    cwd: Path = REPO,
) -> dict[str, Any]:
    """Launch `argv` (a publisher) and measure it for `seconds` after `warmup` from its first classification.

    Args:
        argv: the command; it must publish classifications under `topic_root`/classification.
        port: the broker's port on 127.0.0.1.
        topic_root: `{prefix}/{device_id}`.
        seconds: length of the steady window.
        warmup: seconds after the first classification that are not counted.
        start_timeout: give up when no classification arrives within this many seconds of launch.
        helpers: pids whose CPU is part of the measurement (the broker), not contention.
        cwd: where the publisher runs (another checkout of the daemon: the `before` runs).

    Raises:
        RuntimeError: the publisher or the subscriber failed (with the publisher's last log lines).
    """
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        out = os.path.join(tmp, "received.json")
        log_path = os.path.join(tmp, "publisher.log")
        sub = subprocess.Popen(
            [PYTHON, "-m", "benchmarks.subscriber", "--port", str(port), "--topic", f"{topic_root}/#", "--out", out,
             "--announce-first"],
            stdout=subprocess.PIPE, text=True, cwd=REPO,
        )  # fmt: skip
        proc: subprocess.Popen[bytes] | None = None
        sampler: Sampler | None = None
        try:
            if _read_line(sub, 15) != "ready":
                raise RuntimeError("the benchmark subscriber did not subscribe within 15 s")
            with open(log_path, "wb") as log:
                launched = time.time()
                proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=cwd)
            sampler = Sampler(proc.pid, helpers=(*helpers, sub.pid)).start()
            line = _read_line(sub, start_timeout)
            if line is None or not line.startswith("first "):
                raise RuntimeError(f"no classification within {start_timeout} s; publisher log:\n{_tail(log_path)}")
            first = float(line.split()[1])
            end = first + warmup + seconds
            while time.time() < end:
                if proc.poll() is not None:
                    raise RuntimeError(f"publisher exited with {proc.returncode}:\n{_tail(log_path)}")
                time.sleep(min(0.5, max(0.0, end - time.time())))
            sampler.sample()
        finally:
            if sampler is not None:
                sampler.stop()
            code = _stop(proc) if proc is not None else None
            _stop(sub)
        with open(out) as f:
            received = json.load(f)
        result = summarise(received, sampler, launched, first, warmup, end)
        result["exit_code"] = code
        return result


def _tail(path: str, lines: int = 15) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""
