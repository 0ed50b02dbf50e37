"""Pure: the suite's per-run figures as Markdown tables, the other processes' CPU beside every figure."""

from __future__ import annotations

from typing import Any

from benchmarks.report import _f, _lat, _mb, _ok


def _load(*figs: dict[str, Any]) -> str:
    """The other load (cores) during each of the runs a row shows, e.g. `0.02 / 0.41`."""
    return " / ".join(_f(f.get("other_load_cores"), 2) for f in figs if f) or "-"


def _fps(run: dict[str, Any], key: str) -> str:
    fig = _ok(run, key)
    ratio = run["derived"].get(f"{key}_ratio")
    return f"{_f(fig.get('fps'))} ({_f(ratio, 2)})" if fig else "-"


def _throughput(runs: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| model | threads | limit fps (invoke p50 ms) | litert-benchmark ms | daemon fps (/ limit): T threads x 1 "
        "| 1 thread x T workers | before | naive | dropped frames/s | start-up s daemon / naive | other load |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        p, n, lim, ref = _ok(r, "pipeline"), _ok(r, "naive"), r["limit"], r.get("reference") or {}
        dropped = (p.get("last_stats") or {}).get("fps_dropped")
        lines.append(
            f"| {r['role']} | {r['threads']} | {_f(lim['fps'])} ({_f(lim['invoke_ms']['p50'], 2)}) "
            f"| {_f(ref.get('median_ms'), 2)} | {_fps(r, 'pipeline')} | {_fps(r, 'pipeline_workers')} "
            f"| {_fps(r, 'before')} | {_fps(r, 'naive')} | {_f(dropped)} "
            f"| {_f(p.get('startup_s'), 2)} / {_f(n.get('startup_s'), 2)} "
            f"| {_load(p, _ok(r, 'pipeline_workers'), _ok(r, 'before'), n)} |"
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
        p, w, b, n, lim, d = (_ok(r, k) for k in keys)
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



