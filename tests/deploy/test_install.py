"""deploy/install.sh into a throw-away root (EDGE_ROOT): layout, idempotence, release switch and rollback,
uninstall keeping config and models, purge. systemd is not PID 1 here, so the systemctl step is skipped (the
script says so); `systemd-analyze verify` checks the unit it installed, whose ExecStart names the real venv.
Each release venv is installed offline from a wheels folder (tests/deploy/wheelhouse.py), never
from this machine's own site-packages. install.sh under systemd as PID 1 is the device lab's business.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy.wheelhouse import daemon_wheel, offline_install_args
from tests.support.shared_data import shared

REPO = Path(__file__).resolve().parents[2]
INSTALL = REPO / "deploy" / "install.sh"
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="install.sh runs as root")


def install(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "EDGE_ROOT": str(root)}
    return subprocess.run(["bash", str(INSTALL), *args], capture_output=True, text=True, env=env, check=False)


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.lstat().st_mtime_ns, p.lstat().st_mode) for p in root.rglob("*")}


def test_install_upgrade_rollback_uninstall(tmp_path, wheelhouse):
    model = shared("coral/mobilenet_v1_0.25_128_quant.tflite")
    root = tmp_path / "device"
    # The release venvs get the daemon and its dependencies from a local wheels folder, nothing from this machine.
    base = ["--wheel", str(daemon_wheel(wheelhouse)), *offline_install_args(wheelhouse)]

    r = install(root, *base, "--release", "1.0", "--model", str(model))
    assert r.returncode == 0, r.stderr
    assert "systemd is not running here" in r.stdout
    opt, etc, state = root / "opt/edge-daemon", root / "etc/edge-daemon", root / "var/lib/edge-daemon"
    assert (opt / "current").readlink() == Path("releases/1.0")
    venv_python = opt / "current/bin/python"
    where = subprocess.run([str(venv_python), "-c", "import edge; print(edge.__file__)"], capture_output=True,
                           text=True, cwd=tmp_path, check=True).stdout  # fmt: skip
    assert Path(where.strip()).resolve().is_relative_to(opt / "releases/1.0"), "the release needs its own copy"
    assert (state / "models" / model.name).read_bytes() == model.read_bytes()
    config = (etc / "config.toml").read_text()
    assert f'path = "{state}/models/{model.name}"' in config
    passwd, group = (root / "etc/passwd").read_text(), (root / "etc/group").read_text()
    assert "edge-daemon:" in passwd and "/usr/sbin/nologin" in passwd
    gid = next(int(ln.split(":")[2]) for ln in group.splitlines() if ln.startswith("edge-daemon:"))
    assert all(
        any(ln.startswith(g + ":") and "edge-daemon" in ln for ln in group.splitlines()) for g in ("video", "plugdev")
    )
    assert (etc / "config.toml").stat().st_gid == gid and (etc / "config.toml").stat().st_mode & 0o777 == 0o640
    unit = root / "etc/systemd/system/edge-daemon.service"
    assert f"ExecStart={opt}/current/bin/edge-daemon run --config {etc}/config.toml" in unit.read_text()
    assert (root / "etc/udev/rules.d/60-edge-daemon-coral.rules").is_file()
    template = root / "etc/systemd/system/edge-daemon@.service"
    assert f"ExecStart={opt}/current/bin/edge-daemon run --config {etc}/%i.toml" in template.read_text()
    # the V4L2 core is loaded at boot so DeviceAllow=char-video4linux also covers a camera plugged in later
    modules = root / "etc/modules-load.d/edge-daemon.conf"
    assert "videodev" in [ln.strip() for ln in modules.read_text().splitlines() if not ln.startswith("#")]
    check = subprocess.run([str(opt / "current/bin/edge-daemon"), "check-config", "--quiet", str(etc / "config.toml")],
                           capture_output=True, text=True, check=False)  # fmt: skip
    assert check.returncode == 0, check.stderr
    if shutil.which("systemd-analyze"):
        for name in (unit, template.parent / "edge-daemon@cam1.service"):
            v = subprocess.run(["systemd-analyze", "verify", str(name)], capture_output=True, text=True, check=False)
            assert v.returncode == 0 and not v.stderr.strip(), v.stderr

    # Idempotent: the same command again changes nothing.
    before = snapshot(root)
    r = install(root, *base, "--release", "1.0", "--model", str(model))
    assert r.returncode == 0 and "already installed" in r.stdout and "already current" in r.stdout, r.stderr
    assert snapshot(root) == before

    # A second release side by side; `current` flips, `previous` remembers; --rollback flips back.
    (etc / "config.toml").write_text(config + "\n# edited by the user\n")
    r = install(root, *base, "--release", "1.1")
    assert r.returncode == 0, r.stderr
    assert (opt / "current").readlink() == Path("releases/1.1") and (opt / "previous").readlink() == Path(
        "releases/1.0"
    )
    assert "# edited by the user" in (etc / "config.toml").read_text(), "an upgrade must keep the user's config"
    r = install(root, "--rollback")
    assert r.returncode == 0 and (opt / "current").readlink() == Path("releases/1.0"), r.stderr

    # Uninstall keeps config and models; purge removes them and the user.
    r = install(root, "--uninstall")
    assert r.returncode == 0, r.stderr
    assert not opt.exists() and not unit.exists() and (etc / "config.toml").exists() and (state / "models").exists()
    assert not template.exists() and not modules.exists()
    r = install(root, "--uninstall", "--purge")
    assert r.returncode == 0, r.stderr
    assert not etc.exists() and not state.exists() and "edge-daemon:" not in (root / "etc/passwd").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--frobnicate"], "unknown option --frobnicate"),
        (["--wheel", "/nonexistent/edge_daemon-9.9-py3-none-any.whl", "--no-apt"], "/nonexistent/edge_daemon-9.9"),
        (["--rollback"], "no previous release"),
        (["--switch", "7.7"], "release 7.7 is not installed"),
        (["--purge"], "--purge only goes with --uninstall"),
        (["--package", "edge-daemon", "--no-apt"], "pin a version"),
    ],
)
def test_install_errors_are_one_line(tmp_path, args, message):
    r = install(tmp_path / "device", *args)
    assert r.returncode == 2
    errors = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(errors) == 1 and errors[0].startswith("install.sh: error: ") and message in errors[0], r.stderr
