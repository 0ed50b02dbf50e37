"""What other network clients and brokers can do to the daemon, against a real mosquitto (issue 11, part 2).

- A flood of Home Assistant `online` announcements (any client may publish them) neither kills the daemon nor
  grows its memory nor fills its log: discovery is re-sent at most once per interval.
- A dead paho network thread is noticed: logged, and the run ends with status 1 (systemd restarts it) instead
  of pinging the watchdog for ever.
- Every way a connection fails is logged once, with its real reason.
- Camera credentials never reach the log, the MQTT events or `check-config`.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.config.load import config_from_dict
from edge.mqtt.publisher import DISCOVERY_MIN_INTERVAL_S, Publisher
from edge.service.daemon import Service
from tests.edge.conftest import write_config
from tests.edge.service.test_daemon import DEV, config
from tests.edge.test_hostile_input import edge_daemon
from tests.support.media import MjpegServer
from tests.support.mosquitto import make_tls_files


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_a_flood_of_home_assistant_online_messages_is_harmless(
    mosquitto, subscriber_factory, daemon_factory, demo_model, fm_clip, tmp_path
) -> None:
    """12,000 `online` messages made the old daemon exit (ERR_QUEUE_SIZE) or keep +100 MB for good."""
    discovery = subscriber_factory(mosquitto, ["homeassistant/+/+/config"])
    configs = lambda: [m for m in discovery.received() if m.payload]  # noqa: E731
    sub = subscriber_factory(mosquitto, [f"edge/{DEV}/#"])
    d = daemon_factory(config(tmp_path, mosquitto, demo_model, fm_clip))
    fresh = lambda ms: any(m.topic.endswith("/classification") and not m.json()["stale"] for m in ms)  # noqa: E731
    sub.wait_for(fresh, 20)  # classifying (not the `start` message, which comes before online and discovery)
    discovery.wait_for(lambda ms: configs(), 10)
    first_discovery = len(configs())
    before = _rss_mb(d.proc.pid)
    flooder = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="flooder")
    flooder.connect(mosquitto.host, mosquitto.port)
    flooder.loop_start()
    started = time.monotonic()
    for _ in range(12_000):
        flooder.publish("homeassistant/status", "online", qos=0)
    time.sleep(2.0)
    flooder.disconnect()
    flooder.loop_stop()
    n = len(sub.received(f"edge/{DEV}/classification"))
    sub.wait_for(lambda ms: len([m for m in ms if m.topic.endswith("/classification")]) > n + 2, 10)  # still working
    assert d.proc.poll() is None, d.log()
    grown = _rss_mb(d.proc.pid) - before
    assert grown < 15, f"RSS grew by {grown:.1f} MB"
    discovery.wait_for(lambda ms: len(configs()) >= 2 * first_discovery, DISCOVERY_MIN_INTERVAL_S + 5)  # HA gets it
    time.sleep(1.0)
    resent = (len(configs()) - first_discovery) / first_discovery
    allowed = 1 + (time.monotonic() - started) / DISCOVERY_MIN_INTERVAL_S
    assert resent <= allowed, (resent, allowed)  # coalesced and rate-limited
    assert d.stop()[0] == 0
    assert d.log().count("Home Assistant is online") <= 2, d.log()


def test_a_dead_network_thread_ends_the_run_with_status_1(mosquitto, demo_model, fm_clip, monkeypatch, caplog) -> None:
    """paho's thread dies if a callback raises (as with ERR_QUEUE_SIZE before); the daemon used to go on silently."""
    cfg = config_from_dict({"camera": {"source": str(fm_clip)}, "model": {"path": str(demo_model), "watch": False},
                            "mqtt": {"host": mosquitto.host, "port": mosquitto.port, "device_id": "dies"}},
                           environ={})  # fmt: skip
    monkeypatch.setattr(Publisher, "_on_ha_status", lambda *a: 1 / 0)  # a bug in a callback, on paho's thread
    service = Service(cfg)
    result: list[int] = []
    runner = threading.Thread(target=lambda: result.append(service.run()), name="runner")
    runner.start()
    deadline = time.monotonic() + 20
    while not (service.publisher and service.publisher.connected) and time.monotonic() < deadline:
        time.sleep(0.05)
    caplog.set_level(logging.ERROR)
    poke = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="poke")
    poke.connect(mosquitto.host, mosquitto.port)
    poke.publish("homeassistant/status", "online", qos=1).wait_for_publish(5)
    poke.disconnect()
    runner.join(15)
    if runner.is_alive():
        service.stop()
        runner.join(5)
        pytest.fail("the daemon kept running with a dead network thread")
    assert result == [1]
    assert "died: ZeroDivisionError" in caplog.text


