"""Tables for the benchmark suite's pure helpers: percentiles, growth slope, timestamps, targets."""

from __future__ import annotations

import math

import pytest

from benchmarks import report, tables
from benchmarks.procstat import Sample, other_load, percentile, slope_per_hour
from benchmarks.subscriber import capture_epoch


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([1.0], 50, 1.0),
        ([1.0, 2.0, 3.0, 4.0], 50, 2.5),
        ([3.0, 1.0, 2.0], 0, 1.0),
        ([3.0, 1.0, 2.0], 100, 3.0),
        (list(range(101)), 99, 99.0),
    ],
)
def test_percentile(values: list[float], q: float, expected: float) -> None:
    assert percentile(values, q) == pytest.approx(expected)


def test_percentile_of_nothing_is_nan() -> None:
    assert math.isnan(percentile([], 50))


def _samples(rss_kb: list[int], dt: float = 60.0) -> list[Sample]:
    return [Sample(i * dt, kb, i * 0.5, i * 1.0, i * 2.0, i * 0.5) for i, kb in enumerate(rss_kb)]


@pytest.mark.parametrize(
    ("rss_kb", "mb_per_h"),
    [
        ([1024, 1024, 1024, 1024], 0.0),
        ([1024, 2048, 3072], 60.0),  # 1 MiB per minute
        ([4096, 3072, 2048], -60.0),
    ],
)
def test_slope_per_hour(rss_kb: list[int], mb_per_h: float) -> None:
    assert slope_per_hour(_samples(rss_kb)) == pytest.approx(mb_per_h)


def test_other_load_excludes_our_own_cpu() -> None:
    # the machine was busy 1 s per second, of which 0.5 s were ours: 0.5 cores from elsewhere
    assert other_load(_samples([1, 1, 1], dt=1.0)) == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        ("1970-01-01T00:00:01.500000+00:00", 1.5),
        ("1970-01-01T00:00:02Z", 2.0),
        (3.25, 3.25),
        ("not a time", None),
        (None, None),
    ],
)
def test_capture_epoch(stamp: object, expected: float | None) -> None:
    assert capture_epoch(stamp) == expected


def _run(role: str, fps: float, p50: float, cpu_cores: float, rss_kb: float, naive_fps: float, threads: int = 1,
         main_ms: float = 0.5) -> dict:  # fmt: skip
    limit = {"fps": 100.0, "invoke_ms": {"p50": 10.0}, "floor_rss_kb": 1000, "cpu_ms_per_frame": 10.0}
    daemon = {"fps": fps, "latency_ms": {"p50": p50, "p99": p50 + 5}, "rss_kb": rss_kb, "cpu_ms_per_frame": 9.0,
              "startup_s": 1.0, "main_cpu_ms_per_frame": main_ms}  # fmt: skip
    naive = {"fps": naive_fps, "latency_ms": {"p50": 50.0, "p99": 90.0}, "rss_kb": 2000, "cpu_ms_per_frame": 12.0,
             "startup_s": 2.0}  # fmt: skip
    # camera rate: 5 fps classified, ideal = 5 x (2 ms decode + 10 ms invoke) = 0.06 cores
    cam = {"ideal_decode_ms": 2.0, "factor": 2,
           "daemon": {"fps": 5.0, "cpu_cores": cpu_cores, "latency_ms": {"p50": p50}, "cpu_ms_per_frame": 13.0},
           "before": {"fps": 5.0, "cpu_cores": 0.2}, "naive": {"fps": 5.0, "cpu_ms_per_frame": 40.0}}  # fmt: skip
    run = {"role": role, "threads": threads, "limit": limit, "pipeline": daemon, "naive": naive,
           "camera": {"1280x720": cam}, "max_rate": 5.0, "decode_ms": 0.4}  # fmt: skip
    run["derived"] = report.derive(run)
    return run


@pytest.mark.parametrize(
    ("run", "met"),
    [
        # ratio 0.95 >= 0.90; CPU 0.065 / 0.06 = 1.08 <= 1.15; before/after 0.2/0.065 = 3.1; p50 12 <= 13; naive; RSS
        (_run("large", 95.0, 12.0, 0.065, 2000 + 4 * 1024, 50.0), [True, True, True, True, True, True]),
        (_run("large", 89.0, 14.0, 0.08, 2000 + 6 * 1024, 95.0), [False, False, False, False, False, False]),
        # 2 threads: 0.85 is enough
        (_run("large", 86.0, 12.0, 0.065, 1200, 50.0, threads=2), [True, True, True, True, True, True]),
        # small: the main thread's CPU beyond invoke (its decode included), against 1 ms
        (_run("small", 80.0, 12.0, 0.065, 1200, 50.0, main_ms=0.9), [True, True, True, True, True, True]),
        (_run("small", 80.0, 12.0, 0.065, 1200, 50.0, main_ms=1.1), [False, True, True, True, True, True]),
    ],
)
def test_targets(run: dict, met: list[bool]) -> None:
    assert [t["met"] for t in report.targets(run)] == met


def test_main_thread_beyond_invoke_takes_invoke_off_only_where_the_main_thread_invokes() -> None:
    fig = {"main_cpu_ms_per_frame": 12.0, "invoke_ms_mean": 10.5}
    assert report.main_beyond_invoke(fig, invokes_on_main=True) == pytest.approx(1.5)
    assert report.main_beyond_invoke(fig, invokes_on_main=False) == 12.0


def test_tables_render_every_run() -> None:
    run = _run("large", 96.0, 12.0, 0.065, 1200, 50.0, threads=2)
    run.update(targets=report.targets(run), reference=None)
    text = tables.markdown({"runs": [run]})
    assert "| large | 2 | 100.0 (10.00)" in text
    assert "| large | 2 | 1280x720, 5 | 5.0 | 0.065 / 0.060 (1.08) | 0.200 (3.1)" in text
    assert text.count("| large | 2 |") == 3 + len(run["targets"])
