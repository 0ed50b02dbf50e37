"""deploy/cloud-init/user-data.yaml: valid for `cloud-init schema` (Debian's cloud-init, not PID 1, just the
validator), the config it writes passes the daemon's own `check-config`, and the install.sh options it uses exist.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.shared_data import shared

yaml = pytest.importorskip("yaml", reason="PyYAML comes with the deploy extra (ansible-core)")

REPO = Path(__file__).resolve().parents[2]
USER_DATA = REPO / "deploy" / "cloud-init" / "user-data.yaml"
CLOUD_INIT = shutil.which("cloud-init")
needs_cloud_init = pytest.mark.skipif(
    CLOUD_INIT is None, reason="cloud-init not installed (apt-get install cloud-init)"
)
CLI = [sys.executable, "-c", "import sys\nfrom edge.cli.main import main\nsys.exit(main())"]


def schema(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([CLOUD_INIT, "schema", "--config-file", str(path)], capture_output=True, text=True)


@needs_cloud_init
def test_user_data_passes_cloud_init_schema(tmp_path):
    ok = schema(USER_DATA)
    assert ok.returncode == 0 and "Valid cloud-config" in ok.stdout, ok.stdout + ok.stderr
    # the validator does reject a broken file (so the check above means something)
    broken = tmp_path / "user-data.yaml"
    broken.write_text(USER_DATA.read_text().replace("packages:\n", "packages: 42\nx_packages:\n", 1))
    assert schema(broken).returncode != 0


def test_written_config_is_valid_for_the_daemon(tmp_path):
    data = yaml.safe_load(USER_DATA.read_text())
    files = {f["path"]: f for f in data["write_files"]}
    config = tmp_path / "config.toml"
    config.write_text(files["/etc/edge-daemon/config.toml"]["content"])
    creds = tmp_path / "credstore"
    creds.mkdir()
    (creds / "edge-daemon.mqtt-password").write_text(files["/etc/credstore/edge-daemon.mqtt-password"]["content"])
    env = {
        **os.environ,
        "CREDENTIALS_DIRECTORY": str(creds),  # as systemd's LoadCredential= provides it
        "EDGE_MODEL__PATH": str(shared("coral/mobilenet_v1_0.25_128_quant.tflite")),  # the image's model is not here
    }
    r = subprocess.run([*CLI, "check-config", str(config)], capture_output=True, text=True, env=env, check=False)
    assert r.returncode == 0, r.stderr
    assert "CHANGE-ME" not in r.stdout, "the password must never be printed"
    assert files["/etc/credstore/edge-daemon.mqtt-password"]["permissions"] == "0600"


def test_runcmd_uses_existing_install_options():
    data = yaml.safe_load(USER_DATA.read_text())
    script = "\n".join(" ".join(c) if isinstance(c, list) else c for c in data["runcmd"])
    used = set(re.findall(r"install\.sh[^\n]*", script)[0].split()) & {
        "--wheel",
        "--find-links",
        "--model",
        "--offline",
    }
    help_text = subprocess.run(
        ["bash", str(REPO / "deploy/install.sh"), "--help"], capture_output=True, text=True
    ).stdout
    assert used and all(opt in help_text for opt in used)
