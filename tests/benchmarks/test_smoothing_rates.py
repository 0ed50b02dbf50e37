"""The smoothing benchmark's claims, on a short run (simulated time: deterministic, not a timed test)."""

from __future__ import annotations

from benchmarks.smoothing_rates import run


def test_defaults_are_calm_and_a_clean_switch_is_quick() -> None:
    result = run(seconds=60.0, fps=30.0)
    for name, row in result.items():
        if "defaults" in name:
            assert max(row["alternating"], row["random A/B"], row["blend"]) <= 1 / 10 + 1 / 60, (name, row)
            assert row["switch_delay_s"] <= 1.0, (name, row)
    assert result["stable, before (frames 3)"]["random A/B"] > 1.0  # the scene does flicker without them
    assert result["off"]["alternating"] == 30.0
