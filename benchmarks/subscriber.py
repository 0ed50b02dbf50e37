"""The separate MQTT subscriber process that timestamps receipt of every message.

`python -m benchmarks.subscriber --port P --topic 'bench/dev/#' --out FILE` prints `ready` once subscribed
(and `first EPOCH` at the first classification with --announce-first), records until SIGTERM/SIGINT, then
writes FILE as JSON: classification receipts `[receipt_epoch, capture_epoch, frame, inference_ms]`, every stats payload,
and counts per topic. Latency is receipt time minus the payload's capture `timestamp` (ISO 8601 UTC); both
clocks are this machine's.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from datetime import datetime
from typing import Any

import paho.mqtt.client as mqtt


def capture_epoch(stamp: Any) -> float | None:
    """The payload's `timestamp` as epoch seconds (ISO 8601 string or a number), None when unusable."""
    if isinstance(stamp, int | float):
        return float(stamp)
    if isinstance(stamp, str):
        try:
            return datetime.fromisoformat(stamp).timestamp()
        except ValueError:
            return None
    return None


class Recorder:
    """Collects what arrives: classification receipts, stats payloads, counts per topic suffix."""

    def __init__(self, announce_first: bool = False) -> None:
        self.announce_first = announce_first
        self.classifications: list[list[float | int | None]] = []
        self.stats: list[dict[str, Any]] = []
        self.counts: dict[str, int] = {}
        self.retained = 0

    def on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        now = time.time()
        if msg.retain:  # state from before we subscribed: not a receipt to time
            self.retained += 1
            return
        kind = msg.topic.rsplit("/", 1)[-1]
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if kind not in ("classification", "stats"):
            return
        try:
            payload = json.loads(msg.payload)
        except ValueError:
            return
        if kind == "stats":
            payload["_received"] = now
            self.stats.append(payload)
        else:
            self.classifications.append(
                [now, capture_epoch(payload.get("timestamp")), payload.get("frame"), payload.get("inference_ms")]
            )
            if self.announce_first and len(self.classifications) == 1:
                print(f"first {now}", flush=True)

    def to_dict(self) -> dict[str, Any]:
        return {
            "classifications": self.classifications,
            "stats": self.stats,
            "counts": self.counts,
            "retained": self.retained,
        }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=1883)
    p.add_argument("--topic", required=True)
    p.add_argument("--qos", type=int, default=1)
    p.add_argument("--out", required=True)
    p.add_argument("--announce-first", action="store_true", help="print `first EPOCH` on the first classification")
    args = p.parse_args()

    rec = Recorder(args.announce_first)
    done, subscribed = threading.Event(), threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-sub-{time.time_ns()}")
    client.on_message = rec.on_message
    client.on_connect = lambda c, *_: c.subscribe(args.topic, qos=args.qos)
    client.on_subscribe = lambda *_: subscribed.set()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    client.connect(args.host, args.port, keepalive=30)
    client.loop_start()
    if not subscribed.wait(10):
        print("subscriber: no SUBACK within 10 s", file=sys.stderr)
        client.loop_stop()
        return 1
    print("ready", flush=True)
    done.wait()
    client.disconnect()
    client.loop_stop()
    with open(args.out, "w") as f:
        json.dump(rec.to_dict(), f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
