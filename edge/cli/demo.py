"""`edge-daemon demo`: broker + daemon + subscriber on this machine, printing what a dashboard would receive.

No broker needed: an embedded MQTT broker on loopback (`edge.cli.demo_broker`), the bundled model and clip
(`edge/assets/`), and every message a subscriber to `edge/#` and `homeassistant/#` gets, for 20 s (the whole
bundled clip). `--broker HOST:PORT` uses a real broker instead; `--model`/`--clip` your own files.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import threading
import time
from pathlib import Path

from edge.cli.commands import default_threads
from edge.cli.shape import finite_float
from edge.errors import EdgeError, Failure

ASSETS = Path(__file__).resolve().parents[1] / "assets"
DEMO_MODEL = ASSETS / "demo_model.tflite"
DEMO_CLIP = ASSETS / "demo_clip.avi"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seconds", type=finite_float(0, 86400, low_open=True), default=20.0,
                   help="how long to run (default 20: the whole bundled clip)")  # fmt: skip
    p.add_argument("--model", default=str(DEMO_MODEL), help="model (default: the bundled demo model)")
    p.add_argument("--clip", default=str(DEMO_CLIP), help="video file or camera source (default: the bundled clip)")
    p.add_argument("--broker", metavar="HOST:PORT", help="use this MQTT broker instead of the embedded one")


def _print_message(topic: str, payload: bytes, retained: bool) -> None:
    text = payload.decode(errors="replace")
    kind = topic.rsplit("/", 1)[-1]
    if kind == "classification":
        try:
            d = json.loads(text)
            score = f"{d['score']:.2f}" if d.get("score") is not None else "-"
            label = "-" if d.get("stale") and d["label"] is None else d["label"]  # `start`: nothing classified yet
            text = f"{label!s:<14} score {score}  frame {d['frame']:<5} {d['inference_ms']:.1f} ms  {d['timestamp']}"
            if d.get("stale"):
                text += f"  stale ({d['reason']})"
        except (ValueError, KeyError, TypeError):
            pass
    elif len(text) > 160:
        text = text[:157] + "..."
    print(f"{topic}{' (retained)' if retained else ''}: {text}", flush=True)


def run(args: argparse.Namespace) -> int:
    """Broker + daemon + subscriber on this machine for `--seconds`; prints every message the subscriber gets."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from edge.config.load import config_from_dict
    from edge.service.daemon import Service

    for what, path in (("--model", args.model), ("--clip", args.clip)):
        if not Path(path).exists() and not (what == "--clip" and ("://" in path or path.isdigit())):
            raise EdgeError(f"{what}: {path} not found; give an existing file (the bundled ones are in {ASSETS})")

    with contextlib.ExitStack() as stack:
        if args.broker:
            host, _, port_text = args.broker.rpartition(":")
            if not host or not port_text.isdigit():
                raise EdgeError(f"--broker: expected HOST:PORT, got {args.broker!r}")
            port = int(port_text)
        else:
            from edge.cli.demo_broker import EmbeddedBroker

            host, port = "127.0.0.1", stack.enter_context(EmbeddedBroker(port=0)).port
            print(f"demo: embedded MQTT broker on {host}:{port}", flush=True)
        data = {
            "camera": {"source": args.clip, "loop": True},
            "model": {"path": args.model, "threads": default_threads(), "top_k": 3, "watch": False},
            "mqtt": {"host": host, "port": port, "device_id": "demo", "client_id": "edge-demo-daemon"},
            # The clip shows each class for 2 s: a 1 s dwell (default 10 s) lets every change through.
            "smoothing": {"mode": "stable", "frames": 3, "heartbeat_s": 5.0, "min_dwell_s": 1.0},
            "stats": {"interval_s": 5.0},
        }
        cfg = config_from_dict(data, environ={}, source="demo")

        received: list[str] = []
        sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="edge-demo-subscriber")
        sub.on_connect = lambda c, *_: c.subscribe([("edge/#", 1), ("homeassistant/#", 1)])
        sub.on_message = lambda c, u, m: (received.append(m.topic), _print_message(m.topic, m.payload, m.retain))
        try:
            sub.connect(host, port, keepalive=30)
        except OSError as e:
            raise EdgeError(
                f"--broker: cannot connect to {host}:{port} ({e.strerror or e}); is a broker running?"
            ) from None
        sub.loop_start()
        stack.callback(sub.loop_stop)
        stack.callback(sub.disconnect)

        service = Service(cfg)
        timer = threading.Timer(args.seconds, service.stop)
        timer.daemon = True
        timer.start()
        stack.callback(timer.cancel)
        print(f"demo: daemon on {Path(args.model).name} + {Path(args.clip).name} for {args.seconds:g} s; "
              "subscribed to edge/# and homeassistant/#", flush=True)  # fmt: skip
        t0 = time.monotonic()
        code = service.run()
        time.sleep(0.3)  # let the last messages (availability offline) arrive
        print(f"demo: subscriber received {len(received)} messages in {time.monotonic() - t0:.1f} s", flush=True)
        if not any(t.endswith("/classification") for t in received):
            raise Failure("demo: no classification arrived; see the log lines above")
        return code
