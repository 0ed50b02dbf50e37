"""The drift reference and tracker as tables: what the trainer writes reads back, each malformed field is named,
the tracker's states follow its window with hysteresis."""

from __future__ import annotations

import numpy as np
import pytest

from edge.inference.drift import DriftRules, DriftTracker, js_divergence
from edge.inference.reference import build_reference, parse_reference, unknown_rate

LABELS = ("a", "b")


def _scores(rng: np.random.Generator, n: int, confident: bool) -> tuple[np.ndarray, np.ndarray]:
    y = rng.integers(0, 2, n)
    top = rng.uniform(0.85, 1.0, n) if confident else rng.uniform(0.5, 0.6, n)
    s = np.zeros((n, 2))
    s[np.arange(n), y], s[np.arange(n), 1 - y] = top, 1 - top
    return y, s


def test_reference_round_trip_and_calibrated_thresholds() -> None:
    y, s = _scores(np.random.default_rng(0), 2000, True)
    ref = parse_reference(build_reference(LABELS, y, s), LABELS)
    assert ref.images == 2000 and ref.bins == 5 and abs(ref.frequency.sum() - 1) < 1e-6
    assert ref.threshold.min() >= 0.85 and ref.threshold.max() < 0.9  # the 5 % quantile of U(0.85, 1)
    assert unknown_rate(ref, s) <= 0.05
    assert unknown_rate(ref, _scores(np.random.default_rng(1), 500, False)[1]) == 1.0


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.update(version=2), "reference.version: 2, this daemon reads version 1"),
    (lambda d: d.update(images=0), "reference.images: 0 is not a positive whole number"),
    (lambda d: d["classes"].pop(), "reference.classes: 1 classes, the model has 2"),
    (lambda d: d["classes"][1].update(label="c"), "reference.classes[1].label: 'c', the model's class 1 is 'b'"),
    (lambda d: d["classes"][0].update(threshold=float("nan")), "reference.classes[0].threshold: nan is not a finite"),
    (lambda d: d["classes"][0].update(frequency=1.5), "reference.classes[0].frequency: 1.5 is outside [0, 1]"),
    (lambda d: d["classes"][0]["top_score"].append(0), "reference.classes[0].top_score: not a list of 5 fractions"),
    (lambda d: d["classes"][0]["top_score"].__setitem__(0, 0.5),
     "reference.classes[0].top_score: the fractions sum to"),
    (lambda d: d.clear(), "reference.version: None"),
])  # fmt: skip
def test_a_malformed_reference_names_its_field(change, message) -> None:
    y, s = _scores(np.random.default_rng(0), 200, True)
    doc = build_reference(LABELS, y, s)
    change(doc)
    with pytest.raises(ValueError, match="^" + message.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")
                       .replace("(", r"\(")):  # fmt: skip
        parse_reference(doc, LABELS)


def test_js_divergence_bounds() -> None:
    p = np.array([1.0, 0.0])
    assert js_divergence(p, p) == 0.0
    assert js_divergence(p, np.array([0.0, 1.0])) == pytest.approx(1.0)


def test_tracker_learning_ok_drifting_and_back_with_hysteresis() -> None:
    rng = np.random.default_rng(0)
    y, s = _scores(rng, 2000, True)
    ref = parse_reference(build_reference(LABELS, y, s), LABELS)
    rules = DriftRules(window_s=100, min_frames=50, threshold=0.3, unknown_rate=0.5, hysteresis=0.25)
    t, now, seen = DriftTracker(rules, ref, 0.0), 0.0, []

    def feed(scores: np.ndarray, seconds: float) -> None:
        nonlocal now
        for i in range(int(seconds * 5)):
            if (state := t.update(scores[i % len(scores)], now)) is not None:
                seen.append((round(now, 1), state.state))
            now += 0.2

    assert t.state.state == "learning"
    feed(_scores(rng, 1000, True)[1], 300)  # in distribution
    assert [s for _, s in seen] == ["ok"] and seen[0][0] >= 10  # after 50 frames at 5 fps
    feed(_scores(rng, 1000, False)[1], 300)  # unsure everywhere: every frame unknown
    assert [s for _, s in seen] == ["ok", "drifting"] and t.drifting and t.state.unknown_rate == 1.0
    feed(_scores(rng, 1000, True)[1], 300)
    assert [s for _, s in seen] == ["ok", "drifting", "ok"]


def test_without_a_reference_the_state_is_unavailable_with_its_reason() -> None:
    t = DriftTracker(DriftRules(), None, 5.0, "x carries no drift reference")
    assert t.update(np.array([0.9, 0.1]), 6.0) is None
    assert (t.state.state, t.state.reason, t.drifting, t.is_unknown(np.array([0.1, 0.9]))) == (
        "unavailable", "x carries no drift reference", False, False)
