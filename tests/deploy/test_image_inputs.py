"""`edge-deploy image`'s bad input: one line on stderr naming the flag and the fix, exit 2, nothing written, before
anything is built (these run in seconds: no mmdebstrap). The image itself: tests/device/test_image.py."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from deploy import image_inputs

DEMO = Path(__file__).resolve().parents[2] / "edge/assets/demo_model.tflite"


def image(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = ["edge-deploy", "image", "--cache", str(tmp_path / "cache"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def one_line_error(proc: subprocess.CompletedProcess, *words: str) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key


def test_size_parsing_table():
    assert image_inputs.parse_size("4G") == 4 << 30
    assert image_inputs.parse_size("3584M") == 3584 << 20
    assert image_inputs.parse_size("8GiB") == 8 << 30
    for bad in ("1G", "abc", "4X", ""):
        with pytest.raises(image_inputs.EdgeError, match="--size"):
            image_inputs.parse_size(bad)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--size", "1G"], ("--size 1G", "too small", "2048 MiB")),
        (["--size", "lots"], ("--size 'lots'", "not a size")),
        (["--hostname", "edge_cam"], ("--hostname 'edge_cam'", "not a host name")),
        (["--hostname=-x"], ("--hostname '-x'",)),
        (["--model", "/nonexistent/m.tflite"], ("--model /nonexistent/m.tflite", "no such file")),
        (["--ssh-key", "/nonexistent/k.pub"], ("--ssh-key /nonexistent/k.pub", "no such file")),
    ],
)
def test_bad_flags_give_one_line(tmp_path, args, words):
    out = tmp_path / "edge.img"
    one_line_error(image(tmp_path, "--out", str(out), *args), *words)
    assert list(tmp_path.iterdir()) == [], "nothing may be written"


def test_out_that_exists_or_is_a_mounted_device(tmp_path):
    out = tmp_path / "edge.img"
    out.write_text("keep me")
    one_line_error(image(tmp_path, "--out", str(out)), "already exists", "nothing was overwritten")
    assert out.read_text() == "keep me"
    root_dev = next(line.split()[0] for line in Path("/proc/mounts").read_text().splitlines()
                    if line.split()[1] == "/")  # fmt: skip
    if not root_dev.startswith("/dev/"):
        pytest.skip(f"the root file system is on {root_dev}, not a device")
    one_line_error(image(tmp_path, "--out", root_dev), f"--out {root_dev}", "mounted")


def test_private_key_or_garbage_is_not_a_public_key(tmp_path, keys):
    out = str(tmp_path / "edge.img")
    one_line_error(image(tmp_path, "--out", out, "--ssh-key", str(keys)), "PRIVATE key", f"{keys}.pub")
    bad = tmp_path / "bad.pub"
    bad.write_text("ssh-ed25519 notbase64!! me@host\n")
    one_line_error(image(tmp_path, "--out", out, "--ssh-key", str(bad)), "line 1 is not an OpenSSH public key")
    swapped = tmp_path / "swapped.pub"
    blob = Path(f"{keys}.pub").read_text().split()[1]
    swapped.write_text(f"ssh-rsa {blob}\n")  # the blob says ed25519
    one_line_error(image(tmp_path, "--out", out, "--ssh-key", str(swapped)), "not an OpenSSH public key")
    assert image_inputs.check_public_key(f"{keys}.pub").startswith("ssh-ed25519 AAAA")


def test_corrupt_model(tmp_path):
    model = tmp_path / "m.tflite"
    model.write_bytes(DEMO.read_bytes()[:5000])
    one_line_error(image(tmp_path, "--out", str(tmp_path / "edge.img"), "--model", str(model)), f"--model {model}")


def test_configs_that_do_not_validate(tmp_path):
    out = str(tmp_path / "edge.img")
    cfg = tmp_path / "config.toml"
    cfg.write_text("[camera\nsource = 0\n")
    one_line_error(image(tmp_path, "--out", out, "--config", str(cfg)), f"--config {cfg}", "not valid TOML")
    cfg.write_text('[camera]\nsource = "0"\n[model]\npath = "/var/lib/edge-daemon/models/demo_model.tflite"\n'
                   "[mqtt]\nhost = \"broker\"\nport = 99999\n")  # fmt: skip
    one_line_error(image(tmp_path, "--out", out, "--config", str(cfg)), f"--config {cfg}", "port")
    cfg.write_text('[camera]\nsource = "0"\n[model]\npath = "/var/lib/edge-daemon/models/birds.tflite"\n')
    one_line_error(image(tmp_path, "--out", out, "--config", str(cfg)), f"--config {cfg}", "--model birds.tflite")


def test_good_inputs_pass_the_checks(tmp_path, keys):
    """The same checks accept a real model, a config naming it as the device will hold it, and a public key."""
    from deploy.image import build_parser_for_tests, checked_inputs

    model = tmp_path / "birds.tflite"
    model.write_bytes(DEMO.read_bytes())
    cfg = tmp_path / "config.toml"
    cfg.write_text('[camera]\nsource = "0"\n[model]\npath = "/var/lib/edge-daemon/models/birds.tflite"\n'
                   '[mqtt]\nhost = "broker.lan"\nusername = "edge"\n'
                   'password_file = "edge-daemon.mqtt-password"\n')  # fmt: skip
    args = build_parser_for_tests().parse_args(["--out", str(tmp_path / "edge.img"), "--model", str(model),
                                                 "--config", str(cfg), "--ssh-key", f"{keys}.pub"])  # fmt: skip
    out, size, inp = checked_inputs(args)
    assert (out.name, size, inp.hostname, inp.model) == ("edge.img", 4 << 30, "edge-pi", model.resolve())
    assert inp.config == cfg.read_bytes() and inp.ssh_keys.startswith("ssh-ed25519 ")
