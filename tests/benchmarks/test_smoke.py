"""The benchmark suite in smoke mode (seconds): it runs end to end and its figures have the right shape.

Speed targets are NOT asserted here (they live in the suite's report); this only keeps the suite from rotting:
real mosquitto, the real daemon (one 2-thread interpreter, and two 1-thread workers), the naive loop and the
subscriber process all run, at full speed and at camera rate (a 640x480 MJPEG clip at 30 fps, `max_rate = 5`,
decoded at a reduced size), and every figure is a positive finite number.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import inputs

REPO = Path(__file__).resolve().parents[2]


def _positive(value: object, name: str) -> None:
    assert isinstance(value, int | float), f"{name} is {value!r}"
    assert math.isfinite(value) and value > 0, f"{name} is {value!r}"


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    sys.path.insert(0, str(REPO))
    from tests.support.mosquitto import mosquitto_available

    if not mosquitto_available():
        pytest.skip("mosquitto broker not installed (apt-get install mosquitto)")
    if not any(m["role"] == "small" for m in inputs.models(smoke=True)):
        pytest.skip(f"no small model: neither {inputs.DEMO} nor the published models in {inputs.DATA}")
    out = tmp_path_factory.mktemp("bench") / "smoke.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.suite", "--smoke", "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text()), proc.stdout


def test_smoke_prints_the_tables(smoke: tuple[dict, str]) -> None:
    _, stdout = smoke
    assert "| model | threads | limit fps" in stdout
    assert "| model | threads | target | value | limit | met |" in stdout
    assert "figures written to" in stdout


def test_smoke_limit_and_pipeline_figures_are_positive(smoke: tuple[dict, str]) -> None:
    result, _ = smoke
    assert result["mode"] == "smoke"
    assert result["machine"]["cores"] >= 1
    _positive(result["decode_ms"], "decode_ms")
    (run,) = result["runs"]
    assert run["role"] == "small" and run["threads"] == 2
    for key in ("fps", "cpu_ms_per_frame", "floor_rss_kb"):
        _positive(run["limit"][key], f"limit.{key}")
    _positive(run["limit"]["invoke_ms"]["p50"], "limit.invoke_ms.p50")
    cam = run["camera"]["640x480"]
    figures = {"pipeline": run["pipeline"], "pipeline_workers": run["pipeline_workers"], "naive": run["naive"],
               "camera daemon": cam["daemon"], "camera naive": cam["naive"]}  # fmt: skip
    for kind, fig in figures.items():
        assert "error" not in fig, fig.get("error")
        for key in ("fps", "startup_s", "rss_kb", "anon_kb", "cpu_ms_per_frame"):
            _positive(fig[key], f"{kind}.{key}")
        # one thread's CPU comes in clock ticks (10 ms): a few frames at camera rate may not fill one
        assert math.isfinite(fig["main_cpu_ms_per_frame"]) and fig["main_cpu_ms_per_frame"] >= 0, kind
        if not kind.startswith("camera"):
            _positive(fig["main_cpu_ms_per_frame"], f"{kind}.main_cpu_ms_per_frame")
        for q in ("p50", "p95", "p99"):
            _positive(fig["latency_ms"][q], f"{kind}.latency_ms.{q}")
        assert fig["latency_ms"]["p50"] <= fig["latency_ms"]["p99"]
        assert fig["frames"] >= 2 and fig["other_load_cores"] >= 0
    stats = run["pipeline"]["last_stats"]
    assert stats.get("frames_classified", 0) > 0, stats  # the daemon's own stats arrived on MQTT
    for key in ("pipeline_ratio", "pipeline_workers_ratio", "main_ms", "pipeline_beyond_invoke_ms"):
        _positive(run["derived"][key], f"derived.{key}")
    # camera rate: about max_rate classified of 30 captured, each decoded at a reduced size
    assert cam["factor"] >= 2 and cam["daemon"]["fps"] < 10
    assert cam["daemon"]["last_stats"]["fps_captured"] > 3 * cam["daemon"]["fps"]
    _positive(run["derived"]["camera_640x480"]["vs_ideal"], "vs_ideal")


def test_smoke_targets_are_evaluated(smoke: tuple[dict, str]) -> None:
    result, _ = smoke
    targets = result["runs"][0]["targets"]
    names = [t["target"] for t in targets]
    assert any("latency p50" in n for n in names) and any("RSS" in n for n in names)
    assert all(t["met"] in (True, False) for t in targets), targets


def test_smoke_classify_overhead(smoke: tuple[dict, str]) -> None:
    result, _ = smoke
    if not result.get("classify_overhead"):
        pytest.skip(f"large model absent: {inputs.LARGE}")
    for c in result["classify_overhead"]:
        for key in ("classify_ms", "invoke_ms", "preprocess_ms", "ratio"):
            _positive(c[key], key)


def test_smoke_breakdown_attributes_every_stage(smoke: tuple[dict, str]) -> None:
    result, _ = smoke
    (b,) = result["breakdown"]
    stages = b["median_ms"]
    for key in ("read", "decode", "preprocess", "invoke", "scores", "smoothing_top_k", "payload", "publish"):
        _positive(stages[key], key)
    parts = sum(v for k, v in stages.items() if k not in ("read", "decode", "invoke", "overhead_excl_decode"))
    assert stages["overhead_excl_decode"] == pytest.approx(parts)


def test_soak_mode_reports_growth_drops_and_reconnects(tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO))
    from tests.support.mosquitto import mosquitto_available

    if not mosquitto_available():
        pytest.skip("mosquitto broker not installed (apt-get install mosquitto)")
    if not any(m["role"] == "small" for m in inputs.models(smoke=True)):
        pytest.skip(f"no small model: neither {inputs.DEMO} nor the published models in {inputs.DATA}")
    out = tmp_path / "soak.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.suite", "--smoke", "--soak", "3", "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "| soak | seconds |" in proc.stdout
    soak = json.loads(out.read_text())["soak"]
    fig = soak["pipeline"]
    _positive(fig["fps"], "soak fps")
    _positive(fig["rss_kb_first"], "soak rss_kb_first")
    assert isinstance(fig["rss_growth_mb_per_h"], float)  # any sign; finite
    assert fig["dropped_frames"] is not None and fig["dropped_frames"] >= 0
    assert fig["mqtt_reconnects"] == 0  # nothing disturbed the broker
    assert [t["target"] for t in soak["targets"]] == ["RSS growth per 30 min (MB) <= 2"]
