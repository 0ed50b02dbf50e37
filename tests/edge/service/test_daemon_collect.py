"""`[collect]` in a real `edge-daemon run`: the frames the policies pick are on disk in the trainer's layout,
cropped to their region, with their sidecars, readable by the service user only, counted in the stats."""

from __future__ import annotations

import json
import stat

import cv2

from tests.edge.service.test_daemon import T, config, payloads


def test_hard_frames_are_kept_per_region(mosquitto, subscriber_factory, daemon_factory, demo_model, tmp_path,
                                         side_by_side) -> None:  # fmt: skip
    clip, label_a, label_b = side_by_side  # 320x120: class A left, class B right
    store = tmp_path / "collected"
    sub = subscriber_factory(mosquitto, [f"{T}/stats"])
    cfg = config(tmp_path, mosquitto, demo_model, clip, stats={"interval_s": 1.0},
                 collect={"enabled": True, "dir": str(store), "every_s": 0.3, "max_per_hour": 6,
                          "dedupe_s": 0})  # a still clip: every frame counts here  # fmt: skip
    cfg.write_text(cfg.read_text() + '\n[[regions]]\nname = "left"\nbox = [0, 0, 0.5, 1]\n'
                   '\n[[regions]]\nname = "right"\nbox = [0.5, 0, 0.5, 1]\n')  # fmt: skip
    d = daemon_factory(cfg)
    # the hourly cap is applied on the store's thread: the frame it refuses may come a stats message after the 6th
    stats = sub.wait_for(lambda ms: any(m.json().get("collected", 0) >= 6 and m.json()["collect_capped"] >= 1
                                        for m in ms), 30)  # fmt: skip
    assert d.stop()[0] == 0
    images = sorted(store.glob("*/*.jpg"))
    assert len(images) == 6  # max_per_hour, across both regions
    regions = set()
    for image in images:
        sidecar = json.loads(image.with_suffix(".json").read_text())
        regions.add(sidecar["region"])
        assert image.parent.name == sidecar["label"] == {"left": label_a, "right": label_b}[sidecar["region"]]
        assert sidecar["reason"] == ["every_s"] and sidecar["device"] == "dev1" and sidecar["model"] == "demo_model"
        assert len(sidecar["scores"]) == 10 and sidecar["top_k"][0]["label"] == sidecar["label"]
        assert cv2.imread(str(image)).shape[:2] == (120, 160)  # the region's crop, at the frame's full size
        assert stat.S_IMODE(image.stat().st_mode) == 0o600
        assert image.name.endswith(f"_dev1_{sidecar['region']}.jpg")
    assert regions == {"left", "right"}
    assert stat.S_IMODE(store.stat().st_mode) == 0o700
    last = [m.json() for m in stats][-1]
    assert last["collect_capped"] >= 1 and last["collect_bytes"] > 0 and last["collect_dropped"] == 0
    assert payloads(sub, f"{T}/stats")


def test_a_still_scene_is_kept_once_per_region(mosquitto, subscriber_factory, daemon_factory, demo_model, tmp_path,
                                               side_by_side) -> None:  # fmt: skip
    """The default `dedupe_s`: the clip is one picture over and over, so each region keeps it once, and the
    frames every_s picks after that are counted as duplicates, not kept and not charged to the hourly cap."""
    clip, _, _ = side_by_side
    store = tmp_path / "collected"
    sub = subscriber_factory(mosquitto, [f"{T}/stats"])
    cfg = config(tmp_path, mosquitto, demo_model, clip, stats={"interval_s": 1.0},
                 collect={"enabled": True, "dir": str(store), "every_s": 0.3, "max_per_hour": 6})  # fmt: skip
    cfg.write_text(cfg.read_text() + '\n[[regions]]\nname = "left"\nbox = [0, 0, 0.5, 1]\n'
                   '\n[[regions]]\nname = "right"\nbox = [0.5, 0, 0.5, 1]\n')  # fmt: skip
    d = daemon_factory(cfg)
    stats = sub.wait_for(lambda ms: any(m.json().get("collect_duplicates", 0) >= 6 for m in ms), 30)
    assert d.stop()[0] == 0
    last = [m.json() for m in stats][-1]
    assert (last["collected"], last["collect_capped"]) == (2, 0), last  # (a drop: a write slower than the queue)
    assert sorted(json.loads(p.read_text())["region"] for p in store.glob("*/*.json")) == ["left", "right"]
