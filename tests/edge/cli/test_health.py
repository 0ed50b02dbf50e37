"""`edge-daemon health` against a real mosquitto and a real daemon (`edge-daemon run` on a video clip)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest

from edge.cli.health import HealthReport, judge
from tests.support.mosquitto import free_port
from tests.support.shared_data import shared

CLI = [sys.executable, "-m", "edge.cli.main"]
TOPIC = "edge/dev/classification"
FRESH_A = {"label": "cat", "score": 0.9, "model": "a"}


@pytest.mark.parametrize(
    ("availability", "fresh", "classification", "expect", "problem"),
    [
        ("online", True, FRESH_A, None, None),
        ("online", True, FRESH_A, "a", None),
        (None, False, None, None, "nothing retained on edge/dev/availability"),
        ("offline", True, FRESH_A, None, "availability: 'offline', not 'online'"),
        ("online", False, FRESH_A, None, "classification: none on edge/dev/classification within 5 s"),
        ("online", True, FRESH_A, "b", "classification: from model 'a', expected 'b'"),
    ],
)
def test_judge(availability, fresh, classification, expect, problem):
    report = HealthReport("dev", "h:1", availability=availability, classification=classification, fresh=fresh)
    reason = judge(report, 5, expect, TOPIC)
    assert (reason is None) if problem is None else (problem in reason)


def write_config(path: Path, port: int, model: Path, clip: Path) -> Path:
    path.write_text(
        f'[camera]\nsource = "{clip}"\nmax_rate = 5.0\n[model]\npath = "{model}"\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {port}\ndevice_id = "dev"\n[smoothing]\nheartbeat_s = 1.0\n'
    )
    return path


def health(config: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, "health", "--config", str(config), *extra], capture_output=True, text=True)


@pytest.fixture
def clip(tmp_path) -> Path:
    img = cv2.resize(cv2.imread(str(shared("coral/cat.bmp"))), (160, 120))
    path = tmp_path / "cat.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    for _ in range(20):
        writer.write(img)
    writer.release()
    return path


def test_health_follows_the_real_daemon(tmp_path, mosquitto, clip):
    model = shared("coral/mobilenet_v1_0.25_128_quant.tflite")
    config = write_config(tmp_path / "config.toml", mosquitto.port, model, clip)

    before = health(config, "--timeout", "2")
    assert before.returncode == 1 and "nothing retained" in before.stderr and len(before.stderr.splitlines()) == 1

    daemon = subprocess.Popen([*CLI, "run", "--config", str(config)], stderr=subprocess.PIPE, text=True)
    try:
        ok = health(config, "--timeout", "20", "--expect-model", model.stem)
        assert ok.returncode == 0, ok.stderr
        assert ok.stdout.startswith("healthy: dev online, classification") and model.stem in ok.stdout

        wrong = health(config, "--timeout", "3", "--expect-model", "birds-v2")
        assert wrong.returncode == 1
        assert f"from model '{model.stem}', expected 'birds-v2'" in wrong.stderr

        as_json = health(config, "--timeout", "20", "--json")
        assert (
            as_json.returncode == 0
            and '"healthy": true' in as_json.stdout
            and '"availability": "online"' in as_json.stdout
        )
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(10)
    after = health(config, "--timeout", "2")
    assert after.returncode == 1 and "availability: 'offline'" in after.stderr


def test_health_reports_an_unreachable_broker_and_a_bad_config_in_one_line(tmp_path, clip):
    model = shared("coral/mobilenet_v1_0.25_128_quant.tflite")
    config = write_config(tmp_path / "config.toml", free_port(), model, clip)
    t = time.monotonic()
    down = health(config, "--timeout", "3")
    assert down.returncode == 1 and "connection refused" in down.stderr and len(down.stderr.splitlines()) == 1
    assert down.stderr.startswith("edge-daemon: error: unhealthy: dev: broker 127.0.0.1:")
    assert time.monotonic() - t < 15

    bad = tmp_path / "bad.toml"
    bad.write_text("[mqtt]\nhots = 'x'\n")
    r = health(bad)
    assert r.returncode == 2 and "mqtt.hots" in r.stderr and len(r.stderr.splitlines()) == 1
