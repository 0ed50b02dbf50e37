"""The smoothing state machine, as tables: score sequences in, publish decisions out."""

from __future__ import annotations

import numpy as np
import pytest

from edge.inference.smoothing import Smoother

LABELS = ("a", "b", "c")


def one_hot(i: int | None, hi: float = 0.9) -> np.ndarray:
    """Scores where class i has `hi` and the others share the rest; None: all equal and low."""
    if i is None:
        return np.full(3, 0.1, np.float32)
    s = np.full(3, (1 - hi) / 2, np.float32)
    s[i] = hi
    return s


def run(smoother: Smoother, seq: list[int | None], dt: float = 0.1) -> list[tuple[str, int | None] | None]:
    out = []
    for n, i in enumerate(seq):
        d = smoother.update(one_hot(i), n * dt)
        out.append(None if d is None else (d.reason, d.index))
    return out


@pytest.mark.parametrize(
    ("mode", "frames", "seq", "expected"),
    [
        # stable: a label is published after `frames` agreeing frames; flicker shorter than that is ignored
        ("stable", 3, [0, 0, 0, 1, 0, 0], [None, None, ("change", 0), None, None, None]),
        ("stable", 3, [0, 0, 0, 1, 1, 1], [None, None, ("change", 0), None, None, ("change", 1)]),
        ("stable", 1, [0, 1, 1, 2], [("change", 0), ("change", 1), None, ("change", 2)]),
        ("stable", 2, [0, 1, 0, 1, 1], [None, None, None, None, ("change", 1)]),
        # off: every frame
        ("off", 3, [0, 0, 1], [("frame", 0), ("frame", 0), ("frame", 1)]),
    ],
)
def test_stable_and_off(mode, frames, seq, expected) -> None:
    assert run(Smoother(LABELS, mode=mode, frames=frames, heartbeat_s=0), seq) == expected


@pytest.mark.parametrize(
    ("seq", "threshold", "expected_changes"),
    [
        # moving average over 3 frames: class 1 overtakes class 0 once it dominates the window
        ([0, 0, 0, 1, 1, 1], 0.0, [(0, 0), (4, 1)]),
        # with a threshold, "nothing" (None) until an average reaches it
        ([None, 0, 0, 0], 0.6, [(0, None), (2, 0)]),
        # a single outlier frame does not change an averaged label
        ([0, 0, 0, 1, 0, 0], 0.0, [(0, 0)]),
    ],
)
def test_average(seq, threshold, expected_changes) -> None:
    s = Smoother(LABELS, mode="average", frames=3, threshold=threshold, heartbeat_s=0)
    got = [(n, d[1]) for n, d in enumerate(run(s, seq)) if d is not None]
    assert got == expected_changes


def test_threshold_publishes_nothing_label() -> None:
    s = Smoother(LABELS, mode="stable", frames=2, threshold=0.5, heartbeat_s=0)
    assert run(s, [None, None]) == [None, ("change", None)]
    assert s.state is None


def test_heartbeat_repeats_state_at_interval_with_fresh_scores() -> None:
    s = Smoother(LABELS, mode="stable", frames=1, heartbeat_s=1.0)
    assert s.update(one_hot(0), 0.0).reason == "change"
    assert s.update(one_hot(0, 0.8), 0.5) is None
    # a candidate in progress does not reset the state; the heartbeat carries the last agreeing scores
    s2 = Smoother(LABELS, mode="stable", frames=3, heartbeat_s=1.0)
    for t in (0.0, 0.1, 0.2):
        s2.update(one_hot(0), t)
    s2.update(one_hot(0, 0.7), 0.5)
    d = s2.update(one_hot(1), 1.3)
    assert d is not None and d.reason == "heartbeat" and d.index == 0
    assert d.predictions[0].score == pytest.approx(0.7)
    d = s.update(one_hot(0, 0.6), 1.0)
    assert d is not None and d.reason == "heartbeat" and d.predictions[0].score == pytest.approx(0.6)


def test_heartbeat_without_frames_and_none_before_first_state() -> None:
    s = Smoother(LABELS, mode="stable", frames=2, heartbeat_s=1.0)
    assert s.heartbeat(10.0) is None  # nothing known yet: nothing to repeat
    s.update(one_hot(2), 0.0)
    s.update(one_hot(2), 0.1)
    assert s.heartbeat(0.5) is None
    d = s.heartbeat(1.2)
    assert d is not None and (d.reason, d.index) == ("heartbeat", 2)
    assert s.heartbeat(1.3) is None  # the interval restarts at every publish


def test_top_k_and_labels_in_predictions() -> None:
    s = Smoother(LABELS, mode="off", top_k=2)
    d = s.update(np.array([0.2, 0.7, 0.1], np.float32), 0.0)
    assert [(p.index, p.label) for p in d.predictions] == [(1, "b"), (0, "a")]


