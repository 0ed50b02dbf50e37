"""What the live page and `/metrics` cost the daemon: classified fps and CPU with the server off, on with nobody
watching, one page viewer (a real headless Chromium on the page), a real Prometheus scraping every 5 s, and
misbehaving clients (a stalled stream reader, 100 idle connections and a slowloris, together).

    python -m benchmarks.http_viewers [--seconds 10] [--rounds 2] [--model M] [--json out.json] [--smoke]

Two camera modes: "camera" (a 640x480 clip played at 30 fps like a camera: what a deployment looks like; the
cost shows as CPU) and "full speed" (`camera.realtime = false`: the cost shows as fps lost). Scenarios run in
rounds, interleaved, on one daemon per mode (one more with the server off); each window follows a warm-up, the
figures are the medians over the rounds. fps comes from the daemon's own stats messages (every second, over a
real mosquitto); CPU from /proc: the daemon's, the viewer's (Chromium's whole process tree), Prometheus's, and
"other load", what the rest of the machine used meanwhile (the machine is shared: read that column first).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import inputs, pipeline
from benchmarks.procstat import cpu_seconds, machine_cpu, rss_kb

sys.path.insert(0, str(inputs.REPO))
from tests.support.browser import CHROMIUM, FLAGS
from tests.support.http_clients import Slowloris, idle_connections, stalled_stream
from tests.support.mosquitto import Mosquitto, Subscriber, free_port
from tests.support.prometheus import PrometheusServer

SCENARIOS = ("server off", "no viewer", "page viewer", "scrape 5 s", "misbehaving")


def tree(pid: int) -> list[int]:
    """A process and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def tree_cpu(pid: int | None) -> float:
    return sum(cpu_seconds(p) for p in tree(pid)) if pid else 0.0


class Load:
    """Starts and stops what a scenario puts on the daemon's server."""

    def __init__(self, scenario: str, port: int, tmp: Path) -> None:
        self.scenario, self.port, self.tmp = scenario, port, tmp
        self.proc: subprocess.Popen[bytes] | None = None
        self.prometheus: PrometheusServer | None = None
        self.sockets: list[Any] = []
        self.loris: Slowloris | None = None

    @property
    def pid(self) -> int | None:
        if self.prometheus is not None and self.prometheus.proc is not None:
            return self.prometheus.proc.pid
        return self.proc.pid if self.proc is not None else None

    def __enter__(self) -> Load:
        url = f"http://127.0.0.1:{self.port}/"
        if self.scenario == "page viewer":
            profile = tempfile.mkdtemp(prefix="chromium-", dir=self.tmp)
            argv = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0", url]
            self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        elif self.scenario == "scrape 5 s":
            job = {"job_name": "edge-daemon", "scrape_interval": "5s", "static_configs": [
                {"targets": [f"127.0.0.1:{self.port}"]}]}  # fmt: skip
            self.prometheus = PrometheusServer(self.tmp / f"prometheus-{time.monotonic_ns()}", [job], "5s").start()
        elif self.scenario == "misbehaving":
            self.sockets = [stalled_stream(self.port, "/stream.mjpg"), *idle_connections(self.port, 100)]
            self.loris = Slowloris(self.port, n=20, interval=0.3).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.loris is not None:
            self.loris.close()
        for s in self.sockets:
            s.close()
        if self.prometheus is not None:
            self.prometheus.stop()
        if self.proc is not None:
            pipeline._stop(self.proc)


def daemon(model: str, clip: str, broker: Mosquitto, device_id: str, realtime: bool, http_port: int | None,
           tmp: Path) -> subprocess.Popen[bytes]:  # fmt: skip
    text = pipeline.daemon_config(model, clip, 2, broker.port, "bench", device_id, realtime=realtime)
    text = text.replace('mode = "off"', 'mode = "stable"')  # the cost of MQTT per frame is not what is measured
    if http_port:
        text += f'\n[http]\nlisten = "127.0.0.1:{http_port}"\n'
    cfg = tmp / f"{device_id}.toml"
    cfg.write_text(text)
    log_path = tmp / f"{device_id}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(pipeline.daemon_argv(str(cfg)), stdout=log, stderr=subprocess.STDOUT, cwd=inputs.REPO)
    proc.log_path = str(log_path)  # type: ignore[attr-defined]
    return proc


