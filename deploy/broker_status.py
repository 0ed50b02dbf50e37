"""`edge-deploy status --broker HOST[:PORT]`: the fleet as its broker sees it, without SSH to any device.

Listens for the retained messages of every device under the prefix (`+/availability`, `+/deployment`,
`+/classification`) for `--timeout` seconds and prints one row per device: its last pull (result, desired and
applied revision, release, model, time, error), whether it is online and its last classification. Exit 0 when
every device is online and its last pull applied (or found nothing to change) the revision it was asked for; 1
otherwise or when the broker cannot be reached; 2 for bad flags.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from pathlib import Path

from deploy.playbooks import table
from edge.config.schema import MqttConfig, Secret
from edge.errors import EdgeError, Failure


def parse_broker(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":") if text.count(":") == 1 else (text, "", "1883")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise EdgeError(f"--broker {text}: give HOST or HOST:PORT")
    return host, int(port)


def gather(args: argparse.Namespace) -> dict[str, dict]:
    """{device id: {availability, deployment, classification}} from the retained messages."""
    from edge.mqtt.client import connect_failure, make_client

    host, port = parse_broker(args.broker)
    password = None
    if args.password_file:
        try:
            password = Secret(Path(args.password_file).read_text().strip(), args.password_file)
        except OSError as e:
            raise EdgeError(f"--password-file {args.password_file}: {e.strerror}") from None
    cfg = MqttConfig(host=host, port=port, username=args.username)
    devices: dict[str, dict] = {}
    lock, failed = threading.Lock(), []
    client = make_client(cfg, password, f"edge-deploy-status-{os.getpid()}")
    prefix = args.prefix.rstrip("/")

    def on_connect(c, _u, _f, reason_code, _p=None):
        if reason_code.is_failure:
            failed.append(f"broker {host}:{port} refused the connection: {reason_code}")
        else:
            c.subscribe([(f"{prefix}/+/{kind}", 1) for kind in ("availability", "deployment", "classification")])

    def on_message(_c, _u, msg):
        device, kind = msg.topic[len(prefix) + 1 :].split("/", 1)
        text = msg.payload.decode("utf-8", "replace")
        with lock:
            try:
                devices.setdefault(device, {})[kind] = text if kind == "availability" else json.loads(text)
            except ValueError:
                devices[device][kind] = {}

    client.on_connect, client.on_message = on_connect, on_message
    try:
        client.connect(host, port, keepalive=max(5, int(args.timeout) + 5))
    except OSError as e:
        raise Failure(connect_failure(e, host, port, False)) from None
    client.loop_start()
    try:
        threading.Event().wait(args.timeout)
    finally:
        client.disconnect()
        client.loop_stop()
    if failed:
        raise Failure(failed[0])
    return devices


def row(device: str, d: dict) -> list[str]:
    dep, c = d.get("deployment") or {}, d.get("classification") or {}
    short = lambda rev: (rev or "-")[:12]  # noqa: E731
    last = f"{c.get('label')} {c.get('score', 0):.2f}" if c.get("label") else "-"
    return [device, dep.get("result", "-"), short(dep.get("desired_revision")), short(dep.get("applied_revision")),
            dep.get("release") or "-", dep.get("model") or "-", d.get("availability", "-"), dep.get("time", "-"), last,
            (dep.get("error") or "")[:80]]  # fmt: skip


def healthy(d: dict) -> bool:
    dep = d.get("deployment") or {}
    return d.get("availability") == "online" and dep.get("result") in ("applied", "unchanged") and \
        dep.get("desired_revision") == dep.get("applied_revision")  # fmt: skip


def run_broker_status(args: argparse.Namespace) -> int:
    devices = gather(args)
    if not devices:
        raise Failure(f"no device has published under {args.prefix}/ on {args.broker} (wrong --prefix?)")
    if args.json:
        print(json.dumps(devices, sort_keys=True))
    else:
        header = ["DEVICE", "RESULT", "DESIRED", "APPLIED", "RELEASE", "MODEL", "ONLINE", "PULLED", "LAST", "ERROR"]
        print(table([row(name, devices[name]) for name in sorted(devices)], header))
    sys.stdout.flush()
    return 0 if all(healthy(d) for d in devices.values()) else 1


def add_broker_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--broker", help="read the fleet from this broker (HOST[:PORT]) instead of SSH to --hosts")
    p.add_argument("--username", help="with --broker: the MQTT user")
    p.add_argument("--password-file", help="with --broker: a file holding the MQTT password")
    p.add_argument("--prefix", default="edge", help="with --broker: the devices' topic_prefix (default edge)")
