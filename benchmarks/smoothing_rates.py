"""How calm is each smoothing mode? Label changes per second on borderline scenes, and a clean switch's delay.

    python -m benchmarks.smoothing_rates [--seconds 600] [--fps 30] [--json]

The scores are real: the bundled demo model classifies real Fashion-MNIST images (the bundled clip's first
two classes, A and B). Scenes, at `--fps` frames per second for `--seconds` simulated seconds:
- `alternating`: A, B, A, B ... frame by frame;
- `random A/B`: A or B at random each frame (seeded);
- `blend`: one picture, A and B blended 50/50 with fresh sensor noise each frame (a scene on the border);
- `clean switch`: 30 s of A, then B held: the delay from the switch to the published change.
Each mode runs with the previous release's defaults (no hysteresis, no dwell) and with today's defaults.
What is counted is what a subscriber receives on `.../classification` besides heartbeats (heartbeats are
off here; with `heartbeat_s = 60` they add 1/60 per second). Pure computation: time is simulated, so the
figures do not depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Iterator

import numpy as np

from edge.cli.demo import DEMO_CLIP, DEMO_MODEL
from edge.inference.model import load_model
from edge.inference.smoothing import Smoother

SETTINGS = {  # name -> Smoother keyword arguments (threshold 0 and top_k 3, the config's defaults)
    "stable, before (frames 3)": {"mode": "stable", "frames": 3},
    "average, before (frames 3)": {"mode": "average", "frames": 3},
    "off": {"mode": "off"},
    "stable, defaults (frames 3, hysteresis 0.1, dwell 10 s)": {"mode": "stable", "frames": 3, "hysteresis": 0.1,
                                                                 "min_dwell_s": 10.0},
    "average, defaults (frames 3, hysteresis 0.1, dwell 10 s)": {"mode": "average", "frames": 3,
                                                                  "hysteresis": 0.1, "min_dwell_s": 10.0},
}  # fmt: skip


def _frames() -> tuple[np.ndarray, np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(str(DEMO_CLIP))
    timeline = json.loads(DEMO_CLIP.with_suffix(".json").read_text())
    images = []
    for segment in timeline["segments"][:2]:
        cap.set(cv2.CAP_PROP_POS_FRAMES, segment["start_frame"])
        images.append(cap.read()[1])
    cap.release()
    return images[0], images[1]


def scenes(seconds: float, fps: float) -> dict[str, list[np.ndarray]]:
    """Score sequences of each scene, from the demo model's real outputs."""
    a, b = _frames()
    rng = random.Random(7)
    noise = np.random.default_rng(7)
    with load_model(DEMO_MODEL, threads=1) as clf:
        sa, sb = clf.scores(a), clf.scores(b)
        blend = (a.astype(np.float32) + b.astype(np.float32)) / 2
        pool = [clf.scores(np.clip(blend + noise.normal(0, 12, blend.shape), 0, 255).astype(np.uint8))
                for _ in range(300)]  # fmt: skip
    n = int(seconds * fps)
    return {
        "alternating": [sa if i % 2 == 0 else sb for i in range(n)],
        "random A/B": [rng.choice((sa, sb)) for _ in range(n)],
        "blend": [rng.choice(pool) for _ in range(n)],
        "clean switch": [sa] * int(30 * fps) + [sb] * int(10 * fps),
    }


def _decisions(labels: tuple[str, ...], setting: dict, seq: list[np.ndarray], fps: float) -> Iterator[tuple]:
    s = Smoother(labels, top_k=3, heartbeat_s=0.0, **setting)
    for i, scores in enumerate(seq):
        d = s.update(scores, i / fps)
        if d is not None:
            yield i / fps, d


def run(seconds: float, fps: float) -> dict[str, dict[str, float]]:
    """{setting: {scene: changes per second, "switch_delay_s": seconds}}."""
    with load_model(DEMO_MODEL, threads=1) as clf:
        labels = clf.spec.labels
    seqs = scenes(seconds, fps)
    out: dict[str, dict[str, float]] = {}
    for name, setting in SETTINGS.items():
        row: dict[str, float] = {}
        for scene in ("alternating", "random A/B", "blend"):
            messages = sum(1 for _ in _decisions(labels, setting, seqs[scene], fps))
            row[scene] = messages / seconds
        switch = [t for t, d in _decisions(labels, setting, seqs["clean switch"], fps) if t >= 30.0]
        row["switch_delay_s"] = switch[0] - 30.0 if switch else float("nan")
        out[name] = row
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=600.0)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    result = run(args.seconds, args.fps)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"messages per second on .../classification (heartbeats off), {args.seconds:g} s at {args.fps:g} fps")
    print("| smoothing | alternating | random A/B | blend (border) | clean switch: delay |")
    print("|---|---|---|---|---|")
    for name, row in result.items():
        print(f"| {name} | {row['alternating']:.3f} | {row['random A/B']:.3f} | {row['blend']:.3f} | "
              f"{row['switch_delay_s']:.2f} s |")  # fmt: skip


if __name__ == "__main__":
    main()
