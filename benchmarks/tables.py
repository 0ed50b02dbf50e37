"""Pure: the suite's result as the Markdown printed and pasted into BENCHMARKS.md: the per-run tables (the other
processes' CPU beside every figure), classify overhead, the per-stage breakdown and the soak. The numbers come from
`benchmarks.report`; nothing here measures or derives anything."""

from __future__ import annotations

import math
from typing import Any

from benchmarks.report import figure


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


def _load(*figs: dict[str, Any]) -> str:
    """The other load (cores) during each of the runs a row shows, e.g. `0.02 / 0.41`."""
    return " / ".join(_f(f.get("other_load_cores"), 2) for f in figs if f) or "-"


def _fps(run: dict[str, Any], key: str) -> str:
    fig = figure(run, key)
    ratio = run["derived"].get(f"{key}_ratio")
    return f"{_f(fig.get('fps'))} ({_f(ratio, 2)})" if fig else "-"


def _throughput(runs: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| model | threads | limit fps (invoke p50 ms) | litert-benchmark ms | daemon fps (/ limit): T threads x 1 "
        "| 1 thread x T workers | before | naive | dropped frames/s | start-up s daemon / naive | other load |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        p, n, lim, ref = figure(r, "pipeline"), figure(r, "naive"), r["limit"], r.get("reference") or {}
        dropped = (p.get("last_stats") or {}).get("fps_dropped")
        lines.append(
            f"| {r['role']} | {r['threads']} | {_f(lim['fps'])} ({_f(lim['invoke_ms']['p50'], 2)}) "
            f"| {_f(ref.get('median_ms'), 2)} | {_fps(r, 'pipeline')} | {_fps(r, 'pipeline_workers')} "
            f"| {_fps(r, 'before')} | {_fps(r, 'naive')} | {_f(dropped)} "
            f"| {_f(p.get('startup_s'), 2)} / {_f(n.get('startup_s'), 2)} "
            f"| {_load(p, figure(r, 'pipeline_workers'), figure(r, 'before'), n)} |"
        )
    return lines


def _camera(runs: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| model | threads | camera (30 fps, max_rate) | classified fps | CPU cores: daemon / ideal (x) "
        "| before (before / after) | naive | latency ms p50 / p95 / p99: daemon | before | naive "
        "| decode: factor, ms | other load |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        for size, cam in (r.get("camera") or {}).items():
            a, b, n = cam.get("daemon") or {}, cam.get("before") or {}, cam.get("naive") or {}
            c = r["derived"][f"camera_{size}"]
            lines.append(
                f"| {r['role']} | {r['threads']} | {size}, {_f(r.get('max_rate'), 0)} | {_f(a.get('fps'))} "
                f"| {_f(a.get('cpu_cores'), 3)} / {_f(c['ideal_cores'], 3)} ({_f(c['vs_ideal'], 2)}) "
                f"| {_f(b.get('cpu_cores'), 3)} ({_f(c['before_over_after'], 1)}) | {_f(n.get('cpu_cores'), 3)} "
                f"| {_lat(a)} | {_lat(b)} | {_lat(n)} | 1/{cam['factor']}, {_f(cam['ideal_decode_ms'], 2)} "
                f"| {_load(a, b, n)} |"
            )
    return lines


def _footprint(runs: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| model | threads | RSS (anon) MB: daemon | T workers | before | naive | floor "
        "| CPU ms/frame: daemon / workers / before / limit / naive "
        "| CPU beyond invoke ms/frame: daemon / workers / before / naive | daemon's main thread beyond invoke "
        "ms/frame (its decode, measured alone) | other load |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def mem(fig: dict[str, Any]) -> str:
        return f"{_mb(fig.get('rss_kb'))} ({_mb(fig.get('anon_kb'))})" if fig else "-"

    for r in runs:
        keys = ("pipeline", "pipeline_workers", "before", "naive", "limit", "derived")
        p, w, b, n, lim, d = (figure(r, k) for k in keys)
        cpu = " / ".join(_f(f.get("cpu_ms_per_frame"), 2) if f else "-" for f in (p, w, b, lim, n))
        beyond = " / ".join(_f(d.get(f"{k}_beyond_invoke_ms"), 2) for k in ("pipeline", "pipeline_workers", "before",
                                                                            "naive"))  # fmt: skip
        lines.append(
            f"| {r['role']} | {r['threads']} | {mem(p)} | {mem(w)} | {mem(b)} | {mem(n)} | {_mb(lim['floor_rss_kb'])} "
            f"| {cpu} | {beyond} | {_f(d.get('main_ms'), 2)} ({_f(r.get('decode_ms'), 2)} at "
            f"1/{r.get('decode_factor')}) | {_load(p, w, b, n)} |"
        )
    return lines


def run_tables(runs: list[dict[str, Any]]) -> list[str]:
    """Throughput, camera rate, footprint and the targets, one row per (model, threads)."""
    lines = [*_throughput(runs), "", *_camera(runs), "", *_footprint(runs), ""]
    lines += ["| model | threads | target | value | limit | met |", "|---|---|---|---|---|---|"]
    for r in runs:
        for t in r["targets"]:
            met = {True: "yes", False: "**NO**", None: "-"}[t["met"]]
            value = t["value"] if isinstance(t["value"], str) else _f(t["value"], 2)
            lines.append(f"| {r['role']} | {r['threads']} | {t['target']} | {value} | {_f(t['limit'], 2)} | {met} |")
    return lines


def markdown(result: dict[str, Any]) -> str:
    """The result as Markdown: throughput/latency, footprint, targets, classify overhead, soak."""
    lines = run_tables(result["runs"]) if result["runs"] else []
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
