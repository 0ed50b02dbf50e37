"""install.sh and signed releases, into a throw-away root (EDGE_ROOT): a release folder signed by `edge-deploy sign`
installs with `--trusted-key`, the key is kept, and from then on a folder with an extra or a missing wheel, a
changed byte, no manifest or another key's signature is refused in one line before anything of it is installed
(`current` unchanged, no new release directory). The check is the system's openssl and sha256sum."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.manifest import sign_release
from deploy.signing import keygen
from edge.inference.signature import load_private_key
from tests.deploy.test_install import install
from tests.deploy.wheelhouse import daemon_wheel

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="install.sh runs as root")


def release_folder(wheelhouse: Path, dest: Path, key: Path) -> Path:
    shutil.copytree(wheelhouse, dest)
    sign_release(dest, load_private_key(key))
    return dest


def args(folder: Path, *more: str) -> list[str]:
    return ["--wheel", str(daemon_wheel(folder)), "--no-apt", "--python", sys.executable, *more]


def one_line_refusal(r: subprocess.CompletedProcess, message: str) -> None:
    assert r.returncode == 2, r.stdout + r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(errors) == 1 and errors[0].startswith("install.sh: error: ") and message in errors[0], r.stderr


def test_signed_release_installs_and_unverified_ones_are_refused(tmp_path, wheelhouse):
    key, pub, _ = keygen(tmp_path / "keys")
    other_key, other_pub, _ = keygen(tmp_path / "other")
    root = tmp_path / "device"
    opt = root / "opt/edge-daemon"

    unsigned = tmp_path / "unsigned"
    shutil.copytree(wheelhouse, unsigned)
    one_line_refusal(install(root, *args(unsigned, "--release", "0.9", "--trusted-key", str(pub))),
                     "no signed manifest (SHA256SUMS + SHA256SUMS.sig)")  # fmt: skip
    one_line_refusal(install(root, *args(unsigned, "--trusted-key", str(key))), "is a private key")
    one_line_refusal(install(root, *args(unsigned, "--trusted-key", str(unsigned / "SHA256SUMS"))), "no such file")
    assert not (opt / "releases").exists() or not list((opt / "releases").iterdir())

    good = release_folder(wheelhouse, tmp_path / "good", key)
    r = install(root, *args(good, "--release", "1.0", "--trusted-key", str(pub)))
    assert r.returncode == 0, r.stderr
    assert "release folder verified" in r.stdout and "signed by edge-signing.pub" in r.stdout, r.stdout
    assert (opt / "current").readlink() == Path("releases/1.0")
    kept = root / "etc/edge-daemon/release-keys/edge-signing.pub"
    assert kept.read_bytes() == pub.read_bytes(), "the release key is kept for later installs"
    assert not list(opt.glob(".verify.*")), "the staging copy is removed"

    def refused(folder: Path, message: str) -> None:
        r = install(root, *args(folder, "--release", "2.0"))  # no --trusted-key: the kept key applies
        one_line_refusal(r, message)
        assert "nothing was installed" in r.stderr
        assert (opt / "current").readlink() == Path("releases/1.0") and not (opt / "releases/2.0").exists()
        assert not list(opt.glob(".verify.*"))

    extra = release_folder(wheelhouse, tmp_path / "extra", key)
    (extra / "evil-1.0-py3-none-any.whl").write_bytes(b"PK")
    refused(extra, "evil-1.0-py3-none-any.whl is not in the signed manifest")

    missing = release_folder(wheelhouse, tmp_path / "missing", key)
    victim = next(p for p in missing.glob("*.whl") if not p.name.startswith("edge_daemon"))
    victim.unlink()
    refused(missing, f"{victim.name} is listed in the signed manifest but missing")

    changed = release_folder(wheelhouse, tmp_path / "changed", key)
    wheel = daemon_wheel(changed)
    data = bytearray(wheel.read_bytes())
    data[len(data) // 2] ^= 0x01
    wheel.write_bytes(bytes(data))
    refused(changed, f"{wheel.name}: its sha256 is not the one in the signed manifest")

    foreign = release_folder(wheelhouse, tmp_path / "foreign", other_key)
    refused(foreign, "the signature does not verify with any trusted release key")

    edited = release_folder(wheelhouse, tmp_path / "edited", key)
    (edited / "SHA256SUMS").write_text((edited / "SHA256SUMS").read_text() + "# edited\n")
    refused(edited, "the signature does not verify with any trusted release key")

    refused(unsigned, "no signed manifest")

    r = install(root, "--package", "edge-daemon==2.0", "--no-apt")
    one_line_refusal(r, "release keys are set")

    # Rotation: a second key trusted beside the first; a folder signed by it installs.
    rotated = release_folder(wheelhouse, tmp_path / "rotated", other_key)
    r = install(root, *args(rotated, "--release", "1.1", "--trusted-key", str(other_pub)))
    assert r.returncode == 0 and (opt / "current").readlink() == Path("releases/1.1"), r.stderr
