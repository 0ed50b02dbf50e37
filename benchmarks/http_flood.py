"""What an unauthenticated flood costs a token holder: authorised `/healthz` answers a second, with and without
100 connections at a time from another loopback address each sending half a request line (replaced, up to 200
new ones a second, as the server refuses or cuts them: `tests.support.http_clients.Flood`).

    python -m benchmarks.http_flood [--seconds 10] [--rounds 3] [--rate 40] [--json out.json]

The server (`edge.http.server.HttpServer` with a token, the default `max_clients`, a frame offered every 0.2 s
so `/healthz` is 200) runs in a child process, the flood in another, the authorised client here: one request
after another, each on a new connection, `--rate` a second (below the per-address bound on new connections, so
what is measured is the flood's effect, not that bound). Rounds alternate the two scenarios; the
figures are the medians over the rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import inputs

sys.path.insert(0, str(inputs.REPO))
from tests.support.http_clients import Flood, get
from tests.support.mosquitto import free_port

TOKEN = "benchmark-token-0123456789abcdef"
SCENARIOS = ("no flood", "flood")


def serve(port: int) -> None:
    """The child: a server on 127.0.0.1:port until stdin closes."""
    import threading

    import numpy as np

    from edge.config.schema import HttpConfig, Secret
    from edge.http.server import HttpServer
    from edge.http.state import Snapshot
    from edge.sources.camera import CameraStats, Frame

    cam = CameraStats(captured=1, dropped=0, reconnects=0, connected=True, ended=False, last_activity=0.0,
                      open_failures=0)  # fmt: skip
    snap = Snapshot(cam, "bench", {}, True, 1, 0, 1.0, time.time(), "bench", "cpu", {None: None})
    server = HttpServer(HttpConfig(listen=f"127.0.0.1:{port}"), token=Secret(TOKEN, "bench"), snapshot=lambda: snap)
    server.start()
    done = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    pixels, scores, seq = np.zeros((48, 64, 3), np.uint8), np.array([0.9, 0.1], np.float32), 0
    print("ready", flush=True)
    while not done.wait(0.2):
        seq += 1
        server.tap.taken(Frame(seq, time.monotonic(), pixels=pixels))
        server.tap.offer(seq, 1.0, [(None, (0.0, 0.0, 1.0, 1.0), scores, ("a", "b"))])
    server.stop()


def flood(port: int) -> None:
    """The other child: the flood until stdin closes; prints how many connections it made and had cut."""
    t0, f = time.monotonic(), Flood(port, n=100, rate=200.0).start()
    print("ready", flush=True)
    sys.stdin.read()
    f.close()
    print(json.dumps({"opened": f.opened, "cut": f.cut, "flood_s": time.monotonic() - t0}), flush=True)


def child(role: str, port: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.http_flood", f"--{role}", str(port)], cwd=inputs.REPO,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready", f"the {role} child did not start"
    return proc


def finish(proc: subprocess.Popen[str]) -> str:
    out, _ = proc.communicate("", timeout=30)
    return out


def window(port: int, seconds: float, rate: float) -> dict[str, float]:
    """Authorised /healthz for `seconds`, one after another, at most `rate` a second: answers a second,
    latencies, what was not a 200."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    t0, ok, other, took = time.monotonic(), 0, 0, []
    while time.monotonic() - t0 < seconds:
        time.sleep(max(0.0, t0 + len(took) / rate - time.monotonic()))  # pacing, not waiting for the server
        a = time.perf_counter()
        try:
            status = get(port, "/healthz", headers=auth, timeout=5).status
        except OSError:
            status = 0
        took.append(time.perf_counter() - a)
        ok, other = ok + (status == 200), other + (status != 200)
    wall = time.monotonic() - t0
    took.sort()
    return {"answers_per_s": ok / wall, "not_200": other, "p50_ms": statistics.median(took) * 1e3,
            "p99_ms": took[int(len(took) * 0.99) - 1] * 1e3, "max_ms": took[-1] * 1e3}  # fmt: skip


def run(args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    server = child("serve", port)
    figures: dict[str, list[dict[str, float]]] = {s: [] for s in SCENARIOS}
    try:
        for r in range(args.rounds):
            for scenario in SCENARIOS if r % 2 == 0 else SCENARIOS[::-1]:
                flooder = child("flood", port) if scenario == "flood" else None
                try:
                    time.sleep(args.warmup)
                    fig = window(port, args.seconds, args.rate)
                finally:
                    if flooder is not None:
                        fig.update(json.loads(finish(flooder).strip().splitlines()[-1]))
                print(f"round {r + 1} {scenario:8s} {fig['answers_per_s']:7.1f} answers/s  p50 {fig['p50_ms']:.2f} ms"
                      f"  max {fig['max_ms']:.1f} ms  not 200: {fig['not_200']:.0f}"
                      + (f"  flood opened {fig['opened']:.0f}, cut {fig['cut']:.0f}" if "opened" in fig else ""),
                      flush=True)  # fmt: skip
                figures[scenario].append(fig)
    finally:
        finish(server)
    return {"machine": inputs.machine(), "cpus": os.cpu_count(), "seconds": args.seconds, "rounds": args.rounds,
            "runs": figures}  # fmt: skip


def table(result: dict[str, Any]) -> str:
    lines = ["| scenario | authorised answers/s | not 200 | p50 (ms) | p99 (ms) | max (ms) | flood connections/s |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for scenario in SCENARIOS:
        figs = result["runs"][scenario]
        med = {k: statistics.median(f[k] for f in figs) for k in figs[0]}
        rate = f"{med['opened'] / med['flood_s']:.0f}" if "opened" in med else "-"
        lines.append(f"| {scenario} | {med['answers_per_s']:.0f} | {med['not_200']:.0f} | {med['p50_ms']:.2f} | "
                     f"{med['p99_ms']:.1f} | {med['max_ms']:.1f} | {rate} |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.http_flood", description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=10.0, help="window per scenario and round")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds before each window (the flood fills up)")
    p.add_argument("--rounds", type=int, default=3, help="rounds, the scenarios alternating; medians reported")
    p.add_argument("--rate", type=float, default=40.0,
                   help="authorised requests a second at most (new connections from one address are bounded to "
                        "50 a second, `edge.http.admission.CONNECTIONS_PER_S`)")
    p.add_argument("--json", help="write the raw figures here")
    p.add_argument("--table", metavar="JSON", help="only print the table of an earlier run's --json")
    p.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    p.add_argument("--flood", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve:
        serve(args.serve)
        return 0
    if args.flood:
        flood(args.flood)
        return 0
    if args.table:
        print(table(json.loads(Path(args.table).read_text())))
        return 0
    result = run(args)
    print(table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
