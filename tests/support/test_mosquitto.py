"""The test broker helper itself: plain, password, TLS (+client cert), restart on the same port, persistence."""

from __future__ import annotations

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.mosquitto import Mosquitto


def test_plain_broker_round_trip(mosquitto: Mosquitto, subscriber_factory) -> None:
    sub = subscriber_factory(mosquitto, ["t/#"])
    pub = mqtt.Client(CallbackAPIVersion.VERSION2)
    pub.connect(mosquitto.host, mosquitto.port)
    pub.loop_start()
    pub.publish("t/a", b"hello", qos=1).wait_for_publish(5)
    pub.disconnect()
    pub.loop_stop()
    assert sub.wait_for_topic("t/a")[0].payload == b"hello"


def test_restart_keeps_port_and_persistent_session(mosquitto_factory, subscriber_factory) -> None:
    broker = mosquitto_factory(persistence=True)
    port = broker.port
    sub = subscriber_factory(broker, ["p/#"], client_id="persistent-sub", clean_session=False)
    sub.stop()
    broker.restart()
    assert broker.port == port and broker.running
    pub = mqtt.Client(CallbackAPIVersion.VERSION2)
    pub.connect(broker.host, broker.port)
    pub.loop_start()
    pub.publish("p/x", b"while away", qos=1).wait_for_publish(5)
    pub.disconnect()
    pub.loop_stop()
    sub2 = subscriber_factory(broker, ["p/#"], client_id="persistent-sub", clean_session=False)
    assert sub2.wait_for_topic("p/x")[0].payload == b"while away"


@pytest.mark.parametrize("client_cert", [False, True])
def test_tls_and_password_broker(mosquitto_factory, subscriber_factory, client_cert: bool) -> None:
    broker = mosquitto_factory(
        tls=True, require_certificate=client_cert, users={"alice": "s3cret"}, allow_anonymous=False
    )
    sub = subscriber_factory(broker, ["#"], username="alice", password="s3cret", client_cert=client_cert)
    assert sub.connect_count == 1
