"""Fixtures for the daemon tests: real models, real video clips, a daemon subprocess, a NOTIFY_SOCKET.

Most tests run the bundled demo model (made by this project's trainer) on frames of the bundled clip (real
Fashion-MNIST test images), whose true labels the clip's timeline gives, so they need nothing outside the
repository. Tests of published models read ../shared/data and skip with the reason when it is absent.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.cli.demo import DEMO_CLIP, DEMO_MODEL
from edge.config.fields import toml_value
from edge.config.schema import HomeAssistantConfig, MqttConfig, Secret, TlsConfig
from edge.mqtt.publisher import Publisher
from tests.support.media import read_frames, write_video
from tests.support.shared_data import shared

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "edge.cli.main"]  # `edge-daemon`, with this interpreter


def write_config(path: Path, sections: dict[str, dict[str, object]]) -> Path:
    """Write a TOML config from {section: {key: value}} (section names may be dotted, e.g. "mqtt.tls")."""
    lines = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in values.items()]
        lines.append("")
    path.write_text("\n".join(lines))
    return path


@pytest.fixture(scope="session")
def demo_model() -> Path:
    """The bundled Fashion-MNIST model (10 classes, labels embedded), made by edge-train."""
    if not DEMO_MODEL.exists():
        pytest.skip(f"bundled demo model not found: {DEMO_MODEL}")
    return DEMO_MODEL


def _clip_segments() -> list[tuple[str, np.ndarray]]:
    """(true label, first frame) of each segment of the bundled clip, from its timeline."""
    if not DEMO_CLIP.exists():
        pytest.skip(f"bundled demo clip not found: {DEMO_CLIP}")
    timeline = json.loads(DEMO_CLIP.with_suffix(".json").read_text())
    frames = read_frames(DEMO_CLIP)
    return [(seg["label"], frames[seg["start_frame"]]) for seg in timeline["segments"]]


@pytest.fixture(scope="session")
def fm_segments() -> list[tuple[str, np.ndarray]]:
    return _clip_segments()


@pytest.fixture(scope="session")
def fm_labels(fm_segments) -> list[str]:
    """The true label of each 2 s segment of the bundled clip, in order."""
    return [label for label, _ in fm_segments]


@pytest.fixture(scope="session")
def fm_clip(tmp_path_factory: pytest.TempPathFactory, fm_segments) -> Path:
    """A real MJPG .avi at 20 fps: 1 s of the bundled clip's first class, then 1 s of its second."""
    (_, first), (_, second) = fm_segments[:2]
    return write_video(tmp_path_factory.mktemp("clips") / "fm.avi", [first] * 20 + [second] * 20, fps=20)


@pytest.fixture(scope="session")
def fm_images(fm_segments) -> list[np.ndarray]:
    """The bundled clip's first frame (its first class), for the MJPEG stream."""
    return [fm_segments[0][1]]


@pytest.fixture(scope="session")
def coral_model() -> Path:
    """Coral's MobileNet v1 0.25/128 (ImageNet, labels embedded): small and fast."""
    return shared("coral/mobilenet_v1_0.25_128_quant.tflite")


