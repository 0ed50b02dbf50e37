"""Near-duplicates: the perceptual hash on real pictures (camera noise and JPEG keep a scene near, another garment
is far), the window, and the collector on a still scene (one frame per `dedupe_s`, the hourly cap untouched)."""

from __future__ import annotations

import dataclasses
import itertools
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.collect.collector import Collector
from edge.collect.policy import RecentPictures
from edge.config.schema import CollectConfig
from edge.frames.similar import NEAR, dhash, distance, near
from edge.inference.postprocess import Prediction
from edge.sources.camera import CapturedFrame

SCORES = np.array([0.5, 0.3, 0.2], np.float32)
PREDICTIONS = (Prediction(0, "a", 0.5), Prediction(1, "b", 0.3))


def camera(image: np.ndarray, rng: np.random.Generator, quality: int = 85) -> np.ndarray:
    """The picture as a camera would send it again: sensor noise, then JPEG."""
    noisy = np.clip(image.astype(np.int16) + rng.normal(0, 4, image.shape), 0, 255).astype(np.uint8)
    return cv2.imdecode(cv2.imencode(".jpg", noisy, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], cv2.IMREAD_COLOR)


def jpeg(image: np.ndarray) -> np.ndarray:
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].reshape(-1)


def test_noise_and_jpeg_keep_a_scene_near_and_other_garments_are_far(fm_segments) -> None:
    rng = np.random.default_rng(1)
    pictures = [cv2.resize(img, (320, 240), interpolation=cv2.INTER_LINEAR) for _, img in fm_segments]
    hashes = [dhash(p) for p in pictures]
    for picture, h in zip(pictures, hashes, strict=True):
        again = [distance(h, dhash(camera(picture, rng, q))) for q in (95, 75, 60)]
        assert max(again) <= NEAR, again
    apart = [distance(a, b) for a, b in itertools.combinations(hashes, 2)]
    assert min(apart) > NEAR, sorted(apart)
    assert dhash(pictures[0]) == dhash(cv2.cvtColor(pictures[0], cv2.COLOR_BGR2GRAY))  # gray or colour alike


def test_the_window_forgets() -> None:
    recent = RecentPictures(60.0)
    assert not recent.duplicate(0b1011, 0.0)
    recent.add(0b1011, 0.0)
    assert recent.duplicate(0b1011 ^ 0b111, 30.0)  # 3 bits apart: near
    assert not recent.duplicate(2**64 - 1, 30.0)  # another scene
    assert not recent.duplicate(0b1011, 60.0)  # the window has passed
    off = RecentPictures(0.0)
    off.add(5, 0.0)
    assert not off.duplicate(5, 0.0) and near(5, 5)


def collector(tmp_path: Path, **rules) -> Collector:
    cfg = dataclasses.replace(CollectConfig(), enabled=True, dir=str(tmp_path / "kept"), below_score=0.9, **rules)
    return Collector(cfg, "dev1", [(None, (0.0, 0.0, 1.0, 1.0))]).start()


def offer_all(c: Collector, frames: list[np.ndarray | None], step_s: float) -> dict[str, int]:
    """Each frame picked by `below_score` at simulated `step_s` apart; waits for the store to settle each."""
    for seq, image in enumerate(frames, 1):
        data = np.frombuffer(b"not a jpeg", np.uint8) if image is None else jpeg(image)
        c.taken(CapturedFrame(seq, seq * step_s, jpeg=data))
        c.offer(seq, 0, PREDICTIONS, SCORES, now=seq * step_s, changed=False, model="m", captured_at=1e9 + seq,
                frame_no=seq)  # fmt: skip
        settle(c, seq)
    c.close()
    return c.counters()


def settle(c: Collector, offered: int) -> None:
    """Until the store has decided on every frame offered (kept, duplicate, capped or dropped)."""
    deadline = time.monotonic() + 10
    decided = ("collected", "collect_duplicates", "collect_capped", "collect_dropped")
    while sum(c.counters()[k] for k in decided) < offered:
        assert time.monotonic() < deadline, c.counters()
        time.sleep(0.002)


def test_a_still_scene_keeps_one_frame_per_window(tmp_path: Path, fm_segments) -> None:
    rng = np.random.default_rng(2)
    scene = cv2.resize(fm_segments[3][1], (320, 240))
    frames = [camera(scene, rng) for _ in range(200)]  # 200 s at one picked frame a second
    counts = offer_all(collector(tmp_path / "on", dedupe_s=60.0), frames, 1.0)
    assert (counts["collected"], counts["collect_duplicates"], counts["collect_capped"]) == (4, 196, 0), counts
    assert len(list((tmp_path / "on" / "kept").glob("*/*.jpg"))) == 4
    counts = offer_all(collector(tmp_path / "off", dedupe_s=0.0), frames, 1.0)
    assert (counts["collected"], counts["collect_duplicates"], counts["collect_capped"]) == (120, 0, 80), counts


def test_distinct_scenes_are_all_kept_and_an_undecodable_frame_is_dropped(tmp_path: Path, fm_segments) -> None:
    scenes = [cv2.resize(img, (320, 240)) for _, img in fm_segments]
    counts = offer_all(collector(tmp_path), [*scenes, None], 1.0)
    assert counts["collected"] == len(scenes) and counts["collect_duplicates"] == 0, counts
    assert counts["collect_dropped"] == 1, counts


@pytest.mark.parametrize("box", [(0.0, 0.0, 0.5, 1.0), (160, 0, 160, 240)])
def test_regions_are_hashed_apart(tmp_path: Path, fm_segments, box) -> None:
    """Two regions of one frame are two streams: each keeps its own picture, in fractions or pixels."""
    left, right = (cv2.resize(img, (160, 240)) for _, img in fm_segments[:2])
    frame = np.concatenate([left, right], axis=1)
    cfg = dataclasses.replace(CollectConfig(), enabled=True, dir=str(tmp_path), below_score=0.9, dedupe_s=600.0)
    c = Collector(cfg, "dev1", [("a", box), ("b", (0.5, 0.0, 0.5, 1.0))]).start()
    for seq in range(1, 11):
        c.taken(CapturedFrame(seq, float(seq), jpeg=jpeg(frame)))
        for stream in (0, 1):
            c.offer(seq, stream, PREDICTIONS, SCORES, now=float(seq), changed=False, model="m",
                    captured_at=1e9 + seq + stream / 10, frame_no=seq)  # fmt: skip
            settle(c, 2 * seq - 1 + stream)
    c.close()
    counts = c.counters()
    assert (counts["collected"], counts["collect_duplicates"]) == (2, 18), counts
