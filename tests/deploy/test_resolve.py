"""The daemon's dependencies resolve to wheels on all four targets it ships to: CPython 3.11 (Debian bookworm,
Raspberry Pi OS) and 3.13 (trixie, what `edge-deploy image` builds by default), each on x86_64 and aarch64.

What a device installs is `pyproject.toml`'s `[project] dependencies` and nothing more: `deploy/install.sh` installs
the wheel (or the checkout) without an extra, and `deploy/image_root.py` downloads exactly that list. For each target
the machine's own pip is told the target's tags (`--python-version`, `--abi`, `--platform`, wheels only) and resolves
them with `--dry-run --report`; the report must hold every declared package, each file a wheel that target loads.
The glibc ceiling is bookworm's 2.36 for all four, as in `deploy/image_root.py`: a wheel built for an older glibc
runs on trixie's 2.41 too, and the image is built with that ceiling for both suites.

pip asks only the index it is configured for (PIP_INDEX_URL or pip.conf: a CI mirror is kept), with its certificate,
proxy and timeouts, and nothing else from this machine: no constraint file (this machine caps torch in
/etc/xdg/pip), no find-links folder or extra local index (wheels a device would never see). Skipped when that index
does not answer; when it answers and a target does not resolve, the test fails: that is the regression it is for.

Limitation: pip evaluates the markers of *transitive* requirements for this machine, not the target (the declared
ones are evaluated here, per target). tests/arm64/test_dependency_wheels.py goes deeper for the Pi (aarch64 cp311):
no package of the tree may come as source for the newest release pip would pick.
"""

from __future__ import annotations

import ast
import json
import os
import re
import ssl
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pytest
from packaging import tags
from packaging.requirements import Requirement
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

REPO = Path(__file__).resolve().parents[2]
PYPI_SIMPLE = "https://pypi.org/simple/"
GLIBC_MINOR = 36  # Debian bookworm's glibc 2.36 (trixie has 2.41)
LEGACY_MANYLINUX = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}  # PEP 600's aliases
# pip settings that say where the index is and how to reach it: kept from the environment and pip.conf.
KEPT_SETTINGS = ("index-url", "cert", "client-cert", "trusted-host", "proxy", "timeout", "default-timeout", "retries",
                 "cache-dir")  # fmt: skip

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Target:
    python: str  # "3.11"
    arch: str  # "x86_64" / "aarch64"

    @property
    def abi(self) -> str:
        return "cp" + self.python.replace(".", "")

    @property
    def platforms(self) -> list[str]:
        """The manylinux tags glibc 2.36 accepts, newest first, as `packaging` makes them on the device: down to
        2_17 on aarch64 (its first manylinux), 2_5 on x86_64, with the legacy aliases (no musllinux: Debian is glibc).
        """
        floor = 5 if self.arch == "x86_64" else 17
        out = []
        for minor in range(GLIBC_MINOR, floor - 1, -1):
            out.append(f"manylinux_2_{minor}_{self.arch}")
            legacy = LEGACY_MANYLINUX.get(minor)
            out += [f"{legacy}_{self.arch}"] if legacy else []
        return out

    @cached_property
    def tags(self) -> frozenset[tags.Tag]:
        """Every tag this target's pip installs: cpXY-cpXY, abi3 (from cp32), none, py3-none-any."""
        version = tuple(int(p) for p in self.python.split("."))
        return frozenset([*tags.cpython_tags(version, [self.abi], self.platforms),
                          *tags.compatible_tags(version, self.abi, self.platforms)])  # fmt: skip

    def fits(self, filename: str) -> bool:
        """True for a wheel file name with at least one tag of this target (False for sdists and bad names)."""
        try:
            return not parse_wheel_filename(filename)[3].isdisjoint(self.tags)
        except InvalidWheelFilename:
            return False

    def markers(self) -> dict[str, str]:
        return {"python_version": self.python, "python_full_version": self.python + ".0", "platform_machine": self.arch,
                "implementation_name": "cpython", "platform_python_implementation": "CPython", "os_name": "posix",
                "sys_platform": "linux", "platform_system": "Linux", "extra": ""}  # fmt: skip

    def __str__(self) -> str:
        return f"{self.abi}-{self.arch}"


TARGETS = [Target(py, arch) for py in ("3.11", "3.13") for arch in ("x86_64", "aarch64")]


def device_requirements(target: Target, pyproject: Path = REPO / "pyproject.toml") -> list[Requirement]:
    """`[project] dependencies` whose markers hold on `target`, markers stripped (pip would judge them for here)."""
    reqs = []
    for text in tomllib.loads(pyproject.read_text())["project"]["dependencies"]:
        req = Requirement(text)
        if req.marker is None or req.marker.evaluate(target.markers()):
            req.marker = None
            reqs.append(req)
    return reqs


