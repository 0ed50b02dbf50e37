"""`edge-daemon forget`: a retired device leaves nothing retained behind (so Home Assistant drops its entities)."""

from __future__ import annotations

import time

from tests.edge.service.test_daemon import T, config
from tests.edge.test_hostile_input import assert_one_line, edge_daemon
from tests.support.mosquitto import Subscriber


def retained(broker) -> dict[str, bytes]:
    """Every retained message on the broker (what a new subscriber to # gets at once)."""
    with Subscriber(broker, ["#"]) as sub:
        time.sleep(1.0)
        return {m.topic: m.payload for m in sub.received() if m.retain}


def test_forget_clears_every_retained_message(mosquitto, subscriber_factory, daemon_factory, demo_model, fm_clip,
                                              tmp_path) -> None:  # fmt: skip
    cfg = config(tmp_path, mosquitto, demo_model, fm_clip, mqtt={"label_topic": True})
    sub = subscriber_factory(mosquitto, [f"{T}/#"])
    d = daemon_factory(cfg)
    sub.wait_for(lambda ms: any(m.topic == f"{T}/label" and m.payload for m in ms), 20)  # not the start's clear
    assert d.stop()[0] == 0
    before = retained(mosquitto)
    assert {f"{T}/availability", f"{T}/camera", f"{T}/classification", f"{T}/label"} <= set(before)
    assert sum(t.startswith("homeassistant/") for t in before) >= 8
    r = edge_daemon("forget", "--config", str(cfg))
    assert r.returncode == 0 and "removed the retained messages of dev1" in r.stdout, r.stderr
    assert retained(mosquitto) == {}


def test_forget_without_a_broker_is_one_line(demo_model, fm_clip, tmp_path) -> None:
    cfg = config(tmp_path, None, demo_model, fm_clip)  # a free port: nothing listens
    assert_one_line(edge_daemon("forget", "--config", str(cfg), "--timeout", "2"), 1, "connection refused")
