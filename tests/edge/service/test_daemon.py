"""`edge-daemon run` end to end: a subprocess against a real mosquitto, real clips, a real MJPEG stream.

Covers the issue's "done when": messages match the contract (also as `mosquitto_sub` receives them), a broker
restart mid-stream loses no QoS 1 message, availability online/offline, a camera stream killed and brought back
resumes classification, SIGTERM exits 0 quickly, sd_notify READY/WATCHDOG/STATUS/STOPPING, model reload (bad
rejected, good swapped in), and start-up errors as one line.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.edge.conftest import CLI, REPO, write_config
from tests.support.media import MjpegServer
from tests.support.mosquitto import MOSQUITTO_SUB, Subscriber, free_port
from tests.support.payload_schemas import check_message

CONTRACT_KEYS = {"label", "index", "score", "top_k", "reason", "timestamp", "published_at", "changed_at", "frame",
                 "inference_ms", "model", "unknown"}  # fmt: skip
STATS_KEYS = {
    "fps_captured", "fps_classified", "fps_dropped", "inference_ms_p50", "inference_ms_p95", "camera_reconnects",
    "camera_connected", "uptime_s", "model", "device", "mqtt_reconnects", "queued", "dropped", "published",
}  # fmt: skip
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
DEV = "dev1"
T = f"edge/{DEV}"


def config(tmp_path: Path, broker, model_path: Path, source: str | Path, **sections: dict) -> Path:
    base = {
        "camera": {"source": str(source), "reconnect_min_s": 0.2, "reconnect_max_s": 1.0, "timeout_s": 2.0},
        "model": {"path": str(model_path), "threads": 1, "watch": False},
        "mqtt": {"host": "127.0.0.1", "port": broker.port if broker else free_port(), "device_id": DEV},
        "smoothing": {"mode": "stable", "frames": 3, "heartbeat_s": 1.0},
        "stats": {"interval_s": 1.0},
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    return write_config(tmp_path / "config.toml", base)


@pytest.fixture
def subscriber_factory(subscriber_factory):
    """The shared factory, and at teardown every message the daemon sent is checked against its JSON Schema."""
    subs: list[Subscriber] = []

    def make(*args, **kwargs) -> Subscriber:
        subs.append(subscriber_factory(*args, **kwargs))
        return subs[-1]

    yield make
    for sub in subs:
        for m in sub.received():
            check_message(m.topic, m.payload)


def payloads(sub: Subscriber, topic: str) -> list[dict]:
    return [m.json() for m in sub.received(topic)]


def wait_payload(sub: Subscriber, topic: str, pred, timeout: float = 10.0) -> dict:
    """The first JSON payload on `topic` satisfying pred (waiting for it)."""
    msgs = sub.wait_for(lambda ms: any(m.topic == topic and pred(m.json()) for m in ms), timeout)
    return next(m.json() for m in msgs if m.topic == topic and pred(m.json()))


def check_classification(p: dict, model: str) -> None:
    assert set(p) == CONTRACT_KEYS
    assert ISO_UTC.match(p["timestamp"]), p["timestamp"]
    assert p["model"] == model and isinstance(p["frame"], int) and p["inference_ms"] > 0
    assert 1 <= len(p["top_k"]) <= 3 and p["top_k"][0] == {
        "index": p["index"],
        "label": p["label"],
        "score": p["score"],
    }
    assert [t["score"] for t in p["top_k"]] == sorted((t["score"] for t in p["top_k"]), reverse=True)


def test_contract_mosquitto_sub_systemd_notify_and_sigterm(
    mosquitto, subscriber_factory, notify_socket, daemon_factory, demo_model, fm_clip, fm_labels, tmp_path
) -> None:
    sub = subscriber_factory(mosquitto, [f"{T}/#", "homeassistant/#"])
    out = (tmp_path / "mosquitto_sub.txt").open("w")
    msub = subprocess.Popen([MOSQUITTO_SUB, "-h", "127.0.0.1", "-p", str(mosquitto.port), "-q", "1", "-v",
                             "-t", f"{T}/classification", "-t", f"{T}/availability"], stdout=out)  # fmt: skip
    try:
        env = {"NOTIFY_SOCKET": str(notify_socket.path), "WATCHDOG_USEC": "1000000"}
        d = daemon_factory(config(tmp_path, mosquitto, demo_model, fm_clip), env)
        notify_socket.wait_for("READY=1", timeout=20)
        sub.wait_for(lambda ms: any(m.topic == f"{T}/availability" and m.text == "online" for m in ms), 10)

        # the clip's first class, then its second: the true labels of those Fashion-MNIST test images
        first = wait_payload(sub, f"{T}/classification", lambda p: True)
        check_classification(first, "demo_model")
        assert first["label"] == fm_labels[0], first
        second = wait_payload(sub, f"{T}/classification", lambda p: p["label"] != fm_labels[0])
        check_classification(second, "demo_model")
        assert second["label"] == fm_labels[1] and second["frame"] > first["frame"]
        stats = wait_payload(sub, f"{T}/stats", lambda p: p["fps_classified"] > 0)
        assert set(stats) >= STATS_KEYS and stats["device"] == "cpu" and stats["camera_connected"] is True
        assert stats["inference_ms_p95"] >= stats["inference_ms_p50"] > 0
        assert sub.received("homeassistant/sensor/dev1_label/config")  # discovery, from C's publisher

        msgs = notify_socket.collect(1.2)
        assert sum("WATCHDOG=1" in m.split("\n") for m in msgs) >= 2
        assert any(m.startswith("STATUS=") and "fps classified" in m for m in msgs), msgs

        rc, took = d.stop(signal.SIGTERM)
        assert rc == 0 and took < 5, d.log()
        notify_socket.wait_for("STOPPING=1", timeout=2)
        sub.wait_for(lambda ms: [m.text for m in ms if m.topic == f"{T}/availability"][-1:] == ["offline"], 5)
        log = d.log()
        assert "Traceback" not in log and len(log.splitlines()) < 40, log  # one line per event, none per frame
    finally:
        time.sleep(0.3)
        msub.terminate()
        msub.wait(5)
        out.close()

    # a subscriber nobody here wrote got the same contract
    lines = (tmp_path / "mosquitto_sub.txt").read_text().splitlines()
    assert f"{T}/availability online" in lines and lines[-1] == f"{T}/availability offline"
    got = [json.loads(line.split(" ", 1)[1]) for line in lines if line.startswith(f"{T}/classification ")]
    assert got and all(set(p) == CONTRACT_KEYS for p in got)
    assert {p["frame"] for p in got} >= {first["frame"], second["frame"]}

    # and a late subscriber sees the retained state
    late = Subscriber(mosquitto, [f"{T}/availability", f"{T}/classification"]).start()
    try:
        msgs = late.wait_for(lambda ms: len(ms) >= 2, 5)
        assert all(m.retain for m in msgs)
        assert late.received(f"{T}/availability")[0].text == "offline"
    finally:
        late.stop()


def test_broker_restart_mid_stream_loses_no_qos1_message(
    mosquitto_factory, subscriber_factory, daemon_factory, demo_model, fm_clip, tmp_path
) -> None:
    broker = mosquitto_factory(persistence=True)  # keeps the subscriber's session across the restart
    sub = subscriber_factory(
        broker, [f"{T}/classification", f"{T}/stats"], client_id="loss-check", clean_session=False, qos=1
    )
    cfg = config(tmp_path, broker, demo_model, fm_clip, camera={"max_rate": 20.0},
                 smoothing={"mode": "off", "heartbeat_s": 0.0})  # fmt: skip
    d = daemon_factory(cfg)
    sub.wait_for_topic(f"{T}/classification", count=20, timeout=20)
    before = max(p["frame"] for p in payloads(sub, f"{T}/classification"))
    broker.restart(down_for=2.0)  # ~40 frames are classified while the broker is away
    wait_payload(sub, f"{T}/stats", lambda p: p["mqtt_reconnects"] >= 1, timeout=20)
    sub.wait_for(lambda ms: max(json.loads(m.payload)["frame"] for m in ms if m.topic.endswith("classification"))
                 > before + 60, 20)  # fmt: skip
    rc, _ = d.stop()
    assert rc == 0
    frames = sorted({p["frame"] for p in payloads(sub, f"{T}/classification")})
    assert frames == list(range(1, frames[-1] + 1)), f"missing: {sorted(set(range(1, frames[-1])) - set(frames))}"
    assert frames[-1] > before + 60
    last_stats = payloads(sub, f"{T}/stats")[-1]
    assert last_stats["dropped"] == 0  # within the queue bound nothing was dropped


def test_absent_then_killed_camera_stream_resumes(
    mosquitto, subscriber_factory, notify_socket, daemon_factory, demo_model, fm_images, fm_labels, tmp_path
) -> None:
    server = MjpegServer(fm_images, fps=15)  # not started yet: the camera is absent at start-up
    sub = subscriber_factory(mosquitto, [f"{T}/#"])
    cfg = config(tmp_path, mosquitto, demo_model, server.url, camera={"max_rate": 5.0},
                 smoothing={"mode": "off"})  # fmt: skip
    env = {"NOTIFY_SOCKET": str(notify_socket.path), "WATCHDOG_USEC": "1000000"}
    d = daemon_factory(cfg, env)
    try:
        notify_socket.wait_for("READY=1", timeout=20)  # ready without a camera
        sub.wait_for(lambda ms: any(m.topic == f"{T}/availability" and m.text == "online" for m in ms), 10)
        assert wait_payload(sub, f"{T}/stats", lambda p: True)["camera_connected"] is False
        msgs = notify_socket.collect(1.5)
        assert sum("WATCHDOG=1" in m.split("\n") for m in msgs) >= 2  # retrying on schedule counts as progress
        assert not sub.received(f"{T}/classification")

        server.start()
        first = wait_payload(sub, f"{T}/classification", lambda p: True)
        assert first["label"] == fm_labels[0]

        sub.wait_for(lambda ms: [m.text for m in ms if m.topic == f"{T}/camera"][-1:] == ["online"])
        states = [m.text for m in sub.received(f"{T}/camera")]
        assert [s for i, s in enumerate(states) if i == 0 or s != states[i - 1]] == ["offline", "online"]
        server.stop()  # the stream dies
        wait_payload(sub, f"{T}/stats", lambda p: p["camera_connected"] is False and p["camera_reconnects"] == 1)
        sub.wait_for(lambda ms: [m.text for m in ms if m.topic == f"{T}/camera"][-1] == "offline")
        n = max(p["frame"] for p in payloads(sub, f"{T}/classification"))
        time.sleep(1.5)
        away = [p for p in payloads(sub, f"{T}/classification") if p["frame"] == n]
        assert max(p["frame"] for p in payloads(sub, f"{T}/classification")) == n  # nothing classified while away
        beats = [p for p in away if p["reason"] == "heartbeat"]
        assert len(beats) >= 2  # the heartbeat (1 s) repeats the last state ...
        assert {p["timestamp"] for p in away} == {away[0]["timestamp"]}  # ... with the old capture time: not fresh
        assert beats[-1]["published_at"] > beats[-1]["timestamp"]
        assert d.proc.poll() is None

        server.start()  # ... and comes back
        wait_payload(sub, f"{T}/classification", lambda p: p["frame"] > n, timeout=15)
        stats = wait_payload(sub, f"{T}/stats", lambda p: p["camera_connected"] and p["camera_reconnects"] == 2)
        stats = wait_payload(sub, f"{T}/stats", lambda p: p["frames_classified"] > stats["frames_classified"] + 3)
        sub.wait_for(lambda ms: [m.text for m in ms if m.topic == f"{T}/camera"][-1] == "online")
        events = [(p["event"], p["reconnects"]) for p in payloads(sub, f"{T}/event")]
        assert events == [("camera_connected", 1), ("camera_lost", 1), ("camera_connected", 2)], events
        # camera.max_rate = 5 on a 15 fps stream: ~5 classified per second, the newest frame each time
        assert 3.0 <= stats["fps_classified"] <= 5.5 and stats["fps_dropped"] >= 5, stats
        assert d.stop()[0] == 0
        log = d.log()
        assert "[ WARN" not in log and "Connection refused" not in log  # no OpenCV/FFmpeg noise per retry
        assert log.count("lost; retrying") == 1 and log.count("stream.mjpg: back") == 2, log  # logged once per event
    finally:
        server.stop()


def test_model_reload_bad_rejected_good_swapped_in(
    mosquitto, subscriber_factory, daemon_factory, demo_model, coral_model, fm_clip, fm_labels, tmp_path
) -> None:
    model = tmp_path / "model.tflite"
    shutil.copy(demo_model, model)
    sub = subscriber_factory(mosquitto, [f"{T}/#"])
    cfg = config(tmp_path, mosquitto, model, fm_clip, camera={"max_rate": 10.0},
                 model={"watch": True, "watch_interval_s": 0.2}, smoothing={"mode": "off"})  # fmt: skip
    d = daemon_factory(cfg)
    wait_payload(sub, f"{T}/classification", lambda p: True, timeout=20)

    def replace(content: bytes) -> None:  # atomically, as docs/index.md says
        tmp = tmp_path / "incoming.tflite"
        tmp.write_bytes(content)
        os.replace(tmp, model)

    replace(b"this is not a model")
    failed = wait_payload(sub, f"{T}/event", lambda p: p["event"] == "model_reload_failed")
    assert failed["reason"] == "model file changed" and str(model) in failed["error"]
    n = len(sub.received(f"{T}/classification"))
    wait_payload(sub, f"{T}/classification", lambda p: p["label"] in fm_labels and p["frame"] > n)  # old one runs
    d.send(signal.SIGHUP)
    failed = wait_payload(sub, f"{T}/event", lambda p: p["event"] == "model_reload_failed" and p["reason"] == "SIGHUP")

    replace(coral_model.read_bytes())  # a published ImageNet model: 1001 classes
    ok = wait_payload(sub, f"{T}/event", lambda p: p["event"] == "model_reloaded")
    assert ok["classes"] == 1001 and ok["device"] == "cpu"
    imagenet = wait_payload(sub, f"{T}/classification", lambda p: p["label"] not in fm_labels)
    assert len(imagenet["top_k"]) == 3
    assert d.stop()[0] == 0
    assert "model reload (model file changed) rejected" in d.log()


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("unknown_key", "config.toml: mqtt.hots: unknown key; did you mean 'host'?"),
        ("not_a_model", "model.tflite"),
        ("invoke_error", "model_invoking_error.tflite: cannot prepare the model"),
        ("edgetpu_without_tpu", "Edge TPU"),
        ("labels_mismatch", "labels.txt"),
    ],
)
def test_startup_errors_are_one_line(case, expected, demo_model, tmp_path) -> None:
    from tests.support.shared_data import shared

    model, extra = demo_model, {}
    if case == "unknown_key":
        extra = {"mqtt": {"hots": "x"}}
    elif case == "not_a_model":
        model = tmp_path / "model.tflite"
        model.write_bytes(b"\x00" * 64)
    elif case == "invoke_error":
        model = shared("coral/invalid_models/model_invoking_error.tflite")
    elif case == "edgetpu_without_tpu":
        model = shared("coral/mobilenet_v1_0.25_128_quant_edgetpu.tflite")
        extra = {"model": {"device": "cpu"}}
    elif case == "labels_mismatch":
        (tmp_path / "labels.txt").write_text("cat\ndog\n")
        extra = {"model": {"labels": "labels.txt"}}
    cfg = config(tmp_path, None, model, "0", **extra)
    r = subprocess.run([*CLI, "--log-level", "WARNING", "run", "--config", str(cfg)], capture_output=True,
                       text=True, cwd=REPO, timeout=60)  # fmt: skip
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edge-daemon: error: ") and expected in lines[0], r.stderr


def test_video_file_end_exits_zero_with_no_broker(daemon_factory, demo_model, fm_clip, tmp_path) -> None:
    cfg = config(tmp_path, None, demo_model, fm_clip, camera={"loop": False})  # nothing listens on the port
    d = daemon_factory(cfg)
    assert d.wait(timeout=20) == 0, d.log()  # the 2 s clip played to its end; the absent broker is not fatal
    log = d.log()
    assert "video file ended" in log and "label: " in log and "Traceback" not in log


def test_watchdog_pings_stop_while_the_camera_hangs_and_resume_on_retry(
    mosquitto, notify_socket, daemon_factory, demo_model, fm_images, tmp_path
) -> None:
    server = MjpegServer(fm_images, fps=15).start()
    cfg = config(tmp_path, mosquitto, demo_model, server.url, camera={"timeout_s": 3.0})
    d = daemon_factory(cfg, {"NOTIFY_SOCKET": str(notify_socket.path), "WATCHDOG_USEC": "200000"})  # every 0.1 s
    try:
        notify_socket.wait_for("READY=1", timeout=20)
        time.sleep(1.0)
        server.frozen.set()  # connected, but no frame comes: the loop makes no progress
        t_freeze = time.monotonic()
        pings: list[float] = []
        start = len(notify_socket.collect())
        while time.monotonic() - t_freeze < 6.0:
            before = len(notify_socket.messages)
            notify_socket.collect()
            pings += [time.monotonic() for m in notify_socket.messages[before:] if "WATCHDOG=1" in m.split("\n")]
        assert start > 0
        gaps = [b - a for a, b in zip([t_freeze, *pings], pings, strict=False)]
        # no ping for most of the read timeout (3 s): systemd's watchdog would fire; then the stream counts as
        # lost, is retried on schedule, and the pings resume
        assert max(gaps) >= 2.0, gaps
        assert pings and pings[-1] - t_freeze > 3.0, pings
        assert d.proc.poll() is None
    finally:
        server.stop()


def test_tls_and_password_from_credentials_directory(
    mosquitto_factory, subscriber_factory, daemon_factory, demo_model, fm_clip, fm_labels, tmp_path
) -> None:
    broker = mosquitto_factory(tls=True, users={"edge": "pa55-w0rd", "watcher": "w"}, allow_anonymous=False)
    creds = tmp_path / "credentials"  # what systemd's LoadCredential= makes
    creds.mkdir()
    (creds / "edge-daemon.mqtt-password").write_text("pa55-w0rd\n")
    sub = subscriber_factory(broker, [f"{T}/#"], username="watcher", password="w")
    cfg = config(tmp_path, broker, demo_model, fm_clip,
                 mqtt={"username": "edge", "password_file": "edge-daemon.mqtt-password"},
                 **{"mqtt.tls": {"enabled": True, "ca": str(broker.tls_files.ca)}})  # fmt: skip
    d = daemon_factory(cfg, {"CREDENTIALS_DIRECTORY": str(creds)})
    first = wait_payload(sub, f"{T}/classification", lambda p: True, timeout=20)
    assert first["label"] == fm_labels[0]
    assert d.stop()[0] == 0
    assert "pa55-w0rd" not in d.log()
