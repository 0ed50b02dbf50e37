"""`edge-deploy keygen / sign / verify` as a user runs them, and the release manifest (`deploy.manifest`), checked
both by Python and by the system's `openssl` + `sha256sum` the way install.sh does on a device."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.manifest import MANIFEST, SIGNATURE, parse_manifest
from edge.errors import Failure

REPO = Path(__file__).resolve().parents[2]
EDGE_DEPLOY = [sys.executable, "-m", "deploy.cli"]


def deploy(*args: object, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*EDGE_DEPLOY, *map(str, args)], capture_output=True, text=True, cwd=cwd or REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60, check=False)  # fmt: skip


def one_line(r: subprocess.CompletedProcess, code: int, expected: str) -> None:
    assert r.returncode == code, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edge-deploy: error: ") and expected in lines[0], r.stderr


@pytest.fixture
def demo_model() -> Path:
    return REPO / "edge" / "assets" / "demo_model.tflite"


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    r = deploy("keygen", tmp_path / "keys")
    assert r.returncode == 0 and "key id" in r.stdout, r.stderr
    assert deploy("keygen", tmp_path / "other").returncode == 0
    return tmp_path / "keys"


def test_keygen_makes_a_private_0600_key_and_never_overwrites(tmp_path, keys) -> None:
    assert (keys / "edge-signing.key").stat().st_mode & 0o777 == 0o600
    assert keys.stat().st_mode & 0o777 == 0o700
    one_line(deploy("keygen", keys), 2, "exists; keygen never overwrites a key")
    (tmp_path / "file").write_text("")
    one_line(deploy("keygen", tmp_path / "file"), 2, "not a folder")


def test_sign_and_verify_a_model(tmp_path, keys, demo_model) -> None:
    model = tmp_path / "demo_model.tflite"
    model.write_bytes(demo_model.read_bytes())
    r = deploy("sign", "--key", keys / "edge-signing.key", model)
    assert r.returncode == 0 and "demo_model.tflite.sig" in r.stdout, r.stderr
    r = deploy("verify", "--key", keys / "edge-signing.pub", model)
    assert r.returncode == 0 and "signature verified" in r.stdout
    one_line(deploy("verify", "--key", tmp_path / "other/edge-signing.pub", model), 1, "not a trusted key")
    r = deploy("verify", "--key", tmp_path / "other/edge-signing.pub", "--key", keys / "edge-signing.pub", model)
    assert r.returncode == 0, "any one of several keys (rotation)"
    data = bytearray(model.read_bytes())
    data[100] ^= 0xFF
    model.write_bytes(bytes(data))
    one_line(deploy("verify", "--key", keys / "edge-signing.pub", model), 1, "changed since it was signed")


@pytest.mark.parametrize(
    ("args", "code", "expected"),
    [
        (["sign", "--key", "{keys}/edge-signing.pub", "{model}"], 2, "is a public key"),
        (["sign", "--key", "{tmp}/nokey", "{model}"], 2, "cannot read the key"),
        (["sign", "--key", "{keys}/edge-signing.key", "{tmp}/missing.tflite"], 2, "no such file or folder"),
        (["verify", "--key", "{keys}/edge-signing.key", "{model}"], 2, "is a private key"),
        (["verify", "--key", "{tmp}/keys/../other/edge-signing.key.txt", "{model}"], 2, "no such file"),
        (["verify", "--key", "{text}", "{model}"], 2, "not a PEM public key"),
        (["verify", "--key", "{model}", "{model}"], 2, "over 4096 bytes, not a public key"),
        (["verify", "--key", "{keys}/edge-signing.pub", "{model}"], 1, "not signed"),
    ],
)
def test_bad_input_is_one_line(tmp_path, keys, demo_model, args, code, expected) -> None:
    (tmp_path / "text.pub").write_text("hello\n")
    values = {"keys": keys, "tmp": tmp_path, "model": demo_model, "text": tmp_path / "text.pub"}
    one_line(deploy(*(a.format(**values) for a in args)), code, expected)


def sig_garbage(model: Path, other: Path) -> None:
    Path(f"{model}.sig").write_bytes(os.urandom(300))


def sig_huge(model: Path, other: Path) -> None:
    os.truncate(f"{model}.sig", 1 << 30)  # 1 GB on paper (sparse): refused from its size, never read


def sig_of_another_model(model: Path, other: Path) -> None:
    os.replace(f"{other}.sig", f"{model}.sig")


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (sig_garbage, "not an edge signature file (not JSON)"),
        (sig_huge, "over 4096 bytes, not a signature"),
        (sig_of_another_model, "demo_model.tflite.sig is the signature of another model (other.tflite)"),
    ],
)
def test_a_bad_signature_file_is_one_line(tmp_path, keys, demo_model, damage, expected) -> None:
    model, other = tmp_path / "demo_model.tflite", tmp_path / "other.tflite"
    model.write_bytes(demo_model.read_bytes())
    other.write_bytes(demo_model.read_bytes()[:-1] + b"\1")
    for m in (model, other):
        assert deploy("sign", "--key", keys / "edge-signing.key", m).returncode == 0
    damage(model, other)
    one_line(deploy("verify", "--key", keys / "edge-signing.pub", model), 1, expected)
    assert model.read_bytes() == demo_model.read_bytes(), "verify never changes the model"


def test_a_private_key_readable_by_others_is_refused(keys, demo_model) -> None:
    (keys / "edge-signing.key").chmod(0o644)
    one_line(deploy("sign", "--key", keys / "edge-signing.key", demo_model), 2, "readable by others (mode 0644)")


def wheels(folder: Path, names=("edge_daemon-0.2.0-py3-none-any.whl", "numpy-2.2.6-cp311-cp311-linux_aarch64.whl")):
    folder.mkdir()
    for i, name in enumerate(names):
        (folder / name).write_bytes(os.urandom(1000 + i))
    return folder


def openssl_and_sha256sum(folder: Path, pub: Path) -> bool:
    """What install.sh runs on a device: the system's openssl for the signature, sha256sum for the wheels."""
    sig = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(pub), "-rawin", "-in",
                          str(folder / MANIFEST), "-sigfile", str(folder / SIGNATURE)], capture_output=True)
    sums = subprocess.run(["sha256sum", "--check", "--strict", "--quiet", MANIFEST], cwd=folder, capture_output=True)
    return sig.returncode == 0 and sums.returncode == 0