def window(proc: subprocess.Popen[bytes], sub: Subscriber, topic: str, load: Load, broker: Mosquitto,
           seconds: float) -> dict[str, float]:  # fmt: skip
    """fps (from the daemon's stats messages) and CPU (from /proc) over `seconds`."""
    def stats_since(n: int) -> list[Any]:
        return [(m.received, m.json()["frames_classified"]) for m in sub.received(topic)[n:]]

    n0 = len(sub.received(topic))
    helpers = (broker.proc.pid, os.getpid())
    t0, d0, v0 = time.monotonic(), cpu_seconds(proc.pid), tree_cpu(load.pid)
    h0, (busy0, _) = sum(cpu_seconds(p) for p in helpers), machine_cpu()
    rss = []
    while time.monotonic() - t0 < seconds:
        time.sleep(0.5)
        rss.append(rss_kb(proc.pid))
        if proc.poll() is not None:
            raise RuntimeError(f"the daemon exited with {proc.returncode}")
    wall = time.monotonic() - t0
    daemon_s, viewer_s = cpu_seconds(proc.pid) - d0, tree_cpu(load.pid) - v0
    helpers_s, busy_s = sum(cpu_seconds(p) for p in helpers) - h0, machine_cpu()[0] - busy0
    stats = stats_since(n0)
    if len(stats) < 2:
        raise RuntimeError("fewer than two stats messages in the window")
    (ta, fa), (tb, fb) = stats[0], stats[-1]
    return {"fps": (fb - fa) / (tb - ta), "daemon_cores": daemon_s / wall, "viewer_cores": viewer_s / wall,
            "other_load": max(0.0, (busy_s - daemon_s - viewer_s - helpers_s) / wall),
            "rss_mb": statistics.median(rss) / 1024 if rss else 0.0}  # fmt: skip