def pip_settings(listing: str) -> dict[str, str]:
    """`pip config list` output as {key: value}, the most specific section winning (global < install < env)."""
    rank = {"global": 0, "install": 1, ":env:": 2}
    found: dict[str, tuple[int, str]] = {}
    for line in listing.splitlines():
        section_key, sep, value = line.partition("=")
        section, _, key = section_key.rpartition(".")
        if sep and section in rank and rank[section] >= found.get(key, (-1, ""))[0]:
            found[key] = (rank[section], ast.literal_eval(value))
    return {key: value for key, (_, value) in found.items()}


def pip_env(settings: Mapping[str, str], environ: Mapping[str, str]) -> dict[str, str]:
    """The environment for the resolving pip: no config file, no PIP_* variable but the index and how to reach it.

    Clearing a list setting is impossible from the environment (pip ignores an empty PIP_CONSTRAINT), so the
    config files are dropped (PIP_CONFIG_FILE=os.devnull) and the kept settings passed as variables.
    """
    env = {k: v for k, v in environ.items() if not k.startswith("PIP_")}
    env.update({"PIP_" + k.upper().replace("-", "_"): v for k, v in settings.items() if k in KEPT_SETTINGS})
    env["PIP_CONFIG_FILE"] = os.devnull
    return env


@dataclass
class Resolution:
    target: Target
    returncode: int
    stderr: str
    seconds: float
    installs: list[dict]

    def files(self) -> dict[str, tuple[str, str]]:
        """{canonical name: (version, file name)} of everything pip would install."""
        return {canonicalize_name(i["metadata"]["name"]): (i["metadata"]["version"],
                i["download_info"]["url"].rsplit("/", 1)[-1]) for i in self.installs}  # fmt: skip


def resolve(target: Target, reqs: list[Requirement], env: Mapping[str, str], out: Path) -> Resolution:
    """pip's resolution of `reqs` for `target` (wheels only), from its --report."""
    report = out / f"{target}.json"
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", "install", "--dry-run", "--ignore-installed",
           "--target", str(out / f"{target}-site"),  # pip < 23.1 takes --platform only with --target
           "--only-binary=:all:", "--python-version", target.python, "--implementation", "cp", "--abi", target.abi,
           *(a for p in target.platforms for a in ("--platform", p)),
           "--report", str(report), *map(str, reqs)]  # fmt: skip
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(env), timeout=600, check=False)
    seconds = time.monotonic() - start
    installs = json.loads(report.read_text())["install"] if proc.returncode == 0 else []
    return Resolution(target, proc.returncode, proc.stderr, seconds, installs)


def index_answers(url: str, cafile: str | None) -> str | None:
    """None when the index answers an HTTPS HEAD within 5 s (any HTTP status), else why not."""
    try:
        ctx = ssl.create_default_context(cafile=cafile)
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=5, context=ctx):
            return None
    except urllib.error.HTTPError:
        return None  # it answered
    except (urllib.error.URLError, OSError, ValueError) as e:
        return f"{type(e).__name__}: {getattr(e, 'reason', e)}"


@pytest.fixture(scope="module")
def resolutions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Resolution]:
    """The four resolutions, run side by side (each is mostly waiting for the index)."""
    listing = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True,
                             timeout=60, check=True).stdout  # fmt: skip
    env = pip_env(pip_settings(listing), os.environ)
    # Asked without a mirror's user:token (urllib cannot send it from the URL; a 401 is an answer too), and that
    # stays out of the log.
    index = re.sub(r"//[^/@]*@", "//", env.get("PIP_INDEX_URL", PYPI_SIMPLE).split()[0])
    if (why := index_answers(index, env.get("PIP_CERT"))) is not None:
        pytest.skip(f"the package index {index} does not answer ({why}): resolving needs it")
    out = tmp_path_factory.mktemp("resolve")
    with ThreadPoolExecutor(len(TARGETS)) as pool:
        done = pool.map(lambda t: resolve(t, device_requirements(t), env, out), TARGETS)
        return {str(r.target): r for r in done}


