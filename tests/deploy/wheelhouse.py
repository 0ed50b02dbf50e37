"""A local folder of the daemon's wheel and every wheel it needs, so the release venvs install.sh builds in the
tests see none of this machine's Python packages.

No `--system-site-packages`: from `.venv`'s interpreter that exposes the *base* interpreter's site-packages, and a
test would pass only where NumPy/OpenCV/LiteRT happen to be installed globally. The venvs install the daemon and
its dependencies from this folder with `--find-links DIR --offline`, as a device without network access would.
The folder is filled with `pip download` from PyPI (pip's cache under HOME makes later sessions quick).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.project import build_project_wheel


def _pip(*args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"pip {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")


def build_wheelhouse(out: Path) -> Path:
    """Fill `out` with edge_daemon-*.whl (this checkout, `tests.support.project.build_project_wheel`) and the
    wheels of its dependencies."""
    build_project_wheel(out)
    _pip("download", "-q", "--disable-pip-version-check", "--only-binary", ":all:", "-d", str(out),
         str(daemon_wheel(out)))  # fmt: skip
    return out


def daemon_wheel(wheelhouse: Path) -> Path:
    """The project's own wheel in `wheelhouse`."""
    return next(wheelhouse.glob("edge_daemon-*.whl"))


def offline_install_args(wheelhouse: Path) -> list[str]:
    """install.sh options: a release venv from this interpreter with nothing but `wheelhouse`'s wheels."""
    return ["--find-links", str(wheelhouse), "--offline", "--no-apt", "--python", sys.executable]
