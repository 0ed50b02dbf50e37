"""Dashboards that tell the truth, calmly (issue 13), with a real daemon and a real mosquitto:

- after a broker restart without persistence (mosquitto's default), the retained state is back at once: a
  fresh subscriber has availability, camera, classification and stats within 2 s of the broker's return;
- a borderline scene (two classes alternating frame by frame at 30 fps) publishes at most one change per
  10 s with the defaults, while a clean switch held for 1 s is published within about 1 s;
- the optional Frigate-style `.../label` topic carries the plain label, on change only.
(The camera going away and coming back: tests/edge/service/test_daemon.py; Home Assistant's view of all of it:
tests/edge/mqtt/test_home_assistant.py.)
"""

from __future__ import annotations

import random
import time

from tests.edge.service.test_daemon import T, config, payloads, wait_payload
from tests.support.media import write_video
from tests.support.mosquitto import Subscriber

FPS = 30


def test_broker_restart_without_persistence_dashboard_complete_within_2s(
    mosquitto, subscriber_factory, daemon_factory, demo_model, fm_segments, tmp_path
) -> None:
    steady = write_video(tmp_path / "steady.avi", [fm_segments[0][1]] * 20, fps=10)  # one class, looped
    sub = subscriber_factory(mosquitto, [f"{T}/#"])
    d = daemon_factory(config(tmp_path, mosquitto, demo_model, steady, stats={"interval_s": 60.0},
                              smoothing={"heartbeat_s": 60.0}))  # fmt: skip
    sub.wait_for(lambda ms: {m.topic for m in ms} >= {f"{T}/classification", f"{T}/camera", f"{T}/stats"}, 20)
    wait_payload(sub, f"{T}/classification", lambda p: True, 20)  # classified (not only the run's `start`)
    before = payloads(sub, f"{T}/classification")[-1]
    mosquitto.restart(down_for=2.0)  # no persistence: every retained message is gone
    back = time.monotonic()
    with Subscriber(mosquitto, [f"{T}/#"]) as fresh:
        msgs = fresh.wait_for(lambda ms: {m.topic for m in ms} >= {f"{T}/availability", f"{T}/camera",
                                                                 f"{T}/classification", f"{T}/stats"}, 5)  # fmt: skip
        complete = time.monotonic() - back
        got = {m.topic: m for m in msgs}
    assert complete <= 2.0, f"dashboard complete {complete:.2f} s after the broker's return"
    assert got[f"{T}/availability"].text == "online" and got[f"{T}/camera"].text == "online"
    cls = got[f"{T}/classification"].json()
    assert cls["reason"] == "reconnect" and cls["label"] == before["label"]
    assert cls["changed_at"] == before["changed_at"]  # the same state, said again
    assert d.stop()[0] == 0


def _alternating_clip(tmp_path, segments) -> tuple:
    """12 s of class A; 3 s of class B (a clean switch); 15 s of A and B alternating at random, frame by frame."""
    (label_a, a), (label_b, b) = segments[:2]
    rng = random.Random(7)
    frames = [a] * (12 * FPS) + [b] * (3 * FPS) + [rng.choice((a, b)) for _ in range(15 * FPS)]
    return write_video(tmp_path / "alternating.avi", frames, fps=FPS), label_a, label_b


def test_a_borderline_scene_is_calm_and_a_clean_switch_is_quick(
    mosquitto, subscriber_factory, daemon_factory, demo_model, fm_segments, tmp_path
) -> None:
    clip, label_a, label_b = _alternating_clip(tmp_path, fm_segments)
    sub = subscriber_factory(mosquitto, [f"{T}/#"])
    cfg = config(tmp_path, mosquitto, demo_model, clip, camera={"loop": False},
                 smoothing={"mode": "stable", "frames": 3, "hysteresis": 0.1, "min_dwell_s": 10.0, "heartbeat_s": 0},
                 mqtt={"label_topic": True})  # the defaults, written out  # fmt: skip
    d = daemon_factory(cfg)
    assert d.wait(60) == 0  # the clip ends: the daemon exits
    changes = [p for p in payloads(sub, f"{T}/classification") if p["reason"] == "change"]
    assert [p["label"] for p in changes[:2]] == [label_a, label_b], changes
    # The clip's first frame, from the first change (its `frame`-th classified frame). Frames dropped under load
    # before it would make this later, and the delay below smaller: the precise figure is the benchmark's.
    start = _seconds(changes[0]["timestamp"]) - (changes[0]["frame"] - 1) / FPS
    switch = _seconds(changes[1]["timestamp"]) - (start + 12.0)
    assert switch <= 1.0, f"the clean switch was published {switch:.2f} s after it happened"
    borderline = [p for p in changes if _seconds(p["timestamp"]) >= start + 15.0]
    assert len(borderline) <= 2, [(p["label"], p["timestamp"]) for p in borderline]  # 15 s: at most 1 per 10 s
    labels = [m.text for m in sub.received(f"{T}/label")]
    assert labels == ["", *(p["label"] for p in changes)], (labels, changes)  # cleared at start, then on change
    with Subscriber(mosquitto, [f"{T}/label"]) as late:  # retained: a late automation still sees the state
        (kept,) = late.wait_for(lambda ms: len(ms) == 1)
    assert (kept.text, kept.retain) == (changes[-1]["label"], True)


def _seconds(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
