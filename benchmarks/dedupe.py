"""How long does the collection quota last on a still scene, and is anything distinct lost? Frames and bytes kept
from 10 minutes of a camera with `[collect] dedupe_s` off (0) and at its default (600 s), and the cost of the
duplicate check per candidate frame.

    python -m benchmarks.dedupe [--minutes 10] [--fps 10] [--json]

Scenes, each a 640x480 camera at `--fps` in simulated time, every frame picked by `below_score` (a hard scene:
the model is unsure of all of them), through the daemon's own `Collector` and frame store on a real disk, with the
other `[collect]` defaults (`max_per_hour` 120):
- `still`: one of the bundled clip's pictures the whole time; each frame with its own sensor noise (sigma 3) and
  JPEG (quality 85), as a camera sends a still scene (a pool of 100 such frames, cycled);
- `moving`: the bundled clip's 10 pictures, 2 s each, cycled (10 distinct scenes, each with noise and JPEG).
For each: frames kept, bytes on disk, duplicates skipped, frames the hourly cap refused, and how many of the
scene's distinct pictures are among the kept frames. Also: the time to hash a candidate (the 1/8 gray decode and
dHash, on the store's thread) against a full decode of the same frame.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from edge.cli.demo import DEMO_CLIP
from edge.collect.collector import Collector, region_gray
from edge.config.schema import CollectConfig
from edge.frames.decode import decode_jpeg
from edge.frames.similar import dhash
from edge.inference.postprocess import Prediction
from edge.sources.camera import CapturedFrame

SIZE = (640, 480)
WHOLE = (0.0, 0.0, 1.0, 1.0)
PREDICTIONS = (Prediction(0, "hard", 0.4), Prediction(1, "other", 0.35))
SCORES = np.array([0.4, 0.35, 0.25], np.float32)
DECIDED = ("collected", "collect_duplicates", "collect_capped", "collect_dropped")


def pictures() -> list[np.ndarray]:
    """The bundled clip's distinct pictures (its first frame of each 2-s segment), at 640x480."""
    timeline = json.loads(DEMO_CLIP.with_suffix(".json").read_text())
    cap, frames = cv2.VideoCapture(str(DEMO_CLIP)), []
    while (got := cap.read())[0]:
        frames.append(got[1])
    return [cv2.resize(frames[s["start_frame"]], SIZE, interpolation=cv2.INTER_LINEAR) for s in timeline["segments"]]


def camera(picture: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One camera frame of a picture: its own sensor noise, then JPEG, as bytes."""
    noisy = cv2.add(picture, rng.normal(0, 3, picture.shape).round().astype(np.int16), dtype=cv2.CV_8U)
    return cv2.imencode(".jpg", noisy, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].reshape(-1)


def replay(scene: list[tuple[int, np.ndarray]], fps: float, dedupe_s: float, folder: Path) -> dict:
    """Every frame of `scene` (picture index, JPEG) offered as picked; the counters and which pictures were kept."""
    cfg = dataclasses.replace(CollectConfig(), enabled=True, dir=str(folder), below_score=0.5, dedupe_s=dedupe_s)
    c = Collector(cfg, "bench", [(None, WHOLE)]).start()
    kept_pictures: set[int] = set()
    for seq, (index, data) in enumerate(scene, 1):
        now = seq / fps
        c.taken(CapturedFrame(seq, now, jpeg=data))
        before = c.counters()["collected"]
        c.offer(seq, 0, PREDICTIONS, SCORES, now=now, changed=False, model="bench", captured_at=1.7e9 + now,
                frame_no=seq)  # fmt: skip
        while sum((counts := c.counters())[k] for k in DECIDED) < seq:  # the store decides one frame at a time
            time.sleep(0.0005)
        if counts["collected"] > before:
            kept_pictures.add(index)
    c.close()
    counts = c.counters()
    on_disk = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    return {"kept": counts["collected"], "bytes": on_disk, "duplicates": counts["collect_duplicates"],
            "capped": counts["collect_capped"], "dropped": counts["collect_dropped"],
            "distinct_kept": len(kept_pictures), "distinct_in_scene": len({i for i, _ in scene})}  # fmt: skip


def hash_cost(data: np.ndarray, runs: int = 300) -> dict:
    """Median ms of the duplicate check (1/8 gray decode + dHash) and of a full decode of the same frame."""
    frame = CapturedFrame(1, 0.0, jpeg=data)

    def median(fn) -> float:
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return float(np.median(times)) * 1000

    return {
        "hash_ms": median(lambda: dhash(region_gray(frame, WHOLE))),
        "full_decode_ms": median(lambda: decode_jpeg(data)),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--fps", type=float, default=10.0)
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = p.parse_args()
    rng, pics = np.random.default_rng(27), pictures()
    n = int(args.minutes * 60 * args.fps)
    pool = [camera(pics[3], rng) for _ in range(100)]
    per_picture = [[camera(pic, rng) for _ in range(10)] for pic in pics]
    segment = int(2 * args.fps)
    scenes = {"still": [(3, pool[i % len(pool)]) for i in range(n)],
              "moving": [((i // segment) % len(pics), per_picture[(i // segment) % len(pics)][i % 10])
                         for i in range(n)]}  # fmt: skip
    out: dict = {"frames": n, "fps": args.fps, "cost": hash_cost(pool[0])}
    with tempfile.TemporaryDirectory() as tmp:
        for name, scene in scenes.items():
            for dedupe_s in (0.0, 600.0):
                folder = Path(tmp) / f"{name}-{dedupe_s:g}"
                out[f"{name} dedupe_s={dedupe_s:g}"] = replay(scene, args.fps, dedupe_s, folder)
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"{n} frames ({args.minutes:g} min at {args.fps:g} fps), every one picked; max_per_hour 120")
    print(f"{'scene':<22} {'kept':>5} {'MB':>6} {'duplicates':>10} {'capped':>6} {'distinct kept':>13}")
    for key, r in out.items():
        if isinstance(r, dict) and "kept" in r:
            print(
                f"{key:<22} {r['kept']:>5} {r['bytes'] / 1e6:>6.2f} {r['duplicates']:>10} {r['capped']:>6} "
                f"{r['distinct_kept']:>6} of {r['distinct_in_scene']}"
            )
    cost = out["cost"]
    print(f"duplicate check per candidate: {cost['hash_ms']:.2f} ms (full decode: {cost['full_decode_ms']:.2f} ms)")


if __name__ == "__main__":
    main()
