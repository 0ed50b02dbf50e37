"""edge.mqtt.publisher against a real mosquitto: contract, retained flags, availability/LWT, offline queue, HA
discovery."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.config.schema import HomeAssistantConfig
from edge.errors import EdgeError
from edge.inference.postprocess import Prediction
from edge.mqtt.contract import topics
from edge.mqtt.discovery import SENSOR_KEYS
from edge.mqtt.publisher import DISCOVERY_MIN_INTERVAL_S, Publisher
from tests.edge.conftest import classification, mqtt_section
from tests.support.mosquitto import MOSQUITTO_SUB, Mosquitto

REPO = Path(__file__).resolve().parents[3]
T = topics("edge", "pi1")


def wait_until(predicate, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout} s")
        time.sleep(0.02)


def frames(messages, topic: str = T.classification) -> list[int]:
    return [json.loads(m.payload)["frame"] for m in messages if m.topic == topic]


def publish_once(broker, topic: str, payload: str, retain: bool = False) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.connect(broker.host, broker.port)
    client.loop_start()
    client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


def test_messages_match_the_contract(mosquitto, subscriber_factory, publisher_factory) -> None:
    live = subscriber_factory(mosquitto, ["edge/#"])
    pub = publisher_factory(mosquitto)
    wait_until(lambda: pub.connected, what="connected")
    payload = classification((Prediction(1, "dog", 0.9), Prediction(0, "cat", 0.07)), frame=3, timestamp=1.5)
    pub.publish_classification(payload)
    stats = {"fps_classified": 5.0, "uptime_s": 1.0, **pub.counters()}
    pub.publish_stats(stats)
    pub.publish_event({"event": "model_reload", "ok": True})
    live.wait_for_topic(T.event)
    (cls,) = live.received(T.classification)
    assert cls.json() == payload and cls.qos == 1
    assert live.received(T.stats)[0].json() == stats
    assert live.received(T.availability)[0].text == "online"
    assert set(pub.counters()) == {"mqtt_reconnects", "queued", "dropped", "published"}
    wait_until(lambda: pub.counters()["published"] == 3, what="3 acknowledged")

    # A subscriber arriving later gets the retained state (availability, classification) but no old stats.
    late = subscriber_factory(mosquitto, ["edge/#"])
    late.wait_for(lambda ms: {m.topic for m in ms} >= {T.classification, T.availability})
    got = {m.topic: m for m in late.received()}
    assert got[T.classification].retain and got[T.classification].json() == payload
    assert got[T.availability].retain and got[T.availability].text == "online"
    assert T.stats not in got and T.event not in got


def test_offline_on_clean_stop(mosquitto, subscriber_factory, publisher_factory) -> None:
    pub = publisher_factory(mosquitto)
    wait_until(lambda: pub.connected, what="connected")
    pub.stop()
    pub.stop()  # idempotent
    assert not pub.connected
    late = subscriber_factory(mosquitto, [T.availability])
    msg = late.wait_for_topic(T.availability)[0]
    assert (msg.text, msg.retain) == ("offline", True)


KILLED_CHILD = """
import sys, time
from edge.config.schema import HomeAssistantConfig, MqttConfig
from edge.mqtt.publisher import Publisher
pub = Publisher(MqttConfig(device_id="pi1", client_id="c1", host="127.0.0.1", port=int(sys.argv[1])),
                HomeAssistantConfig(), model="m", device="cpu")
pub.start()
while not pub.connected:
    time.sleep(0.02)
