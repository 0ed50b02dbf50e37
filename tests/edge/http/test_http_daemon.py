"""The live page, `/api/state` and misbehaving clients against the real daemon (`edge-daemon run` as a subprocess),
a real mosquitto, a real clip, a real headless Chromium and real sockets.

- Chromium loads the page (with the token, as a person would: `#token=`) and its screenshot shows the camera
  picture (found on the pixels by template matching) and the label (read on the pixels by tesseract).
- `/api/state` is the MQTT state: the same classification JSON the broker holds, stats of the same schema.
- A stalled stream reader, 100 connections and a slowloris together leave the classification rate within 5 %
  of the rate without them, and the daemon serves again afterwards and stops promptly.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.http.overlay import view_size
from edge.inference.model import load_model
from tests.edge.conftest import write_config
from tests.support.browser import ocr_words, page_screenshot, screenshot
from tests.support.http_clients import MjpegReader, Slowloris, get, idle_connections, stalled_stream
from tests.support.media import write_video
from tests.support.mosquitto import free_port
from tests.support.payload_schemas import validator

DEV = "web1"
TOKEN = "live-page-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def confident(demo_model, fm_segments) -> tuple[str, np.ndarray]:
    """(label, frame): the bundled clip's frame the bundled model is surest of, among plain-word labels."""
    with load_model(str(demo_model), device="cpu", threads=1) as clf:
        scored = [(clf.classify(frame, 1).top, frame) for _, frame in fm_segments]
    best = max((p.score, len(p.label), p.label) for p, _ in scored if p.label.isalpha())
    return best[2], next(frame for p, frame in scored if p.label == best[2])


def start(tmp_path: Path, daemon_factory, broker, model: Path, clip: Path, extra: str = "", **sections: dict):
    """`edge-daemon run` with the server on 127.0.0.1 and a token (`extra`: more TOML, e.g. `[[regions]]`);
    returns (daemon, http port) once it is healthy."""
    (tmp_path / "token").write_text(TOKEN + "\n")
    port = free_port()
    base = {
        "camera": {"source": str(clip)},
        "model": {"path": str(model), "threads": 1, "watch": False},
        "mqtt": {"host": "127.0.0.1", "port": broker.port, "device_id": DEV},
        "smoothing": {"mode": "stable", "frames": 2, "heartbeat_s": 1.0},
        "stats": {"interval_s": 1.0},
        "http": {"listen": f"127.0.0.1:{port}", "token_file": "token"},
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    cfg = write_config(tmp_path / "config.toml", base)
    cfg.write_text(cfg.read_text() + extra)
    d = daemon_factory(cfg)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert d.proc.poll() is None, d.log()
        try:
            if get(port, "/healthz", headers=AUTH, timeout=2).status == 200:
                return d, port
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"the daemon never became healthy:\n{d.log()}")


def metric(port: int, name: str) -> float:
    """One sample's value from the daemon's /metrics."""
    text = get(port, "/metrics", headers=AUTH).text
    return float(next(line.split()[-1] for line in text.splitlines() if line.startswith(name + " ")))


