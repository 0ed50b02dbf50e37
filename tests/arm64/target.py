"""The device the daemon ships to, as pip sees it: 64-bit Raspberry Pi OS bookworm (aarch64, CPython 3.11, glibc 2.36).

Pure helpers shared by the emulation harness and the dependency tests: the wheel tags a Pi accepts, the
environment its pip evaluates markers in, and the daemon's declared dependencies read from pyproject.toml
with their markers evaluated for the Pi rather than for the machine running the tests.
"""

from __future__ import annotations

import tomllib
from functools import lru_cache
from pathlib import Path

from packaging import tags
from packaging.requirements import Requirement
from packaging.utils import InvalidWheelFilename, parse_wheel_filename

REPO = Path(__file__).resolve().parents[2]

PYTHON = (3, 11)
PYTHON_FULL = "3.11.2"  # Debian bookworm's python3.11, as on Raspberry Pi OS bookworm
GLIBC = (2, 36)
ARCH = "aarch64"

# What `pip` on the Pi generates: manylinux_2_36 down to manylinux_2_17 (= manylinux2014), then linux_aarch64.
PLATFORMS: tuple[str, ...] = (
    *(f"manylinux_2_{minor}_{ARCH}" for minor in range(GLIBC[1], 16, -1)),
    f"manylinux2014_{ARCH}",
    f"linux_{ARCH}",
)
INTERPRETER = f"cp{PYTHON[0]}{PYTHON[1]}"
ABIS = (INTERPRETER, "abi3", "none")

# PEP 508 marker environment of the Pi's interpreter.
MARKER_ENV: dict[str, str] = {
    "implementation_name": "cpython",
    "implementation_version": PYTHON_FULL,
    "os_name": "posix",
    "platform_machine": ARCH,
    "platform_python_implementation": "CPython",
    "platform_release": "6.6.51+rpt-rpi-v8",
    "platform_system": "Linux",
    "platform_version": "#1 SMP PREEMPT Debian 1:6.6.51-1+rpt3 (2024-10-08)",
    "python_full_version": PYTHON_FULL,
    "python_version": f"{PYTHON[0]}.{PYTHON[1]}",
    "sys_platform": "linux",
    "extra": "",
}


@lru_cache(maxsize=1)
def supported_tags() -> frozenset[tags.Tag]:
    """Every wheel tag the Pi's pip installs (cp311 / abi3 / py3-none, manylinux up to 2_36, aarch64)."""
    return frozenset(
        [
            *tags.cpython_tags(PYTHON, abis=[INTERPRETER], platforms=PLATFORMS),
            *tags.compatible_tags(PYTHON, INTERPRETER, PLATFORMS),
        ]
    )


def wheel_fits_pi(filename: str) -> bool:
    """True when a wheel file name carries at least one tag the Pi accepts (False for sdists and bad names)."""
    try:
        _, _, _, wheel_tags = parse_wheel_filename(filename)
    except InvalidWheelFilename:
        return False
    return not wheel_tags.isdisjoint(supported_tags())


def applies_to_pi(req: Requirement, extra: str = "") -> bool:
    """True when the requirement's environment marker holds on the Pi (no marker: always)."""
    return req.marker is None or req.marker.evaluate({**MARKER_ENV, "extra": extra})


def daemon_requirements(pyproject: Path = REPO / "pyproject.toml") -> list[Requirement]:
    """The daemon's `[project] dependencies` that apply on the Pi, markers stripped (already evaluated)."""
    declared = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    reqs = []
    for text in declared:
        req = Requirement(text)
        if applies_to_pi(req):
            req.marker = None
            reqs.append(req)
    return reqs


def pip_target_args() -> list[str]:
    """pip options that make `pip download`/`pip install` resolve for the Pi instead of this machine."""
    args = ["--only-binary=:all:", "--python-version", PYTHON_FULL, "--implementation", "cp"]
    for abi in ABIS:
        args += ["--abi", abi]
    for platform in PLATFORMS:
        args += ["--platform", platform]
    return args