print("connected", flush=True)
time.sleep(60)
"""


def test_last_will_offline_when_the_process_dies(mosquitto, subscriber_factory) -> None:
    sub = subscriber_factory(mosquitto, [T.availability])
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_CHILD, str(mosquitto.port)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline().strip() == "connected"
        sub.wait_for(lambda ms: [m.text for m in ms] == ["online"])
        child.send_signal(signal.SIGKILL)
        child.wait(5)
        msgs = sub.wait_for(lambda ms: len(ms) == 2)
        assert msgs[1].text == "offline"
    finally:
        child.kill()
        child.wait(5)
    late = subscriber_factory(mosquitto, [T.availability])
    assert (late.wait_for_topic(T.availability)[0].text, late.received()[0].retain) == ("offline", True)


def test_qos1_survives_broker_restart_mid_stream(mosquitto_factory, subscriber_factory, publisher_factory) -> None:
    """Frames published at ~100/s while the broker restarts (down ~1.5 s) all arrive, in order, none dropped."""
    broker = mosquitto_factory(persistence=True)  # keeps the subscriber's session across the restart
    sub = subscriber_factory(broker, [T.classification], client_id="dashboard", clean_session=False, qos=1)
    pub = publisher_factory(broker, queue_size=1000)
    wait_until(lambda: pub.connected, what="connected")
    stop = threading.Event()
    sent: list[int] = []
    saw_disconnected = threading.Event()

    def produce() -> None:
        frame = 0
        while not stop.is_set():
            pub.publish_classification({"frame": frame})
            sent.append(frame)
            frame += 1
            if not pub.connected:
                saw_disconnected.set()
            time.sleep(0.01)

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        time.sleep(0.8)
        broker.restart(down_for=1.5)
        wait_until(lambda: pub.connected, what="publisher reconnected")
        time.sleep(0.8)
    finally:
        stop.set()
        producer.join()
    sub.wait_for(lambda ms: len(set(frames(ms))) >= len(sent), timeout=15)
    received = frames(sub.received())
    first_seen = list(dict.fromkeys(received))  # QoS 1 may duplicate; order of first arrival must be kept
    assert first_seen == sent
    assert saw_disconnected.is_set()
    c = pub.counters()
    assert (c["mqtt_reconnects"], c["dropped"]) == (1, 0)
    wait_until(lambda: pub.counters()["queued"] == 0, what="queue drained")


def test_offline_queue_is_bounded_oldest_dropped(mosquitto_factory, subscriber_factory, publisher_factory) -> None:
    broker = mosquitto_factory(persistence=True)
    subscriber_factory(broker, [T.classification], client_id="dashboard", clean_session=False).stop()
    broker.stop()
    pub = publisher_factory(broker, queue_size=50)  # the broker is down: not an error
    for frame in range(70):
        pub.publish_classification({"frame": frame})
    assert not pub.connected
    assert pub.counters() == {"mqtt_reconnects": 0, "queued": 50, "dropped": 20, "published": 0}
    broker.start()
    sub = subscriber_factory(broker, [T.classification], client_id="dashboard", clean_session=False)
    sub.wait_for(lambda ms: 69 in frames(ms), timeout=15)
    assert list(dict.fromkeys(frames(sub.received()))) == list(range(20, 70))
    wait_until(lambda: pub.counters()["published"] == 50, what="50 acknowledged")


def test_refused_connack_is_never_connected(mosquitto_factory, publisher_factory, caplog) -> None:
    broker = mosquitto_factory(users={"alice": "right"}, allow_anonymous=False)
    caplog.set_level(logging.DEBUG, logger="edge.mqtt.publisher")
    pub = publisher_factory(broker, username="alice", password="wrong")
    wait_until(lambda: "not authorised" in broker.log().lower() or "not authorized" in broker.log().lower())
    time.sleep(1.5)  # paho retries after 1 s: the second refusal must not be logged again at ERROR
    assert not pub.connected
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "refused" in errors[0] and "password_file" in errors[0]
    assert "wrong" not in caplog.text
    pub.publish_classification({"frame": 1})
    assert pub.counters()["queued"] == 1


@pytest.mark.parametrize("client_cert", [False, True], ids=["password", "password+client-cert"])
def test_tls_and_password(mosquitto_factory, subscriber_factory, publisher_factory, client_cert: bool) -> None:
    broker = mosquitto_factory(
        tls=True, require_certificate=client_cert, users={"alice": "s3cret"}, allow_anonymous=False
    )
    f = broker.tls_files
    sub = subscriber_factory(broker, ["edge/#"], username="alice", password="s3cret", client_cert=client_cert)
    cert = {"cert": str(f.client_cert), "key": str(f.client_key)} if client_cert else {}
    pub = publisher_factory(broker, tls=True, ca=str(f.ca), username="alice", password="s3cret", **cert)
    wait_until(lambda: pub.connected, what="TLS connection")
    pub.publish_classification({"frame": 9})
    assert frames(sub.wait_for_topic(T.classification)) == [9]


def test_tls_hostname_check_and_insecure(mosquitto_factory, publisher_factory, caplog) -> None:
    broker = mosquitto_factory(tls=True, tls_names=("broker.invalid",))  # cert does not name 127.0.0.1
    ca = str(broker.tls_files.ca)
    strict = publisher_factory(broker, tls=True, ca=ca, device_id="strict")
    insecure = publisher_factory(broker, tls=True, ca=ca, insecure=True, device_id="insecure")
    wait_until(lambda: insecure.connected, what="insecure TLS connection")
    wait_until(lambda: "TLS host name check failed" in caplog.text, what="strict failure logged with its reason")
    assert not strict.connected


def test_unloadable_tls_files_are_one_line_errors() -> None:
    with pytest.raises(EdgeError, match=r"mqtt\.tls\.ca") as info:
        Publisher(mqtt_section(port=1, tls=True, ca="/nonexistent/ca.crt"), HomeAssistantConfig(), model="m",
                  device="cpu")  # fmt: skip
    assert "\n" not in str(info.value)


def test_home_assistant_discovery_resent_when_ha_comes_online(mosquitto, subscriber_factory, publisher_factory) -> None:
    sub = subscriber_factory(mosquitto, ["homeassistant/+/+/config"])
    configs = lambda: [m for m in sub.received() if m.payload]  # noqa: E731  (an empty one retires an entity)
    pub = publisher_factory(mosquitto, model="tiny", device="cpu")
    n = len(SENSOR_KEYS)
    sub.wait_for(lambda ms: len(configs()) == n)
    first = {m.topic: m.json() for m in configs()}
    assert all(c["device"]["model"] == "tiny" for c in first.values())
    assert {"homeassistant/sensor/pi1_label/config", "homeassistant/binary_sensor/pi1_camera/config"} <= set(first)
    retired = sub.wait_for(lambda ms: any(not m.payload for m in ms))
    assert [m.topic for m in retired if not m.payload] == ["homeassistant/sensor/pi1_uptime/config"]  # cleared

    publish_once(mosquitto, "homeassistant/status", "offline")
    publish_once(mosquitto, "homeassistant/status", "online")  # Home Assistant restarted (soon after our connect)
    time.sleep(0.5)
    assert len(configs()) == n  # at most one discovery per DISCOVERY_MIN_INTERVAL_S: due, not yet sent
    pub.tick(time.monotonic() + DISCOVERY_MIN_INTERVAL_S)  # the daemon's loop calls tick() all the time
    sub.wait_for(lambda ms: len(configs()) == 2 * n)
    assert {m.topic for m in configs()[n:]} == set(first)

    pub.set_model("bigger", "edgetpu", ("x", "y"))  # after a reload: device model/hw and the label options
    sub.wait_for(lambda ms: len(configs()) == 3 * n)
    assert {(m.json()["device"]["model"], m.json()["device"]["hw_version"]) for m in configs()[2 * n :]} == {
        ("bigger", "edgetpu")
    }
    assert next(m.json()["options"] for m in configs()[2 * n :] if m.topic.endswith("_label/config")) == [
        "x", "y", "none", "unknown"]  # fmt: skip
    late = subscriber_factory(mosquitto, ["homeassistant/+/+/config"])  # configs are retained, the retired one gone
    assert all(m.retain and m.payload for m in late.wait_for(lambda ms: len(ms) == n))


def test_camera_and_label_topics_are_retained_text(mosquitto, subscriber_factory, publisher_factory) -> None:
    pub = publisher_factory(mosquitto)
    wait_until(lambda: pub.connected and pub.take_reconnected(), what="connected, once")
    assert not pub.take_reconnected()  # once per connect
    pub.publish_camera("offline")
    pub.publish_label("tabby cat")
    late = subscriber_factory(mosquitto, [T.camera, T.label])
    got = {m.topic: (m.text, m.retain) for m in late.wait_for(lambda ms: len(ms) == 2)}
    assert got == {T.camera: ("offline", True), T.label: ("tabby cat", True)}


def test_discovery_can_be_disabled(mosquitto, subscriber_factory, publisher_factory) -> None:
    sub = subscriber_factory(mosquitto, ["#"])
    pub = publisher_factory(mosquitto, ha_discovery=False)
    wait_until(lambda: pub.connected)
    pub.publish_classification({"frame": 1})
    sub.wait_for_topic(T.classification)
    assert not [m for m in sub.received() if m.topic.startswith("homeassistant/")]


def test_received_by_mosquitto_sub(mosquitto, publisher_factory) -> None:
    """A client nobody here wrote (mosquitto_sub) sees the retained state with the retain flag set."""
    if not os.access(MOSQUITTO_SUB, os.X_OK):
        pytest.skip("mosquitto_sub not installed (apt-get install mosquitto-clients)")
    pub = publisher_factory(mosquitto)
    payload = classification((Prediction(2, "bird", 0.75),), frame=11, inference_ms=2.0, model="tiny",
                                     timestamp=0.0)  # fmt: skip
    pub.publish_classification(payload)
    wait_until(lambda: pub.counters()["published"] == 1, what="acknowledged")
    out = subprocess.run(
        [MOSQUITTO_SUB, "-h", mosquitto.host, "-p", str(mosquitto.port), "-q", "1", "-C", "2", "-W", "10",
         "-t", T.classification, "-t", T.availability, "-F", "%r\t%t\t%p"],
        capture_output=True, text=True, timeout=20, check=True,
    ).stdout  # fmt: skip
    lines = dict((topic, (retain, body)) for retain, topic, body in (ln.split("\t", 2) for ln in out.splitlines()))
    assert lines[T.availability] == ("1", "online")
    assert lines[T.classification][0] == "1"
    assert json.loads(lines[T.classification][1]) == payload


def test_mosquitto_helper_is_real(mosquitto: Mosquitto) -> None:
    """Guard: the broker under test is the Debian mosquitto binary, not something else on the port."""
    assert mosquitto.running and "mosquitto version" in mosquitto.log()


def test_stop_while_broker_unreachable_is_bounded(publisher_factory, caplog) -> None:
    """A daemon told to stop while its broker is away still stops promptly (SIGTERM must exit within 5 s)."""
    from tests.support.mosquitto import free_port

    class Nowhere:
        host, port = "127.0.0.1", free_port()  # nothing listens here

    caplog.set_level(logging.INFO, logger="edge.mqtt.publisher")
    pub = publisher_factory(Nowhere)
    for frame in range(5):
        pub.publish_classification({"frame": frame})
    wait_until(lambda: "connection refused" in caplog.text, what="failure logged")
    started = time.monotonic()
    pub.stop(timeout=1.0)
    assert time.monotonic() - started < 3.0
    assert "5 message(s) not delivered" in caplog.text