def _image(rel: str, size: tuple[int, int] = (320, 240)) -> np.ndarray:
    img = cv2.imread(str(shared(rel)), cv2.IMREAD_COLOR)
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="session")
def cat_bird_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real MJPG .avi at 20 fps: 2 s of coral/cat.bmp, then 2 s of coral/bird.bmp."""
    cat, bird = _image("coral/cat.bmp"), _image("coral/bird.bmp")
    return write_video(tmp_path_factory.mktemp("clips") / "cat_bird.avi", [cat] * 40 + [bird] * 40, fps=20)


class NotifySocket:
    """A unix datagram socket standing in for systemd's NOTIFY_SOCKET; collects what the daemon sends."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.messages: list[str] = []

    def collect(self, seconds: float = 0.0) -> list[str]:
        """Read everything that arrived (waiting up to `seconds` for more); returns all messages so far."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                if time.monotonic() >= deadline:
                    return self.messages

    def wait_for(self, line: str, timeout: float = 10.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(line in m.split("\n") for m in self.collect()):
                return self.messages
        raise TimeoutError(f"{line!r} not received within {timeout} s; got {self.messages}")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    s = NotifySocket(tmp_path / "notify.sock")
    yield s
    s.close()


class Daemon:
    """`edge-daemon run --config FILE` as a child process; killed at teardown if still running."""

    def __init__(self, config: Path, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.log_path = config.with_suffix(".log")
        environ = {k: v for k, v in os.environ.items() if not k.startswith(("EDGE_", "NOTIFY_", "WATCHDOG_"))}
        environ.update(env or {})
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [*CLI, "run", "--config", str(config)],
                cwd=REPO,
                env=environ,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def send(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> tuple[int, float]:
        """Send `sig` and wait; returns (exit code, seconds it took)."""
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        rc = self.proc.wait(timeout)
        return rc, time.monotonic() - t0

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def daemon_factory() -> Iterator[Callable[..., Daemon]]:
    daemons: list[Daemon] = []

    def make(config: Path, env: dict[str, str] | None = None) -> Daemon:
        d = Daemon(config, env)
        daemons.append(d)
        return d

    yield make
    for d in daemons:
        d.kill()
        print(f"--- daemon log ({d.config}):\n{d.log()}")  # shown by pytest when the test failed


def mqtt_section(host: str = "localhost", port: int = 1883, *, tls: bool = False, ca=None, cert=None, key=None,
                 insecure: bool = False, **fields) -> MqttConfig:
    """An ``[mqtt]`` section for tests, device id (`pi1`) and client id resolved as the config layer does."""
    fields.setdefault("device_id", "pi1")
    fields.setdefault("client_id", f"edge-daemon-{fields['device_id']}")
    return MqttConfig(host=host, port=port, tls=TlsConfig(enabled=tls, ca=ca, cert=cert, key=key, insecure=insecure),
                      **fields)  # fmt: skip


@pytest.fixture
def publisher_factory() -> Iterator[Callable[..., Publisher]]:
    """Make Publishers: ``publisher_factory(broker, start=True, password=None, ha_discovery=True, **mqtt)``."""
    made: list[Publisher] = []

    def make(broker, *, start: bool = True, model: str = "tiny", device: str = "cpu", password: str | None = None,
             ha_discovery: bool = True, **options) -> Publisher:  # fmt: skip
        section = mqtt_section(broker.host, broker.port, **options)
        secret = Secret(password, "test") if password else None
        pub = Publisher(section, HomeAssistantConfig(discovery=ha_discovery), password=secret, model=model,
                        device=device)  # fmt: skip
        made.append(pub)
        if start:
            pub.start()
        return pub

    yield make
    for pub in made:
        pub.stop(timeout=1.0)


def classification(predictions=(), *, frame: int = 1, inference_ms: float = 1.0, model: str = "tiny",
                   timestamp: float = 0.0, reason: str = "change") -> dict:  # fmt: skip
    """A classification payload built by the contract (published_at = changed_at = timestamp)."""
    from edge.mqtt.contract import classification_payload

    return classification_payload(predictions, reason=reason, frame=frame, inference_ms=inference_ms, model=model,
                                  timestamp=timestamp, published_at=timestamp, changed_at=timestamp)  # fmt: skip


@pytest.fixture(scope="session")
def side_by_side(fm_segments, tmp_path_factory):
    """A clip of 320x120 frames: class A's image on the left half, class B's on the right half; their labels."""
    (label_a, a), (label_b, b) = fm_segments[:2]
    frame = np.concatenate([cv2.resize(a, (160, 120), interpolation=cv2.INTER_AREA),
                            cv2.resize(b, (160, 120), interpolation=cv2.INTER_AREA)], axis=1)  # fmt: skip
    assert frame.shape[:2] == (120, 320)
    return write_video(tmp_path_factory.mktemp("regions") / "two.avi", [frame] * 30, fps=15), label_a, label_b
