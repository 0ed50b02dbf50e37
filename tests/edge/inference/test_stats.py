"""The stats window's rates: counts over the real elapsed time, never over a near-zero interval (issue 27)."""

from __future__ import annotations

import pytest

from edge.inference.stats import MIN_WINDOW_S, StatsWindow


def feed(window: StatsWindow, start: float, fps: float, seconds: float) -> int:
    """Classify frames at `fps` from `start` for `seconds`; returns how many."""
    n = round(fps * seconds)
    for i in range(n):
        window.add_inference(5.0, start + i / fps)
    return n


def test_the_clock_starts_at_the_first_frame_not_at_the_loop() -> None:
    w = StatsWindow(100.0)  # the loop starts; the camera takes 3 s to open
    n = feed(w, 103.0, 10.0, 5.0)
    s = w.summary(108.0, captured=n, dropped=0, classified=n)
    assert s["fps_classified"] == pytest.approx(10.0) and s["fps_captured"] == pytest.approx(10.0)


def test_a_stats_message_right_after_a_connect_is_no_spike() -> None:
    w = StatsWindow(100.0)
    n = feed(w, 100.01, 1000.0, 0.02)  # a burst of 20 buffered frames in 20 ms
    first = w.summary(100.03, captured=1443, dropped=0, classified=n)
    assert first["fps_classified"] == 0.0 and first["fps_captured"] == 0.0  # no rate of its own yet
    assert first["inference_ms_p50"] == 5.0
    m = feed(w, 100.1, 10.0, 4.9)
    later = w.summary(105.0, captured=1443 + m, dropped=0, classified=n + m)
    assert later["fps_classified"] == pytest.approx((n + m) / 4.99)  # the burst counted, over the real 4.99 s


def test_a_short_window_repeats_the_last_real_rates_and_goes_on() -> None:
    w = StatsWindow(0.0, flowing=True)
    n = feed(w, 0.0, 10.0, 30.0)
    assert w.summary(30.0, captured=n, dropped=0, classified=n)["fps_classified"] == pytest.approx(10.0)
    m = feed(w, 30.0, 20.0, 0.2)  # a reconnect 0.2 s later asks for stats at once
    short = w.summary(30.2, captured=n + m, dropped=0, classified=n + m)
    assert short["fps_classified"] == pytest.approx(10.0)  # the last real rate, not 4 / 0.2 s
    k = feed(w, 30.2, 20.0, 4.8)
    assert w.summary(35.0, captured=n + m + k, dropped=0, classified=n + m + k)["fps_classified"] == pytest.approx(
        (m + k) / 5.0)  # fmt: skip


def test_no_frame_yet_is_zero_and_frames_without_classification_still_count() -> None:
    w = StatsWindow(0.0)
    assert w.summary(10.0, 0, 0, 0)["fps_captured"] == 0.0
    s = w.summary(20.0, captured=100, dropped=40, classified=0)  # frames came, inference failed on every one
    assert s["fps_captured"] == pytest.approx(5.0) and s["fps_dropped"] == pytest.approx(2.0)
    assert MIN_WINDOW_S >= 1.0