@pytest.mark.parametrize(("kwargs", "message"), [({"mode": "median"}, "mode"), ({"frames": 0}, "frames")])
def test_bad_arguments(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        Smoother(LABELS, **kwargs)


def scores(a: float, b: float, c: float | None = None) -> np.ndarray:
    return np.array([a, b, max(0.0, 1 - a - b) if c is None else c], np.float32)


@pytest.mark.parametrize(
    ("frames_scores", "expected_labels"),
    [
        # a scene on the border: the runner-up never beats the current label by the hysteresis (0.1)
        ([(0.8, 0.1)] * 3 + [(0.47, 0.53), (0.53, 0.47)] * 10, [0]),
        # a clear switch beats it: published after `frames` (3) frames
        ([(0.8, 0.1)] * 3 + [(0.2, 0.75)] * 3, [0, 1]),
        # keeping a label needs only the threshold; entering from "nothing" needs threshold + hysteresis
        ([(0.1, 0.1, 0.1)] * 3 + [(0.55, 0.1, 0.1)] * 3 + [(0.65, 0.1, 0.1)] * 3, [None, 0]),
    ],
)
def test_hysteresis_entering_takes_more_than_keeping(frames_scores, expected_labels) -> None:
    s = Smoother(LABELS, mode="stable", frames=3, threshold=0.5, hysteresis=0.1, heartbeat_s=0)
    got = []
    for n, frame in enumerate(frames_scores):
        d = s.update(scores(*frame), n * 0.1)
        if d is not None:
            got.append(d.index)
    assert got == expected_labels


def test_dwell_delays_a_change_but_does_not_lose_it() -> None:
    s = Smoother(LABELS, mode="stable", frames=1, min_dwell_s=10.0, heartbeat_s=0)
    assert s.update(one_hot(0), 0.0).index == 0  # the first state is not a change: no dwell before the next
    assert s.update(one_hot(1), 1.0).index == 1  # a change
    assert s.update(one_hot(0), 2.0) is None  # too soon after the last change: held back ...
    assert s.update(one_hot(0), 9.9) is None
    d = s.update(one_hot(0), 11.0)  # ... and published once the dwell is over, since it still holds
    assert (d.reason, d.index) == ("change", 0)
    assert s.changed_at == 11.0
    assert s.update(one_hot(2), 12.0) is None and s.update(one_hot(0), 25.0) is None  # gone back: nothing to say


def test_a_label_kept_by_hysteresis_is_published_first() -> None:
    s = Smoother(LABELS, mode="stable", frames=1, top_k=1, hysteresis=0.2, heartbeat_s=1.0)
    s.update(scores(0.6, 0.3), 0.0)
    d = s.update(scores(0.45, 0.5), 1.5)  # b leads by 0.05 < 0.2: still a, and the heartbeat says so
    assert d.reason == "heartbeat" and d.predictions[0].label == "a" and d.predictions[0].score == pytest.approx(0.45)


@pytest.mark.parametrize("mode", ["stable", "average", "off"])
def test_every_configured_mode_runs(mode) -> None:
    from edge.config.schema import SMOOTHING_MODES

    assert mode in SMOOTHING_MODES
    assert Smoother(LABELS, mode=mode, frames=1).update(one_hot(0), 0.0) is not None


def test_stale_state_waits_for_fresh_frames_then_is_published_at_once() -> None:
    s = Smoother(LABELS, mode="stable", frames=3, min_dwell_s=10.0, heartbeat_s=1.0)
    assert s.stale(0.0) is None and s.is_stale  # before any state: nothing to mark
    assert run(s, [0, 0, 0]) == [None, None, ("change", 0)]
    d = s.stale(0.5)  # the camera went away: the last state, said to be no longer current
    assert (d.reason, d.index, d.stale) == ("stale", 0, True) and s.current.stale
    beat = s.heartbeat(1.6)
    assert (beat.reason, beat.stale) == ("heartbeat", True)  # heartbeats while away say so too
    # back: the evidence before the loss counts for nothing; `frames` fresh frames, then at once (no dwell)
    assert s.update(one_hot(0), 2.0) is None and s.update(one_hot(0), 2.1) is None
    d = s.update(one_hot(0), 2.2)
    assert (d.reason, d.index, d.stale) == ("resumed", 0, False) and not s.is_stale
    s.stale(3.0)
    got = [s.update(one_hot(1), t) for t in (3.1, 3.2, 3.3)]
    assert got[:2] == [None, None] and (got[2].reason, got[2].index, got[2].stale) == ("change", 1, False)
    assert s.changed_at == 3.3  # within the dwell of the last change, but the frames stopped in between


def test_off_mode_is_current_again_with_the_first_frame() -> None:
    s = Smoother(LABELS, mode="off", heartbeat_s=0)
    s.update(one_hot(0), 0.0)
    assert s.stale(1.0).stale
    d = s.update(one_hot(0), 2.0)
    assert (d.reason, d.stale) == ("frame", False)
