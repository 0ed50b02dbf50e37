"""The daemon's declared dependencies give a Raspberry Pi (aarch64, CPython 3.11, glibc 2.36) wheels it can load.

Pure tables for the tag and release logic; then, against PyPI (skipped when it cannot be reached): pip, told the
Pi's tags, resolves pyproject.toml's `[project] dependencies` to wheels only (no tag above manylinux_2_36), and
neither the declared packages nor anything they pull in would make a Pi build from source.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from tests.arm64 import pypi
from tests.arm64.target import applies_to_pi, daemon_requirements, pip_target_args, wheel_fits_pi


@pytest.mark.parametrize(
    ("filename", "fits"),
    [
        ("numpy-2.4.6-cp311-cp311-manylinux_2_27_aarch64.manylinux_2_28_aarch64.whl", True),
        ("ai_edge_litert-1.2.0-cp311-cp311-manylinux_2_17_aarch64.whl", True),
        ("opencv_python_headless-5.0.0.93-cp37-abi3-manylinux_2_28_aarch64.whl", True),
        ("protobuf-7.36.2-cp310-abi3-manylinux2014_aarch64.whl", True),
        ("paho_mqtt-2.2.0-py3-none-any.whl", True),
        ("x-1.0-cp311-cp311-manylinux_2_36_aarch64.whl", True),  # bookworm's glibc exactly
        ("x-1.0-cp311-cp311-manylinux_2_38_aarch64.whl", False),  # needs a newer glibc than 2.36
        ("x-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", False),
        ("x-1.0-cp311-cp311-linux_armv7l.whl", False),  # piwheels' 32-bit builds
        ("x-1.0-cp311-cp311-musllinux_1_2_aarch64.whl", False),
        ("x-1.0-cp312-cp312-manylinux_2_17_aarch64.whl", False),
        ("x-1.0-cp312-abi3-manylinux_2_17_aarch64.whl", False),  # abi3 from 3.12 on
        ("x-1.0-cp311-cp311t-manylinux_2_17_aarch64.whl", False),
        ("numpy-2.4.6.tar.gz", False),
        ("not-a-wheel.whl", False),
    ],
)
def test_wheel_fits_pi(filename, fits):
    assert wheel_fits_pi(filename) is fits


def _f(filename, requires_python=None, yanked=False):
    kind = "sdist" if filename.endswith(".tar.gz") else "bdist_wheel"
    return {"filename": filename, "packagetype": kind, "requires_python": requires_python, "yanked": yanked}


WHL = "p-{}-cp311-cp311-manylinux_2_17_aarch64.whl"
NEW_GLIBC = "p-{}-cp311-cp311-manylinux_2_39_aarch64.whl"
RELEASES = {
    "1.0": [_f(WHL.format("1.0")), _f("p-1.0.tar.gz")],
    "1.1": [_f(NEW_GLIBC.format("1.1"))],  # nothing for the Pi: pip skips it
    "1.2": [_f(NEW_GLIBC.format("1.2")), _f("p-1.2.tar.gz")],  # sdist only for the Pi: it would compile
    "1.3": [_f(WHL.format("1.3"), yanked=True)],
    "2.0rc1": [_f(WHL.format("2.0rc1"))],
    "2.0": [_f(WHL.format("2.0"), ">=3.12"), _f("p-2.0.tar.gz", ">=3.12")],  # not for Python 3.11
}


@pytest.mark.parametrize(
    ("spec", "picked", "wheel"),
    [
        ("", "1.2", False),
        ("<1.2", "1.0", True),
        ("<1.3", "1.2", False),
        ("==1.1", None, False),
        (">=2.0rc1", "2.0rc1", True),
        (">=3", None, False),
    ],
)
def test_pick_release_as_pip_on_the_pi(spec, picked, wheel):
    version = pypi.pick_release(RELEASES, SpecifierSet(spec))
    assert version == picked
    if version:
        assert pypi.has_pi_wheel(RELEASES[version]) is wheel


@pytest.mark.parametrize(
    ("text", "applies"),
    [
        ("numpy>=1.26", True),
        ("tflite-runtime; platform_machine == 'aarch64'", True),
        ("x; platform_machine == 'x86_64'", False),
        ("x; python_version < '3.11'", False),
        ("x; python_version >= '3.11' and sys_platform == 'linux'", True),
        ("x; platform_system == 'Windows'", False),
        ("x; extra == 'trainer'", False),
    ],
)
def test_markers_are_evaluated_for_the_pi(text, applies):
    assert applies_to_pi(Requirement(text)) is applies


def test_daemon_requirements_read_from_pyproject(tmp_path: Path):
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\ndependencies = ["numpy>=1.26,<3", "pywin32; sys_platform == \'win32\'",'
        " \"tflite-runtime; platform_machine == 'aarch64'\"]\n"
        '[project.optional-dependencies]\ntrainer = ["tensorflow-cpu"]\n'
    )
    assert [str(r) for r in daemon_requirements(tmp_path / "pyproject.toml")] == ["numpy<3,>=1.26", "tflite-runtime"]


def test_every_declared_dependency_has_an_upper_bound():
    """A new major release must not reach a fleet untested: every dependency is capped."""
    for req in daemon_requirements():
        assert any(s.operator in ("<", "<=", "==", "~=", "===") for s in req.specifier), (
            f"pyproject.toml: '{req}' has no upper bound; cap it below the next major version"
        )


# -- against PyPI -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def online() -> None:
    try:
        pypi.releases_of("paho-mqtt", timeout=15)
    except (urllib.error.URLError, OSError) as e:
        pytest.skip(f"PyPI unreachable ({e}): the resolution tests need https://pypi.org")


@pytest.fixture(scope="module")
def resolution(online, tmp_path_factory) -> list[dict]:
    """pip's own resolution of the declared dependencies for the Pi (wheels only), as its --report items."""
    out = tmp_path_factory.mktemp("pip-report")
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", "install", "--dry-run", "--ignore-installed"]
    cmd += ["--target", str(out / "site"), "--report", str(out / "report.json"), *pip_target_args()]
    proc = subprocess.run(
        [*cmd, *map(str, daemon_requirements())], capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, f"no set of Pi wheels satisfies pyproject.toml's dependencies:\n{proc.stderr[-3000:]}"
    return json.loads((out / "report.json").read_text())["install"]


def test_declared_dependencies_resolve_to_pi_wheels(resolution):
    files = {canonicalize_name(i["metadata"]["name"]): i["download_info"]["url"].rsplit("/", 1)[-1] for i in resolution}
    for req in daemon_requirements():
        assert canonicalize_name(req.name) in files, f"{req.name} missing from the resolution {sorted(files)}"
    misfits = {name: f for name, f in files.items() if not wheel_fits_pi(f)}
    assert not misfits, f"files a Pi cannot load (aarch64 cp311, manylinux <= 2_36): {misfits}"


def _constraints(resolution: list[dict]) -> dict[str, SpecifierSet]:
    """Every package of the resolution with the specifiers all its dependents (and pyproject.toml) put on it."""
    specs: dict[str, SpecifierSet] = {canonicalize_name(i["metadata"]["name"]): SpecifierSet() for i in resolution}
    reqs = list(daemon_requirements())
    for item in resolution:
        reqs += [r for r in map(Requirement, item["metadata"].get("requires_dist") or []) if applies_to_pi(r)]
    for req in reqs:
        name = canonicalize_name(req.name)
        if name in specs:
            specs[name] &= req.specifier
    return specs


def test_no_dependency_would_be_built_from_source_on_a_pi(resolution):
    """pip on a Pi takes the newest allowed release; for every package in the tree it must come as a fitting wheel."""
    problems = []
    constraints = _constraints(resolution)
    with ThreadPoolExecutor(8) as pool:  # the JSON of numpy or protobuf is megabytes
        fetched = dict(zip(constraints, pool.map(pypi.releases_of, constraints), strict=True))
    for name, spec in sorted(constraints.items()):
        releases = fetched[name]
        version = pypi.pick_release(releases, spec)
        if version is None:
            problems.append(f"{name}{spec}: no release a Pi can install")
        elif not pypi.has_pi_wheel(releases[version]):
            problems.append(f"{name}{spec}: a Pi gets {version} as source only (no aarch64 cp311 wheel <= 2_36)")
    assert not problems, "; ".join(problems)


def test_every_release_within_the_declared_bounds_has_a_pi_wheel(online):
    """Whatever else constrains them, the declared bounds only admit releases a Pi installs as wheels."""
    problems = []
    for req in daemon_requirements():
        releases = pypi.releases_of(req.name)
        allowed = pypi.allowed_releases(releases, req.specifier)
        assert allowed, f"pyproject.toml: no release of '{req}' installs on a Pi"
        source_only = [v for v in allowed if not pypi.has_pi_wheel(releases[v])]
        if source_only:
            problems.append(f"'{req}' admits source-only releases {source_only}: raise the lower bound")
    assert not problems, "; ".join(problems)
