"""End to end with a real Home Assistant core (its MQTT integration only) against mosquitto.

Needs a Python with ``homeassistant`` installed (HA 2026.2.x runs on Python 3.13) named by EDGE_HA_PYTHON; skipped
otherwise. HA discovers the publisher's sensors, shows their values, re-discovery follows HA's birth message, and
the entities go unavailable when the publisher stops.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import threading
import time

import pytest

from edge.ha_discovery import SENSOR_KEYS
from edge.mqtt_contract import classification_payload
from edge.postprocess import Prediction
from tests.support.homeassistant import HA_TOOLS

HA_PYTHON = os.environ.get("EDGE_HA_PYTHON")
pytestmark = pytest.mark.skipif(
    not HA_PYTHON, reason="EDGE_HA_PYTHON unset: point it at a Python with homeassistant installed"
)


def test_home_assistant_discovers_and_shows_the_sensors(mosquitto, publisher_factory, caplog) -> None:
    caplog.set_level(logging.INFO, logger="edge.publisher")
    pub = publisher_factory(mosquitto, model="tiny", device="cpu")
    pub.publish_classification(
        classification_payload((Prediction(0, "cat", 0.8766),), frame=5, inference_ms=3.3, model="tiny",
                               timestamp=time.time())
    )  # fmt: skip
    stop = threading.Event()

    def stats_ticker() -> None:  # stats are not retained: keep them coming until HA has subscribed
        while not stop.wait(0.5):
            pub.publish_stats({"fps_classified": 4.5, "uptime_s": 13.2, **pub.counters()})

    ticker = threading.Thread(target=stats_ticker)
    ticker.start()
    ha = subprocess.Popen(
        [HA_PYTHON, str(HA_TOOLS / "ha_e2e.py"), str(mosquitto.port), str(len(SENSOR_KEYS))],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        states = json.loads(ha.stdout.readline())
        stop.set()
        ticker.join()
        assert "timeout" not in states, states
        got = {entity: s["state"] for entity, s in states.items()}
        assert got == {
            "sensor.pi1_label": "cat",
            "sensor.pi1_score": "87.7",
            "sensor.pi1_inference_time": "3.3",
            "sensor.pi1_classified_fps": "4.5",
            "sensor.pi1_dropped_mqtt_messages": "0",
            "sensor.pi1_uptime": "13",
        }
        label = states["sensor.pi1_label"]["attributes"]
        assert (label["frame"], label["model"], label["friendly_name"]) == (5, "tiny", "pi1 Label")
        assert states["sensor.pi1_inference_time"]["attributes"]["unit_of_measurement"] == "ms"
        deadline = time.monotonic() + 15  # HA's birth message ("online" on homeassistant/status) follows its start
        while "Home Assistant is online: re-sending discovery" not in caplog.text:
            assert time.monotonic() < deadline, "no re-discovery after Home Assistant's birth message"
            time.sleep(0.1)

        pub.stop()
        ha.stdin.write(f"{len(SENSOR_KEYS)}\n")
        ha.stdin.flush()
        after = json.loads(ha.stdout.readline())
        assert "timeout" not in after, after
        assert {s["state"] for s in after.values()} == {"unavailable"}
    finally:
        stop.set()
        ticker.join()
        ha.stdin.close()
        try:
            ha.wait(30)
        except subprocess.TimeoutExpired:
            ha.kill()
            ha.wait(5)
