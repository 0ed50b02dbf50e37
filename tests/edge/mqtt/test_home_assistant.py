"""End to end with a real Home Assistant core (its MQTT integration only), a real daemon and mosquitto.

Needs a Python with ``homeassistant`` installed (HA 2026.2.x runs on Python 3.13) named by EDGE_HA_PYTHON
(`tests/run.sh` builds one when it finds a Python 3.13); skipped otherwise. HA discovers the daemon's entities
and shows what is true through every event: the label; the camera going offline (camera off, label and score
unavailable by the documented rule); the camera back (label back); the broker restarted without persistence
(everything back, with no wait for a heartbeat); the daemon stopped (every entity unavailable).
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.edge.service.test_daemon import DEV, config
from tests.support.homeassistant import HA_MISSING, HA_PYTHON, HA_TOOLS
from tests.support.media import MjpegServer

pytestmark = pytest.mark.skipif(not HA_PYTHON, reason=HA_MISSING)

LABEL, SCORE, CAMERA = f"sensor.{DEV}_label", f"sensor.{DEV}_score", f"binary_sensor.{DEV}_camera"
DIAGNOSTIC = (f"sensor.{DEV}_classified_fps", f"sensor.{DEV}_started", f"sensor.{DEV}_inference_time")


class HomeAssistant:
    """ha_e2e.py in a child process: `expect({entity: state})` waits until HA shows those states."""

    def __init__(self, port: int) -> None:
        self.proc = subprocess.Popen([HA_PYTHON, str(HA_TOOLS / "ha_e2e.py"), str(port)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # fmt: skip

    def expect(self, states: dict[str, str]) -> dict[str, dict]:
        self.proc.stdin.write(json.dumps(states) + "\n")
        self.proc.stdin.flush()
        got = json.loads(self.proc.stdout.readline())
        assert "timeout" not in got, {"expected": states, "got": {k: v["state"] for k, v in got["timeout"].items()}}
        return got

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def test_home_assistant_shows_the_truth_through_every_event(
    mosquitto, daemon_factory, demo_model, fm_images, fm_labels, tmp_path
) -> None:
    label = fm_labels[0]
    camera = MjpegServer(fm_images, fps=10).start()
    d = daemon_factory(config(tmp_path, mosquitto, demo_model, camera.url, camera={"max_rate": 5.0}))
    ha = HomeAssistant(mosquitto.port)
    try:
        up = ha.expect({LABEL: label, SCORE: "*", CAMERA: "on", f"sensor.{DEV}_last_change": "*",
                        **dict.fromkeys(DIAGNOSTIC, "*")})  # fmt: skip
        assert up[LABEL]["attributes"]["device_class"] == "enum" and label in up[LABEL]["attributes"]["options"]
        assert up[LABEL]["attributes"]["reason"] in ("change", "heartbeat", "reconnect")
        assert up[CAMERA]["attributes"]["device_class"] == "connectivity"
        assert up[f"sensor.{DEV}_started"]["attributes"]["device_class"] == "timestamp"
        assert f"sensor.{DEV}_uptime" not in up  # the retired entity is gone

        camera.stop()  # the camera goes away: HA says so, and shows no label it is not seeing any more
        away = ha.expect({CAMERA: "off", LABEL: "unavailable", SCORE: "unavailable"})
        assert all(away[e]["state"] not in ("unknown", "unavailable") for e in DIAGNOSTIC)  # the device is up

        camera.start()
        ha.expect({CAMERA: "on", LABEL: label, SCORE: "*"})

        mosquitto.restart(down_for=1.0)  # no persistence: the broker forgot every retained message
        ha.expect({CAMERA: "on", LABEL: label, SCORE: "*"})

        assert d.stop()[0] == 0  # the device goes offline
        gone = ha.expect({LABEL: "unavailable", CAMERA: "unavailable", **dict.fromkeys(DIAGNOSTIC, "unavailable")})
        assert {s["state"] for e, s in gone.items() if e.split(".")[1].startswith(DEV)} == {"unavailable"}
    finally:
        camera.stop()
        ha.close()


def test_home_assistant_shows_model_drift(mosquitto, daemon_factory, demo_model, tmp_path) -> None:
    """The demo clip colour-inverted (ffmpeg -vf negate): HA's Model drift binary sensor turns on, Unknown rate > 0."""
    from tests.edge.service.test_daemon_drift import CAMERA, CLIP

    negated = tmp_path / "negated.avi"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(CLIP), "-vf", "negate", "-c:v", "mjpeg", "-q:v", "3",
                    str(negated)], check=True)  # fmt: skip
    d = daemon_factory(config(tmp_path, mosquitto, demo_model, negated, camera=CAMERA,
                              drift={"window_s": 40.0, "min_frames": 100}))  # judged within HA's 30 s wait
    ha = HomeAssistant(mosquitto.port)
    try:
        got = ha.expect({f"binary_sensor.{DEV}_model_drift": "on", f"sensor.{DEV}_unknown_rate": "*"})
        drift = got[f"binary_sensor.{DEV}_model_drift"]
        assert drift["attributes"]["device_class"] == "problem" and drift["attributes"]["score"] >= 0.3
        assert float(got[f"sensor.{DEV}_unknown_rate"]["state"]) > 0
    finally:
        ha.close()
        d.stop()