@pytest.mark.parametrize("target", TARGETS, ids=str)
def test_the_daemon_dependencies_resolve_to_wheels_of_the_target(resolutions: dict[str, Resolution], target: Target):
    res = resolutions[str(target)]
    errors = [line for line in res.stderr.splitlines() if line.startswith("ERROR")] or res.stderr.splitlines()[-8:]
    resolved = res.returncode == 0  # (a plain bool: pytest would print the whole Resolution)
    assert resolved, f"{target}: pip finds no set of wheels for pyproject.toml's dependencies: " + " | ".join(errors)
    files = res.files()
    print(f"{target} ({res.seconds:.1f} s): " + ", ".join(f"{n}=={v}" for n, (v, _) in sorted(files.items())))
    for req in device_requirements(target):
        name = canonicalize_name(req.name)
        assert name in files, f"{target}: {req.name} is missing from pip's resolution {sorted(files)}"
        assert req.specifier.contains(files[name][0], prereleases=True), f"{target}: {req} resolved to {files[name]}"
    misfits = {name: f for name, (_, f) in files.items() if not target.fits(f)}
    assert not misfits, f"{target}: files this target cannot load (manylinux <= 2_36 only): {misfits}"


# -- the pure parts --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "filename", "fits"),
    [
        (TARGETS[3], "numpy-2.4.6-cp313-cp313-manylinux_2_27_aarch64.manylinux_2_28_aarch64.whl", True),
        (TARGETS[1], "opencv_python_headless-5.1.0.95-cp37-abi3-manylinux_2_28_aarch64.whl", True),
        (TARGETS[0], "cryptography-51.0.1-cp311-abi3-manylinux_2_34_x86_64.whl", True),
        (TARGETS[2], "paho_mqtt-2.2.0-py3-none-any.whl", True),
        (TARGETS[0], "x-1.0-cp311-cp311-manylinux_2_36_x86_64.whl", True),
        (TARGETS[0], "x-1.0-cp311-cp311-manylinux_2_38_x86_64.whl", False),  # newer glibc than bookworm's
        (TARGETS[0], "x-1.0-cp311-cp311-musllinux_1_2_x86_64.whl", False),
        (TARGETS[2], "libclang-18.1.1-py2.py3-none-manylinux2010_x86_64.whl", True),  # (tensorflow-cpu's)
        (TARGETS[0], "x-1.0-cp311-cp311-manylinux1_x86_64.whl", True),
        (TARGETS[3], "x-1.0-cp313-cp313-manylinux_2_12_aarch64.whl", False),  # no aarch64 glibc before 2.17
        (TARGETS[1], "x-1.0-cp311-cp311-manylinux2014_x86_64.whl", False),  # another architecture
        (TARGETS[3], "x-1.0-cp311-cp311-manylinux2014_aarch64.whl", False),  # another Python
        (TARGETS[1], "x-1.0-cp313-abi3-manylinux2014_aarch64.whl", False),  # abi3 from 3.13 on
        (TARGETS[3], "x-1.0-cp313-cp313t-manylinux2014_aarch64.whl", False),  # free-threaded build
        (TARGETS[3], "numpy-2.4.6.tar.gz", False),
    ],
    ids=lambda v: str(v) if isinstance(v, Target) else None,
)
def test_wheel_tags_per_target(target: Target, filename: str, fits: bool):
    assert target.fits(filename) is fits


def test_declared_markers_are_judged_per_target(tmp_path: Path):
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\ndependencies = ["numpy<3", "a; platform_machine == \'aarch64\'",'
        " \"b; python_version >= '3.13'\", \"c; sys_platform == 'win32'\"]\n"
    )
    names = {str(t): [r.name for r in device_requirements(t, tmp_path / "pyproject.toml")] for t in TARGETS}
    assert names == {"cp311-x86_64": ["numpy"], "cp311-aarch64": ["numpy", "a"],
                     "cp313-x86_64": ["numpy", "b"], "cp313-aarch64": ["numpy", "a", "b"]}  # fmt: skip


def test_only_the_index_and_how_to_reach_it_reach_pip():
    listing = ("global.constraint='/etc/xdg/pip/constraints.txt'\nglobal.extra-index-url='file:///opt/pypi/simple'\n"
               "global.find-links='/opt/wheels'\nglobal.index-url='https://mirror.example/simple'\n"
               "install.index-url='https://inner.example/simple'\n:env:.cert='/etc/ssl/ca.crt'\n")  # fmt: skip
    environ = {"PATH": "/bin", "PIP_FIND_LINKS": "/opt/wheels", "PIP_CERT": "/etc/ssl/ca.crt"}
    env = pip_env(pip_settings(listing), environ)
    assert env == {"PATH": "/bin", "PIP_INDEX_URL": "https://inner.example/simple", "PIP_CERT": "/etc/ssl/ca.crt",
                   "PIP_CONFIG_FILE": os.devnull}  # fmt: skip
