"""The naive baseline: the loop tutorials write, on the same clip, model and broker as the daemon.

Read a frame, `cv2.resize`, invoke, `publish(...).wait_for_publish()` every frame, in one thread; frames are
read in order (none dropped) and the clip loops; with `--fps` frames are read no faster than a camera
would deliver them, and with `--max-rate` only the frames due are classified (all are read and decoded). It
publishes the same classification payload to the same topic as the daemon so the same subscriber measures
both. Run until SIGTERM:
`python -m benchmarks.naive --model M --video V --port P --prefix bench --device-id naive`.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import paho.mqtt.client as mqtt
from ai_edge_litert.interpreter import Interpreter


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--video", required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=1883)
    p.add_argument("--prefix", default="edge")
    p.add_argument("--device-id", default="naive")
    p.add_argument("--fps", type=float, default=0.0, help="deliver frames like a camera at this rate (0: unpaced)")
    p.add_argument("--max-rate", type=float, default=0.0, help="classify at most this often (0: every frame)")
    args = p.parse_args()

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    interpreter = Interpreter(model_path=args.model, num_threads=args.threads)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    _, height, width, _ = inp["shape"]
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.connect(args.host, args.port)
    client.loop_start()
    topic = f"{args.prefix}/{args.device_id}/classification"
    name = Path(args.model).stem

    cap = cv2.VideoCapture(args.video)
    frame_no, next_at, next_slot = 0, time.monotonic(), time.monotonic()
    while not stop.is_set():
        if args.fps:  # a camera hands out the next frame only when it has been exposed
            next_at = max(next_at + 1.0 / args.fps, time.monotonic() - 1.0 / args.fps)
            time.sleep(max(0.0, next_at - time.monotonic()))
        ok, frame = cap.read()
        if not ok:  # end of the clip: start again
            cap.release()
            cap = cv2.VideoCapture(args.video)
            continue
        captured = time.time()
        if args.max_rate:  # the tutorial's rate limit: every frame is read (decoded), some are classified
            if time.monotonic() < next_slot:
                continue
            next_slot = max(next_slot + 1.0 / args.max_rate, time.monotonic())
        frame_no += 1
        img = cv2.cvtColor(cv2.resize(frame, (width, height)), cv2.COLOR_BGR2RGB)
        if inp["dtype"] == np.int8:
            img = (img.astype(np.int16) - 128).astype(np.int8)
        interpreter.set_tensor(inp["index"], np.expand_dims(img, axis=0))
        t0 = time.perf_counter()
        interpreter.invoke()
        ms = (time.perf_counter() - t0) * 1000.0
        scores = interpreter.get_tensor(out["index"])[0]
        index = int(np.argmax(scores))
        score = float((scores[index].astype(np.float32) - out["quantization"][1]) * out["quantization"][0])
        payload = {
            "label": str(index),
            "index": index,
            "score": score,
            # the daemon's precision (microseconds), so neither latency carries a truncation the other has not
            "timestamp": datetime.fromtimestamp(captured, UTC).isoformat(timespec="microseconds"),
            "frame": frame_no,
            "inference_ms": ms,
            "model": name,
        }
        client.publish(topic, json.dumps(payload), qos=1, retain=True).wait_for_publish()
    cap.release()
    client.disconnect()
    client.loop_stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
