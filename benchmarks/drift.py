"""Does drift tracking cry wolf, and how soon does it see a changed scene? False alarms per simulated day, the
detection delay of a shifted scene, and the tracker's CPU cost per frame.

    python -m benchmarks.drift DATASET [--hours 24] [--fps 5] [--json]

DATASET: a folder from `edge-train export-dataset fashion-mnist DIR` (its `test/` images are the bundled demo
model's in-distribution world; offline with Debian's `dataset-fashion-mnist`). The scores are real: the demo
model (with the reference its `metrics.json` carries) classifies every image once through the daemon's path;
the bundled clip's frames are decoded at 1/4 as the daemon decodes them. Scenes, at `--fps` for simulated time:
- `test images`: a random in-distribution test image each frame, for `--hours` (false alarms per day);
- `demo clip`: the bundled clip looping (its 10 images, 2 s each), for `--hours` and for 30 minutes;
- `negated after 1 h`: 1 h of the clip, then the clip colour-inverted (`ffmpeg -vf negate` does the same
  per pixel): the delay from the switch to `drifting`, in frames and seconds;
- `negated test images after 1 h`: the same with test images, inverted.
Also: the unknown rate of the test images under the calibrated thresholds, and the tracker's cost per frame
against one inference. Pure computation with the defaults of `[drift]`; time is simulated.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

from benchmarks.inputs import models
from edge.cli.demo import DEMO_CLIP, DEMO_MODEL
from edge.frames.decode import decode_jpeg
from edge.frames.images import read_image
from edge.inference.drift import DriftRules, DriftTracker
from edge.inference.labels import read_reference
from edge.inference.model import load_model
from edge.inference.reference import build_reference, parse_reference, unknown_rate


def clip_frames(path: Path) -> list[np.ndarray]:
    cap, out = cv2.VideoCapture(str(path)), []
    while True:
        ok, frame = cap.read()
        if not ok:
            return out
        ok, jpeg = cv2.imencode(".jpg", frame)
        out.append(decode_jpeg(jpeg.tobytes(), 4))


def play(tracker: DriftTracker, scenes: list[tuple[np.ndarray, float, bool]], fps: float, seed: int = 0) -> dict:
    """Feed scenes (scores, seconds, random order?) one after another; the state changes with their times."""
    rng, now, changes, switch_at = np.random.default_rng(seed), 0.0, [], []
    for scores, seconds, shuffled in scenes:
        switch_at.append(now)
        n = int(seconds * fps)
        order = rng.integers(0, len(scores), n) if shuffled else np.arange(n) % len(scores)
        for i in order:
            if (state := tracker.update(scores[i], now)) is not None:
                changes.append((now, state.state))
            now += 1.0 / fps
    return {"changes": changes, "switch_at": switch_at}


def small_model_share(rules: DriftRules, clip: list[np.ndarray], n: int = 20000) -> dict:
    """The tracker's cost per frame against the small model's (benchmarks/inputs.py) frame time: preprocess +
    invoke of a clip frame. The model has no reference, so one is built from its own scores on the clip frames
    (a cost measurement only: the cell count, classes x bins, is what the tracker's cost depends on)."""
    small = next((m for m in models() if m["role"] == "small"), None)
    if small is None:
        return {"skipped": "no small model (../shared/data absent and none cached)"}
    clf = load_model(small["path"], device="cpu", threads=1)
    frames = clip  # as the daemon decodes them (1/4): the smallest frame time, so the largest share
    clf.scores(frames[0])
    t0 = time.perf_counter()
    scores = np.stack([clf.scores(f) for _ in range(5) for f in frames])
    frame_ms = (time.perf_counter() - t0) * 1000 / len(scores)
    ref = parse_reference(build_reference(clf.spec.labels, scores.argmax(axis=1), scores), clf.spec.labels)
    tracker, t0 = DriftTracker(rules, ref, 0.0), time.perf_counter()
    for i in range(n):
        tracker.update(scores[i % len(scores)], i / 5.0)
    per_frame = (time.perf_counter() - t0) * 1000 / n
    return {"model": small["note"], "classes": len(clf.spec.labels), "frame_ms": round(frame_ms, 3),
            "tracker_ms_per_frame": round(per_frame, 4), "tracker_share": round(per_frame / frame_ms, 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--fps", type=float, default=5.0)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    clf = load_model(DEMO_MODEL, device="cpu", threads=1)
    ref = read_reference(DEMO_MODEL, clf.spec.labels)
    paths = sorted((a.dataset / "test").glob("*/*"))
    images = [read_image(p) for p in paths]
    t0 = time.perf_counter()
    test = np.stack([clf.scores(im) for im in images])
    inference_ms = (time.perf_counter() - t0) * 1000 / len(images)
    neg_test = np.stack([clf.scores(255 - im) for im in images])
    clip = clip_frames(DEMO_CLIP)
    clip_s = np.stack([clf.scores(f) for f in clip])
    neg_clip = np.stack([clf.scores(255 - f) for f in clip])
    clip_s = np.repeat(clip_s, 1, axis=0)
    step = max(1, round(10 / a.fps))  # the clip is 10 fps: at 5 fps every other frame
    clip_s, neg_clip = clip_s[::step], neg_clip[::step]
    rules, day = DriftRules(), a.hours * 3600
    out: dict = {"fps": a.fps, "hours": a.hours, "rules": rules.__dict__, "inference_ms": round(inference_ms, 3),
                 "unknown_rate_test": round(unknown_rate(ref, test), 4),
                 "unknown_rate_negated_test": round(unknown_rate(ref, neg_test), 4),
                 "unknown_rate_negated_clip": round(unknown_rate(ref, neg_clip), 4)}
    for name, scenes in (("test images", [(test, day, True)]), ("demo clip", [(clip_s, day, False)]),
                         ("demo clip 30 min", [(clip_s, 1800, False)])):
        r = play(DriftTracker(rules, ref, 0.0), scenes, a.fps)
        out[name] = {"false_alarms": sum(s == "drifting" for _, s in r["changes"]), "changes": r["changes"][:5]}
    for name, scenes in (("negated after 1 h", [(clip_s, 3600, False), (neg_clip, 3600, False)]),
                         ("negated test images after 1 h", [(test, 3600, True), (neg_test, 3600, True)])):
        r = play(DriftTracker(rules, ref, 0.0), scenes, a.fps)
        switch = r["switch_at"][1]
        early = [t for t, s in r["changes"] if s == "drifting" and t < switch]
        hit = next((t for t, s in r["changes"] if s == "drifting" and t >= switch), None)
        out[name] = {"false_alarms_before": len(early), "delay_s": None if hit is None else round(hit - switch, 1),
                     "delay_frames": None if hit is None else round((hit - switch) * a.fps)}
    tracker, t0 = DriftTracker(rules, ref, 0.0), time.perf_counter()
    n = 20000
    for i in range(n):
        tracker.update(test[i % len(test)], i / a.fps)
    per_frame = (time.perf_counter() - t0) * 1000 / n
    out["tracker_ms_per_frame"] = round(per_frame, 4)
    out["tracker_share_of_inference"] = round(per_frame / inference_ms, 4)
    out["small model"] = small_model_share(rules, clip)
    print(json.dumps(out, indent=1) if a.json else "\n".join(f"{k}: {v}" for k, v in out.items()))


if __name__ == "__main__":
    main()
