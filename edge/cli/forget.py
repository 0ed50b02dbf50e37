"""`edge-daemon forget`: remove a retired device from its broker and from Home Assistant.

It clears every retained message the daemon leaves on the broker (availability, camera, classification, drift,
label, and the Home Assistant discovery configs, which makes HA delete the device's entities) by publishing
empty retained payloads, with the daemon's own config (same broker, credentials, ids). `deploy/install.sh
--uninstall` runs it when the broker can be reached. Run it after the daemon has stopped: a running daemon
publishes its state again.
"""

from __future__ import annotations

import argparse
import os
import threading

from edge.cli.shape import finite_float
from edge.errors import Failure


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The `forget` subcommand's options."""
    p.add_argument("--config", "-c", default="/etc/edge-daemon/config.toml", help="the daemon's config file")
    p.add_argument("--timeout", type=finite_float(0, 600, low_open=True), default=10.0,
                   help="seconds to wait for the broker (10)")  # fmt: skip


def retained_topics(cfg) -> list[str]:  # cfg: edge.config.load.Config
    """Every topic the daemon leaves a retained message on (HA discovery only when it is enabled), regions too."""
    from edge.mqtt.contract import stream_topics, topics
    from edge.mqtt.discovery import discovery_configs, retired_topics

    device_id, prefix = str(cfg.mqtt.device_id), cfg.mqtt.topic_prefix
    t = topics(prefix, device_id)
    streams = [stream_topics(prefix, device_id, r.name) for r in cfg.regions] or [stream_topics(prefix, device_id)]
    out = [t.availability, t.camera, *(s.classification for s in streams), *(s.label for s in streams),
           *(s.drift for s in streams)]
    if cfg.homeassistant.discovery:
        ha = cfg.homeassistant.prefix
        regions = [(r.name, ()) for r in cfg.regions]
        out += list(discovery_configs(ha, prefix, device_id, model="", device="", regions=regions))
        out += retired_topics(ha, device_id)
    return out


def run(args: argparse.Namespace) -> int:
    """Clear the device's retained messages; exit 1 when the broker cannot be reached in time."""
    from edge.config.load import load_config
    from edge.mqtt.client import connect_failure, make_client

    cfg = load_config(args.config)
    m = cfg.mqtt
    client = make_client(m, cfg.password, f"edge-forget-{m.device_id}-{os.getpid()}")
    connected, refused = threading.Event(), []

    def on_connect(c, _userdata, _flags, reason_code, _props=None) -> None:
        if reason_code.is_failure:
            refused.append(str(reason_code))
        connected.set()

    client.on_connect = on_connect
    try:
        client.connect(m.host, m.port, keepalive=30)
    except OSError as e:
        raise Failure(connect_failure(e, m.host, m.port, m.tls.enabled)) from None
    client.loop_start()
    try:
        if not connected.wait(args.timeout) or refused:
            why = refused[0] if refused else f"no answer within {args.timeout:g} s"
            raise Failure(f"broker {m.host}:{m.port}: {why}; nothing was removed")
        infos = [client.publish(topic, b"", qos=1, retain=True) for topic in retained_topics(cfg)]
        for info in infos:
            info.wait_for_publish(args.timeout)
    finally:
        client.disconnect()
        client.loop_stop()
    print(f"removed the retained messages of {m.device_id} ({len(infos)} topics) from {m.host}:{m.port}")
    return 0
