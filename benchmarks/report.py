"""Pure: derived figures, issue 6's targets, and the Markdown tables printed by the suite (and pasted into
BENCHMARKS.md). Input is the suite's result dict; nothing here measures anything.
"""

from __future__ import annotations

import math
from typing import Any

LARGE_RATIO = 0.95  # pipeline fps / limit fps, large model
SMALL_OVERHEAD_MS = 1.0  # per-frame overhead beyond invoke, small model, decode excluded
P50_SLACK_MS, P99_SLACK_MS = 3.0, 10.0  # latency over invoke time
RSS_FACTOR = 1.25  # daemon RSS / floor
SOAK_GROWTH_MB, SOAK_REFERENCE_S = 2.0, 1800.0  # no growth beyond 2 MB over a 30-minute soak


def derive(run: dict[str, Any], decode_ms: float) -> dict[str, float]:
    """Figures that compare the daemon with the limit: ratio, period, per-frame overhead."""
    limit, daemon = run["limit"], _ok(run, "pipeline")
    fps = daemon.get("fps", math.nan)
    period = 1000.0 / fps if fps and fps > 0 else math.nan
    limit_period = 1000.0 / limit["fps"]
    overhead = period - limit_period
    return {
        "ratio": fps / limit["fps"] if fps else math.nan,
        "period_ms": period,
        "limit_period_ms": limit_period,
        "overhead_ms": overhead,
        "overhead_excl_decode_ms": overhead - decode_ms,
        "rss_vs_floor": daemon.get("rss_kb", math.nan) / limit["floor_rss_kb"],
    }


def _target(name: str, value: float, limit: float, higher_is_better: bool = False) -> dict[str, Any]:
    ok = value >= limit if higher_is_better else value <= limit
    return {"target": name, "value": value, "limit": limit, "met": bool(ok) if not math.isnan(value) else None}


def _ok(run: dict[str, Any], key: str) -> dict[str, Any]:
    fig = run.get(key) or {}
    return {} if "error" in fig else fig


