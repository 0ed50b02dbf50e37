"""The wheel built from the tree is the whole product: every module, schema, page, default config and asset in
it, nothing stale; installed into a fresh venv (no site packages, not this checkout) its demo runs."""

from __future__ import annotations

import subprocess
import venv
import zipfile
from pathlib import Path

import pytest

from tests.deploy.wheelhouse import daemon_wheel
from tests.support.project import project_files

PACKAGES = ("edge/", "trainer/", "deploy/")


def test_the_wheel_holds_every_file_of_the_packages_and_nothing_else(wheelhouse: Path) -> None:
    names = set(zipfile.ZipFile(daemon_wheel(wheelhouse)).namelist())
    tracked = {name for name in project_files() if name.startswith(PACKAGES)}
    assert tracked - names == set(), "missing from the wheel: add them to [tool.setuptools.package-data]"
    packed = {name for name in names if name.startswith(PACKAGES)}
    assert packed - tracked == set(), "in the wheel but not in the tree (a stale build?)"
    for needed in ("edge/mqtt/schemas/classification.schema.json", "edge/http/web/index.html",
                   "edge/config/default-config.toml", "edge/assets/demo_model.tflite", "trainer/review/page.html"):
        assert needed in names  # fmt: skip


@pytest.fixture(scope="module")
def fresh_venv(wheelhouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv from this interpreter with nothing but the wheel and its dependencies (amqtt for the demo's broker
    comes from the index, or pip's cache)."""
    root = tmp_path_factory.mktemp("fresh-venv")
    venv.EnvBuilder(with_pip=True, system_site_packages=False).create(root)
    wheel = daemon_wheel(wheelhouse)
    proc = subprocess.run([str(root / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                           "--find-links", str(wheelhouse), f"{wheel}[demo]"], capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return root


def test_the_installed_wheels_demo_runs(fresh_venv: Path, tmp_path: Path) -> None:
    env = {"PATH": f"{fresh_venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    proc = subprocess.run([str(fresh_venv / "bin" / "edge-daemon"), "demo", "--seconds", "3"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "edge/demo/availability: online" in proc.stdout
    assert "edge/demo/classification: " in proc.stdout
    where = subprocess.run([str(fresh_venv / "bin" / "python"), "-c", "import edge; print(edge.__file__)"],
                           cwd=tmp_path, capture_output=True, text=True, env=env, check=True).stdout  # fmt: skip
    assert where.startswith(str(fresh_venv)), where  # the installed package ran, not this checkout


def test_the_installed_wheel_has_its_data(fresh_venv: Path, tmp_path: Path) -> None:
    """The generated default config, the live page and the schemas load as package resources."""
    code = ("from importlib import resources as r; from edge.config.docs import example_toml; "
            "assert r.files('edge.config').joinpath('default-config.toml').read_text() == example_toml(); "
            "assert b'<html' in r.files('edge.http').joinpath('web/index.html').read_bytes().lower(); "
            "print(len(list(r.files('edge.mqtt').joinpath('schemas').iterdir())))")  # fmt: skip
    proc = subprocess.run([str(fresh_venv / "bin" / "python"), "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) >= 3