def find_picture(shot: np.ndarray, frame: np.ndarray) -> tuple[float, float]:
    """(best normalised correlation, scale) of the frame's picture (below the overlay band) in a screenshot."""
    view = cv2.resize(frame, view_size(frame.shape[1], frame.shape[0]), interpolation=cv2.INTER_LINEAR)
    part = cv2.cvtColor(view[view.shape[0] // 5 :], cv2.COLOR_BGR2GRAY)
    gray = cv2.cvtColor(shot, cv2.COLOR_BGR2GRAY)
    best = (-1.0, 0.0)
    for scale in np.linspace(0.6, 2.4, 37):
        t = cv2.resize(part, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        if t.shape[0] >= gray.shape[0] or t.shape[1] >= gray.shape[1]:
            break
        score = float(cv2.minMaxLoc(cv2.matchTemplate(gray, t, cv2.TM_CCOEFF_NORMED))[1])
        best = max(best, (score, float(scale)))
    return best


def test_a_real_browser_shows_the_picture_and_the_label(
    mosquitto, daemon_factory, demo_model, confident, tmp_path
) -> None:
    label, frame = confident
    clip = write_video(tmp_path / "one.avi", [frame] * 40, fps=20)
    d, port = start(tmp_path, daemon_factory, mosquitto, demo_model, clip)
    shot_path = page_screenshot(f"http://127.0.0.1:{port}/#token={TOKEN}", tmp_path / "page.png", size=(1200, 660),
                                ready="$('live').naturalWidth > 0 && $('pstate').hidden")  # a frame is shown
    if os.environ.get("EDGE_LIVE_PAGE_PNG"):  # how docs/live-page.png is made
        shutil.copy(shot_path, os.environ["EDGE_LIVE_PAGE_PNG"])
    shot = cv2.imread(str(shot_path), cv2.IMREAD_COLOR)

    score, scale = find_picture(shot, frame)
    assert score > 0.8, f"the camera picture is not on the page (best match {score:.2f} at scale {scale:.2f})"
    words = ocr_words(shot_path)
    # on the picture's overlay and in the panel (from /api/state, fetched with the token), which also shows MQTT
    assert words.count(label) >= 2 and "queued" in words, f"{label!r} not read twice; tesseract read: {words}"
    assert metric(port, "edge_daemon_http_jpegs_encoded_total") > 0  # the page's stream

    # without the token the page loads but shows no data and no picture
    bare = screenshot(f"http://127.0.0.1:{port}/", tmp_path / "bare.png")
    assert find_picture(cv2.imread(str(bare), cv2.IMREAD_COLOR), frame)[0] < 0.5
    assert label not in ocr_words(bare)
    rc, took = d.stop(signal.SIGTERM)
    assert rc == 0 and took < 5 and "Traceback" not in d.log(), d.log()


def test_api_state_is_the_mqtt_state(mosquitto, subscriber_factory, daemon_factory, demo_model, fm_clip,
                                     tmp_path) -> None:  # fmt: skip
    sub = subscriber_factory(mosquitto, [f"edge/{DEV}/#"])
    d, port = start(tmp_path, daemon_factory, mosquitto, demo_model, fm_clip)
    deadline = time.monotonic() + 10
    while (state := json.loads(get(port, "/api/state", headers=AUTH).body))["classification"] is None or (
            state["stats"]["fps_classified"] == 0):  # the first stats (at connect) have no rate yet
        assert time.monotonic() < deadline, "no classification (and rate) in /api/state"
        time.sleep(0.2)
    published = sub.wait_for(
        lambda ms: any(m.topic.endswith("/classification") and m.json()["frame"] == state["classification"]["frame"]
                       for m in ms), 10)  # fmt: skip
    same = [m.json() for m in published if m.topic.endswith("/classification")]
    assert state["classification"] in same  # the very JSON the broker holds
    stats = sub.wait_for(lambda ms: any(m.topic.endswith("/stats") for m in ms), 10)
    mqtt_stats = next(m.json() for m in stats if m.topic.endswith("/stats"))
    assert set(state["stats"]) == set(mqtt_stats)
    assert not list(validator("stats").iter_errors(state["stats"]))
    assert state["stats"]["fps_classified"] > 0 and state["camera"] == "online" and state["availability"] == "online"
    camera = sub.wait_for(lambda ms: any(m.topic.endswith("/camera") for m in ms), 10)
    assert state["camera"] == next(m.text for m in camera if m.topic.endswith("/camera"))  # the retained state
    assert state["daemon"]["mqtt_connected"] is True
    snapshot = get(port, f"/snapshot.jpg?raw=1&token={TOKEN}")
    assert snapshot.status == 200 and cv2.imdecode(np.frombuffer(snapshot.body, np.uint8), 1).shape == (240, 320, 3)
    d.stop(signal.SIGTERM)


def classified_rate(sub, seconds: float) -> float:
    """Frames classified per second over the next `seconds`, from the `frame` counter of the classifications."""
    topic = f"edge/{DEV}/classification"
    start_n = len(sub.received(topic))
    time.sleep(seconds)
    window = [m for m in sub.received(topic)[start_n:]]
    assert len(window) > 10, "no classifications arrived"
    first, last = window[0], window[-1]
    return (last.json()["frame"] - first.json()["frame"]) / (last.received - first.received)


def test_misbehaving_clients_leave_the_classifier_alone(mosquitto, subscriber_factory, daemon_factory, demo_model,
                                                         confident, tmp_path) -> None:  # fmt: skip
    _, frame = confident
    clip = write_video(tmp_path / "cam.avi", [frame] * 60, fps=30)  # a 30 fps camera
    sub = subscriber_factory(mosquitto, [f"edge/{DEV}/classification"])
    d, port = start(tmp_path, daemon_factory, mosquitto, demo_model, clip, smoothing={"mode": "off"},
                    http={"max_clients": 8})  # fmt: skip
    time.sleep(1.0)
    quiet = classified_rate(sub, 8.0)

    stalled = stalled_stream(port, f"/stream.mjpg?token={TOKEN}")
    flood = idle_connections(port, 100)
    loris = Slowloris(port, n=20, interval=0.3).start()
    try:
        busy = classified_rate(sub, 10.0)
    finally:
        loris.close()
        for s in [*flood, stalled]:
            s.close()
    print(f"classified: {quiet:.2f} fps without clients, {busy:.2f} fps with them; slowloris cut {loris.cut}")
    assert busy >= 0.95 * quiet, f"{busy:.1f} fps with the clients vs {quiet:.1f} fps without"
    assert loris.cut > 0  # the server ended slow heads (the attack did reach it)
    time.sleep(HEAD_GRACE_S)
    assert metric(port, "edge_daemon_http_refused_connections_total") > 0  # the limits were reached
    assert get(port, "/healthz", headers=AUTH).status == 200
    # a viewer that stalls while the daemon stops does not hold the stop up
    stuck = stalled_stream(port, f"/stream.mjpg?token={TOKEN}")
    time.sleep(1.0)
    rc, took = d.stop(signal.SIGTERM)
    stuck.close()
    log = d.log()
    assert rc == 0 and took < 5 and "Traceback" not in log, log
    assert TOKEN not in log


HEAD_GRACE_S = 6.0  # what the slow heads of the attack still hold is cut within the head timeout


def test_a_port_in_use_is_one_line(mosquitto, daemon_factory, demo_model, fm_clip, tmp_path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = write_config(tmp_path / "c.toml", {
            "camera": {"source": str(fm_clip)}, "model": {"path": str(demo_model), "watch": False},
            "mqtt": {"port": mosquitto.port}, "http": {"listen": f"127.0.0.1:{port}"}})  # fmt: skip
        d = daemon_factory(cfg)
        assert d.wait(30) == 2
    lines = [line for line in d.log().splitlines() if "error" in line.lower()]
    assert lines == [f"edge-daemon: error: http.listen: cannot listen on http://127.0.0.1:{port}/ (Address already "
                     "in use)"], d.log()  # fmt: skip


@pytest.mark.skipif(shutil.which("strace") is None or shutil.which("systemd-analyze") is None,
                    reason="needs strace and systemd-analyze (apt-get install strace systemd)")  # fmt: skip
def test_the_server_makes_only_system_calls_the_unit_allows(mosquitto, demo_model, fm_clip, tmp_path) -> None:
    """SystemCallFilter= cannot be applied without systemd as PID 1: trace `edge-daemon run` with the server on
    while every route is used, and check each call is on the unit's allow list (as tests/deploy does without it)."""
    from tests.deploy.test_systemd_unit import CLI_MAIN, unit_allowed_syscalls

    port = free_port()
    cfg = write_config(tmp_path / "c.toml", {
        "camera": {"source": str(fm_clip)}, "model": {"path": str(demo_model), "watch": False},
        "mqtt": {"host": "127.0.0.1", "port": mosquitto.port, "device_id": DEV},
        "http": {"listen": f"127.0.0.1:{port}"}})  # fmt: skip
    trace = tmp_path / "trace.txt"
    cmd = ["strace", "-f", "-qq", "-o", str(trace), sys.executable, "-c", CLI_MAIN, "run", "--config", str(cfg)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                if get(port, "/healthz", timeout=2).status == 200:
                    break
            time.sleep(0.3)
        for path in ("/", "/api/state", "/metrics", "/snapshot.jpg", "/snapshot.jpg?raw=1", "/nope"):
            assert get(port, path).status in (200, 404), path
        reader = MjpegReader(port, "/stream.mjpg")
        reader.next_jpeg()
        reader.close()
        os.kill(int(trace.read_text().split(None, 1)[0]), signal.SIGTERM)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    used = set(re.findall(r"^\d+\s+(?:<\.\.\. )?([a-z0-9_]+)[( ]", trace.read_text(), re.MULTILINE))
    used -= {"resumed", "exit", "exited"}
    assert {"bind", "listen"} <= used and ({"accept", "accept4"} & used), sorted(used)
    refused = used - unit_allowed_syscalls()
    assert not refused, f"calls the unit's SystemCallFilter= would refuse: {sorted(refused)}"


def test_regions_on_the_page(mosquitto, subscriber_factory, daemon_factory, demo_model, fm_segments, tmp_path) -> None:
    """Two regions side by side: /api/state gives each region's classification as MQTT has it, and the picture
    has a box per region."""
    (label_a, a), (label_b, b) = fm_segments[:2]
    frame = np.concatenate([cv2.resize(a, (160, 120)), cv2.resize(b, (160, 120))], axis=1)
    clip = write_video(tmp_path / "two.avi", [frame] * 30, fps=15)
    sub = subscriber_factory(mosquitto, [f"edge/{DEV}/+/classification"])
    regions = ('\n[[regions]]\nname = "left"\nbox = [0, 0, 0.5, 1]\n'
               '[[regions]]\nname = "right"\nbox = [0.5, 0, 0.5, 1]\n')
    d, port = start(tmp_path, daemon_factory, mosquitto, demo_model, clip, extra=regions)
    deadline = time.monotonic() + 15
    while None in (state := json.loads(get(port, "/api/state", headers=AUTH).body))["regions"].values():
        assert time.monotonic() < deadline, state
        time.sleep(0.3)
    assert state["classification"] is None and set(state["regions"]) == {"left", "right"}
    assert (state["regions"]["left"]["label"], state["regions"]["right"]["label"]) == (label_a, label_b)
    published = {m.topic.split("/")[2]: m.json() for m in sub.received()}
    assert published["left"]["label"] == label_a and published["right"]["label"] == label_b
    picture = cv2.imdecode(np.frombuffer(get(port, f"/snapshot.jpg?token={TOKEN}").body, np.uint8), 1)
    amber = np.abs(picture.astype(int) - (0, 200, 255)).sum(axis=2) < 90
    w = amber.shape[1]
    assert amber[:, : w // 2].sum() > 200 and amber[:, w // 2 :].sum() > 200, "a box on each half"
    assert d.stop(signal.SIGTERM)[0] == 0
