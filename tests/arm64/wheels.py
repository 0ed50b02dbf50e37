"""The daemon's aarch64 wheels for the emulated Pi: resolved from pyproject.toml's `[project] dependencies`
(markers evaluated for the Pi) by the host's pip with the Pi's tags, plus the project itself built as a wheel
from the working tree. Both are installed with `pip install --target` into directories the emulated Python
gets on its PYTHONPATH; nothing is installed into `/` or into the host's environment.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from tests.arm64.target import REPO, daemon_requirements, pip_target_args, wheel_fits_pi
from tests.support.project import clean_copy

log = logging.getLogger(__name__)


class WheelError(RuntimeError):
    """pip could not resolve, download, build or install a wheel; the message carries pip's last lines."""


def _pip(
    args: list[str], what: str, timeout: float = 600, pythonpath: Path | None = None
) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath), env.get("PYTHONPATH")]))
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=timeout, env=env)
    if proc.returncode != 0:
        lines = [line.strip() for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("ERROR")]
        raise WheelError(f"{what} failed: " + " | ".join(errors or lines[-6:]))
    return proc


def download_dependencies(cache: Path) -> list[Path]:
    """Resolve the daemon's dependencies for the Pi and return exactly the chosen wheel files.

    The result lands in `cache/wheels` (replacing the previous run's set). PyPI is asked first so a new
    release is tested as soon as a Pi would get it; without network the previous set is reused.

    Raises:
        WheelError: no set of aarch64 cp311 wheels (manylinux <= 2_36) satisfies the declarations.
    """
    reqs = [str(r) for r in daemon_requirements()]
    wheels, fresh = cache / "wheels", cache / "wheels.partial"
    shutil.rmtree(fresh, ignore_errors=True)
    wheels.mkdir(parents=True, exist_ok=True)
    common = ["download", "--dest", str(fresh), *pip_target_args(), *reqs]
    try:
        _pip([*common, "--find-links", str(wheels)], "pip download (aarch64 cp311 wheels)")
    except WheelError as online:
        if "No matching distribution" in str(online) or not any(wheels.glob("*.whl")):
            raise  # nothing on PyPI fits the Pi: that is the finding, not a network fault
        log.warning("PyPI resolution failed (%s); trying the cached wheels", online)
        shutil.rmtree(fresh, ignore_errors=True)
        _pip([*common, "--no-index", "--find-links", str(wheels)], "pip download from the cache")
    files = sorted(fresh.iterdir())
    misfits = [f.name for f in files if not wheel_fits_pi(f.name)]
    if misfits:
        raise WheelError(f"resolved files a Pi cannot install: {misfits}")
    shutil.rmtree(wheels)
    fresh.rename(wheels)
    return sorted(wheels.iterdir())


def install_dependencies(cache: Path, wheels: list[Path]) -> Path:
    """Install the wheel set into `cache/site-<hash>` (reused while the set is unchanged); return the directory."""
    key = hashlib.sha256("\n".join(w.name for w in wheels).encode()).hexdigest()[:12]
    site = cache / f"site-{key}"
    if (site / ".complete").exists():
        return site
    for old in cache.glob("site-*"):
        shutil.rmtree(old, ignore_errors=True)
    _pip(
        ["install", "--no-index", "--no-deps", "--target", str(site), *pip_target_args(), *map(str, wheels)],
        "pip install --target (dependencies)",
    )
    (site / ".complete").touch()
    return site


def build_backend(cache: Path) -> Path:
    """pyproject.toml's `[build-system] requires`, installed once into the cache (pip would fetch them per build)."""
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["build-system"]["requires"]
    env = cache / ("build-" + hashlib.sha256("\n".join(requires).encode()).hexdigest()[:12])
    if not (env / ".complete").exists():
        for old in cache.glob("build-*"):
            shutil.rmtree(old, ignore_errors=True)
        _pip(["install", "--target", str(env), *requires], "installing the build backend")
        (env / ".complete").touch()
    return env


def build_project_wheel(out: Path, cache: Path) -> Path:
    """Build the project's wheel from a clean copy of the working tree (no stale build/ can leak in)."""
    backend = build_backend(cache)
    with tempfile.TemporaryDirectory(prefix="edge-arm64-src-") as tmp:
        src = clean_copy(Path(tmp))
        cmd = ["wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(out), str(src)]
        _pip(cmd, "building the project wheel", timeout=300, pythonpath=backend)
    built = sorted(out.glob("edge_daemon-*.whl"))
    if not built:
        raise WheelError(f"pip wheel produced no edge_daemon wheel in {out}")
    return built[-1]


def install_project(wheel: Path, target: Path) -> Path:
    """Install the project's wheel alone (its dependencies come from the dependency site) into `target`."""
    _pip(
        ["install", "--no-index", "--no-deps", "--target", str(target), *pip_target_args(), str(wheel)],
        "pip install --target (project wheel)",
    )
    return target
