"""Where a frame's time goes on the daemon's path, stage by stage, in one thread (a profile of the overhead).

Calls the daemon's own functions in the order `edge.service.daemon` does for one frame (decode, preprocess, invoke,
scores, smoothing with top-k, payload, publish to a real mosquitto through `edge.mqtt.publisher.Publisher`) and
reports the median ms of each, so "overhead beyond invoke" can be attributed. Threads, GIL hand-offs and
the grabber thread are not in these figures; the suite's pipeline figures include them.

    python -m benchmarks.breakdown [--model M] [--frames N] [--threads T]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import cv2

from benchmarks import inputs
from benchmarks.procstat import percentile

STAGES = ("read", "decode", "preprocess", "invoke", "scores", "smoothing_top_k", "payload", "publish")


def measure(model: str, clip: Path, frames: int, threads: int, port: int) -> dict[str, Any]:
    """Median ms per stage over `frames` frames of the clip (publishing to mosquitto on `port`)."""
    from edge.config.schema import HomeAssistantConfig, MqttConfig
    from edge.frames.decode import decode_for
    from edge.inference.model import load_model
    from edge.inference.postprocess import scores
    from edge.inference.preprocess import preprocess
    from edge.inference.smoothing import Smoother
    from edge.mqtt.contract import classification_payload
    from edge.mqtt.publisher import Publisher

    clf = load_model(model, device="cpu", threads=threads)
    spec = clf.spec
    smoother = Smoother(spec.labels, mode="off", top_k=3)
    pub = Publisher(
        MqttConfig(device_id="breakdown", client_id="edge-daemon-breakdown", host="127.0.0.1", port=port),
        HomeAssistantConfig(discovery=False),
        model=spec.name,
        device=spec.device,
    )
    pub.start()
    deadline = time.monotonic() + 10
    while not pub.connected and time.monotonic() < deadline:
        time.sleep(0.01)
    times: dict[str, list[float]] = {k: [] for k in STAGES}
    cap = cv2.VideoCapture(str(clip), cv2.CAP_FFMPEG)
    cap.set(cv2.CAP_PROP_FORMAT, -1)  # raw JPEG packets, as the camera thread reads them
    need = [(spec.input.width, spec.input.height)]
    try:
        for n in range(frames + 10):
            t = [time.perf_counter()]
            ok, packet = cap.read()
            if not ok:
                cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, packet = cap.read()
            t.append(time.perf_counter())
            image = decode_for(packet, need, spec.input.channels == 1)
            t.append(time.perf_counter())
            tensor = preprocess(image, spec.input)
            t.append(time.perf_counter())
            raw = clf.run(tensor)
            t.append(time.perf_counter())
            s = scores(raw, spec.output)
            t.append(time.perf_counter())
            decision = smoother.update(s, time.monotonic())
            t.append(time.perf_counter())
            now = time.time()
            payload = classification_payload(
                decision.predictions, reason=decision.reason, frame=n, inference_ms=1.0, model=spec.name,
                timestamp=now, published_at=now, changed_at=now,
            )
            t.append(time.perf_counter())
            pub.publish_classification(payload)
            t.append(time.perf_counter())
            if n >= 10:  # warm-up excluded
                for i, k in enumerate(STAGES):
                    times[k].append((t[i + 1] - t[i]) * 1000.0)
    finally:
        cap.release()
        pub.stop()
        clf.close()
    med = {k: percentile(v, 50) for k, v in times.items()}
    med["overhead_excl_decode"] = sum(v for k, v in med.items() if k not in ("read", "decode", "invoke"))
    return {"model": model, "threads": threads, "frames": frames, "median_ms": med}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="default: the suite's small model")
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    model = args.model or next(m["path"] for m in inputs.models() if m["role"] == "small")
    clip = inputs.CACHE / "clip_640x480_20s_30fps.avi"
    inputs.make_clip(clip, 20, 30)
    sys.path.insert(0, str(inputs.REPO))
    from tests.support.mosquitto import Mosquitto

    with Mosquitto() as broker:
        r = measure(model, clip, args.frames, args.threads, broker.port)
    if args.json:
        print(json.dumps(r))
    else:
        print(f"{Path(model).name}, {args.threads} thread(s), median ms per frame over {args.frames} frames:")
        for k, v in r["median_ms"].items():
            print(f"  {k:<22} {v:7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
