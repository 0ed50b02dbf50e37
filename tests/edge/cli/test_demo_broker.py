"""edge.cli.demo_broker.EmbeddedBroker (amqtt) with the real Publisher and a paho subscriber: QoS 1, retained, LWT."""

from __future__ import annotations

import socket

import pytest

from edge.cli.demo_broker import EmbeddedBroker
from edge.errors import EdgeError
from edge.inference.postprocess import Prediction
from edge.mqtt.contract import topics
from tests.edge.conftest import classification
from tests.support.mosquitto import Subscriber

pytest.importorskip("amqtt", reason="amqtt not installed: pip install 'edge-daemon[demo]'")
T = topics("edge", "pi1")


def test_round_trip_through_the_embedded_broker(publisher_factory) -> None:
    with EmbeddedBroker(port=0) as broker:
        assert broker.host == "127.0.0.1" and broker.port > 0
        with Subscriber(broker, ["edge/#"]) as live:
            pub = publisher_factory(broker, ha_discovery=False)
            payload = classification((Prediction(0, "cat", 0.6),), frame=1)
            pub.publish_classification(payload)
            pub.publish_stats({"fps_classified": 1.0})
            live.wait_for_topic(T.stats)
            assert live.received(T.availability)[0].text == "online"
            assert live.received(T.classification)[0].json() == payload
            assert live.received(T.classification)[0].qos == 1
            with Subscriber(broker, ["edge/#"]) as late:  # retained state for a newcomer
                late.wait_for(lambda ms: {m.topic for m in ms} >= {T.availability, T.classification})
                assert all(m.retain for m in late.received())
                assert late.received(T.classification)[0].json() == payload
            pub.stop()
            assert [m.text for m in live.wait_for_topic(T.availability, 2)] == ["online", "offline"]


def test_port_in_use_is_a_one_line_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        with pytest.raises(EdgeError, match=r"cannot listen on 127\.0\.0\.1:\d+") as info:
            EmbeddedBroker(port=s.getsockname()[1]).start()
    assert "\n" not in str(info.value)
