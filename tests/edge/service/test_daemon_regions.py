"""Regions of interest end to end: frames made of two known images side by side, two regions, two right labels.

A real `edge-daemon run` on a real MJPG clip, to a real mosquitto: each region is cropped from the one decoded
frame, classified, and published on `edge/<id>/<region>/classification` (and `/label`), with its own Home
Assistant entities; the whole frame is not published on the device's own classification topic then.
"""

from __future__ import annotations

import pytest

from tests.edge.service.test_daemon import DEV, T, config, payloads


@pytest.mark.parametrize(
    ("regions", "camera"),
    [
        ([{"name": "left", "box": [0, 0, 0.5, 1]}, {"name": "right", "box": [0.5, 0, 0.5, 1]}], {}),
        ([{"name": "left", "box": [0, 0, 160, 120]}, {"name": "right", "box": [160, 0, 160, 120]}],
         {"width": 320, "height": 120}),
    ],
    ids=["fractions", "pixels"],
)  # fmt: skip
def test_two_regions_two_right_labels(regions, camera, side_by_side, mosquitto, subscriber_factory, daemon_factory,
                                      demo_model, tmp_path) -> None:  # fmt: skip
    clip, label_a, label_b = side_by_side
    sub = subscriber_factory(mosquitto, [f"{T}/#", "homeassistant/#"])
    cfg = config(tmp_path, mosquitto, demo_model, clip, camera=camera, mqtt={"label_topic": True})
    cfg.write_text(cfg.read_text() + "".join(
        f'\n[[regions]]\nname = "{r["name"]}"\nbox = {r["box"]}\n' for r in regions))  # fmt: skip
    d = daemon_factory(cfg)
    fresh = {f"{T}/left/classification", f"{T}/right/classification", f"{T}/left/label", f"{T}/right/label"}
    sub.wait_for(lambda ms: {m.topic for m in ms if m.payload and b'"reason":"start"' not in m.payload} >= fresh, 20)
    starts = [m.json() for m in sub.received() if m.topic.endswith("/classification") and m.json()["stale"]]
    assert {(m["reason"], m["label"]) for m in starts} == {("start", None)} and len(starts) == 2  # one per region
    left, right = payloads(sub, f"{T}/left/classification")[-1], payloads(sub, f"{T}/right/classification")[-1]
    assert (left["label"], right["label"]) == (label_a, label_b), (left, right)
    assert sub.received(f"{T}/left/label")[-1].text == label_a
    assert not sub.received(f"{T}/classification")  # the whole frame is not classified with regions
    assert d.stop()[0] == 0
    configs = {m.topic: m.json() for m in sub.received() if m.topic.startswith("homeassistant/") and m.payload}
    left_label = configs[f"homeassistant/sensor/{DEV}_left_label/config"]
    assert left_label["state_topic"] == f"{T}/left/classification" and left_label["name"] == "left Label"
    assert f"homeassistant/sensor/{DEV}_label/config" not in configs
    assert f"homeassistant/binary_sensor/{DEV}_camera/config" in configs  # the device's own entities stay
