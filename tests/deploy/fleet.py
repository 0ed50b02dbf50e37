"""A fleet of real devices on this machine for the Ansible tests, and the roll-out scenario (device lab scenario 6).

Each device is a systemd-nspawn machine of the device lab (tests/device): Debian bookworm booted with systemd as
PID 1, sshd on a loopback port of its own (root logs in with the lab's key), the daemon's dependency wheels at
/srv/edge-wheels (install.sh installs offline from them), the test clip at /srv/fleet-media. Ansible reaches every
device over SSH and manages the daemon with the real `systemctl`; the broker is the lab's mosquitto, which
requires a password (each device's /etc/credstore holds it, as docs/deployment.md tells an operator to do).

Scenario: `edge-deploy release` installs release 0.1.0-a with model A on all three devices in one batch; then a
roll-out in two batches gives dev1 and dev2 model B and dev3 release 0.1.0-b with model B and a broker port that
is wrong for it: dev1 and dev2 end on B, dev3 switches, restarts, fails its health check and is rolled back by
itself to 0.1.0-a, model A and its old config, and keeps classifying (systemd restarted it each time). Then a
published model that fails on invoke is pushed to dev1: `check-config` test-runs it, so the config is refused
before anything switches and dev1 goes on classifying with B. `edge-deploy status` shows it all.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.device import images
from tests.device.host import LabError, missing_capability, wait_until
from tests.device.lab import REPO, Figure, Lab
from tests.device.nspawn import Machine
from tests.device.vm import ssh_options
from tests.support.mosquitto import free_port

EDGE_DEPLOY = [sys.executable, "-c", "import sys\nfrom deploy.cli import main\nsys.exit(main())"]
NAMES = ("dev1", "dev2", "dev3")


def fleet_prerequisites() -> str | None:
    """Why the fleet cannot run here, or None."""
    if not shutil.which("ansible-playbook", path=str(Path(sys.executable).parent) + ":/usr/bin:/usr/local/bin"):
        return "ansible-core not installed (pip install -e '.[deploy]')"
    return missing_capability()


class Fleet:
    """Three (or more) nspawn devices with sshd; `inventory()` writes the Ansible inventory for them."""

    def __init__(self, lab: Lab, names: tuple[str, ...], media: Path) -> None:
        self.lab = lab
        self.devices = [lab.machine(n, ssh=True, binds_ro={media: "/srv/fleet-media"}) for n in names]
        self.control = Path(tempfile.mkdtemp(prefix="edge-ssh-", dir="/tmp"))  # short path for ControlPath

    def start(self) -> Fleet:
        with ThreadPoolExecutor(len(self.devices)) as pool:
            list(pool.map(Machine.start, self.devices))
        for d in self.devices:
            self.lab.store_password(d)
            wait_until(lambda d=d: d.sh(f"ss -ltn | grep -q ':{d.ssh_port} '", check=False).returncode == 0, 30,
                       f"{d.name}: sshd")  # fmt: skip
        return self

    def device(self, name: str) -> Machine:
        return next(d for d in self.devices if d.name == name)

    def inventory(self, path: Path, group_vars: dict[str, object], host_vars: dict[str, dict] | None = None) -> str:
        key = images.lab_key()
        lines = ["[edge]"]
        for d in self.devices:
            extra = " ".join(f"{k}={v}" for k, v in (host_vars or {}).get(d.name, {}).items())
            lines.append(f"{d.name} ansible_host=127.0.0.1 ansible_port={d.ssh_port} {extra}".rstrip())
        opts = " ".join(ssh_options(key, 0)[4:])
        common = {
            "ansible_user": "root",
            "ansible_ssh_private_key_file": str(key),
            "ansible_ssh_common_args": f"'{opts}'",
            "ansible_ssh_args": f"'-o ControlMaster=auto -o ControlPersist=60s -o ControlPath={self.control}/%C'",
            "ansible_python_interpreter": "/usr/bin/python3",
            "ansible_pipelining": "true",
            "edge_become": "false",
        }
        lines += ["", "[edge:vars]"] + [f"{k}={v}" for k, v in {**common, **group_vars}.items()]
        path.write_text("\n".join(lines) + "\n")
        return str(path)

    def close(self) -> None:
        for d in self.devices:
            d.close()
        shutil.rmtree(self.control, ignore_errors=True)


def write_clip(image: Path, path: Path, frames: int = 30) -> Path:
    import cv2

    img = cv2.resize(cv2.imread(str(image)), (320, 240))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    for _ in range(frames):
        writer.write(img)
    writer.release()
    return path


def health(d: Machine, model_stem: str, timeout: float = 20) -> subprocess.CompletedProcess:
    """`edge-daemon health` on the device itself, with the installed release."""
    exe, config = "/opt/edge-daemon/current/bin/edge-daemon", "/etc/edge-daemon/config.toml"
    return d.sh(f"{exe} health --config {config} --credentials /etc/credstore --timeout {timeout} "
                f"--expect-model {model_stem}", check=False)  # fmt: skip


def deploy(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([*EDGE_DEPLOY, *map(str, args)], capture_output=True, text=True, cwd=REPO, check=False)


def scenario_6(lab: Lab, models: dict[str, Path], image: Path) -> Figure:
    """The roll-out on three systemd-managed devices, one rolled back. `models`: a, b and broken."""
    broker = lab.start_broker()
    media = lab.dir / "fleet-media"
    media.mkdir(exist_ok=True)
    write_clip(image, media / "cat.avi")
    wheel = lab.project_wheel()
    fleet = Fleet(lab, NAMES, media).start()
    try:
        group_vars = {
            "edge_mqtt_host": "127.0.0.1", "edge_mqtt_port": broker.port, "edge_mqtt_username": "edge",
            "edge_mqtt_password_file": "edge-daemon.mqtt-password", "edge_camera_source": "/srv/fleet-media/cat.avi",
            "edge_install_args": "'--find-links /srv/edge-wheels --offline'", "edge_heartbeat_s": 2,
        }  # fmt: skip
        inventory = fleet.inventory(lab.dir / "inventory.ini", group_vars)

        # 1. Release 0.1.0-a with model A on all three devices, one batch.
        t0 = time.monotonic()
        r = deploy("release", wheel, "--release", "0.1.0-a", "--model", models["a"], "--hosts", inventory,
                   "--serial", "3", "--timeout", "60", "--json")  # fmt: skip
        first_s = time.monotonic() - t0
        assert r.returncode == 0, r.stdout + r.stderr + "".join(d.journal()[-2000:] for d in fleet.devices)
        results = {x["host"]: x for x in json.loads(r.stdout)}
        for d in fleet.devices:
            assert results[d.name]["result"] == "deployed", results[d.name]
            assert d.sh("readlink /opt/edge-daemon/current").stdout.strip() == "releases/0.1.0-a"
            assert d.sh("systemctl is-active edge-daemon", check=False).stdout.strip() == "active"
            assert d.sh("systemctl is-enabled edge-daemon", check=False).stdout.strip() == "enabled"

        # 2. Model B to dev1 and dev2; dev3 a new release 0.1.0-b with model B and a broker port nothing listens on
        #    (valid config, dead device). Batches of 2, stop above 50 % failures per batch. dev3 must go back to
        #    release 0.1.0-a, model A and its old config by itself.
        dead_port = free_port()
        dev3_vars = {"edge_wheel": wheel, "edge_release": "0.1.0-b", "edge_mqtt_port": dead_port}
        inventory2 = fleet.inventory(lab.dir / "inventory2.ini", {**group_vars, "edge_model": models["b"]},
                                     {"dev3": dev3_vars})  # fmt: skip
        reports = lab.dir / "reports"
        reports.mkdir(exist_ok=True)
        extra = {"edge_project_dir": str(REPO), "edge_report_dir": str(reports), "edge_serial": 2,
                 "edge_max_fail_percentage": 50, "edge_health_timeout": 20}  # fmt: skip
        playbook = str(REPO / "deploy/ansible/playbook.yml")
        play = ["ansible-playbook", "-i", inventory2, playbook, "-e", json.dumps(extra)]
        t1 = time.monotonic()
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
        r = subprocess.run(play, capture_output=True, text=True, check=False, env=env)
        second_s = time.monotonic() - t1
        assert r.returncode != 0, "the broken device must fail the play"
        assert r.stdout.count("TASK [edge_daemon : Current release and config") == 2, "two batches: dev1+dev2, dev3"
        got = {p.stem: json.loads(p.read_text()) for p in reports.glob("*.json")}
        assert got["dev1"]["result"] == "deployed" and got["dev2"]["result"] == "deployed", got
        assert got["dev3"]["result"] == "rolled back", got
        assert str(dead_port) in got["dev3"]["message"], got["dev3"]["message"]

        # Independently of the playbook, on each device: dev1/dev2 classify with B, dev3 is back on A.
        for name, stem in (("dev1", models["b"].stem), ("dev2", models["b"].stem), ("dev3", models["a"].stem)):
            h = health(fleet.device(name), stem)
            assert h.returncode == 0, f"{name}: {h.stderr}"
        dev3 = fleet.device("dev3")
        assert models["a"].name in dev3.sh("cat /etc/edge-daemon/config.toml").stdout
        assert dev3.sh("readlink /opt/edge-daemon/current").stdout.strip() == "releases/0.1.0-a"
        assert dev3.sh("test -e /opt/edge-daemon/releases/0.1.0-b/.complete", check=False).returncode == 0
        assert f"port = {broker.port}" in dev3.sh("cat /etc/edge-daemon/config.toml").stdout, "old config back"
        starts = dev3.journal().count("Started edge-daemon.service")
        assert starts >= 3, f"dev3: systemd started the daemon {starts} times (install, switch, rollback)"

        # A model that loads but fails on invoke: refused by check-config before anything switches.
        r = deploy("model", models["broken"], "--hosts", inventory2, "--limit", "dev1", "--timeout", "20", "--json")
        assert r.returncode == 1, r.stdout + r.stderr
        refused = {x["host"]: x for x in json.loads(r.stdout)}["dev1"]
        assert refused["result"] == "failed" and models["broken"].name in refused["message"], refused
        assert health(fleet.device("dev1"), models["b"].stem).returncode == 0, "dev1 must go on with model B"

        # 4. The status table: device, release, model, online, last classification.
        r = deploy("status", "--hosts", inventory)
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert lines[0].split() == ["DEVICE", "RELEASE", "MODEL", "ONLINE", "LAST", "CLASSIFICATION"], lines
        rows = {row[0]: row for row in (re.split(r"\s{2,}", line) for line in lines[1:])}
        for name, model in (("dev1", models["b"].name), ("dev2", models["b"].name), ("dev3", models["a"].name)):
            assert rows[name][1:4] == ["0.1.0-a", model, "online"], rows[name]
            assert re.match(r"\S.* \d\.\d\d at \d{4}-\d\d-\d\dT", rows[name][4]), rows[name]
    except AssertionError as e:
        raise LabError(f"fleet: {e}") from e
    finally:
        fleet.close()
    boots = ", ".join(f"{d.boot_s:.1f}" for d in fleet.devices)
    return Figure(
        "6. fleet on real init (nspawn + Ansible)",
        "edge-deploy release to 3 systemd machines over SSH; 2 batches: dev1+dev2 model B, dev3 new release with a "
        "dead broker port -> health check fails, rolled back by itself (release, model, config), classifying; a "
        "model failing on invoke -> refused by check-config, nothing switched",
        f"boots {boots} s; first roll-out (3 installs) {first_s:.0f} s; second roll-out with rollback {second_s:.0f} s",
    )
