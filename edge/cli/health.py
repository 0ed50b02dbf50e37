"""`edge-daemon health`: is the daemon on this device up and classifying, as seen from its MQTT broker?

Healthy means both: the retained `{prefix}/{device_id}/availability` is `online`, and a fresh (not retained)
message arrives on `{prefix}/{device_id}/classification` within the timeout (optionally from an expected model),
and not one marked `stale` (a run's `start` message, or the camera away).
The fleet playbook runs this on each device after switching a release or a model, and rolls the device back when
it exits non-zero. It reads the daemon's own config, so it talks to the same broker with the same credentials;
outside the service, secrets are looked up in `/etc/credstore` (where the unit's `LoadCredential=` takes them).

Exit codes: 0 healthy, 1 unhealthy (one line says which check failed), 2 bad config or flags.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from edge.cli.shape import finite_float
from edge.errors import Failure

if TYPE_CHECKING:
    from edge.config.schema import MqttConfig, Secret

DEFAULT_CREDSTORE = "/etc/credstore"


@dataclass
class HealthReport:
    """What the broker told us about one device."""

    device_id: str
    broker: str
    availability: str | None = None  # the retained availability payload, None if nothing is retained
    classification: dict[str, Any] | None = None  # the newest classification payload (retained or live)
    fresh: bool = False  # a live classification arrived during the check
    elapsed_s: float = 0.0
    problem: str | None = None  # None when healthy
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        """True when nothing failed."""
        return self.problem is None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (what `--json` prints)."""
        d = asdict(self)
        d.pop("extra")
        d.update(self.extra)
        d["healthy"] = self.healthy
        return d


def judge(report: HealthReport, timeout: float, expect_model: str | None, topic: str) -> str | None:
    """The one-line reason the device is unhealthy, or None. Pure: decides from what was received.

    Args:
        report: what the check received.
        timeout: the seconds waited, for the message.
        expect_model: when given, the fresh classification must come from a model with this name.
        topic: the classification topic, for the message.
    """
    if report.availability is None:
        return f"availability: nothing retained on {topic.rsplit('/', 1)[0]}/availability (daemon never connected?)"
    if report.availability != "online":
        return f"availability: {report.availability!r}, not 'online'"
    if not report.fresh:
        return f"classification: none on {topic} within {timeout:g} s"
    model = (report.classification or {}).get("model")
    if expect_model and model != expect_model:
        return f"classification: from model {model!r}, expected {expect_model!r}"
    return None


def check(mqtt_cfg: MqttConfig, password: Secret | None, *, timeout: float,
          expect_model: str | None = None) -> HealthReport:  # fmt: skip
    """Subscribe to the device's availability and classification topics and judge what arrives.

    Args:
        mqtt_cfg: the daemon's validated ``[mqtt]`` section (broker, credentials, TLS, prefix, device id).
        password: the secret from `mqtt.password_file`, if any.
        timeout: seconds to wait for the broker and for a live classification.
        expect_model: require the fresh classification to name this model.

    Returns:
        The report; `report.problem` says what failed (broker unreachable included), None when healthy.
    """
    from edge.mqtt.client import connect_failure, make_client
    from edge.mqtt.contract import topics

    device_id = str(mqtt_cfg.device_id)
    t = topics(mqtt_cfg.topic_prefix, device_id)
    report = HealthReport(device_id=device_id, broker=f"{mqtt_cfg.host}:{mqtt_cfg.port}")
    lock, done, subscribed = threading.Lock(), threading.Event(), threading.Event()
    connect_error: list[str] = []
    client = make_client(mqtt_cfg, password, f"edge-health-{device_id}-{os.getpid()}")

    def on_connect(c, _userdata, _flags, reason_code, _props=None):
        if reason_code.is_failure:
            connect_error.append(f"broker {report.broker} refused the connection: {reason_code}")
            done.set()
            return
        c.subscribe([(t.availability, 1), (t.classification, 1)])

    def on_subscribe(_c, _userdata, _mid, _codes, _props=None):
        subscribed.set()

    def on_message(_c, _userdata, msg):
        with lock:
            if msg.topic == t.availability:
                report.availability = msg.payload.decode("utf-8", "replace")
            elif msg.topic == t.classification:
                try:
                    report.classification = json.loads(msg.payload)
                except ValueError:
                    report.classification = {"invalid": msg.payload[:200].decode("utf-8", "replace")}
                if not msg.retain and not report.classification.get("stale"):  # `start`/`stale`: not current
                    report.fresh = True
            model = (report.classification or {}).get("model")
            if report.fresh and report.availability is not None and expect_model in (None, model):
                done.set()

    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
    start = time.monotonic()
    try:
        client.connect(mqtt_cfg.host, mqtt_cfg.port, keepalive=max(5, int(timeout) + 5))
    except OSError as e:  # refused, unresolvable, TLS failures (ssl.SSLError is an OSError)
        report.problem = connect_failure(e, mqtt_cfg.host, mqtt_cfg.port, mqtt_cfg.tls.enabled)
        return report
    client.loop_start()
    try:
        done.wait(timeout)
    finally:
        client.disconnect()
        client.loop_stop()
    report.elapsed_s = round(time.monotonic() - start, 3)
    with lock:
        if connect_error:
            report.problem = connect_error[0]
        elif not subscribed.is_set():
            report.problem = f"broker {report.broker}: no answer to connect/subscribe within {timeout:g} s"
        else:
            report.problem = judge(report, timeout, expect_model, t.classification)
    return report


def _describe(report: HealthReport) -> str:
    c = report.classification or {}
    score = c.get("score")
    score_text = f" {score:.2f}" if isinstance(score, int | float) else ""
    return (
        f"healthy: {report.device_id} online, classification {c.get('label')!r}{score_text} "
        f"from model {c.get('model')!r} after {report.elapsed_s:.1f} s"
    )


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The `health` subcommand's options."""
    p.add_argument("--config", "-c", default="/etc/edge-daemon/config.toml", help="the daemon's config file")
    p.add_argument("--timeout", type=finite_float(0, 3600, low_open=True), default=90.0,
                   help="seconds to wait for a live classification, up to 3600 (90)")  # fmt: skip
    p.add_argument("--expect-model", help="require the classification to come from this model (its file name)")
    p.add_argument(
        "--credentials",
        default=os.environ.get("CREDENTIALS_DIRECTORY") or DEFAULT_CREDSTORE,
        help="where secret files are looked up (default: $CREDENTIALS_DIRECTORY, else /etc/credstore)",
    )
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")


def run(args: argparse.Namespace) -> int:
    """Run the check; exit 0 when healthy, 1 with one line naming the failed check otherwise."""
    from edge.config.load import load_config

    environ = dict(os.environ)
    if os.path.isdir(args.credentials):
        environ["CREDENTIALS_DIRECTORY"] = args.credentials
    cfg = load_config(args.config, environ=environ)
    report = check(cfg.mqtt, cfg.password, timeout=args.timeout, expect_model=args.expect_model)
    if args.json:
        print(json.dumps(report.to_dict()))
    elif report.healthy:
        print(_describe(report))
    if not report.healthy:
        raise Failure(f"unhealthy: {report.device_id}: {report.problem}")
    return 0