def wait_stats(sub: Subscriber, topic: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not sub.received(topic):
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError(f"no stats on {topic} within {timeout} s:\n{pipeline._tail(proc.log_path)}")
        time.sleep(0.2)


def offer_cost_us(calls: int = 100_000) -> dict[str, float]:
    """Microseconds the classifier's loop spends per frame in the tap (`taken()` + `offer()`): server off, on,
    on with the metrics' histogram (what the daemon does), for a 640x480 frame and 1001 scores."""
    import numpy as np

    from edge.http.metrics import Metrics
    from edge.http.tap import FrameTap
    from edge.sources.camera import CapturedFrame

    image, scores = np.zeros((480, 640, 3), np.uint8), np.zeros(1001, np.float32)
    labels = tuple(str(i) for i in range(1001))
    frames = [CapturedFrame(seq, 0.0, pixels=image) for seq in range(1, calls + 1)]
    taps = {"server off": FrameTap(active=False), "tap only": FrameTap(),
            "tap + histogram": FrameTap(observe=Metrics(lambda: None, dict).observe_inference)}  # type: ignore[arg-type]
    out = {}
    for name, tap in taps.items():
        t0 = time.perf_counter()
        for frame in frames:
            tap.taken(frame)
            tap.offer(frame.seq, 1.5, [(None, (0.0, 0.0, 1.0, 1.0), scores, labels)])
        out[name] = (time.perf_counter() - t0) / calls * 1e6
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    small = next(m["path"] for m in inputs.models() if m["role"] == "small")
    model = str(Path(args.model).resolve()) if args.model else small
    clip = inputs.make_clip(inputs.CACHE / f"clip_640x480_{int(args.clip_s)}s_30fps.avi", args.clip_s, 30)["path"]
    results: dict[str, dict[str, list[dict[str, float]]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-http-") as t:
        tmp = Path(t)
        broker = Mosquitto(tmp / "mosquitto").start()
        sub = Subscriber(broker, ["bench/+/stats"]).start()
        try:
            for mode, realtime in (("camera", True), ("full speed", False))[: 1 if args.smoke else 2]:
                results[mode] = measure_mode(args, mode, realtime, model, clip, broker, sub, tmp)
        finally:
            sub.stop()
            broker.close()
    offer_us = offer_cost_us(10_000 if args.smoke else 100_000)
    return {"model": model, "clip": clip, "machine": inputs.machine(), "seconds": args.seconds,
            "rounds": args.rounds, "offer_us": offer_us, "runs": results}  # fmt: skip


def measure_mode(args: argparse.Namespace, mode: str, realtime: bool, model: str, clip: str, broker: Mosquitto,
                 sub: Subscriber, tmp: Path) -> dict[str, list[dict[str, float]]]:  # fmt: skip
    """Every scenario, `rounds` times interleaved, on two daemons started together (server on and off): the one
    not measured is paused (SIGSTOP), so both are as old and as warm and never run at the same time."""
    port, tag = free_port(), f"{os.getpid()}-{int(realtime)}"
    daemons = {"on": daemon(model, clip, broker, f"on-{tag}", realtime, port, tmp),
               "off": daemon(model, clip, broker, f"off-{tag}", realtime, None, tmp)}  # fmt: skip
    figures: dict[str, list[dict[str, float]]] = {}
    try:
        for name, proc in daemons.items():
            wait_stats(sub, f"bench/{name}-{tag}/stats", proc)
        daemons["off"].send_signal(signal.SIGSTOP)
        running = "on"
        for r in range(args.rounds):
            for scenario in SCENARIOS[r % len(SCENARIOS) :] + SCENARIOS[: r % len(SCENARIOS)]:  # rotated per round
                wanted = "off" if scenario == "server off" else "on"
                if wanted != running:
                    daemons[running].send_signal(signal.SIGSTOP)
                    daemons[wanted].send_signal(signal.SIGCONT)
                    running = wanted
                with Load(scenario, port, tmp) as load:
                    time.sleep(args.warmup)
                    fig = window(daemons[wanted], sub, f"bench/{wanted}-{tag}/stats", load, broker, args.seconds)
                print(f"{mode:10s} round {r + 1} {scenario:12s} {fig['fps']:7.1f} fps  daemon "
                      f"{fig['daemon_cores']:.2f} cores  viewer {fig['viewer_cores']:.2f}  other load "
                      f"{fig['other_load']:.2f}", flush=True)  # fmt: skip
                figures.setdefault(scenario, []).append(fig)
    finally:
        for proc in daemons.values():
            proc.send_signal(signal.SIGCONT)
            pipeline._stop(proc)
    return figures


def table(result: dict[str, Any]) -> str:
    """BENCHMARKS.md's table: medians over the rounds."""
    lines = ["| mode | scenario | classified fps | daemon CPU (cores) | frames per daemon CPU-second "
             "| viewer / Prometheus CPU | RSS (MB) | other load |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for mode, scenarios in result["runs"].items():
        for scenario in SCENARIOS:
            figs = scenarios[scenario]
            med = {k: statistics.median(f[k] for f in figs) for k in figs[0]}
            per_cpu = statistics.median(f["fps"] / max(f["daemon_cores"], 1e-9) for f in figs)
            lines.append(f"| {mode} | {scenario} | {med['fps']:.1f} | {med['daemon_cores']:.2f} | {per_cpu:.0f} | "
                         f"{med['viewer_cores']:.2f} | {med['rss_mb']:.0f} | {med['other_load']:.2f} |")  # fmt: skip
    offer = ", ".join(f"{k} {v:.2f} µs" for k, v in result["offer_us"].items())
    return "\n".join(lines) + f"\n\nThe tap (`taken()` + `offer()`) per classified frame: {offer}."


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.http_viewers", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="the .tflite to run (default: the suite's small model)")
    p.add_argument("--seconds", type=float, default=10.0, help="window per scenario and round")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds before each window")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds; medians are reported")
    p.add_argument("--clip-s", type=float, default=10.0, help="length of the 640x480 clip (it loops)")
    p.add_argument("--json", help="write the raw figures here")
    p.add_argument("--smoke", action="store_true", help="seconds, camera mode only, the bundled demo model (CI)")
    p.add_argument("--table", metavar="JSON", help="only print the table of an earlier run's --json")
    args = p.parse_args(argv)
    if args.table:
        print(table(json.loads(Path(args.table).read_text())))
        return 0
    if args.smoke:
        args.seconds, args.warmup, args.rounds, args.clip_s = 3.0, 0.5, 1, 2.0
        args.model = args.model or str(inputs.DEMO)
    result = run(args)
    print(table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