def targets(run: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 6's targets for one (model, threads) run, each with the value, the limit and whether it is met.

    Throughput, RSS and start-up come from the full-speed run; latency and CPU per frame from the camera-rate
    run when there is one (at full speed latency is queueing behind a saturated CPU, and the grabber decodes
    frames that are then dropped).
    """
    d, daemon, naive = run["derived"], _ok(run, "pipeline"), _ok(run, "naive")
    paced = "pipeline_camera" in run
    cam, ncam = (_ok(run, "pipeline_camera"), _ok(run, "naive_camera")) if paced else (daemon, naive)
    at = " (camera rate)" if paced else " (full speed)"
    invoke = run["limit"]["invoke_ms"]["p50"]
    lat = cam.get("latency_ms", {})
    out = []
    if run["role"] == "large":
        out.append(_target("pipeline fps / limit fps >= 0.95", d["ratio"], LARGE_RATIO, True))
    else:
        out.append(_target("overhead beyond invoke, decode excluded (ms) <= 1.0", d["overhead_excl_decode_ms"], 1.0))
    out.append(_target(f"latency p50 <= invoke + 3 ms{at}", lat.get("p50", math.nan), invoke + P50_SLACK_MS))
    out.append(_target(f"latency p99 <= invoke + 10 ms{at}", lat.get("p99", math.nan), invoke + P99_SLACK_MS))
    out.append(_target("RSS <= 1.25 x floor", d["rss_vs_floor"], RSS_FACTOR))
    if naive:
        nlat = ncam.get("latency_ms", {})
        better = [
            ("fps", daemon.get("fps", math.nan) > naive["fps"]),
            ("latency p50", lat.get("p50", math.nan) < nlat.get("p50", math.nan)),
            ("latency p99", lat.get("p99", math.nan) < nlat.get("p99", math.nan)),
            ("RSS", daemon.get("rss_kb", math.nan) < naive["rss_kb"]),
            ("CPU/frame", cam.get("cpu_ms_per_frame", math.nan) < ncam.get("cpu_ms_per_frame", math.nan)),
            ("start-up", daemon.get("startup_s", math.nan) < naive["startup_s"]),
        ]
        worse = [name for name, ok in better if not ok]
        out.append(
            {"target": "better than naive on every figure", "value": "worse: " + ", ".join(worse) if worse else "all",
             "limit": "all", "met": not worse}
        )  # fmt: skip
    return out


def soak_targets(soak: dict[str, Any]) -> list[dict[str, Any]]:
    """RSS growth over the soak, scaled to 30 minutes, against 2 MB."""
    growth_30min = soak["rss_growth_mb_per_h"] * SOAK_REFERENCE_S / 3600.0
    return [_target("RSS growth per 30 min (MB) <= 2", growth_30min, SOAK_GROWTH_MB)]


def _f(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _mb(kb: Any) -> str:
    return "-" if kb is None or (isinstance(kb, float) and math.isnan(kb)) else f"{kb / 1024:.1f}"


def _lat(fig: dict[str, Any]) -> str:
    lat = fig.get("latency_ms", {})
    return f"{_f(lat.get('p50'))} / {_f(lat.get('p95'))} / {_f(lat.get('p99'))}"


def _run_tables(runs: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| model | threads | limit fps (invoke p50 ms) | litert-benchmark ms | daemon fps | daemon / limit "
        "| naive fps | daemon dropped frames/s | start-up s daemon / naive |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        p, n, lim, ref = _ok(r, "pipeline"), _ok(r, "naive"), r["limit"], r.get("reference") or {}
        dropped = (p.get("last_stats") or {}).get("fps_dropped")
        lines.append(
            f"| {r['role']} | {r['threads']} | {_f(lim['fps'])} ({_f(lim['invoke_ms']['p50'], 2)}) "
            f"| {_f(ref.get('median_ms'), 2)} | {_f(p.get('fps'))} | {_f(r['derived']['ratio'], 2)} "
            f"| {_f(n.get('fps'))} | {_f(dropped)} | {_f(p.get('startup_s'), 2)} / {_f(n.get('startup_s'), 2)} |"
        )
    lines += [
        "",
        "| model | threads | latency ms p50 / p95 / p99: daemon, camera rate | naive, camera rate "
        "| daemon, full speed | naive, full speed |",
        "|---|---|---|---|---|---|",
    ]
    for r in runs:
        lines.append(
            f"| {r['role']} | {r['threads']} | {_lat(_ok(r, 'pipeline_camera'))} | {_lat(_ok(r, 'naive_camera'))} "
            f"| {_lat(_ok(r, 'pipeline'))} | {_lat(_ok(r, 'naive'))} |"
        )
    lines += [
        "",
        "| model | threads | RSS MB daemon / floor / naive | CPU ms/frame, camera rate: daemon / naive "
        "| CPU ms/frame, full speed: daemon / limit / naive | overhead beyond invoke ms (excl. decode) "
        "| other load (cores) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        p, n, lim, d = _ok(r, "pipeline"), _ok(r, "naive"), r["limit"], r["derived"]
        pc, nc = _ok(r, "pipeline_camera"), _ok(r, "naive_camera")
        lines.append(
            f"| {r['role']} | {r['threads']} | {_mb(p.get('rss_kb'))} / {_mb(lim['floor_rss_kb'])} / "
            f"{_mb(n.get('rss_kb'))} | {_f(pc.get('cpu_ms_per_frame'), 2)} / {_f(nc.get('cpu_ms_per_frame'), 2)} "
            f"| {_f(p.get('cpu_ms_per_frame'), 2)} / {_f(lim['cpu_ms_per_frame'], 2)} / "
            f"{_f(n.get('cpu_ms_per_frame'), 2)} | {_f(d['overhead_ms'], 2)} ({_f(d['overhead_excl_decode_ms'], 2)}) "
            f"| {_f(p.get('other_load_cores'), 2)} |"
        )
    lines += ["", "| model | threads | target | value | limit | met |", "|---|---|---|---|---|---|"]
    for r in runs:
        for t in r["targets"]:
            met = {True: "yes", False: "**NO**", None: "-"}[t["met"]]
            lines.append(
                f"| {r['role']} | {r['threads']} | {t['target']} | {_f(t['value'], 2)} | {_f(t['limit'], 2)} | {met} |"
            )
    return lines


def tables(result: dict[str, Any]) -> str:
    """The result as Markdown: throughput/latency, footprint, targets, classify overhead, soak."""
    lines = _run_tables(result["runs"]) if result["runs"] else []
    if result.get("classify_overhead"):
        lines += [
            "",
            "| issue 2: 224x224 image, threads | classify ms | invoke ms | preprocess ms | ratio (<= 1.2) |",
            "|---|---|---|---|---|",
        ]
        for c in result["classify_overhead"]:
            lines.append(
                f"| {c['threads']} | {_f(c['classify_ms'], 2)} | {_f(c['invoke_ms'], 2)} "
                f"| {_f(c['preprocess_ms'], 3)} | {_f(c['ratio'], 3)} {'yes' if c['met'] else '**NO**'} |"
            )
    if result.get("breakdown"):
        stages = list(result["breakdown"][0]["median_ms"])
        lines += [
            "",
            "| per-stage median ms (1 interpreter thread; all stages in one thread) | " + " | ".join(stages) + " |",
        ]
        lines.append("|---" * (len(stages) + 1) + "|")
        for b in result["breakdown"]:
            name = b["model"].rsplit("/", 1)[-1]
            lines.append(f"| {name} | " + " | ".join(_f(b["median_ms"][k], 3) for k in stages) + " |")
    soak = result.get("soak")
    if soak:
        s = soak["pipeline"]
        lines += [
            "",
            "| soak | seconds | fps | RSS MB start / end / max | growth MB/h | dropped frames "
            "| MQTT reconnects | messages dropped | latency p50 / p95 / p99 ms |",
            "|---|---|---|---|---|---|---|---|---|",
            f"| {soak['role']} {soak['threads']} thr | {_f(s.get('window_s'), 0)} | {_f(s.get('fps'))} "
            f"| {_mb(s.get('rss_kb_first'))} / {_mb(s.get('rss_kb_last'))} / {_mb(s.get('rss_kb_max'))} "
            f"| {_f(s.get('rss_growth_mb_per_h'), 2)} | {_f(s.get('dropped_frames'))} | {_f(s.get('mqtt_reconnects'))} "
            f"| {_f(s.get('messages_dropped'))} | {_lat(s)} |",
        ]
        for t in soak.get("targets", []):
            met = {True: "yes", False: "**NO**", None: "-"}[t["met"]]
            lines.append(f"\n{t['target']}: {_f(t['value'], 2)} (limit {_f(t['limit'], 2)}): {met}")
    return "\n".join(lines)
