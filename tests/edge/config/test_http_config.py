"""`[http]` in the config: the listen address, the token rules (one line each, from `check-config` and `run`),
the token from `$CREDENTIALS_DIRECTORY`; and the pure parts of the server: `/healthz` reasons, `/api/state`
built with the MQTT contract (checked against its JSON Schema), the overlay's boxes.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.config.docs import to_toml
from edge.config.listen import parse_listen
from edge.config.load import config_from_dict, load_config
from edge.errors import EdgeError
from edge.http.overlay import BOX, Region, draw_overlay, view_size
from edge.http.state import Snapshot, health, stale_after_s, state_payload
from edge.inference.postprocess import Prediction
from edge.mqtt import contract
from edge.sources.camera import CameraStats
from tests.edge.conftest import CLI, REPO, write_config
from tests.support.payload_schemas import validator

TOKEN = "a" * 8 + "-0123456789"


@pytest.mark.parametrize(
    ("text", "host", "port", "loopback"),
    [
        ("127.0.0.1:8080", "127.0.0.1", 8080, True),
        ("localhost:9000", "127.0.0.1", 9000, True),
        ("127.3.4.5:1", "127.3.4.5", 1, True),
        ("[::1]:8080", "::1", 8080, True),
        ("0.0.0.0:8080", "0.0.0.0", 8080, False),
        ("[::]:8080", "::", 8080, False),
        ("192.168.1.20:80", "192.168.1.20", 80, False),
        ("[::ffff:127.0.0.1]:8080", "::ffff:7f00:1", 8080, True),  # IPv4-mapped loopback
        ("[::ffff:10.0.0.1]:8080", "::ffff:a00:1", 8080, False),
    ],
)
def test_listen_addresses(text: str, host: str, port: int, loopback: bool) -> None:
    where = parse_listen(text)
    assert (where.host, where.port) == (host, port)
    assert where.loopback is loopback


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8080", "is not ADDRESS:PORT"),
        (":8080", "is not ADDRESS:PORT"),
        ("pi.lan:8080", "'pi.lan' is not an IP address of this machine"),
        ("::1:8080", "put an IPv6 address in brackets"),
        ("127.0.0.1:0", "port '0' is not a number from 1 to 65535"),
        ("127.0.0.1:70000", "port '70000' is not a number"),
        ("127.0.0.1:http", "port 'http' is not a number"),
        ("127.0.0.1:８０", "port '８０' is not a number"),  # full-width digits
    ],
)
def test_bad_listen_is_one_line(text: str, expected: str) -> None:
    with pytest.raises(EdgeError) as e:
        parse_listen(text)
    assert str(e.value).startswith("http.listen: ") and expected in str(e.value) and "\n" not in str(e.value)


@pytest.fixture
def model(demo_model: Path) -> str:
    return str(demo_model)


def test_token_rules(tmp_path: Path, model: str) -> None:
    (tmp_path / "token").write_text(TOKEN + "\n")
    (tmp_path / "short").write_text("abc\n")
    (tmp_path / "spaces").write_text("a token with spaces in it\n")

    def load(http: dict) -> object:
        return config_from_dict({"model": {"path": model}, "http": http}, base=tmp_path, environ={})

    assert load({}).http.listen is None and load({}).http_token is None  # off by default
    assert load({"listen": "127.0.0.1:8080"}).http_token is None  # loopback: a token is optional
    with pytest.raises(EdgeError, match=r"^http\.listen: 0\.0\.0\.0 lets other machines connect, so "
                                        r"http\.token_file is required"):  # fmt: skip
        load({"listen": "0.0.0.0:8080"})
    cfg = load({"listen": "0.0.0.0:8080", "token_file": "token"})
    assert cfg.http_token.reveal() == TOKEN and TOKEN not in repr(cfg) and TOKEN not in to_toml(cfg)
    with pytest.raises(EdgeError, match=r"^http\.token_file: .*short must hold one token of at least 16"):
        load({"listen": "0.0.0.0:8080", "token_file": "short"})
    with pytest.raises(EdgeError, match=r"visible ASCII characters \(no spaces\)"):
        load({"listen": "[::]:8080", "token_file": "spaces"})
    with pytest.raises(EdgeError, match=r"^http\.token_file: set, but http\.listen is not"):
        load({"token_file": "token"})
    with pytest.raises(EdgeError, match=r"^http\.token_file: cannot read file .*looked in \$CREDENTIALS_DIRECTORY"):
        load({"listen": "0.0.0.0:8080", "token_file": "edge-daemon.http-token"})
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "edge-daemon.http-token").write_text(TOKEN)
    cfg = config_from_dict({"model": {"path": model}, "http": {"listen": "0.0.0.0:8080",
                            "token_file": "edge-daemon.http-token"}}, base=tmp_path,
                           environ={"CREDENTIALS_DIRECTORY": str(creds)})  # fmt: skip
    assert cfg.http_token.reveal() == TOKEN
    env = {"EDGE_HTTP__LISTEN": "127.0.0.1:9999"}
    assert config_from_dict({"model": {"path": model}}, environ=env).http.listen == "127.0.0.1:9999"


def test_check_config_and_run_refuse_an_open_server_without_token(tmp_path: Path, model: str) -> None:
    cfg = write_config(tmp_path / "c.toml", {"model": {"path": model}, "http": {"listen": "0.0.0.0:8080"}})
    for command in (["check-config", str(cfg)], ["run", "--config", str(cfg)]):
        r = subprocess.run([*CLI, *command], capture_output=True, text=True, cwd=REPO, timeout=60)
        assert r.returncode == 2, r.stderr
        assert r.stderr.strip().splitlines() == [
            f"edge-daemon: error: {cfg}: http.listen: 0.0.0.0 lets other machines connect, so http.token_file is "
            "required; set it (a file holding e.g. `openssl rand -hex 32`) or listen on 127.0.0.1"
        ]
    bad = write_config(tmp_path / "b.toml", {"model": {"path": model}, "http": {"listen": "pi.lan:80"}})
    r = subprocess.run([*CLI, "check-config", str(bad)], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "http.listen: 'pi.lan'" in r.stderr
    assert "Traceback" not in r.stderr


def test_loading_the_config_never_prints_the_token(tmp_path: Path, model: str) -> None:
    (tmp_path / "token").write_text(TOKEN)
    cfg = write_config(tmp_path / "c.toml", {"model": {"path": model},
                                             "http": {"listen": "0.0.0.0:8080", "token_file": "token"}})  # fmt: skip
    r = subprocess.run([*CLI, "check-config", str(cfg)], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert r.returncode == 0, r.stderr
    assert f'token_file = "{tmp_path / "token"}"' in r.stdout and TOKEN not in r.stdout + r.stderr
    assert load_config(cfg, environ={}).http_token.reveal() == TOKEN


# -- the pure parts --------------------------------------------------------------------------------------------------


def snap(connected: bool = True, classified: int = 10, errors: int = 0, ended: bool = False) -> Snapshot:
    cam = CameraStats(captured=12, dropped=2, reconnects=1, connected=connected, ended=ended, last_activity=0.0,
                      open_failures=1)  # fmt: skip
    mqtt = {"mqtt_reconnects": 0, "queued": 1, "dropped": 0, "published": 7}
    payload = contract.classification_payload([Prediction(1, "Bag", 0.99)], reason="change", frame=10,
                                              inference_ms=1.2, model="m", timestamp=1.8e9, published_at=1.8e9,
                                              changed_at=1.8e9)  # fmt: skip
    return Snapshot(cam, "rtsp://u:***@cam/x", mqtt, False, classified, errors, 30.0, 1.8e9, "m", "cpu",
                    {None: payload})  # fmt: skip


@pytest.mark.parametrize(
    ("state", "last_at", "healthy", "reason"),
    [
        (snap(), 99.5, True, "classifying: model m on cpu, 10 frames"),
        (snap(connected=False), 99.5, False, "camera away: rtsp://u:***@cam/x (1 reconnects)"),
        (snap(connected=False, ended=True), 99.5, False, "camera ended: "),
        (snap(classified=0), None, False, "starting: no frame classified yet (0 inference errors)"),
        (snap(errors=7), 80.0, False, "no frame classified for 20 s (7 inference errors)"),
    ],
)
def test_health_reasons(state: Snapshot, last_at, healthy: bool, reason: str) -> None:
    ok, why = health(state, last_at, now=100.0, stale_after=stale_after_s(0.0))
    assert ok is healthy and why.startswith(reason)


def test_health_waits_three_frame_periods_at_a_slow_rate() -> None:
    assert stale_after_s(0) == 10.0 and stale_after_s(30) == 10.0 and stale_after_s(0.1) == 30.0
    assert health(snap(), 75.0, now=100.0, stale_after=stale_after_s(0.1))[0]


def test_state_is_the_mqtt_state() -> None:
    window = {"fps_captured": 10.0, "fps_classified": 9.5, "fps_dropped": 0.5, "inference_ms_p50": 1.0,
              "inference_ms_p95": 2.0}  # fmt: skip
    state = state_payload(snap(), window)
    assert not list(validator("stats").iter_errors(state["stats"]))
    assert not list(validator("classification").iter_errors(state["classification"]))
    assert state["stats"]["frames_classified"] == 10 and state["stats"]["fps_classified"] == 9.5
    assert state["availability"] == "online" and state["camera"] == "online"
    assert state["daemon"] == {"camera_source": "rtsp://u:***@cam/x", "mqtt_connected": False}
    assert state_payload(snap(connected=False), window)["camera"] == "offline" and state["regions"] == {}
    regions = dataclasses.replace(snap(), classifications={"door": state["classification"], "gate": None})
    with_regions = state_payload(regions, window)
    assert with_regions["classification"] is None and with_regions["regions"]["gate"] is None
    assert with_regions["regions"]["door"] == state["classification"]
    json.dumps(state)  # plain JSON


def test_overlay_draws_the_verdict_and_region_boxes(fm_segments) -> None:
    frame = cv2.resize(fm_segments[0][1], (320, 240))
    before = frame.copy()
    boxes = [Region((20, 100, 80, 60), "Bag", 0.9), Region((200, 120, 100, 100), None, 0.1)]
    view = draw_overlay(frame, "Sneaker", 0.97, 12.3, boxes)
    assert np.array_equal(frame, before)  # the classified frame is not touched
    assert view.shape == (360, 480, 3) and view_size(320, 240) == (480, 360)
    scale = 480 / 320
    x, y, w, h = (round(v * scale) for v in boxes[0].box)
    edge = view[y + h, x + 5 : x + w - 5].astype(int)  # the bottom side of the first box
    assert (np.abs(edge - BOX).sum(axis=1) < 60).mean() > 0.9
    band = view[:20]
    assert band.max() == 255  # white text in the top band
    assert view_size(1920, 1080) == (960, 540) and view_size(640, 480) == (640, 480)
    gray = draw_overlay(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), None, 0.0, 0.0)
    assert gray.shape == (360, 480, 3)
    # a frame decoded at half size, a box given as fractions of the full frame: drawn where it belongs
    half = cv2.resize(frame, (160, 120))
    view = draw_overlay(half, "Bag", 0.9, 1.0, [Region((0.5, 0.5, 0.25, 0.25), "x", 0.5)], frame_size=(320, 240))
    assert view.shape == (360, 480, 3)
    left = view[int(360 * 0.625), int(480 * 0.5) - 2 : int(480 * 0.5) + 3].astype(int)  # the box's left side
    assert (np.abs(left - BOX).sum(axis=1) < 60).any()