def damage_extra(f: Path) -> None:
    (f / "evil-1.0-py3-none-any.whl").write_bytes(b"x")


def damage_missing(f: Path) -> None:
    next(f.glob("numpy-*")).unlink()


def damage_byte(f: Path) -> None:
    w = next(f.glob("numpy-*"))
    w.write_bytes(b"\1" + w.read_bytes()[1:])


def damage_manifest(f: Path) -> None:
    (f / MANIFEST).write_text((f / MANIFEST).read_text().replace("numpy", "nompy"))


def damage_link(f: Path) -> None:
    (f / "link.whl").symlink_to(next(f.glob("numpy-*")))


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (damage_extra, "evil-1.0-py3-none-any.whl is not in the signed manifest"),
        (damage_missing, "is listed in the signed manifest but missing"),
        (damage_byte, "its sha256 is not the one in the signed manifest"),
        (damage_manifest, "the signature does not verify with any trusted key"),
        (damage_link, "link.whl is not a regular file"),
        (lambda f: (f / SIGNATURE).unlink(), "no signed manifest"),
        (lambda f: os.truncate(f / MANIFEST, 2 << 20), "over 1048576 bytes"),
        (lambda f: (f / "notes.txt").write_text("x"), "notes.txt is not a wheel"),
    ],
)
def test_a_release_folder_that_does_not_verify_is_refused(tmp_path, keys, damage, expected) -> None:
    folder = wheels(tmp_path / "release")
    r = deploy("sign", "--key", keys / "edge-signing.key", folder)
    assert r.returncode == 0 and "signed 2 wheel(s)" in r.stdout, r.stderr
    assert deploy("verify", "--key", keys / "edge-signing.pub", folder).returncode == 0
    assert openssl_and_sha256sum(folder, keys / "edge-signing.pub"), "the device's tools must accept a good release"
    damage(folder)
    one_line(deploy("verify", "--key", keys / "edge-signing.pub", folder), 1, expected)


def test_a_release_signed_by_another_key_is_refused_by_openssl_too(tmp_path, keys) -> None:
    folder = wheels(tmp_path / "release")
    assert deploy("sign", "--key", tmp_path / "other/edge-signing.key", folder).returncode == 0
    one_line(deploy("verify", "--key", keys / "edge-signing.pub", folder), 1, "does not verify with any trusted key")
    assert not openssl_and_sha256sum(folder, keys / "edge-signing.pub")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"x", "must start with"),
        (b"# edge-release-manifest-v1\n", "lists no wheel"),
        (b"# edge-release-manifest-v1\n" + b"a" * 64 + b"  ../x.whl\n", "line 2 is not"),
        (b"# edge-release-manifest-v1\n" + b"a" * 64 + b" x.whl\n", "line 2 is not"),
        (b"# edge-release-manifest-v1\n" + (b"a" * 64 + b"  x.whl\n") * 2, "listed twice"),
        (b"# edge-release-manifest-v1\n\xff\n", "not ASCII"),
    ],
)
def test_manifest_lines_are_parsed_strictly(text, expected) -> None:
    with pytest.raises(Failure, match=expected):
        parse_manifest(text, "SHA256SUMS")
