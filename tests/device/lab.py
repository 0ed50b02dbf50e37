"""One run of the device lab: the images, a password-protected broker, a dashboard that watches it, results.

The broker is a real mosquitto on the host's 127.0.0.1 refusing anonymous clients: devices log in as `edge`
(the password reaches them as a systemd credential), the lab's own subscriber (the "dashboard") as `dashboard`.
nspawn machines share the host's loopback; the VM reaches the broker through QEMU's guestfwd.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.device import images
from tests.device.host import LabError, log
from tests.device.nspawn import Machine
from tests.support.mosquitto import Message, Mosquitto, Subscriber, free_port
from tests.support.project import build_project_wheel

REPO = images.REPO
DEMO_CLIP = REPO / "edge" / "assets" / "demo_clip.avi"


@dataclass
class Figure:
    """One row of the lab's table: the scenario, what was checked, the measured figure."""

    scenario: str
    checked: str
    figure: str
    ok: bool = True


class Lab:
    """Images (cached), a run directory, the broker and the dashboard subscriber; `close()` stops them."""

    def __init__(self, keep: bool = False) -> None:
        self.keep = keep
        self.dir = Path(tempfile.mkdtemp(prefix="edge-lab-", dir="/var/tmp"))
        self.password = secrets.token_urlsafe(12)
        self.figures: list[Figure] = []
        self.broker: Mosquitto | None = None
        self.dashboard: Subscriber | None = None
        self.build_s: dict[str, float] = {}
        self._wheel: Path | None = None

    # -- inputs ----------------------------------------------------------------------------------------------------

    def timed(self, name: str, fn: Callable[[], Path]) -> Path:
        """fn() (an image builder), its time recorded the first time (0 when it came from the cache)."""
        t0 = time.monotonic()
        out = fn()
        self.build_s.setdefault(name, round(time.monotonic() - t0, 1))
        return out

    def rootfs(self) -> Path:
        return self.timed("rootfs", images.rootfs)

    def wheels(self) -> Path:
        return self.timed("wheels", images.dependency_wheels)

    def vm_disk(self) -> Path:
        return self.timed("vm image", images.vm_disk)

    def project_wheel(self) -> Path:
        """The project built as a wheel from the working tree (once per run)."""
        if self._wheel is None:
            out = self.dir / "dist"
            t0 = time.monotonic()
            self._wheel = build_project_wheel(out)
            self.build_s["project wheel"] = round(time.monotonic() - t0, 1)
        return self._wheel

    def bundle(self, dest: Path) -> Path:
        """What a user copies to a device: the wheel, deploy/install.sh and systemd/ (in `dest/edge-daemon`)."""
        out = dest / "edge-daemon"
        (out / "deploy").mkdir(parents=True, exist_ok=True)
        shutil.copy(self.project_wheel(), out)
        shutil.copy(REPO / "deploy" / "install.sh", out / "deploy")
        shutil.copytree(REPO / "systemd", out / "systemd", dirs_exist_ok=True)
        return out

    # -- broker ----------------------------------------------------------------------------------------------------

    def start_broker(self) -> Mosquitto:
        if self.broker is None:
            users = {"edge": self.password, "edge-cam-01": self.password, "dashboard": self.password}
            self.broker = Mosquitto(self.dir / "broker", allow_anonymous=False, users=users).start()
            self.dashboard = Subscriber(self.broker, ["edge/#"], username="dashboard", password=self.password)
            self.dashboard.start()
        return self.broker

    def wait_message(self, topic: str, after: float, timeout: float,
                     accept: Callable[[Message], bool] = lambda m: True) -> Message:  # fmt: skip
        """The first message on `topic` received after monotonic time `after` that `accept`s; LabError on timeout."""
        assert self.dashboard is not None

        def found(msgs: list[Message]) -> Message | None:
            return next((m for m in msgs if m.topic == topic and m.received >= after and accept(m)), None)

        try:
            self.dashboard.wait_for(lambda msgs: found(msgs) is not None, timeout)
        except TimeoutError:
            seen = [(m.topic, m.payload[:60]) for m in self.dashboard.received() if m.received >= after][-6:]
            raise LabError(f"no message on {topic} within {timeout:.0f} s; last seen: {seen}") from None
        msg = found(self.dashboard.received())
        assert msg is not None
        return msg

    def messages(self, topic: str, after: float = 0.0) -> list[Message]:
        assert self.dashboard is not None
        return [m for m in self.dashboard.received(topic) if m.received >= after]

    # -- machines --------------------------------------------------------------------------------------------------

    def machine(self, name: str, *, ssh: bool = False, binds_ro: dict[Path, str] | None = None,
                disk: bool = False) -> Machine:  # fmt: skip
        """An nspawn machine of the cached rootfs (an overlay, or with `disk` an ext4 image of its own that can
        take power cuts), the wheels folder at /srv/edge-wheels, the demo clip in /srv/edge-media (not started)."""
        binds = {self.wheels(): "/srv/edge-wheels", DEMO_CLIP.parent: "/srv/edge-media", **(binds_ro or {})}
        key = images.lab_key().with_suffix(".pub").read_text() if ssh else ""
        work = self.dir / "machines" / name
        return Machine(name, self.rootfs(), work, binds_ro=binds, ssh_port=free_port() if ssh else None,
                       authorized_key=key, disk=work.parent / f"{name}.ext4" if disk else None)  # fmt: skip

    def store_password(self, m: Machine) -> Path:
        """The broker password in the machine's /etc/credstore, as docs/deployment.md tells an operator to put it
        (directory 0700, file 0600, root's): the daemon's unit hands it over by `LoadCredential=`. The file is
        created 0600, so it is never readable by others, not even for a moment."""
        credstore = m.root / "etc/credstore"
        credstore.mkdir(mode=0o700, exist_ok=True)
        credstore.chmod(0o700)
        secret = credstore / "edge-daemon.mqtt-password"
        fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.password)
        secret.chmod(0o600)  # (a file that was already there keeps its mode through O_CREAT)
        return secret

    def record(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        log.info("[%s] %s: %s", "ok" if figure.ok else "FAILED", figure.scenario, figure.figure)
        return figure

    def close(self) -> None:
        if self.dashboard is not None:
            self.dashboard.stop()
        if self.broker is not None:
            self.broker.close()
        for mount in sorted(self.dir.glob("machines/*/root"), reverse=True):  # a machine left by a failed step
            if mount.is_mount():
                subprocess.run(["umount", "-l", str(mount)], check=False)
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)


_SHARED: Lab | None = None


def shared_lab() -> Lab:
    """The one Lab of this process (pytest's tests/device and tests/deploy/test_fleet.py share it), closed at exit."""
    global _SHARED
    if _SHARED is None:
        _SHARED = Lab()
        atexit.register(_SHARED.close)
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _interrupt)  # a killed test run still stops its machines and VM
    return _SHARED


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt("SIGTERM")


def device_config(*, device_id: str, port: int, source: str, model: str = "demo_model.tflite",
                  host: str = "127.0.0.1", max_rate: float = 5.0, extra: str = "") -> str:  # fmt: skip
    """A daemon config for a lab device: password from the credential, every classified frame published."""
    return (
        f'[camera]\nsource = "{source}"\nmax_rate = {max_rate}\nreconnect_max_s = 4.0\n\n'
        f'[model]\npath = "/var/lib/edge-daemon/models/{model}"\n\n'
        f'[mqtt]\nhost = "{host}"\nport = {port}\nusername = "edge"\n'
        f'password_file = "edge-daemon.mqtt-password"\ndevice_id = "{device_id}"\n\n'
        f'[smoothing]\nmode = "off"\n\n[stats]\ninterval_s = 5.0\n{extra}'
    )
