"""The Ansible playbook against three real SSH devices on this machine (HEAVY: ~1-2 minutes, marked slow).

Each device is its own sshd on a loopback port with its own install root, its own daemon process and the real
installed release (install.sh building a venv per release). The fleet's broker is a real mosquitto started by the
test. systemd is not PID 1 here, so the service-manager step (systemctl restart / is-active) is replaced by
tests/deploy/supervise.sh, which runs the installed daemon as the unit does; everything else is the real thing.

Scenario: install release 0.1.0-a + model A everywhere with `edge-deploy release`; then a roll-out in two batches
where dev1 and dev2 get model B and dev3 gets release 0.1.0-b with model B and a camera that gives no frames (a
file that is not a video: check-config accepts it, as a camera that is unplugged or down, but nothing is
classified): dev1 and dev2 end on B, dev3 fails its health check and is rolled back by itself to release 0.1.0-a,
model A and its previous config, and keeps classifying; `edge-deploy status` shows it all. (A broken model is
no longer a run-time failure: check-config test-runs the model, so the role refuses it before switching.)
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from tests.deploy.fleet import REPO, Fleet, fleet_prerequisites
from tests.deploy.wheelhouse import daemon_wheel, offline_install_args
from tests.support.shared_data import shared

pytestmark = pytest.mark.slow
EDGE_DEPLOY = [sys.executable, "-c", "import sys\nfrom deploy.cli import main\nsys.exit(main())"]


def write_clip(image: Path, path: Path, frames: int = 30) -> Path:
    img = cv2.resize(cv2.imread(str(image)), (320, 240))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    for _ in range(frames):
        writer.write(img)
    writer.release()
    return path


def health(device, model_stem: str, timeout: float = 15) -> subprocess.CompletedProcess:
    exe = device.root / "opt/edge-daemon/current/bin/edge-daemon"
    cfg = device.root / "etc/edge-daemon/config.toml"
    cmd = [str(exe), "health", "--config", str(cfg), "--timeout", str(timeout), "--expect-model", model_stem]
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def by_host(stdout: str) -> dict[str, dict]:
    return {r["host"]: r for r in json.loads(stdout)}


def test_rollout_in_batches_rolls_back_the_device_that_stops_classifying(tmp_path, mosquitto, wheelhouse):
    reason = fleet_prerequisites()
    if reason:
        pytest.skip(reason)
    model_a = shared("coral/mobilenet_v1_0.25_128_quant.tflite")
    model_b = shared("coral/mobilenet_v1_0.5_160_quant.tflite")
    no_frames = tmp_path / "no-frames.avi"
    no_frames.write_text("not a video\n")
    clip = write_clip(shared("coral/cat.bmp"), tmp_path / "cat.avi")
    wheel = daemon_wheel(wheelhouse)

    fleet = Fleet(tmp_path / "fleet", ["dev1", "dev2", "dev3"]).start()
    try:
        group_vars = {
            "edge_mqtt_host": "127.0.0.1",
            "edge_mqtt_port": mosquitto.port,
            "edge_camera_source": str(clip),
            # the devices' venvs install the daemon and its dependencies from a local wheels folder, offline
            "edge_install_args": "'" + " ".join(offline_install_args(wheelhouse)) + "'",
            "edge_heartbeat_s": 2,
        }
        inventory = fleet.inventory(tmp_path / "inventory.ini", group_vars)

        # 1. Install release 0.1.0-a with model A on all three, one batch.
        cmd = [*EDGE_DEPLOY, "release", str(wheel), "--release", "0.1.0-a", "--model", str(model_a)]
        r = subprocess.run(
            [*cmd, "--hosts", str(inventory), "--serial", "3", "--timeout", "20", "--json"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert r.returncode == 0, r.stdout + r.stderr + "".join(d.log() for d in fleet.devices)
        results = by_host(r.stdout)
        for d in fleet.devices:
            assert results[d.name]["result"] == "deployed", results[d.name]
            assert (d.root / "opt/edge-daemon/current").readlink() == Path("releases/0.1.0-a")
            assert d.supervise("is-active").returncode == 0

        # 2. Model B to dev1 and dev2; dev3 gets a new release 0.1.0-b and a camera with no frames. Batches of 2, stop
        #    above 50 % failures per batch. dev3 must go back to release 0.1.0-a with model A by itself.
        dev3_vars = {"edge_camera_source": no_frames, "edge_wheel": wheel, "edge_release": "0.1.0-b"}
        inventory2 = fleet.inventory(
            tmp_path / "inventory2.ini", {**group_vars, "edge_model": str(model_b)}, {"dev3": dev3_vars}
        )
        report_dir = tmp_path / "reports"
        report_dir.mkdir()
        extra = {"edge_project_dir": str(REPO), "edge_report_dir": str(report_dir), "edge_serial": 2,
                 "edge_max_fail_percentage": 50, "edge_health_timeout": 15}  # fmt: skip
        play = ["ansible-playbook", "-i", str(inventory2), str(REPO / "deploy/ansible/playbook.yml")]
        r = subprocess.run([*play, "-e", json.dumps(extra)], capture_output=True, text=True, check=False)
        assert r.returncode != 0, "the broken device must fail the play"
        assert r.stdout.count("TASK [edge_daemon : Current release and config") == 2, "two batches: dev1+dev2, dev3"
        reports = {p.stem: json.loads(p.read_text()) for p in report_dir.glob("*.json")}
        assert reports["dev1"]["result"] == "deployed" and reports["dev2"]["result"] == "deployed", reports
        assert reports["dev3"]["result"] == "rolled back", reports
        assert "classification" in reports["dev3"]["message"], reports["dev3"]

        # Independently of the playbook: dev1/dev2 classify with B, dev3 is back on A and still classifying.
        for d, stem in (("dev1", model_b.stem), ("dev2", model_b.stem), ("dev3", model_a.stem)):
            device = next(x for x in fleet.devices if x.name == d)
            h = health(device, stem)
            assert h.returncode == 0, f"{d}: {h.stderr}"
        dev3 = fleet.devices[2]
        assert model_a.name in (dev3.root / "etc/edge-daemon/config.toml").read_text()
        assert (dev3.root / "opt/edge-daemon/current").readlink() == Path("releases/0.1.0-a")
        assert (dev3.root / "opt/edge-daemon/releases/0.1.0-b/.complete").exists(), "0.1.0-b was installed beside"

        # 3. The status table: device, release, model, online, last classification.
        r = subprocess.run([*EDGE_DEPLOY, "status", "--hosts", str(inventory)], capture_output=True, text=True)
        print(r.stdout)
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert lines[0].split() == ["DEVICE", "RELEASE", "MODEL", "ONLINE", "LAST", "CLASSIFICATION"]
        rows = {row[0]: row for row in (re.split(r"\s{2,}", line) for line in lines[1:])}
        for d, model in (("dev1", model_b.name), ("dev2", model_b.name), ("dev3", model_a.name)):
            assert rows[d][1:4] == ["0.1.0-a", model, "online"], rows[d]
            assert re.match(r"\S.* \d\.\d\d at \d{4}-\d\d-\d\dT", rows[d][4]), rows[d]
    finally:
        fleet.close()
