"""install_ha.sh finds pyenv's Python 3.13 or says in one line what to do (tests/run.sh shows that line as the
reason the Home Assistant checks skip). The build itself is exercised by every tests/run.sh on a machine with one."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.support.homeassistant import HA_TOOLS

INSTALL_HA = HA_TOOLS / "install_ha.sh"


def run_install_ha(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """install_ha.sh with a PATH of bare tools only (no python3.13, no pyenv) and an empty HOME."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in ("ls", "sort", "dirname"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    variables = {"PATH": str(bin_dir), "HOME": str(home), **env}
    return subprocess.run([shutil.which("bash"), str(INSTALL_HA), str(tmp_path / "venv")], env=variables,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_no_python_3_13_is_one_line_naming_where_it_looked_and_the_fix(tmp_path):
    r = run_install_ha(tmp_path, PYENV_ROOT=str(tmp_path / "pyenv"))
    assert r.returncode == 2
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("install_ha.sh: error: no Python 3.13 found in ") and f"{tmp_path}/pyenv/versions" in line
    assert "pyenv install 3.13" in line and "PY313=" in line
    assert not (tmp_path / "venv").exists()


def test_a_py313_that_is_not_3_13_is_refused(tmp_path):
    python = os.path.realpath(shutil.which("python3"))
    r = run_install_ha(tmp_path, PY313=python)
    assert r.returncode == 2
    assert r.stderr.strip() == f"install_ha.sh: error: PY313={python} is not a working Python 3.13"


def test_pyenv_s_newest_3_13_is_chosen(tmp_path):
    """Under PYENV_ROOT/versions: 3.13.x found (newest first) and used; a 3.12 beside it is not."""
    root = tmp_path / "pyenv"
    for version, works in (("3.12.9", True), ("3.13.0", True), ("3.13.2", True)):
        exe = root / "versions" / version / "bin" / f"python{version[:4]}"
        exe.parent.mkdir(parents=True)
        # a stand-in: passes the version check, then fails `-m venv` so nothing is built
        exe.write_text(f'#!/bin/sh\n[ "$1" = -c ] && exit {0 if works else 1}\necho "ran $0 $*" >&2; exit 9\n')
        exe.chmod(0o755)
    r = run_install_ha(tmp_path, PYENV_ROOT=str(root))
    assert f"Python 3.13: {root}/versions/3.13.2/bin/python3.13" in r.stdout, r.stdout + r.stderr
    assert r.returncode == 9 and "ran " + str(root / "versions/3.13.2/bin/python3.13") + " -m venv" in r.stderr