@pytest.fixture
def brokers(mosquitto_factory):
    plain = mosquitto_factory()
    tls = mosquitto_factory(tls=True, tls_names=("broker.invalid",))
    wants_cert = mosquitto_factory(tls=True, require_certificate=True)
    silent = socket.create_server(("127.0.0.1", 0))  # accepts TCP and never answers: not an MQTT broker
    held: list[socket.socket] = []
    threading.Thread(target=lambda: [held.append(silent.accept()[0]) for _ in range(3)], daemon=True).start()
    yield {"plain": plain, "tls": tls, "wants_cert": wants_cert, "silent": silent.getsockname()[1]}
    silent.close()
    for s in held:
        s.close()


CONNECT_CASES = {
    "wrong CA": ("tls", {"tls": True, "ca": "other"}, "TLS certificate not trusted"),
    "host name mismatch": ("tls", {"tls": True, "ca": "tls"}, "TLS host name check failed"),
    "TLS to a plain port": ("plain", {"tls": True, "ca": "tls"}, "reset during the TLS handshake: is it a TLS port?"),
    "broker wants a client certificate": ("wants_cert", {"tls": True, "ca": "wants_cert"},
                                          "the broker requires a client certificate"),
    "plain MQTT to a TLS port": ("tls", {}, "is it a TLS port? then set mqtt.tls.enabled = true"),
    "no CONNACK": ("silent", {}, "no MQTT answer (CONNACK) within 10 s"),
}  # fmt: skip


@pytest.mark.parametrize("case", CONNECT_CASES)
def test_each_connection_failure_is_logged_once_with_its_reason(case, brokers, publisher_factory, tmp_path, caplog):
    target, options, expected = CONNECT_CASES[case]
    cas = {name: b.tls_files.ca for name, b in brokers.items() if hasattr(b, "tls_files") and b.tls_files}
    cas["other"] = make_tls_files(tmp_path / "other").ca
    if "ca" in options:
        options = {**options, "ca": str(cas[options["ca"]])}

    class Where:
        host = "127.0.0.1"
        port = brokers[target] if target == "silent" else brokers[target].port

    caplog.set_level(logging.WARNING, logger="edge.mqtt.publisher")
    pub = publisher_factory(Where, **options)
    deadline = time.monotonic() + (14 if case == "no CONNACK" else 6)
    while time.monotonic() < deadline:
        pub.tick(time.monotonic())  # the daemon's loop does this
        time.sleep(0.1)
    assert not pub.connected
    lines = [r.getMessage() for r in caplog.records if r.name == "edge.mqtt.publisher"]
    assert sum(expected in line for line in lines) == 1, lines  # once, although paho retried meanwhile


def test_camera_credentials_never_leave_the_daemon(mosquitto, subscriber_factory, daemon_factory, demo_model,
                                                   fm_images, tmp_path) -> None:  # fmt: skip
    server = MjpegServer(fm_images, fps=10).start()
    source = server.url.replace("http://", "http://admin:p@ss@") + "?user=admin&pwd=s3cret"
    sub = subscriber_factory(mosquitto, [f"edge/{DEV}/#"])
    cfg = config(tmp_path, mosquitto, demo_model, source)
    try:
        d = daemon_factory(cfg)
        event = sub.wait_for(lambda ms: any(m.topic.endswith("/event") for m in ms), 20)
        event = next(m.text for m in event if m.topic.endswith("/event"))
        assert d.stop()[0] == 0
    finally:
        server.stop()
    checked = edge_daemon("check-config", str(cfg))
    shown = {"log": d.log(), "event": event, "check-config": checked.stdout + checked.stderr}
    for where, text in shown.items():
        assert "p@ss" not in text and "s3cret" not in text and "user=admin" not in text, (where, text)
    assert "admin:***@127.0.0.1" in shown["event"] and "pwd=***" in shown["event"]


def test_config_refuses_a_device_id_paho_cannot_send(demo_model, tmp_path) -> None:
    """A 70,000-byte device id killed paho's thread (struct.error) with nothing logged; now check-config says so."""
    cfg = write_config(tmp_path / "c.toml", {"model": {"path": str(demo_model)}, "mqtt": {"device_id": "x" * 70_000}})
    r = edge_daemon("check-config", str(cfg))
    assert r.returncode == 2 and "mqtt.device_id: 70000 bytes long" in r.stderr
